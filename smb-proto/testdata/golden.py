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


def hexs(b):
    return b.hex()


def negotiate():
    n = SMB3NegotiateRequest()
    n["security_mode"] = SecurityMode.SMB2_NEGOTIATE_SIGNING_ENABLED
    n["capabilities"] = Capabilities.SMB2_GLOBAL_CAP_ENCRYPTION
    n["client_guid"] = uuid.UUID("11111111-2222-3333-4444-555555555555")
    n["dialects"] = [Dialects.SMB_2_0_2, Dialects.SMB_2_1_0, Dialects.SMB_3_0_0,
                     Dialects.SMB_3_0_2, Dialects.SMB_3_1_1]
    pre = SMB2PreauthIntegrityCapabilities()
    pre["hash_algorithms"] = [HashAlgorithms.SHA_512]
    pre["salt"] = bytes(range(32))
    c1 = SMB2NegotiateContextRequest()
    c1["context_type"] = NegotiateContextType.SMB2_PREAUTH_INTEGRITY_CAPABILITIES
    c1["data"] = pre
    enc = SMB2EncryptionCapabilities()
    enc["ciphers"] = [Ciphers.AES_128_GCM, Ciphers.AES_128_CCM]
    c2 = SMB2NegotiateContextRequest()
    c2["context_type"] = NegotiateContextType.SMB2_ENCRYPTION_CAPABILITIES
    c2["data"] = enc
    net = SMB2NetnameNegotiateContextId()
    net["net_name"] = "server"
    c3 = SMB2NegotiateContextRequest()
    c3["context_type"] = NegotiateContextType.SMB2_NETNAME_NEGOTIATE_CONTEXT_ID
    c3["data"] = net
    n["negotiate_context_list"] = [c1, c2, c3]
    return n.pack()


def create():
    c = SMB2CreateRequest()
    c["impersonation_level"] = 2
    c["desired_access"] = 0x00120089
    c["file_attributes"] = 0
    c["share_access"] = 7
    c["create_disposition"] = 1
    c["create_options"] = 0x40
    c["requested_oplock_level"] = 0xFF
    c["buffer_path"] = "dir\\file.txt".encode("utf-16-le")
    mx = SMB2CreateContextRequest()
    mx["buffer_name"] = CreateContextName.SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST
    mxd = SMB2CreateQueryMaximalAccessRequest()
    mxd["timestamp"] = 132000000000000000
    mx["buffer_data"] = mxd
    lease = SMB2CreateRequestLeaseV2()
    lease["lease_key"] = b"\x03" * 16
    lease["lease_state"] = 7
    lease["lease_flags"] = 4
    lease["parent_lease_key"] = b"\x04" * 16
    lease["epoch"] = b"\x05\x00"
    rq = SMB2CreateContextRequest()
    rq["buffer_name"] = CreateContextName.SMB2_CREATE_REQUEST_LEASE_V2
    rq["buffer_data"] = lease
    dh = SMB2CreateDurableHandleRequestV2()
    dh["timeout"] = 60000
    dh["flags"] = 2
    dh["create_guid"] = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    d2 = SMB2CreateContextRequest()
    d2["buffer_name"] = CreateContextName.SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2
    d2["buffer_data"] = dh
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
