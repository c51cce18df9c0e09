"""Authentication and tree connect: a wrong password is refused (and the right
one accepted afterwards, on the same connection and on a new one), an unknown
share is refused. Once per client profile."""

import uuid

import pytest
from smbprotocol.connection import Connection
from smbprotocol.exceptions import SMBAuthenticationError, SMBResponseException
from smbprotocol.header import NtStatus
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from smbtools import DIALECTS, SmbClient


def logon_refused(exc):
    status = getattr(exc, "status", None) or getattr(exc, "ntstatus", None)
    return isinstance(exc, SMBAuthenticationError) or status == NtStatus.STATUS_LOGON_FAILURE


def test_wrong_password_then_right_one(target, profile, backdir):
    sign = profile.protection in ("sign", "seal")
    seal = profile.protection == "seal"
    conn = Connection(uuid.uuid4(), target.host, target.port, require_signing=sign)
    conn.connect(dialect=DIALECTS[profile.dialect][0], timeout=30)
    try:
        for user, password in ((target.user, target.password + "-wrong"),
                               ("no-such-user-here", target.password)):
            with pytest.raises((SMBAuthenticationError, SMBResponseException)) as e:
                Session(conn, username=user, password=password, require_encryption=seal).connect()
            assert logon_refused(e.value), repr(e.value)
        # The same connection, the right password.
        session = Session(conn, username=target.user, password=target.password,
                          require_encryption=seal)
        session.connect()
        tree = TreeConnect(session, f"\\\\{target.host}\\{target.share}")
        tree.connect()
        tree.disconnect()
        session.disconnect()
    finally:
        conn.disconnect()
    # And a new connection lists the share.
    c = SmbClient(target, profile)
    try:
        assert set(c.listdir("")) == {p.name for p in backdir.iterdir()}
    finally:
        c.close()


def test_unknown_share_refused(client, target):
    tree = TreeConnect(client.session, f"\\\\{target.host}\\no-such-share")
    with pytest.raises(SMBResponseException) as e:
        tree.connect()
    assert e.value.status == NtStatus.STATUS_BAD_NETWORK_NAME
    # The session still works for the real share.
    assert isinstance(client.listdir(""), list)


def test_cli_wrong_password_and_unknown_share(cli, tmp_path):
    code, out = cli.run("ls", cwd=tmp_path, password="definitely-wrong", check=False)
    assert code != 0 and "NT_STATUS_LOGON_FAILURE" in out, out
    code, out = cli.run("ls", cwd=tmp_path, share="no-such-share", check=False)
    assert code != 0 and "NT_STATUS_BAD_NETWORK_NAME" in out, out
    cli.run("ls", cwd=tmp_path)
