//! NVMe tier: a log-structured block cache in a file or on a block device,
//! opened `O_DIRECT` and driven through compio's io_uring ops.
//!
//! One [`SegmentStore`] belongs to one shard thread (`!Send`, shared as
//! `Rc<SegmentStore>`). Every method takes `&self`; state sits in a `RefCell`
//! that is never borrowed across an `.await`.
//!
//! # Layout
//!
//! ```text
//! 0        4096                4096 + S               4096 + N*S
//! | super  | segment 0         | segment 1    | ...   |
//! ```
//!
//! The superblock holds a magic, the format version, the size, the segment
//! and block sizes and a random epoch rewritten at every open. The index lives
//! in memory only, so the tier starts empty after every open and nothing
//! written before a restart is ever served.
//!
//! Blocks are appended, each padded to whole 4 KiB pages, into an aligned
//! in-memory buffer for the open segment; a full buffer goes to disk with one
//! write by a spawned task. Blocks still in a buffer (open or being written)
//! are read from memory. Every page carries a crc32c kept in the index and
//! checked on every read from disk.
//!
//! # Reclaim
//!
//! Segments form a ring used in FIFO order. While a segment fills, the next
//! one in the ring (the oldest) is read in the background with one large read.
//! When the ring reaches it, its index entries are dropped; those whose hit bit
//! was set since they were written are copied from that read into the new open
//! segment (at most half a segment per reclaim, so the log always advances).
//! If the read has not finished, the segment is evicted whole: inserting never
//! waits for I/O. Each reuse bumps the segment's sequence number; a disk read
//! that finds the number changed when it completes is a miss, so a read racing
//! with reclaim never returns the new occupant's bytes.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use smallvec::SmallVec;

use crate::rt::aligned::{align_up, AlignedBuf, ALIGN};

/// Direct I/O page: unit of alignment, padding and checksums.
const PAGE: usize = ALIGN;
const SUPERBLOCK_LEN: u64 = PAGE as u64;
/// Magic at the start of the superblock.
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"WEIRNVM1";
/// On-disk format version.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the superblock covered by its own crc32c (stored right after).
const SUPERBLOCK_CRC_AT: usize = 56;
/// Segment buffers waiting for (or in) a write. Bounds memory when the device
/// is slower than inserts; beyond it inserts are dropped (a cache may decline).
const MAX_WRITES_IN_FLIGHT: usize = 8;
/// Spare segment-sized buffers kept for reuse.
const MAX_POOLED_BUFFERS: usize = 4;
/// Largest single read that [`SegmentStore::read_many`] merges pieces into.
pub const MAX_MERGED_READ: usize = 1 << 20;

/// Where and how big the NVMe tier is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeConfig {
    /// Cache file (created if missing) or block device.
    pub path: PathBuf,
    /// Bytes. A file is created at this size; an existing file must have
    /// exactly this size (0: use an existing file at its own size). For a
    /// block device: 0 means "the whole device", otherwise the device must be
    /// at least this big (its own size is used).
    pub size: u64,
    /// Multiple of 4096; default 4 MiB.
    pub segment_size: u32,
    /// Largest block inserted; multiple of 4096, at most `segment_size`.
    pub block_size: u32,
    /// Shard index, used as the `shard` label of metrics.
    pub shard: usize,
}

impl NvmeConfig {
    pub const DEFAULT_SEGMENT_SIZE: u32 = 4 << 20;
    pub const DEFAULT_BLOCK_SIZE: u32 = 64 << 10;

    /// A configuration with default segment and block sizes, for shard 0.
    pub fn new(path: impl Into<PathBuf>, size: u64) -> Self {
        NvmeConfig {
            path: path.into(),
            size,
            segment_size: Self::DEFAULT_SEGMENT_SIZE,
            block_size: Self::DEFAULT_BLOCK_SIZE,
            shard: 0,
        }
    }
}

/// A cached block: block number `block` of file `file`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockKey {
    pub file: u64,
    pub block: u64,
}

mod disk;
mod format;
mod log;
mod reclaim;
#[cfg(test)]
mod tests;

use disk::read_exact_at;
pub use format::{StoreError, Superblock};

/// Counters since open (the same events also go to the `metrics` registry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NvmeStats {
    pub hits: u64,
    pub hit_bytes: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evicted_blocks: u64,
    pub reinserted_blocks: u64,
    /// Segments read back before reclaim, for their hit blocks.
    pub reclaim_reads: u64,
    pub checksum_failures: u64,
    pub segments_written: u64,
    /// Inserts declined because too many segments were waiting to be written
    /// or no segment was usable.
    pub dropped_inserts: u64,
    pub write_errors: u64,
    pub read_errors: u64,
}

/// The NVMe tier of one shard. See the module documentation.
pub struct SegmentStore {
    dev: Rc<Device>,
}

/// The open device, its geometry and its log: what the store and its
/// background tasks (segment writes, reclaim reads) share.
struct Device {
    file: compio::fs::File,
    path: PathBuf,
    segment_size: u32,
    block_size: u32,
    segment_count: u32,
    size: u64,
    epoch: u64,
    log: RefCell<Log>,
    c: Counters,
    /// Test hook: fail the next segment write as if the device had.
    #[cfg(test)]
    fail_next_write: Cell<bool>,
}

/// The log's mutable state: the block index and the ring of segments.
struct Log {
    index: crate::rt::FastMap<BlockKey, Entry>,
    segs: Vec<SegMeta>,
    /// The segment being filled.
    open: Option<OpenSeg>,
    /// The segment opened last: the ring continues after it.
    head: u32,
    next_seq: u64,
    /// Segments in [`SegState::Writing`].
    writing: usize,
    /// The background read of the segment the ring will reclaim next.
    prefetch: Option<Prefetch>,
    pool: Vec<AlignedBuf>,
    /// First write error since the last `flush`, reported by it.
    write_error: Option<io::Error>,
    /// Tasks waiting in `flush` for background I/O to finish.
    waiters: Vec<Waker>,
}

/// Where a block lives. 4 KiB pages; `crcs[i]` is the crc32c of page `i`
/// (zero-padded after `len`).
struct Entry {
    seg: u32,
    page: u32,
    len: u32,
    gen: u32,
    hit: bool,
    crcs: Box<[u32]>,
}

struct SegMeta {
    /// Bumped every time the segment is reopened for new data.
    seq: u64,
    state: SegState,
    /// Pages holding data (set when sealed).
    used_pages: u32,
    /// Keys appended since the segment was opened (some may since have been
    /// removed or replaced: check the index).
    keys: Vec<BlockKey>,
    /// Blocks in it first hit since they were written (an upper bound: some
    /// may since have been removed). Only hit blocks are reinserted, so a
    /// segment with none is reclaimed without reading it back.
    hits: u32,
}

enum SegState {
    /// Never used.
    Free,
    /// Being filled in memory (`Log::open`).
    Open,
    /// Its buffer is being written; reads are served from it.
    Writing(Rc<AlignedBuf>),
    /// On disk.
    Sealed,
    /// A write failed: never used again.
    Bad,
}

struct OpenSeg {
    seg: u32,
    buf: AlignedBuf,
}

struct Prefetch {
    seg: u32,
    seq: u64,
    /// `Some` once the read succeeded.
    buf: Option<AlignedBuf>,
    done: bool,
}

/// Background work decided while `log` was borrowed, spawned after the
/// borrow ends.
#[derive(Default)]
struct Jobs {
    writes: Vec<(u32, u64, Rc<AlignedBuf>)>,
    prefetch: Option<(u32, u64, u32)>,
}

/// A counter kept both locally (for `stats`) and in the metrics registry.
struct Counter {
    n: Cell<u64>,
    m: metrics::Counter,
}

impl Counter {
    fn new(m: metrics::Counter) -> Self {
        Counter { n: Cell::new(0), m }
    }

    fn add(&self, v: u64) {
        self.n.set(self.n.get().wrapping_add(v));
        self.m.increment(v);
    }

    fn get(&self) -> u64 {
        self.n.get()
    }
}

struct Counters {
    hits: Counter,
    hit_bytes: Counter,
    misses: Counter,
    inserts: Counter,
    evicted: Counter,
    reinserted: Counter,
    reclaim_reads: Counter,
    checksum_failures: Counter,
    segments_written: Counter,
    dropped_inserts: Counter,
    write_errors: Counter,
    read_errors: Counter,
}

impl Counters {
    fn new(shard: usize) -> Self {
        let s = shard.to_string();
        let tier = |name: &'static str| {
            Counter::new(metrics::counter!(name, "tier" => "nvme", "shard" => s.clone()))
        };
        let own = |name: &'static str| Counter::new(metrics::counter!(name, "shard" => s.clone()));
        Counters {
            hits: tier("weir_cache_hits_total"),
            hit_bytes: tier("weir_cache_hit_bytes_total"),
            misses: tier("weir_cache_misses_total"),
            inserts: tier("weir_cache_inserts_total"),
            evicted: tier("weir_cache_evictions_total"),
            reinserted: own("weir_nvme_reinserted_blocks_total"),
            reclaim_reads: own("weir_nvme_reclaim_reads_total"),
            checksum_failures: tier("weir_cache_checksum_failures_total"),
            segments_written: own("weir_nvme_segments_written_total"),
            dropped_inserts: own("weir_nvme_dropped_inserts_total"),
            write_errors: own("weir_nvme_write_errors_total"),
            read_errors: own("weir_nvme_read_errors_total"),
        }
    }
}

/// How a read from disk was planned before its `.await`.
struct DiskRead {
    seg: u32,
    seq: u64,
    page: u32,
    file_off: u64,
    bytes: usize,
    /// Bytes to skip at the start of the pages read, and to return.
    skip: usize,
    take: usize,
    crcs: smallvec::SmallVec<[u32; 16]>,
}

/// Whether `n` is a multiple of the (power of two) page size.
fn is_aligned(n: usize) -> bool {
    n & (PAGE - 1) == 0
}

fn pages_of(len: usize) -> usize {
    len.div_ceil(PAGE)
}

fn page_crcs(data: &[u8]) -> Box<[u32]> {
    data.chunks(PAGE).map(crate::crc32c).collect()
}

impl fmt::Debug for SegmentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sh = &self.dev;
        f.debug_struct("SegmentStore")
            .field("path", &sh.path)
            .field("size", &sh.size)
            .field("segment_size", &sh.segment_size)
            .field("segment_count", &sh.segment_count)
            .finish_non_exhaustive()
    }
}

impl SegmentStore {
    /// Read `len` bytes at `offset` inside the block. The range is clipped to
    /// the block's stored length (like `pread` at end of file). `Ok(None)` on a
    /// miss, on a generation mismatch (the entry is dropped), on a checksum
    /// failure (the entry is dropped and counted; bad bytes are never served)
    /// or when the block's segment was reclaimed while the read was in flight.
    /// `Err` when the device failed the read; the entry is dropped and the
    /// caller should treat it as a miss.
    pub async fn read(&self, key: BlockKey, gen: u32, offset: u32, len: u32) -> io::Result<Option<Bytes>> {
        let sh = &self.dev;
        let plan = match sh.plan_read(key, gen, offset, len) {
            Ok(bytes) => return Ok(bytes),
            Err(plan) => plan,
        };
        let buf = AlignedBuf::with_capacity(plan.bytes);
        let res = read_exact_at(&sh.file, buf, plan.file_off, plan.bytes).await;
        sh.finish_read(key, plan, res.map(Bytes::from_owner))
    }

    /// Read several blocks at once, as [`read`](Self::read) does each:
    /// `(key, gen, offset, len)` per block. Pieces that lie next to each
    /// other on disk (consecutive blocks of a file usually do) go out as one
    /// I/O of up to [`MAX_MERGED_READ`] bytes.
    pub async fn read_many(
        &self,
        reqs: &[(BlockKey, u32, u32, u32)],
    ) -> SmallVec<[io::Result<Option<Bytes>>; 4]> {
        let sh = &self.dev;
        let mut out: SmallVec<[io::Result<Option<Bytes>>; 4]> = SmallVec::with_capacity(reqs.len());
        // Disk reads in request order, and the runs of them that are
        // neighbours on disk (`plans[start..end]`).
        let mut plans: SmallVec<[(usize, DiskRead); 4]> = SmallVec::new();
        let mut runs: SmallVec<[(usize, usize, usize); 4]> = SmallVec::new();
        for (i, &(key, gen, offset, len)) in reqs.iter().enumerate() {
            out.push(Ok(None));
            match sh.plan_read(key, gen, offset, len) {
                Ok(bytes) => out[i] = Ok(bytes),
                Err(plan) => {
                    let joins = plans.last().is_some_and(|(_, last)| {
                        last.seg == plan.seg
                            && last.seq == plan.seq
                            && last.file_off + last.bytes as u64 == plan.file_off
                    });
                    match runs.last_mut() {
                        Some((_, end, bytes)) if joins && *bytes + plan.bytes <= MAX_MERGED_READ => {
                            *end += 1;
                            *bytes += plan.bytes;
                        }
                        _ => runs.push((plans.len(), plans.len() + 1, plan.bytes)),
                    }
                    plans.push((i, plan));
                }
            }
        }
        let read_run = |(start, _, bytes): (usize, usize, usize)| {
            let at = plans[start].1.file_off;
            async move {
                let res = read_exact_at(&sh.file, AlignedBuf::with_capacity(bytes), at, bytes).await;
                res.map(Bytes::from_owner)
            }
        };
        // One run (a single block, or neighbours) needs no join.
        let done: SmallVec<[io::Result<Bytes>; 4]> = match runs.len() {
            0 => SmallVec::new(),
            1 => smallvec::smallvec![read_run(runs[0]).await],
            _ => futures::future::join_all(runs.iter().map(|&run| read_run(run)))
                .await
                .into(),
        };
        let mut plans = plans.into_iter();
        for (&(start, end, _), res) in runs.iter().zip(done) {
            let mut at = 0;
            for (i, plan) in plans.by_ref().take(end - start) {
                let piece = match &res {
                    Ok(all) => Ok(Bytes::slice(all, at..at + plan.bytes)),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                at += plan.bytes;
                out[i] = sh.finish_read(reqs[i].0, plan, piece);
            }
        }
        out
    }

    /// Append a block (at most `block_size` bytes; shorter at end of file)
    /// tagged with a generation, replacing any older copy. Never waits for
    /// I/O: the data is copied into the open segment's buffer and full
    /// segments are written by a spawned task. An empty or oversized block is
    /// not stored (any older copy is still removed). Must be called on a
    /// compio runtime.
    pub fn insert(&self, key: BlockKey, gen: u32, data: &[u8]) {
        let jobs = self.dev.insert(key, gen, data);
        Device::spawn_jobs(&self.dev, jobs);
    }

    /// Forget a block.
    pub fn remove(&self, key: BlockKey) {
        self.dev.log.borrow_mut().index.remove(&key);
    }

    /// Whether a read of `key` at `gen` would find an entry (it may still
    /// miss on a checksum failure).
    pub fn contains(&self, key: BlockKey, gen: u32) -> bool {
        self.dev
            .log
            .borrow()
            .index
            .get(&key)
            .is_some_and(|e| e.gen == gen)
    }

    /// Write the open segment, then wait until every buffered segment is on
    /// disk and the background reclaim read (if any) has finished. Returns
    /// the first segment write error since the previous flush, if any (its
    /// blocks have been dropped).
    pub async fn flush(&self) -> io::Result<()> {
        let jobs = {
            let mut log = self.dev.log.borrow_mut();
            let mut jobs = Jobs::default();
            log.seal(&mut jobs);
            jobs
        };
        Device::spawn_jobs(&self.dev, jobs);
        poll_fn(|cx| {
            let mut log = self.dev.log.borrow_mut();
            let prefetching = log.prefetch.as_ref().is_some_and(|p| !p.done);
            if log.writing == 0 && !prefetching {
                Poll::Ready(())
            } else {
                log.waiters.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        match self.dev.log.borrow_mut().write_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn stats(&self) -> NvmeStats {
        let c = &self.dev.c;
        NvmeStats {
            hits: c.hits.get(),
            hit_bytes: c.hit_bytes.get(),
            misses: c.misses.get(),
            inserts: c.inserts.get(),
            evicted_blocks: c.evicted.get(),
            reinserted_blocks: c.reinserted.get(),
            reclaim_reads: c.reclaim_reads.get(),
            checksum_failures: c.checksum_failures.get(),
            segments_written: c.segments_written.get(),
            dropped_inserts: c.dropped_inserts.get(),
            write_errors: c.write_errors.get(),
            read_errors: c.read_errors.get(),
        }
    }

    /// Blocks currently indexed.
    pub fn len(&self) -> usize {
        self.dev.log.borrow().index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn path(&self) -> &Path {
        &self.dev.path
    }

    /// Bytes of the file or device in use (superblock included).
    pub fn size(&self) -> u64 {
        self.dev.size
    }

    pub fn segment_count(&self) -> u32 {
        self.dev.segment_count
    }

    pub fn segment_size(&self) -> u32 {
        self.dev.segment_size
    }

    pub fn block_size(&self) -> u32 {
        self.dev.block_size
    }

    /// The random epoch written to the superblock by this open.
    pub fn epoch(&self) -> u64 {
        self.dev.epoch
    }

    /// Byte offset of a block in the file, if it is on disk (not only in a
    /// buffer). For diagnostics and tests.
    pub fn block_location(&self, key: BlockKey) -> Option<u64> {
        let log = self.dev.log.borrow();
        let e = log.index.get(&key)?;
        let seg = log.segs.get(e.seg as usize)?;
        matches!(seg.state, SegState::Sealed)
            .then(|| self.dev.seg_offset(e.seg) + u64::from(e.page) * PAGE as u64)
    }
}
