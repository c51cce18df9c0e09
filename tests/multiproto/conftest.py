"""Configuration and fixtures of the multi-protocol suite: one server that
serves the same files over SMB and NFSv3 (run-against-weir.sh sets these):

  SMB_HOST, SMB_PORT, SMB_SHARE, SMB_USER, SMB_PASS   the SMB share and account
  WEIR_NFS_HOST, WEIR_NFS_PORT, WEIR_MOUNT_PORT,
  WEIR_NFS_EXPORT                                     the NFS export of the same tree
  MULTIPROTO_TEST_TIMEOUT                             seconds one test may take (default 60)

The SMB helpers come from ../smb, the NFS client from ../nfs.
"""

import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "smb"), str(HERE.parent / "nfs")]

from mptools import NfsUser, SmbUser  # noqa: E402
from nfsclient import auth_sys  # noqa: E402


def _env(name, default=None):
    value = os.environ.get(name, "")
    return value if value else default


def pytest_configure(config):
    if not (_env("SMB_PORT") and _env("WEIR_NFS_PORT")):
        pytest.exit("SMB_PORT and WEIR_NFS_PORT are not set: run tests/multiproto/run-against-weir.sh, "
                    "or set the variables (see conftest.py)", returncode=4)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail a test that runs too long (a server that never answers) instead of
    hanging: smbprotocol waits for responses without a time limit."""
    limit = int(_env("MULTIPROTO_TEST_TIMEOUT", "60"))

    def expired(_sig, _frame):
        raise TimeoutError(f"test still running after {limit} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(limit)
    try:
        return (yield)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def nfs():
    export = SimpleNamespace(host=_env("WEIR_NFS_HOST", "127.0.0.1"), nfs_port=int(_env("WEIR_NFS_PORT")),
                             mount_port=int(_env("WEIR_MOUNT_PORT", _env("WEIR_NFS_PORT"))),
                             path=_env("WEIR_NFS_EXPORT", "/export"))
    n = NfsUser(export, auth_sys(os.getuid(), os.getgid()))
    yield n
    n.close()


@pytest.fixture
def smb():
    """smb(dialect) -> SmbUser: a fresh connection, closed after the test."""
    made = []

    def make(dialect):
        u = SmbUser(_env("SMB_HOST", "127.0.0.1"), int(_env("SMB_PORT")), _env("SMB_SHARE", "export"),
                    _env("SMB_USER"), _env("SMB_PASS"), dialect)
        made.append(u)
        return u

    yield make
    for u in made:
        u.close()
