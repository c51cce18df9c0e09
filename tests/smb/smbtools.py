"""Clients of the SMB suite: smbprotocol's high-level `smbclient` API bound to
one dialect and one protection level, and Samba's `smbclient` command line."""

import os
import random
import string
import subprocess
import uuid
from dataclasses import dataclass

import smbclient
from smbprotocol import Dialects
from smbprotocol.connection import Connection

DIALECTS = {
    "2.0.2": (Dialects.SMB_2_0_2, "SMB2_02"),
    "2.1": (Dialects.SMB_2_1_0, "SMB2_10"),
    "3.0": (Dialects.SMB_3_0_0, "SMB3_00"),
    "3.0.2": (Dialects.SMB_3_0_2, "SMB3_02"),
    "3.1.1": (Dialects.SMB_3_1_1, "SMB3_11"),
}


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    share: str
    user: str
    password: str


@dataclass(frozen=True)
class Profile:
    """How a client connects: the dialect it allows alone, and its protection:
    "plain" (signs only if the server demands it), "sign" (requires signing),
    "seal" (encrypts every message; SMB 3 only)."""

    dialect: str
    protection: str

    @property
    def id(self):
        return f"{self.dialect}-{self.protection}"


def random_name(prefix="t"):
    return prefix + "-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=10))


class SmbClient:
    """smbprotocol's `smbclient` functions on one connection of its own (a
    private connection cache), negotiated with exactly `profile.dialect`."""

    def __init__(self, target: Target, profile: Profile, password=None):
        self.target = target
        self.profile = profile
        self.cache = {}
        conn = Connection(uuid.uuid4(), target.host, target.port,
                          require_signing=profile.protection in ("sign", "seal"))
        conn.connect(dialect=DIALECTS[profile.dialect][0], timeout=30)
        # The pool finds a connection by "host:port": register ours there.
        self.cache[f"{target.host.lower()}:{target.port}"] = conn
        self.connection = conn
        self.kw = dict(port=target.port, connection_cache=self.cache,
                       require_signing=profile.protection in ("sign", "seal"))
        self.session = smbclient.register_session(
            target.host, username=target.user,
            password=target.password if password is None else password,
            encrypt=True if profile.protection == "seal" else None, **self.kw)

    def path(self, rel=""):
        rel = rel.replace("/", "\\").lstrip("\\")
        base = f"\\\\{self.target.host}\\{self.target.share}"
        return f"{base}\\{rel}" if rel else base

    def __getattr__(self, name):
        """smbclient.NAME(path, ...) with this client's connection: c.stat("a/b")."""
        fn = getattr(smbclient, name)

        def call(rel, *args, **kwargs):
            return fn(self.path(rel), *args, **self.kw, **kwargs)

        return call

    def rename(self, src, dst):
        smbclient.rename(self.path(src), self.path(dst), **self.kw)

    def replace(self, src, dst):
        smbclient.replace(self.path(src), self.path(dst), **self.kw)

    def link(self, src, dst):
        smbclient.link(self.path(src), self.path(dst), **self.kw)

    def tree(self, rel=""):
        """The TreeConnect of the share and the path of `rel` in it, for raw opens."""
        from smbclient._pool import get_smb_tree
        return get_smb_tree(self.path(rel), **self.kw)

    def close(self):
        smbclient.reset_connection_cache(connection_cache=self.cache)


class Cli:
    """Samba's smbclient command line against the target."""

    def __init__(self, target: Target, profile: Profile):
        self.target = target
        self.profile = profile

    def args(self, password=None, share=None):
        t = self.target
        proto = DIALECTS[self.profile.dialect][1]
        protection = {"plain": "off", "sign": "sign", "seal": "encrypt"}[self.profile.protection]
        return ["smbclient", f"//{t.host}/{share or t.share}", "-p", str(t.port),
                "-U", f"{t.user}%{t.password if password is None else password}",
                f"--option=client min protocol={proto}", f"--option=client max protocol={proto}",
                f"--client-protection={protection}"]

    def run(self, commands, cwd=None, password=None, share=None, check=True, timeout=600):
        """Run `-c COMMANDS`; smbclient exits 0 even after some failed
        commands, so every NT_STATUS in its output counts as a failure."""
        res = subprocess.run(self.args(password, share) + ["-c", commands], cwd=cwd,
                             capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, "LC_ALL": "C"})
        out = res.stdout + res.stderr
        failed = "NT_STATUS_" in out or "command not found" in out
        if check and (res.returncode != 0 or failed):
            raise AssertionError(f"smbclient -c {commands!r} failed ({res.returncode}):\n{out}")
        return res.returncode, out
