"""SMB users that are not root (SMB_OTHER_USERS, NAME:UID with the gid the
same; the runners make them): what they may not do to other users' files, and
a handle opened for writing that keeps writing after the file turns read-only
(git's object files). Results are checked in the share's backing directory."""

import dataclasses
import os

import pytest
from smbprotocol.exceptions import SMBOSError, SMBResponseException
from smbprotocol.file_info import FileAttributes
from smbprotocol.header import NtStatus
from smbprotocol.open import (CreateDisposition, CreateOptions, FilePipePrinterAccessMask,
                              ImpersonationLevel, Open, ShareAccess)

from smbtools import SmbClient

RW = FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE
SHARE_ALL = ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE


def other_users():
    spec = os.environ.get("SMB_OTHER_USERS", "")
    users = [(n, int(u)) for n, u in (x.split(":", 1) for x in spec.split(",") if x)]
    if len(users) < 2:
        pytest.fail("SMB_OTHER_USERS must name two users that are not root (NAME:UID,NAME:UID); "
                    "the runners set it")
    return users[:2]


@dataclasses.dataclass
class User:
    name: str
    uid: int
    client: SmbClient


@pytest.fixture
def users(target, profile):
    made = []
    try:
        for name, uid in other_users():
            made.append(User(name, uid, SmbClient(dataclasses.replace(target, user=name), profile)))
        yield made
    finally:
        for u in made:
            u.client.close()


def status_of(exc):
    return getattr(exc, "ntstatus", None) or getattr(exc, "status", None)


def raw_create(client, rel, access, disposition, attributes=FileAttributes.FILE_ATTRIBUTE_NORMAL):
    tree, path = client.tree(rel)
    o = Open(tree, path.split("\\", 3)[3] if path.startswith("\\\\") else path)
    o.create(ImpersonationLevel.Impersonation, access, attributes, SHARE_ALL, disposition,
             CreateOptions.FILE_NON_DIRECTORY_FILE)
    return o


def open_dir(seeded, populate=lambda d: None):
    """A directory anyone may write, made host-side before the server sees it."""

    def fill(d):
        os.chmod(d, 0o777)
        populate(d)

    return seeded(fill)


def test_a_user_cannot_read_another_users_private_file(users, seeded):
    alice, bob = users

    def populate(d):
        (d / "secret").write_bytes(b"alice only")
        os.chown(d / "secret", alice.uid, alice.uid)
        os.chmod(d / "secret", 0o600)

    work = open_dir(seeded, populate)
    with pytest.raises(SMBOSError) as e:
        bob.client.open_file(f"{work.rel}/secret", mode="rb").close()
    assert status_of(e.value) == NtStatus.STATUS_ACCESS_DENIED
    with alice.client.open_file(f"{work.rel}/secret", mode="rb") as f:
        assert f.read() == b"alice only"


def test_a_user_cannot_write_into_a_directory_it_does_not_own(users, seeded):
    alice, bob = users

    def populate(d):
        (d / "theirs").mkdir()
        os.chown(d / "theirs", alice.uid, alice.uid)
        os.chmod(d / "theirs", 0o755)

    work = open_dir(seeded, populate)
    theirs = work.host / "theirs"
    with pytest.raises(SMBOSError) as e:
        with bob.client.open_file(f"{work.rel}/theirs/mine", mode="wb") as f:
            f.write(b"x")
    assert status_of(e.value) == NtStatus.STATUS_ACCESS_DENIED
    with pytest.raises(SMBOSError) as e:
        bob.client.mkdir(f"{work.rel}/theirs/sub")
    assert status_of(e.value) == NtStatus.STATUS_ACCESS_DENIED
    assert os.listdir(theirs) == []
    with alice.client.open_file(f"{work.rel}/theirs/mine", mode="wb") as f:
        f.write(b"mine")
    st = os.stat(theirs / "mine")
    assert st.st_uid == alice.uid and (theirs / "mine").read_bytes() == b"mine"


def test_a_handle_opened_for_writing_writes_after_the_file_turns_read_only(users, seeded):
    from smbclient._os import _set_basic_information
    alice, _ = users
    work = open_dir(seeded)
    c = alice.client
    # Created read-only (as the kernel client does for git's 0444 objects).
    o = raw_create(c, f"{work.rel}/obj", RW, CreateDisposition.FILE_CREATE,
                   FileAttributes.FILE_ATTRIBUTE_READONLY)
    o.write(b"blob", 0)
    o.write(b"-more", 4)
    o.close()
    assert (work.host / "obj").read_bytes() == b"blob-more"
    assert c.stat(f"{work.rel}/obj").st_file_attributes & FileAttributes.FILE_ATTRIBUTE_READONLY
    # Made read-only through another handle while this one is open.
    o = raw_create(c, f"{work.rel}/later", RW, CreateDisposition.FILE_CREATE)
    o.write(b"before", 0)
    _set_basic_information(c.path(f"{work.rel}/later"),
                           file_attributes=FileAttributes.FILE_ATTRIBUTE_READONLY, **c.kw)
    o.write(b"+after", 6)
    o.close()
    assert (work.host / "later").read_bytes() == b"before+after"
    assert os.stat(work.host / "later").st_uid == alice.uid
    # A new open for writing is refused now.
    with pytest.raises((SMBOSError, SMBResponseException)) as e:
        raw_create(c, f"{work.rel}/later", RW, CreateDisposition.FILE_OPEN).close()
    assert status_of(e.value) == NtStatus.STATUS_ACCESS_DENIED
