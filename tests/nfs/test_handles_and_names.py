"""Garbage file handles and invalid names, on every procedure that takes them."""

import os

import pytest
from pyNfsClient import const as C

from nfsclient import expect, getattr_ok, ok

SLASH_DIFFERS = ("ganesha 4.3 (FSAL_VFS) resolves a name with '/' as a relative path in LOOKUP, "
                 "CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME and LINK (NFS3ERR_NOENT only "
                 "when that path does not exist); Linux knfsd answers NFS3ERR_ACCES")

GARBAGE = {
    "random32": bytes(range(7, 39)),
    "ones64": b"\xff" * 64,
    "short": b"\x01\x02\x03",
    "empty": b"",
}


@pytest.fixture(params=sorted(GARBAGE), ids=sorted(GARBAGE))
def bad(request):
    return GARBAGE[request.param]


def test_bad_handles(sess, bad):
    nfs = sess.nfs
    calls = {
        "GETATTR": lambda: nfs.getattr(bad),
        "SETATTR": lambda: nfs.setattr3(bad, mode=0o600),
        "LOOKUP": lambda: nfs.lookup(bad, "x"),
        "ACCESS": lambda: nfs.access(bad, C.ACCESS3_READ),
        "READLINK": lambda: nfs.readlink(bad),
        "READ": lambda: nfs.read(bad, 0, 10),
        "WRITE": lambda: nfs.write(bad, 0, b"x", C.FILE_SYNC),
        "CREATE": lambda: nfs.create(bad, "x", C.UNCHECKED),
        "MKDIR": lambda: nfs.mkdir(bad, "x", mode=0o755),
        "SYMLINK": lambda: nfs.symlink(bad, "x", "y"),
        "MKNOD": lambda: nfs.mknod(bad, "x", C.NF3FIFO, mode=0o644),
        "REMOVE": lambda: nfs.remove(bad, "x"),
        "RMDIR": lambda: nfs.rmdir(bad, "x"),
        "RENAME(from)": lambda: nfs.rename(bad, "x", sess.root, "y"),
        "RENAME(to)": lambda: nfs.rename(sess.root, "absent-name", bad, "y"),
        "LINK(file)": lambda: nfs.link(bad, sess.root, "x"),
        "LINK(dir)": lambda: nfs.link(sess.root, bad, "x"),
        "READDIR": lambda: nfs.readdir(bad),
        "READDIRPLUS": lambda: nfs.readdirplus(bad),
        "FSSTAT": lambda: nfs.fsstat(bad),
        "FSINFO": lambda: nfs.fsinfo(bad),
        "PATHCONF": lambda: nfs.pathconf(bad),
        "COMMIT": lambda: nfs.commit(bad, 0, 0),
    }
    wrong = {}
    for name, call in calls.items():
        status = call()["status"]
        if status != C.NFS3ERR_BADHANDLE:
            wrong[name] = status
    assert not wrong, f"not NFS3ERR_BADHANDLE (10001) for a garbage handle: {wrong}"
    getattr_ok(nfs, sess.root)  # and the server is still well


@pytest.mark.differs(ganesha=SLASH_DIFFERS)
def test_names_with_slash(sess, seeded):
    """RFC 1813 names no status for a name with '/' (filename3 is one path component); a '/'
    can never be part of a POSIX name, so a server must refuse it (NFS3ERR_ACCES, as Linux
    knfsd does, or NFS3ERR_INVAL) and never resolve it as a path."""
    nfs = sess.nfs
    work = seeded(lambda d: ((d / "a").mkdir(), (d / "a" / "b").write_bytes(b"inner")))
    refused = (C.NFS3ERR_ACCES, C.NFS3ERR_INVAL)
    expect(nfs.lookup(work.fh, "a/b"), *refused, what="LOOKUP a/b")
    expect(nfs.create(work.fh, "a/c", C.UNCHECKED), *refused, what="CREATE a/c")
    expect(nfs.mkdir(work.fh, "a/d", mode=0o755), *refused, what="MKDIR a/d")
    expect(nfs.symlink(work.fh, "a/e", "x"), *refused, what="SYMLINK a/e")
    expect(nfs.remove(work.fh, "a/b"), *refused, what="REMOVE a/b")
    assert sorted(os.listdir(work.host / "a")) == ["b"]


@pytest.mark.differs(ganesha=SLASH_DIFFERS)
def test_names_with_slash_never_resolve(sess, seeded):
    """Whatever the status, a name with '/' must not reach another directory."""
    nfs = sess.nfs
    work = seeded(lambda d: ((d / "a").mkdir(), (d / "a" / "b").write_bytes(b"inner")))
    for status in (nfs.lookup(work.fh, "a/b")["status"],
                   nfs.remove(work.fh, "a/b")["status"],
                   nfs.create(work.fh, "a/c", C.GUARDED)["status"],
                   nfs.mkdir(work.fh, "a/d", mode=0o755)["status"]):
        assert status != C.NFS3_OK
    assert sorted(os.listdir(work.host / "a")) == ["b"]
    assert sorted(os.listdir(work.host)) == ["a"]


def test_dot_names_refused_for_create(sess, work):
    nfs = sess.nfs
    for name in (".", ".."):
        assert nfs.create(work.fh, name, C.GUARDED)["status"] != C.NFS3_OK
        assert nfs.mkdir(work.fh, name, mode=0o755)["status"] != C.NFS3_OK
        assert nfs.remove(work.fh, name)["status"] != C.NFS3_OK
    expect(nfs.lookup(work.fh, ""), C.NFS3ERR_NOENT, C.NFS3ERR_ACCES, C.NFS3ERR_INVAL,
           what="LOOKUP of an empty name")
    assert os.listdir(work.host) == []


@pytest.mark.crashes(ganesha="ganesha 4.3 aborts (EDEADLK on the entry's content lock) when a "
                     "LOOKUP name with '/' leads back to the directory itself")
def test_slash_name_leading_back_to_the_directory(sess, work):
    nfs = sess.nfs
    status = nfs.lookup(work.fh, "../" + work.name)["status"]
    assert status != C.NFS3_OK, "a name with '/' was resolved as a path"
    getattr_ok(nfs, work.fh)  # the server survived
