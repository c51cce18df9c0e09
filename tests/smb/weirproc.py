"""A `weir serve` of a test's own over a local directory, with the SMB
front end on a fixed 127.0.0.1 port: started, killed with SIGKILL and
started again on the same data directory (its journal is replayed), asked
for `weir flush` and `weir status`, and stopped. Every wait is bounded."""

import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

# Seconds one step may take (a start, an answer, a command) before it counts
# as a hang.
HANG = 30


def free_port():
    """A port nothing listens on, below Linux's default ephemeral range
    (32768-60999): no outgoing connection takes it while weir is down."""
    rng = random.SystemRandom()
    for _ in range(100):
        port = rng.randrange(20000, 32768)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port in 20000-32767 on 127.0.0.1")


def listening(port):
    """Whether a socket listens on TCP port `port` (of any address, IPv4)."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return True
    return False


class Weir:
    """`weir serve --origin ROOT/origin --data-dir ROOT/data --config ROOT/weir.toml`
    with the SMB user `user` (password `password`) made by `weir smbpasswd`;
    all its output goes to ROOT/weir.log."""

    def __init__(self, binary, root: Path, config: str, user, password):
        self.bin = str(binary)
        self.root = root
        self.origin = root / "origin"
        self.data = root / "data"
        self.log = root / "weir.log"
        self.port = free_port()
        self.proc = None
        self.starts = 0
        # The longest a killed weir's port went on listening, in seconds.
        self.linger = 0.0
        self.origin.mkdir()
        self.data.mkdir()
        (root / "weir.toml").write_text(config)
        res = self.run("smbpasswd", user, "--uid", str(os.getuid()), "--gid", str(os.getgid()),
                       input=password + "\n")
        assert res.returncode == 0, f"weir smbpasswd {user}: {res.stdout}{res.stderr}"

    def run(self, *args, input=None, timeout=HANG):
        """`weir ARGS --data-dir DATA`, its output captured."""
        try:
            return subprocess.run([self.bin, *args, "--data-dir", str(self.data)], input=input,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"weir {' '.join(args)} did not end within {timeout} s") from None

    def start(self):
        """Start it and wait until the SMB port answers."""
        self.starts += 1
        with open(self.log, "a") as log:
            log.write(f"\n=== start {self.starts} ===\n")
            log.flush()
            self.proc = subprocess.Popen(
                [self.bin, "serve", "--config", str(self.root / "weir.toml"),
                 "--data-dir", str(self.data), "--origin", str(self.origin),
                 "--smb-listen", f"127.0.0.1:{self.port}", "--nfs-listen", "127.0.0.1:0",
                 "--metrics-listen", "127.0.0.1:0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + HANG
        while True:
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(f"weir serve (start {self.starts}) exited with {code}:\n{self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"weir serve (start {self.starts}) did not listen on "
                                     f"127.0.0.1:{self.port} within {HANG} s:\n{self.tail()}")
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, and wait until it is gone."""
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"weir serve died by itself (exit {code}) before it was killed:\n"
                                 f"{self.tail()}")
        self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=HANG)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"weir serve still runs {HANG} s after SIGKILL") from None
        # The listening sockets outlive the process while the kernel tears
        # down its io_uring instances; a weir started meanwhile would share
        # the port (SO_REUSEPORT) with one that resets what it accepted.
        gone = time.monotonic()
        while listening(self.port):
            if time.monotonic() - gone > HANG:
                raise AssertionError(f"127.0.0.1:{self.port} still listens {HANG} s after weir "
                                     "serve was killed")
            time.sleep(0.01)
        self.linger = max(self.linger, time.monotonic() - gone)

    def stop(self):
        """SIGTERM; it must exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=HANG)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"weir serve did not stop within {HANG} s of SIGTERM") from None
        assert code == 0, f"weir serve exited with {code} on SIGTERM:\n{self.tail()}"

    def cleanup(self):
        """Kill it if it still runs (a failed test), and drop the cache files."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=HANG)
        for f in (self.data / "cache").glob("*"):
            if f.is_file() and not f.name.endswith(".journal"):
                f.unlink()

    def status(self):
        """`weir status --json`."""
        res = self.run("status", "--json")
        assert res.returncode == 0, f"weir status: {res.stdout}{res.stderr}"
        return json.loads(res.stdout)

    def tail(self, lines=40):
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])
