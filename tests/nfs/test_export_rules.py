"""Export rules: a read-only export refuses changes with NFS3ERR_ROFS; root squash maps
AUTH_SYS uid 0 to the anonymous uid."""

import os
import stat

import pytest
from pyNfsClient import const as C

from nfsclient import Session, auth_sys, expect, getattr_ok, lookup_fh, ok, random_name


@pytest.fixture
def ro(ro_export):
    s = Session(ro_export, auth_sys())
    yield s
    s.close()


def test_read_only_export_refuses_changes(ro, ro_export):
    name = random_name("ro")
    d = ro_export.backdir / name
    d.mkdir()
    (d / "f").write_bytes(b"read me")
    (d / "sub").mkdir()
    nfs = ro.nfs
    dfh = lookup_fh(nfs, ro.root, name)
    fh = lookup_fh(nfs, dfh, "f")
    assert ok(nfs.read(fh, 0, 100), "READ on a read-only export")["resok"]["data"] == b"read me"
    rofs = C.NFS3ERR_ROFS
    expect(nfs.write(fh, 0, b"x", C.FILE_SYNC), rofs, what="WRITE")
    expect(nfs.setattr3(fh, mode=0o600), rofs, what="SETATTR")
    expect(nfs.create(dfh, "new", C.UNCHECKED), rofs, what="CREATE")
    expect(nfs.mkdir(dfh, "newdir", mode=0o755), rofs, what="MKDIR")
    expect(nfs.symlink(dfh, "ln", "f"), rofs, what="SYMLINK")
    expect(nfs.mknod(dfh, "fifo", C.NF3FIFO, mode=0o644), rofs, what="MKNOD")
    expect(nfs.remove(dfh, "f"), rofs, what="REMOVE")
    expect(nfs.rmdir(dfh, "sub"), rofs, what="RMDIR")
    expect(nfs.rename(dfh, "f", dfh, "g"), rofs, what="RENAME")
    expect(nfs.link(fh, dfh, "hard"), rofs, what="LINK")
    assert sorted(os.listdir(d)) == ["f", "sub"]
    assert (d / "f").read_bytes() == b"read me"
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == 0o644
    granted = ok(nfs.access(fh, C.ACCESS3_READ | C.ACCESS3_MODIFY | C.ACCESS3_EXTEND))["resok"]
    assert granted["access"] & (C.ACCESS3_MODIFY | C.ACCESS3_EXTEND) == 0, \
        "ACCESS grants modify on a read-only export"


def test_root_squash(squash_export, anon_ids):
    anon_uid, anon_gid = anon_ids
    root = Session(squash_export, auth_sys(uid=0, gid=0))
    user = Session(squash_export, auth_sys(uid=1234, gid=1234))
    try:
        name = random_name("sq")
        res = ok(root.nfs.create(root.root, name, C.UNCHECKED, mode=0o644), "CREATE as root")
        a = getattr_ok(root.nfs, res["resok"]["obj"]["handle"]["data"])
        assert (a["uid"], a["gid"]) == (anon_uid, anon_gid), "uid 0 was not squashed"
        st = os.stat(squash_export.backdir / name)
        assert (st.st_uid, st.st_gid) == (anon_uid, anon_gid)
        # other users keep their own ids
        res = ok(user.nfs.create(user.root, name + "-u", C.UNCHECKED, mode=0o644), "CREATE as 1234")
        st = os.stat(squash_export.backdir / (name + "-u"))
        assert (st.st_uid, st.st_gid) == (1234, 1234)
        # a squashed root cannot read a 0600 root-owned file
        secret_dir = squash_export.backdir / (name + "-d")
        secret_dir.mkdir()
        (secret_dir / "secret").write_bytes(b"secret")
        os.chmod(secret_dir / "secret", 0o600)
        fh = lookup_fh(root.nfs, lookup_fh(root.nfs, root.root, name + "-d"), "secret")
        expect(root.nfs.read(fh, 0, 10), C.NFS3ERR_ACCES, C.NFS3ERR_PERM,
               what="READ of a root-only file as squashed root")
        expect(root.nfs.setattr3(fh, uid=0, gid=0, mode=0o644), C.NFS3ERR_PERM, C.NFS3ERR_ACCES,
               what="SETATTR of a root-owned file as squashed root")
    finally:
        root.close()
        user.close()
