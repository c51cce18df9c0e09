//! NLM v4 byte-range locks and the NSM calls they rely on.
//!
//! Locks are advisory and live in memory, in a table on the shard that owns
//! the file (so no lock guards them: every operation on a file's locks runs
//! on that one thread). An owner is (caller name, svid, owner handle). A
//! blocked LOCK waits in the file's queue; when a conflicting lock goes
//! away the waiter is granted and told with NLM_GRANTED (or GRANTED_MSG)
//! at its NLM service, found through the client's portmapper. If that
//! callback fails the lock is released again.
//!
//! After Weir starts, for `nlm_grace`, only reclaims succeed (skipped when
//! the state directory shows no client held locks before). Locks are not
//! persisted; the addresses of clients that took locks are (in the state
//! directory, `nlm-clients`), and at the next start each is sent SM_NOTIFY
//! at its status monitor, naming this server by its address, so that its
//! lock manager reclaims during the grace period. SHARE and UNSHARE (DOS
//! share modes) are accepted and not enforced.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use nfs_proto::nlm::nsm::{self, SmProc, SmRes, SmStatRes};
use nfs_proto::nlm::*;
use nfs_proto::rpc::ReplyStat;
use nfs_proto::{Decoder, Opaque, Xdr};

use crate::context::{args, Body, Ctx};
use crate::Server;

/// A lock owner. The address it called from is part of it: a host name is
/// only a claim, so another address naming the same host is another owner,
/// and cannot unlock or free its locks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    host: Bytes,
    addr: IpAddr,
    svid: i32,
    oh: Bytes,
}

#[derive(Debug, Clone)]
struct Held {
    owner: Owner,
    exclusive: bool,
    start: u64,
    /// Exclusive end; u64::MAX reaches end of file.
    end: u64,
}

/// Where and how to tell a waiter its lock was granted.
#[derive(Debug, Clone)]
struct Notify {
    addr: IpAddr,
    cookie: NetObj,
    alock: Nlm4Lock,
    msg: bool,
}

#[derive(Debug, Clone)]
struct Waiter {
    lock: Held,
    notify: Notify,
}

#[derive(Default)]
struct FileLocks {
    held: Vec<Held>,
    waiting: Vec<Waiter>,
}

/// Server id and engine handle bytes.
type Key = (u64, Vec<u8>);

thread_local! {
    static TABLE: RefCell<HashMap<Key, FileLocks>> = RefCell::new(HashMap::new());
}

fn range(offset: u64, len: u64) -> (u64, u64) {
    if len == 0 {
        (offset, u64::MAX)
    } else {
        (offset, offset.saturating_add(len))
    }
}

fn conflicts(a: &Held, b: &Held) -> bool {
    a.start < b.end && b.start < a.end && (a.exclusive || b.exclusive) && a.owner != b.owner
}

/// Remove `owner`'s locks over [start, end), keeping the parts outside it.
fn carve(held: &mut Vec<Held>, owner: &Owner, start: u64, end: u64) {
    let mut out = Vec::with_capacity(held.len() + 1);
    for h in held.drain(..) {
        if h.owner != *owner || h.end <= start || end <= h.start {
            out.push(h);
            continue;
        }
        if h.start < start {
            out.push(Held {
                end: start,
                ..h.clone()
            });
        }
        if end < h.end {
            out.push(Held { start: end, ..h });
        }
    }
    *held = out;
}

/// Grant every waiter no longer blocked, in arrival order.
fn wake(f: &mut FileLocks) -> Vec<Waiter> {
    let mut granted = Vec::new();
    let mut i = 0;
    while i < f.waiting.len() {
        let w = &f.waiting[i];
        if f.held.iter().any(|h| conflicts(h, &w.lock)) {
            i += 1;
            continue;
        }
        let w = f.waiting.remove(i);
        carve(&mut f.held, &w.lock.owner, w.lock.start, w.lock.end);
        f.held.push(w.lock.clone());
        granted.push(w);
    }
    granted
}

fn with_file<R>(key: &Key, f: impl FnOnce(&mut FileLocks) -> R) -> R {
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let entry = t.entry(key.clone()).or_default();
        let r = f(entry);
        if entry.held.is_empty() && entry.waiting.is_empty() {
            t.remove(key);
        }
        r
    })
}

fn holder(h: &Held) -> Nlm4Holder {
    Nlm4Holder {
        exclusive: h.exclusive,
        svid: h.svid(),
        oh: Opaque(h.owner.oh.clone()),
        l_offset: h.start,
        l_len: if h.end == u64::MAX { 0 } else { h.end - h.start },
    }
}

impl Held {
    fn svid(&self) -> i32 {
        self.owner.svid
    }
}

fn held_of(ctx: &Ctx, l: &Nlm4Lock, exclusive: bool) -> Held {
    let (start, end) = range(l.l_offset, l.l_len);
    Held {
        owner: Owner {
            host: l.caller_name.0.clone(),
            addr: peer_ip(ctx),
            svid: l.svid,
            oh: l.oh.0.clone(),
        },
        exclusive,
        start,
        end,
    }
}

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Tell granted waiters, on the current (owning) shard thread.
fn spawn_grants(srv: Arc<Server>, key: Key, granted: Vec<Waiter>) {
    for w in granted {
        let fut: LocalFuture = Box::pin(notify_granted(srv.clone(), key.clone(), w));
        compio::runtime::spawn(fut).detach();
    }
}

async fn notify_granted(srv: Arc<Server>, key: Key, w: Waiter) {
    let n = &w.notify;
    let args = Nlm4TestArgs {
        cookie: n.cookie.clone(),
        exclusive: w.lock.exclusive,
        alock: n.alock.clone(),
    }
    .to_bytes();
    let proc_ = if n.msg {
        NlmProc4::GrantedMsg
    } else {
        NlmProc4::Granted
    };
    let port = srv.cfg.callback_portmapper_port;
    let answer = crate::rpcclient::call(n.addr, port, PROGRAM, VERSION, proc_ as u32, args).await;
    let accepted = match answer {
        Ok(_) if n.msg => true,
        Ok(res) => Nlm4Res::from_bytes(res).is_ok_and(|r| r.stat == Nlm4Stat::Granted),
        Err(e) => {
            tracing::info!(client = %n.addr, "nlm: GRANTED callback failed ({e}); releasing the lock");
            false
        }
    };
    if !accepted {
        let granted = with_file(&key, |f| {
            carve(&mut f.held, &w.lock.owner, w.lock.start, w.lock.end);
            wake(f)
        });
        spawn_grants(srv, key, granted);
    }
}

fn in_grace(srv: &Server) -> bool {
    srv.started.elapsed() < srv.grace
}

/// What a lock operation needs to know about the file.
struct FileRef {
    shard: usize,
    key: Key,
}

/// The caller's address, IPv4-mapped IPv6 as IPv4.
fn peer_ip(ctx: &Ctx) -> IpAddr {
    ctx.peer.ip().to_canonical()
}

/// The file a lock call names, checked as an NFS call on it would be: a
/// handle of an export that does not admit the caller is refused.
async fn file(srv: &Server, ctx: &Ctx, fh: &NetObj) -> Result<FileRef, Nlm4Stat> {
    let fh = match srv.target_of(ctx, fh.as_bytes()) {
        Ok(t) => t.fh,
        Err(nfs_proto::nfs3::NfsStat3::Acces) => return Err(Nlm4Stat::Failed),
        Err(_) => return Err(Nlm4Stat::StaleFh),
    };
    // Locks are the file's, whichever export names it: key them by the
    // engine's own (untagged) handle, verified here.
    let (_, fh) = srv.engine.untag(&fh).map_err(|_| Nlm4Stat::StaleFh)?;
    srv.engine.getattr(&fh).await.map_err(|_| Nlm4Stat::StaleFh)?;
    Ok(FileRef {
        shard: srv.engine.owner(&fh),
        key: (srv.id, fh.as_bytes().to_vec()),
    })
}

enum Op {
    Test(Held),
    Lock(Held, Option<Notify>),
    Cancel(Held),
    Unlock(Held),
}

enum Outcome {
    Stat(Nlm4Stat),
    Conflict(Nlm4Holder),
}

/// Run a lock operation on the shard that owns the file.
async fn run(srv: &Arc<Server>, f: FileRef, op: Op) -> Outcome {
    let s = srv.clone();
    let r = srv
        .engine
        .run_on(f.shard, move || async move {
            let key = f.key;
            let (out, granted) = with_file(&key, |fl| match op {
                Op::Test(l) => match fl.held.iter().find(|h| conflicts(h, &l)) {
                    Some(h) => (Outcome::Conflict(holder(h)), Vec::new()),
                    None => (Outcome::Stat(Nlm4Stat::Granted), Vec::new()),
                },
                Op::Lock(l, notify) => {
                    if !fl.held.iter().any(|h| conflicts(h, &l)) {
                        carve(&mut fl.held, &l.owner, l.start, l.end);
                        fl.held.push(l);
                        return (Outcome::Stat(Nlm4Stat::Granted), Vec::new());
                    }
                    match notify {
                        Some(notify) => {
                            // A retransmitted blocking request replaces its earlier self.
                            fl.waiting.retain(|w| {
                                !(w.lock.owner == l.owner && w.lock.start == l.start && w.lock.end == l.end)
                            });
                            fl.waiting.push(Waiter { lock: l, notify });
                            (Outcome::Stat(Nlm4Stat::Blocked), Vec::new())
                        }
                        None => (Outcome::Stat(Nlm4Stat::Denied), Vec::new()),
                    }
                }
                Op::Cancel(l) => {
                    let before = fl.waiting.len();
                    fl.waiting.retain(|w| {
                        !(w.lock.owner == l.owner && w.lock.start == l.start && w.lock.end == l.end)
                    });
                    let stat = if fl.waiting.len() < before {
                        Nlm4Stat::Granted
                    } else {
                        Nlm4Stat::Denied
                    };
                    (Outcome::Stat(stat), Vec::new())
                }
                Op::Unlock(l) => {
                    carve(&mut fl.held, &l.owner, l.start, l.end);
                    (Outcome::Stat(Nlm4Stat::Granted), wake(fl))
                }
            });
            spawn_grants(s, key, granted);
            out
        })
        .await;
    r.unwrap_or(Outcome::Stat(Nlm4Stat::Failed))
}

/// Drop every lock and waiter that client `host` took from `addr`, on every shard.
async fn free_host(srv: &Arc<Server>, host: Bytes, addr: IpAddr) {
    let theirs = move |o: &Owner| o.host == host && o.addr == addr;
    for shard in 0..srv.engine.shard_count() {
        let (s, theirs) = (srv.clone(), theirs.clone());
        let _ = srv
            .engine
            .run_on(shard, move || async move {
                let keys: Vec<Key> =
                    TABLE.with(|t| t.borrow().keys().filter(|k| k.0 == s.id).cloned().collect());
                for key in keys {
                    let granted = with_file(&key, |f| {
                        f.held.retain(|h| !theirs(&h.owner));
                        f.waiting.retain(|w| !theirs(&w.lock.owner));
                        wake(f)
                    });
                    spawn_grants(s.clone(), key, granted);
                }
            })
            .await;
    }
}

/// NLM and NSM serve only callers some export admits (as MOUNT and NFS do).
fn admitted(srv: &Server, ctx: &Ctx) -> Result<(), ReplyStat> {
    if srv.admits_anyone_at(ctx) {
        Ok(())
    } else {
        Err(ReplyStat::AuthError(nfs_proto::rpc::AuthStat::TooWeak))
    }
}

fn res(cookie: NetObj, stat: Nlm4Stat) -> Nlm4Res {
    Nlm4Res { cookie, stat }
}

async fn test(srv: &Arc<Server>, ctx: &Ctx, a: Nlm4TestArgs) -> Nlm4TestRes {
    let stat = if in_grace(srv) {
        Nlm4TestReply::Other(Nlm4Stat::DeniedGracePeriod)
    } else {
        match file(srv, ctx, &a.alock.fh).await {
            Err(s) => Nlm4TestReply::Other(s),
            Ok(f) => match run(srv, f, Op::Test(held_of(ctx, &a.alock, a.exclusive))).await {
                Outcome::Conflict(h) => Nlm4TestReply::Denied(h),
                Outcome::Stat(s) => Nlm4TestReply::Other(s),
            },
        }
    };
    Nlm4TestRes {
        cookie: a.cookie,
        stat,
    }
}

const CLIENTS_FILE: &str = "nlm-clients";

/// Remember that `ip` takes locks, once per start (a small synchronous
/// append: it happens once per client, not per lock).
fn remember(srv: &Server, ip: IpAddr) {
    let Some(dir) = &srv.cfg.state_dir else { return };
    let new = srv.lockers.lock().unwrap_or_else(|e| e.into_inner()).insert(ip);
    if new {
        use std::io::Write;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(CLIENTS_FILE))
            .and_then(|mut f| writeln!(f, "{ip}"));
        if let Err(e) = written {
            tracing::warn!("nlm: cannot record lock client {ip}: {e}");
        }
    }
}

/// The clients that took locks before this start (the record is cleared).
pub(crate) fn take_lock_clients(dir: Option<&std::path::Path>) -> Vec<IpAddr> {
    let Some(dir) = dir else {
        return Vec::new();
    };
    let path = dir.join(CLIENTS_FILE);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let mut out: Vec<IpAddr> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    out.sort();
    out.dedup();
    out
}

/// Tell the status monitor of each earlier lock client that this server
/// restarted (best effort, on the current shard thread).
pub(crate) fn notify_restart(srv: Arc<Server>, clients: Vec<IpAddr>) {
    let me = srv.cfg.listen.ip();
    let name = if me.is_unspecified() {
        std::net::Ipv4Addr::LOCALHOST.to_string()
    } else {
        me.to_string()
    };
    for ip in clients {
        let body = nsm::StatChge {
            mon_name: Opaque::new(name.clone().into_bytes()),
            state: srv.nsm_state,
        }
        .to_bytes();
        let port = srv.cfg.callback_portmapper_port;
        compio::runtime::spawn(async move {
            let proc_ = SmProc::Notify as u32;
            match crate::rpcclient::call(ip, port, nsm::PROGRAM, nsm::VERSION, proc_, body).await {
                Ok(_) => tracing::info!(client = %ip, "nsm: told the client this server restarted"),
                Err(e) => tracing::info!(client = %ip, "nsm: cannot notify the client of the restart: {e}"),
            }
        })
        .detach();
    }
}

async fn lock(srv: &Arc<Server>, ctx: &Ctx, a: Nlm4LockArgs, msg: bool) -> Nlm4Res {
    if in_grace(srv) && !a.reclaim {
        return res(a.cookie, Nlm4Stat::DeniedGracePeriod);
    }
    let f = match file(srv, ctx, &a.alock.fh).await {
        Ok(f) => f,
        Err(s) => return res(a.cookie, s),
    };
    let notify = a.block.then(|| Notify {
        addr: ctx.peer.ip(),
        cookie: a.cookie.clone(),
        alock: a.alock.clone(),
        msg,
    });
    let stat = match run(srv, f, Op::Lock(held_of(ctx, &a.alock, a.exclusive), notify)).await {
        Outcome::Stat(s) => s,
        Outcome::Conflict(_) => Nlm4Stat::Denied,
    };
    if matches!(stat, Nlm4Stat::Granted | Nlm4Stat::Blocked) {
        remember(srv, ctx.peer.ip());
    }
    res(a.cookie, stat)
}

async fn simple(
    srv: &Arc<Server>,
    ctx: &Ctx,
    cookie: NetObj,
    l: &Nlm4Lock,
    op: fn(Held) -> Op,
    excl: bool,
) -> Nlm4Res {
    let stat = match file(srv, ctx, &l.fh).await {
        Err(s) => s,
        Ok(f) => match run(srv, f, op(held_of(ctx, l, excl))).await {
            Outcome::Stat(s) => s,
            Outcome::Conflict(_) => Nlm4Stat::Denied,
        },
    };
    res(cookie, stat)
}

/// Send the result of a _MSG call back to the caller's NLM service.
fn reply_later(srv: &Arc<Server>, ctx: &Ctx, proc_: NlmProc4, body: Bytes) {
    let (addr, port) = (ctx.peer.ip(), srv.cfg.callback_portmapper_port);
    compio::runtime::spawn(async move {
        if let Err(e) = crate::rpcclient::call(addr, port, PROGRAM, VERSION, proc_ as u32, body).await {
            tracing::info!(client = %addr, "nlm: cannot send {proc_:?}: {e}");
        }
    })
    .detach();
}

pub(crate) async fn call(srv: &Arc<Server>, ctx: &Ctx, proc_: u32, d: Decoder) -> Result<Body, ReplyStat> {
    use NlmProc4 as P;
    let p = P::from_u32(proc_).ok_or(ReplyStat::ProcUnavail)?;
    if p != P::Null {
        admitted(srv, ctx)?;
    }
    let b = ctx.body();
    Ok(match p {
        P::Null => b,
        P::Test => b.put(&test(srv, ctx, args(d)?).await),
        P::Lock | P::NmLock => b.put(&lock(srv, ctx, args(d)?, false).await),
        P::Cancel => {
            let a: Nlm4CancArgs = args(d)?;
            b.put(&simple(srv, ctx, a.cookie, &a.alock, Op::Cancel, a.exclusive).await)
        }
        P::Unlock => {
            let a: Nlm4UnlockArgs = args(d)?;
            b.put(&simple(srv, ctx, a.cookie, &a.alock, Op::Unlock, false).await)
        }
        P::TestMsg => {
            let r = test(srv, ctx, args(d)?).await;
            reply_later(srv, ctx, P::TestRes, r.to_bytes());
            b
        }
        P::LockMsg => {
            let r = lock(srv, ctx, args(d)?, true).await;
            reply_later(srv, ctx, P::LockRes, r.to_bytes());
            b
        }
        P::CancelMsg => {
            let a: Nlm4CancArgs = args(d)?;
            let r = simple(srv, ctx, a.cookie, &a.alock, Op::Cancel, a.exclusive).await;
            reply_later(srv, ctx, P::CancelRes, r.to_bytes());
            b
        }
        P::UnlockMsg => {
            let a: Nlm4UnlockArgs = args(d)?;
            let r = simple(srv, ctx, a.cookie, &a.alock, Op::Unlock, false).await;
            reply_later(srv, ctx, P::UnlockRes, r.to_bytes());
            b
        }
        // Answers to our own _MSG callbacks: nothing more to do.
        P::TestRes | P::LockRes | P::CancelRes | P::UnlockRes | P::GrantedRes => b,
        // This server is not a lock client.
        P::Granted | P::GrantedMsg => return Err(ReplyStat::ProcUnavail),
        P::Share | P::Unshare => {
            let a: Nlm4ShareArgs = args(d)?;
            let stat = if in_grace(srv) && !a.reclaim && p == P::Share {
                Nlm4Stat::DeniedGracePeriod
            } else {
                Nlm4Stat::Granted
            };
            b.put(&Nlm4ShareRes {
                cookie: a.cookie,
                stat,
                sequence: 0,
            })
        }
        P::FreeAll => {
            let a: Nlm4Notify = args(d)?;
            free_host(srv, a.name.0, peer_ip(ctx)).await;
            b
        }
    })
}

/// NSM: enough of a status monitor for clients to tell us they rebooted.
pub(crate) async fn nsm_call(
    srv: &Arc<Server>,
    ctx: &Ctx,
    proc_: u32,
    d: Decoder,
) -> Result<Body, ReplyStat> {
    let p = SmProc::from_u32(proc_).ok_or(ReplyStat::ProcUnavail)?;
    if p != SmProc::Null {
        admitted(srv, ctx)?;
    }
    let b = ctx.body();
    let up = SmStatRes {
        res_stat: SmRes::Success,
        state: srv.nsm_state,
    };
    Ok(match p {
        SmProc::Null | SmProc::SimuCrash => b,
        SmProc::Stat => {
            let _: nsm::SmName = args(d)?;
            b.put(&up)
        }
        SmProc::Mon => {
            let _: nsm::Mon = args(d)?;
            b.put(&up)
        }
        SmProc::Unmon => {
            let _: nsm::MonId = args(d)?;
            b.put(&srv.nsm_state)
        }
        SmProc::UnmonAll => {
            let _: nsm::MyId = args(d)?;
            b.put(&srv.nsm_state)
        }
        SmProc::Notify => {
            let a: nsm::StatChge = args(d)?;
            tracing::info!(client = %String::from_utf8_lossy(a.mon_name.as_bytes()), from = %ctx.peer.ip(), "nsm: client rebooted; dropping the locks it took from this address");
            free_host(srv, a.mon_name.0, peer_ip(ctx)).await;
            b
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lk(host: &str, start: u64, end: u64, exclusive: bool) -> Held {
        Held {
            owner: Owner {
                host: Bytes::copy_from_slice(host.as_bytes()),
                addr: IpAddr::from([127, 0, 0, 1]),
                svid: 1,
                oh: Bytes::from_static(b"o"),
            },
            exclusive,
            start,
            end,
        }
    }

    #[test]
    fn conflicts_and_carving() {
        assert!(conflicts(&lk("a", 0, 10, true), &lk("b", 5, 6, false)));
        assert!(!conflicts(&lk("a", 0, 10, false), &lk("b", 5, 6, false)));
        assert!(!conflicts(&lk("a", 0, 10, true), &lk("b", 10, 20, true)));
        assert!(!conflicts(&lk("a", 0, 10, true), &lk("a", 5, 6, true)));
        let mut held = vec![lk("a", 0, 100, true)];
        carve(&mut held, &lk("a", 0, 0, true).owner, 10, 20);
        let spans: Vec<_> = held.iter().map(|h| (h.start, h.end)).collect();
        assert_eq!(spans, vec![(0, 10), (20, 100)]);
        assert_eq!(range(5, 0), (5, u64::MAX));
        assert_eq!(range(u64::MAX - 1, 5), (u64::MAX - 1, u64::MAX));
    }
}
