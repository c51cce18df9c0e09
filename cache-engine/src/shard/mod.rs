//! One shard: the slice of the cache and of the metadata cache owned by one
//! core. Everything here runs on that core's thread, so state lives in
//! `RefCell`s; no borrow is ever held across an `.await`.

mod behind;
mod compact;
mod data;
mod dirty;
mod namespace;
mod placing;
mod pool;
mod rewritten;
mod set;
mod writeback;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;

use crate::config::{CachePolicy, EngineConfig};
use crate::filer::CoreFiler;
use crate::handle::{HandleKey, Resolved};
use crate::stats::ShardStats;
use crate::tier::nvme::{BlockKey, NvmeConfig, SegmentStore};
use crate::tier::ram::{S3Fifo, Weigh};
use crate::types::*;
use crate::{Error, Result};

pub(crate) use behind::spawn_writeback;
pub use data::{Prefetched, ReadReply};
pub(crate) use namespace::{Created, ListEntry, Listing};
pub(crate) use placing::{Claim, Claimed};
pub(crate) use pool::POOL_DIR;
pub(crate) use set::ShardSet;
pub use set::StartError;
pub use writeback::{DirtyFiler, DirtyStatus, FlushReport, ParkedFile};

/// The engine's state that all its shards share, read-only.
pub struct EngineState {
    pub cfg: EngineConfig,
    pub key: HandleKey,
    pub filers: Vec<Arc<dyn CoreFiler>>,
    /// Cache policy of each mount, by filer index.
    pub policies: Vec<CachePolicy>,
    /// Changes at every start, so clients know to resend uncommitted writes.
    pub write_verifier: std::sync::atomic::AtomicU64,
    /// Names this cache's journals, so a journal of another is refused.
    pub cache_id: crate::journal::CacheId,
    /// Who hears about changes (see [`crate::Engine::subscribe`]).
    pub(crate) changes: crate::change::ChangeHub,
    /// Attributes each shard publishes for the files it owns while they are
    /// fresh, so that any shard answers a getattr without a hop to the
    /// owner. Only a file's owner writes its entry: before it answers the
    /// operation that changed the file, so no later getattr reads older ones.
    pub(crate) published: papaya::HashMap<u64, Published, ahash::RandomState>,
    /// Names made under write-behind, not yet on the core filer.
    pub(crate) placing: placing::Placing,
}

/// A file's attributes as its owner published them.
pub(crate) struct Published {
    filer_handle: FilerHandle,
    attr: Attr,
    /// End of the verify period: the owner revalidates after it.
    until: Instant,
}

impl EngineState {
    /// `r`'s attributes, when its owner published them and they are fresh.
    pub(crate) fn published_attr(&self, r: &Resolved) -> Option<Attr> {
        let map = self.published.pin();
        let p = map.get(&file_key(r))?;
        (p.filer_handle == r.filer_handle && Instant::now() < p.until).then_some(p.attr)
    }
}

/// Cache key of a file: its file id, with the filer index in the top byte.
pub(crate) fn file_key(r: &Resolved) -> u64 {
    key_of(r.filer, r.fileid)
}

/// [`file_key`] of file `fileid` on core filer `filer`.
pub(crate) fn key_of(filer: u8, fileid: u64) -> u64 {
    fileid ^ ((filer as u64) << 56)
}

/// A cached block in RAM.
pub(crate) struct RamBlock {
    data: Bytes,
    gen: u32,
    /// Fetched by read-ahead and not read yet.
    prefetched: bool,
    /// Held only here (written, not fetched): goes to NVMe when evicted.
    spill: bool,
}

impl Weigh for RamBlock {
    fn weight(&self) -> usize {
        self.data.len() + 64
    }
}

/// Read-ahead state of one file.
#[derive(Default, Clone, Copy)]
pub(crate) struct Readahead {
    next: u64,
    window: u64,
    issued_to: u64,
}

/// What the shard knows about one file it owns: its attributes and data
/// generation while they are fresh.
pub(crate) struct CachedFile {
    filer_handle: FilerHandle,
    attr: Attr,
    validated: Instant,
    /// A change made through the engine elsewhere (a name removed or
    /// moved) left `attr` unsure: asked again, even of a dirty file.
    expired: bool,
    /// Data generation: cached blocks of another generation are stale.
    gen: u32,
    /// Bumped by every change made through the engine; a fetch that started
    /// before one does not fill the cache.
    epoch: u64,
    ra: Readahead,
}

/// A consistent view of one file for the duration of an operation.
#[derive(Clone, Copy)]
pub(crate) struct Snapshot {
    pub attr: Attr,
    pub gen: u32,
    pub epoch: u64,
}

/// The names cached of one directory.
#[derive(Default)]
struct DirNames {
    map: HashMap<Box<[u8]>, NameEntry>,
    /// Since when `map` holds every name of the directory: it was made
    /// empty through the engine and nothing dropped a name of it since. A
    /// name not in `map` then does not exist, trusted as a negative entry.
    complete: Option<Instant>,
}

impl DirNames {
    fn remove(&mut self, name: &[u8]) {
        self.map.remove(name);
        if name != b".." {
            self.complete = None;
        }
    }
}

/// A cached name in a directory: what it names, or that it does not exist.
struct NameEntry {
    child: Option<(FilerHandle, u64)>,
    validated: Instant,
}

impl NameEntry {
    /// What the entry says while it is trusted: within the directory verify
    /// `period`, or at any age while the core filer is unreachable.
    fn trusted(&self, period: Duration, filer_down: bool) -> Option<Option<(FilerHandle, u64)>> {
        (filer_down || self.validated.elapsed() < period).then_some(self.child)
    }
}

pub struct Shard {
    pub id: usize,
    pub shared: Arc<EngineState>,
    pub(crate) stats: ShardStats,
    ram: RefCell<S3Fifo<BlockKey, RamBlock>>,
    nvme: Option<Rc<SegmentStore>>,
    files: RefCell<LruCache<u64, CachedFile, ahash::RandomState>>,
    /// Cached names per directory, so a directory's names drop at once.
    names: RefCell<LruCache<u64, DirNames>>,
    listings: RefCell<LruCache<u64, Rc<Listing>>>,
    inflight: RefCell<crate::rt::FastMap<BlockKey, data::Inflight>>,
    /// Writes and setattrs in flight to the core filer, by file.
    changing: RefCell<crate::rt::FastMap<u64, smallvec::SmallVec<[data::Changing; 2]>>>,
    next_gen: Cell<u32>,
    /// Names fetches and changes in flight.
    next_id: Cell<u64>,
    /// While set and in the future, the core filer is taken as unreachable.
    filer_down_until: Cell<Option<Instant>>,
    subscribers: crate::change::LocalSubscribers,
    /// Write-behind, when the engine has a journal.
    behind: Option<behind::Behind>,
    /// Files being written back now.
    writebacks: Cell<usize>,
    /// The shard is stopping: background loops end.
    stopping: Cell<bool>,
    /// Spare objects for creates under write-behind, per core filer.
    pool: RefCell<crate::rt::FastMap<u8, pool::Pool>>,
}

const FILES: usize = 256 * 1024;
const NAME_DIRS: usize = 64 * 1024;
/// Names cached per directory; past this the directory's names start over.
const NAMES_PER_DIR: usize = 64 * 1024;
const LISTINGS: usize = 4096;
/// How long an unreachable core filer is left alone before it is tried again.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

impl Shard {
    /// Open the shard's tiers and journal; the journal's records not yet
    /// written back are returned, for [`Shard::replay`].
    pub(crate) async fn open(
        id: usize,
        shared: Arc<EngineState>,
    ) -> std::result::Result<(Shard, Vec<crate::journal::Record>), String> {
        let cfg = &shared.cfg;
        let n = cfg.shard_count() as u64;
        let nvme = if cfg.cache_bytes > 0 {
            let store = SegmentStore::open(NvmeConfig {
                path: cfg.cache_dir.join(format!("shard-{id}.cache")),
                size: cfg.cache_bytes / n,
                segment_size: cfg.segment_size,
                block_size: cfg.block_size,
                shard: id,
            })
            .await
            .map_err(|e| e.to_string())?;
            Some(Rc::new(store))
        } else {
            None
        };
        let filer_name = shared
            .filers
            .first()
            .map(|f| f.name().to_string())
            .unwrap_or_default();
        // A journal is kept while some mount writes behind, and opened while
        // one is there (it may hold writes of a policy since changed).
        let journal_path = cfg.journal_dir.join(format!("shard-{id}.journal"));
        let writes_behind = shared.policies.iter().any(|p| p.writeback_delay.is_some());
        let (behind, records) = if cfg.journal_bytes > 0 && (writes_behind || journal_path.exists()) {
            let opened = crate::journal::Journal::open(crate::journal::JournalConfig {
                path: journal_path,
                offset: 0,
                size: (cfg.journal_bytes / n) & !4095,
                cache_id: shared.cache_id,
                shard: id as u32,
                create: true,
            })
            .await
            .map_err(|e| format!("write journal: {e}"))?;
            if !opened.corruption.is_empty() {
                // Acknowledged writes were lost: clients must send theirs again.
                let v = crate::verifier::renew(&cfg.state_dir).unwrap_or_else(|_| rand::random());
                shared
                    .write_verifier
                    .store(v, std::sync::atomic::Ordering::Relaxed);
            }
            let quota = (cfg.dirty_max / n).max(1);
            (Some(behind::Behind::new(opened.journal, quota)), opened.records)
        } else {
            (None, Vec::new())
        };
        let nz = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        let shard = Shard {
            id,
            stats: ShardStats::new(id, &filer_name),
            ram: RefCell::new(S3Fifo::new((cfg.ram_bytes / n) as usize)),
            nvme,
            files: RefCell::new(LruCache::with_hasher(nz(FILES), Default::default())),
            names: RefCell::new(LruCache::new(nz(NAME_DIRS))),
            listings: RefCell::new(LruCache::new(nz(LISTINGS))),
            inflight: RefCell::new(Default::default()),
            changing: RefCell::new(Default::default()),
            next_gen: Cell::new(1),
            next_id: Cell::new(1),
            filer_down_until: Cell::new(None),
            subscribers: crate::change::LocalSubscribers::new(),
            behind,
            writebacks: Cell::new(0),
            stopping: Cell::new(false),
            pool: RefCell::new(Default::default()),
            shared,
        };
        Ok((shard, records))
    }

    pub(crate) async fn shutdown(&self) {
        self.stopping.set(true);
        if let Some(b) = &self.behind {
            b.wake.notify(usize::MAX);
            // What was journaled stays: write-back resumes at the next start,
            // which reads no further than where a clean close says the log ends.
            if let Err(e) = b.journal.clone().close().await {
                tracing::warn!(shard = self.id, "write journal at shutdown: {e}");
            }
        }
        if let Some(nvme) = &self.nvme {
            if let Err(e) = nvme.flush().await {
                tracing::warn!(shard = self.id, "flushing the NVMe tier at shutdown: {e}");
            }
        }
    }

    /// Report a change this shard just made to the subscribers, if any.
    pub(crate) fn notify(&self, origin: u64, kind: impl FnOnce() -> crate::change::ChangeKind) {
        self.subscribers
            .notify(&self.shared.changes, || crate::change::Change {
                origin,
                kind: kind(),
            });
    }

    /// A handle for a front end.
    pub(crate) fn handle(&self, r: &Resolved) -> crate::handle::FileHandle {
        self.shared.key.make(r.filer, r.fileid, &r.filer_handle)
    }

    fn cfg(&self) -> &EngineConfig {
        &self.shared.cfg
    }

    pub(crate) fn filer(&self, r: &Resolved) -> Result<&Arc<dyn CoreFiler>> {
        self.shared.filers.get(r.filer as usize).ok_or(Error::Stale)
    }

    fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    fn new_gen(&self) -> u32 {
        let g = self.next_gen.get();
        self.next_gen.set(g.wrapping_add(1).max(1));
        g
    }

    fn filer_down(&self) -> bool {
        self.filer_down_until.get().is_some_and(|t| Instant::now() < t)
    }

    /// Call the core filer with a bounded wait. A timeout or transport error
    /// marks it unreachable for a moment, during which calls fail at once and
    /// cached data keeps being served. While it is unreachable calls fail with
    /// `Unavailable` ("try again later"; NFS JUKEBOX), which NFS clients retry by themselves.
    pub(crate) async fn filer_call<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        if self.filer_down() {
            return Err(Error::Unavailable);
        }
        self.stats.filer_ops.increment(1);
        let started = Instant::now();
        let out = match compio::time::timeout(self.cfg().filer_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Unavailable),
        };
        self.stats.filer_latency.record(started.elapsed().as_secs_f64());
        match out {
            Err(e @ (Error::Unavailable | Error::Io)) => {
                self.stats.filer_errors.increment(1);
                if e == Error::Unavailable {
                    tracing::warn!(shard = self.id, "core filer did not answer in time");
                    self.filer_down_until.set(Some(Instant::now() + PROBE_INTERVAL));
                }
                Err(e)
            }
            other => {
                self.filer_down_until.set(None);
                other
            }
        }
    }

    /// The cache policy of the mount `r` belongs to.
    pub(crate) fn policy(&self, r: &Resolved) -> &CachePolicy {
        self.shared
            .policies
            .get(r.filer as usize)
            .unwrap_or(&self.cfg().policy)
    }

    /// How long attributes of this type, fetched now, are trusted.
    fn verify_period(&self, r: &Resolved, ftype: FileType) -> Duration {
        if ftype == FileType::Directory {
            self.policy(r).dir_verify
        } else {
            self.policy(r).attr_verify
        }
    }

    fn fresh(&self, r: &Resolved, st: &CachedFile, now: Instant) -> bool {
        now.duration_since(st.validated) < self.verify_period(r, st.attr.ftype)
    }

    /// A dirty file's attributes stand until a name change through the
    /// engine (a link removed: nlink, ctime) says to ask the core filer.
    fn dirty_and_sure(&self, r: &Resolved, st: &CachedFile) -> bool {
        !st.expired && self.is_dirty(r)
    }

    /// Let every shard answer with `attr`, validated at `at`, for the verify period.
    fn publish(&self, r: &Resolved, attr: &Attr, at: Instant) {
        let until = at + self.verify_period(r, attr.ftype);
        let entry = Published {
            filer_handle: r.filer_handle,
            attr: self.presented(r, *attr),
            until,
        };
        self.shared.published.pin().insert(file_key(r), entry);
    }

    fn snapshot(st: &CachedFile) -> Snapshot {
        Snapshot {
            attr: st.attr,
            gen: st.gen,
            epoch: st.epoch,
        }
    }

    /// The file's attributes, revalidated with the core filer when the verify
    /// period has passed.
    pub(crate) async fn state(&self, r: &Resolved, cred: &Credentials) -> Result<Snapshot> {
        let now = Instant::now();
        let known = {
            let mut files = self.files.borrow_mut();
            match files.get(&file_key(r)) {
                Some(st) if st.filer_handle == r.filer_handle => {
                    // A file with dirty data is as the cache has it: the
                    // core filer's copy is older, not newer.
                    if self.fresh(r, st, now) || self.filer_down() || self.dirty_and_sure(r, st) {
                        return Ok(Self::snapshot(st));
                    }
                    true
                }
                _ => false,
            }
        };
        self.stats.revalidations.increment(1);
        let filer = self.filer(r)?.clone();
        match self.filer_call(filer.getattr(cred, &r.filer_handle)).await {
            // A dirty file differs from the core filer's copy by our own
            // changes (and `presented` lays them over): no change behind us.
            Ok(attr) if attr.fileid == r.fileid => Ok(self.install(r, attr, self.is_dirty(r))),
            Ok(_) | Err(Error::Stale) | Err(Error::NoEnt) | Err(Error::BadHandle) => {
                self.forget(r);
                Err(Error::Stale)
            }
            Err(e) => {
                // Unreachable core filer: keep serving what is cached.
                if known {
                    if let Some(st) = self.files.borrow_mut().get(&file_key(r)) {
                        return Ok(Self::snapshot(st));
                    }
                }
                Err(e)
            }
        }
    }

    /// Record attributes fresh from the core filer. Unless the change was
    /// made through the engine (`ours`), a difference from what was cached
    /// means someone changed the file behind the cache: its cached data and,
    /// for a directory, its names and listing are dropped.
    pub(crate) fn install(&self, r: &Resolved, attr: Attr, ours: bool) -> Snapshot {
        self.install_read_at(r, attr, ours, Instant::now())
    }

    /// `install`, for attributes the core filer returned at `now`.
    fn install_read_at(&self, r: &Resolved, attr: Attr, ours: bool, now: Instant) -> Snapshot {
        let key = file_key(r);
        let mut files = self.files.borrow_mut();
        // (snapshot, changed behind the cache, names under it unvouched for,
        // contents changed behind the cache)
        let (snap, changed, drop_names, contents) = match files.get_mut(&key) {
            Some(st) if st.filer_handle == r.filer_handle => {
                let changed = !ours
                    && (st.attr.size != attr.size
                        || st.attr.mtime != attr.mtime
                        || st.attr.ctime != attr.ctime
                        || st.attr.change != attr.change);
                if changed {
                    st.gen = self.new_gen();
                    st.epoch += 1;
                    st.ra = Readahead::default();
                }
                // Our own renames and links move ctime too: only size and
                // mtime say the contents changed.
                let contents = changed && (st.attr.size != attr.size || st.attr.mtime != attr.mtime);
                st.attr = attr;
                st.validated = now;
                st.expired = false;
                (Self::snapshot(st), changed, changed, contents)
            }
            _ => {
                let st = CachedFile {
                    filer_handle: r.filer_handle,
                    attr,
                    validated: now,
                    expired: false,
                    gen: self.new_gen(),
                    epoch: 0,
                    ra: Readahead::default(),
                };
                let snap = Self::snapshot(&st);
                if let Some((gone, _)) = files.push(key, st).filter(|(k, _)| *k != key) {
                    self.shared.published.pin().remove(&gone);
                }
                // A state created anew cannot vouch for names cached under it.
                (snap, false, true, false)
            }
        };
        drop(files);
        self.publish(r, &attr, now);
        if changed {
            self.stats.invalidations.increment(1);
        }
        if contents {
            self.notify(0, || crate::change::ChangeKind::Behind {
                object: self.handle(r),
                ftype: attr.ftype,
            });
        }
        if drop_names && attr.ftype == FileType::Directory {
            self.drop_dir_caches(key);
        }
        snap
    }

    /// Attributes changed by an operation elsewhere: take them, and if the
    /// file's data may have changed, drop its cached blocks.
    pub(crate) fn refresh(&self, r: &Resolved, attr: Option<Attr>, data_changed: bool) {
        let key = file_key(r);
        if data_changed {
            if let Some(st) = self.files.borrow_mut().get_mut(&key) {
                st.gen = self.new_gen();
                st.epoch += 1;
            }
        }
        match attr {
            Some(a) => {
                self.install(r, a, true);
            }
            None => self.expire(r),
        }
    }

    /// Make the next access revalidate the file's attributes and, for a
    /// directory that may have moved, its parent.
    pub(crate) fn expire(&self, r: &Resolved) {
        self.shared.published.pin().remove(&file_key(r));
        if let Some(st) = self.files.borrow_mut().get_mut(&file_key(r)) {
            st.validated = Instant::now() - Duration::from_secs(86400 * 365);
            st.expired = true;
        }
        if let Some(names) = self.names.borrow_mut().get_mut(&file_key(r)) {
            names.remove(&b".."[..]);
        }
    }

    /// Drop what is cached of `r`, which the core filer no longer has.
    pub(crate) fn forget(&self, r: &Resolved) {
        let key = file_key(r);
        let dir = {
            let _ = self
                .shared
                .published
                .pin()
                .remove_if(&key, |_, p| p.filer_handle == r.filer_handle);
            let mut files = self.files.borrow_mut();
            // The file id may belong to a newer object by now (file systems
            // reuse inode numbers): its state stays.
            if files
                .peek(&key)
                .is_some_and(|st| st.filer_handle != r.filer_handle)
            {
                return;
            }
            files
                .pop(&key)
                .is_some_and(|st| st.attr.ftype == FileType::Directory)
        };
        if dir {
            self.drop_dir_caches(key);
        }
    }

    fn drop_dir_caches(&self, dir: u64) {
        self.listings.borrow_mut().pop(&dir);
        self.names.borrow_mut().pop(&dir);
    }

    /// The attributes clients see (dirty data included).
    pub(crate) async fn getattr(&self, r: &Resolved, cred: &Credentials) -> Result<Attr> {
        Ok(self.presented(r, self.state(r, cred).await?.attr))
    }

    /// Attributes of a file whose state may be missing here. `seed` are
    /// attributes read from the core filer at the given instant (by a lookup
    /// or a listing); they are used only when nothing fresher is cached.
    pub(crate) async fn attr_with_seed(
        &self,
        r: &Resolved,
        cred: &Credentials,
        seed: Option<(Attr, Instant)>,
    ) -> Result<Attr> {
        let now = Instant::now();
        if let Some(st) = self.files.borrow_mut().get(&file_key(r)) {
            if st.filer_handle == r.filer_handle && (self.fresh(r, st, now) || self.dirty_and_sure(r, st)) {
                return Ok(self.presented(r, st.attr));
            }
        }
        match seed {
            Some((attr, at)) if attr.fileid == r.fileid && !self.is_dirty(r) => {
                Ok(self.install_read_at(r, attr, false, at).attr)
            }
            _ => self.getattr(r, cred).await,
        }
    }

    pub(crate) async fn access(&self, r: &Resolved, cred: &Credentials, mask: u32) -> Result<(u32, Attr)> {
        let attr = self.getattr(r, cred).await?;
        Ok((crate::perm::granted(cred, &attr, mask), attr))
    }

    pub(crate) async fn fsstat(&self, r: &Resolved, cred: &Credentials) -> Result<(FsStat, Attr)> {
        let attr = self.getattr(r, cred).await?;
        let filer = self.filer(r)?.clone();
        let st = self.filer_call(filer.fsstat(cred, &r.filer_handle)).await?;
        Ok((st, attr))
    }
}
