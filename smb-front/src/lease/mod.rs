//! Oplocks and leases of one file (MS-SMB2 3.3.1.12, 3.3.4.6-7, 3.3.5.9.8,
//! 3.3.5.9.11, 3.3.5.22; MS-FSA 2.1.5.18 for what the object store grants
//! and breaks), as a state machine that does no I/O.
//!
//! The server keeps one [`FileLeases`] per open file, on the shard that owns
//! the file, and drives it with events: an open asks for caching
//! ([`FileLeases::open`]), an open closes ([`FileLeases::close`]), the file
//! is written or truncated ([`FileLeases::write`]), renamed or deleted
//! ([`FileLeases::rename_or_delete`]), a break is acknowledged
//! ([`FileLeases::ack_oplock`], [`FileLeases::ack_lease`]) or times out
//! ([`FileLeases::timeout`]). Each returns [`Actions`]: what to answer,
//! which break notifications to send, and which breaks ended.
//!
//! Oplocks are kept in the same shape as leases: level II is R, exclusive
//! is RW and batch is RWH, so one set of rules covers both.
//!
//! A lease key names one file per client; [`LeaseTable`] (one per
//! ClientGuid) keeps that map, so that a lease acknowledgment, which names
//! only the key, finds its file and so its shard.
//!
//! How a server drives it (each call on the file's owning shard; `Wait`
//! and `WaitFor` park the request until the breaks named come back in
//! some later [`Actions::resolved`], then the same call is made again):
//!
//! ```
//! use std::time::Instant;
//! use smb_front::lease::*;
//! use smb_proto::create::{disposition, share_access};
//! use smb_proto::security::access;
//!
//! let now = Instant::now();
//! let mut file = FileLeases::default();
//! let mut leases = LeaseTable::default(); // of client [1; 16]
//! let create = |open, key, state| OpenRequest {
//!     open,
//!     caching: Caching::Lease(LeaseRequest { client: [1; 16], key, state, v2: None }),
//!     access: access::FILE_READ_DATA | access::FILE_WRITE_DATA,
//!     share: share_access::READ | share_access::WRITE,
//!     disposition: disposition::OPEN_IF,
//!     directory: false,
//! };
//! // CREATE with a lease: claim the key for this file first.
//! leases.claim([7; 16], "dir/a.txt").unwrap();
//! let a = file.open(&create(1, [7; 16], LeaseState::RWH), now);
//! assert!(matches!(a.result, OpenOutcome::Granted(Granted::Lease { state: LeaseState::RWH, .. })));
//!
//! // CREATE of another open (no lease): the lease must give up W first.
//! let plain = OpenRequest { caching: Caching::Oplock(OplockLevel::None), ..create(2, [0; 16], LeaseState::NONE) };
//! let b = file.open(&plain, now);
//! let OpenOutcome::Wait(ids) = &b.result else { unreachable!() };
//! // Send each notice to a connection of its client (on that connection's
//! // shard); oplock notices need the open's FileId.
//! for brk in &b.breaks {
//!     let notice = brk.notification(|_open| None).unwrap();
//!     assert!(matches!(notice, Notification::Lease(n) if n.new_lease_state == LeaseState::RH.to_wire()));
//! }
//!
//! // OPLOCK_BREAK carrying a lease ack: find the file by key, then ack;
//! // the parked CREATE runs again.
//! assert_eq!(leases.file_of(&[7; 16]), Some(&"dir/a.txt"));
//! let ack = file.ack_lease([1; 16], [7; 16], LeaseState::RH, now);
//! assert_eq!(ack.result, Ok(LeaseState::RH));
//! assert!(ids.iter().all(|id| ack.resolved.contains(id)));
//! let b = file.open(&plain, now);
//! assert_eq!(b.result, OpenOutcome::Granted(Granted::Oplock(OplockLevel::None)));
//!
//! // WRITE through open 2: the lease loses R and H; no W was cached, so
//! // the write need not wait.
//! let w = file.write(By::Open(2), now);
//! assert_eq!(w.result, Proceed::Now);
//! assert_eq!(w.breaks.len(), 1);
//!
//! // A timer at file.next_deadline() calls file.timeout(now) for clients
//! // that never answer.
//! assert!(file.next_deadline().is_some());
//!
//! // CLOSE: the last open of a lease ends it.
//! file.close(2);
//! if let Some((_client, key)) = file.close(1).result {
//!     leases.release(&key);
//! }
//! assert!(file.is_idle());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use smb_proto::create::{disposition, lease as lease_bits, oplock_level, share_access};
use smb_proto::oplock::{LeaseBreakNotification, OplockBreak, LEASE_BREAK_ACK_REQUIRED};
use smb_proto::security::access;
use smb_proto::status::NtStatus;
use smb_proto::FileId;

mod table;
pub use table::LeaseTable;

/// How long a break waits for its acknowledgment (MS-SMB2 3.3.2.1: 35 s).
pub const DEFAULT_BREAK_TIMEOUT: Duration = Duration::from_secs(35);

/// The server's identity of an open (for example its persistent file id).
pub type OpenId = u64;
/// A client-chosen lease key.
pub type LeaseKey = [u8; 16];
/// The ClientGuid of the client that owns a lease.
pub type ClientGuid = [u8; 16];

/// Identifies one break of this file; unique within its [`FileLeases`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BreakId(pub u64);

/// A lease state: a set of R (read), H (handle) and W (write) caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaseState(u8);

impl LeaseState {
    pub const NONE: LeaseState = LeaseState(0);
    pub const R: LeaseState = LeaseState(lease_bits::READ_CACHING as u8);
    pub const H: LeaseState = LeaseState(lease_bits::HANDLE_CACHING as u8);
    pub const W: LeaseState = LeaseState(lease_bits::WRITE_CACHING as u8);
    pub const RH: LeaseState = LeaseState(Self::R.0 | Self::H.0);
    pub const RW: LeaseState = LeaseState(Self::R.0 | Self::W.0);
    pub const RWH: LeaseState = LeaseState(Self::R.0 | Self::W.0 | Self::H.0);

    /// The wire's LeaseState field; unknown bits are dropped.
    pub fn from_wire(v: u32) -> LeaseState {
        LeaseState((v & 7) as u8)
    }

    pub fn to_wire(self) -> u32 {
        u32::from(self.0)
    }

    pub fn contains(self, other: LeaseState) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersects(self, other: LeaseState) -> bool {
        self.0 & other.0 != 0
    }

    pub fn and(self, other: LeaseState) -> LeaseState {
        LeaseState(self.0 & other.0)
    }

    pub fn without(self, other: LeaseState) -> LeaseState {
        LeaseState(self.0 & !other.0)
    }

    pub fn union(self, other: LeaseState) -> LeaseState {
        LeaseState(self.0 | other.0)
    }

    /// The state the object store can hold: R, RW, RH or RWH; anything
    /// without R (H or W alone, WH) is no caching at all (MS-FSA 2.1.5.18).
    pub fn legal(self) -> LeaseState {
        if self.contains(Self::R) {
            self
        } else {
            Self::NONE
        }
    }
}

/// An oplock level (MS-SMB2 2.2.13 RequestedOplockLevel, without LEASE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OplockLevel {
    None,
    II,
    Exclusive,
    Batch,
}

impl OplockLevel {
    /// The wire value; `None` for LEASE (0xFF) or an unknown value.
    pub fn from_wire(v: u8) -> Option<OplockLevel> {
        match v {
            oplock_level::NONE => Some(OplockLevel::None),
            oplock_level::II => Some(OplockLevel::II),
            oplock_level::EXCLUSIVE => Some(OplockLevel::Exclusive),
            oplock_level::BATCH => Some(OplockLevel::Batch),
            _ => None,
        }
    }

    pub fn to_wire(self) -> u8 {
        match self {
            OplockLevel::None => oplock_level::NONE,
            OplockLevel::II => oplock_level::II,
            OplockLevel::Exclusive => oplock_level::EXCLUSIVE,
            OplockLevel::Batch => oplock_level::BATCH,
        }
    }

    fn as_state(self) -> LeaseState {
        match self {
            OplockLevel::None => LeaseState::NONE,
            OplockLevel::II => LeaseState::R,
            OplockLevel::Exclusive => LeaseState::RW,
            OplockLevel::Batch => LeaseState::RWH,
        }
    }

    fn of_state(s: LeaseState) -> OplockLevel {
        if s.contains(LeaseState::RWH) {
            OplockLevel::Batch
        } else if s.contains(LeaseState::RW) {
            OplockLevel::Exclusive
        } else if s.contains(LeaseState::R) {
            OplockLevel::II
        } else {
            OplockLevel::None
        }
    }
}

/// A lease request (RqLs create context, MS-SMB2 2.2.13.2.8 / 2.2.13.2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRequest {
    pub client: ClientGuid,
    pub key: LeaseKey,
    pub state: LeaseState,
    /// Version 2 leases: the parent directory's lease key (if the client set
    /// one) and the client's epoch.
    pub v2: Option<LeaseV2>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseV2 {
    pub parent: Option<LeaseKey>,
    pub epoch: u16,
}

/// What caching an open asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    Oplock(OplockLevel),
    Lease(LeaseRequest),
}

/// An open being made (CREATE), after the object store's access checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRequest {
    pub open: OpenId,
    pub caching: Caching,
    /// Granted access mask (generic rights are mapped here too).
    pub access: u32,
    /// ShareAccess of the request.
    pub share: u32,
    /// CreateDisposition of the request.
    pub disposition: u32,
    pub directory: bool,
}

/// What an open was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granted {
    Oplock(OplockLevel),
    Lease {
        key: LeaseKey,
        state: LeaseState,
        /// Lease v2 epoch to answer (zero for v1).
        epoch: u16,
        /// SMB2_LEASE_FLAG_* for the response (break in progress, parent key set).
        flags: u32,
        parent: Option<LeaseKey>,
    },
}

/// The answer to [`FileLeases::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// The open is registered with this caching.
    Granted(Granted),
    /// Breaks must finish first: call `open` again once all of these are in
    /// [`Actions::resolved`] of some later call. The open is not registered.
    Wait(BTreeSet<BreakId>),
    /// The open conflicts with the share modes of existing opens (reported
    /// only after the handle-caching breaks it caused have finished).
    SharingViolation,
    /// An open of this id is registered already.
    AlreadyOpen,
}

impl OpenOutcome {
    /// The status for a CREATE that cannot proceed now.
    pub fn status(&self) -> Option<NtStatus> {
        match self {
            OpenOutcome::SharingViolation => Some(NtStatus::SHARING_VIOLATION),
            OpenOutcome::AlreadyOpen => Some(NtStatus::INVALID_PARAMETER),
            OpenOutcome::Granted(_) | OpenOutcome::Wait(_) => None,
        }
    }
}

/// Whether an operation (write, rename, ...) may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proceed {
    Now,
    /// Call again once all of these breaks are resolved.
    WaitFor(BTreeSet<BreakId>),
}

/// Who does something to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// An SMB open on this file: its own lease (or oplock) is not broken.
    Open(OpenId),
    /// An SMB open elsewhere whose (parent) lease key is this one, e.g. a
    /// file created in a directory with its parent lease key set.
    Lease(ClientGuid, LeaseKey),
    /// Someone else: another front end (NFS), the core filer, an admin.
    Other,
}

/// Who a break notification goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakTo {
    /// An OPLOCK_BREAK notification on this open's connection.
    Oplock {
        open: OpenId,
        from: OplockLevel,
        to: OplockLevel,
    },
    /// A lease break notification to the client, on the connection of any
    /// of `opens` (or any channel of the client's sessions).
    Lease {
        client: ClientGuid,
        key: LeaseKey,
        from: LeaseState,
        to: LeaseState,
        /// NewEpoch for v2 leases (zero for v1).
        epoch: u16,
        opens: Vec<OpenId>,
    },
}

/// A break notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub id: BreakId,
    pub to: BreakTo,
    /// Flags SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED; oplock breaks from
    /// level II never need one.
    pub ack_required: bool,
}

impl Break {
    /// The notification for the wire. Oplock breaks name the open by its
    /// FileId, which `file_id` looks up (`None`: the open is gone, send
    /// nothing).
    pub fn notification(&self, file_id: impl FnOnce(OpenId) -> Option<FileId>) -> Option<Notification> {
        Some(match &self.to {
            BreakTo::Oplock { open, to, .. } => Notification::Oplock(OplockBreak {
                oplock_level: to.to_wire(),
                file_id: file_id(*open)?,
            }),
            BreakTo::Lease {
                key, from, to, epoch, ..
            } => Notification::Lease(LeaseBreakNotification {
                new_epoch: *epoch,
                flags: if self.ack_required {
                    LEASE_BREAK_ACK_REQUIRED
                } else {
                    0
                },
                lease_key: *key,
                current_lease_state: from.to_wire(),
                new_lease_state: to.to_wire(),
            }),
        })
    }
}

/// A break notification ready to encode (sent with MessageId
/// 0xFFFFFFFFFFFFFFFF, SessionId and TreeId zero for leases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notification {
    Oplock(OplockBreak),
    Lease(LeaseBreakNotification),
}

/// The result of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions<T> {
    pub result: T,
    /// Notifications to send now.
    pub breaks: Vec<Break>,
    /// Breaks that ended (acknowledged, timed out, or their holder closed):
    /// operations waiting on them should be driven again.
    pub resolved: Vec<BreakId>,
}

/// Why an acknowledgment is refused (MS-SMB2 3.3.5.22.1, 3.3.5.22.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// No such open (oplock ack).
    FileClosed,
    /// The open's oplock is not breaking.
    NotBreaking,
    /// An oplock ack with OplockLevel LEASE; the oplock drops to none.
    LeaseLevelInOplockAck,
    /// An oplock ack with a level above the one broken to; the oplock
    /// drops to none.
    BadOplockLevel,
    /// No lease of this key (and client) on the file.
    UnknownLease,
    /// The lease is not breaking.
    LeaseNotBreaking,
    /// The acknowledged state is not a subset of the state broken to.
    StateNotSubset,
}

impl AckError {
    pub fn status(self) -> NtStatus {
        match self {
            AckError::FileClosed => NtStatus::FILE_CLOSED,
            AckError::NotBreaking => NtStatus::INVALID_DEVICE_STATE,
            AckError::LeaseLevelInOplockAck => NtStatus::INVALID_PARAMETER,
            // STATUS_INVALID_OPLOCK_PROTOCOL
            AckError::BadOplockLevel => NtStatus(0xC000_00E3),
            AckError::UnknownLease => NtStatus::OBJECT_NAME_NOT_FOUND,
            AckError::LeaseNotBreaking => NtStatus::UNSUCCESSFUL,
            AckError::StateNotSubset => NtStatus::REQUEST_NOT_ACCEPTED,
        }
    }
}

/// Who holds caching: a lease (shared by every open with its key) or one
/// open's oplock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HolderKey {
    Lease(ClientGuid, LeaseKey),
    Oplock(OpenId),
}

#[derive(Debug, Clone)]
struct InFlight {
    id: BreakId,
    to: LeaseState,
    deadline: Instant,
}

#[derive(Debug, Clone)]
struct Holder {
    state: LeaseState,
    breaking: Option<InFlight>,
    /// A lower state asked for while a break was in flight: broken to
    /// once that one is acknowledged.
    then: Option<LeaseState>,
    /// v2 leases: epoch and parent key.
    v2: Option<LeaseV2>,
}

#[derive(Debug, Clone, Copy)]
struct OpenEntry {
    access: u32,
    share: u32,
    holder: Option<HolderKey>,
}

/// Oplock and lease state of one file. No locks, no clocks: time comes in
/// as arguments.
#[derive(Debug, Clone)]
pub struct FileLeases {
    opens: BTreeMap<OpenId, OpenEntry>,
    holders: BTreeMap<HolderKey, Holder>,
    next_break: u64,
    timeout: Duration,
}

impl Default for FileLeases {
    fn default() -> Self {
        FileLeases::new(DEFAULT_BREAK_TIMEOUT)
    }
}

const DATA_READ: u32 = access::FILE_READ_DATA | access::FILE_EXECUTE;
const DATA_WRITE: u32 = access::FILE_WRITE_DATA | access::FILE_APPEND_DATA;
const ATTRIBUTES_ONLY: u32 =
    access::FILE_READ_ATTRIBUTES | access::FILE_WRITE_ATTRIBUTES | access::SYNCHRONIZE;

/// Generic rights mapped to the file rights share modes are about.
fn specific(mask: u32) -> u32 {
    let mut m = mask;
    if mask & (access::GENERIC_ALL | access::MAXIMUM_ALLOWED) != 0 {
        m |= DATA_READ | DATA_WRITE | access::DELETE;
    }
    if mask & access::GENERIC_READ != 0 {
        m |= access::FILE_READ_DATA;
    }
    if mask & access::GENERIC_WRITE != 0 {
        m |= DATA_WRITE;
    }
    if mask & access::GENERIC_EXECUTE != 0 {
        m |= access::FILE_EXECUTE;
    }
    m
}

/// Whether two opens' access and share modes clash (MS-FSA 2.1.5.1.2.1).
fn share_conflict(a_access: u32, a_share: u32, b_access: u32, b_share: u32) -> bool {
    let (a, b) = (specific(a_access), specific(b_access));
    let one_way = |acc: u32, share: u32| {
        (acc & DATA_READ != 0 && share & share_access::READ == 0)
            || (acc & DATA_WRITE != 0 && share & share_access::WRITE == 0)
            || (acc & access::DELETE != 0 && share & share_access::DELETE == 0)
    };
    let uses_data = |acc: u32| acc & (DATA_READ | DATA_WRITE | access::DELETE) != 0;
    uses_data(a) && uses_data(b) && (one_way(a, b_share) || one_way(b, a_share))
}

fn overwrites(disp: u32) -> bool {
    matches!(
        disp,
        disposition::SUPERSEDE | disposition::OVERWRITE | disposition::OVERWRITE_IF
    )
}

impl<T> Actions<T> {
    fn new(result: T) -> Self {
        Actions {
            result,
            breaks: Vec::new(),
            resolved: Vec::new(),
        }
    }
}

impl FileLeases {
    /// `timeout`: how long a break waits for its acknowledgment.
    pub fn new(timeout: Duration) -> Self {
        FileLeases {
            opens: BTreeMap::new(),
            holders: BTreeMap::new(),
            next_break: 1,
            timeout,
        }
    }

    /// No opens left: the table entry can go.
    pub fn is_idle(&self) -> bool {
        self.opens.is_empty() && self.holders.is_empty()
    }

    /// When the earliest unacknowledged break times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.holders
            .values()
            .filter_map(|h| h.breaking.as_ref().map(|b| b.deadline))
            .min()
    }

    /// The caching an open holds now (for QUERY, logs and tests).
    pub fn held_by(&self, open: OpenId) -> Option<Granted> {
        let e = self.opens.get(&open)?;
        Some(match e.holder {
            None => Granted::Oplock(OplockLevel::None),
            Some(k @ HolderKey::Oplock(_)) => {
                let s = self.holders.get(&k).map(|h| h.state).unwrap_or_default();
                Granted::Oplock(OplockLevel::of_state(s))
            }
            Some(k @ HolderKey::Lease(_, key)) => {
                let h = self.holders.get(&k)?;
                self.lease_grant(key, h)
            }
        })
    }

    /// The state of a lease on this file, if any.
    pub fn lease_state(&self, client: ClientGuid, key: LeaseKey) -> Option<LeaseState> {
        self.holders.get(&HolderKey::Lease(client, key)).map(|h| h.state)
    }

    fn lease_grant(&self, key: LeaseKey, h: &Holder) -> Granted {
        let mut flags = 0;
        if h.breaking.is_some() {
            flags |= lease_bits::FLAG_BREAK_IN_PROGRESS;
        }
        let parent = h.v2.and_then(|v| v.parent);
        if parent.is_some() {
            flags |= lease_bits::FLAG_PARENT_LEASE_KEY_SET;
        }
        Granted::Lease {
            key,
            state: h.state,
            epoch: h.v2.map(|v| v.epoch).unwrap_or(0),
            flags,
            parent,
        }
    }

    fn holder_of(&self, by: By) -> Option<HolderKey> {
        match by {
            By::Open(o) => self.opens.get(&o).and_then(|e| e.holder),
            By::Lease(c, k) => Some(HolderKey::Lease(c, k)),
            By::Other => None,
        }
    }

    fn holders_except(&self, spared: Option<HolderKey>) -> Vec<HolderKey> {
        self.holders
            .keys()
            .copied()
            .filter(|k| Some(*k) != spared)
            .collect()
    }

    fn opens_of(&self, key: HolderKey) -> Vec<OpenId> {
        self.opens
            .iter()
            .filter(|(_, e)| e.holder == Some(key))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Lower `key`'s caching to at most `target`. Returns the break to wait
    /// for, if one is in flight now (new or older).
    fn lower<T>(
        &mut self,
        key: HolderKey,
        target: LeaseState,
        now: Instant,
        out: &mut Actions<T>,
    ) -> Option<BreakId> {
        let h = self.holders.get_mut(&key)?;
        let mut target = h.state.and(target).legal();
        if matches!(key, HolderKey::Oplock(_)) && target != h.state {
            // Oplocks only break to level II or none.
            target = target.and(LeaseState::R);
        }
        if let Some(b) = &h.breaking {
            let id = b.id;
            if !target.contains(b.to) {
                let then = h.then.unwrap_or(b.to).and(target);
                h.then = Some(then);
            }
            return Some(id);
        }
        if target == h.state {
            return None;
        }
        let from = h.state;
        let ack_required = from.intersects(LeaseState::H.union(LeaseState::W));
        if let Some(v2) = &mut h.v2 {
            v2.epoch = v2.epoch.wrapping_add(1);
        }
        let epoch = h.v2.map(|v| v.epoch).unwrap_or(0);
        let id = BreakId(self.next_break);
        self.next_break += 1;
        if ack_required {
            h.breaking = Some(InFlight {
                id,
                to: target,
                deadline: now + self.timeout,
            });
        } else {
            h.state = target;
        }
        let to = match key {
            HolderKey::Oplock(open) => BreakTo::Oplock {
                open,
                from: OplockLevel::of_state(from),
                to: OplockLevel::of_state(target),
            },
            HolderKey::Lease(client, lkey) => BreakTo::Lease {
                client,
                key: lkey,
                from,
                to: target,
                epoch,
                opens: self.opens_of(key),
            },
        };
        out.breaks.push(Break { id, to, ack_required });
        if let HolderKey::Oplock(open) = key {
            self.drop_oplock(open);
        }
        ack_required.then_some(id)
    }

    /// An open asks for caching (CREATE). Call again after a `Wait`.
    pub fn open(&mut self, req: &OpenRequest, now: Instant) -> Actions<OpenOutcome> {
        let mut out = Actions::new(OpenOutcome::AlreadyOpen);
        if self.opens.contains_key(&req.open) {
            return out;
        }
        let mine = match req.caching {
            Caching::Lease(l) => Some(HolderKey::Lease(l.client, l.key)),
            Caching::Oplock(_) => None,
        };
        let others = self.holders_except(mine);
        let mut wait = BTreeSet::new();

        // A sharing violation first breaks handle caching of the holders
        // whose opens clash (their clients may close cached handles), and
        // is reported once those breaks are done.
        // Share modes hold between opens of one lease too; only the
        // breaks spare the requester's own lease.
        let clashing: Vec<Option<HolderKey>> = self
            .opens
            .values()
            .filter(|e| share_conflict(e.access, e.share, req.access, req.share))
            .map(|e| e.holder)
            .collect();
        if !clashing.is_empty() {
            let handle_holders: BTreeSet<HolderKey> = clashing
                .into_iter()
                .flatten()
                .filter(|k| Some(*k) != mine)
                .filter(|k| {
                    self.holders
                        .get(k)
                        .is_some_and(|h| h.state.contains(LeaseState::H))
                })
                .collect();
            for k in handle_holders {
                let target = self.holders[&k].state.without(LeaseState::H);
                wait.extend(self.lower(k, target, now, &mut out));
            }
            out.result = if wait.is_empty() {
                OpenOutcome::SharingViolation
            } else {
                OpenOutcome::Wait(wait)
            };
            return out;
        }

        // Other holders lose write caching (and everything on overwrite);
        // the open waits until no one else may hold unwritten data, and on
        // overwrite until cached handles are given up too. Opens for
        // attributes only break nothing (MS-FSA 2.1.5.1.2).
        let (target, blocking) = if overwrites(req.disposition) {
            (LeaseState::NONE, LeaseState::W.union(LeaseState::H))
        } else if specific(req.access) & !ATTRIBUTES_ONLY == 0 {
            (LeaseState::RWH, LeaseState::NONE)
        } else {
            (LeaseState::RH, LeaseState::W)
        };
        wait = self.lower_all(others, target, blocking, now, &mut out);
        if !wait.is_empty() {
            out.result = OpenOutcome::Wait(wait);
            return out;
        }

        // What may be granted: W only to the sole key with opens, nothing
        // beside someone else's W (left there for an attribute-only open).
        let alone = self.opens.values().all(|e| mine.is_some() && e.holder == mine);
        let others_write = self
            .holders
            .iter()
            .any(|(k, h)| Some(*k) != mine && h.state.contains(LeaseState::W));
        let cap = if others_write {
            LeaseState::NONE
        } else if alone {
            LeaseState::RWH
        } else {
            LeaseState::RH
        };
        let granted = match req.caching {
            Caching::Oplock(level) => {
                let s = if req.directory {
                    LeaseState::NONE
                } else {
                    OplockLevel::of_state(level.as_state().and(cap)).as_state()
                };
                let holder = (s != LeaseState::NONE).then_some(HolderKey::Oplock(req.open));
                if let Some(k) = holder {
                    self.holders.insert(
                        k,
                        Holder {
                            state: s,
                            breaking: None,
                            then: None,
                            v2: None,
                        },
                    );
                }
                self.opens.insert(
                    req.open,
                    OpenEntry {
                        access: req.access,
                        share: req.share,
                        holder,
                    },
                );
                Granted::Oplock(OplockLevel::of_state(s))
            }
            Caching::Lease(l) => {
                // No directory leases: DIRECTORY_LEASING is not announced,
                // and nothing breaks a cached listing when entries change.
                let want = if req.directory {
                    LeaseState::NONE
                } else {
                    l.state.and(cap).legal()
                };
                let key = HolderKey::Lease(l.client, l.key);
                let h = self.holders.entry(key).or_insert_with(|| Holder {
                    state: LeaseState::NONE,
                    breaking: None,
                    then: None,
                    v2: l.v2,
                });
                // Only an upgrade to a superset changes a lease; a request
                // for less (or while breaking) gets the current state.
                if h.breaking.is_none() && want != h.state && want.contains(h.state) {
                    h.state = want;
                    if let Some(v2) = &mut h.v2 {
                        v2.epoch = v2.epoch.wrapping_add(1);
                    }
                }
                self.opens.insert(
                    req.open,
                    OpenEntry {
                        access: req.access,
                        share: req.share,
                        holder: Some(key),
                    },
                );
                let h = &self.holders[&key];
                self.lease_grant(l.key, h)
            }
        };
        out.result = OpenOutcome::Granted(granted);
        out
    }

    /// An open closed. Returns the lease that ended with it (its last open),
    /// so the server can drop it from its client's lease table.
    pub fn close(&mut self, open: OpenId) -> Actions<Option<(ClientGuid, LeaseKey)>> {
        let mut out = Actions::new(None);
        let Some(e) = self.opens.remove(&open) else {
            return out;
        };
        let Some(k) = e.holder else { return out };
        if self.opens.values().any(|o| o.holder == Some(k)) {
            return out;
        }
        if let Some(h) = self.holders.remove(&k) {
            out.resolved.extend(h.breaking.map(|b| b.id));
        }
        if let HolderKey::Lease(c, key) = k {
            out.result = Some((c, key));
        }
        out
    }

    /// Data is written or the size set (truncate, extend, allocation) by
    /// `by`. Everyone else loses read caching; the operation waits only
    /// for holders of write caching (they may have unwritten data).
    pub fn write(&mut self, by: By, now: Instant) -> Actions<Proceed> {
        self.break_others(by, LeaseState::NONE, LeaseState::W, now)
    }

    /// The file is renamed or marked for deletion by `by`: everyone else
    /// loses handle caching, and the operation waits for that (their
    /// clients may close handles that would block it).
    pub fn rename_or_delete(&mut self, by: By, now: Instant) -> Actions<Proceed> {
        self.break_others(by, LeaseState::RW, LeaseState::H, now)
    }

    /// Lower every holder but `by`'s to `target`; wait for those that held
    /// any of `blocking`.
    fn break_others(
        &mut self,
        by: By,
        target: LeaseState,
        blocking: LeaseState,
        now: Instant,
    ) -> Actions<Proceed> {
        let mut out = Actions::new(Proceed::Now);
        let exempt = self.holder_of(by);
        let keys = self.holders_except(exempt);
        let wait = self.lower_all(keys, target, blocking, now, &mut out);
        if !wait.is_empty() {
            out.result = Proceed::WaitFor(wait);
        }
        out
    }

    /// Lower each of `keys` to `target`; the breaks to wait for are those
    /// of holders that held any of `blocking`.
    fn lower_all<T>(
        &mut self,
        keys: Vec<HolderKey>,
        target: LeaseState,
        blocking: LeaseState,
        now: Instant,
        out: &mut Actions<T>,
    ) -> BTreeSet<BreakId> {
        let mut wait = BTreeSet::new();
        for k in keys {
            let held = self.holders.get(&k).map(|h| h.state).unwrap_or_default();
            if let Some(id) = self.lower(k, target, now, out) {
                if held.intersects(blocking) {
                    wait.insert(id);
                }
            }
        }
        wait
    }

    /// Finish an in-flight break at `state`, then start the lower break
    /// asked for meanwhile, if any.
    fn settle<T>(&mut self, key: HolderKey, state: LeaseState, now: Instant, out: &mut Actions<T>) {
        let Some(h) = self.holders.get_mut(&key) else {
            return;
        };
        if let Some(b) = h.breaking.take() {
            out.resolved.push(b.id);
        }
        h.state = state;
        if let Some(then) = h.then.take() {
            self.lower(key, then, now, out);
        }
    }

    /// An OPLOCK_BREAK acknowledgment for an open: `level` is the wire's
    /// OplockLevel. On success, the level to answer with.
    pub fn ack_oplock(
        &mut self,
        open: OpenId,
        level: u8,
        now: Instant,
    ) -> Actions<Result<OplockLevel, AckError>> {
        let mut out = Actions::new(Err(AckError::FileClosed));
        let Some(e) = self.opens.get(&open) else {
            return out;
        };
        let key = HolderKey::Oplock(open);
        let to = match (e.holder, self.holders.get(&key).and_then(|h| h.breaking.as_ref())) {
            (Some(k), Some(b)) if k == key => b.to,
            _ => {
                out.result = Err(AckError::NotBreaking);
                return out;
            }
        };
        let acked = OplockLevel::from_wire(level).map(OplockLevel::as_state);
        let (state, result) = match acked {
            None if level == oplock_level::LEASE => (LeaseState::NONE, Err(AckError::LeaseLevelInOplockAck)),
            Some(s) if to.contains(s) && s.and(LeaseState::W) == LeaseState::NONE => {
                (s, Ok(OplockLevel::of_state(s)))
            }
            _ => (LeaseState::NONE, Err(AckError::BadOplockLevel)),
        };
        self.settle(key, state, now, &mut out);
        if state == LeaseState::NONE {
            self.drop_oplock(open);
        }
        out.result = result;
        out
    }

    fn drop_oplock(&mut self, open: OpenId) {
        let key = HolderKey::Oplock(open);
        if self
            .holders
            .get(&key)
            .is_some_and(|h| h.state == LeaseState::NONE && h.breaking.is_none())
        {
            self.holders.remove(&key);
            if let Some(e) = self.opens.get_mut(&open) {
                e.holder = None;
            }
        }
    }

    /// A lease break acknowledgment. On success, the lease's state.
    pub fn ack_lease(
        &mut self,
        client: ClientGuid,
        key: LeaseKey,
        state: LeaseState,
        now: Instant,
    ) -> Actions<Result<LeaseState, AckError>> {
        let mut out = Actions::new(Err(AckError::UnknownLease));
        let hk = HolderKey::Lease(client, key);
        let Some(h) = self.holders.get(&hk) else {
            return out;
        };
        let Some(b) = &h.breaking else {
            out.result = Err(AckError::LeaseNotBreaking);
            return out;
        };
        if !b.to.contains(state) {
            out.result = Err(AckError::StateNotSubset);
            return out;
        }
        self.settle(hk, state.legal(), now, &mut out);
        out.result = Ok(self.holders.get(&hk).map(|h| h.state).unwrap_or_default());
        out
    }

    /// Breaks whose acknowledgment is overdue at `now` end as if the client
    /// had given up all caching.
    pub fn timeout(&mut self, now: Instant) -> Actions<()> {
        let mut out = Actions::new(());
        let due: Vec<HolderKey> = self
            .holders
            .iter()
            .filter(|(_, h)| h.breaking.as_ref().is_some_and(|b| b.deadline <= now))
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            if let Some(h) = self.holders.get_mut(&k) {
                h.then = None;
            }
            self.settle(k, LeaseState::NONE, now, &mut out);
            if let HolderKey::Oplock(open) = k {
                self.drop_oplock(open);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
