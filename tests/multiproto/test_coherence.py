"""One file through both front ends: data written over one protocol is read
over the other at once (no close, flush or COMMIT first), and size and
modification time agree."""

import datetime
import os
import time

import pytest
from nfsclient import random_name
from pyNfsClient import const as C

DIALECTS = ["2.1", "3.1.1"]
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def nfs_mtime(attrs):
    """NFS mtime as smbprotocol shows a FILETIME: a datetime cut to microseconds."""
    t = attrs["mtime"]
    return EPOCH + datetime.timedelta(microseconds=t["seconds"] * 1_000_000 + t["nseconds"] // 1000)


def nfs_ns(attrs):
    t = attrs["mtime"]
    return t["seconds"] * 1_000_000_000 + t["nseconds"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_written_over_smb_read_over_nfs(smb, nfs, dialect):
    s = smb(dialect)
    name = random_name("s2n")
    data = os.urandom(150_000)
    h = s.open(name)
    h.open.write(data[:100_000], 0)
    h.open.write(data[100_000:], 100_000)

    # The SMB handle is still open and nothing was flushed.
    fh = nfs.lookup(name)
    assert nfs.getattr(fh)["size"] == len(data)
    assert nfs.read_all(fh, len(data)) == data

    # Overwrite part of it: NFS sees the new bytes and a newer mtime.
    before = nfs.getattr(fh)
    time.sleep(0.01)
    h.open.write(b"smb-again", 10)
    data = data[:10] + b"smb-again" + data[19:]
    after = nfs.getattr(fh)
    assert nfs.read_all(fh, len(data)) == data
    assert nfs_ns(after) > nfs_ns(before), "an SMB WRITE left the mtime NFS sees unchanged"

    # Size and mtime agree between SMB's close and NFS's GETATTR.
    h.open.close(get_attributes=True)
    attrs = nfs.getattr(fh)
    assert h.open.end_of_file == attrs["size"] == len(data)
    assert h.open.last_write_time == nfs_mtime(attrs)


@pytest.mark.parametrize("stable", [C.UNSTABLE, C.FILE_SYNC], ids=["unstable", "file_sync"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_written_over_nfs_read_over_smb(smb, nfs, dialect, stable):
    s = smb(dialect)
    name = random_name("n2s")
    data = os.urandom(150_000)
    fh = nfs.create(name)
    nfs.write(fh, 0, data[:100_000], stable)
    nfs.write(fh, 100_000, data[100_000:], stable)

    # No COMMIT: SMB reads what NFS wrote, with the size and mtime NFS reports.
    h = s.open(name)
    attrs = nfs.getattr(fh)
    assert h.open.end_of_file == attrs["size"] == len(data)
    assert h.open.last_write_time == nfs_mtime(attrs)
    assert h.read_all(len(data)) == data

    # A later NFS write shows through the same SMB handle at once.
    time.sleep(0.01)
    nfs.write(fh, len(data), b"tail", stable)
    data += b"tail"
    assert h.read_all(len(data)) == data
    h.open.close(get_attributes=True)
    attrs2 = nfs.getattr(fh)
    assert nfs_ns(attrs2) > nfs_ns(attrs), "an NFS WRITE left the mtime unchanged"
    assert h.open.end_of_file == attrs2["size"] == len(data)
    assert h.open.last_write_time == nfs_mtime(attrs2)
