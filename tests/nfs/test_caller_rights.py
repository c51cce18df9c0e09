"""Non-root callers over NFSv3: what they may and may not do to other users'
files, and the owner's right to write a file it created read-only (knfsd's
owner override, which git's read-only object files need). Results are checked
in the export's backing directory."""

import os

from pyNfsClient import const as C

from nfsclient import auth_sys, expect, ok

ALICE = auth_sys(uid=2101, gid=2101)
BOB = auth_sys(uid=2102, gid=2102)


def create(nfs, dir_fh, name, mode, auth):
    res = ok(nfs.create(dir_fh, name, C.GUARDED, mode=mode, auth=auth), f"CREATE {name}")
    return res["resok"]["obj"]["handle"]["data"]


def test_owner_writes_a_file_it_created_read_only(sess, work):
    nfs = sess.nfs
    fh = create(nfs, work.fh, "obj", 0o444, ALICE)
    res = ok(nfs.write(fh, 0, b"blob", C.FILE_SYNC, auth=ALICE), "WRITE by the owner")
    assert res["resok"]["count"] == 4
    st = os.stat(work.host / "obj")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (2101, 2101, 0o444)
    assert (work.host / "obj").read_bytes() == b"blob"
    expect(nfs.write(fh, 0, b"x", C.FILE_SYNC, auth=BOB), C.NFS3ERR_ACCES,
           what="WRITE by another user")
    assert (work.host / "obj").read_bytes() == b"blob"


def test_another_users_private_file_stays_closed(sess, seeded):
    def populate(d):
        (d / "secret").write_bytes(b"secret")
        os.chown(d / "secret", 2101, 2101)
        os.chmod(d / "secret", 0o600)

    work = seeded(populate)
    nfs = sess.nfs
    fh = ok(nfs.lookup(work.fh, "secret", auth=BOB), "LOOKUP")["resok"]["object"]["data"]
    expect(nfs.read(fh, 0, 100, auth=BOB), C.NFS3ERR_ACCES, what="READ of a 0600 file")
    expect(nfs.write(fh, 0, b"x", C.FILE_SYNC, auth=BOB), C.NFS3ERR_ACCES,
           what="WRITE of a 0600 file")
    assert ok(nfs.read(fh, 0, 100, auth=ALICE), "READ by the owner")["resok"]["data"] == b"secret"
    assert (work.host / "secret").read_bytes() == b"secret"


def test_a_directory_of_another_user_refuses_new_names(sess, seeded):
    def populate(d):
        (d / "theirs").mkdir()
        os.chown(d / "theirs", 2101, 2101)
        os.chmod(d / "theirs", 0o755)
        (d / "theirs" / "f").write_bytes(b"f")

    work = seeded(populate)
    nfs = sess.nfs
    dfh = ok(nfs.lookup(work.fh, "theirs", auth=BOB), "LOOKUP")["resok"]["object"]["data"]
    expect(nfs.create(dfh, "mine", C.GUARDED, mode=0o644, auth=BOB), C.NFS3ERR_ACCES,
           what="CREATE in another user's 0755 directory")
    expect(nfs.mkdir(dfh, "sub", mode=0o755, auth=BOB), C.NFS3ERR_ACCES,
           what="MKDIR in another user's 0755 directory")
    expect(nfs.remove(dfh, "f", auth=BOB), C.NFS3ERR_ACCES,
           what="REMOVE in another user's 0755 directory")
    assert sorted(os.listdir(work.host / "theirs")) == ["f"]
    # Its owner may.
    create(nfs, dfh, "mine", 0o644, ALICE)
    assert os.stat(work.host / "theirs" / "mine").st_uid == 2101
