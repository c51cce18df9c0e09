"""Write-behind's durability promise over SMB, with real processes: a `weir
serve` of this test's own (the `read-write` policy, a 300 ms write-back
delay, a 64 MiB journal) over a local directory, SMB 3.1.1 clients writing
through it. A change Weir acknowledged as durable (a WRITE with
WRITE_THROUGH or on a write-through open, a WRITE or a set end of file
followed by FLUSH) survives `kill -9` of Weir at any instant, reads back
after the restart, and reaches the core filer byte for byte after `weir
flush --all`.

The kill instants come from a seeded RNG: the seed is printed, and
`WEIR_CRASH_SEED=N` runs the same sequence again (`WEIR_CRASH_KILLS=N`
changes the number of kills, default 30: about a minute). Weir is `WEIR_BIN`.
"""

import os
import random
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from smbprotocol import Dialects
from smbprotocol.connection import Connection
from smbprotocol.exceptions import SMBResponseException
from smbprotocol.file_info import FileEndOfFileInformation
from smbprotocol.header import NtStatus
from smbprotocol.open import (
    CreateDisposition, CreateOptions, FileAttributes, FilePipePrinterAccessMask, ImpersonationLevel,
    Open, ShareAccess, SMB2SetInfoRequest, SMB2SetInfoResponse)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from weirproc import HANG, Weir

pytestmark = pytest.mark.not_against(samba="it proves Weir's own write-behind journal")

CLIENTS = 3
FILES_PER_CLIENT = 2
# Files grow to at most this size; a write is at most MAX_WRITE bytes.
MAX_SIZE = 1 << 20
MAX_WRITE = 200 << 10

CONFIG = """\
[cache]
size = "64MiB"
memory = "256MiB"
shards = 2
journal_size = "64MiB"
dirty_max = "32MiB"
[policy]
preset = "read-write"
writeback_delay = "300ms"
"""


@dataclass
class Op:
    """One change: a write of `data` at `offset`, or (data None) a set end of file to `offset`."""

    offset: int
    data: bytes = None
    # WRITE_THROUGH on the WRITE itself (else FLUSH after it, unless the open is write-through).
    through: bool = False

    @staticmethod
    def random(rng):
        if rng.random() < 0.1:
            return Op(rng.randint(0, MAX_SIZE))
        offset = rng.randrange(MAX_SIZE)
        most = 4096 if rng.random() < 0.25 else MAX_WRITE
        n = rng.randint(1, min(most, MAX_SIZE - offset))
        return Op(offset, rng.randbytes(n), rng.random() < 0.5)

    def apply(self, model: bytearray):
        if self.data is None:
            del model[self.offset:]
            model.extend(bytes(self.offset - len(model)))
            return
        end = self.offset + len(self.data)
        if len(model) < end:
            model.extend(bytes(end - len(model)))
        model[self.offset:end] = self.data

    def describe(self, write_through_open):
        if self.data is None:
            return f"set end of file {self.offset} + FLUSH"
        how = "write-through open" if write_through_open else (
            "WRITE_THROUGH" if self.through else "FLUSH after it")
        return f"WRITE {len(self.data)} bytes at {self.offset} ({how})"


class File:
    """A file the test writes, and what it must hold: `model`, every
    acknowledged change applied in order; `pending`, the change sent and not
    yet acknowledged (it may or may not have landed when Weir died)."""

    def __init__(self, name, write_through):
        self.name = name
        self.write_through = write_through
        self.model = bytearray()
        self.pending = None


class Stats:
    """What the writers did, over the whole test."""

    def __init__(self):
        self.lock = threading.Lock()
        self.writes = self.written = self.resizes = self.flushes = self.retries = 0
        self.in_flight = self.landed = 0

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def summary(self):
        return (f"{self.writes} writes ({self.written} bytes) and {self.resizes} ends of file "
                f"acknowledged, {self.flushes} FLUSHes, {self.retries} STATUS_IO_TIMEOUT retries, "
                f"{self.in_flight} changes in flight at a kill of which {self.landed} landed")


class Gone(Exception):
    """Weir was killed while a request waited for its answer."""


def bounded(fn, what):
    """fn() in a thread of its own, for at most HANG seconds."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG)
    if t.is_alive():
        raise AssertionError(f"{what}: no answer from weir within {HANG} s")
    if "error" in out:
        raise out["error"]
    return out.get("value")


class Client:
    """One SMB 3.1.1 connection (signed), session and tree connect of the
    share `export`, and an open of each of its files."""

    def __init__(self, port, user, password, files, create):
        self.conn = Connection(uuid.uuid4(), "127.0.0.1", port, require_signing=True)
        self.conn.connect(Dialects.SMB_3_1_1, timeout=HANG)
        self.session = Session(self.conn, user, password, require_encryption=False)
        self.session.connect()
        self.tree = TreeConnect(self.session, r"\\127.0.0.1\export")
        self.tree.connect()
        # Credits for 200 KiB writes from two threads and 1 MiB reads.
        self.conn.echo(sid=self.session.session_id, timeout=HANG, credit_request=256)
        self.files = files
        self.opens = []
        for f in files:
            fd = Open(self.tree, f.name)
            options = CreateOptions.FILE_NON_DIRECTORY_FILE
            if f.write_through:
                options |= CreateOptions.FILE_WRITE_THROUGH
            fd.create(ImpersonationLevel.Impersonation,
                      FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE,
                      FileAttributes.FILE_ATTRIBUTE_NORMAL,
                      ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
                      CreateDisposition.FILE_CREATE if create else CreateDisposition.FILE_OPEN,
                      options)
            self.opens.append(fd)

    def call(self, make, stop=None):
        """Send the request make() builds and return its answer; Gone once
        `stop` is set, an error after HANG seconds without one."""
        msg, receive = make()
        request = self.conn.send(msg, sid=self.session.session_id, tid=self.tree.tree_connect_id)
        started = time.monotonic()
        while not request.response_event.wait(0.2):
            if stop is not None and stop.is_set():
                raise Gone()
            if time.monotonic() - started > HANG:
                raise AssertionError(f"no answer from weir within {HANG} s to {type(msg).__name__}")
        return receive(request)

    def read_all(self, fd):
        """The whole file, as long as the open's end of file (from CREATE) says."""
        out = bytearray()
        chunk = min(1 << 20, self.conn.max_read_size)
        while len(out) < fd.end_of_file:
            n = min(chunk, fd.end_of_file - len(out))
            data = self.call(lambda: fd.read(len(out), n, send=False))
            assert data, f"{fd.file_name}: READ at {len(out)} returned nothing before the end of file"
            out += data
        return bytes(out)

    def drop(self):
        """Weir is gone: close the socket so nothing waits on it."""
        try:
            self.conn.disconnect(close=False)
        except Exception:  # the connection is dead anyway
            pass


def set_end_of_file(fd, size):
    """A SET_INFO of FileEndOfFileInformation, for Client.call."""
    info = FileEndOfFileInformation()
    info["end_of_file"] = size
    req = SMB2SetInfoRequest()
    req["info_type"] = info.INFO_TYPE
    req["file_info_class"] = info.INFO_CLASS
    req["file_id"] = fd.file_id
    req["buffer"] = info

    def receive(request):
        SMB2SetInfoResponse().unpack(fd.connection.receive(request)["data"].get_value())

    return req, receive


class Writer:
    """Changes one file at random, each change acknowledged durable before
    the next, until Weir is killed (`stop`); an error while Weir runs goes to
    `errors`."""

    def __init__(self, client, index, rng, stats, stop, errors):
        self.client, self.file, self.fd = client, client.files[index], client.opens[index]
        self.rng, self.stats, self.stop, self.errors = rng, stats, stop, errors

    def step(self, make):
        """One request; STATUS_IO_TIMEOUT (the dirty quota is full: retry
        later) is retried for up to HANG seconds."""
        started = time.monotonic()
        while True:
            try:
                return self.client.call(make, self.stop)
            except SMBResponseException as e:
                if e.status != NtStatus.STATUS_IO_TIMEOUT or time.monotonic() - started > HANG:
                    raise
                self.stats.add(retries=1)
                time.sleep(0.1)

    def perform(self, op):
        fd, f = self.fd, self.file
        if op.data is None:
            self.step(lambda: set_end_of_file(fd, op.offset))
        else:
            through = op.through or f.write_through
            n = self.step(lambda: fd.write(op.data, op.offset, write_through=op.through, send=False))
            assert n == len(op.data), f"{f.name}: a short WRITE ({n} of {len(op.data)} bytes)"
            if through:
                return
        self.step(lambda: fd.flush(send=False))
        self.stats.add(flushes=1)

    def run(self):
        while not self.stop.is_set():
            op = Op.random(self.rng)
            self.file.pending = op
            try:
                self.perform(op)
            except Exception as e:  # a kill, or an error: told apart below
                if self.stop.is_set():
                    return  # Weir was killed: the change stays pending.
                self.errors.append(f"{self.file.name}: {op.describe(self.file.write_through)} failed "
                                   f"while weir ran: {e!r}\n{traceback.format_exc()}")
                return
            op.apply(self.file.model)
            self.file.pending = None
            if op.data is None:
                self.stats.add(resizes=1)
            else:
                self.stats.add(writes=1, written=len(op.data))


def first_difference(got, want):
    i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    return "one is a prefix of the other" if i is None else f"first difference at byte {i}"


def check(clients, stats, context):
    """Read every file through Weir and compare it with its model; the
    pending change may have landed or not (the model then follows)."""
    for c in clients:
        for f, fd in zip(c.files, c.opens):
            got = c.read_all(fd)
            pending, f.pending = f.pending, None
            if pending is not None:
                stats.add(in_flight=1)
            if got == f.model:
                continue
            landed = bytearray(f.model)
            if pending is not None:
                pending.apply(landed)
                if got == landed:
                    stats.add(landed=1)
                    f.model = landed
                    continue
            detail = "nothing" if pending is None else (
                f"{pending.describe(f.write_through)} (with it: {len(landed)} bytes, "
                f"{first_difference(got, landed)})")
            raise AssertionError(
                f"{context}: {f.name} read back {len(got)} bytes, the acknowledged changes make "
                f"{len(f.model)} ({first_difference(got, f.model)}); in flight: {detail}")


def env_int(name, default):
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise AssertionError(f"{name}={value!r}: not a number") from None


@pytest.fixture
def weir(tmp_path):
    binary = os.environ.get("WEIR_BIN", "")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(f"WEIR_BIN={binary!r} is not an executable weir: build weir and set WEIR_BIN "
                    "(run-against-weir.sh does)")
    w = Weir(binary, tmp_path, CONFIG, os.environ.get("SMB_USER") or "weir-test",
             os.environ.get("SMB_PASS") or "weir-test-pass")
    yield w
    w.cleanup()


def test_acknowledged_writes_survive_kill_9_and_reach_the_core_filer(weir, capsys):
    seed = env_int("WEIR_CRASH_SEED", random.SystemRandom().getrandbits(63))
    kills = env_int("WEIR_CRASH_KILLS", 30)

    def say(line):
        with capsys.disabled():
            print(line, flush=True)

    say(f"\nwrite-behind over SMB: seed {seed} (WEIR_CRASH_SEED={seed} runs this sequence again), "
        f"{kills} kills")
    rng = random.Random(seed)
    user = os.environ.get("SMB_USER") or "weir-test"
    password = os.environ.get("SMB_PASS") or "weir-test-pass"
    files = [[File(f"c{c}-f{i}", write_through=i == 0) for i in range(FILES_PER_CLIENT)]
             for c in range(CLIENTS)]
    stats = Stats()

    def connect(create=False):
        return [bounded(lambda fs=fs: Client(weir.port, user, password, fs, create),
                        f"connecting to weir (start {weir.starts})") for fs in files]

    weir.start()
    clients = connect(create=True)
    started = time.monotonic()
    for kill in range(1, kills + 1):
        stop, errors = threading.Event(), []
        threads = [threading.Thread(target=Writer(c, i, random.Random(rng.getrandbits(64)), stats,
                                                  stop, errors).run, daemon=True)
                   for c in clients for i in range(FILES_PER_CLIENT)]
        for t in threads:
            t.start()
        # Before and after the write-back delay (300 ms), and across the
        # write-back of earlier runs.
        after = rng.uniform(0.01, 1.2)
        time.sleep(after)
        stop.set()
        weir.kill()
        for c in clients:
            c.drop()
        for t in threads:
            t.join(HANG)
            assert not t.is_alive(), f"seed {seed}: a writer still waits {HANG} s after kill {kill}"
        assert not errors, f"seed {seed}, before kill {kill}:\n" + "\n".join(errors)
        weir.start()
        clients = connect()
        bounded(lambda: check(clients, stats, f"seed {seed}, after kill {kill} "
                                              f"({after * 1000:.0f} ms into the run)"),
                f"reading back after kill {kill}")
    say(f"write-behind over SMB: {kills} kills in {time.monotonic() - started:.1f} s: {stats.summary()}; "
        f"a killed weir's port listened on for up to {weir.linger * 1000:.0f} ms")
    assert stats.writes > 0 and stats.resizes > 0, stats.summary()

    for c in clients:
        bounded(lambda c=c: c.conn.disconnect(close=True), "disconnecting")
    res = weir.run("flush", "--all", timeout=4 * HANG)
    assert res.returncode == 0, f"weir flush --all exited {res.returncode}:\n{res.stdout}{res.stderr}"
    status = weir.status()
    dirty = sum(f["bytes"] for f in status["filers"])
    assert dirty == 0, f"{dirty} dirty bytes left after weir flush --all: {status}"
    weir.stop()
    compared = 0
    for f in (f for fs in files for f in fs):
        origin = (weir.origin / f.name).read_bytes()
        assert origin == f.model, (
            f"seed {seed}: the core filer's {f.name} has {len(origin)} bytes, the acknowledged "
            f"changes make {len(f.model)} ({first_difference(origin, f.model)})")
        compared += len(origin)
    say(f"write-behind over SMB: the core filer holds every acknowledged change: {compared} bytes "
        f"in {CLIENTS * FILES_PER_CLIENT} files compared")
