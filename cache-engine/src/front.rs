//! What every front end needs from the engine to serve: listeners that
//! every shard accepts on (`SO_REUSEPORT`), and the directory a configured
//! path (an export, a share) names.

use std::net::{SocketAddr, TcpListener};

use crate::types::{Credentials, FileType};
use crate::{Engine, Error, FileHandle, Result};

/// A TCP listener with SO_REUSEPORT, so every shard can accept on the port.
pub fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // "[::]" serves IPv4 clients too.
        let _ = s.set_only_v6(false);
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// One listener per shard on `addr` (a free port when it is 0), and the
/// address they share. A port another program holds is an error, not
/// shared: it is probed without SO_REUSEPORT first.
pub fn listeners_for_shards(
    addr: SocketAddr,
    shards: usize,
) -> std::result::Result<(SocketAddr, Vec<TcpListener>), (SocketAddr, std::io::Error)> {
    if addr.port() != 0 {
        drop(TcpListener::bind(addr).map_err(|e| (addr, e))?);
    }
    let first = reuseport_listener(addr).map_err(|e| (addr, e))?;
    let bound = first.local_addr().map_err(|e| (addr, e))?;
    let mut all = vec![first];
    for _ in 1..shards {
        all.push(reuseport_listener(bound).map_err(|e| (bound, e))?);
    }
    Ok((bound, all))
}

/// Accept on `l` on this shard's thread until `stop` closes, handing each
/// connection (with TCP_NODELAY set) to `serve` as a task of this thread.
/// `what` names the front end in log lines.
pub fn spawn_acceptor<F, Fut>(what: &'static str, l: TcpListener, stop: async_channel::Receiver<()>, serve: F)
where
    F: Fn(compio::net::TcpStream, SocketAddr) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let listener = match compio::net::TcpListener::from_std(l) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{what}: cannot use listener on this shard: {e}");
            return;
        }
    };
    compio::runtime::spawn(async move {
        loop {
            let stopped = stop.recv();
            let accept = listener.accept();
            futures::pin_mut!(stopped, accept);
            let accepted = match futures::future::select(stopped, accept).await {
                futures::future::Either::Left(_) => break,
                futures::future::Either::Right((a, _)) => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    compio::runtime::spawn(serve(stream, peer)).detach();
                }
                Err(e) => {
                    tracing::warn!("{what}: accept failed: {e}");
                    compio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    })
    .detach();
}

impl Engine {
    /// The handle of the directory `/a/b` names under the core filer's root.
    pub async fn resolve_dir(&self, path: &str) -> Result<FileHandle> {
        let mut fh = self.root();
        let root = Credentials::root();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            let (h, attr, _) = self.lookup(&root, &fh, c.as_bytes()).await?;
            if attr.ftype != FileType::Directory {
                return Err(Error::NotDir);
            }
            fh = h;
        }
        Ok(fh)
    }
}

/// Closes a front end's acceptors when stopped or dropped; the receiver
/// goes to each `spawn_acceptor`.
pub struct StopSignal(Option<async_channel::Sender<()>>);

impl StopSignal {
    pub fn new() -> (StopSignal, async_channel::Receiver<()>) {
        let (tx, rx) = async_channel::bounded(1);
        (StopSignal(Some(tx)), rx)
    }

    /// Stop accepting connections (open ones end with the engine).
    pub fn stop(&mut self) {
        self.0.take();
    }
}

impl Drop for StopSignal {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Waking a shard thread from a panicking one aborts the process
            // (compio guards its remote wake-ups): leave the listeners be.
            std::mem::forget(self.0.take());
        }
    }
}
