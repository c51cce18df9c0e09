//! One RPC call: header, credentials, program and version, then the
//! program's handler; RPC-level refusals are answered here.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use nfs_proto::record::record_mark;
use nfs_proto::rpc::{decode_call, AuthStat, AuthSysParams, CallError, ReplyHeader, ReplyStat};
use nfs_proto::xdr::{pad, Encoder, Xdr};
use nfs_proto::{mount, nfs3, nlm, portmap, Decoder};

use crate::Server;

/// Who sent a call.
pub(crate) struct Ctx {
    pub xid: u32,
    pub peer: SocketAddr,
    /// AUTH_SYS parameters; None for AUTH_NONE.
    pub sys: Option<AuthSysParams>,
}

/// A successful reply being built: record mark and RPC header, the
/// results, then buffers sent as they are (READ data).
pub(crate) struct Body {
    pub enc: Encoder,
    tail: Vec<Bytes>,
    tail_len: usize,
}

impl Ctx {
    pub fn body(&self) -> Body {
        Body::new(self.xid, ReplyStat::Success)
    }
}

impl Body {
    fn new(xid: u32, stat: ReplyStat) -> Body {
        let mut enc = Encoder::with_capacity(256);
        enc.u32(0); // record mark, set in `finish`
        ReplyHeader::new(xid, stat).encode(&mut enc);
        Body {
            enc,
            tail: Vec::new(),
            tail_len: 0,
        }
    }

    /// A body holding just `v`.
    pub fn put<T: Xdr>(mut self, v: &T) -> Body {
        v.encode(&mut self.enc);
        self
    }

    /// Opaque data that follows the encoded part as separate buffers.
    pub fn push_data(&mut self, pieces: Vec<Bytes>) {
        let len: usize = pieces.iter().map(Bytes::len).sum();
        self.tail_len += len;
        self.tail.extend(pieces.into_iter().filter(|b| !b.is_empty()));
        let p = pad(len);
        if p > 0 {
            self.tail.push(Bytes::from_static(&[0, 0, 0][..p]));
            self.tail_len += p;
        }
    }

    /// The record, ready for the writer.
    pub fn finish(mut self) -> Vec<Bytes> {
        let len = self.enc.len() - 4 + self.tail_len;
        self.enc.patch_u32(0, u32::from_be_bytes(record_mark(len)));
        let mut out = Vec::with_capacity(1 + self.tail.len());
        out.push(self.enc.into_bytes());
        out.append(&mut self.tail);
        out
    }
}

/// Answer one call record; None when nothing may be sent back.
pub(crate) async fn call(srv: &Arc<Server>, peer: SocketAddr, rec: Bytes) -> Option<Vec<Bytes>> {
    let mut d = Decoder::new(rec);
    let h = match decode_call(&mut d) {
        Ok(h) => h,
        Err(CallError::RpcMismatch { xid }) => {
            return Some(refuse(xid, ReplyStat::RpcMismatch { low: 2, high: 2 }));
        }
        // Replies, and headers too broken to answer, are dropped (as knfsd does).
        Err(_) => return None,
    };
    let xid = h.xid;
    let sys = match h.cred.flavor {
        0 => None,
        1 => match AuthSysParams::from_bytes(h.cred.body.clone()) {
            Ok(p) => Some(p),
            Err(_) => return Some(refuse(xid, ReplyStat::AuthError(AuthStat::BadCred))),
        },
        _ => return Some(refuse(xid, ReplyStat::AuthError(AuthStat::BadCred))),
    };
    let ctx = Ctx { xid, peer, sys };
    let mismatch = |v: u32| Err(ReplyStat::ProgMismatch { low: v, high: v });
    let out = match h.prog {
        nfs3::PROGRAM if h.vers == nfs3::VERSION => crate::nfs::call(srv, &ctx, h.proc_, d).await,
        nfs3::PROGRAM => mismatch(nfs3::VERSION),
        mount::PROGRAM if h.vers == mount::VERSION => crate::mount::call(srv, &ctx, h.proc_, d).await,
        mount::PROGRAM => mismatch(mount::VERSION),
        nlm::PROGRAM if h.vers == nlm::VERSION => crate::nlm::call(srv, &ctx, h.proc_, d).await,
        nlm::PROGRAM => mismatch(nlm::VERSION),
        nlm::nsm::PROGRAM if h.vers == nlm::nsm::VERSION => crate::nlm::nsm_call(srv, &ctx, h.proc_, d).await,
        nlm::nsm::PROGRAM => mismatch(nlm::nsm::VERSION),
        portmap::PROGRAM if h.vers == portmap::VERSION => crate::portmap::call(srv, &ctx, h.proc_, d),
        portmap::PROGRAM => mismatch(portmap::VERSION),
        _ => Err(ReplyStat::ProgUnavail),
    };
    Some(match out {
        Ok(body) => body.finish(),
        Err(stat) => refuse(xid, stat),
    })
}

/// A reply with no results: any status but SUCCESS.
fn refuse(xid: u32, stat: ReplyStat) -> Vec<Bytes> {
    Body::new(xid, stat).finish()
}

/// Decode a whole argument, or answer GARBAGE_ARGS.
pub(crate) fn args<T: Xdr>(mut d: Decoder) -> Result<T, ReplyStat> {
    let v = T::decode(&mut d).map_err(|_| ReplyStat::GarbageArgs)?;
    d.finish().map_err(|_| ReplyStat::GarbageArgs)?;
    Ok(v)
}
