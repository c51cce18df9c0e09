"""Byte images from smbprotocol (an independent SMB2 implementation), checked
into src/golden.rs as hex. Regenerate with:
    python3 -m venv /tmp/v && /tmp/v/bin/pip install smbprotocol==1.17.0
    /tmp/v/bin/python smb-proto/testdata/golden.py
"""
import uuid

from smbprotocol.connection import (
    Capabilities, Ciphers, Dialects, HashAlgorithms, NegotiateContextType,
    SecurityMode, SMB2EncryptionCapabilities, SMB2NegotiateContextRequest,
    SMB2NetnameNegotiateContextId, SMB2PreauthIntegrityCapabilities,
    SMB3NegotiateRequest,
)
from smbprotocol.create_contexts import (
    CreateContextName, SMB2CreateContextRequest, SMB2CreateDurableHandleRequestV2,
    SMB2CreateQueryMaximalAccessRequest, SMB2CreateRequestLeaseV2,
)
from smbprotocol.open import SMB2CreateRequest
from smbprotocol.query_info import (
    FileBothDirectoryInformation, FileDirectoryInformation, FileFullDirectoryInformation,
    FileIdBothDirectoryInformation, FileIdFullDirectoryInformation,
)


def fill(obj, **fields):
    for k, v in fields.items():
        obj[k] = v
    return obj


def hexs(b):
    return b.hex()


def negotiate():
    n = fill(SMB3NegotiateRequest(),
        security_mode=SecurityMode.SMB2_NEGOTIATE_SIGNING_ENABLED,
        capabilities=Capabilities.SMB2_GLOBAL_CAP_ENCRYPTION,
        client_guid=uuid.UUID("11111111-2222-3333-4444-555555555555"),
        dialects=[Dialects.SMB_2_0_2, Dialects.SMB_2_1_0, Dialects.SMB_3_0_0,
                  Dialects.SMB_3_0_2, Dialects.SMB_3_1_1],
    )
    pre = fill(SMB2PreauthIntegrityCapabilities(),
        hash_algorithms=[HashAlgorithms.SHA_512],
        salt=bytes(range(32)),
    )
    c1 = fill(SMB2NegotiateContextRequest(),
        context_type=NegotiateContextType.SMB2_PREAUTH_INTEGRITY_CAPABILITIES,
        data=pre,
    )
    enc = SMB2EncryptionCapabilities()
    enc["ciphers"] = [Ciphers.AES_128_GCM, Ciphers.AES_128_CCM]
    c2 = fill(SMB2NegotiateContextRequest(),
        context_type=NegotiateContextType.SMB2_ENCRYPTION_CAPABILITIES,
        data=enc,
    )
    net = SMB2NetnameNegotiateContextId()
    net["net_name"] = "server"
    c3 = fill(SMB2NegotiateContextRequest(),
        context_type=NegotiateContextType.SMB2_NETNAME_NEGOTIATE_CONTEXT_ID,
        data=net,
    )
    n["negotiate_context_list"] = [c1, c2, c3]
    return n.pack()


def create():
    c = fill(SMB2CreateRequest(),
        impersonation_level=2,
        desired_access=0x00120089,
        file_attributes=0,
        share_access=7,
        create_disposition=1,
        create_options=0x40,
        requested_oplock_level=0xFF,
        buffer_path="dir\\file.txt".encode("utf-16-le"),
    )
    mx = SMB2CreateContextRequest()
    mx["buffer_name"] = CreateContextName.SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST
    mxd = SMB2CreateQueryMaximalAccessRequest()
    mxd["timestamp"] = 132000000000000000
    mx["buffer_data"] = mxd
    lease = fill(SMB2CreateRequestLeaseV2(),
        lease_key=b"\x03" * 16,
        lease_state=7,
        lease_flags=4,
        parent_lease_key=b"\x04" * 16,
        epoch=b"\x05\x00",
    )
    rq = fill(SMB2CreateContextRequest(),
        buffer_name=CreateContextName.SMB2_CREATE_REQUEST_LEASE_V2,
        buffer_data=lease,
    )
    dh = fill(SMB2CreateDurableHandleRequestV2(),
        timeout=60000,
        flags=2,
        create_guid=uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
    )
    d2 = fill(SMB2CreateContextRequest(),
        buffer_name=CreateContextName.SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2,
        buffer_data=dh,
    )
    c["buffer_contexts"] = SMB2CreateContextRequest.pack_multiple([mx, rq, d2])
    return c.pack()


def dir_entries():
    out = b""
    names = ["a.txt", "longer name"]
    for i, name in enumerate(names):
        e = FileIdBothDirectoryInformation()
        e["file_index"] = 0
        # smbprotocol keeps microseconds: stay on multiples of 10 ticks.
        e["creation_time"] = 132000000000000000 + 10 * i
        e["last_access_time"] = 132000000000000010
        e["last_write_time"] = 132000000000000020
        e["change_time"] = 132000000000000030
        e["end_of_file"] = 1000 * (i + 1)
        e["allocation_size"] = 4096
        e["file_attributes"] = 0x20
        e["ea_size"] = 0
        e["short_name"] = "A.TXT".encode("utf-16-le") if i == 0 else b""
        e["file_id"] = 0x1234 + i
        e["file_name"] = name.encode("utf-16-le")
        raw = e.pack()
        if i + 1 < len(names):
            size = (len(raw) + 7) // 8 * 8
            e["next_entry_offset"] = size
            raw = e.pack() + b"\x00" * (size - len(raw))
        out += raw
    return out


def one_entry(cls):
    """One entry of each other enumeration class, the fields it has set."""
    e = cls()
    values = {
        "file_index": 7,
        "creation_time": 132000000000000000,
        "last_access_time": 132000000000000010,
        "last_write_time": 132000000000000020,
        "change_time": 132000000000000030,
        "end_of_file": 12345,
        "allocation_size": 16384,
        "file_attributes": 0x10,
        "ea_size": 0,
        "short_name": "SHORT~1".encode("utf-16-le"),
        "file_id": 0xABCDEF,
        "file_name": "Directory name".encode("utf-16-le"),
    }
    for k, v in values.items():
        if k in e.fields:
            e[k] = v
    return e.pack()


print("NEGOTIATE", hexs(negotiate()))
print("DIR", hexs(one_entry(FileDirectoryInformation)))
print("FULL_DIR", hexs(one_entry(FileFullDirectoryInformation)))
print("BOTH_DIR", hexs(one_entry(FileBothDirectoryInformation)))
print("ID_FULL_DIR", hexs(one_entry(FileIdFullDirectoryInformation)))
print("CREATE", hexs(create()))
print("ID_BOTH_DIR", hexs(dir_entries()))


# Responses, as smbprotocol packs them (it parses what servers send).
from smbprotocol.connection import SMB2NegotiateResponse  # noqa: E402
from smbprotocol.create_contexts import (  # noqa: E402
    SMB2CreateQueryMaximalAccessResponse, SMB2CreateResponseLeaseV2,
)
from smbprotocol.ioctl import SMB2IOCTLResponse, SMB2ValidateNegotiateInfoResponse  # noqa: E402
from smbprotocol.open import (  # noqa: E402
    SMB2CloseResponse, SMB2CreateResponse, SMB2QueryInfoResponse, SMB2ReadResponse,
    SMB2WriteResponse,
)
from smbprotocol.session import SMB2SessionSetupResponse  # noqa: E402
from smbprotocol.tree import SMB2TreeConnectResponse  # noqa: E402


def negotiate_response():
    r = fill(SMB2NegotiateResponse(),
        security_mode=1,
        dialect_revision=0x0311,
        server_guid=uuid.UUID("01020304-0506-0708-090a-0b0c0d0e0f10"),
        capabilities=0x44,
        max_transact_size=8388608,
        max_read_size=8388608,
        max_write_size=8388608,
        system_time=132000000000000000,
        server_start_time=0,
        buffer=b"\x60\x28\x06\x06",
    )
    pre = fill(SMB2PreauthIntegrityCapabilities(),
        hash_algorithms=[HashAlgorithms.SHA_512],
        salt=b"\x07" * 32,
    )
    c1 = fill(SMB2NegotiateContextRequest(),
        context_type=NegotiateContextType.SMB2_PREAUTH_INTEGRITY_CAPABILITIES,
        data=pre,
    )
    enc = SMB2EncryptionCapabilities()
    enc["ciphers"] = [Ciphers.AES_128_GCM]
    c2 = fill(SMB2NegotiateContextRequest(),
        context_type=NegotiateContextType.SMB2_ENCRYPTION_CAPABILITIES,
        data=enc,
    )
    r["negotiate_context_list"] = [c1, c2]
    return r.pack()


def build(cls, **fields):
    return fill(cls(), **fields).pack()


def set_attributes(r):
    """The times, sizes and attributes CREATE and CLOSE responses share."""
    r["creation_time"] = 132000000000000000
    r["last_access_time"] = 132000000000000010
    r["last_write_time"] = 132000000000000020
    r["change_time"] = 132000000000000030
    r["allocation_size"] = 4096
    r["end_of_file"] = 100
    r["file_attributes"] = 0x20


def create_response():
    r = fill(SMB2CreateResponse(),
        oplock_level=0xFF,
        create_action=2,
    )
    set_attributes(r)
    r["file_id"] = b"\x11" * 8 + b"\x22" * 8
    mx = fill(SMB2CreateQueryMaximalAccessResponse(),
        query_status=0,
        maximal_access=0x001F01FF,
    )
    c1 = fill(SMB2CreateContextRequest(),
        buffer_name=CreateContextName.SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST,
        buffer_data=mx,
    )
    ls = fill(SMB2CreateResponseLeaseV2(),
        lease_key=b"\x03" * 16,
        lease_state=3,
        flags=0,
        parent_lease_key=b"\x00" * 16,
        epoch=2,
    )
    c2 = fill(SMB2CreateContextRequest(),
        buffer_name=CreateContextName.SMB2_CREATE_REQUEST_LEASE_V2,
        buffer_data=ls,
    )
    r["buffer"] = SMB2CreateContextRequest.pack_multiple([c1, c2])
    return r.pack()


def close_response():
    r = SMB2CloseResponse()
    r["flags"] = 1
    set_attributes(r)
    return r.pack()


def ioctl_response():
    v = fill(SMB2ValidateNegotiateInfoResponse(),
        capabilities=0x44,
        guid=uuid.UUID("01020304-0506-0708-090a-0b0c0d0e0f10"),
        security_mode=1,
        dialect=0x0302,
    )
    r = fill(SMB2IOCTLResponse(),
        ctl_code=0x00140204,
        file_id=b"\xff" * 16,
        input_offset=112,
        output_offset=112,
        buffer=v.pack(),
        output_count=len(v.pack()),
    )
    return r.pack()


print("NEGOTIATE_RESPONSE", hexs(negotiate_response()))
print("SESSION_SETUP_RESPONSE", hexs(build(
    SMB2SessionSetupResponse, session_flags=0, buffer=b"\xa1\x07\x30\x05\xa0\x03\x0a\x01\x00")))
print("TREE_CONNECT_RESPONSE", hexs(build(
    SMB2TreeConnectResponse, share_type=1, share_flags=0x8000, capabilities=0,
    maximal_access=0x001F01FF)))
print("CREATE_RESPONSE", hexs(create_response()))
print("CLOSE_RESPONSE", hexs(close_response()))
print("READ_RESPONSE", hexs(build(SMB2ReadResponse, data_offset=80, buffer=b"file data")))
print("WRITE_RESPONSE", hexs(build(SMB2WriteResponse, count=65536)))
print("QUERY_INFO_RESPONSE", hexs(build(SMB2QueryInfoResponse, buffer=bytes(range(1, 9)))))
print("IOCTL_RESPONSE", hexs(ioctl_response()))
