"""SMB opens with leases and oplocks (smbprotocol's low-level API) whose
break notifications the test can wait on, and the NFS side (the NFS suite's
pyNfsClient-based client) as a few calls.

smbprotocol 1.17 has no place for unsolicited server messages: its receive
thread looks every incoming message up in ``Connection.outstanding_requests``
by MessageId, so a break notification (MessageId 0xFFFFFFFFFFFFFFFF) raises
KeyError there, the thread dies and the connection is closed. ``BreakNotices``
replaces that dict with one that answers this MessageId with a stand-in
request: the receive thread stores the notification's header into it as it
would a response, and the stand-in puts the header on a queue. smbprotocol
skips signature checks for that MessageId, and everything else (credits,
decryption, compounding) stays as smbprotocol does it.

The notification and acknowledgment bodies (MS-SMB2 2.2.23, 2.2.24), which
smbprotocol does not define, are parsed with struct and sent as small
smbprotocol Structures.
"""

import queue
import struct
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from nfsclient import Session as NfsSession, getattr_ok, lookup_fh, ok
from pyNfsClient import const as C
from smbprotocol.connection import Connection
from smbprotocol.create_contexts import (CreateContextName, SMB2CreateContextRequest,
                                         SMB2CreateRequestLease, SMB2CreateRequestLeaseV2)
from smbprotocol.header import Commands
from smbprotocol.open import (CreateDisposition, CreateOptions, FilePipePrinterAccessMask,
                              ImpersonationLevel, Open, RequestedOplockLevel, ShareAccess)
from smbprotocol.session import Session
from smbprotocol.structure import BytesField, IntField, Structure
from smbprotocol.tree import TreeConnect
from smbtools import DIALECTS

BREAK_MESSAGE_ID = 0xFFFFFFFFFFFFFFFF

# MS-SMB2 2.2.13.2.8 LeaseState bits.
R, H, W = 0x1, 0x2, 0x4
RH, RWH = R | H, R | W | H

OPLOCK = {"none": RequestedOplockLevel.SMB2_OPLOCK_LEVEL_NONE,
          "II": RequestedOplockLevel.SMB2_OPLOCK_LEVEL_II,
          "exclusive": RequestedOplockLevel.SMB2_OPLOCK_LEVEL_EXCLUSIVE,
          "batch": RequestedOplockLevel.SMB2_OPLOCK_LEVEL_BATCH}


def lease_name(state):
    return "".join(c for c, bit in (("R", R), ("W", W), ("H", H)) if state & bit) or "none"


class _Value:
    def __init__(self, value):
        self.value = value

    def get_value(self):
        return self.value


class _Notice:
    """What the receive thread finds for MessageId 0xFFFFFFFFFFFFFFFF: it
    sets `response` to the header, which goes to the queue."""

    session_id = None
    async_id = None

    def __init__(self, sink):
        self._sink = sink
        self.response_event = threading.Event()
        self.response_event_lock = threading.Lock()
        self.message = {"reserved": _Value(0)}

    @property
    def response(self):
        return None

    @response.setter
    def response(self, header):
        self._sink.put(header)


class _Requests(dict):
    def __init__(self, sink):
        super().__init__()
        self._sink = sink

    def __getitem__(self, message_id):
        if message_id == BREAK_MESSAGE_ID:
            return _Notice(self._sink)
        return super().__getitem__(message_id)


@dataclass(frozen=True)
class LeaseBreak:
    """SMB2 Lease Break Notification (MS-SMB2 2.2.23.2)."""
    new_epoch: int
    ack_required: bool
    key: bytes
    current: int
    new: int


@dataclass(frozen=True)
class OplockBreak:
    """SMB2 Oplock Break Notification (MS-SMB2 2.2.23.1)."""
    level: int
    file_id: bytes


class BreakNotices:
    """The break notifications a connection receives, in order."""

    def __init__(self, conn: Connection):
        self._q = queue.Queue()
        conn.outstanding_requests = _Requests(self._q)

    def wait(self, timeout=5.0, what="a break notification"):
        try:
            header = self._q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {what} within {timeout} s") from None
        return parse_notice(header)

    def none_within(self, seconds):
        """Assert no notification arrives within `seconds`."""
        try:
            header = self._q.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected notification {parse_notice(header)}")


def parse_notice(header):
    command = header["command"].get_value()
    assert command == Commands.SMB2_OPLOCK_BREAK, f"MessageId 0xFFFF... with command {command}"
    body = header["data"].get_value()
    assert len(body) >= 2, f"a {len(body)}-byte break notification"
    (size,) = struct.unpack_from("<H", body)
    if size == 44 and len(body) >= 44:
        epoch, flags, key, current, new = struct.unpack_from("<HI16sII", body, 2)
        return LeaseBreak(epoch, bool(flags & 1), key, current, new)
    if size == 24 and len(body) >= 24:
        level, = struct.unpack_from("<B", body, 2)
        return OplockBreak(level, bytes(body[8:24]))
    raise AssertionError(f"break notification of StructureSize {size}, {len(body)} bytes")


class LeaseBreakAck(Structure):
    """SMB2 Lease Break Acknowledgment (MS-SMB2 2.2.24.2)."""
    COMMAND = Commands.SMB2_OPLOCK_BREAK

    def __init__(self):
        self.fields = OrderedDict([
            ("structure_size", IntField(size=2, default=36)),
            ("reserved", IntField(size=2)),
            ("flags", IntField(size=4)),
            ("lease_key", BytesField(size=16)),
            ("lease_state", IntField(size=4)),
            ("lease_duration", IntField(size=8)),
        ])
        super().__init__()


class OplockBreakAck(Structure):
    """SMB2 Oplock Break Acknowledgment (MS-SMB2 2.2.24.1)."""
    COMMAND = Commands.SMB2_OPLOCK_BREAK

    def __init__(self):
        self.fields = OrderedDict([
            ("structure_size", IntField(size=2, default=24)),
            ("oplock_level", IntField(size=1)),
            ("reserved", IntField(size=1)),
            ("reserved2", IntField(size=4)),
            ("file_id", BytesField(size=16)),
        ])
        super().__init__()


@dataclass
class Handle:
    """An open and the caching it was granted: `lease` (state, or None when no
    lease context came back), `epoch` (v2), or the oplock level."""
    open: Open
    oplock: int
    lease: int | None
    epoch: int
    key: bytes | None

    def read_all(self, size):
        out = b""
        while len(out) < size:
            chunk = self.open.read(len(out), min(size - len(out), 65536))
            assert chunk, f"SMB READ at {len(out)} returned nothing (size {size})"
            out += chunk
        return out

    def close(self, get_attributes=False):
        self.open.close(get_attributes=get_attributes)


class SmbUser:
    """One connection, session and tree connect of the share, negotiated with
    exactly `dialect`; SMB 3.1.1 signs (MS-SMB2 3.3.5.2.4 requires it)."""

    def __init__(self, host, port, share, user, password, dialect, timeout=30):
        self.dialect = dialect
        self.timeout = timeout
        self.conn = Connection(uuid.uuid4(), host, port, require_signing=dialect == "3.1.1")
        self.notices = BreakNotices(self.conn)
        self.conn.connect(dialect=DIALECTS[dialect][0], timeout=timeout)
        self.session = Session(self.conn, user, password, require_encryption=False)
        self.session.connect()
        self.tree = TreeConnect(self.session, rf"\\{host}\{share}")
        self.tree.connect()

    @property
    def v2(self):
        return self.dialect.startswith("3")

    def open(self, name, lease=None, oplock="none", disposition=CreateDisposition.FILE_OPEN_IF,
             directory=False):
        """CREATE `name` for read and write (a `directory` for reading),
        sharing everything; with an RqLs lease request for state `lease` (v2
        on SMB 3, v1 on 2.1), else asking for oplock level `oplock`."""
        o = Open(self.tree, name)
        contexts, level, key = None, OPLOCK[oplock], None
        if lease is not None:
            key = uuid.uuid4().bytes
            rq = SMB2CreateRequestLeaseV2() if self.v2 else SMB2CreateRequestLease()
            rq["lease_key"] = key
            rq["lease_state"] = lease
            if self.v2:
                rq["parent_lease_key"] = b"\0" * 16
                rq["epoch"] = b"\0\0"
            ctx = SMB2CreateContextRequest()
            ctx["buffer_name"] = CreateContextName.SMB2_CREATE_REQUEST_LEASE
            ctx["buffer_data"] = rq
            contexts, level = [ctx], RequestedOplockLevel.SMB2_OPLOCK_LEVEL_LEASE
        access = FilePipePrinterAccessMask.GENERIC_READ
        if not directory:
            access |= FilePipePrinterAccessMask.GENERIC_WRITE | FilePipePrinterAccessMask.DELETE
        share = ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE
        options = CreateOptions.FILE_DIRECTORY_FILE if directory else 0
        answers = o.create(ImpersonationLevel.Impersonation, access, 0, share, disposition, options,
                           create_contexts=contexts, oplock_level=level) or []
        granted, epoch = None, 0
        for a in answers:
            if isinstance(a, Structure) and "lease_key" in a.fields:
                assert a["lease_key"].get_value() == key, "lease context for another key"
                granted = int(a["lease_state"].get_value())
                if "epoch" in a.fields:
                    epoch = a["epoch"].get_value()
        return Handle(o, o.oplock_level, granted, epoch, key)

    def _call(self, message):
        req = self.conn.send(message, sid=self.session.session_id, tid=self.tree.tree_connect_id)
        return self.conn.receive(req, timeout=self.timeout)["data"].get_value()

    def ack_lease(self, key, state):
        """Acknowledge a lease break with `state`; the state the server answers."""
        ack = LeaseBreakAck()
        ack["lease_key"] = key
        ack["lease_state"] = state
        body = self._call(ack)
        size, _, _, rkey, rstate = struct.unpack_from("<HHI16sI", body)
        assert (size, rkey) == (36, key), f"lease break response {body.hex()}"
        return rstate

    def ack_oplock(self, file_id, level):
        """Acknowledge an oplock break with `level`; the level the server answers."""
        ack = OplockBreakAck()
        ack["oplock_level"] = level
        ack["file_id"] = file_id
        body = self._call(ack)
        size, rlevel = struct.unpack_from("<HB", body)
        assert size == 24 and bytes(body[8:24]) == file_id, f"oplock break response {body.hex()}"
        return rlevel

    def close(self):
        try:
            self.conn.disconnect(True, timeout=5)
        except Exception:  # the server may have dropped the connection already
            self.conn.disconnect(False)


class NfsUser(NfsSession):
    """The export's root directory over NFSv3, through the NFS suite's client."""

    def lookup(self, name):
        return lookup_fh(self.nfs, self.root, name)

    def getattr(self, fh):
        return getattr_ok(self.nfs, fh)

    def create(self, name, dir=None):
        res = ok(self.nfs.create(dir or self.root, name, C.UNCHECKED, mode=0o644), f"CREATE {name}")
        return res["resok"]["obj"]["handle"]["data"]

    def mkdir(self, name):
        res = ok(self.nfs.mkdir(self.root, name, mode=0o755, atime_flag=C.DONT_CHANGE,
                                mtime_flag=C.DONT_CHANGE), f"MKDIR {name}")
        return res["resok"]["obj"]["handle"]["data"]

    def write(self, fh, offset, data, stable=C.FILE_SYNC):
        res = ok(self.nfs.write(fh, offset, data, stable), "WRITE")["resok"]
        assert res["count"] == len(data), f"WRITE wrote {res['count']} of {len(data)} bytes"

    def read_all(self, fh, size):
        out = b""
        while True:
            res = ok(self.nfs.read(fh, len(out), 65536), "READ")["resok"]
            out += res["data"]
            if res["eof"] or not res["data"]:
                break
        assert len(out) == size, f"NFS read {len(out)} bytes, size {size}"
        return out

    def truncate(self, fh, size):
        ok(self.nfs.setattr3(fh, size=size), f"SETATTR size {size}")

    def remove(self, name, dir=None):
        ok(self.nfs.remove(dir or self.root, name), f"REMOVE {name}")

    def rename(self, src, dst, dir=None):
        d = dir or self.root
        ok(self.nfs.rename(d, src, d, dst), f"RENAME {src} {dst}")

    def exists(self, name):
        res = self.nfs.lookup(self.root, name)
        if res["status"] == C.NFS3ERR_NOENT:
            return False
        ok(res, f"LOOKUP {name}")
        return True
