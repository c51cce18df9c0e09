"""The server's own protection policy, when the runner started it with one:
SMB_SIGNING_REQUIRED (Samba's `server signing = mandatory`) or
SMB_ENCRYPT_REQUIRED (`smb encrypt = required`). Skipped otherwise."""

import uuid

import pytest
from smbprotocol.connection import Connection
from smbprotocol.exceptions import SMBException, SMBOSError, SMBResponseException

from conftest import encrypt_required, signing_required
from smbtools import Cli, Profile, SmbClient, DIALECTS


@pytest.mark.skipif(not signing_required(), reason="the server does not demand signing")
@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_signing_demanded(target, backdir, dialect):
    conn = Connection(uuid.uuid4(), target.host, target.port, require_signing=False)
    conn.connect(dialect=DIALECTS[dialect][0], timeout=30)
    try:
        # NEGOTIATE's security mode says so to a client that did not ask.
        assert conn.require_signing, "NEGOTIATE did not say that signing is required"
    finally:
        conn.disconnect()
    c = SmbClient(target, Profile(dialect, "sign"))
    try:
        assert c.session.signing_required
        assert set(c.listdir("")) == {p.name for p in backdir.iterdir()}
    finally:
        c.close()


@pytest.mark.skipif(not signing_required(), reason="the server does not demand signing")
@pytest.mark.parametrize("dialect", ["2.1", "3.0.2"])
def test_unsigned_requests_refused(target, dialect):
    # smbprotocol told not to require signing sends its requests after
    # SESSION_SETUP unsigned: the server must not serve them.
    c = SmbClient(target, Profile(dialect, "plain"))
    try:
        with pytest.raises((SMBException, SMBResponseException, SMBOSError, OSError)):
            c.listdir("")
    finally:
        try:
            c.close()
        except (SMBException, OSError):
            pass


@pytest.mark.skipif(not signing_required(), reason="the server does not demand signing")
def test_cli_signs_when_demanded(target, tmp_path):
    # smbclient with protection off still signs when the server demands it.
    for protection in ("plain", "sign"):
        Cli(target, Profile("3.1.1", protection)).run("ls", cwd=tmp_path)


@pytest.mark.skipif(not encrypt_required(), reason="the server does not demand encryption")
@pytest.mark.parametrize("dialect", ["2.0.2", "2.1"])
def test_smb2_refused_when_encryption_demanded(target, dialect):
    with pytest.raises((SMBException, SMBResponseException, SMBOSError)):
        c = SmbClient(target, Profile(dialect, "plain"))
        try:
            c.listdir("")
        finally:
            c.close()


@pytest.mark.skipif(not encrypt_required(), reason="the server does not demand encryption")
@pytest.mark.parametrize("dialect", ["3.0", "3.0.2", "3.1.1"])
def test_smb3_encrypts_when_demanded(target, backdir, dialect):
    c = SmbClient(target, Profile(dialect, "plain"))
    try:
        name = f"policy-{dialect}-{uuid.uuid4().hex[:8]}"
        with c.open_file(name, mode="wb") as f:
            f.write(b"sealed")
        assert c.session.encrypt_data, "the session is not encrypted"
        assert (backdir / name).read_bytes() == b"sealed"
        c.remove(name)
    finally:
        c.close()


@pytest.mark.skipif(not encrypt_required(), reason="the server does not demand encryption")
def test_cli_without_encryption_refused(target, tmp_path):
    code, out = Cli(target, Profile("2.1", "plain")).run("ls", cwd=tmp_path, check=False)
    assert code != 0 or "NT_STATUS_" in out, out
    Cli(target, Profile("3.1.1", "seal")).run("ls", cwd=tmp_path)
