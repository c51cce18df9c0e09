//! What every procedure handler is given and gives back: who sent the
//! call, and the reply being built.

use std::net::SocketAddr;

use bytes::Bytes;
use nfs_proto::record::record_mark;
use nfs_proto::rpc::{AuthSysParams, ReplyHeader, ReplyStat};
use nfs_proto::xdr::{pad, Encoder, Xdr};
use nfs_proto::Decoder;

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
    pub(crate) fn new(xid: u32, stat: ReplyStat) -> Body {
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

/// Decode a whole argument, or answer GARBAGE_ARGS.
pub(crate) fn args<T: Xdr>(mut d: Decoder) -> Result<T, ReplyStat> {
    let v = T::decode(&mut d).map_err(|_| ReplyStat::GarbageArgs)?;
    d.finish().map_err(|_| ReplyStat::GarbageArgs)?;
    Ok(v)
}
