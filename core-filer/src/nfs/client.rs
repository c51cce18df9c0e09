//! The ONC RPC client under the `nfs` core filer.
//!
//! Each shard thread keeps its own [`Pool`] of TCP connections to the
//! upstream (compio sockets belong to one thread). Calls are pipelined on
//! every connection: a writer task sends queued records in order, a reader
//! task matches replies to callers by xid. A call that gets no answer within
//! the attempt timeout is sent again with the same xid (so the server's
//! duplicate request cache recognises the repeat), a broken connection is
//! replaced, and failed connects and NFS3ERR_JUKEBOX answers are retried
//! with exponential backoff, all inside one bounded total wait; past it the
//! call fails with [`Error::Unavailable`], which the engine reads as "core filer
//! unreachable".
//!
//! The RPC itself (xids, call records, reassembling replies, matching them
//! by xid, reading the reply header) is `nfs-proto`'s sans-IO
//! [`Client`]; this module is the I/O, the pooling and the retries around it.
//!
//! [`blocking_call`] serves the few calls made once at start (portmapper,
//! MOUNT, FSINFO), before any shard runtime runs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use futures::channel::oneshot;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use nfs_proto::client::{self, Client, ClientError};
use nfs_proto::rpc::{AuthStat, OpaqueAuth, ReplyStat};
use nfs_proto::Decoder;

use super::connect::connect;
use crate::{Error, Result};

/// Largest reply record accepted (a READ of the largest payload plus headers).
const MAX_RECORD: usize = nfs_proto::nfs3::MAX_DATA + (64 << 10);
/// First backoff after a failed connect or a JUKEBOX answer.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Records written to a socket in one go at most.
const WRITE_BATCH: usize = 64;
const NFS3ERR_JUKEBOX: u32 = 10008;

/// Where the upstream is and how long calls may take.
#[derive(Debug, Clone)]
pub(super) struct ClientConfig {
    pub addr: SocketAddr,
    pub connections: usize,
    /// Wait for one transmission's answer before sending it again.
    pub attempt_timeout: Duration,
    /// Longest a call may take in all, retries included.
    pub total_timeout: Duration,
}

/// One call's outcome apart from its results.
pub(super) struct Reply {
    /// The results, as a decoder over the received record (no copy).
    pub results: Decoder,
    /// Whether the call went out more than once: a non-idempotent call may
    /// then see the effect of its own first transmission.
    pub retransmitted: bool,
}

/// State of one connection shared by its caller side and its tasks.
struct ConnShared {
    pending: RefCell<HashMap<u32, oneshot::Sender<Bytes>>>,
    dead: Cell<bool>,
}

impl ConnShared {
    fn fail(&self) {
        self.dead.set(true);
        // Dropping the senders wakes every waiting caller.
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        drop(pending);
    }
}

struct Conn {
    shared: Rc<ConnShared>,
    tx: async_channel::Sender<Vec<Bytes>>,
}

impl Conn {
    async fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Rc<Conn>> {
        let stream = compio::time::timeout(timeout, connect(addr))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        let shared = Rc::new(ConnShared {
            pending: RefCell::new(HashMap::new()),
            dead: Cell::new(false),
        });
        let (tx, rx) = async_channel::unbounded();
        let (rd, wr) = stream.into_split();
        compio::runtime::spawn(reader(rd, shared.clone())).detach();
        compio::runtime::spawn(writer(wr, rx, shared.clone())).detach();
        Ok(Rc::new(Conn { shared, tx }))
    }

    fn alive(&self) -> bool {
        !self.shared.dead.get()
    }

    /// Queue one record; the receiver gets the reply record with this xid.
    fn send(&self, xid: u32, parts: Vec<Bytes>) -> Option<oneshot::Receiver<Bytes>> {
        if !self.alive() {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.shared.pending.borrow_mut().insert(xid, tx);
        if self.tx.try_send(parts).is_err() {
            self.shared.fail();
            return None;
        }
        Some(rx)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The writer sees the channel close, shuts the socket, and the reader ends.
        self.tx.close();
    }
}

async fn reader(mut stream: TcpStream, shared: Rc<ConnShared>) {
    // Only the reply side of this client is used: the pool numbers the calls.
    let mut replies = Client::new(0, MAX_RECORD);
    'conn: loop {
        loop {
            match replies.next_reply() {
                Ok(Some((xid, rec))) => {
                    let waiter = shared.pending.borrow_mut().remove(&xid);
                    if let Some(w) = waiter {
                        let _ = w.send(rec);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("NFS upstream: {e}");
                    break 'conn;
                }
            }
        }
        if shared.dead.get() {
            break;
        }
        let want = replies.wanted().max(64 << 10);
        let mut buf = std::mem::take(replies.buffer());
        buf.reserve(want);
        let held = buf.len();
        let BufResult(n, slice) = stream.read(buf.slice(held..)).await;
        *replies.buffer() = slice.into_inner();
        match n {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shared.fail();
}

async fn writer(mut stream: TcpStream, rx: async_channel::Receiver<Vec<Bytes>>, shared: Rc<ConnShared>) {
    while let Ok(mut batch) = rx.recv().await {
        let mut records = 1;
        while records < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => {
                    batch.extend(more);
                    records += 1;
                }
                Err(_) => break,
            }
        }
        let BufResult(r, _) = stream.write_vectored_all(batch).await;
        if r.is_err() || shared.dead.get() {
            break;
        }
    }
    shared.fail();
    // SAFETY: shutdown(2) on a socket descriptor this stream owns; it only
    // changes the connection's state (and wakes the reader's pending read).
    unsafe {
        libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR);
    }
}

type Connecting = Shared<LocalBoxFuture<'static, Option<Rc<Conn>>>>;

enum Slot {
    Empty,
    Connecting(Connecting),
    Up(Rc<Conn>),
}

/// What the client counts, for the metrics endpoint.
struct Counters {
    connects: metrics::Counter,
    retransmits: metrics::Counter,
    jukebox: metrics::Counter,
    given_up: metrics::Counter,
}

/// One shard's connections to the upstream.
pub(super) struct Pool {
    cfg: ClientConfig,
    counters: Rc<Counters>,
    slots: RefCell<Vec<Slot>>,
    next: Cell<usize>,
    /// Numbers and encodes the calls of every connection: one xid sequence
    /// for the pool, so a call sent again on another connection keeps an
    /// xid no other outstanding call has.
    calls: RefCell<Client>,
    me: Weak<Pool>,
}

impl Pool {
    pub(super) fn new(cfg: ClientConfig) -> Rc<Pool> {
        let n = cfg.connections.max(1);
        let counters = Rc::new(Counters {
            connects: metrics::counter!("weir_nfs_upstream_connects_total"),
            retransmits: metrics::counter!("weir_nfs_upstream_retransmits_total"),
            jukebox: metrics::counter!("weir_nfs_upstream_jukebox_total"),
            given_up: metrics::counter!("weir_nfs_upstream_timeouts_total"),
        });
        Rc::new_cyclic(|me| Pool {
            cfg,
            counters,
            slots: RefCell::new((0..n).map(|_| Slot::Empty).collect()),
            next: Cell::new(0),
            calls: RefCell::new(Client::new(rand::random(), MAX_RECORD)),
            me: me.clone(),
        })
    }

    /// A live connection: the next one in turn, another live one while it
    /// reconnects, or the reconnected one.
    async fn conn(&self) -> Option<Rc<Conn>> {
        let n = self.slots.borrow().len();
        let i = self.next.get() % n;
        self.next.set(i.wrapping_add(1));
        let waiting = {
            let mut slots = self.slots.borrow_mut();
            match &slots[i] {
                Slot::Up(c) if c.alive() => return Some(c.clone()),
                Slot::Connecting(f) => f.clone(),
                _ => {
                    let f = self.connect(i);
                    slots[i] = Slot::Connecting(f.clone());
                    f
                }
            }
        };
        let other = self.slots.borrow().iter().find_map(|s| match s {
            Slot::Up(c) if c.alive() => Some(c.clone()),
            _ => None,
        });
        match other {
            Some(c) => Some(c),
            None => waiting.await,
        }
    }

    /// Start connecting slot `i`, in a task of its own so it completes (and
    /// fills the slot) whoever waits for it.
    fn connect(&self, i: usize) -> Connecting {
        let addr = self.cfg.addr;
        let timeout = self.cfg.attempt_timeout;
        let fut = async move {
            match Conn::open(addr, timeout).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::debug!("NFS upstream {addr}: connect: {e}");
                    None
                }
            }
        }
        .boxed_local()
        .shared();
        let me = self.me.clone();
        let f = fut.clone();
        let counters = self.counters.clone();
        compio::runtime::spawn(async move {
            let got = f.await;
            if got.is_some() {
                counters.connects.increment(1);
            }
            if let Some(pool) = me.upgrade() {
                let mut slots = pool.slots.borrow_mut();
                if let Some(slot) = slots.get_mut(i) {
                    if matches!(slot, Slot::Connecting(_)) {
                        *slot = match got {
                            Some(c) => Slot::Up(c),
                            None => Slot::Empty,
                        };
                    }
                }
            }
        })
        .detach();
        fut
    }

    /// Call `proc_` of `prog`/`vers` with arguments `args` (one record's
    /// worth of buffers, sent without copying them again).
    pub(super) async fn call(
        &self,
        prog: u32,
        vers: u32,
        proc_: u32,
        cred: &OpaqueAuth,
        args: &[Bytes],
    ) -> Result<Reply> {
        let started = Instant::now();
        let deadline = started + self.cfg.total_timeout;
        let mut backoff = BACKOFF_MIN;
        let new_call = || self.calls.borrow_mut().call(prog, vers, proc_, cred, args);
        let (mut xid, mut parts) = new_call();
        let mut sends = 0u32;
        let mut sticky: Option<Rc<Conn>> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.counters.given_up.increment(1);
                tracing::debug!(
                    prog,
                    proc_,
                    sends,
                    "NFS upstream: no answer in {:?}",
                    self.cfg.total_timeout
                );
                return Err(Error::Unavailable);
            }
            // A retransmission stays on the connection of the first send while
            // it lives: servers' duplicate request caches key on the client's
            // address and port as well as the xid.
            let conn = match sticky.take().filter(|c| c.alive()) {
                Some(c) => c,
                None => match compio::time::timeout_at(deadline, self.conn())
                    .await
                    .ok()
                    .flatten()
                {
                    Some(c) => c,
                    None => {
                        sleep_backoff(&mut backoff, deadline).await;
                        continue;
                    }
                },
            };
            let Some(rx) = conn.send(xid, parts.clone()) else {
                continue;
            };
            sends += 1;
            if sends > 1 {
                self.counters.retransmits.increment(1);
            }
            let guard = Pending { conn: &conn, xid };
            let wait = self
                .cfg
                .attempt_timeout
                .min(deadline.saturating_duration_since(now));
            let got = compio::time::timeout(wait, rx).await;
            drop(guard);
            let record = match got {
                Ok(Ok(record)) => record,
                // The connection broke: send again (same xid) on another.
                Ok(Err(_)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    compio::time::sleep(BACKOFF_MIN.min(left)).await;
                    continue;
                }
                // No answer in time: send again with the same xid.
                Err(_) => {
                    sticky = Some(conn);
                    continue;
                }
            };
            let results = client::results(record).map_err(|e| match e {
                ClientError::Refused(ReplyStat::AuthError(
                    AuthStat::TooWeak | AuthStat::BadCred | AuthStat::RejectedCred,
                )) => Error::Access,
                e => {
                    tracing::warn!(prog, vers, proc_, "NFS upstream: {e}");
                    Error::Io
                }
            })?;
            if prog == nfs_proto::nfs3::PROGRAM
                && results.rest().get(..4) == Some(&NFS3ERR_JUKEBOX.to_be_bytes()[..])
            {
                // The server is busy (e.g. fetching from tape): ask again later, as a new call.
                self.counters.jukebox.increment(1);
                sleep_backoff(&mut backoff, deadline).await;
                (xid, parts) = new_call();
                sends = 0;
                continue;
            }
            return Ok(Reply {
                results,
                retransmitted: sends > 1,
            });
        }
    }
}

/// Forgets a call's reply slot when the caller stops waiting.
struct Pending<'a> {
    conn: &'a Conn,
    xid: u32,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.conn.shared.pending.borrow_mut().remove(&self.xid);
    }
}

async fn sleep_backoff(backoff: &mut Duration, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    compio::time::sleep((*backoff).min(left)).await;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// One call on a fresh blocking connection (for start-up, before the shard
/// runtimes exist): `call` builds it on the connection's client. Returns
/// the results.
pub(super) fn blocking_call(
    addr: SocketAddr,
    timeout: Duration,
    call: impl FnOnce(&mut Client) -> (u32, Vec<Bytes>),
) -> io::Result<Decoder> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut c = Client::new(rand::random(), 1 << 20);
    let (xid, record) = call(&mut c);
    s.write_all(&record.concat())?;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let got = c
            .reply_to(xid)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{addr}: {e}")))?;
        if let Some(results) = got {
            return Ok(results);
        }
        let n = match s.read(&mut chunk) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{addr}: connection closed"),
            ));
        }
        c.buffer().extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
pub(super) mod tests;
