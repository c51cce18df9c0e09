#!/usr/bin/env python3
"""4 KiB random reads over SMB with smbprotocol, for benches' smb_vs_samba.

    smb_randread.py HOST PORT SHARE USER PASS FILE SECONDS CONCURRENCY [DIALECT]

CONCURRENCY processes (Python's GIL would serialise threads), each with its
own connection and session (dialect 3.1.1 signed by default: Samba requires
signing there), open FILE and read 4 KiB at random aligned offsets, one read
in flight each, for SECONDS. Every read's length is checked. Prints one JSON
object: reads, seconds, mean and p99 latency in microseconds.
"""

import json
import multiprocessing as mp
import random
import sys
import time
import uuid

from smbprotocol import Dialects
from smbprotocol.connection import Connection
from smbprotocol.open import (CreateDisposition, CreateOptions, FilePipePrinterAccessMask,
                              ImpersonationLevel, Open, ShareAccess)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

BLOCK = 4096
DIALECT = {"2.1": Dialects.SMB_2_1_0, "3.0.2": Dialects.SMB_3_0_2, "3.1.1": Dialects.SMB_3_1_1}


def worker(args, seed, start_at, out):
    host, port, share, user, password, name, seconds, dialect = args
    conn = Connection(uuid.uuid4(), host, port, require_signing=True)
    conn.connect(dialect=DIALECT[dialect], timeout=30)
    session = Session(conn, user, password)
    session.connect()
    tree = TreeConnect(session, f"\\\\{host}\\{share}")
    tree.connect()
    f = Open(tree, name)
    f.create(ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.GENERIC_READ, 0,
             ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_OPEN,
             CreateOptions.FILE_NON_DIRECTORY_FILE)
    blocks = f.end_of_file // BLOCK
    rng = random.Random(seed)
    lat = []
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.monotonic() + seconds
    while (t := time.monotonic()) < end:
        data = f.read(rng.randrange(blocks) * BLOCK, BLOCK)
        lat.append(time.monotonic() - t)
        if len(data) != BLOCK:
            raise SystemExit(f"short read: {len(data)} bytes")
    f.close()
    tree.disconnect()
    session.disconnect()
    conn.disconnect()
    out.put(lat)


def main():
    host, port, share, user, password, name, seconds, conc = sys.argv[1:9]
    dialect = sys.argv[9] if len(sys.argv) > 9 else "3.1.1"
    args = (host, int(port), share, user, password, name, float(seconds), dialect)
    out = mp.Queue()
    start_at = time.time() + 2.0  # every process connected before the clock starts
    procs = [mp.Process(target=worker, args=(args, i + 1, start_at, out)) for i in range(int(conc))]
    for p in procs:
        p.start()
    lats = [out.get(timeout=float(seconds) + 120) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a reader failed ({p.exitcode})")
    all_lat = sorted(x for lat in lats for x in lat)
    reads = len(all_lat)
    print(json.dumps({
        "reads": reads,
        "seconds": float(seconds),
        "iops": reads / float(seconds),
        "mean_us": 1e6 * sum(all_lat) / max(reads, 1),
        "p99_us": 1e6 * all_lat[min(reads - 1, int(reads * 0.99))] if reads else 0.0,
    }))


if __name__ == "__main__":
    main()
