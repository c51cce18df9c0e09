//! Oplocks and leases on the wire: what a CREATE asks for and is granted,
//! break notifications sent to the holder's connection (on whatever shard
//! it lives), OPLOCK_BREAK acknowledgments, waiting for breaks, and breaks
//! caused by other front ends (engine changes). The decisions themselves
//! are [`crate::lease::FileLeases`]'s, kept in the per-file state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use cache_engine::{Change, ChangeKind, FileHandle};
use smb_proto::create::{
    lease as lease_bits, oplock_level, CreateContext, CreateRequest, CreateResponseContext, Lease,
};
use smb_proto::crypto::Dialect;
use smb_proto::oplock::{BreakAcknowledgment, LeaseBreakAck, OplockBreak};
use smb_proto::{FileId, NtStatus};

use crate::conn::Conn;
use crate::context::{Ctx, Reply, Result};
use crate::fileops::Open;
use crate::lease::{
    AckError, Break, BreakTo, By, Caching, Granted, LeaseRequest, LeaseState, LeaseV2, Notification,
    OplockLevel, Proceed,
};
use crate::state::{on_file, on_file_here, FileState};
use crate::Server;

/// An open's connection and session.
type Home = (Weak<Conn>, u64);

thread_local! {
    /// This shard's opens, by server and open key.
    static CONNS: RefCell<HashMap<(u64, u64), Home>> = RefCell::new(HashMap::new());
}

/// Make open `key` of `session` reachable for break notifications (on its
/// connection's shard, which the key names).
pub(crate) fn register(conn: &Rc<Conn>, key: u64, session: u64) {
    let srv = &conn.srv;
    CONNS.with(|c| {
        c.borrow_mut()
            .insert((srv.id, key), (Rc::downgrade(conn), session))
    });
    srv.open_count.fetch_add(1, Ordering::Relaxed);
}

/// Forget open `key` (on its connection's shard).
pub(crate) fn unregister(srv: &Server, key: u64) {
    if CONNS.with(|c| c.borrow_mut().remove(&(srv.id, key))).is_some() {
        srv.open_count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The shard of the connection that made open `key`.
fn shard_of(key: u64) -> usize {
    (key >> crate::OPEN_KEY_SHARD_SHIFT) as usize
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What caching a CREATE asks for: a lease (RqLs, 2.1 and later, with
/// RequestedOplockLevel LEASE) or an oplock level.
pub(crate) fn caching(conn: &Conn, req: &CreateRequest) -> Caching {
    let neg = conn.neg();
    if req.requested_oplock_level != oplock_level::LEASE {
        return Caching::Oplock(
            OplockLevel::from_wire(req.requested_oplock_level).unwrap_or(OplockLevel::None),
        );
    }
    let leasing = neg.as_ref().is_some_and(|n| n.dialect >= Dialect::Smb210);
    let rq = req.contexts.iter().find_map(|c| match c {
        CreateContext::RequestLease(l) => Some(*l),
        _ => None,
    });
    match (neg, rq) {
        (Some(n), Some(l)) if leasing => Caching::Lease(LeaseRequest {
            client: n.client_guid,
            key: l.key,
            state: LeaseState::from_wire(l.state),
            // Version 2 only on SMB 3.x.
            v2: l
                .v2
                .filter(|_| n.dialect >= Dialect::Smb300)
                .map(|(parent, epoch)| LeaseV2 {
                    parent: (l.flags & lease_bits::FLAG_PARENT_LEASE_KEY_SET != 0).then_some(parent),
                    epoch,
                }),
        }),
        _ => Caching::Oplock(OplockLevel::None),
    }
}

/// The CREATE response's OplockLevel and lease context for what was granted.
pub(crate) fn granted(g: Granted, asked: &Caching) -> (u8, Option<CreateResponseContext>) {
    match g {
        Granted::Oplock(l) => (l.to_wire(), None),
        Granted::Lease {
            key,
            state,
            epoch,
            flags,
            parent,
        } => {
            let v2 = matches!(asked, Caching::Lease(LeaseRequest { v2: Some(_), .. }));
            let lease = Lease {
                key,
                state: state.to_wire(),
                flags,
                duration: 0,
                v2: v2.then(|| (parent.unwrap_or_default(), epoch)),
            };
            (oplock_level::LEASE, Some(CreateResponseContext::Lease(lease)))
        }
    }
}

/// Send break notifications to the connections of their holders.
pub(crate) fn deliver(srv: &Arc<Server>, breaks: Vec<Break>) {
    for b in breaks {
        let (key, is_lease) = match &b.to {
            BreakTo::Oplock { open, .. } => (*open, false),
            BreakTo::Lease { opens, .. } => match opens.first() {
                Some(k) => (*k, true),
                None => continue,
            },
        };
        let shard = shard_of(key);
        let fid = |open| {
            Some(FileId {
                persistent: open,
                volatile: open,
            })
        };
        let mut body = BytesMut::new();
        match b.notification(fid) {
            Some(Notification::Oplock(n)) => n.encode(&mut body),
            Some(Notification::Lease(n)) => n.encode(&mut body),
            None => continue,
        }
        // Sent at once when the holder's connection lives on this thread,
        // so the notification goes out before the answer to whatever
        // request comes next on it (clients expect the break first).
        if send_here(srv.id, key, is_lease, &body) {
            continue;
        }
        let srv = srv.clone();
        compio::runtime::spawn(async move {
            let id = srv.id;
            let sent = srv
                .engine
                .run_on(shard, move || async move {
                    send_here(id, key, is_lease, &body);
                })
                .await;
            if let Err(e) = sent {
                tracing::debug!("smb: break notification not sent: {e}");
            }
        })
        .detach();
    }
}

/// Send a break to open `key`'s connection if it lives on this thread.
fn send_here(server: u64, key: u64, is_lease: bool, body: &[u8]) -> bool {
    let Some((conn, session)) = CONNS.with(|c| {
        let c = c.borrow();
        let (w, s) = c.get(&(server, key))?;
        Some((w.upgrade()?, *s))
    }) else {
        return false;
    };
    // Lease breaks name no session (MS-SMB2 3.3.4.7); oplock breaks the open's.
    conn.send_break(if is_lease { 0 } else { session }, session, body);
    true
}

/// Park a request until a break ends (`woke`), the first one is overdue,
/// or the client cancels it.
pub(crate) async fn wait(
    woke: async_channel::Receiver<()>,
    deadline: Option<Instant>,
    cancel: &async_channel::Receiver<()>,
) -> Result<()> {
    use futures::future::{select, Either};
    let sleep = async {
        match deadline {
            Some(d) => compio::time::sleep(d.saturating_duration_since(Instant::now())).await,
            None => futures::future::pending::<()>().await,
        }
    };
    let woke = woke.recv();
    let cancelled = cancel.recv();
    futures::pin_mut!(woke, cancelled, sleep);
    match select(cancelled, select(woke, sleep)).await {
        Either::Left(_) => Err(NtStatus::CANCELLED),
        Either::Right(_) => Ok(()),
    }
}

/// A change an open waits for: until a break ends (the receiver wakes) or
/// the first pending break is overdue.
pub(crate) type Hold = (async_channel::Receiver<()>, Option<Instant>);

/// Open `key` is about to write or resize its file (or rename it,
/// `renames`): break the caching of other opens, on the file's owning
/// shard. The hold is `None` to go ahead now; otherwise wait it out and ask
/// again. The breaks are for the caller to [`deliver`] from its own shard.
fn change_step(f: &mut FileState, key: u64, renames: bool) -> (Option<Hold>, Vec<Break>) {
    let (p, breaks) = f.lease(|ls, now| {
        if renames {
            ls.rename_or_delete(By::Open(key), now)
        } else {
            ls.write(By::Open(key), now)
        }
    });
    let hold = (p != Proceed::Now).then(|| {
        let (tx, rx) = async_channel::bounded(1);
        f.add_waiter(tx);
        (rx, f.break_deadline())
    });
    (hold, breaks)
}

/// [`change_step`] called on the owning shard of `fh` (the write path,
/// which is there anyway).
pub(crate) fn change_step_here(srv: &Server, fh: FileHandle, key: u64) -> (Option<Hold>, Vec<Break>) {
    on_file_here(srv, fh, |f| change_step(f, key, false)).unwrap_or_default()
}

/// Before open `o` resizes its file (or renames it, `renames`): break the
/// caching of others, waiting for the acknowledgments the breaks need.
pub(crate) async fn before_change(ctx: &mut Ctx, o: &Open, renames: bool) -> Result<()> {
    let srv = ctx.srv().clone();
    let key = o.key;
    let mut cancel = None;
    loop {
        let (hold, breaks) = on_file(&srv, o.fh, move |f| change_step(f, key, renames)).await?;
        deliver(&srv, breaks);
        let Some((rx, deadline)) = hold else {
            return Ok(());
        };
        let c = cancel.get_or_insert_with(|| ctx.go_async());
        wait(rx, deadline, c).await?;
    }
}

/// OPLOCK_BREAK from the client: an oplock or a lease acknowledgment.
pub(crate) async fn acknowledge(ctx: &mut Ctx, ack: BreakAcknowledgment) -> Result<Reply> {
    let srv = ctx.srv().clone();
    match ack {
        BreakAcknowledgment::Oplock(b) => {
            let o = ctx.open(b.file_id)?;
            let (key, level) = (o.key, b.oplock_level);
            let (r, breaks) = on_file(&srv, o.fh, move |f| {
                f.lease(|ls, now| ls.ack_oplock(key, level, now))
            })
            .await?;
            deliver(&srv, breaks);
            let level = r.map_err(AckError::status)?;
            Ok(Reply::encode(|out| {
                OplockBreak {
                    oplock_level: level.to_wire(),
                    file_id: o.fid,
                }
                .encode(out)
            }))
        }
        BreakAcknowledgment::Lease(a) => {
            let client = ctx.conn.neg().map(|n| n.client_guid).unwrap_or_default();
            let fh: FileHandle = lock(&srv.lease_keys)
                .get(&client)
                .and_then(|t| t.file_of(&a.lease_key).copied())
                .ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
            let (key, state) = (a.lease_key, LeaseState::from_wire(a.lease_state));
            let (r, breaks) = on_file(&srv, fh, move |f| {
                f.lease(|ls, now| ls.ack_lease(client, key, state, now))
            })
            .await?;
            deliver(&srv, breaks);
            let state = r.map_err(AckError::status)?;
            Ok(Reply::encode(|out| {
                LeaseBreakAck {
                    flags: 0,
                    lease_key: key,
                    lease_state: state.to_wire(),
                    lease_duration: 0,
                }
                .encode(out)
            }))
        }
    }
}

/// Tie lease `key` of `client` to the file `fh` (a key names one file).
pub(crate) fn claim_key(srv: &Server, client: [u8; 16], key: [u8; 16], fh: FileHandle) -> Result<()> {
    lock(&srv.lease_keys).entry(client).or_default().claim(key, fh)
}

/// Let a lease key go once no open of its file holds it any more.
pub(crate) fn release_key(srv: &Server, client: [u8; 16], key: [u8; 16]) {
    let mut t = lock(&srv.lease_keys);
    if let Some(table) = t.get_mut(&client) {
        table.release(&key);
        if table.is_empty() {
            t.remove(&client);
        }
    }
}

/// What a change made elsewhere does to one file's or directory's SMB caching.
#[derive(Clone, Copy)]
enum Hit {
    /// Its data or size changed: others lose read and write caching.
    Data,
    /// It was renamed: others lose handle caching.
    Name,
    /// It was removed: as renamed, and a directory's CHANGE_NOTIFYs end.
    Removed,
}

fn hit_by_other(f: &mut FileState, hit: Hit) -> Vec<Break> {
    match hit {
        Hit::Data => f.lease(|ls, now| ls.write(By::Other, now)).1,
        Hit::Name => f.lease(|ls, now| ls.rename_or_delete(By::Other, now)).1,
        Hit::Removed => {
            f.removed();
            f.lease(|ls, now| ls.rename_or_delete(By::Other, now)).1
        }
    }
}

/// Break SMB caching for changes other front ends make (NFS). Changes with
/// a nonzero origin come from SMB opens, which broke what they had to
/// before making them. Nothing waits for these breaks: the change is made.
/// Data changes are reported on the file's owning shard, where its state
/// is, so they cost a table lookup; removals and renames hop to the owners
/// of the object and of the object a rename replaced. Directories hold no
/// leases, so their entries changing breaks nothing; a directory removed
/// ends its pending CHANGE_NOTIFYs.
pub(crate) fn subscribe(srv: &Arc<Server>) {
    let weak = Arc::downgrade(srv);
    srv.engine.subscribe(Arc::new(move |c: &Change| {
        if c.origin != 0 {
            return;
        }
        let Some(srv) = weak.upgrade() else { return };
        if srv.open_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let hits: Vec<(FileHandle, Hit)> = match &c.kind {
            ChangeKind::Write { file, .. } => return data_here(&srv, *file),
            ChangeKind::SetAttr { file, set } if set.size.is_some() => return data_here(&srv, *file),
            ChangeKind::Removed { object, .. } => vec![(*object, Hit::Removed)],
            ChangeKind::Renamed { object, replaced, .. } => {
                let mut v = vec![(*object, Hit::Name)];
                v.extend(replaced.map(|r| (r, Hit::Removed)));
                v
            }
            _ => return,
        };
        compio::runtime::spawn(async move {
            for (fh, hit) in hits {
                if let Ok(breaks) = on_file(&srv, fh, move |f| hit_by_other(f, hit)).await {
                    deliver(&srv, breaks);
                }
            }
        })
        .detach();
    }));
}

/// A data change, reported on the file's owning shard.
fn data_here(srv: &Arc<Server>, file: FileHandle) {
    if let Some(breaks) = on_file_here(srv, file, |f| hit_by_other(f, Hit::Data)) {
        deliver(srv, breaks);
    }
}
