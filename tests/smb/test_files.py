"""File and directory operations through Samba's smbclient CLI and through
smbprotocol, once per client profile (dialect x protection). Every result is
checked in the share's backing directory on this host."""

import hashlib
import os
import time

import pytest
from smbprotocol.exceptions import SMBOSError, SMBResponseException
from smbprotocol.file_info import FileAttributes
from smbprotocol.header import NtStatus
from smbprotocol.open import (CreateDisposition, CreateOptions, FilePipePrinterAccessMask,
                              ImpersonationLevel, Open, ShareAccess)

from smbtools import SmbClient

MIB = 1 << 20
# MS-ERREF values smbprotocol has no names for.
STATUS_FILE_LOCK_CONFLICT = 0xC0000054
STATUS_LOCK_NOT_GRANTED = 0xC0000055


def ntstatus(exc):
    return getattr(exc, "ntstatus", None) or getattr(exc, "status", None)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def pattern(size, seed):
    """Deterministic bytes that differ at every 4 KiB (a misplaced block shows)."""
    out = bytearray()
    block = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{block}".encode()).digest() * 128
        block += 1
    return bytes(out[:size])


# --- round trips ---------------------------------------------------------------------------

def test_cli_put_get_ls_mkdir_rename_del_rmdir(cli, work, tmp_path):
    data = pattern(300_000, "cli")
    (tmp_path / "up.bin").write_bytes(data)
    d = work.rel
    cli.run(f"mkdir {d}\\sub; put up.bin {d}\\sub\\a.bin", cwd=tmp_path)
    assert (work.host / "sub" / "a.bin").read_bytes() == data
    _, out = cli.run(f"ls {d}\\sub\\*", cwd=tmp_path)
    assert "a.bin" in out and "300000" in out
    cli.run(f"rename {d}\\sub\\a.bin {d}\\sub\\b.bin; get {d}\\sub\\b.bin down.bin", cwd=tmp_path)
    assert not (work.host / "sub" / "a.bin").exists()
    assert (work.host / "sub" / "b.bin").read_bytes() == data
    assert (tmp_path / "down.bin").read_bytes() == data
    cli.run(f"del {d}\\sub\\b.bin; rmdir {d}\\sub", cwd=tmp_path)
    assert not (work.host / "sub").exists()


def test_cli_errors_reported(cli, work, tmp_path):
    _, out = cli.run(f"get {work.rel}\\missing.bin x", cwd=tmp_path, check=False)
    assert "NT_STATUS_OBJECT_NAME_NOT_FOUND" in out
    _, out = cli.run(f"rmdir {work.rel}\\nodir", cwd=tmp_path, check=False)
    assert "NT_STATUS_OBJECT_NAME_NOT_FOUND" in out


def test_smbprotocol_round_trip(client, work):
    d = work.rel
    client.mkdir(f"{d}/sub")
    with client.open_file(f"{d}/sub/a.txt", mode="wb") as f:
        f.write(b"hello over smb\n")
    assert (work.host / "sub" / "a.txt").read_bytes() == b"hello over smb\n"
    assert sorted(client.listdir(f"{d}/sub")) == ["a.txt"]
    client.rename(f"{d}/sub/a.txt", f"{d}/sub/b.txt")
    assert sorted(os.listdir(work.host / "sub")) == ["b.txt"]
    with client.open_file(f"{d}/sub/b.txt", mode="rb") as f:
        assert f.read() == b"hello over smb\n"
    client.rename(f"{d}/sub", f"{d}/moved")
    assert (work.host / "moved" / "b.txt").is_file()
    with pytest.raises(SMBOSError) as e:
        client.rmdir(f"{d}/moved")
    assert ntstatus(e.value) == NtStatus.STATUS_DIRECTORY_NOT_EMPTY
    client.remove(f"{d}/moved/b.txt")
    client.rmdir(f"{d}/moved")
    assert os.listdir(work.host) == []
    with pytest.raises(SMBOSError) as e:
        client.stat(f"{d}/moved")
    assert ntstatus(e.value) == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND


def test_host_changes_visible(client, seeded):
    def populate(p):
        (p / "made-on-host.txt").write_bytes(b"x" * 1234)
        (p / "dir").mkdir()
    w = seeded(populate)
    st = client.stat(f"{w.rel}/made-on-host.txt")
    assert st.st_size == 1234
    assert sorted(client.listdir(w.rel)) == ["dir", "made-on-host.txt"]


# --- large files ---------------------------------------------------------------------------

def test_large_file_cli(cli, work, tmp_path, large_mib):
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for i in range(large_mib):
            f.write(pattern(MIB, f"big{i}"))
    want = sha256_file(src)
    cli.run(f"put big.bin {work.rel}\\big.bin; get {work.rel}\\big.bin back.bin", cwd=tmp_path)
    assert os.path.getsize(work.host / "big.bin") == large_mib * MIB
    assert sha256_file(work.host / "big.bin") == want
    assert sha256_file(tmp_path / "back.bin") == want


def test_large_file_smbprotocol(client, work, large_mib):
    # Python signs and seals slowly: the full size for 3.1.1 and 2.0.2, an
    # eighth of it (still many credits' worth) for the dialects between.
    if client.profile.dialect not in ("3.1.1", "2.0.2"):
        large_mib = max(1, large_mib // 8)
    h = hashlib.sha256()
    with client.open_file(f"{work.rel}/big.bin", mode="wb") as f:
        for i in range(large_mib):
            block = pattern(MIB, f"p{i}")
            h.update(block)
            f.write(block)
    want = h.hexdigest()
    assert sha256_file(work.host / "big.bin") == want
    h = hashlib.sha256()
    with client.open_file(f"{work.rel}/big.bin", mode="rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    assert h.hexdigest() == want
    # A read at an odd offset across block boundaries.
    with client.open_file(f"{work.rel}/big.bin", mode="rb") as f:
        f.seek(3 * MIB - 5)
        got = f.read(10)
    with open(work.host / "big.bin", "rb") as f:
        f.seek(3 * MIB - 5)
        assert got == f.read(10)


# --- overwrite, truncate, append -----------------------------------------------------------

def test_overwrite_truncate_append(client, work):
    p = f"{work.rel}/f.bin"
    host = work.host / "f.bin"
    with client.open_file(p, mode="wb") as f:
        f.write(pattern(100_000, "a"))
    assert host.read_bytes() == pattern(100_000, "a")
    # "w" truncates: the new content is shorter.
    with client.open_file(p, mode="wb") as f:
        f.write(b"short")
    assert host.read_bytes() == b"short"
    # Overwrite in the middle, keeping the rest.
    with client.open_file(p, mode="r+b") as f:
        f.seek(1)
        f.write(b"HO")
    assert host.read_bytes() == b"sHOrt"
    # Append.
    with client.open_file(p, mode="ab") as f:
        f.write(b"+tail")
    assert host.read_bytes() == b"sHOrt+tail"
    # Set-info end of file: shrink, then grow with zeros.
    client.truncate(p, 3)
    assert host.read_bytes() == b"sHO"
    client.truncate(p, 70_000)
    assert host.read_bytes() == b"sHO" + bytes(70_000 - 3)
    assert client.stat(p).st_size == 70_000
    # A write past the end leaves a hole of zeros.
    with client.open_file(p, mode="r+b") as f:
        f.seek(100_000)
        f.write(b"end")
    data = host.read_bytes()
    assert len(data) == 100_003 and data[70_000:100_000] == bytes(30_000) and data[-3:] == b"end"


def test_cli_overwrite(cli, work, tmp_path):
    (tmp_path / "one").write_bytes(b"first version, long\n")
    (tmp_path / "two").write_bytes(b"second\n")
    cli.run(f"put one {work.rel}\\f", cwd=tmp_path)
    assert (work.host / "f").read_bytes() == b"first version, long\n"
    cli.run(f"put two {work.rel}\\f", cwd=tmp_path)
    assert (work.host / "f").read_bytes() == b"second\n"


def test_cli_put_over_a_file_removed_on_the_host(cli, work, tmp_path):
    """A name still cached for a file deleted behind the server's back is
    written again as a new file, not refused."""
    (tmp_path / "one").write_bytes(b"first\n")
    (tmp_path / "two").write_bytes(b"second\n")
    cli.run(f"put one {work.rel}\\f", cwd=tmp_path)
    (work.host / "f").unlink()
    cli.run(f"put two {work.rel}\\f", cwd=tmp_path)
    assert (work.host / "f").read_bytes() == b"second\n"


# --- directories ---------------------------------------------------------------------------

LISTING_FILES = 1500


def test_listing_many_entries(client, cli, seeded, tmp_path):
    names = {f"entry-{i:05d}-{'x' * (i % 40)}.dat" for i in range(LISTING_FILES)}

    def populate(p):
        for n in names:
            (p / n).write_bytes(b"")
        (p / "subdir").mkdir()
    w = seeded(populate)
    got = client.listdir(w.rel)
    assert len(got) == len(set(got)), "duplicate names in the listing"
    assert set(got) == names | {"subdir"}
    entries = {e.name: e for e in client.scandir(w.rel)}
    assert entries["subdir"].is_dir() and not entries["entry-00001-x.dat"].is_dir()
    _, out = cli.run(f"ls {w.rel}\\*", cwd=tmp_path)
    listed = [ln.split()[0] for ln in out.splitlines() if ln.strip().startswith("entry-")]
    assert set(listed) == names
    # A pattern the server filters.
    assert sorted(client.listdir(w.rel, search_pattern="entry-0000*")) == sorted(
        n for n in names if n.startswith("entry-0000"))


def test_create_many_then_list(client, work):
    for i in range(300):
        with client.open_file(f"{work.rel}/n{i}", mode="wb") as f:
            f.write(str(i).encode())
    assert set(client.listdir(work.rel)) == {f"n{i}" for i in range(300)}
    assert set(os.listdir(work.host)) == {f"n{i}" for i in range(300)}


# --- timestamps and set-info ---------------------------------------------------------------

def test_timestamps_set_and_read(client, work):
    p = f"{work.rel}/t.txt"
    with client.open_file(p, mode="wb") as f:
        f.write(b"times")
    atime, mtime = 1_600_000_000.5, 1_500_000_000.25
    client.utime(p, times=(atime, mtime))
    st = os.stat(work.host / "t.txt")
    assert abs(st.st_mtime - mtime) < 1e-6
    assert abs(st.st_atime - atime) < 1e-6
    sst = client.stat(p)
    assert abs(sst.st_mtime - mtime) < 1e-6
    assert abs(sst.st_atime - atime) < 1e-6
    # A write after an explicit time: the server moves mtime on (or at close).
    with client.open_file(p, mode="ab") as f:
        f.write(b"!")
    assert os.stat(work.host / "t.txt").st_mtime > time.time() - 600


def test_host_times_seen(client, seeded):
    def populate(p):
        (p / "f").write_bytes(b"1")
        os.utime(p / "f", (1_400_000_000, 1_300_000_000))
    w = seeded(populate)
    st = client.stat(f"{w.rel}/f")
    assert int(st.st_mtime) == 1_300_000_000
    assert int(st.st_atime) == 1_400_000_000


def test_readonly_attribute(client, work):
    from smbclient._os import _set_basic_information
    p = f"{work.rel}/ro.txt"
    with client.open_file(p, mode="wb") as f:
        f.write(b"ro")
    _set_basic_information(client.path(p), file_attributes=FileAttributes.FILE_ATTRIBUTE_READONLY,
                           **client.kw)
    assert client.stat(p).st_file_attributes & FileAttributes.FILE_ATTRIBUTE_READONLY
    with pytest.raises(SMBOSError) as e:
        client.open_file(p, mode="ab").close()
    assert ntstatus(e.value) == NtStatus.STATUS_ACCESS_DENIED
    _set_basic_information(client.path(p), file_attributes=FileAttributes.FILE_ATTRIBUTE_NORMAL,
                           **client.kw)
    assert not client.stat(p).st_file_attributes & FileAttributes.FILE_ATTRIBUTE_READONLY
    with client.open_file(p, mode="ab") as f:
        f.write(b"+w")
    assert (work.host / "ro.txt").read_bytes() == b"ro+w"


# --- hard links and rename over ------------------------------------------------------------

def test_hard_link(client, work):
    with client.open_file(f"{work.rel}/orig", mode="wb") as f:
        f.write(b"linked")
    client.link(f"{work.rel}/orig", f"{work.rel}/alias")
    a, b = os.stat(work.host / "orig"), os.stat(work.host / "alias")
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert client.stat(f"{work.rel}/alias").st_nlink == 2
    with client.open_file(f"{work.rel}/alias", mode="ab") as f:
        f.write(b"+more")
    assert (work.host / "orig").read_bytes() == b"linked+more"
    client.remove(f"{work.rel}/orig")
    assert os.stat(work.host / "alias").st_nlink == 1
    # A link onto an existing name is refused.
    with client.open_file(f"{work.rel}/other", mode="wb") as f:
        f.write(b"o")
    with pytest.raises(SMBOSError) as e:
        client.link(f"{work.rel}/alias", f"{work.rel}/other")
    assert ntstatus(e.value) == NtStatus.STATUS_OBJECT_NAME_COLLISION


def test_rename_over(client, work):
    for name, data in (("src", b"new"), ("dst", b"old contents")):
        with client.open_file(f"{work.rel}/{name}", mode="wb") as f:
            f.write(data)
    with pytest.raises(SMBOSError) as e:
        client.rename(f"{work.rel}/src", f"{work.rel}/dst")
    assert ntstatus(e.value) == NtStatus.STATUS_OBJECT_NAME_COLLISION
    assert (work.host / "dst").read_bytes() == b"old contents"
    client.replace(f"{work.rel}/src", f"{work.rel}/dst")
    assert sorted(os.listdir(work.host)) == ["dst"]
    assert (work.host / "dst").read_bytes() == b"new"


# --- opens: delete on close, sharing -------------------------------------------------------

def raw_open(client, rel, access, disposition, share=ShareAccess.FILE_SHARE_READ
             | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE, options=0):
    tree, path = client.tree(rel)
    o = Open(tree, path.split("\\", 3)[3] if path.startswith("\\\\") else path)
    o.create(ImpersonationLevel.Impersonation, access, FileAttributes.FILE_ATTRIBUTE_NORMAL,
             share, disposition, options | CreateOptions.FILE_NON_DIRECTORY_FILE)
    return o


RW = (FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE)


def test_delete_on_close(client, work):
    o = raw_open(client, f"{work.rel}/doc", RW | FilePipePrinterAccessMask.DELETE,
                 CreateDisposition.FILE_CREATE, options=CreateOptions.FILE_DELETE_ON_CLOSE)
    o.write(b"temporary")
    assert (work.host / "doc").exists(), "the file exists while it is open"
    assert o.read(0, 9) == b"temporary"
    o.close()
    assert not (work.host / "doc").exists(), "delete-on-close left the file"
    # An existing file opened with delete-on-close goes at close too.
    with client.open_file(f"{work.rel}/existing", mode="wb") as f:
        f.write(b"x")
    o = raw_open(client, f"{work.rel}/existing", FilePipePrinterAccessMask.DELETE
                 | FilePipePrinterAccessMask.GENERIC_READ, CreateDisposition.FILE_OPEN,
                 options=CreateOptions.FILE_DELETE_ON_CLOSE)
    o.close()
    assert not (work.host / "existing").exists()


def test_sharing_violation(client, target, profile, work):
    with client.open_file(f"{work.rel}/shared", mode="wb") as f:
        f.write(b"data")
    other = SmbClient(target, profile)
    try:
        exclusive = raw_open(client, f"{work.rel}/shared", RW, CreateDisposition.FILE_OPEN, share=0)
        for c in (client, other):
            with pytest.raises(SMBResponseException) as e:
                raw_open(c, f"{work.rel}/shared", FilePipePrinterAccessMask.GENERIC_READ,
                         CreateDisposition.FILE_OPEN)
            assert e.value.status == NtStatus.STATUS_SHARING_VIOLATION
        exclusive.close()
        # Share read only: a second reader gets in, a writer does not.
        reader = raw_open(client, f"{work.rel}/shared", FilePipePrinterAccessMask.GENERIC_READ,
                          CreateDisposition.FILE_OPEN, share=ShareAccess.FILE_SHARE_READ)
        second = raw_open(other, f"{work.rel}/shared", FilePipePrinterAccessMask.GENERIC_READ,
                          CreateDisposition.FILE_OPEN, share=ShareAccess.FILE_SHARE_READ)
        assert second.read(0, 4) == b"data"
        with pytest.raises(SMBResponseException) as e:
            raw_open(other, f"{work.rel}/shared", RW, CreateDisposition.FILE_OPEN,
                     share=ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE)
        assert e.value.status == NtStatus.STATUS_SHARING_VIOLATION
        second.close()
        reader.close()
        # With every open closed, a writer gets in.
        raw_open(other, f"{work.rel}/shared", RW, CreateDisposition.FILE_OPEN, share=0).close()
    finally:
        other.close()


def test_byte_range_locks_two_sessions(client, target, profile, work):
    from smbprotocol.open import SMB2LockElement, LockFlags

    def lock(o, offset, length, flags):
        el = SMB2LockElement()
        el["offset"] = offset
        el["length"] = length
        el["flags"] = flags
        o.lock([el])

    excl = LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    shared = LockFlags.SMB2_LOCKFLAG_SHARED_LOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    with client.open_file(f"{work.rel}/locked", mode="wb") as f:
        f.write(bytes(1000))
    other = SmbClient(target, profile)
    try:
        a = raw_open(client, f"{work.rel}/locked", RW, CreateDisposition.FILE_OPEN)
        b = raw_open(other, f"{work.rel}/locked", RW, CreateDisposition.FILE_OPEN)
        lock(a, 0, 100, excl)
        with pytest.raises(SMBResponseException) as e:
            lock(b, 50, 10, excl)
        assert e.value.status in (STATUS_LOCK_NOT_GRANTED, STATUS_FILE_LOCK_CONFLICT)
        with pytest.raises(SMBResponseException) as e:
            lock(b, 99, 10, shared)
        lock(b, 200, 100, excl)  # a range nobody holds
        # I/O into a range another open holds exclusively is refused.
        with pytest.raises(SMBResponseException) as e:
            b.write(b"intrude", 10)
        assert e.value.status == STATUS_FILE_LOCK_CONFLICT
        with pytest.raises(SMBResponseException) as e:
            b.read(10, 5)
        assert e.value.status == STATUS_FILE_LOCK_CONFLICT
        a.write(b"owner", 10)  # the holder writes
        lock(a, 0, 100, LockFlags.SMB2_LOCKFLAG_UNLOCK)
        lock(b, 50, 10, excl)  # free now
        lock(b, 50, 10, LockFlags.SMB2_LOCKFLAG_UNLOCK)
        # Shared locks coexist; an exclusive one over them does not.
        lock(a, 500, 10, shared)
        lock(b, 500, 10, shared)
        with pytest.raises(SMBResponseException):
            lock(b, 505, 1, excl)
        b.close()  # closing releases b's locks
        lock(a, 200, 100, excl)
        a.close()
        assert (work.host / "locked").read_bytes()[10:15] == b"owner"
    finally:
        other.close()


# --- times of a new file ------------------------------------------------------------------

def test_create_time_reported(client, work):
    with client.open_file(f"{work.rel}/c", mode="wb") as f:
        f.write(b"c")
    st = client.stat(f"{work.rel}/c")
    assert abs(st.st_mtime - time.time()) < 600
    assert st.st_chgtime > 0 and st.st_ctime > 0
