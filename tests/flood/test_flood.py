"""A flood of connections from one address must neither grow `weir serve`
without bound nor shut out a well-behaved client from another address.

From 127.0.0.1: half-open SMB sessions (NEGOTIATE, SESSION_SETUP round 1,
then silence), 8 MiB length headers whose bodies never come (SMB before
logon; NFS behind a valid RPC call header), slow drips of such bodies, and
5,000 idle connections, all beyond the limits of the config written here.
Meanwhile a client bound to 127.0.0.2 does NFS NULL, MNT and GETATTR and an
SMB logon with a real user. The server's VmRSS must stay under RSS_BOUND.

WEIR_BIN names the weir binary (tests/flood/run-against-weir.sh sets it).
"""

import os
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest
import spnego
from smbprotocol.connection import Connection
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

# VmRSS `weir serve` must stay under: its caches are 64 MiB of RAM here,
# and without the limits this flood takes it past 1 GiB.
RSS_BOUND = 512 << 20
FLOOD_FROM = "127.0.0.1"
GOOD_FROM = "127.0.0.2"
USER, PASSWORD = "flood-test", "flood-test-pass"
PER_CLIENT = 1200
LIMITS = f"""
[limits]
max_connections = 2000
max_connections_per_client = {PER_CLIENT}
receive_buffer_memory = "64MiB"
receive_buffer_wait = "1s"
nfs_idle_timeout = "6m"
smb_idle_timeout = "15m"
smb_logon_timeout = "5m"
smb_sessions_in_setup_per_connection = 2
smb_logons_per_client = 16
smb_logons_total = 256
smb_lockout_after = 20
smb_lockout_for = "5m"
"""
NFS_PROGRAM, MOUNT_PROGRAM = 100003, 100005
EIGHT_MIB = 8 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


class Weir:
    def __init__(self, tmp):
        binary = os.environ.get("WEIR_BIN")
        if not binary or not os.access(binary, os.X_OK):
            pytest.fail("WEIR_BIN must name the weir binary")
        self.nfs, self.smb, self.metrics = free_port(), free_port(), free_port()
        state, origin = tmp / "state", tmp / "export"
        origin.mkdir()
        (origin / "hello").write_text("hello\n")
        subprocess.run([binary, "smbpasswd", USER, "--uid", str(os.getuid()), "--gid", str(os.getgid()),
                        "--data-dir", str(state)], input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)
        config = tmp / "weir.toml"
        config.write_text(LIMITS)
        self.log = open(tmp / "weir.out", "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", str(config), "--data-dir", str(state), "--origin", str(origin),
             "--nfs-listen", f"127.0.0.1:{self.nfs}", "--smb-listen", f"127.0.0.1:{self.smb}",
             "--metrics-listen", f"127.0.0.1:{self.metrics}", "--memory", "64MiB",
             "--cache-size", "256MiB", "--shards", "2"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, "weir serve exited at start"
            try:
                socket.create_connection(("127.0.0.1", self.smb), 1).close()
                socket.create_connection(("127.0.0.1", self.nfs), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "weir serve did not listen within 30 s"
                time.sleep(0.1)

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=10).read().decode()
        return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def weir(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    assert want >= 16384, f"RLIMIT_NOFILE hard limit {hard} is too low for the flood"
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    w = Weir(tmp_path)
    yield w
    w.stop()


# --- wire helpers -------------------------------------------------------------------------


def connect_from(source, port, timeout=10, privileged=False):
    """A connection from `source`; from a port below 1024 when `privileged`, as
    the kernel NFS client calls (the default export serves only those)."""
    s = socket.socket()
    s.settimeout(timeout)
    if privileged:
        bind_privileged(s, source)
    else:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def bind_privileged(s, source):
    for p in range(1023, 511, -1):
        try:
            s.bind((source, p))
            return
        except OSError:
            continue
    raise OSError(f"no free port below 1024 on {source}")


def rpc_call(xid, prog, vers, proc, args=b"", cred=None):
    cred = cred or struct.pack(">II", 0, 0)
    return struct.pack(">IIIIII", xid, 0, 2, prog, vers, proc) + cred + struct.pack(">II", 0, 0) + args


def auth_sys():
    machine = b"flood"
    body = struct.pack(">II", 0, len(machine)) + machine + b"\0" * (-len(machine) % 4) + struct.pack(">III", 0, 0, 0)
    return struct.pack(">II", 1, len(body)) + body


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def rpc(s, call):
    s.sendall(struct.pack(">I", 0x8000_0000 | len(call)) + call)
    mark = struct.unpack(">I", recv_exact(s, 4))[0]
    reply = recv_exact(s, mark & 0x7FFF_FFFF)
    xid, mtype, stat, _flavor, vlen = struct.unpack(">IIIII", reply[:20])
    body = reply[20 + vlen + (-vlen % 4):]
    accept = struct.unpack(">I", body[:4])[0]
    assert (mtype, stat, accept) == (1, 0, 0), f"RPC reply not accepted: {mtype} {stat} {accept}"
    return body[4:]


def smb_header(command, mid, session=0):
    return (b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, 0, command, 1, 0, 0, mid, 0, 0, session)
            + b"\0" * 16)


def frame(msg):
    return struct.pack(">I", len(msg)) + msg


def negotiate():
    body = struct.pack("<HHHHI", 36, 1, 1, 0, 0) + uuid.uuid4().bytes + struct.pack("<Q", 0) + struct.pack("<H", 0x0210)
    return frame(smb_header(0, 0) + body)


def session_setup_round_one(token):
    body = struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 64 + 24, len(token), 0) + token
    return frame(smb_header(1, 1) + body)


def read_frame(s):
    n = struct.unpack(">I", recv_exact(s, 4))[0] & 0xFFFFFF
    return recv_exact(s, n)


# --- the flood ----------------------------------------------------------------------------


class Flood:
    """Connections from FLOOD_FROM, kept open until closed."""

    def __init__(self):
        self.socks = []
        self.refused = 0
        self.drips = []
        self.stop = threading.Event()

    def open(self, port):
        try:
            s = connect_from(FLOOD_FROM, port, timeout=5)
        except OSError:
            self.refused += 1
            return None
        self.socks.append(s)
        return s

    def send(self, s, data):
        try:
            s.sendall(data)
            return True
        except OSError:
            self.refused += 1
            return False

    def half_open_smb(self, port, n):
        token = spnego.client("someone", "wrong", hostname="weir", protocol="ntlm").step()
        for _ in range(n):
            s = self.open(port)
            if s is None or not self.send(s, negotiate()):
                continue
            try:
                read_frame(s)
            except OSError:
                self.refused += 1
                continue
            self.send(s, session_setup_round_one(token))

    def oversized(self, port, n, head):
        for _ in range(n):
            s = self.open(port)
            if s is not None:
                self.send(s, head)

    def dripping(self, port, n, head):
        for _ in range(n):
            s = self.open(port)
            if s is not None and self.send(s, head):
                self.drips.append(s)

    def drip(self):
        while not self.stop.wait(0.2):
            for s in self.drips:
                try:
                    s.send(b"\0" * 1024)
                except OSError:
                    pass

    def idle(self, ports, n):
        for i in range(n):
            self.open(ports[i % len(ports)])

    def closed_by_server(self):
        n = 0
        for s in self.socks:
            s.setblocking(False)
            try:
                n += s.recv(1 << 16) == b""
            except BlockingIOError:
                pass
            except OSError:
                n += 1
        return n

    def close(self):
        self.stop.set()
        for s in self.socks:
            s.close()


def good_nfs(weir):
    with connect_from(GOOD_FROM, weir.nfs, privileged=True) as s:
        rpc(s, rpc_call(1, NFS_PROGRAM, 3, 0))
        path = b"/export"
        mnt = rpc(s, rpc_call(2, MOUNT_PROGRAM, 3, 1, struct.pack(">I", len(path)) + path + b"\0", auth_sys()))
        status, fhlen = struct.unpack(">II", mnt[:8])
        assert status == 0, f"MNT /export: status {status}"
        fh = mnt[8:8 + fhlen]
        args = struct.pack(">I", len(fh)) + fh + b"\0" * (-len(fh) % 4)
        attr = rpc(s, rpc_call(3, NFS_PROGRAM, 3, 1, args, auth_sys()))
        assert struct.unpack(">I", attr[:4])[0] == 0, "GETATTR of the export's root failed"


def good_smb(weir):
    # A process of its own: smbprotocol waits with select(), which takes no
    # descriptor above 1023, and the flood holds thousands here.
    out = subprocess.run([sys.executable, __file__, "good-smb", str(weir.smb)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, f"the SMB client on {GOOD_FROM} failed:\n{out.stdout}{out.stderr}"


def smb_logon(port):
    plain = socket.create_connection

    def bound(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kw):
        return plain(address, timeout, (GOOD_FROM, 0), **kw)

    socket.create_connection = bound
    try:
        conn = Connection(uuid.uuid4(), "127.0.0.1", port)
        conn.connect(timeout=30)
        try:
            session = Session(conn, USER, PASSWORD, require_encryption=False)
            session.connect()
            tree = TreeConnect(session, rf"\\127.0.0.1\export")
            tree.connect()
            tree.disconnect()
            session.disconnect()
        finally:
            conn.disconnect()
    finally:
        socket.create_connection = plain


def test_a_flood_from_one_address_neither_exhausts_memory_nor_shuts_out_another(weir):
    pid = weir.proc.pid
    good_nfs(weir)
    good_smb(weir)
    flood = Flood()
    dripper = threading.Thread(target=flood.drip, daemon=True)
    peak = rss(pid)
    try:
        call = rpc_call(7, NFS_PROGRAM, 3, 7)  # a WRITE call header
        nfs_head = struct.pack(">I", 0x8000_0000 | EIGHT_MIB) + call
        smb_head = struct.pack(">I", EIGHT_MIB)
        flood.half_open_smb(weir.smb, 1000)
        flood.oversized(weir.smb, 200, smb_head)
        flood.oversized(weir.nfs, 200, nfs_head)
        flood.dripping(weir.nfs, 100, nfs_head)
        flood.dripping(weir.smb, 50, smb_head)
        dripper.start()
        flood.idle([weir.nfs, weir.smb], 5000)
        peak = max(peak, rss(pid))
        for _ in range(3):
            good_nfs(weir)
            good_smb(weir)
            peak = max(peak, rss(pid))
            time.sleep(1)
        assert weir.proc.poll() is None, "weir serve died under the flood"
        assert weir.metric("weir_connections_refused_total") > 0, "the flood was not refused at accept"
        closed = flood.closed_by_server()
    finally:
        flood.close()
    print(f"peak VmRSS {peak >> 20} MiB; {len(flood.socks)} flood connections made, "
          f"{closed} of them closed by the server, {flood.refused} failed to connect or send")
    assert peak < RSS_BOUND, f"VmRSS reached {peak >> 20} MiB under the flood (bound {RSS_BOUND >> 20} MiB)"


if __name__ == "__main__" and sys.argv[1:2] == ["good-smb"]:
    smb_logon(int(sys.argv[2]))
