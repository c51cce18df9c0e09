//! One RPC call: header, credentials, program and version, then the
//! program's handler; RPC-level refusals are answered here.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use nfs_proto::rpc::{decode_call, AuthStat, AuthSysParams, CallError, ReplyStat};
use nfs_proto::{mount, nfs3, nlm, portmap, Decoder, Xdr};

use crate::context::{Body, Ctx};
use crate::Server;

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
