"""Configuration and fixtures of the SMB2/3 conformance suite.

The server under test is named by environment variables (the runner scripts
`run-against-samba.sh` and `run-against-weir.sh` set them):

  SMB_HOST, SMB_PORT      server address (default 127.0.0.1; the port is required)
  SMB_SHARE               share name (default export)
  SMB_USER, SMB_PASS      an account of the server
  SMB_BACKDIR             the share's backing directory on this host (required):
                          results are checked there
  SMB_SERVER              which server this is (samba, weir): selects the known
                          differences of KNOWN_DIFFERENCES.md (strict xfails)
  SMB_SIGNING_REQUIRED    non-empty: the server demands signing (test_policy.py)
  SMB_ENCRYPT_REQUIRED    non-empty: the server demands encryption (test_policy.py)
  SMB_PROFILES            comma-separated client profiles to run (default all),
                          e.g. 3.1.1-plain,2.0.2-sign
  SMB_LARGE_MIB           size of the large-file tests (default 256)

Most tests run once per client profile: each dialect 2.0.2, 2.1, 3.0, 3.0.2,
3.1.1 alone, each plain (not 3.1.1), with signing required and (SMB 3)
encrypted.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from smbtools import DIALECTS, Cli, Profile, SmbClient, Target, random_name  # noqa: E402


def _env(name, default=None):
    value = os.environ.get(name, "")
    return value if value else default


def all_profiles():
    out = []
    for d in DIALECTS:
        for p in ("plain", "sign", "seal"):
            if p == "seal" and not d.startswith("3"):
                continue
            # MS-SMB2 3.3.5.2.4: with 3.1.1 a non-guest session's requests
            # after SESSION_SETUP must be signed (Samba disconnects otherwise);
            # smbprotocol signs only when asked to.
            if p == "plain" and d == "3.1.1":
                continue
            out.append(Profile(d, p))
    wanted = _env("SMB_PROFILES")
    if wanted:
        names = {w.strip() for w in wanted.split(",")}
        out = [p for p in out if p.id in names]
    return out


PROFILES = all_profiles()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "differs(**servers): a documented difference of a server (KNOWN_DIFFERENCES.md); "
        "against that server the test runs as a strict xfail")
    config.addinivalue_line(
        "markers",
        "not_against(**servers): a test of Weir itself (it starts its own weir); against "
        "those servers it is skipped, with the reason given")
    if not _env("SMB_PORT"):
        pytest.exit("SMB_PORT is not set: run tests/smb/run-against-samba.sh or run-against-weir.sh, "
                    "or set the SMB_* variables (see conftest.py)", returncode=4)


def pytest_collection_modifyitems(config, items):
    server = _env("SMB_SERVER", "weir")
    for item in items:
        for mark in item.iter_markers("differs"):
            if server in mark.kwargs:
                item.add_marker(pytest.mark.xfail(
                    strict=True, reason=f"known difference of {server}: {mark.kwargs[server]}"))
        for mark in item.iter_markers("not_against"):
            if server in mark.kwargs:
                item.add_marker(pytest.mark.skip(reason=f"not run against {server}: {mark.kwargs[server]}"))


@pytest.fixture(scope="session")
def target():
    return Target(_env("SMB_HOST", "127.0.0.1"), int(_env("SMB_PORT")), _env("SMB_SHARE", "export"),
                  _env("SMB_USER", "root"), _env("SMB_PASS", ""))


@pytest.fixture(scope="session")
def backdir():
    d = _env("SMB_BACKDIR")
    if not d or not Path(d).is_dir():
        pytest.fail("SMB_BACKDIR must name the share's backing directory on this host")
    return Path(d)


def encrypt_required():
    return bool(_env("SMB_ENCRYPT_REQUIRED"))


def signing_required():
    return bool(_env("SMB_SIGNING_REQUIRED"))


@pytest.fixture(scope="session")
def large_mib():
    return int(_env("SMB_LARGE_MIB", "256"))


@pytest.fixture(scope="session", params=PROFILES, ids=lambda p: p.id)
def profile(request):
    p = request.param
    if encrypt_required() and not p.dialect.startswith("3"):
        pytest.skip("the server demands encryption, which SMB 2 has not (test_policy.py checks "
                    "that it refuses such a client)")
    if signing_required() and p.protection == "plain":
        pytest.skip("the server demands signing, which this profile does not do (test_policy.py "
                    "checks that it refuses unsigned requests)")
    return p


@pytest.fixture(scope="session")
def client(target, profile):
    c = SmbClient(target, profile)
    yield c
    c.close()


@pytest.fixture
def cli(target, profile):
    return Cli(target, profile)


@dataclass
class WorkDir:
    rel: str
    host: Path


@pytest.fixture
def work(client, backdir):
    """A fresh directory at the share's root, made over SMB, and its host path."""
    name = random_name("w")
    client.mkdir(name)
    host = backdir / name
    assert host.is_dir(), f"{name} made over SMB is not in the backing directory"
    return WorkDir(name, host)


@pytest.fixture
def seeded(client, backdir):
    """seeded(populate) -> WorkDir: a directory made and filled host-side
    (populate(path)) before the server is first asked about it."""

    def make(populate):
        name = random_name("s")
        host = backdir / name
        host.mkdir()
        populate(host)
        return WorkDir(name, host)

    return make
