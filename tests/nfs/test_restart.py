"""Across a server restart (WEIR_NFS_RESTART): the write verifier changes, so clients
resend uncommitted writes, and file handles stay valid."""

import os
import subprocess

import pytest
from pyNfsClient import const as C

from nfsclient import Session, auth_sys, getattr_ok, ok, random_name


def test_write_verifier_changes_after_restart(main_export):
    command = os.environ.get("WEIR_NFS_RESTART", "")
    if not command:
        pytest.fail("WEIR_NFS_RESTART is not set: no way to restart the server")
    s = Session(main_export, auth_sys())
    name = random_name("restart")
    fh = ok(s.nfs.create(s.root, name, C.UNCHECKED, mode=0o644))["resok"]["obj"]["handle"]["data"]
    w1 = ok(s.nfs.write(fh, 0, b"before restart", C.UNSTABLE))["resok"]["verf"]
    c1 = ok(s.nfs.commit(fh, 0, 0))["resok"]["verf"]
    assert c1 == w1
    s.close()

    p = subprocess.run(command, shell=True, capture_output=True, timeout=120)
    assert p.returncode == 0, f"restart hook failed: {p.stderr.decode(errors='replace')}"

    s = Session(main_export, auth_sys())
    try:
        a = getattr_ok(s.nfs, fh)  # handles survive restarts
        assert a["size"] == len(b"before restart")
        w2 = ok(s.nfs.write(fh, 0, b"after", C.UNSTABLE))["resok"]["verf"]
        c2 = ok(s.nfs.commit(fh, 0, 0))["resok"]["verf"]
        assert w2 == c2
        assert w2 != w1, "the write verifier did not change across a restart"
        assert (main_export.backdir / name).read_bytes() == b"aftere restart"
    finally:
        s.close()
