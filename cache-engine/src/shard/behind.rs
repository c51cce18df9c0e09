//! Write-behind on a shard: under a `read-write` policy a write (or a
//! change of size or times) is journaled, laid over the file as dirty
//! state, and answered once the journal has it durably; the core filer gets
//! it later (`writeback.rs`).
//!
//! Each journal record carries, before its bytes, what write-back and
//! replay need to find the file and act as its writer: the core filer's
//! handle, the caller's identity and the time of the change.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::dirty::DirtyFile;
use super::placing::{OwnerChange, PendingName, Placement};
use super::{file_key, ReadReply, Shard, Snapshot};
use crate::handle::Resolved;
use crate::journal::{FileRef, Journal, JournalError, Op, OpKind, Record};
use crate::rt::FastMap;
use crate::types::*;
use crate::{Error, Result};

/// How long a writer waits for write-back to make room under the dirty
/// quota before it is told to retry later.
const QUOTA_WAIT: Duration = Duration::from_secs(2);
/// How long a replay asks a core filer that does not answer for the size
/// of a dirty file.
const REPLAY_WAIT: Duration = Duration::from_secs(60);

/// What every record carries before its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub filer_handle: FilerHandle,
    pub cred: Credentials,
    /// When the change was made: the file's mtime after it (for a change
    /// of times, the mtime it set).
    pub time: Timespec,
    /// The atime a change of times set, if it set one.
    pub atime: Option<Timespec>,
}

/// Bytes a record's head takes at most (a handle, 255 groups, two times).
const HEAD_MAX: usize = 1 + 64 + 9 + 4 * 255 + 13 + 12 + 1;

/// Record kinds of this module, inside the journal's `SetAttr`.
const SET_SIZE: u8 = 1;
const SET_TIMES: u8 = 2;
const SET_OWNER: u8 = 3;

impl Head {
    fn encode(&self, out: &mut BytesMut) {
        let fh = self.filer_handle.as_bytes();
        out.put_u8(fh.len() as u8);
        out.put_slice(fh);
        out.put_u32(self.cred.uid);
        out.put_u32(self.cred.gid);
        let gids = &self.cred.gids[..self.cred.gids.len().min(u8::MAX as usize)];
        out.put_u8(gids.len() as u8);
        for g in gids {
            out.put_u32(*g);
        }
        out.put_i64(self.time.sec);
        out.put_u32(self.time.nsec);
        match self.atime {
            Some(t) => {
                out.put_u8(1);
                out.put_i64(t.sec);
                out.put_u32(t.nsec);
            }
            None => out.put_u8(0),
        }
    }

    /// The head and what follows it; `None` for a payload this build did
    /// not write.
    fn decode(mut b: Bytes) -> Option<(Head, Bytes)> {
        let n = *b.first()? as usize;
        b.advance(1);
        let filer_handle = FilerHandle::new(b.get(..n)?).ok()?;
        b.advance(n);
        let mut take = |k: usize| (b.len() >= k).then(|| b.split_to(k));
        let mut ids = take(9)?;
        let (uid, gid, ngids) = (ids.get_u32(), ids.get_u32(), ids.get_u8() as usize);
        let mut g = take(4 * ngids)?;
        let gids = (0..ngids).map(|_| g.get_u32()).collect();
        let mut t = take(13)?;
        let time = Timespec {
            sec: t.get_i64(),
            nsec: t.get_u32(),
        };
        let atime = match t.get_u8() {
            0 => None,
            _ => {
                let mut a = take(12)?;
                Some(Timespec {
                    sec: a.get_i64(),
                    nsec: a.get_u32(),
                })
            }
        };
        let cred = Credentials {
            uid,
            gid,
            gids,
            origin: 0,
        };
        Some((
            Head {
                filer_handle,
                cred,
                time,
                atime,
            },
            b,
        ))
    }
}

/// What a replayed record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Write {
        offset: u64,
        data: Bytes,
    },
    SetSize(u64),
    /// mtime in the head, atime too when set.
    SetTimes,
    SetOwner(OwnerChange),
    /// The object was made from the pool: where it belongs, with its mode
    /// and owner.
    Create(Box<Placement>, OwnerChange),
}

/// Decode a record this module wrote.
pub(crate) fn decode(rec: &Record) -> Option<(Head, Change)> {
    let (head, rest) = Head::decode(rec.op.payload.clone())?;
    let change = match rec.op.kind {
        OpKind::Write => Change::Write {
            offset: rec.op.offset,
            data: rest,
        },
        OpKind::SetAttr => match *rest.first()? {
            SET_SIZE => Change::SetSize(rec.op.offset),
            SET_TIMES => Change::SetTimes,
            SET_OWNER => {
                let mut rest = rest.slice(1..);
                Change::SetOwner(OwnerChange::decode(&mut rest)?)
            }
            _ => return None,
        },
        OpKind::Create => {
            let mut rest = rest;
            let placement = Placement::decode(&mut rest, rec.op.file.filer)?;
            Change::Create(Box::new(placement), OwnerChange::decode(&mut rest)?)
        }
        _ => return None,
    };
    Some((head, change))
}

pub(crate) fn encode(r: &Resolved, head: &Head, change: &Change) -> Op {
    let mut p = BytesMut::with_capacity(96);
    head.encode(&mut p);
    let (kind, offset) = match change {
        Change::Write { offset, .. } => (OpKind::Write, *offset),
        Change::SetSize(size) => {
            p.put_u8(SET_SIZE);
            (OpKind::SetAttr, *size)
        }
        Change::SetTimes => {
            p.put_u8(SET_TIMES);
            (OpKind::SetAttr, 0)
        }
        Change::SetOwner(o) => {
            p.put_u8(SET_OWNER);
            o.encode(&mut p);
            (OpKind::SetAttr, 0)
        }
        Change::Create(placement, o) => {
            placement.encode(&mut p);
            o.encode(&mut p);
            (OpKind::Create, 0)
        }
    };
    // A write's data follows as the record's tail, copied once, into the group.
    let tail = match change {
        Change::Write { data, .. } => data.clone(),
        _ => Bytes::new(),
    };
    Op {
        kind,
        file: FileRef {
            filer: r.filer,
            id: r.fileid,
        },
        offset,
        payload: p.freeze(),
        tail,
    }
}

/// One dirty file of the shard.
pub(crate) struct DirtyEntry {
    pub r: Resolved,
    /// Who write-back acts as: the last writer.
    pub cred: Credentials,
    pub file: DirtyFile,
    /// Appends not yet durable: write-back waits for them.
    pub pending: u32,
    /// The last change: write-back waits the policy's delay after it.
    pub last: Instant,
    pub since: Instant,
    pub mtime: Timespec,
    pub atime: Option<Timespec>,
    /// Why write-back gave up for now, and when it tries again.
    pub parked: Option<(String, Instant)>,
    /// Write-back failures in a row, for backoff.
    pub failures: u32,
    /// Batches written back: a read that overlapped one reads again.
    pub batches: u64,
    /// A name of the file was removed through the engine: if the core
    /// filer no longer has it, its dirty data goes with it.
    pub unlinked: bool,
    /// Its records are being journaled again (compaction): no write-back
    /// batch meanwhile.
    pub compacting: bool,
    /// The core filer's copy as Weir last saw or left it; `None` when not
    /// known (after a failed batch, part of which may have landed).
    pub base: Option<AttrStamp>,
    /// Mode and owner changes not yet written back.
    pub owner: OwnerChange,
    /// Made from the pool and not yet in place on the core filer.
    pub placement: Option<Box<Placement>>,
    /// A directory (made from the pool): it has no size to write back,
    /// also after its placement (records a compaction wrote again may
    /// outlive it).
    pub is_dir: bool,
}

impl DirtyEntry {
    fn new(r: Resolved, cred: Credentials, base: Option<&Attr>, size: u64, mtime: Timespec) -> DirtyEntry {
        DirtyEntry {
            base: base.map(AttrStamp::from),
            r,
            cred,
            file: DirtyFile::new(size),
            pending: 0,
            last: Instant::now(),
            since: Instant::now(),
            mtime,
            atime: None,
            parked: None,
            failures: 0,
            batches: 0,
            unlinked: false,
            compacting: false,
            owner: OwnerChange::default(),
            placement: None,
            is_dir: false,
        }
    }
}

/// A shard's write-behind: its journal and dirty files.
pub(crate) struct Behind {
    pub journal: Journal,
    pub files: RefCell<FastMap<u64, DirtyEntry>>,
    /// Dirty bytes over all files, against `quota`.
    pub dirty_bytes: Cell<u64>,
    pub quota: u64,
    /// Files whose write-back was asked for now (a flush), by key.
    pub urgent: RefCell<FastMap<u64, ()>>,
    /// Wakes the write-back loop.
    pub wake: event_listener::Event,
    /// Signalled whenever write-back finishes a batch or a compaction ends.
    pub progress: event_listener::Event,
    /// A compaction is under way (one at a time).
    pub compacting: Cell<bool>,
    /// Dirty files changed or removed behind the cache, per core filer.
    pub conflicts: RefCell<FastMap<u8, u64>>,
}

impl Behind {
    pub fn new(journal: Journal, quota: u64) -> Behind {
        Behind {
            journal,
            files: RefCell::new(FastMap::default()),
            dirty_bytes: Cell::new(0),
            quota,
            urgent: RefCell::new(FastMap::default()),
            wake: event_listener::Event::new(),
            progress: event_listener::Event::new(),
            compacting: Cell::new(false),
            conflicts: RefCell::new(FastMap::default()),
        }
    }

    /// Write back what can be, now, and wake the loop (which also compacts).
    pub fn urge_all(&self) {
        for (k, _) in self.files.borrow().iter() {
            self.urgent.borrow_mut().insert(*k, ());
        }
        self.wake.notify(usize::MAX);
    }

    /// The dirty state of `r`. One under its key for another handle is of
    /// a removed file whose id the core filer gave again, and not `r`'s.
    pub fn entry(&self, r: &Resolved) -> Option<Ref<'_, DirtyEntry>> {
        Ref::filter_map(self.files.borrow(), |f| {
            f.get(&file_key(r)).filter(|e| e.r.filer_handle == r.filer_handle)
        })
        .ok()
    }

    /// [`Self::entry`], to change.
    pub fn entry_mut(&self, r: &Resolved) -> Option<RefMut<'_, DirtyEntry>> {
        RefMut::filter_map(self.files.borrow_mut(), |f| {
            f.get_mut(&file_key(r))
                .filter(|e| e.r.filer_handle == r.filer_handle)
        })
        .ok()
    }

    /// Whether the journal is half full and a quarter of it holds only
    /// bytes later writes replaced: compaction then frees more than it
    /// writes again.
    pub fn needs_compaction(&self) -> bool {
        let (used, len) = self
            .journal
            .with_log(|l| (l.used_bytes(), l.geometry().log_len()));
        used * 2 >= len && used.saturating_sub(self.dirty_bytes.get()) * 4 >= len
    }

    /// Recount the dirty bytes after a file's went from `before` to `after`.
    pub fn account(&self, before: u64, after: u64) {
        self.dirty_bytes
            .set((self.dirty_bytes.get() + after).saturating_sub(before));
    }
}

pub(crate) fn journal_error(e: JournalError) -> Error {
    match e {
        e if e.is_retry_later() => Error::Unavailable,
        JournalError::TooLarge { .. } => Error::FBig,
        // Stopping: the change was not acknowledged, the client sends it again.
        JournalError::Closed => Error::Unavailable,
        other => {
            tracing::error!("write journal: {other}");
            Error::Io
        }
    }
}

impl Shard {
    /// Whether `r` has changes not yet written back.
    pub(crate) fn is_dirty(&self, r: &Resolved) -> bool {
        self.behind.as_ref().is_some_and(|b| b.entry(r).is_some())
    }

    /// A read of a file with dirty data: the core filer's bytes (through
    /// the cache) up to where they still count, zeros past them, the dirty
    /// extents over both. Read again when a write-back finished meanwhile.
    pub(crate) async fn read_dirty(
        self: &Rc<Self>,
        r: &Resolved,
        cred: &Credentials,
        snap: Snapshot,
        offset: u64,
        count: u32,
    ) -> Result<ReadReply> {
        let b = self.behind.as_ref().ok_or(Error::Io)?;
        loop {
            let Some((size, limit, batches)) = b
                .entry(r)
                .map(|e| (e.file.size(), e.file.filer_limit(), e.batches))
            else {
                let snap = self.state(r, cred).await?;
                return self.read_cached(r, cred, snap, offset, count).await;
            };
            let attr = self.presented(r, snap.attr);
            let end = offset.saturating_add(u64::from(count)).min(size);
            if offset >= end {
                return Ok(ReadReply {
                    data: Vec::new(),
                    eof: offset >= size,
                    attr,
                });
            }
            let mut buf = vec![0u8; (end - offset) as usize];
            let base_end = end.min(limit);
            if base_end > offset {
                let base = self
                    .read_cached(r, cred, snap, offset, (base_end - offset) as u32)
                    .await?;
                let mut at = 0;
                for p in &base.data {
                    buf[at..at + p.len()].copy_from_slice(p);
                    at += p.len();
                }
            }
            let Some(e) = b.entry(r).filter(|e| e.batches == batches) else {
                continue;
            };
            for (o, piece) in e.file.overlay(offset, end - offset) {
                let i = (o - offset) as usize;
                buf[i..i + piece.len()].copy_from_slice(&piece);
            }
            let size = e.file.size();
            drop(e);
            return Ok(ReadReply {
                data: vec![Bytes::from(buf)],
                eof: end >= size,
                attr: self.presented(r, snap.attr),
            });
        }
    }

    /// A dirty entry under `r`'s key for another handle is of a removed
    /// file whose id the core filer gave to `r`: its data has nowhere to go.
    fn retire_reused(&self, b: &Behind, r: &Resolved) {
        let key = file_key(r);
        let gone = {
            let mut files = b.files.borrow_mut();
            match files.get(&key) {
                Some(e) if e.r.filer_handle != r.filer_handle => files.remove(&key),
                _ => None,
            }
        };
        if let Some(gone) = gone {
            self.discard_dirty(b, gone, "it was removed and its file id is in use again");
        }
    }

    /// Drop a dirty file that cannot be written back (it is gone from the
    /// core filer), its records with it.
    pub(super) fn discard_dirty(&self, b: &Behind, gone: DirtyEntry, why: &str) {
        let bytes = gone.file.dirty_bytes();
        b.account(bytes, 0);
        b.urgent.borrow_mut().remove(&file_key(&gone.r));
        if let Some(p) = &gone.placement {
            self.shared.placing.remove(file_key(&p.dir), &p.name, &gone.r);
        }
        let (fileid, unlinked) = (gone.r.fileid, gone.unlinked);
        for s in gone.file.discard() {
            let _ = b.journal.done(s);
        }
        if unlinked {
            tracing::info!(
                shard = self.id,
                file = fileid,
                "write-back: {bytes} dirty bytes dropped: {why}"
            );
        } else {
            // Removed on the core filer, not through Weir, while dirty here.
            self.count_conflict(&gone.r);
            tracing::warn!(
                shard = self.id,
                file = fileid,
                "write-back: {bytes} dirty bytes dropped: {why}"
            );
        }
        b.progress.notify(usize::MAX);
    }

    /// `r`, dirty here, was changed or removed on the core filer behind the
    /// cache.
    pub(super) fn count_conflict(&self, r: &Resolved) {
        self.stats.writeback_conflicts.increment(1);
        if let Some(b) = &self.behind {
            *b.conflicts.borrow_mut().entry(r.filer).or_default() += 1;
        }
    }

    /// A name of `r` was removed: its attributes are asked again, and if
    /// the file has dirty data and turns out gone, write-back drops it.
    pub(crate) fn unlinked(&self, r: &Resolved) {
        self.refresh(r, None, false);
        if let Some(b) = &self.behind {
            if let Some(mut e) = b.entry_mut(r) {
                e.unlinked = true;
            }
        }
    }

    /// Whether `r` has a change of mode or owner (or a placement) not yet
    /// on the core filer.
    pub(crate) fn owner_pending(&self, r: &Resolved) -> bool {
        let Some(b) = &self.behind else { return false };
        b.entry(r)
            .is_some_and(|e| !e.owner.is_empty() || e.placement.is_some())
    }

    /// Whether writes to `r` are held here and written back later.
    pub(crate) fn writes_behind(&self, r: &Resolved) -> bool {
        self.behind.is_some() && self.policy(r).writeback_delay.is_some()
    }

    /// The attributes clients see of a file with dirty data: the core
    /// filer's, with the size and times of the changes not written back.
    pub(crate) fn presented(&self, r: &Resolved, mut attr: Attr) -> Attr {
        let Some(b) = &self.behind else { return attr };
        if attr.ftype == FileType::Directory {
            self.shared.placing.present_dir(file_key(r), &mut attr);
        }
        if let Some(e) = b.entry(r) {
            attr.size = e.file.size();
            attr.used = attr.used.max(attr.size);
            attr.mtime = e.mtime;
            attr.ctime = attr.ctime.max(e.mtime);
            if let Some(a) = e.atime {
                attr.atime = a;
            }
            e.owner.present(&mut attr);
            attr.change = attr.change.wrapping_add(e.file.applied_seq());
        }
        attr
    }

    /// A write under write-behind: journaled, laid over the file, answered
    /// once durable (so always FILE_SYNC).
    pub(crate) async fn write_behind(
        &self,
        r: &Resolved,
        cred: &Credentials,
        snap: &Snapshot,
        offset: u64,
        data: Bytes,
    ) -> Result<(u32, Stability, BeforeAfter)> {
        let b = self.behind.as_ref().ok_or(Error::Io)?;
        let before = AttrStamp::from(&self.presented(r, snap.attr));
        self.dirty_room(b, data.len() as u64).await?;
        // A small write is a slice of its connection's receive buffer,
        // which holding it would keep whole: copy it.
        let data = if data.len() < crate::rt::msgbuf::MIN {
            Bytes::copy_from_slice(&data)
        } else {
            data
        };
        let len = data.len() as u32;
        // A write larger than a record may be (a small journal) goes as
        // several, answered once the last is durable.
        let most = b.journal.with_log(|l| l.geometry().max_payload());
        let chunk = most.saturating_sub(HEAD_MAX) & !4095;
        if chunk == 0 {
            return Err(Error::FBig);
        }
        let mut after = None;
        let mut at = 0;
        while at < data.len() || after.is_none() {
            let piece = data.slice(at..(at + chunk).min(data.len()));
            at += piece.len();
            let change = Change::Write {
                offset: offset + (at - piece.len()) as u64,
                data: piece,
            };
            after = Some(self.journal_change(b, r, cred, snap, change, None).await?);
        }
        let after = after.expect("one record at least");
        Ok((
            len,
            Stability::FileSync,
            BeforeAfter {
                before: Some(before),
                after: Some(after),
            },
        ))
    }

    /// A change of attributes under write-behind (`set` checked already),
    /// journaled: size, times, mode and owner.
    pub(crate) async fn setattr_behind(
        &self,
        r: &Resolved,
        cred: &Credentials,
        snap: &Snapshot,
        set: &SetAttr,
    ) -> Result<BeforeAfter> {
        let b = self.behind.as_ref().ok_or(Error::Io)?;
        let before = AttrStamp::from(&self.presented(r, snap.attr));
        let mut after = self.presented(r, snap.attr);
        if let Some(size) = set.size {
            after = self
                .journal_change(b, r, cred, snap, Change::SetSize(size), None)
                .await?;
        }
        let time = |t: SetTime| match t {
            SetTime::DontChange => None,
            SetTime::ServerNow => Some(Timespec::now()),
            SetTime::Client(t) => Some(t),
        };
        let (atime, mtime) = (time(set.atime), time(set.mtime));
        if atime.is_some() || mtime.is_some() {
            let mtime = mtime.unwrap_or(after.mtime);
            after = self
                .journal_change(b, r, cred, snap, Change::SetTimes, Some((mtime, atime)))
                .await?;
        }
        let owner = OwnerChange::of(set);
        if !owner.is_empty() {
            // A change of mode or owner leaves mtime as it was.
            let times = Some((after.mtime, None));
            after = self
                .journal_change(b, r, cred, snap, Change::SetOwner(owner), times)
                .await?;
        }
        Ok(BeforeAfter {
            before: Some(before),
            after: Some(after),
        })
    }

    /// Wait, bounded, until the dirty quota has room for `len` more bytes.
    async fn dirty_room(&self, b: &Behind, len: u64) -> Result<()> {
        let deadline = Instant::now() + QUOTA_WAIT;
        while b.dirty_bytes.get() + len > b.quota && b.dirty_bytes.get() > 0 {
            self.stats.dirty_quota_waits.increment(1);
            let listener = b.progress.listen();
            b.urge_all();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || compio::time::timeout(left, listener).await.is_err() {
                return Err(Error::Unavailable);
            }
        }
        Ok(())
    }

    /// Journal `change` to `r`, lay it over the file, and once durable
    /// return the attributes clients see after it.
    pub(super) async fn journal_change(
        &self,
        b: &Behind,
        r: &Resolved,
        cred: &Credentials,
        snap: &Snapshot,
        change: Change,
        times: Option<(Timespec, Option<Timespec>)>,
    ) -> Result<Attr> {
        let mut snap = *snap;
        let deadline = Instant::now() + QUOTA_WAIT;
        for _ in 0..64 {
            match self.journal_once(b, r, cred, &snap, change.clone(), times).await {
                Ok(Some(attr)) => return Ok(attr),
                Ok(None) => snap = self.state(r, cred).await?,
                // Full: write-back and compaction make room; wait, bounded.
                Err(Error::Unavailable) => {
                    let listener = b.progress.listen();
                    b.urge_all();
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || compio::time::timeout(left, listener).await.is_err() {
                        return Err(Error::Unavailable);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable)
    }

    /// [`Self::journal_change`] once; `None` when the file is not dirty yet
    /// and changed since `snap` (a write-back may have just finished): a
    /// dirty file starts from the core filer's copy as it is now.
    async fn journal_once(
        &self,
        b: &Behind,
        r: &Resolved,
        cred: &Credentials,
        snap: &Snapshot,
        change: Change,
        times: Option<(Timespec, Option<Timespec>)>,
    ) -> Result<Option<Attr>> {
        let key = file_key(r);
        self.retire_reused(b, r);
        if !b.files.borrow().contains_key(&key) {
            let current = self
                .files
                .borrow_mut()
                .get(&key)
                .is_some_and(|st| st.filer_handle == r.filer_handle && st.epoch == snap.epoch);
            if !current {
                return Ok(None);
            }
        }
        let now = Timespec::now();
        let (mtime, atime) = times.unwrap_or((now, None));
        let head = Head {
            filer_handle: r.filer_handle,
            cred: Credentials {
                origin: 0,
                ..cred.clone()
            },
            time: mtime,
            atime,
        };
        let (seq, durable) = b
            .journal
            .submit(encode(r, &head, &change))
            .map_err(journal_error)?;
        // Laid over the file at once, in journal order: a read sees it, and
        // a later record (durable after this one) lays over it in turn.
        let superseded = {
            let mut files = b.files.borrow_mut();
            let e = files.entry(key).or_insert_with(|| {
                DirtyEntry::new(
                    *r,
                    head.cred.clone(),
                    Some(&snap.attr),
                    snap.attr.size,
                    snap.attr.mtime,
                )
            });
            let bytes_before = e.file.dirty_bytes();
            let done = apply(e, seq, &head, change);
            e.pending += 1;
            e.last = Instant::now();
            e.cred = head.cred.clone();
            b.account(bytes_before, e.file.dirty_bytes());
            done
        };
        // The loop compacts now, while there is room to.
        if b.needs_compaction() && !b.compacting.get() {
            b.wake.notify(usize::MAX);
        }
        let waited = Instant::now();
        let res = durable.await;
        if let Some(mut e) = b.entry_mut(r) {
            e.pending -= 1;
        }
        res.map_err(journal_error)?;
        // Records this one replaced are durable too (acknowledged in order).
        for s in superseded {
            if let Err(e) = b.journal.done(s) {
                tracing::warn!(shard = self.id, seq = s, "journal: {e}");
            }
        }
        self.stats.journal_appends.increment(1);
        let filer_attr = self
            .files
            .borrow_mut()
            .get(&key)
            .filter(|st| st.filer_handle == r.filer_handle)
            .map_or(snap.attr, |st| st.attr);
        self.stats
            .journal_sync_latency
            .record(waited.elapsed().as_secs_f64());
        self.publish(r, &filer_attr, Instant::now());
        Ok(Some(self.presented(r, filer_attr)))
    }

    /// A replayed file's attributes from the core filer, asked again while
    /// it does not answer (it may be starting, or slow under load), for up
    /// to [`REPLAY_WAIT`]: a dirty file's size is what its other bytes
    /// are read against.
    async fn replay_getattr(
        &self,
        filer: &std::sync::Arc<dyn crate::filer::CoreFiler>,
        cred: &Credentials,
        r: &Resolved,
    ) -> Result<Attr> {
        let deadline = Instant::now() + REPLAY_WAIT;
        loop {
            // A call that timed out marks the core filer down for a while;
            // here it is asked again regardless.
            self.filer_down_until.set(None);
            match self.filer_call(filer.getattr(cred, &r.filer_handle)).await {
                Err(Error::Unavailable | Error::Io) if Instant::now() < deadline => {
                    compio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// Rebuild the dirty files from the records a journal replay returned,
    /// in order; each file's size on the core filer is asked first. Files
    /// whose core filer does not answer are parked until it does.
    pub(crate) async fn replay(&self, records: Vec<Record>) {
        let Some(b) = &self.behind else { return };
        let mut unknown = 0;
        for rec in records {
            let Some((head, change)) = decode(&rec) else {
                unknown += 1;
                continue;
            };
            let r = Resolved {
                filer: rec.op.file.filer,
                fileid: rec.op.file.id,
                filer_handle: head.filer_handle,
            };
            let key = file_key(&r);
            self.retire_reused(b, &r);
            let known = b.files.borrow().contains_key(&key);
            if !known {
                let filer = match self.filer(&r) {
                    Ok(f) => f.clone(),
                    Err(_) => {
                        unknown += 1;
                        continue;
                    }
                };
                let (base, size) = match self.replay_getattr(&filer, &head.cred, &r).await {
                    Ok(a) => (Some(a), a.size),
                    Err(e) => {
                        // Sized as nothing: records lay over it all the same,
                        // and write-back sets the size; but bytes of the core
                        // filer's copy that no record covers read as zeros
                        // until then.
                        tracing::error!(
                            shard = self.id,
                            file = r.fileid,
                            "replay: the core filer did not give the file's size ({e}); \
                             its bytes no change covers read as zeros until it is written back"
                        );
                        (None, 0)
                    }
                };
                b.files.borrow_mut().insert(
                    key,
                    DirtyEntry::new(r, head.cred.clone(), base.as_ref(), size, head.time),
                );
            }
            // A create whose object left the pool was put in place before
            // the crash (a compaction can journal it again after that):
            // its name may have changed since, so it is not held again.
            let placed = match &change {
                Change::Create(p, _) => !self.still_in_pool(p).await,
                _ => false,
            };
            if let (Change::Create(p, _), false) = (&change, placed) {
                let pending = PendingName {
                    child: r,
                    pool_name: p.pool_name.clone(),
                };
                let held = self.shared.placing.reserve(file_key(&p.dir), &p.name, pending);
                if held.is_err_and(|there| there.child != r) {
                    tracing::error!(
                        shard = self.id,
                        file = r.fileid,
                        "replay: two objects made under one name; the later is written back over the earlier"
                    );
                }
            }
            let mut files = b.files.borrow_mut();
            let e = files.get_mut(&key).expect("inserted above");
            let before = e.file.dirty_bytes();
            let done = apply(e, rec.seq, &head, change);
            if placed {
                e.placement = None;
            }
            b.account(before, e.file.dirty_bytes());
            drop(files);
            for s in done {
                let _ = b.journal.done(s);
            }
        }
        if unknown > 0 {
            tracing::error!(
                shard = self.id,
                records = unknown,
                "journal records this build cannot read were kept"
            );
        }
        let n = b.files.borrow().len();
        if n > 0 {
            tracing::info!(
                shard = self.id,
                files = n,
                bytes = b.dirty_bytes.get(),
                "write-behind: dirty data replayed"
            );
        }
    }
}

/// Apply one record to a dirty file; the records it made unneeded.
fn apply(e: &mut DirtyEntry, seq: u64, head: &Head, change: Change) -> Vec<u64> {
    match change {
        Change::Write { offset, data } => {
            e.mtime = head.time;
            e.file.write(seq, offset, data)
        }
        Change::SetSize(size) => {
            e.mtime = head.time;
            e.file.set_size(seq, size)
        }
        Change::SetTimes => {
            e.mtime = head.time;
            e.atime = head.atime.or(e.atime);
            e.file.set_times(seq)
        }
        // Needed, like a change of times, until a batch carries it.
        Change::SetOwner(o) => {
            e.owner.merge(o);
            e.file.set_times(seq)
        }
        Change::Create(placement, o) => {
            e.mtime = head.time;
            e.owner.merge(o);
            e.is_dir = placement.ftype == FileType::Directory;
            e.placement = Some(placement);
            e.file.set_times(seq)
        }
    }
}

/// Runs with the shard as long as it has a journal.
pub(crate) fn spawn_writeback(shard: &Rc<Shard>) {
    if shard.behind.is_some() {
        let s = Rc::clone(shard);
        compio::runtime::spawn(async move { s.writeback_loop().await }).detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_the_file_the_writer_and_the_time() {
        let r = Resolved {
            filer: 2,
            fileid: 77,
            filer_handle: FilerHandle::new(b"upstream-handle").unwrap(),
        };
        let head = Head {
            filer_handle: r.filer_handle,
            cred: Credentials {
                uid: 1000,
                gid: 100,
                gids: vec![100, 5, 6],
                origin: 0,
            },
            time: Timespec {
                sec: 1_700_000_000,
                nsec: 5,
            },
            atime: Some(Timespec { sec: 9, nsec: 1 }),
        };
        for change in [
            Change::Write {
                offset: 4096,
                data: Bytes::from_static(b"hello"),
            },
            Change::SetSize(12345),
            Change::SetTimes,
        ] {
            let mut op = encode(&r, &head, &change);
            // As replay returns it: the tail read back with the payload.
            op.payload = [op.payload.clone(), std::mem::take(&mut op.tail)].concat().into();
            let rec = Record { seq: 9, epoch: 1, op };
            assert_eq!(decode(&rec), Some((head.clone(), change)));
        }
        let mut bad = encode(&r, &head, &Change::SetTimes);
        bad.payload = bad.payload.slice(..10);
        assert_eq!(
            decode(&Record {
                seq: 1,
                epoch: 1,
                op: bad
            }),
            None
        );
    }
}
