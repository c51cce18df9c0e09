//! What every front end needs from the engine to serve: listeners that
//! every shard accepts on (`SO_REUSEPORT`) with connections spread evenly,
//! buffers for large messages, and the directory a configured path (an
//! export, a share) names.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// Spreads a front end's connections evenly over the shards. SO_REUSEPORT
/// picks the accepting shard by a hash of the addresses, which with a
/// handful of clients (a render node's mounts, a benchmark) can pile them
/// on one core; instead each connection goes to the shard serving fewest,
/// the accepting shard handing it over (once, at accept) when that is
/// another.
pub struct Spread {
    conns: Vec<AtomicUsize>,
    inbox: Vec<Handoff>,
}

type Handed = (std::net::TcpStream, SocketAddr, limits::ConnPermit);

struct Handoff {
    tx: async_channel::Sender<Handed>,
    rx: async_channel::Receiver<Handed>,
}

impl Spread {
    pub fn new(shards: usize) -> Arc<Spread> {
        let n = shards.max(1);
        Arc::new(Spread {
            conns: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            inbox: (0..n)
                .map(|_| {
                    let (tx, rx) = async_channel::bounded(64);
                    Handoff { tx, rx }
                })
                .collect(),
        })
    }

    /// Where a connection accepted on `here` should be served: the shard
    /// serving fewest, the lowest-numbered of those, so that placement does
    /// not depend on which shard happened to accept (clients that open one
    /// control connection and then their workers get the workers spread
    /// evenly). It counts there from now on, so a burst spreads too.
    fn place(&self, here: usize) -> usize {
        let load = |i: usize| self.conns[i].load(Ordering::Relaxed);
        let to = (0..self.conns.len()).min_by_key(|&i| load(i)).unwrap_or(here);
        self.conns[to].fetch_add(1, Ordering::Relaxed);
        to
    }

    /// A connection counted on `from` is served on `to` after all.
    fn moved(&self, from: usize, to: usize) {
        self.conns[from].fetch_sub(1, Ordering::Relaxed);
        self.conns[to].fetch_add(1, Ordering::Relaxed);
    }

    /// Hand `stream` to shard `to`; gives it back if that cannot be done.
    fn hand_over(
        &self,
        to: usize,
        stream: compio::net::TcpStream,
        peer: SocketAddr,
        permit: limits::ConnPermit,
    ) -> Option<(compio::net::TcpStream, limits::ConnPermit)> {
        // The socket leaves this shard's ring as a plain descriptor.
        let Ok(fd) = stream.as_fd().try_clone_to_owned() else {
            return Some((stream, permit));
        };
        match self.inbox[to]
            .tx
            .try_send((std::net::TcpStream::from(fd), peer, permit))
        {
            Ok(()) => None,
            Err(e) => Some((stream, e.into_inner().2)),
        }
    }
}

/// Accept on `l` on this shard's thread until `stop` closes, handing each
/// connection (with TCP_NODELAY set) to `serve` as a task of this thread,
/// or of a less busy shard when `spread` says so: every shard's acceptor
/// must then be given the same `Spread` and its own index. `what` names
/// the front end in log lines. A connection over `limits` is closed at
/// once; every shard's acceptor must be given the same counter.
pub fn spawn_acceptor<F, Fut>(
    what: &'static str,
    l: TcpListener,
    stop: async_channel::Receiver<()>,
    spread: Option<(Arc<Spread>, usize)>,
    limits: Arc<limits::ConnCounter>,
    serve: F,
) where
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
    let serve = Rc::new(serve);
    let start = {
        let spread = spread.clone();
        Rc::new(
            move |stream: compio::net::TcpStream, peer: SocketAddr, permit: limits::ConnPermit| {
                let _ = stream.set_nodelay(true);
                let (serve, spread) = (serve.clone(), spread.clone());
                compio::runtime::spawn(async move {
                    // Counted by `place` when accepted.
                    serve(stream, peer).await;
                    drop(permit);
                    if let Some((s, i)) = &spread {
                        s.conns[*i].fetch_sub(1, Ordering::Relaxed);
                    }
                })
                .detach();
            },
        )
    };
    if let Some((s, i)) = &spread {
        // Its own task: an accept dropped while in flight can lose the
        // connection the kernel just gave it.
        let (inbox, start, stop) = (s.inbox[*i].rx.clone(), start.clone(), stop.clone());
        let (s, i) = (s.clone(), *i);
        compio::runtime::spawn(async move {
            loop {
                let stopped = stop.recv();
                let handed = inbox.recv();
                futures::pin_mut!(stopped, handed);
                let (std_stream, peer, permit) = match futures::future::select(stopped, handed).await {
                    futures::future::Either::Right((Ok(h), _)) => h,
                    _ => break,
                };
                match compio::net::TcpStream::from_std(std_stream) {
                    Ok(stream) => start(stream, peer, permit),
                    Err(e) => {
                        s.conns[i].fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!("{what}: cannot take a handed-over connection: {e}");
                    }
                }
            }
        })
        .detach();
    }
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
                    // Over the limits: dropped here, so the client sees it closed.
                    let Ok(permit) = limits.admit(peer.ip()) else {
                        continue;
                    };
                    let (stream, permit) = match &spread {
                        Some((s, here)) => match s.place(*here) {
                            to if to != *here => match s.hand_over(to, stream, peer, permit) {
                                None => continue,
                                Some(back) => {
                                    s.moved(to, *here);
                                    back
                                }
                            },
                            _ => (stream, permit),
                        },
                        None => (stream, permit),
                    };
                    start(stream, peer, permit);
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

pub mod framed;
pub mod large;
pub mod limits;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_goes_to_a_shard_serving_fewer() {
        let s = Spread::new(3);
        let load = |s: &Spread| {
            s.conns
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        };
        assert_eq!(s.place(1), 0);
        assert_eq!(load(&s), [1, 0, 0]);
        s.conns[0].store(2, Ordering::Relaxed);
        s.conns[1].store(1, Ordering::Relaxed);
        s.conns[2].store(1, Ordering::Relaxed);
        // Ties go to the lowest-numbered shard, wherever accepted.
        assert_eq!(s.place(2), 1);
        assert_eq!(load(&s), [2, 2, 1]);
        assert_eq!(s.place(0), 2);
        // A burst accepted on one shard alternates: each is counted at once.
        let s = Spread::new(2);
        let placed: Vec<usize> = (0..4).map(|_| s.place(0)).collect();
        assert_eq!(placed, [0, 1, 0, 1]);
        s.moved(1, 0);
        assert_eq!(load(&s), [3, 1]);
    }
}
