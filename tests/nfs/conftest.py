"""Configuration and fixtures of the NFSv3 conformance suite.

The server under test is named by environment variables (the runner scripts
`run-against-ganesha.sh` and `run-against-weir.sh` set them):

  WEIR_NFS_HOST      server address (default 127.0.0.1)
  WEIR_NFS_PORT      NFS port (required)
  WEIR_MOUNT_PORT    MOUNT port (default: WEIR_NFS_PORT)
  WEIR_NFS_EXPORT    export path (default /export)
  WEIR_NFS_BACKDIR   the export's backing directory on this host (required)
  WEIR_NFS_SERVER    which server this is (weir, ganesha): selects the known
                     differences of KNOWN_DIFFERENCES.md, which run as strict xfails
  WEIR_NFS_RESTART   a shell command that restarts the server on the same data
  WEIR_NFS_RO_EXPORT, WEIR_NFS_RO_PORT, WEIR_MOUNT_RO_PORT, WEIR_NFS_RO_BACKDIR
                     a read-only export (ports and backing dir default to the main ones)
  WEIR_NFS_SQUASH_EXPORT, WEIR_NFS_SQUASH_PORT, WEIR_MOUNT_SQUASH_PORT,
  WEIR_NFS_SQUASH_BACKDIR, WEIR_NFS_ANON_UID, WEIR_NFS_ANON_GID
                     a root-squashing export, whose root directory anyone may write
                     (anonymous ids default to 65534)
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.setrecursionlimit(20000)  # pyNfsClient unpacks directory entry lists recursively

from nfsclient import Session, auth_sys, random_name  # noqa: E402
from pyNfsClient import const as C  # noqa: E402


@dataclass
class Export:
    host: str
    nfs_port: int
    mount_port: int
    path: str
    backdir: Path | None

    def url(self, rel="", **extra):
        rel = rel.lstrip("/")
        query = f"version=3&nfsport={self.nfs_port}&mountport={self.mount_port}"
        for k, v in extra.items():
            query += f"&{k}={v}"
        return f"nfs://{self.host}{self.path.rstrip('/')}/{rel}?{query}"


def _env(name, default=None):
    value = os.environ.get(name, "")
    return value if value else default


def _export(prefix_nfs, prefix_mount, export_var, backdir_var, main=None):
    path = _env(export_var)
    if path is None:
        return None
    nfs_port = int(_env(prefix_nfs, main.nfs_port if main else 0))
    mount_port = int(_env(prefix_mount, main.mount_port if main else nfs_port))
    backdir = _env(backdir_var, str(main.backdir) if main and main.backdir else None)
    return Export(main.host if main else _env("WEIR_NFS_HOST", "127.0.0.1"), nfs_port, mount_port,
                  path, Path(backdir) if backdir else None)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "differs(**servers): a documented difference of a server (KNOWN_DIFFERENCES.md); "
        "against that server the test runs as a strict xfail")
    config.addinivalue_line(
        "markers",
        "crashes(**servers): the test crashes that server (KNOWN_DIFFERENCES.md); skipped there")
    if not _env("WEIR_NFS_PORT"):
        pytest.exit("WEIR_NFS_PORT is not set: run tests/nfs/run-against-weir.sh or "
                    "run-against-ganesha.sh, or set the WEIR_NFS_* variables (see conftest.py)",
                    returncode=4)


def pytest_collection_modifyitems(config, items):
    server = _env("WEIR_NFS_SERVER", "weir")
    for item in items:
        for mark in item.iter_markers("differs"):
            if server in mark.kwargs:
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"known difference of {server}: "
                                                  f"{mark.kwargs[server]}"))
        for mark in item.iter_markers("crashes"):
            if server in mark.kwargs:
                item.add_marker(pytest.mark.skip(reason=f"crashes {server}: {mark.kwargs[server]}"))


@pytest.fixture(scope="session")
def main_export():
    os.environ.setdefault("WEIR_NFS_EXPORT", "/export")
    exp = _export("WEIR_NFS_PORT", "WEIR_MOUNT_PORT", "WEIR_NFS_EXPORT", "WEIR_NFS_BACKDIR")
    if exp.backdir is None or not exp.backdir.is_dir():
        pytest.fail("WEIR_NFS_BACKDIR must name the export's backing directory on this host")
    return exp


@pytest.fixture(scope="session")
def ro_export(main_export):
    exp = _export("WEIR_NFS_RO_PORT", "WEIR_MOUNT_RO_PORT", "WEIR_NFS_RO_EXPORT",
                  "WEIR_NFS_RO_BACKDIR", main_export)
    if exp is None:
        pytest.fail("WEIR_NFS_RO_EXPORT is not set: no read-only export to test")
    return exp


@pytest.fixture(scope="session")
def squash_export(main_export):
    exp = _export("WEIR_NFS_SQUASH_PORT", "WEIR_MOUNT_SQUASH_PORT", "WEIR_NFS_SQUASH_EXPORT",
                  "WEIR_NFS_SQUASH_BACKDIR", main_export)
    if exp is None:
        pytest.fail("WEIR_NFS_SQUASH_EXPORT is not set: no root-squashing export to test")
    return exp


@pytest.fixture(scope="session")
def anon_ids():
    return int(_env("WEIR_NFS_ANON_UID", 65534)), int(_env("WEIR_NFS_ANON_GID", 65534))


@pytest.fixture(scope="module")
def sess(main_export):
    s = Session(main_export, auth_sys())
    yield s
    s.close()


@dataclass
class WorkDir:
    fh: bytes
    name: str
    host: Path


@pytest.fixture
def work(sess):
    """A fresh directory under the export root, made over NFS, with its host-side path."""
    name = random_name("w")
    res = sess.nfs.mkdir(sess.root, name, mode=0o777, atime_flag=C.DONT_CHANGE,
                         mtime_flag=C.DONT_CHANGE)
    assert res["status"] == C.NFS3_OK, f"MKDIR {name}: {res['status']}"
    return WorkDir(res["resok"]["obj"]["handle"]["data"], name, sess.export.backdir / name)


@pytest.fixture
def seeded(sess):
    """seeded(populate) -> WorkDir: a directory made and filled host-side (populate(path))
    before the server is first asked about it, so a caching server has nothing stale of it."""

    def make(populate):
        name = random_name("s")
        path = sess.export.backdir / name
        path.mkdir()
        os.chmod(path, 0o777)
        populate(path)
        res = sess.nfs.lookup(sess.root, name)
        assert res["status"] == C.NFS3_OK, f"LOOKUP {name}: {res['status']}"
        return WorkDir(res["resok"]["object"]["data"], name, path)

    return make
