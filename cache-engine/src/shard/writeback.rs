//! Write-back: each shard sends its dirty files to the core filer once
//! they have been quiet for the policy's delay (or dirty too long, or a
//! flush asks), one batch per file at a time and several files at once,
//! and trims the journal once the core filer has a batch durably.
//!
//! A batch goes as: cut (if the file was truncated), the dirty extents
//! merged into writes of up to 1 MiB (several in flight), COMMIT, then one
//! SETATTR of the size and the times clients saw. A core filer that does not
//! answer is tried again with backoff; one that refuses (permission, no
//! space, the file gone) parks the file, which `status` shows and a flush
//! reports, and is tried again later.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};

use super::dirty::Batch;
use super::placing::{OwnerChange, Placement};
use super::{file_key, Shard};
use crate::filer::CoreFiler;
use crate::handle::Resolved;
use crate::types::*;
use crate::{Error, Result};

/// Files written back at once per shard.
const FILES_IN_FLIGHT: usize = 16;
/// Bytes of writes in flight per file: small writes (scattered extents)
/// go many at once, so that the link's round trip does not bound them.
const BYTES_IN_FLIGHT: usize = 8 << 20;
/// Writes in flight per file, at least and at most.
const WRITES_IN_FLIGHT: (usize, usize) = (8, 64);
/// Largest write sent.
const MAX_WRITE: usize = 1 << 20;
/// How often the loop looks for due files when nothing wakes it.
const TICK: Duration = Duration::from_millis(250);
/// First retry after a core filer that did not answer; doubles up to `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// When a refused write-back is tried again.
const PARKED_RETRY: Duration = Duration::from_secs(60);

/// One file's batch to write back, and what it is written as.
struct Job {
    key: u64,
    r: Resolved,
    cred: Credentials,
    mtime: Timespec,
    atime: Option<Timespec>,
    /// The core filer's copy as Weir last left it, if known.
    base: Option<AttrStamp>,
    batch: Batch,
    owner: OwnerChange,
    placement: Option<Box<Placement>>,
    is_dir: bool,
}

/// What a batch's closing SETATTR sets besides the size.
struct LastSet {
    mtime: Timespec,
    atime: Option<Timespec>,
    owner: OwnerChange,
    /// A directory made from the pool: it has no size to set.
    is_dir: bool,
}

/// What one file's write-back amounts to, for a flush to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Files and bytes written back.
    pub files: u64,
    pub bytes: u64,
    /// Files that could not be written back, and why.
    pub parked: Vec<ParkedFile>,
}

/// A file write-back gave up on for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedFile {
    pub fileid: u64,
    /// Where it is in the tree, if the engine's name cache still knows.
    pub path: Option<String>,
    pub why: String,
    /// Its file key and core filer, to find its path by.
    pub(crate) key: u64,
    pub(crate) filer: u8,
}

impl ParkedFile {
    fn of(e: &super::behind::DirtyEntry, why: &str) -> ParkedFile {
        ParkedFile {
            fileid: e.r.fileid,
            path: None,
            why: why.to_string(),
            key: file_key(&e.r),
            filer: e.r.filer,
        }
    }
}

/// Dirty data of one core filer (mount), over all shards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirtyFiler {
    pub name: String,
    pub files: u64,
    pub bytes: u64,
    /// Age of the oldest change not yet written back.
    pub oldest: Duration,
    /// The core filer answers (as far as the last calls showed).
    pub reachable: bool,
    /// Files write-back gave up on for now.
    pub parked: Vec<ParkedFile>,
    /// Dirty files changed or removed on it behind the cache since start.
    pub conflicts: u64,
}

/// What `weir status` shows of write-behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirtyStatus {
    pub filers: Vec<DirtyFiler>,
    /// Journal bytes holding records not yet written back, and its size.
    pub journal_used: u64,
    pub journal_size: u64,
}

/// One shard's part of [`DirtyStatus`]: per core filer, by index.
pub(crate) struct ShardDirty {
    pub filers: Vec<DirtyFiler>,
    pub journal_used: u64,
    pub journal_size: u64,
}

impl Shard {
    /// What this shard has not written back yet.
    pub(crate) fn dirty_status(&self) -> ShardDirty {
        let n = self.shared.filers.len();
        let mut filers = vec![DirtyFiler::default(); n];
        let down = self.filer_down();
        for f in &mut filers {
            f.reachable = !down;
        }
        let Some(b) = &self.behind else {
            return ShardDirty {
                filers,
                journal_used: 0,
                journal_size: 0,
            };
        };
        for e in b.files.borrow().values() {
            let Some(f) = filers.get_mut(e.r.filer as usize) else {
                continue;
            };
            f.files += 1;
            f.bytes += e.file.dirty_bytes();
            f.oldest = f.oldest.max(e.since.elapsed());
            if let Some((why, _)) = &e.parked {
                f.parked.push(ParkedFile::of(e, why));
            }
        }
        for (filer, n) in b.conflicts.borrow().iter() {
            if let Some(f) = filers.get_mut(*filer as usize) {
                f.conflicts += n;
            }
        }
        let (used, size) = b.journal.with_log(|l| (l.used_bytes(), l.geometry().log_len()));
        ShardDirty {
            filers,
            journal_used: used,
            journal_size: size,
        }
    }

    /// The shard's write-back loop: runs while the shard does.
    pub(crate) async fn writeback_loop(self: Rc<Self>) {
        let Some(b) = &self.behind else { return };
        loop {
            let listener = b.wake.listen();
            self.start_due();
            self.maybe_compact();
            self.report_dirty(b);
            let _ = compio::time::timeout(TICK, listener).await;
            if self.stopping.get() {
                return;
            }
        }
    }

    fn report_dirty(&self, b: &super::behind::Behind) {
        let files = b.files.borrow();
        let oldest = files
            .values()
            .map(|e| e.since.elapsed())
            .max()
            .unwrap_or_default();
        self.stats.dirty_bytes.set(b.dirty_bytes.get() as f64);
        self.stats.dirty_files.set(files.len() as f64);
        self.stats.dirty_oldest_seconds.set(oldest.as_secs_f64());
        self.stats
            .journal_used_bytes
            .set(b.journal.with_log(|l| l.used_bytes()) as f64);
    }

    /// Start a batch for every file that is due, up to `FILES_IN_FLIGHT`.
    fn start_due(self: &Rc<Self>) {
        let Some(b) = &self.behind else { return };
        let now = Instant::now();
        let pressed = b.dirty_bytes.get() > b.quota / 2;
        let mut started = Vec::new();
        {
            let mut files = b.files.borrow_mut();
            let mut urgent = b.urgent.borrow_mut();
            let mut flying = self.writebacks.get();
            for (key, e) in files.iter_mut() {
                if flying >= FILES_IN_FLIGHT {
                    break;
                }
                if e.pending > 0 || e.compacting || e.parked.as_ref().is_some_and(|(_, at)| now < *at) {
                    continue;
                }
                let delay = self.policy(&e.r).writeback_delay.unwrap_or(Duration::ZERO);
                let quiet = now.duration_since(e.last) >= delay;
                let old = now.duration_since(e.since) >= delay * 3;
                if !(quiet || old || pressed || urgent.contains_key(key)) {
                    continue;
                }
                if let Some(batch) = e.file.take_batch() {
                    urgent.remove(key);
                    flying += 1;
                    started.push(Job {
                        key: *key,
                        r: e.r,
                        cred: e.cred.clone(),
                        mtime: e.mtime,
                        atime: e.atime,
                        base: e.base,
                        batch,
                        owner: e.owner,
                        placement: e.placement.clone(),
                        is_dir: e.is_dir,
                    });
                }
            }
            self.writebacks.set(flying);
        }
        for job in started {
            let s = Rc::clone(self);
            compio::runtime::spawn(async move { s.write_back(job).await }).detach();
        }
    }

    /// Whether the core filer's copy of `r` is still as Weir last left it
    /// (`base`): if not, someone changed it behind the cache while it was
    /// dirty here. Weir's changes win; the conflict is logged and counted.
    async fn check_conflict(
        &self,
        filer: &Arc<dyn CoreFiler>,
        r: &Resolved,
        cred: &Credentials,
        base: AttrStamp,
    ) -> Result<()> {
        let now = self.filer_call(filer.getattr(cred, &r.filer_handle)).await?;
        let now = AttrStamp::from(&now);
        if now != base {
            self.count_conflict(r);
            tracing::warn!(
                shard = self.id,
                file = r.fileid,
                "write-back: the file changed on the core filer while it had changes here \
                 (size {} → {}, mtime {:?} → {:?}); Weir's changes are written over it",
                base.size,
                now.size,
                base.mtime,
                now.mtime
            );
        }
        Ok(())
    }

    async fn write_back(self: Rc<Self>, job: Job) {
        let Job {
            key,
            r,
            cred,
            mtime,
            atime,
            base,
            batch,
            owner,
            placement,
            is_dir,
        } = job;
        // An object made from the pool (owned by root until placed) or a
        // change of owner is written back as root: the caller's rights were
        // checked when it was journaled. A change of mode alone goes as its
        // caller, as it would have through.
        let cred = if owner.uid.is_none() && owner.gid.is_none() && placement.is_none() {
            cred
        } else {
            Credentials::root()
        };
        let Some(b) = &self.behind else { return };
        let started = Instant::now();
        let bytes: u64 = batch.writes.iter().map(|(_, d)| d.len() as u64).sum();
        let res = match self.filer(&r) {
            Ok(f) => {
                let f = Arc::clone(f);
                // A directory made here changes on the core filer as what
                // was made in it is placed: no conflict.
                match base {
                    Some(base) if !is_dir => self.check_conflict(&f, &r, &cred, base).await,
                    _ => Ok(()),
                }
                .and(Ok(f))
            }
            Err(e) => Err(e),
        };
        let res = match res {
            Ok(f) => {
                let last = LastSet {
                    mtime,
                    atime,
                    owner,
                    is_dir,
                };
                let sent = self.send_batch(&f, &r, &cred, &batch, last).await;
                match (sent, &placement) {
                    (Ok(after), Some(p)) => self.place(&f, &r, p).await.map(|()| after),
                    (sent, _) => sent,
                }
            }
            Err(e) => Err(e),
        };
        self.writebacks.set(self.writebacks.get() - 1);
        let mut files = b.files.borrow_mut();
        let Some(e) = files.get_mut(&key).filter(|e| e.r.filer_handle == r.filer_handle) else {
            return;
        };
        match res {
            Ok(after) => {
                let (cut, writes, end_size) = (batch.cut, batch.writes.clone(), batch.end_size());
                let before = e.file.dirty_bytes();
                let done = e.file.batch_done(batch);
                b.account(before, e.file.dirty_bytes());
                e.batches += 1;
                e.base = after.as_ref().map(AttrStamp::from);
                e.parked = None;
                e.failures = 0;
                if e.owner == owner {
                    e.owner = OwnerChange::default();
                }
                if let Some(p) = &placement {
                    e.placement = None;
                    self.shared.placing.remove(file_key(&p.dir), &p.name, &r);
                }
                let clean = e.file.is_clean() && e.pending == 0;
                if clean {
                    files.remove(&key);
                } else {
                    // What is left came after the batch was taken.
                    e.since = started;
                }
                drop(files);
                for s in done {
                    if let Err(err) = b.journal.done(s) {
                        tracing::warn!(shard = self.id, seq = s, "journal: {err}");
                    }
                }
                self.stats.writeback_bytes.increment(bytes);
                self.stats.writeback_batches.increment(1);
                self.stats
                    .writeback_latency
                    .record(started.elapsed().as_secs_f64());
                // The core filer's copy changed where the batch wrote: what
                // it wrote is cached as the core filer now has it.
                self.after_writeback(&r, cut, &writes, end_size, after);
            }
            Err(Error::Stale | Error::NoEnt | Error::BadHandle) => {
                // Gone from the core filer: there is nowhere its dirty data
                // could go.
                let Some(gone) = files.remove(&key) else { return };
                drop(files);
                self.discard_dirty(b, gone, "the file is gone from the core filer");
            }
            Err(err) => {
                e.file.batch_failed();
                // Part of it may have landed: the core filer's copy is unknown.
                e.base = None;
                e.failures += 1;
                let transient = matches!(err, Error::Unavailable | Error::Io | Error::WritesLost);
                let (why, wait) = if transient {
                    let wait = RETRY_MIN.saturating_mul(1 << e.failures.min(6)).min(RETRY_MAX);
                    (format!("core filer unavailable ({err})"), wait)
                } else {
                    (describe(&err), PARKED_RETRY)
                };
                if !transient || e.failures == 1 {
                    tracing::warn!(
                        shard = self.id,
                        file = r.fileid,
                        dirty_bytes = e.file.dirty_bytes(),
                        "write-back failed, kept and retried in {wait:?}: {why}"
                    );
                }
                e.parked = Some((why, Instant::now() + wait));
                drop(files);
                self.stats.writeback_failures.increment(1);
            }
        }
        b.progress.notify(usize::MAX);
    }

    /// Send one batch; the file's attributes after it.
    async fn send_batch(
        &self,
        filer: &Arc<dyn CoreFiler>,
        r: &Resolved,
        cred: &Credentials,
        batch: &Batch,
        last: LastSet,
    ) -> Result<Option<Attr>> {
        let LastSet {
            mtime,
            atime,
            owner,
            is_dir,
        } = last;
        let fh = &r.filer_handle;
        if let Some(cut) = batch.cut {
            let set = SetAttr {
                size: Some(cut),
                ..SetAttr::default()
            };
            self.filer_call(filer.setattr(cred, fh, &set)).await?;
        }
        let writes = merge(&batch.writes);
        let bytes: usize = writes.iter().map(|(_, d)| d.len()).sum();
        let in_flight = (BYTES_IN_FLIGHT / (bytes / writes.len().max(1)).max(1))
            .clamp(WRITES_IN_FLIGHT.0, WRITES_IN_FLIGHT.1);
        let mut unstable = false;
        let mut sent = stream::iter(writes.into_iter().map(|(off, data)| {
            let len = data.len();
            let fut = self.filer_call(filer.write(cred, fh, off, data, Stability::Unstable));
            async move { (len, fut.await) }
        }))
        .buffer_unordered(in_flight);
        while let Some((len, res)) = sent.next().await {
            let w = res?;
            if (w.count as usize) < len {
                return Err(Error::NoSpc);
            }
            unstable |= w.committed != Stability::FileSync;
        }
        drop(sent);
        if unstable {
            self.filer_call(filer.commit(cred, fh)).await?;
        }
        let set = SetAttr {
            size: (!is_dir).then_some(batch.end_size()),
            mtime: SetTime::Client(mtime),
            atime: atime.map_or(SetTime::DontChange, SetTime::Client),
            mode: owner.mode,
            uid: owner.uid,
            gid: owner.gid,
        };
        Ok(self.filer_call(filer.setattr(cred, fh, &set)).await?.after)
    }

    /// Write back every dirty file now (or those of `only`, by file key)
    /// and wait until each is clean or parked.
    pub(crate) async fn flush(&self, only: Option<u64>) -> FlushReport {
        let mut report = FlushReport::default();
        let Some(b) = &self.behind else { return report };
        let keys: Vec<u64> = b
            .files
            .borrow()
            .keys()
            .copied()
            .filter(|k| only.is_none_or(|o| o == *k))
            .collect();
        if keys.is_empty() {
            return report;
        }
        let bytes_before = b.dirty_bytes.get();
        // An operator's flush tries the core filer again at once, even one
        // that did not answer a moment ago.
        self.filer_down_until.set(None);
        // Parked files are tried again now.
        for k in &keys {
            if let Some(e) = b.files.borrow_mut().get_mut(k) {
                e.parked = None;
                b.urgent.borrow_mut().insert(*k, ());
            }
        }
        loop {
            let listener = b.progress.listen();
            report.parked.clear();
            let mut waiting = false;
            {
                let files = b.files.borrow();
                let mut urgent = b.urgent.borrow_mut();
                for k in &keys {
                    let Some(e) = files.get(k) else { continue };
                    let idle = !e.file.in_flight();
                    match &e.parked {
                        Some((why, _)) if idle && !urgent.contains_key(k) => {
                            report.parked.push(ParkedFile::of(e, why));
                        }
                        _ => {
                            waiting = true;
                            if idle {
                                urgent.insert(*k, ());
                            }
                        }
                    }
                }
            }
            if !waiting {
                break;
            }
            b.wake.notify(usize::MAX);
            listener.await;
        }
        report.files = keys.len() as u64 - report.parked.len() as u64;
        report.bytes = bytes_before.saturating_sub(b.dirty_bytes.get());
        report
    }
}

/// Adjacent pieces merged into writes of at most `MAX_WRITE`; a piece is
/// copied only when it joins others.
fn merge(pieces: &[(u64, Bytes)]) -> Vec<(u64, Bytes)> {
    let mut out: Vec<(u64, Bytes)> = Vec::new();
    let mut run: Option<(u64, BytesMut)> = None;
    let mut single: Option<(u64, Bytes)> = None;
    let flush = |out: &mut Vec<(u64, Bytes)>,
                 run: &mut Option<(u64, BytesMut)>,
                 single: &mut Option<(u64, Bytes)>| {
        if let Some((o, b)) = run.take() {
            out.push((o, b.freeze()));
        }
        out.extend(single.take());
    };
    for (off, data) in pieces {
        for (k, chunk) in data.chunks(MAX_WRITE).enumerate() {
            let off = off + (k * MAX_WRITE) as u64;
            let chunk = data.slice_ref(chunk);
            let end_of = |o: u64, len: usize| o + len as u64;
            if let Some((o, s)) = &single {
                if end_of(*o, s.len()) == off && s.len() + chunk.len() <= MAX_WRITE {
                    let mut m = BytesMut::with_capacity(MAX_WRITE.min(s.len() + chunk.len() * 4));
                    m.extend_from_slice(s);
                    m.extend_from_slice(&chunk);
                    run = Some((*o, m));
                    single = None;
                    continue;
                }
            }
            if let Some((o, m)) = &mut run {
                if end_of(*o, m.len()) == off && m.len() + chunk.len() <= MAX_WRITE {
                    m.extend_from_slice(&chunk);
                    continue;
                }
            }
            flush(&mut out, &mut run, &mut single);
            single = Some((off, chunk));
        }
    }
    flush(&mut out, &mut run, &mut single);
    out
}

/// Why the core filer refused a write-back, for the log and `status`.
fn describe(err: &Error) -> String {
    match err {
        Error::Stale | Error::BadHandle | Error::NoEnt => {
            "the file no longer exists on the core filer".into()
        }
        Error::Access | Error::Perm => "the core filer refused the writer's permission".into(),
        Error::NoSpc => "the core filer is out of space".into(),
        Error::DQuot => "the writer's quota on the core filer is exhausted".into(),
        Error::RoFs => "the core filer is read-only".into(),
        other => format!("the core filer refused the write-back: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_pieces_merge_up_to_the_largest_write() {
        let p = |o: u64, n: usize| (o, Bytes::from(vec![o as u8; n]));
        let out = merge(&[p(0, 10), p(10, 20), p(100, 5)]);
        assert_eq!(
            out.iter().map(|(o, d)| (*o, d.len())).collect::<Vec<_>>(),
            vec![(0, 30), (100, 5)]
        );
        assert_eq!(&out[0].1[..10], &[0u8; 10][..]);
        assert_eq!(&out[0].1[10..], &[10u8; 20][..]);
        let big = merge(&[p(0, MAX_WRITE + 7), p((MAX_WRITE + 7) as u64, 3)]);
        assert_eq!(
            big.iter().map(|(o, d)| (*o, d.len())).collect::<Vec<_>>(),
            vec![(0, MAX_WRITE), (MAX_WRITE as u64, 10)]
        );
    }
}
