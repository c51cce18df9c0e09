"""Every NFSv3 procedure (RFC 1813), success and error paths, through pyNfsClient.

Results are checked against the export's backing directory on this host, and
every WCC data block is checked against GETATTRs made right before and after
the call."""

import os
import stat

import pytest
from pyNfsClient import const as C

from nfsclient import (auth_sys, check_post_op, check_wcc, expect, getattr_ok, lookup_fh, ok,
                       readdir_entries, ts)

WCC_DIFFERS = ("ganesha 4.3 sends no pre-op attributes in the WCC data of WRITE and COMMIT")
MKDIR_WCC_DIFFERS = "ganesha 4.3 sends no pre-op attributes in the dir_wcc of MKDIR"
TOOSMALL_DIFFERS = ("ganesha 4.3 answers a READDIR with count=10 with NFS3_OK and a partial "
                    "entry list instead of NFS3ERR_TOOSMALL")
NAME_MAX_DIFFERS = ("ganesha 4.3 reports name_max 1024 in PATHCONF, while its VFS back end (ext4) "
                    "takes 255 bytes at most: a name_max-long CREATE fails with NFS3ERR_NAMETOOLONG")


def create_file(nfs, dir_fh, name, data=b"", mode=0o644):
    res = ok(nfs.create(dir_fh, name, C.UNCHECKED, mode=mode), f"CREATE {name}")
    fh = res["resok"]["obj"]["handle"]["data"]
    if data:
        ok(nfs.write(fh, 0, data, C.FILE_SYNC), f"WRITE {name}")
    return fh


# --- NULL, GETATTR -------------------------------------------------------------------------

def test_null(sess):
    assert sess.nfs.null()["status"] == C.NFS3_OK
    assert sess.mnt.null()["status"] == C.MNT3_OK


def test_getattr_matches_host(sess, seeded):
    def populate(d):
        (d / "host-made").write_bytes(b"0123456789")
        os.chmod(d / "host-made", 0o640)
        os.chown(d / "host-made", 1234, 2345)
    work = seeded(populate)
    path = work.host / "host-made"
    st = os.stat(path)
    a = getattr_ok(sess.nfs, lookup_fh(sess.nfs, work.fh, "host-made"))
    assert a["type"] == C.NF3REG
    assert a["size"] == 10
    assert a["mode"] & 0o7777 == 0o640
    assert (a["uid"], a["gid"]) == (1234, 2345)
    assert a["nlink"] == 1
    assert ts(a["mtime"]) == (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9)
    root = getattr_ok(sess.nfs, sess.root)
    assert root["type"] == C.NF3DIR


# --- SETATTR -------------------------------------------------------------------------------

def test_setattr_mode_owner_size_times(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "f", b"hello world")
    ok(nfs.setattr3(fh, mode=0o600), "SETATTR mode")
    assert stat.S_IMODE(os.stat(work.host / "f").st_mode) == 0o600
    ok(nfs.setattr3(fh, uid=1001, gid=1002), "SETATTR uid/gid")
    st = os.stat(work.host / "f")
    assert (st.st_uid, st.st_gid) == (1001, 1002)
    ok(nfs.setattr3(fh, size=5), "SETATTR size (truncate)")
    assert (work.host / "f").read_bytes() == b"hello"
    ok(nfs.setattr3(fh, size=8), "SETATTR size (extend)")
    assert (work.host / "f").read_bytes() == b"hello\0\0\0"
    ok(nfs.setattr3(fh, mtime=C.SET_TO_CLIENT_TIME, mtime_val=(1_000_000_000, 5000),
                    atime=C.SET_TO_CLIENT_TIME, atime_val=(999_999_999, 0)), "SETATTR times")
    st = os.stat(work.host / "f")
    assert st.st_mtime_ns == 1_000_000_000 * 10**9 + 5000
    assert st.st_atime_ns == 999_999_999 * 10**9
    a = getattr_ok(nfs, fh)
    assert ts(a["mtime"]) == (1_000_000_000, 5000)


def test_setattr_wcc(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "f", b"abc")
    pre = getattr_ok(nfs, fh)
    res = ok(nfs.setattr3(fh, size=1), "SETATTR")
    check_wcc(res["resok"], pre, getattr_ok(nfs, fh), "SETATTR")


def test_setattr_guard(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "f", b"abc")
    ctime = getattr_ok(nfs, fh)["ctime"]
    ok(nfs.setattr3(fh, mode=0o604, guard_ctime=ctime), "SETATTR with a matching guard")
    assert stat.S_IMODE(os.stat(work.host / "f").st_mode) == 0o604
    # ctime changed with that SETATTR: the old one no longer matches
    expect(nfs.setattr3(fh, mode=0o600, guard_ctime=ctime), C.NFS3ERR_NOT_SYNC,
           what="SETATTR with a stale guard")
    assert stat.S_IMODE(os.stat(work.host / "f").st_mode) == 0o604
    wrong = {"seconds": ctime["seconds"] - 100, "nseconds": 0}
    expect(nfs.setattr3(fh, mode=0o600, guard_ctime=wrong), C.NFS3ERR_NOT_SYNC,
           what="SETATTR with a wrong guard")


# --- LOOKUP, ACCESS ------------------------------------------------------------------------

def test_lookup(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "present", b"x")
    res = ok(nfs.lookup(work.fh, "present"), "LOOKUP")["resok"]
    assert getattr_ok(nfs, res["object"]["data"])["fileid"] == getattr_ok(nfs, fh)["fileid"]
    check_post_op(res["obj_attributes"], getattr_ok(nfs, fh), "LOOKUP obj_attributes")
    check_post_op(res["dir_attributes"], getattr_ok(nfs, work.fh), "LOOKUP dir_attributes")
    miss = expect(nfs.lookup(work.fh, "absent"), C.NFS3ERR_NOENT, what="LOOKUP absent")
    check_post_op(miss["resfail"], getattr_ok(nfs, work.fh), "LOOKUP absent dir_attributes")
    expect(nfs.lookup(fh, "x"), C.NFS3ERR_NOTDIR, what="LOOKUP in a file")


def test_lookup_dot_and_dotdot(sess, work):
    nfs = sess.nfs
    here = getattr_ok(nfs, work.fh)["fileid"]
    up = getattr_ok(nfs, sess.root)["fileid"]
    assert getattr_ok(nfs, lookup_fh(nfs, work.fh, "."))["fileid"] == here
    assert getattr_ok(nfs, lookup_fh(nfs, work.fh, ".."))["fileid"] == up


def test_access(sess, work):
    nfs = sess.nfs
    every = (C.ACCESS3_READ | C.ACCESS3_LOOKUP | C.ACCESS3_MODIFY | C.ACCESS3_EXTEND
             | C.ACCESS3_DELETE | C.ACCESS3_EXECUTE)
    fh = create_file(nfs, work.fh, "private", b"x", mode=0o600)
    res = ok(nfs.access(fh, every), "ACCESS as owner")["resok"]
    assert res["access"] & ~every == 0, "ACCESS granted bits that were not asked for"
    want = C.ACCESS3_READ | C.ACCESS3_MODIFY | C.ACCESS3_EXTEND
    assert res["access"] & want == want, f"owner lacks read/write: {res['access']:#x}"
    check_post_op(res["obj_attributes"], getattr_ok(nfs, fh), "ACCESS")
    other = auth_sys(uid=4242, gid=4242)
    res = ok(nfs.access(fh, every, auth=other), "ACCESS as another user")["resok"]
    assert res["access"] & (C.ACCESS3_READ | C.ACCESS3_MODIFY | C.ACCESS3_EXTEND) == 0, \
        f"another user may use a 0600 file: {res['access']:#x}"
    res = ok(nfs.access(work.fh, every), "ACCESS on a directory")["resok"]
    assert res["access"] & C.ACCESS3_LOOKUP


# --- READLINK, SYMLINK ---------------------------------------------------------------------

def test_readlink_of_host_made_symlink(sess, seeded):
    work = seeded(lambda d: os.symlink("/absolute/elsewhere", d / "hostln"))
    fh = lookup_fh(sess.nfs, work.fh, "hostln")
    assert ok(sess.nfs.readlink(fh), "READLINK")["resok"]["data"] == b"/absolute/elsewhere"


def test_symlink_and_readlink(sess, work):
    nfs = sess.nfs
    pre = getattr_ok(nfs, work.fh)
    res = ok(nfs.symlink(work.fh, "ln", "some/where/../target"), "SYMLINK")["resok"]
    check_wcc(res["dir_wcc"], pre, getattr_ok(nfs, work.fh), "SYMLINK dir_wcc")
    assert os.readlink(work.host / "ln") == "some/where/../target"
    fh = res["obj"]["handle"]["data"] if res["obj"]["present"] else lookup_fh(nfs, work.fh, "ln")
    assert getattr_ok(nfs, fh)["type"] == C.NF3LNK
    rl = ok(nfs.readlink(fh), "READLINK")["resok"]
    assert rl["data"] == b"some/where/../target"
    expect(nfs.symlink(work.fh, "ln", "x"), C.NFS3ERR_EXIST, what="SYMLINK over an existing name")
    reg = create_file(nfs, work.fh, "reg")
    expect(nfs.readlink(reg), C.NFS3ERR_INVAL, what="READLINK of a regular file")


# --- READ ----------------------------------------------------------------------------------

def test_read(sess, seeded):
    nfs = sess.nfs
    data = os.urandom(100_000)
    work = seeded(lambda d: (d / "r").write_bytes(data))
    fh = lookup_fh(nfs, work.fh, "r")
    res = ok(nfs.read(fh, 0, 100_000), "READ whole")["resok"]
    assert res["data"] == data and res["count"] == len(data)
    assert res["eof"], "READ to the end of the file must set eof"
    check_post_op(res["file_attributes"], getattr_ok(nfs, fh), "READ file_attributes")
    res = ok(nfs.read(fh, 1000, 5000), "READ middle")["resok"]
    assert res["data"] == data[1000:6000] and res["count"] == 5000
    assert not res["eof"], "READ in the middle set eof"
    res = ok(nfs.read(fh, 99_000, 5000), "READ across EOF")["resok"]
    assert res["data"] == data[99_000:] and res["eof"]
    res = ok(nfs.read(fh, 200_000, 10), "READ past EOF")["resok"]
    assert res["count"] == 0 and res["data"] == b"" and res["eof"]
    empty = create_file(nfs, work.fh, "empty")
    res = ok(nfs.read(empty, 0, 10), "READ of an empty file")["resok"]
    assert res["count"] == 0 and res["eof"]
    expect(nfs.read(work.fh, 0, 10), C.NFS3ERR_ISDIR, C.NFS3ERR_INVAL, what="READ of a directory")


# --- WRITE, COMMIT -------------------------------------------------------------------------

@pytest.mark.parametrize("how", [C.UNSTABLE, C.DATA_SYNC, C.FILE_SYNC],
                         ids=["unstable", "datasync", "filesync"])
def test_write(sess, work, how):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "w")
    block = os.urandom(64 * 1024)
    verfs = set()
    for i in range(4):
        res = ok(nfs.write(fh, i * len(block), block, how), f"WRITE #{i}")["resok"]
        assert res["count"] == len(block), "short write"
        assert res["committed"] >= how, "the server committed less than asked"
        verfs.add(res["verf"])
    assert len(verfs) == 1, "the write verifier changed while the server kept running"
    if how == C.UNSTABLE:
        c = ok(nfs.commit(fh, 0, 0), "COMMIT")["resok"]
        assert c["verf"] in verfs, "COMMIT verifier differs from the WRITE verifier"
    assert (work.host / "w").read_bytes() == block * 4
    # a write in the middle, and one past the end leaving a hole
    ok(nfs.write(fh, 10, b"XYZ", C.FILE_SYNC))
    ok(nfs.write(fh, 4 * len(block) + 100, b"end", C.FILE_SYNC))
    got = (work.host / "w").read_bytes()
    want = bytearray(block * 4)
    want[10:13] = b"XYZ"
    assert got == bytes(want) + b"\0" * 100 + b"end"


@pytest.mark.differs(ganesha=WCC_DIFFERS)
def test_write_wcc(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "w", b"abc")
    pre = getattr_ok(nfs, fh)
    res = ok(nfs.write(fh, 3, b"defg", C.FILE_SYNC))["resok"]
    post = getattr_ok(nfs, fh)
    assert post["size"] == 7
    check_wcc(res["file_wcc"], pre, post, "WRITE file_wcc")


def test_write_errors(sess, work):
    nfs = sess.nfs
    expect(nfs.write(work.fh, 0, b"x", C.FILE_SYNC), C.NFS3ERR_ISDIR, C.NFS3ERR_INVAL,
           what="WRITE to a directory")


@pytest.mark.differs(ganesha=WCC_DIFFERS)
def test_commit_wcc(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "c")
    ok(nfs.write(fh, 0, b"x" * 1000, C.UNSTABLE))
    pre = getattr_ok(nfs, fh)
    res = ok(nfs.commit(fh, 0, 0), "COMMIT")["resok"]
    check_wcc(res["file_wcc"], pre, getattr_ok(nfs, fh), "COMMIT file_wcc")


def test_commit_range_and_errors(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "c")
    w = ok(nfs.write(fh, 0, b"y" * 8192, C.UNSTABLE))["resok"]
    c = ok(nfs.commit(fh, 4096, 0), "COMMIT of a range")["resok"]
    assert c["verf"] == w["verf"]
    assert (work.host / "c").read_bytes() == b"y" * 8192
    expect(nfs.commit(work.fh, 0, 0), C.NFS3_OK, C.NFS3ERR_ISDIR, C.NFS3ERR_INVAL,
           what="COMMIT of a directory")


# --- CREATE --------------------------------------------------------------------------------

def test_create_unchecked(sess, work):
    nfs = sess.nfs
    pre = getattr_ok(nfs, work.fh)
    res = ok(nfs.create(work.fh, "u", C.UNCHECKED, mode=0o640), "CREATE unchecked")["resok"]
    check_wcc(res["dir_wcc"], pre, getattr_ok(nfs, work.fh), "CREATE dir_wcc")
    assert res["obj"]["present"], "CREATE returned no handle"
    fh = res["obj"]["handle"]["data"]
    check_post_op(res["obj_attributes"], getattr_ok(nfs, fh), "CREATE obj_attributes")
    st = os.stat(work.host / "u")
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    (work.host / "u").write_bytes(b"12345")
    # UNCHECKED over an existing file succeeds; size 0 in the attributes truncates it
    res = ok(nfs.create(work.fh, "u", C.UNCHECKED, size=0), "CREATE unchecked, existing")["resok"]
    assert (work.host / "u").read_bytes() == b""
    assert getattr_ok(nfs, res["obj"]["handle"]["data"])["fileid"] == getattr_ok(nfs, fh)["fileid"]


def test_create_guarded(sess, work):
    nfs = sess.nfs
    ok(nfs.create(work.fh, "g", C.GUARDED, mode=0o600), "CREATE guarded")
    (work.host / "g").write_bytes(b"keep")
    pre = getattr_ok(nfs, work.fh)
    res = expect(nfs.create(work.fh, "g", C.GUARDED, mode=0o600), C.NFS3ERR_EXIST,
                 what="CREATE guarded, existing")
    assert (work.host / "g").read_bytes() == b"keep"
    wcc = res["resfail"]
    if wcc["after"]["present"]:
        assert wcc["after"]["attributes"]["fileid"] == pre["fileid"]


def test_create_exclusive(sess, work):
    nfs = sess.nfs
    res = ok(nfs.create(work.fh, "x", C.EXCLUSIVE, verf=b"verf-one"), "CREATE exclusive")
    fh = res["resok"]["obj"]["handle"]["data"]
    fileid = getattr_ok(nfs, fh)["fileid"]
    again = ok(nfs.create(work.fh, "x", C.EXCLUSIVE, verf=b"verf-one"),
               "CREATE exclusive retried with the same verifier")["resok"]
    assert again["obj"]["present"]
    assert getattr_ok(nfs, again["obj"]["handle"]["data"])["fileid"] == fileid
    expect(nfs.create(work.fh, "x", C.EXCLUSIVE, verf=b"verf-two"), C.NFS3ERR_EXIST,
           what="CREATE exclusive with another verifier")
    (work.host / "plain").write_bytes(b"")
    expect(nfs.create(work.fh, "plain", C.EXCLUSIVE, verf=b"verf-one"), C.NFS3ERR_EXIST,
           what="CREATE exclusive over a file made otherwise")
    # the client then sets the real attributes
    ok(nfs.setattr3(fh, mode=0o644, atime=C.SET_TO_SERVER_TIME, mtime=C.SET_TO_SERVER_TIME))
    assert stat.S_IMODE(os.stat(work.host / "x").st_mode) == 0o644


def test_create_errors(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "file")
    expect(nfs.create(fh, "x", C.UNCHECKED), C.NFS3ERR_NOTDIR, what="CREATE in a file")
    ok(nfs.mkdir(work.fh, "d", mode=0o755))
    expect(nfs.create(work.fh, "d", C.GUARDED), C.NFS3ERR_EXIST, what="CREATE guarded over a dir")
    expect(nfs.create(work.fh, "d", C.UNCHECKED), C.NFS3ERR_EXIST, C.NFS3ERR_ISDIR,
           what="CREATE unchecked over a dir")


# --- MKDIR, MKNOD --------------------------------------------------------------------------

def test_mkdir(sess, work):
    nfs = sess.nfs
    pre = getattr_ok(nfs, work.fh)
    res = ok(nfs.mkdir(work.fh, "sub", mode=0o750), "MKDIR")["resok"]
    post = getattr_ok(nfs, work.fh)
    assert post["nlink"] == pre["nlink"] + 1, "parent nlink did not grow"
    st = os.stat(work.host / "sub")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750
    fh = res["obj"]["handle"]["data"]
    check_post_op(res["obj_attributes"], getattr_ok(nfs, fh), "MKDIR obj_attributes")
    expect(nfs.mkdir(work.fh, "sub", mode=0o750), C.NFS3ERR_EXIST, what="MKDIR existing")
    f = create_file(nfs, work.fh, "f")
    expect(nfs.mkdir(f, "x", mode=0o755), C.NFS3ERR_NOTDIR, what="MKDIR in a file")


@pytest.mark.differs(ganesha=MKDIR_WCC_DIFFERS)
def test_mkdir_wcc(sess, work):
    nfs = sess.nfs
    pre = getattr_ok(nfs, work.fh)
    res = ok(nfs.mkdir(work.fh, "sub", mode=0o750), "MKDIR")["resok"]
    check_wcc(res["dir_wcc"], pre, getattr_ok(nfs, work.fh), "MKDIR dir_wcc")


def test_mknod_fifo(sess, work):
    nfs = sess.nfs
    pre = getattr_ok(nfs, work.fh)
    res = ok(nfs.mknod(work.fh, "fifo", C.NF3FIFO, mode=0o644), "MKNOD fifo")["resok"]
    check_wcc(res["dir_wcc"], pre, getattr_ok(nfs, work.fh), "MKNOD dir_wcc")
    assert stat.S_ISFIFO(os.stat(work.host / "fifo").st_mode)
    fh = res["obj"]["handle"]["data"] if res["obj"]["present"] else lookup_fh(nfs, work.fh, "fifo")
    assert getattr_ok(nfs, fh)["type"] == C.NF3FIFO
    expect(nfs.mknod(work.fh, "fifo", C.NF3FIFO, mode=0o644), C.NFS3ERR_EXIST,
           what="MKNOD existing")


# --- REMOVE, RMDIR, stale handles -----------------------------------------------------------

def test_remove(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "gone", b"bye")
    pre = getattr_ok(nfs, work.fh)
    res = ok(nfs.remove(work.fh, "gone"), "REMOVE")
    check_wcc(res["resok"], pre, getattr_ok(nfs, work.fh), "REMOVE dir_wcc")
    assert not (work.host / "gone").exists()
    expect(nfs.getattr(fh), C.NFS3ERR_STALE, what="GETATTR of a removed file")
    expect(nfs.read(fh, 0, 10), C.NFS3ERR_STALE, what="READ of a removed file")
    expect(nfs.remove(work.fh, "gone"), C.NFS3ERR_NOENT, what="REMOVE absent")
    ok(nfs.mkdir(work.fh, "dir", mode=0o755))
    expect(nfs.remove(work.fh, "dir"), C.NFS3ERR_ISDIR, C.NFS3ERR_PERM, C.NFS3ERR_ACCES,
           what="REMOVE of a directory")
    assert (work.host / "dir").is_dir()


def test_remove_keeps_other_links(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "a", b"data")
    ok(nfs.link(fh, work.fh, "b"), "LINK")
    ok(nfs.remove(work.fh, "a"))
    a = getattr_ok(nfs, fh)
    assert a["nlink"] == 1
    assert ok(nfs.read(fh, 0, 10))["resok"]["data"] == b"data"


def test_rmdir(sess, work):
    nfs = sess.nfs
    d = ok(nfs.mkdir(work.fh, "d", mode=0o755))["resok"]["obj"]["handle"]["data"]
    create_file(nfs, d, "inside")
    expect(nfs.rmdir(work.fh, "d"), C.NFS3ERR_NOTEMPTY, C.NFS3ERR_EXIST, what="RMDIR not empty")
    ok(nfs.remove(d, "inside"))
    pre = getattr_ok(nfs, work.fh)
    res = ok(nfs.rmdir(work.fh, "d"), "RMDIR")
    post = getattr_ok(nfs, work.fh)
    check_wcc(res["resok"], pre, post, "RMDIR dir_wcc")
    assert post["nlink"] == pre["nlink"] - 1
    assert not (work.host / "d").exists()
    expect(nfs.getattr(d), C.NFS3ERR_STALE, what="GETATTR of a removed directory")
    expect(nfs.lookup(d, "x"), C.NFS3ERR_STALE, what="LOOKUP in a removed directory")
    expect(nfs.create(d, "x", C.UNCHECKED), C.NFS3ERR_STALE, what="CREATE in a removed directory")
    expect(nfs.rmdir(work.fh, "d"), C.NFS3ERR_NOENT, what="RMDIR absent")
    create_file(nfs, work.fh, "f")
    expect(nfs.rmdir(work.fh, "f"), C.NFS3ERR_NOTDIR, what="RMDIR of a file")


# --- RENAME, LINK --------------------------------------------------------------------------

def test_rename_in_directory(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "old", b"content")
    pre = getattr_ok(nfs, work.fh)
    res = ok(nfs.rename(work.fh, "old", work.fh, "new"), "RENAME")["res"]
    post = getattr_ok(nfs, work.fh)
    check_wcc(res["fromdir_wcc"], pre, post, "RENAME fromdir_wcc")
    check_wcc(res["todir_wcc"], pre, post, "RENAME todir_wcc")
    assert not (work.host / "old").exists()
    assert (work.host / "new").read_bytes() == b"content"
    assert getattr_ok(nfs, fh)["size"] == 7, "handle not valid after RENAME"
    expect(nfs.lookup(work.fh, "old"), C.NFS3ERR_NOENT)
    assert getattr_ok(nfs, lookup_fh(nfs, work.fh, "new"))["fileid"] == getattr_ok(nfs, fh)["fileid"]


def test_rename_over_existing_file(sess, work):
    nfs = sess.nfs
    src = create_file(nfs, work.fh, "src", b"new data")
    dst = create_file(nfs, work.fh, "dst", b"old")
    ok(nfs.rename(work.fh, "src", work.fh, "dst"), "RENAME over a file")
    assert (work.host / "dst").read_bytes() == b"new data"
    assert not (work.host / "src").exists()
    assert getattr_ok(nfs, lookup_fh(nfs, work.fh, "dst"))["fileid"] == getattr_ok(nfs, src)["fileid"]
    expect(nfs.getattr(dst), C.NFS3ERR_STALE, what="GETATTR of the replaced file")


def test_rename_across_directories(sess, work):
    nfs = sess.nfs
    a = ok(nfs.mkdir(work.fh, "a", mode=0o755))["resok"]["obj"]["handle"]["data"]
    b = ok(nfs.mkdir(work.fh, "b", mode=0o755))["resok"]["obj"]["handle"]["data"]
    fh = create_file(nfs, a, "f", b"moving")
    pre_a, pre_b = getattr_ok(nfs, a), getattr_ok(nfs, b)
    res = ok(nfs.rename(a, "f", b, "g"), "RENAME across directories")["res"]
    check_wcc(res["fromdir_wcc"], pre_a, getattr_ok(nfs, a), "RENAME fromdir_wcc")
    check_wcc(res["todir_wcc"], pre_b, getattr_ok(nfs, b), "RENAME todir_wcc")
    assert (work.host / "b" / "g").read_bytes() == b"moving"
    assert not (work.host / "a" / "f").exists()
    assert getattr_ok(nfs, fh)["size"] == 6
    # a directory moves too, and its ".." follows
    sub = ok(nfs.mkdir(a, "sub", mode=0o755))["resok"]["obj"]["handle"]["data"]
    ok(nfs.rename(a, "sub", b, "sub"), "RENAME a directory across directories")
    assert getattr_ok(nfs, lookup_fh(nfs, sub, ".."))["fileid"] == getattr_ok(nfs, b)["fileid"]


def test_rename_errors(sess, work):
    nfs = sess.nfs
    expect(nfs.rename(work.fh, "absent", work.fh, "x"), C.NFS3ERR_NOENT, what="RENAME absent")
    create_file(nfs, work.fh, "f")
    d = ok(nfs.mkdir(work.fh, "d", mode=0o755))["resok"]["obj"]["handle"]["data"]
    create_file(nfs, d, "inside")
    ok(nfs.mkdir(work.fh, "e", mode=0o755))
    expect(nfs.rename(work.fh, "e", work.fh, "d"), C.NFS3ERR_NOTEMPTY, C.NFS3ERR_EXIST,
           what="RENAME a directory over a non-empty one")
    expect(nfs.rename(work.fh, "f", work.fh, "d"), C.NFS3ERR_ISDIR, C.NFS3ERR_EXIST,
           what="RENAME a file over a directory")
    expect(nfs.rename(work.fh, "e", work.fh, "f"), C.NFS3ERR_NOTDIR, C.NFS3ERR_EXIST,
           what="RENAME a directory over a file")
    expect(nfs.rename(work.fh, "d", d, "loop"), C.NFS3ERR_INVAL,
           what="RENAME a directory into itself")
    assert (work.host / "d" / "inside").exists() and (work.host / "f").is_file()


def test_link(sess, work):
    nfs = sess.nfs
    fh = create_file(nfs, work.fh, "orig", b"shared")
    pre = getattr_ok(nfs, work.fh)
    res = ok(nfs.link(fh, work.fh, "alias"), "LINK")["res"]
    post_dir, post_file = getattr_ok(nfs, work.fh), getattr_ok(nfs, fh)
    check_wcc(res["linkdir_wcc"], pre, post_dir, "LINK linkdir_wcc")
    check_post_op(res["file_attributes"], post_file, "LINK file_attributes")
    assert post_file["nlink"] == 2
    assert os.stat(work.host / "alias").st_ino == os.stat(work.host / "orig").st_ino
    expect(nfs.link(fh, work.fh, "alias"), C.NFS3ERR_EXIST, what="LINK over an existing name")
    expect(nfs.link(fh, fh, "x"), C.NFS3ERR_NOTDIR, what="LINK into a file")


# --- READDIR, READDIRPLUS ------------------------------------------------------------------

def _fill(path, names):
    for n in names:
        (path / n).write_bytes(n.encode())


def test_readdir_small(sess, seeded):
    nfs = sess.nfs
    names = {f"e{i:03d}" for i in range(40)}
    work = seeded(lambda d: (_fill(d, names), (d / "subdir").mkdir()))
    names.add("subdir")
    res = ok(nfs.readdir(work.fh, count=65536), "READDIR")["resok"]
    assert res["reply"]["eof"]
    entries = readdir_entries(res)
    got = [e["name"].decode() for e in entries]
    assert sorted(n for n in got if n not in (".", "..")) == sorted(names)
    fileids = {e["name"].decode(): e["fileid"] for e in entries}
    assert fileids["e007"] == getattr_ok(nfs, lookup_fh(nfs, work.fh, "e007"))["fileid"]
    check_post_op(res["dir_attributes"], getattr_ok(nfs, work.fh), "READDIR dir_attributes")


def test_readdirplus_small(sess, seeded):
    nfs = sess.nfs
    names = {f"p{i:03d}" for i in range(30)}
    work = seeded(lambda d: _fill(d, names))
    res = ok(nfs.readdirplus(work.fh, dircount=65536, maxcount=65536), "READDIRPLUS")["resok"]
    assert res["reply"]["eof"]
    seen = set()
    for e in readdir_entries(res):
        name = e["name"].decode()
        if name in (".", ".."):
            continue
        seen.add(name)
        assert e["name_attributes"]["present"], f"READDIRPLUS: no attributes for {name}"
        a = e["name_attributes"]["attributes"]
        assert a["size"] == len(name) and a["fileid"] == e["fileid"]
        assert e["name_handle"]["present"], f"READDIRPLUS: no handle for {name}"
        fh = e["name_handle"]["handle"]["data"]
        assert ok(nfs.read(fh, 0, 100))["resok"]["data"] == name.encode()
    assert seen == names


def test_readdir_errors(sess, work):
    nfs = sess.nfs
    f = create_file(nfs, work.fh, "f")
    expect(nfs.readdir(f), C.NFS3ERR_NOTDIR, what="READDIR of a file")
    expect(nfs.readdirplus(f), C.NFS3ERR_NOTDIR, what="READDIRPLUS of a file")


@pytest.mark.differs(ganesha=TOOSMALL_DIFFERS)
def test_readdir_count_too_small(sess, seeded):
    work = seeded(lambda d: (d / "some-entry").write_bytes(b""))
    expect(sess.nfs.readdir(work.fh, count=10), C.NFS3ERR_TOOSMALL, what="READDIR count=10")


# --- FSSTAT, FSINFO, PATHCONF --------------------------------------------------------------

def test_fsstat(sess):
    r = ok(sess.nfs.fsstat(sess.root), "FSSTAT")["resok"]
    assert r["tbytes"] > 0 and r["fbytes"] <= r["tbytes"] and r["abytes"] <= r["tbytes"]
    assert r["ffiles"] <= r["tfiles"] and r["afiles"] <= r["tfiles"]
    check_post_op(r["obj_attributes"], getattr_ok(sess.nfs, sess.root), "FSSTAT")


def test_fsinfo(sess):
    r = ok(sess.nfs.fsinfo(sess.root), "FSINFO")["resok"]
    assert 0 < r["rtpref"] <= r["rtmax"] and 0 < r["wtpref"] <= r["wtmax"]
    assert r["rtmax"] >= 4096 and r["wtmax"] >= 4096
    assert r["dtpref"] > 0 and r["maxfilesize"] >= 2**32
    assert r["properties"] & 0x0008, "FSF3_CANSETTIME not set"
    assert r["properties"] & 0x0001, "FSF3_LINK not set"
    assert r["properties"] & 0x0002, "FSF3_SYMLINK not set"


def test_pathconf_and_name_too_long(sess, work):
    nfs = sess.nfs
    r = ok(nfs.pathconf(sess.root), "PATHCONF")["resok"]
    assert r["linkmax"] >= 1 and r["name_max"] >= 255
    assert r["no_trunc"], "a name past name_max would be truncated"
    assert r["case_preserving"] and not r["case_insensitive"]
    long_name = "n" * (r["name_max"] + 1)
    expect(nfs.lookup(work.fh, long_name), C.NFS3ERR_NAMETOOLONG, what="LOOKUP of a too long name")
    expect(nfs.create(work.fh, long_name, C.UNCHECKED), C.NFS3ERR_NAMETOOLONG,
           what="CREATE of a too long name")
    expect(nfs.mkdir(work.fh, long_name, mode=0o755), C.NFS3ERR_NAMETOOLONG,
           what="MKDIR of a too long name")


@pytest.mark.differs(ganesha=NAME_MAX_DIFFERS)
def test_name_max_long_name(sess, work):
    nfs = sess.nfs
    name_max = ok(nfs.pathconf(sess.root), "PATHCONF")["resok"]["name_max"]
    ok(nfs.create(work.fh, "n" * name_max, C.UNCHECKED), f"CREATE of a {name_max}-byte name")
    assert (work.host / ("n" * name_max)).exists()
