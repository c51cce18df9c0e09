"""Round trips with libnfs-utils (nfs-cp, nfs-cat, nfs-ls), checked byte for byte host-side."""

import hashlib
import os
import shutil
import subprocess

import pytest

from nfsclient import random_name

TOOLS = ("nfs-cp", "nfs-cat", "nfs-ls")


@pytest.fixture(scope="module", autouse=True)
def tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{missing} not installed (Debian package libnfs-utils)")


def run(*args, timeout=300):
    p = subprocess.run(args, capture_output=True, timeout=timeout)
    assert p.returncode == 0, f"{args} exited {p.returncode}: {p.stderr.decode(errors='replace')}"
    return p.stdout


@pytest.fixture
def hostdir(main_export):
    """A directory made host-side, with its path relative to the export."""
    name = random_name("libnfs")
    path = main_export.backdir / name
    path.mkdir()
    os.chmod(path, 0o777)
    return name, path


@pytest.mark.parametrize("size", [0, 1, 4097, 50 * 1024 * 1024], ids=["0B", "1B", "4097B", "50MiB"])
def test_cp_in_and_out(main_export, hostdir, tmp_path, size):
    rel, path = hostdir
    data = os.urandom(size)
    src = tmp_path / "src"
    src.write_bytes(data)
    run("nfs-cp", str(src), main_export.url(f"{rel}/copied"))
    on_host = (path / "copied").read_bytes()
    assert len(on_host) == size
    assert hashlib.sha256(on_host).digest() == hashlib.sha256(data).digest()
    back = tmp_path / "back"
    run("nfs-cp", main_export.url(f"{rel}/copied"), str(back))
    assert back.read_bytes() == data


def test_cp_out_of_host_made_file(main_export, hostdir, tmp_path):
    rel, path = hostdir
    data = os.urandom(3 * 1024 * 1024 + 17)
    (path / "made-on-host").write_bytes(data)
    run("nfs-cp", main_export.url(f"{rel}/made-on-host"), str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data


def test_cp_onto_an_existing_file(main_export, hostdir, tmp_path):
    """libnfs 4.0's nfs-cp creates its target exclusively: the server must answer EXIST and
    leave the file alone."""
    rel, path = hostdir
    old = b"a much longer old content " * 100
    (path / "f").write_bytes(old)
    (tmp_path / "new").write_bytes(b"short")
    p = subprocess.run(["nfs-cp", str(tmp_path / "new"), main_export.url(f"{rel}/f")],
                       capture_output=True, timeout=60)
    assert p.returncode != 0 and b"EXIST" in p.stderr, p.stderr
    assert (path / "f").read_bytes() == old


def test_cat(main_export, hostdir):
    rel, path = hostdir
    text = b"".join(b"line %d\n" % i for i in range(20000))
    (path / "t.txt").write_bytes(text)
    assert run("nfs-cat", main_export.url(f"{rel}/t.txt")) == text
    (path / "empty").write_bytes(b"")
    assert run("nfs-cat", main_export.url(f"{rel}/empty")) == b""


def test_cat_missing_fails(main_export, hostdir):
    rel, _ = hostdir
    p = subprocess.run(["nfs-cat", main_export.url(f"{rel}/absent")], capture_output=True, timeout=60)
    assert p.returncode != 0


def parse_ls(out):
    """nfs-ls lines: mode nlink uid gid size name."""
    rows = {}
    for line in out.decode().splitlines():
        if not line.strip():
            continue
        mode, _nlink, _uid, _gid, size, name = line.split(None, 5)
        rows[name] = (mode, int(size))
    return rows


def test_ls_of_a_populated_tree(main_export, hostdir):
    rel, path = hostdir
    want = {}
    for d in ("", "sub", "sub/deeper", "other"):
        (path / d).mkdir(exist_ok=True)
        if d:
            want[d] = ("d", None)
    for i, f in enumerate(["a.txt", "sub/b.bin", "sub/deeper/c", "other/d", "other/e e"]):
        (path / f).write_bytes(b"z" * (i * 1000))
        want[f] = ("-", i * 1000)
    os.symlink("a.txt", path / "link")
    want["link"] = ("l", None)
    got = parse_ls(run("nfs-ls", "-R", main_export.url(rel)))
    got = {k: v for k, v in got.items() if k not in (".", "..") and not k.endswith(("/.", "/.."))}
    assert set(got) == set(want), f"nfs-ls -R names differ: {sorted(set(got) ^ set(want))}"
    for name, (kind, size) in want.items():
        assert got[name][0][0] == kind, f"{name}: {got[name][0]}"
        if size is not None:
            assert got[name][1] == size, f"{name}: size {got[name][1]} != {size}"
    flat = parse_ls(run("nfs-ls", main_export.url(rel)))
    flat = {k for k in flat if k not in (".", "..")}
    assert flat == {"a.txt", "sub", "other", "link"}
