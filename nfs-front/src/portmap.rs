//! Portmapper v2, so `mount -t nfs host:/export` finds MOUNT and NFS
//! without port options: answers GETPORT for the programs served here. It
//! is not a general rpcbind (SET and UNSET are refused).

use std::net::SocketAddr;
use std::sync::Arc;

use compio::buf::BufResult;
use compio::net::UdpSocket;
use nfs_proto::portmap::*;
use nfs_proto::rpc::ReplyStat;
use nfs_proto::{mount, nfs3, nlm, Decoder};

use crate::context::{args, Body, Ctx};
use crate::Server;

/// Sockets bound before the server starts, so a taken port fails early.
pub(crate) struct Bound {
    tcp: std::net::TcpListener,
    udp: std::net::UdpSocket,
}

pub(crate) fn bind(at: SocketAddr) -> std::io::Result<Bound> {
    let tcp = cache_engine::front::reuseport_listener(at)?;
    let udp = std::net::UdpSocket::bind(at)?;
    udp.set_nonblocking(true)?;
    Ok(Bound { tcp, udp })
}

/// Serve portmapper on this thread: TCP through the normal connection
/// code (which answers program 100000 on any port), UDP here.
pub(crate) fn spawn(srv: Arc<Server>, b: Bound, stop: async_channel::Receiver<()>) {
    crate::conn::spawn_acceptor(srv.clone(), b.tcp, stop.clone(), None);
    let Ok(udp) = UdpSocket::from_std(b.udp) else {
        tracing::error!("portmapper: cannot use the UDP socket");
        return;
    };
    compio::runtime::spawn(async move {
        let mut buf = Vec::with_capacity(9000);
        loop {
            let recv = udp.recv_from(buf);
            futures::pin_mut!(recv);
            let stopped = stop.recv();
            futures::pin_mut!(stopped);
            let (res, back) = match futures::future::select(stopped, recv).await {
                futures::future::Either::Left(_) => break,
                futures::future::Either::Right((BufResult(res, back), _)) => (res, back),
            };
            buf = back;
            let Ok((n, peer)) = res else { continue };
            let rec = bytes::Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
            buf.clear();
            if let Some(reply) = crate::dispatch::call(&srv, peer, rec).await {
                // UDP carries no record mark: drop the first four bytes.
                let mut out: Vec<u8> = reply.concat();
                out.drain(..4.min(out.len()));
                let _ = udp.send_to(out, peer).await;
            }
        }
    })
    .detach();
}

pub(crate) fn call(srv: &Arc<Server>, ctx: &Ctx, proc_: u32, d: Decoder) -> Result<Body, ReplyStat> {
    let p = PmapProc::from_u32(proc_).ok_or(ReplyStat::ProcUnavail)?;
    let b = ctx.body();
    let served = served(srv.port, srv.cfg.portmapper_port);
    Ok(match p {
        PmapProc::Null => b,
        PmapProc::Set | PmapProc::Unset => {
            let _: Mapping = args(d)?;
            b.put(&false)
        }
        PmapProc::Getport => {
            let m: Mapping = args(d)?;
            let port = served
                .iter()
                .find(|s| s.prog == m.prog && s.vers == m.vers && s.prot == m.prot)
                .map_or(0, |s| s.port);
            b.put(&port)
        }
        PmapProc::Dump => b.put(&PmapList(served)),
        PmapProc::Callit => return Err(ReplyStat::ProcUnavail),
    })
}

fn served(port: u16, pmap: u16) -> Vec<Mapping> {
    let port = port as u32;
    [
        (PROGRAM, VERSION),
        (nfs3::PROGRAM, nfs3::VERSION),
        (mount::PROGRAM, mount::VERSION),
        (nlm::PROGRAM, nlm::VERSION),
        (nlm::nsm::PROGRAM, nlm::nsm::VERSION),
    ]
    .into_iter()
    .map(|(prog, vers)| Mapping {
        prog,
        vers,
        prot: IPPROTO_TCP,
        port: if prog == PROGRAM { pmap as u32 } else { port },
    })
    .collect()
}
