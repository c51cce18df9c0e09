"""A strict transport under pyNfsClient's own classes.

pyNfsClient 0.1.5 (Portmap, Mount, NFSv3) packs and unpacks every NFSv3
procedure, and the suite uses those classes and their XDR code. Three things
in it are not fit for a conformance test, and are replaced here:

* ``RPC.request`` logs and swallows every error (a rejected call, a closed
  connection, a mismatched reply) and hands back whatever bytes it had, and
  its ``recv`` spins forever on a closed socket. ``_StrictRpc.request`` checks
  the XID, the reply and accept states, skips the reply verifier by its
  length, and raises ``RpcError`` instead.
* ``NFSv3.write`` and ``readdir``/``readdirplus`` pass data and cookie
  verifiers through ``str_to_bytes``, which turns ``bytes`` into their repr.
  The overrides below pack the same XDR structures with the bytes as given.
* Replies come back as nested dicts; ``readdir_entries`` flattens the
  entry lists.
"""

import itertools
import os
import random
import socket
import struct
import time

from pyNfsClient import Mount, NFSv3
from pyNfsClient.rpc import RPC
from pyNfsClient import const
from pyNfsClient.pack import nfs_pro_v3Packer, nfs_pro_v3Unpacker
from pyNfsClient.rtypes import (nfs_fh3, nfstime3, readdir3args, readdirplus3args, sattrguard3,
                                setattr3args, write3args)

ACCEPT_STATES = {1: "PROG_UNAVAIL", 2: "PROG_MISMATCH", 3: "PROC_UNAVAIL", 4: "GARBAGE_ARGS",
                 5: "SYSTEM_ERR"}


class RpcError(Exception):
    """The server rejected or did not accept a call, or the connection broke."""


def auth_sys(uid=0, gid=0, gids=(), machine="weir-nfstests"):
    """AUTH_SYS credentials in the dict form pyNfsClient's classes take."""
    return {"flavor": 1, "machine_name": machine, "uid": uid, "gid": gid,
            "aux_gid": list(gids) if gids else [0]}


class _StrictRpc(RPC):
    # Must sit between NFSv3/Mount and RPC in the MRO: their procedures call
    # super(NFSv3, self).request(...), which lands here.
    _xids = itertools.count(random.randrange(1, 1 << 30))

    def connect(self):
        # pyNfsClient binds a source port below 1024 when it can; so do we
        # (servers may insist on it for AUTH_SYS), but never loop forever.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        for _ in range(200):
            try:
                sock.bind(("", random.randint(600, 1023)))
                break
            except OSError:
                continue
        sock.connect((self.host, self.port))
        self.client = sock

    def disconnect(self):
        if self.client is not None:
            self.client.close()
            self.client = None

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.client.recv(n - len(buf))
            if not chunk:
                raise RpcError("connection closed by the server")
            buf += chunk
        return buf

    def request(self, program, program_version, procedure, data=None, message_type=0, version=2,
                auth=None):
        xid = next(self._xids) & 0xFFFFFFFF
        msg = struct.pack("!LLLLLL", xid, 0, 2, program, program_version, procedure)
        if auth is None:
            msg += struct.pack("!LL", 0, 0)
        else:
            name = auth["machine_name"].encode()
            gids = [g for g in auth.get("aux_gid", []) if g] if auth.get("aux_gid") != [0] else []
            body = struct.pack("!LL", int(time.time()) & 0xFFFFFFFF, len(name)) + name
            body += b"\0" * ((4 - len(name) % 4) % 4)
            body += struct.pack("!LLL", auth["uid"], auth["gid"], len(gids))
            body += b"".join(struct.pack("!L", g) for g in gids)
            msg += struct.pack("!LL", 1, len(body)) + body
        msg += struct.pack("!LL", 0, 0)  # verifier: AUTH_NONE
        if data:
            msg += data
        self.client.sendall(struct.pack("!L", 0x80000000 | len(msg)) + msg)
        while True:
            reply = b""
            last = False
            while not last:
                (mark,) = struct.unpack("!L", self._recv_exact(4))
                last = bool(mark & 0x80000000)
                reply += self._recv_exact(mark & 0x7FFFFFFF)
            rxid, mtype = struct.unpack("!LL", reply[:8])
            if rxid == xid:
                break  # replies to calls abandoned earlier are dropped
        if mtype != 1:
            raise RpcError(f"message type {mtype} in reply")
        (reply_stat,) = struct.unpack("!L", reply[8:12])
        if reply_stat != 0:
            raise RpcError(f"call denied (reply_stat {reply_stat}, {reply[12:20].hex()})")
        _flavor, vlen = struct.unpack("!LL", reply[12:20])
        pos = 20 + ((vlen + 3) // 4) * 4
        (accept,) = struct.unpack("!L", reply[pos:pos + 4])
        if accept != 0:
            raise RpcError(f"call not accepted: {ACCEPT_STATES.get(accept, accept)}")
        return reply[pos + 4:]


class MountClient(Mount, _StrictRpc):
    pass


class NfsClient(NFSv3, _StrictRpc):
    def write(self, file_handle, offset, data, stable_how, auth=None, count=None):
        packer = nfs_pro_v3Packer()
        packer.pack_write3args(write3args(file=nfs_fh3(file_handle), offset=offset,
                                          count=len(data) if count is None else count,
                                          stable=stable_how, data=bytes(data)))
        res = self.nfs_request(const.NFS3_PROCEDURE_WRITE, packer.get_buffer(), auth or self.auth)
        return nfs_pro_v3Unpacker(res).unpack_write3res()

    def readdir(self, dir_handle, cookie=0, cookie_verf=b"\0" * 8, count=4096, auth=None):
        packer = nfs_pro_v3Packer()
        packer.pack_readdir3args(readdir3args(dir=nfs_fh3(dir_handle), cookie=cookie,
                                              cookieverf=bytes(cookie_verf), count=count))
        res = self.nfs_request(const.NFS3_PROCEDURE_READDIR, packer.get_buffer(), auth or self.auth)
        return nfs_pro_v3Unpacker(res).unpack_readdir3res()

    def readdirplus(self, dir_handle, cookie=0, cookie_verf=b"\0" * 8, dircount=4096,
                    maxcount=32768, auth=None):
        packer = nfs_pro_v3Packer()
        packer.pack_readdirplus3args(readdirplus3args(dir=nfs_fh3(dir_handle), cookie=cookie,
                                                      cookieverf=bytes(cookie_verf),
                                                      dircount=dircount, maxcount=maxcount))
        res = self.nfs_request(const.NFS3_PROCEDURE_READDIRPLUS, packer.get_buffer(),
                               auth or self.auth)
        return nfs_pro_v3Unpacker(res).unpack_readdirplus3res()

    def setattr3(self, file_handle, mode=None, uid=None, gid=None, size=None,
                 atime=const.DONT_CHANGE, mtime=const.DONT_CHANGE, atime_val=(0, 0),
                 mtime_val=(0, 0), guard_ctime=None, auth=None):
        """SETATTR with times left alone unless asked, and a guard given as a ctime dict."""
        attrs = self.get_sattr3(mode, uid, gid, size, atime, atime_val[0], atime_val[1],
                                mtime, mtime_val[0], mtime_val[1])
        guard = sattrguard3(check=False)
        if guard_ctime is not None:
            guard = sattrguard3(check=True, ctime=nfstime3(guard_ctime["seconds"],
                                                           guard_ctime["nseconds"]))
        packer = nfs_pro_v3Packer()
        packer.pack_setattr3args(setattr3args(object=nfs_fh3(file_handle), new_attributes=attrs,
                                              guard=guard))
        res = self.nfs_request(const.NFS3_PROCEDURE_SETATTR, packer.get_buffer(), auth or self.auth)
        return nfs_pro_v3Unpacker(res).unpack_setattr3res()


def readdir_entries(resok):
    """The entries of a READDIR or READDIRPLUS resok, as a flat list of dicts."""
    out = []
    pending = list(resok["reply"]["entries"])
    while pending:
        entry = pending.pop(0)
        out.append(entry)
        pending = list(entry["nextentry"]) + pending
    return out


def connect(host, nfs_port, mount_port, export, auth, timeout=30):
    """Mount `export` and return (nfs client, root handle, mount client)."""
    mnt = MountClient(host, mount_port, timeout, auth)
    mnt.connect()
    res = mnt.mnt(export, auth)
    if res["status"] != const.MNT3_OK:
        mnt.disconnect()
        raise RpcError(f"MNT {export}: status {res['status']}")
    fh = res["mountinfo"]["fhandle"]
    nfs = NfsClient(host, nfs_port, timeout, auth)
    nfs.connect()
    return nfs, fh, mnt


class Session:
    """One mounted export: `nfs` (NfsClient), `root` (handle), `export` (with host, nfs_port,
    mount_port and path)."""

    def __init__(self, export, auth):
        self.export = export
        self.auth = auth
        self.nfs, self.root, self.mnt = connect(export.host, export.nfs_port, export.mount_port,
                                                export.path, auth)

    def close(self):
        for c in (self.nfs, self.mnt):
            try:
                c.disconnect()
            except OSError:
                pass


def random_name(prefix="t"):
    return f"{prefix}-{os.getpid()}-{random.randrange(1 << 40):010x}"


STATUS_NAMES = {v: k for k, v in vars(const).items() if k.startswith("NFS3ERR_") or k == "NFS3_OK"}


def status_name(status):
    return STATUS_NAMES.get(status, str(status))


def expect(res, *statuses, what=""):
    """Assert a reply's status is one of `statuses`; return the reply."""
    if res["status"] not in statuses:
        want = " or ".join(status_name(s) for s in statuses)
        raise AssertionError(f"{what}: got {status_name(res['status'])}, want {want}")
    return res


def ok(res, what=""):
    return expect(res, const.NFS3_OK, what=what)


def getattr_ok(nfs, fh):
    return ok(nfs.getattr(fh), "GETATTR")["attributes"]


def lookup_fh(nfs, dir_fh, name):
    return ok(nfs.lookup(dir_fh, name), f"LOOKUP {name}")["resok"]["object"]["data"]


def ts(t):
    return (t["seconds"], t["nseconds"])


def check_wcc(wcc, pre, post, what):
    """WCC data of a reply against GETATTRs made right before (`pre`) and after (`post`) the call:
    pre-op attributes present and equal to the state before, post-op attributes present and
    equal to the state after."""
    assert wcc["before"]["present"], f"{what}: no pre-op attributes in the WCC data"
    b = wcc["before"]["attributes"]
    assert (b["size"], ts(b["mtime"]), ts(b["ctime"])) == (pre["size"], ts(pre["mtime"]),
                                                           ts(pre["ctime"])), \
        f"{what}: pre-op attributes {b} differ from the attributes before the call {pre}"
    assert wcc["after"]["present"], f"{what}: no post-op attributes in the WCC data"
    a = wcc["after"]["attributes"]
    for key in ("type", "fileid", "size", "mode", "nlink"):
        assert a[key] == post[key], f"{what}: post-op {key} {a[key]} != {post[key]} after the call"
    assert ts(a["mtime"]) == ts(post["mtime"]), f"{what}: post-op mtime {a['mtime']} != {post['mtime']}"
    assert ts(a["mtime"]) >= ts(b["mtime"]), f"{what}: mtime went backwards"
    assert ts(a["ctime"]) >= ts(b["ctime"]), f"{what}: ctime went backwards"


def check_post_op(attr, post, what):
    """A post_op_attr, when present, must equal a GETATTR made after the call."""
    if not attr["present"]:
        return
    a = attr["attributes"]
    for key in ("type", "fileid", "size", "mode", "nlink", "uid", "gid"):
        assert a[key] == post[key], f"{what}: post-op {key} {a[key]} != {post[key]}"
