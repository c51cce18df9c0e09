"""Callers that are not root: the server keeps users apart by the AUTH_SYS identity they
send, and a squashed root is nobody. Also: a handle moved to another export is refused."""

import os

import pytest
from pyNfsClient import const as C

from nfsclient import Session, auth_sys, expect, getattr_ok, lookup_fh, ok, random_name

ALICE, BOB = 2001, 2002


@pytest.fixture
def users(main_export):
    alice = Session(main_export, auth_sys(uid=ALICE, gid=ALICE))
    bob = Session(main_export, auth_sys(uid=BOB, gid=BOB))
    yield alice, bob
    alice.close()
    bob.close()


@pytest.fixture
def shared_dir(work):
    """The work directory, anyone may create in it (it is made 0777)."""
    os.chmod(work.host, 0o777)
    return work


def test_a_user_cannot_read_another_users_private_file(users, shared_dir):
    alice, bob = users
    res = ok(alice.nfs.create(shared_dir.fh, "diary", C.GUARDED, mode=0o600), "CREATE as alice")
    fh = res["resok"]["obj"]["handle"]["data"]
    ok(alice.nfs.write(fh, 0, b"dear diary", C.FILE_SYNC), "WRITE as alice")
    st = os.stat(shared_dir.host / "diary")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (ALICE, ALICE, 0o600)
    bobs = lookup_fh(bob.nfs, shared_dir.fh, "diary")
    expect(bob.nfs.read(bobs, 0, 100), C.NFS3ERR_ACCES, what="READ of alice's 0600 file as bob")
    expect(bob.nfs.write(bobs, 0, b"x", C.FILE_SYNC), C.NFS3ERR_ACCES, what="WRITE as bob")
    expect(bob.nfs.setattr3(bobs, mode=0o644), C.NFS3ERR_PERM, what="SETATTR mode as bob")
    granted = ok(bob.nfs.access(bobs, C.ACCESS3_READ | C.ACCESS3_MODIFY))["resok"]["access"]
    assert granted & (C.ACCESS3_READ | C.ACCESS3_MODIFY) == 0, "ACCESS grants bob alice's file"
    assert ok(alice.nfs.read(fh, 0, 100))["resok"]["data"] == b"dear diary"


def test_a_user_cannot_create_in_a_directory_it_does_not_own(users, shared_dir):
    alice, bob = users
    res = ok(alice.nfs.mkdir(shared_dir.fh, "home", mode=0o755), "MKDIR as alice")
    home = res["resok"]["obj"]["handle"]["data"]
    st = os.stat(shared_dir.host / "home")
    assert (st.st_uid, st.st_mode & 0o7777) == (ALICE, 0o755)
    acces = C.NFS3ERR_ACCES
    expect(bob.nfs.create(home, "intruder", C.GUARDED, mode=0o644), acces, what="CREATE as bob")
    expect(bob.nfs.mkdir(home, "intruder", mode=0o755), acces, what="MKDIR as bob")
    expect(bob.nfs.symlink(home, "intruder", "x"), acces, what="SYMLINK as bob")
    ok(alice.nfs.create(home, "mine", C.GUARDED, mode=0o644), "CREATE as alice")
    expect(bob.nfs.remove(home, "mine"), acces, what="REMOVE as bob")
    assert sorted(os.listdir(shared_dir.host / "home")) == ["mine"]


def test_squashed_root_is_nobody(squash_export, anon_ids):
    anon_uid, anon_gid = anon_ids
    root = Session(squash_export, auth_sys(uid=0, gid=0))
    try:
        name = random_name("nobody")
        d = squash_export.backdir / name
        d.mkdir(mode=0o755)
        (d / "secret").write_bytes(b"root only")
        os.chmod(d / "secret", 0o600)
        dfh = lookup_fh(root.nfs, root.root, name)
        fh = lookup_fh(root.nfs, dfh, "secret")
        expect(root.nfs.read(fh, 0, 10), C.NFS3ERR_ACCES, what="READ of a 0600 root file")
        expect(root.nfs.create(dfh, "f", C.GUARDED, mode=0o644), C.NFS3ERR_ACCES,
               what="CREATE in a 0755 root directory as squashed root")
        res = ok(root.nfs.create(root.root, name + "-f", C.GUARDED, mode=0o644), "CREATE")
        a = getattr_ok(root.nfs, res["resok"]["obj"]["handle"]["data"])
        assert (a["uid"], a["gid"]) == (anon_uid, anon_gid)
        assert os.stat(squash_export.backdir / (name + "-f")).st_uid == anon_uid
    finally:
        root.close()


def test_a_handle_moved_to_another_export_is_refused(ro_export, sess):
    """Weir tags each handle with its export (in the first byte, under the handle's MAC); a
    client that rewrites the tag of a read-only export's handle to name the read-write export
    must not gain write access. Any other server must refuse the rewritten handle too."""
    ro = Session(ro_export, auth_sys())
    try:
        name = random_name("moved")
        (ro_export.backdir / name).write_bytes(b"keep")
        fh = lookup_fh(ro.nfs, ro.root, name)
        for first in {sess.root[0], 0x80, 0x81, 0x82} - {fh[0]}:
            moved = bytes([first]) + fh[1:]
            res = sess.nfs.write(moved, 0, b"X", C.FILE_SYNC)
            assert res["status"] != C.NFS3_OK, f"a handle retagged {first:#x} was written"
        assert (ro_export.backdir / name).read_bytes() == b"keep"
    finally:
        ro.close()
