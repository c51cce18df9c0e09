"""Changes made over NFS break the caching an SMB client holds on the file:
the server sends the SMB client a break notification (MessageId
0xFFFFFFFFFFFFFFFF) without being asked, the client acknowledges it where
the break needs that, and then sees the change.

MS-SMB2 3.3.4.7 (lease breaks), 3.3.4.6 (oplock breaks); what each change
takes away follows MS-FSA 2.1.5.18: a write or a size change takes away
read and write caching (a file changed by someone else cannot be read from
a cache), a rename or a delete takes away handle caching (a client must not
keep a handle open that blocks them).
"""

import os

import pytest
from mptools import H, OPLOCK, R, RH, RWH, W, LeaseBreak, OplockBreak, lease_name
from nfsclient import random_name
from smbprotocol.exceptions import SMBResponseException
from smbprotocol.open import CreateDisposition, RequestedOplockLevel

# SMB 3.1.1 asks for v2 leases, 2.1 for v1 leases (v2 needs SMB 3).
DIALECTS = ["2.1", "3.1.1"]
BREAK_WAIT = 5.0
LEVEL_II = RequestedOplockLevel.SMB2_OPLOCK_LEVEL_II
LEVEL_NONE = RequestedOplockLevel.SMB2_OPLOCK_LEVEL_NONE


def leased(s, name, state, data=b""):
    """Open `name` over SMB with a lease for `state`, which must be granted whole."""
    h = s.open(name, lease=state)
    assert h.oplock == RequestedOplockLevel.SMB2_OPLOCK_LEVEL_LEASE, "no lease granted"
    assert h.lease == state, f"granted lease {lease_name(h.lease)}, asked {lease_name(state)}"
    if s.v2:
        assert h.epoch >= 1, "a v2 lease's epoch counts its state changes (MS-SMB2 3.3.5.9.11)"
    if data:
        h.open.write(data, 0)
    return h


def lease_break(s, h, lacks, what):
    """Wait for the lease break of handle `h`; check it and return it."""
    n = s.notices.wait(BREAK_WAIT, f"lease break after {what}")
    assert isinstance(n, LeaseBreak), f"{what}: {n} instead of a lease break"
    assert n.key == h.key, f"{what}: break of lease key {n.key.hex()}, not {h.key.hex()}"
    assert n.current == h.lease, \
        f"{what}: break from {lease_name(n.current)}, the lease is {lease_name(h.lease)}"
    assert n.new & lacks == 0, \
        f"{what}: lease broken to {lease_name(n.new)}, which keeps some of {lease_name(lacks)}"
    assert n.new & ~n.current == 0, f"{what}: break to {lease_name(n.new)} adds caching"
    # Only breaks away from write or handle caching need an acknowledgment.
    assert n.ack_required == bool(n.current & (W | H)), \
        f"{what}: ACK_REQUIRED {n.ack_required} on a break from {lease_name(n.current)}"
    if s.v2:
        assert n.new_epoch == h.epoch + 1, \
            f"{what}: NewEpoch {n.new_epoch} after epoch {h.epoch} (MS-SMB2 3.3.4.7)"
    else:
        assert n.new_epoch == 0, f"{what}: NewEpoch {n.new_epoch} on a v1 lease"
    return n


def ack(s, n):
    """Acknowledge lease break `n` with the state it offers."""
    if n.ack_required:
        assert s.ack_lease(n.key, n.new) == n.new


@pytest.mark.parametrize("dialect", DIALECTS)
def test_nfs_write_breaks_rwh_lease(smb, nfs, dialect):
    s = smb(dialect)
    name = random_name("lw")
    h = leased(s, name, RWH, b"written over smb")
    fh = nfs.lookup(name)
    s.notices.none_within(0.2)  # the holder's own write and NFS's LOOKUP break nothing

    new = b"NFS DATA " + os.urandom(40_000)
    nfs.write(fh, 0, new)  # does not wait for the SMB client
    n = lease_break(s, h, R | W, "an NFS WRITE")
    ack(s, n)

    size = nfs.getattr(fh)["size"]
    assert size == len(new)
    assert h.read_all(size) == new, "SMB read stale data after the break"
    h.open.close(get_attributes=True)
    assert h.open.end_of_file == size
    s.notices.none_within(0.2)


def test_nfs_write_breaks_every_holder(smb, nfs):
    """Two clients (one on 2.1, one on 3.1.1) share the file with RH leases;
    an NFS WRITE breaks both to none, each on its own connection."""
    a, b = smb("2.1"), smb("3.1.1")
    name = random_name("l2")
    ha = leased(a, name, RH, b"shared over smb")
    hb = leased(b, name, RH)
    fh = nfs.lookup(name)
    a.notices.none_within(0.2)
    b.notices.none_within(0.0)

    new = b"NFS DATA " + os.urandom(10_000)
    nfs.write(fh, 0, new)
    for s, h in ((a, ha), (b, hb)):
        n = lease_break(s, h, R | W, f"an NFS WRITE (SMB {s.dialect})")
        ack(s, n)
        assert h.read_all(len(new)) == new, f"SMB {s.dialect} read stale data after the break"
        h.open.close()


@pytest.mark.parametrize("level", ["batch", "exclusive"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_nfs_write_breaks_oplock(smb, nfs, dialect, level):
    s = smb(dialect)
    name = random_name("ow")
    h = s.open(name, oplock=level)
    assert h.oplock == OPLOCK[level], f"granted oplock {h.oplock:#x}, asked {level}"
    h.open.write(b"written over smb", 0)
    fh = nfs.lookup(name)
    s.notices.none_within(0.2)

    new = b"NFS DATA " + os.urandom(40_000)
    nfs.write(fh, 0, new)
    n = s.notices.wait(BREAK_WAIT, "an oplock break after an NFS WRITE")
    assert isinstance(n, OplockBreak), f"{n} instead of an oplock break"
    assert n.file_id == h.open.file_id, "oplock break for another open"
    assert n.level in (LEVEL_II, LEVEL_NONE), f"oplock broken to level {n.level:#x}"
    # Breaks from exclusive or batch always need an acknowledgment.
    assert s.ack_oplock(n.file_id, n.level) == n.level

    size = nfs.getattr(fh)["size"]
    assert size == len(new)
    assert h.read_all(size) == new, "SMB read stale data after the break"
    h.open.close()
    s.notices.none_within(0.2)


@pytest.mark.parametrize("state", [RH, RWH], ids=lease_name)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_nfs_remove_breaks_handle_lease(smb, nfs, dialect, state):
    s = smb(dialect)
    name = random_name("lr")
    h = leased(s, name, state, b"to be removed")
    s.notices.none_within(0.2)

    nfs.remove(name)
    n = lease_break(s, h, H, "an NFS REMOVE")
    ack(s, n)
    h.open.close()
    assert not nfs.exists(name), "NFS still finds the removed file"
    with pytest.raises(SMBResponseException):
        s.open(name, disposition=CreateDisposition.FILE_OPEN)


@pytest.mark.parametrize("state", [RH, RWH], ids=lease_name)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_nfs_rename_breaks_handle_lease(smb, nfs, dialect, state):
    s = smb(dialect)
    name, new_name = random_name("ln"), random_name("ln")
    data = b"to be renamed " + os.urandom(1000)
    h = leased(s, name, state, data)
    s.notices.none_within(0.2)

    nfs.rename(name, new_name)
    n = lease_break(s, h, H, "an NFS RENAME")
    ack(s, n)
    h.open.close()

    # SMB finds the file under its new name only.
    with pytest.raises(SMBResponseException):
        s.open(name, disposition=CreateDisposition.FILE_OPEN)
    moved = s.open(new_name, disposition=CreateDisposition.FILE_OPEN)
    assert moved.read_all(len(data)) == data
    moved.open.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_nfs_rename_over_leased_file_breaks_handle_lease(smb, nfs, dialect):
    """An NFS RENAME onto the leased file's name deletes that file."""
    s = smb(dialect)
    target, src = random_name("lo"), random_name("lo")
    h = leased(s, target, RH, b"to be replaced")
    fh = nfs.create(src)
    nfs.write(fh, 0, b"replacement")
    s.notices.none_within(0.2)

    nfs.rename(src, target)
    n = lease_break(s, h, H, "an NFS RENAME over the file")
    ack(s, n)
    h.open.close()
    now = s.open(target, disposition=CreateDisposition.FILE_OPEN)
    assert now.read_all(len(b"replacement")) == b"replacement"
    now.open.close()


@pytest.mark.parametrize("state", [R, RH, RWH], ids=lease_name)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_nfs_truncate_breaks_read_lease(smb, nfs, dialect, state):
    s = smb(dialect)
    name = random_name("lt")
    data = os.urandom(20_000)
    h = leased(s, name, state, data)
    fh = nfs.lookup(name)
    s.notices.none_within(0.2)

    nfs.truncate(fh, 1000)
    n = lease_break(s, h, R | W, "an NFS SETATTR of the size")
    ack(s, n)
    assert h.read_all(1000) == data[:1000]
    h.open.close(get_attributes=True)
    assert h.open.end_of_file == nfs.getattr(fh)["size"] == 1000


@pytest.mark.parametrize("dialect", DIALECTS)
def test_nfs_truncate_breaks_level_ii_oplock(smb, nfs, dialect):
    s = smb(dialect)
    name = random_name("ot")
    data = os.urandom(20_000)
    fh = nfs.create(name)
    nfs.write(fh, 0, data)
    h = s.open(name, oplock="II")
    assert h.oplock == LEVEL_II, f"granted oplock {h.oplock:#x}, asked level II"

    nfs.truncate(fh, 1000)
    n = s.notices.wait(BREAK_WAIT, "an oplock break after an NFS SETATTR of the size")
    assert isinstance(n, OplockBreak), f"{n} instead of an oplock break"
    assert (n.file_id, n.level) == (h.open.file_id, LEVEL_NONE), \
        f"level II broken to {n.level:#x}, not none"
    # A break from level II needs no acknowledgment (MS-SMB2 3.3.4.6).
    assert h.read_all(1000) == data[:1000]
    h.open.close(get_attributes=True)
    assert h.open.end_of_file == 1000


def test_directory_gets_no_lease(smb, nfs):
    """Weir does not announce DIRECTORY_LEASING: a directory open asking for
    a lease gets none, so no client caches a listing that an NFS create,
    remove or rename would make stale."""
    s = smb("3.1.1")
    d = random_name("dl")
    dfh = nfs.mkdir(d)
    h = s.open(d, lease=RH, disposition=CreateDisposition.FILE_OPEN, directory=True)
    assert h.lease == 0, f"directory lease {lease_name(h.lease)} granted"
    nfs.create("new", dfh)
    s.notices.none_within(0.2)
    h.open.close()
