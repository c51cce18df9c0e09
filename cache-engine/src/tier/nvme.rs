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
use std::future::{poll_fn, Future};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncReadAt, AsyncWriteAt};
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

/// Why the NVMe tier could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid NVMe cache configuration for {path}: {reason}")]
    InvalidConfig { path: PathBuf, reason: String },
    #[error("cannot create cache file {path}: directory {dir} does not exist; create it or configure another path")]
    DirMissing { path: PathBuf, dir: PathBuf },
    #[error("cannot create cache file {path}: directory {dir} is not writable ({source})")]
    DirNotWritable {
        path: PathBuf,
        dir: PathBuf,
        source: io::Error,
    },
    #[error("cache file {path} does not exist and no cache size is configured; set the cache size")]
    SizeRequired { path: PathBuf },
    #[error(
        "cache file {} is {actual} bytes but the configuration says {configured}; \
         delete it or set cache size to {actual}",
        path.display()
    )]
    WrongSize {
        path: PathBuf,
        actual: u64,
        configured: u64,
    },
    #[error("cache device {} is {actual} bytes, smaller than the configured {configured}", path.display())]
    DeviceTooSmall {
        path: PathBuf,
        actual: u64,
        configured: u64,
    },
    #[error(
        "cache {} is too small: {size} bytes, but a 4 KiB superblock and two segments of \
         {segment_size} bytes need {min}",
        path.display()
    )]
    TooSmall {
        path: PathBuf,
        size: u64,
        segment_size: u32,
        min: u64,
    },
    #[error(
        "not enough free space to reserve {size} bytes for cache file {}; free space or lower the \
         cache size ({source})",
        path.display()
    )]
    NoSpace {
        path: PathBuf,
        size: u64,
        source: io::Error,
    },
    #[error(
        "the file system holding {} does not support O_DIRECT; put the cache on a local file system \
         (ext4, xfs) or a block device ({source})",
        path.display()
    )]
    DirectIoUnsupported { path: PathBuf, source: io::Error },
    #[error("cache path {} is neither a regular file nor a block device", path.display())]
    NotAFile { path: PathBuf },
    #[error("permission denied on cache {} ({source})", path.display())]
    PermissionDenied { path: PathBuf, source: io::Error },
    #[error("cannot {op} cache {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

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

/// The decoded superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub version: u32,
    pub segment_size: u32,
    pub block_size: u32,
    pub size: u64,
    pub segment_count: u64,
    pub epoch: u64,
    pub opened_unix: u64,
}

impl Superblock {
    fn encode(&self) -> AlignedBuf {
        let mut buf = AlignedBuf::zeroed(PAGE);
        let b = buf.as_mut_slice();
        b[0..8].copy_from_slice(&SUPERBLOCK_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.segment_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.block_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.size.to_le_bytes());
        b[32..40].copy_from_slice(&self.segment_count.to_le_bytes());
        b[40..48].copy_from_slice(&self.epoch.to_le_bytes());
        b[48..56].copy_from_slice(&self.opened_unix.to_le_bytes());
        let crc = crate::crc32c(&b[..SUPERBLOCK_CRC_AT]);
        b[SUPERBLOCK_CRC_AT..SUPERBLOCK_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Parse the first page of a cache file; `None` if it is not a valid
    /// superblock (wrong magic or checksum, or too short).
    pub fn decode(b: &[u8]) -> Option<Superblock> {
        let b = b.get(..SUPERBLOCK_CRC_AT + 4)?;
        if b[0..8] != SUPERBLOCK_MAGIC {
            return None;
        }
        let u32_at = |i: usize| {
            b.get(i..i + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let u64_at = |i: usize| {
            b.get(i..i + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
        };
        if u32_at(SUPERBLOCK_CRC_AT)? != crate::crc32c(&b[..SUPERBLOCK_CRC_AT]) {
            return None;
        }
        Some(Superblock {
            version: u32_at(8)?,
            segment_size: u32_at(12)?,
            block_size: u32_at(16)?,
            size: u64_at(24)?,
            segment_count: u64_at(32)?,
            epoch: u64_at(40)?,
            opened_unix: u64_at(48)?,
        })
    }
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

/// Set a block's hit bit; its first hit since it was written counts for its
/// segment.
fn mark_hit(e: &mut Entry, segs: &mut [SegMeta]) {
    if !std::mem::replace(&mut e.hit, true) {
        if let Some(m) = segs.get_mut(e.seg as usize) {
            m.hits += 1;
        }
    }
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
    /// Create the cache file at `size` bytes, or reuse an existing one of
    /// exactly that size (an existing empty file counts as new); a block
    /// device is used at its own size (error if smaller than `size`, when
    /// `size != 0`). The tier starts empty after every open: the index is in
    /// memory only, and a fresh random epoch is written to the superblock.
    pub async fn open(cfg: NvmeConfig) -> Result<SegmentStore, StoreError> {
        validate(&cfg)?;
        let path = cfg.path.clone();
        let prep_path = path.clone();
        let size = cfg.size;
        // Creation, fallocate and stat are blocking syscalls (fallocate of a
        // large file can take a while): keep them off the shard's event loop.
        let prepared = compio::runtime::spawn_blocking(move || prepare_file(&prep_path, size))
            .await
            .map_err(|e| StoreError::Io {
                path: path.clone(),
                op: "prepare",
                source: io::Error::other(e.to_string()),
            })??;
        let size = prepared;
        let min = SUPERBLOCK_LEN + 2 * u64::from(cfg.segment_size);
        if size < min {
            return Err(StoreError::TooSmall {
                path,
                size,
                segment_size: cfg.segment_size,
                min,
            });
        }
        let segment_count =
            u32::try_from((size - SUPERBLOCK_LEN) / u64::from(cfg.segment_size)).map_err(|_| {
                StoreError::InvalidConfig {
                    path: path.clone(),
                    reason: "more than 2^32 segments; use a larger segment size".into(),
                }
            })?;

        let file = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(&path)
            .await
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => StoreError::DirectIoUnsupported {
                    path: path.clone(),
                    source: e,
                },
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => StoreError::PermissionDenied {
                    path: path.clone(),
                    source: e,
                },
                _ => StoreError::Io {
                    path: path.clone(),
                    op: "open",
                    source: e,
                },
            })?;

        let sb = Superblock {
            version: FORMAT_VERSION,
            segment_size: cfg.segment_size,
            block_size: cfg.block_size,
            size,
            segment_count: u64::from(segment_count),
            epoch: rand::random(),
            opened_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let write_sb = async {
            write_all_at(&file, Rc::new(sb.encode()), 0).await?;
            file.sync_data().await
        };
        write_sb.await.map_err(|e| match e.raw_os_error() {
            // Some file systems accept O_DIRECT at open and refuse the I/O.
            Some(libc::EINVAL) => StoreError::DirectIoUnsupported {
                path: path.clone(),
                source: e,
            },
            _ => StoreError::Io {
                path: path.clone(),
                op: "write the superblock of",
                source: e,
            },
        })?;

        let segs = (0..segment_count)
            .map(|_| SegMeta {
                seq: 0,
                state: SegState::Free,
                used_pages: 0,
                keys: Vec::new(),
                hits: 0,
            })
            .collect();
        tracing::info!(
            path = %path.display(),
            size,
            segment_size = cfg.segment_size,
            segments = segment_count,
            epoch = sb.epoch,
            "NVMe cache tier opened (empty)"
        );
        Ok(SegmentStore {
            dev: Rc::new(Device {
                file,
                path,
                segment_size: cfg.segment_size,
                block_size: cfg.block_size,
                segment_count,
                size,
                epoch: sb.epoch,
                log: RefCell::new(Log {
                    index: Default::default(),
                    segs,
                    open: None,
                    head: segment_count - 1,
                    next_seq: 1,
                    writing: 0,
                    prefetch: None,
                    pool: Vec::new(),
                    write_error: None,
                    waiters: Vec::new(),
                }),
                c: Counters::new(cfg.shard),
                #[cfg(test)]
                fail_next_write: Cell::new(false),
            }),
        })
    }

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

impl Device {
    fn seg_offset(&self, seg: u32) -> u64 {
        SUPERBLOCK_LEN + u64::from(seg) * u64::from(self.segment_size)
    }

    fn seg_pages(&self) -> usize {
        self.segment_size as usize / PAGE
    }

    /// Look the block up. `Ok` when answered without disk I/O (miss, or hit
    /// in a buffer); `Err(plan)` when the pages must be read from disk.
    fn plan_read(&self, key: BlockKey, gen: u32, offset: u32, len: u32) -> Result<Option<Bytes>, DiskRead> {
        let mut log = self.log.borrow_mut();
        let Log {
            index, segs, open, ..
        } = &mut *log;
        let Some(e) = index.get_mut(&key) else {
            self.c.misses.add(1);
            return Ok(None);
        };
        if e.gen != gen {
            index.remove(&key);
            self.c.misses.add(1);
            return Ok(None);
        }
        let stored = e.len as usize;
        let start = (offset as usize).min(stored);
        let end = (offset as usize).saturating_add(len as usize).min(stored);
        let base = e.page as usize * PAGE;
        let mem: Option<&[u8]> = match segs.get(e.seg as usize).map(|s| &s.state) {
            Some(SegState::Open) => open.as_ref().filter(|o| o.seg == e.seg).map(|o| o.buf.as_slice()),
            Some(SegState::Writing(buf)) => Some(buf.as_slice()),
            Some(SegState::Sealed) => {
                if start == end {
                    Some(&[])
                } else {
                    let first = start / PAGE;
                    let last = pages_of(end);
                    if let Some(crcs) = e.crcs.get(first..last) {
                        let crcs = crcs.into();
                        mark_hit(e, segs);
                        return Err(DiskRead {
                            seg: e.seg,
                            seq: segs[e.seg as usize].seq,
                            page: e.page,
                            file_off: self.seg_offset(e.seg) + (base + first * PAGE) as u64,
                            bytes: (last - first) * PAGE,
                            skip: start - first * PAGE,
                            take: end - start,
                            crcs,
                        });
                    }
                    None
                }
            }
            _ => None,
        };
        let data = mem.and_then(|m| {
            if start == end {
                Some(&[][..])
            } else {
                m.get(base + start..base + end)
            }
        });
        match data {
            Some(d) => {
                let out = Bytes::copy_from_slice(d);
                mark_hit(e, segs);
                self.c.hits.add(1);
                self.c.hit_bytes.add(out.len() as u64);
                Ok(Some(out))
            }
            None => {
                // The entry points nowhere valid; never serve it.
                tracing::error!(path = %self.path.display(), ?key, "NVMe index entry without data; dropped");
                index.remove(&key);
                self.c.misses.add(1);
                Ok(None)
            }
        }
    }

    /// Check what a disk read returned (`res`: the planned pages) and cut the
    /// requested bytes out of it.
    fn finish_read(
        &self,
        key: BlockKey,
        plan: DiskRead,
        res: io::Result<Bytes>,
    ) -> io::Result<Option<Bytes>> {
        let mut log = self.log.borrow_mut();
        let same_entry = |log: &Log| {
            log.index
                .get(&key)
                .is_some_and(|e| e.seg == plan.seg && e.page == plan.page)
        };
        let buf = match res {
            Ok(buf) => buf,
            Err(err) => {
                if same_entry(&log) {
                    log.index.remove(&key);
                }
                self.c.read_errors.add(1);
                self.c.misses.add(1);
                tracing::warn!(path = %self.path.display(), offset = plan.file_off, %err, "NVMe cache read failed");
                return Err(err);
            }
        };
        // Reused since the read was planned: the pages may hold another block.
        let seg_ok = log
            .segs
            .get(plan.seg as usize)
            .is_some_and(|s| s.seq == plan.seq && matches!(s.state, SegState::Sealed));
        if !seg_ok {
            self.c.misses.add(1);
            return Ok(None);
        }
        let good = buf.len() == plan.bytes
            && buf
                .chunks(PAGE)
                .zip(&plan.crcs)
                .all(|(p, &c)| crate::crc32c(p) == c);
        if !good {
            if same_entry(&log) {
                log.index.remove(&key);
            }
            self.c.checksum_failures.add(1);
            self.c.misses.add(1);
            tracing::warn!(
                path = %self.path.display(),
                offset = plan.file_off,
                ?key,
                "NVMe cache block failed its checksum; dropped"
            );
            return Ok(None);
        }
        drop(log);
        self.c.hits.add(1);
        self.c.hit_bytes.add(plan.take as u64);
        // `Bytes::slice` by path: the `IoBuf::slice` in scope would shadow it.
        Ok(Some(Bytes::slice(&buf, plan.skip..plan.skip + plan.take)))
    }

    fn insert(&self, key: BlockKey, gen: u32, data: &[u8]) -> Jobs {
        let mut jobs = Jobs::default();
        let mut log = self.log.borrow_mut();
        log.index.remove(&key);
        if data.is_empty() || data.len() > self.block_size as usize {
            return jobs;
        }
        let need = align_up(data.len());
        if log.open.as_ref().is_none_or(|o| o.buf.remaining() < need) {
            log.seal(&mut jobs);
            if !self.open_next(&mut log) {
                self.c.dropped_inserts.add(1);
                return jobs;
            }
        }
        let Log {
            index, segs, open, ..
        } = &mut *log;
        let Some(open) = open.as_mut() else {
            return jobs;
        };
        let page = open.buf.len() / PAGE;
        if !(open.buf.extend_from_slice(data) && open.buf.extend_zeroed(need - data.len())) {
            // Cannot happen (room was checked); decline rather than corrupt.
            open.buf.truncate(page * PAGE);
            self.c.dropped_inserts.add(1);
            return jobs;
        }
        let crcs = page_crcs(&open.buf.as_slice()[page * PAGE..]);
        index.insert(
            key,
            Entry {
                seg: open.seg,
                page: page as u32,
                len: data.len() as u32,
                gen,
                hit: false,
                crcs,
            },
        );
        if let Some(m) = segs.get_mut(open.seg as usize) {
            m.keys.push(key);
        }
        self.c.inserts.add(1);
        self.maybe_prefetch(&mut log, &mut jobs);
        jobs
    }

    /// Open the next segment of the ring, reclaiming it. False when it cannot
    /// be used yet (still being written, too many writes in flight) or every
    /// segment is bad.
    fn open_next(&self, log: &mut Log) -> bool {
        if log.open.is_some() {
            return true;
        }
        if log.writing >= MAX_WRITES_IN_FLIGHT {
            return false;
        }
        let Some(cand) = log.next_usable(log.head) else {
            return false;
        };
        if !matches!(log.segs[cand as usize].state, SegState::Free | SegState::Sealed) {
            return false;
        }
        let old_seq = log.segs[cand as usize].seq;
        let prefetched = match log.prefetch.take() {
            Some(p) if p.seg == cand && p.seq == old_seq => p.buf,
            // A read still in flight (or of another segment) is abandoned: its
            // task sees the prefetch gone and drops the data.
            _ => None,
        };
        let mut buf = log.take_buf(self.segment_size as usize);
        let old_keys = std::mem::take(&mut log.segs[cand as usize].keys);
        let mut keys = Vec::with_capacity(old_keys.len());
        // Keep room for at least one full block after the reinserted ones.
        let budget = (self.seg_pages() / 2).min(self.seg_pages() - pages_of(self.block_size as usize)) * PAGE;
        let (mut evicted, mut reinserted) = (0u64, 0u64);
        for key in old_keys {
            let mut e = match log.index.entry(key) {
                MapEntry::Occupied(o) if o.get().seg == cand => o.remove(),
                _ => continue,
            };
            let bytes = e.crcs.len() * PAGE;
            let src_range = e.page as usize * PAGE..e.page as usize * PAGE + bytes;
            let src = match &prefetched {
                Some(p) if e.hit && buf.len() + bytes <= budget => p.as_slice().get(src_range),
                _ => None,
            };
            let Some(src) = src else {
                evicted += 1;
                continue;
            };
            if src
                .chunks(PAGE)
                .zip(e.crcs.iter())
                .any(|(p, &c)| crate::crc32c(p) != c)
            {
                self.c.checksum_failures.add(1);
                tracing::warn!(path = %self.path.display(), ?key, "NVMe cache block failed its checksum during reclaim; dropped");
                continue;
            }
            let page = buf.len() / PAGE;
            if !buf.extend_from_slice(src) {
                evicted += 1;
                continue;
            }
            e.seg = cand;
            e.page = page as u32;
            e.hit = false;
            log.index.insert(key, e);
            keys.push(key);
            reinserted += 1;
        }
        if let Some(p) = prefetched {
            log.put_buf(p);
        }
        let seq = log.next_seq;
        log.next_seq += 1;
        let m = &mut log.segs[cand as usize];
        m.seq = seq;
        m.state = SegState::Open;
        m.used_pages = 0;
        m.keys = keys;
        m.hits = 0;
        log.open = Some(OpenSeg { seg: cand, buf });
        log.head = cand;
        self.c.evicted.add(evicted);
        self.c.reinserted.add(reinserted);
        if evicted + reinserted > 0 {
            tracing::debug!(segment = cand, evicted, reinserted, "NVMe segment reclaimed");
        }
        true
    }

    /// Start reading the segment the ring will reclaim next, so that its hit
    /// blocks can be reinserted without waiting when the time comes. One
    /// with no hit blocks is not read: reclaiming it evicts them all.
    fn maybe_prefetch(&self, log: &mut Log, jobs: &mut Jobs) {
        if log.prefetch.is_some() {
            return;
        }
        let Some(open) = log.open.as_ref().map(|o| o.seg) else {
            return;
        };
        let Some(next) = log.next_usable(open) else {
            return;
        };
        let m = &log.segs[next as usize];
        if next == open || !matches!(m.state, SegState::Sealed) || m.used_pages == 0 || m.hits == 0 {
            return;
        }
        let live = m
            .keys
            .iter()
            .any(|k| log.index.get(k).is_some_and(|e| e.seg == next));
        if !live {
            // All stale: forget them so the next insert does not scan again.
            log.segs[next as usize].keys.clear();
            return;
        }
        let (seq, pages) = (m.seq, m.used_pages);
        log.prefetch = Some(Prefetch {
            seg: next,
            seq,
            buf: None,
            done: false,
        });
        jobs.prefetch = Some((next, seq, pages));
        self.c.reclaim_reads.add(1);
    }

    fn spawn_jobs(this: &Rc<Device>, jobs: Jobs) {
        for (seg, seq, buf) in jobs.writes {
            let sh = Rc::clone(this);
            let task = async move {
                let off = sh.seg_offset(seg);
                #[cfg(test)]
                let res = if sh.fail_next_write.replace(false) {
                    Err(io::Error::from_raw_os_error(libc::EIO))
                } else {
                    write_all_at(&sh.file, Rc::clone(&buf), off).await
                };
                #[cfg(not(test))]
                let res = write_all_at(&sh.file, Rc::clone(&buf), off).await;
                sh.finish_write(seg, seq, res, buf);
            };
            if !spawn_detached(task) {
                this.finish_write(
                    seg,
                    seq,
                    Err(io::Error::other("no compio runtime to write on")),
                    Rc::new(AlignedBuf::with_capacity(PAGE)),
                );
            }
        }
        if let Some((seg, seq, pages)) = jobs.prefetch {
            let sh = Rc::clone(this);
            let task = async move {
                let bytes = pages as usize * PAGE;
                let buf = sh.log.borrow_mut().take_buf(sh.segment_size as usize);
                let res = read_exact_at(&sh.file, buf, sh.seg_offset(seg), bytes).await;
                sh.finish_prefetch(seg, seq, res);
            };
            if !spawn_detached(task) {
                this.log.borrow_mut().prefetch = None;
            }
        }
    }

    fn finish_write(&self, seg: u32, seq: u64, res: io::Result<()>, buf: Rc<AlignedBuf>) {
        let mut log = self.log.borrow_mut();
        log.writing = log.writing.saturating_sub(1);
        let current = log
            .segs
            .get(seg as usize)
            .is_some_and(|m| m.seq == seq && matches!(m.state, SegState::Writing(_)));
        if current {
            match res {
                Ok(()) => {
                    log.segs[seg as usize].state = SegState::Sealed;
                    self.c.segments_written.add(1);
                }
                Err(err) => {
                    let keys = std::mem::take(&mut log.segs[seg as usize].keys);
                    log.segs[seg as usize].state = SegState::Bad;
                    let mut dropped = 0;
                    for k in keys {
                        if log.index.get(&k).is_some_and(|e| e.seg == seg) {
                            log.index.remove(&k);
                            dropped += 1;
                        }
                    }
                    self.c.write_errors.add(1);
                    tracing::error!(
                        path = %self.path.display(),
                        segment = seg,
                        offset = self.seg_offset(seg),
                        dropped_blocks = dropped,
                        %err,
                        "NVMe cache segment write failed; segment taken out of service"
                    );
                    if log.write_error.is_none() {
                        log.write_error = Some(err);
                    }
                }
            }
        }
        // The segment no longer references the buffer: recycle it.
        if let Ok(b) = Rc::try_unwrap(buf) {
            log.put_buf(b);
        }
        let waiters = std::mem::take(&mut log.waiters);
        drop(log);
        waiters.into_iter().for_each(Waker::wake);
    }

    fn finish_prefetch(&self, seg: u32, seq: u64, res: io::Result<AlignedBuf>) {
        let mut log = self.log.borrow_mut();
        let wanted = log
            .prefetch
            .as_ref()
            .is_some_and(|p| p.seg == seg && p.seq == seq && !p.done);
        match res {
            Ok(buf) if wanted => {
                if let Some(p) = log.prefetch.as_mut() {
                    p.buf = Some(buf);
                    p.done = true;
                }
            }
            Ok(buf) => log.put_buf(buf),
            Err(err) => {
                if wanted {
                    if let Some(p) = log.prefetch.as_mut() {
                        p.done = true;
                    }
                }
                self.c.read_errors.add(1);
                tracing::warn!(
                    path = %self.path.display(),
                    segment = seg,
                    %err,
                    "NVMe cache reclaim read failed; its blocks will not be reinserted"
                );
            }
        }
        let waiters = std::mem::take(&mut log.waiters);
        drop(log);
        waiters.into_iter().for_each(Waker::wake);
    }
}

impl Log {
    /// The first segment after `from` in ring order that is not bad.
    fn next_usable(&self, from: u32) -> Option<u32> {
        let n = self.segs.len();
        (1..=n)
            .map(|i| ((from as usize + i) % n) as u32)
            .find(|&s| !matches!(self.segs[s as usize].state, SegState::Bad))
    }

    /// Hand the open segment to a write job (nothing to do if it is empty).
    fn seal(&mut self, jobs: &mut Jobs) {
        let Some(open) = self.open.take() else {
            return;
        };
        if open.buf.is_empty() {
            self.open = Some(open);
            return;
        }
        let buf = Rc::new(open.buf);
        if let Some(m) = self.segs.get_mut(open.seg as usize) {
            m.used_pages = (buf.len() / PAGE) as u32;
            m.state = SegState::Writing(Rc::clone(&buf));
            self.writing += 1;
            jobs.writes.push((open.seg, m.seq, buf));
        }
    }

    fn take_buf(&mut self, cap: usize) -> AlignedBuf {
        match self.pool.pop() {
            Some(mut b) if b.capacity() >= cap => {
                b.clear();
                b
            }
            _ => AlignedBuf::with_capacity(cap),
        }
    }

    fn put_buf(&mut self, mut b: AlignedBuf) {
        if self.pool.len() < MAX_POOLED_BUFFERS {
            b.clear();
            self.pool.push(b);
        }
    }
}

/// Spawn a background task on the current compio runtime; false if there is
/// none.
fn spawn_detached<F: Future<Output = ()> + 'static>(task: F) -> bool {
    compio::runtime::Runtime::try_with_current(|rt| rt.spawn(task).detach()).is_ok()
}

/// Read exactly `len` bytes (a multiple of 4096) at `pos` into `buf`, whose
/// capacity must be at least `len`. Continues after short reads.
async fn read_exact_at(
    file: &compio::fs::File,
    buf: AlignedBuf,
    pos: u64,
    len: usize,
) -> io::Result<AlignedBuf> {
    let mut buf = buf;
    buf.clear();
    if buf.capacity() < len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "read buffer too small",
        ));
    }
    while buf.len() < len {
        let done = buf.len();
        // Poll for the completion instead of sleeping on it: a wake-up per
        // read costs more than the read on a virtual disk.
        let _polling = crate::rt::poll::ReadInFlight::start();
        let BufResult(res, slice) = submit_now(file.read_at(buf.slice(done..len), pos + done as u64)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "cache file ended early",
                ))
            }
            Ok(_) if !is_aligned(buf.len()) && buf.len() < len => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unaligned short read",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// Await an I/O op whose request goes to the kernel at once, not with the
/// runtime's next batch. Reads arrive a few at a time; left to the batch,
/// they complete together and go out together, and the device queue swings
/// between full and empty instead of staying full.
async fn submit_now<F: Future>(op: F) -> F::Output {
    let mut op = std::pin::pin!(op);
    if let Poll::Ready(out) = poll_fn(|cx| Poll::Ready(op.as_mut().poll(cx))).await {
        return out;
    }
    compio::runtime::Runtime::with_current(|rt| crate::rt::poll::poll_now(rt, &rt.waker()));
    op.await
}

/// Write all of `buf` at `pos`. Continues after short writes.
async fn write_all_at(file: &compio::fs::File, buf: Rc<AlignedBuf>, pos: u64) -> io::Result<()> {
    let total = buf.len();
    let mut buf = buf;
    let mut done = 0usize;
    let mut f = file;
    while done < total {
        let BufResult(res, slice) = f.write_at(buf.slice(done..), pos + done as u64).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "device accepted no bytes",
                ))
            }
            Ok(n) => {
                done += n;
                if done < total && !is_aligned(done) {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "unaligned short write"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn validate(cfg: &NvmeConfig) -> Result<(), StoreError> {
    let bad = |reason: String| {
        Err(StoreError::InvalidConfig {
            path: cfg.path.clone(),
            reason,
        })
    };
    if cfg.segment_size == 0 || !is_aligned(cfg.segment_size as usize) {
        return bad(format!(
            "segment size {} is not a positive multiple of 4096",
            cfg.segment_size
        ));
    }
    if cfg.block_size == 0 || !is_aligned(cfg.block_size as usize) {
        return bad(format!(
            "block size {} is not a positive multiple of 4096",
            cfg.block_size
        ));
    }
    if cfg.block_size > cfg.segment_size {
        return bad(format!(
            "block size {} is larger than the segment size {}",
            cfg.block_size, cfg.segment_size
        ));
    }
    if i64::try_from(cfg.size).is_err() {
        return bad(format!("size {} is too large", cfg.size));
    }
    // Checked again after open for a device used at its own size; checking
    // here avoids creating a file that would then be refused.
    let min = SUPERBLOCK_LEN + 2 * u64::from(cfg.segment_size);
    if cfg.size != 0 && cfg.size < min {
        return Err(StoreError::TooSmall {
            path: cfg.path.clone(),
            size: cfg.size,
            segment_size: cfg.segment_size,
            min,
        });
    }
    Ok(())
}

/// Make sure the file or device exists with the right size; returns the size
/// to use. Blocking.
fn prepare_file(path: &Path, size: u64) -> Result<u64, StoreError> {
    use std::os::unix::fs::FileTypeExt;
    let io_err = |op: &'static str, source: io::Error| StoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    };
    match std::fs::metadata(path) {
        Ok(md) if md.file_type().is_block_device() => {
            use std::io::Seek;
            let mut device = std::fs::File::open(path).map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => StoreError::PermissionDenied {
                    path: path.to_path_buf(),
                    source: e,
                },
                _ => io_err("open", e),
            })?;
            let actual = device.seek(io::SeekFrom::End(0)).map_err(|e| io_err("size", e))?;
            if size != 0 && actual < size {
                return Err(StoreError::DeviceTooSmall {
                    path: path.to_path_buf(),
                    actual,
                    configured: size,
                });
            }
            Ok(actual)
        }
        Ok(md) if md.is_file() => {
            let actual = md.len();
            let target = match (actual, size) {
                (0, 0) => {
                    return Err(StoreError::SizeRequired {
                        path: path.to_path_buf(),
                    })
                }
                // An empty file (left by an interrupted creation, or made by
                // hand) is treated as new.
                (0, s) => s,
                (a, 0) => a,
                (a, s) if a == s => a,
                (a, s) => {
                    return Err(StoreError::WrongSize {
                        path: path.to_path_buf(),
                        actual: a,
                        configured: s,
                    })
                }
            };
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                        StoreError::PermissionDenied {
                            path: path.to_path_buf(),
                            source: e,
                        }
                    }
                    _ => io_err("open", e),
                })?;
            // Also for a reused file: a copied or sparse file could otherwise
            // run out of space on a later write.
            reserve(&f, path, target)?;
            Ok(target)
        }
        Ok(_) => Err(StoreError::NotAFile {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !dir.is_dir() {
                return Err(StoreError::DirMissing {
                    path: path.to_path_buf(),
                    dir,
                });
            }
            if size == 0 {
                return Err(StoreError::SizeRequired {
                    path: path.to_path_buf(),
                });
            }
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                        StoreError::DirNotWritable {
                            path: path.to_path_buf(),
                            dir: dir.clone(),
                            source: e,
                        }
                    }
                    _ => io_err("create", e),
                })?;
            if let Err(e) = reserve(&f, path, size) {
                // Do not leave a half-made file that the next start would
                // mistake for the cache.
                drop(f);
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
            Ok(size)
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(StoreError::PermissionDenied {
            path: path.to_path_buf(),
            source: e,
        }),
        Err(e) => Err(io_err("inspect", e)),
    }
}

/// Allocate the file's blocks so that later writes cannot hit ENOSPC.
fn reserve(f: &std::fs::File, path: &Path, size: u64) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(size).map_err(|_| StoreError::InvalidConfig {
        path: path.to_path_buf(),
        reason: format!("size {size} is too large"),
    })?;
    // SAFETY: `f` keeps the descriptor open for the duration of the call;
    // fallocate takes no pointers.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Err(StoreError::NoSpace {
            path: path.to_path_buf(),
            size,
            source: err,
        }),
        Some(libc::EOPNOTSUPP) => {
            tracing::warn!(
                path = %path.display(),
                "file system cannot reserve space for the cache file; a full disk may make cache writes fail"
            );
            f.set_len(size).map_err(|e| StoreError::Io {
                path: path.to_path_buf(),
                op: "size",
                source: e,
            })
        }
        _ => Err(StoreError::Io {
            path: path.to_path_buf(),
            op: "reserve space for",
            source: err,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    const SEG: u32 = 64 << 10;
    const BLOCK: u32 = 16 << 10;

    fn run<F: Future<Output = ()>>(f: F) {
        compio::runtime::Runtime::new().unwrap().block_on(f)
    }

    fn cfg(path: &Path, segments: u64) -> NvmeConfig {
        NvmeConfig {
            path: path.to_path_buf(),
            size: SUPERBLOCK_LEN + segments * u64::from(SEG),
            segment_size: SEG,
            block_size: BLOCK,
            shard: 0,
        }
    }

    fn key(block: u64) -> BlockKey {
        BlockKey { file: 7, block }
    }

    /// Deterministic, key-dependent bytes, so a block served from the wrong
    /// place is noticed.
    fn data(block: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u64).wrapping_mul(31).wrapping_add(block.wrapping_mul(131)) as u8)
            .collect()
    }

    async fn check(store: &SegmentStore, block: u64, len: usize) {
        let d = data(block, len);
        let full = store.read(key(block), 1, 0, BLOCK).await.unwrap().expect("hit");
        assert_eq!(&full[..], &d[..]);
        for (off, l) in [
            (0usize, 1usize),
            (100, 5000),
            (4095, 2),
            (4096, 4096),
            (len - 1, 1),
            (3, len - 3),
        ] {
            let got = store
                .read(key(block), 1, off as u32, l as u32)
                .await
                .unwrap()
                .expect("hit");
            assert_eq!(&got[..], &d[off..off + l], "offset {off} len {l}");
        }
    }

    #[test]
    fn insert_read_partial_memory_and_disk() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
            for b in 0..3 {
                store.insert(key(b), 1, &data(b, BLOCK as usize));
            }
            assert_eq!(store.len(), 3);
            assert!(store.contains(key(1), 1));
            for b in 0..3 {
                check(&store, b, BLOCK as usize).await;
            }
            assert_eq!(store.block_location(key(0)), None, "still in memory");
            store.flush().await.unwrap();
            assert_eq!(store.block_location(key(0)), Some(SUPERBLOCK_LEN));
            for b in 0..3 {
                check(&store, b, BLOCK as usize).await;
            }
            let s = store.stats();
            assert_eq!(s.inserts, 3);
            assert_eq!(s.misses, 0);
            assert_eq!(s.hits, 2 * 3 * 7);
            assert_eq!(s.segments_written, 1);
            assert_eq!(s.checksum_failures, 0);
        });
    }

    #[test]
    fn short_block_at_eof() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
            let d = data(9, 10_000);
            store.insert(key(9), 1, &d);
            for round in 0..2 {
                let all = store.read(key(9), 1, 0, BLOCK).await.unwrap().unwrap();
                assert_eq!(&all[..], &d[..], "round {round}");
                let tail = store.read(key(9), 1, 9_000, 4_000).await.unwrap().unwrap();
                assert_eq!(&tail[..], &d[9_000..]);
                let past = store.read(key(9), 1, 12_000, 10).await.unwrap().unwrap();
                assert!(past.is_empty());
                store.flush().await.unwrap();
            }
        });
    }

    #[test]
    fn generation_mismatch_remove_and_replace() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
            store.insert(key(1), 1, &data(1, 8192));
            assert!(!store.contains(key(1), 2));
            assert!(store.read(key(1), 2, 0, 10).await.unwrap().is_none());
            // The stale entry was dropped.
            assert!(!store.contains(key(1), 1));
            assert!(store.read(key(1), 1, 0, 10).await.unwrap().is_none());

            store.insert(key(2), 1, &data(2, 8192));
            store.remove(key(2));
            assert!(!store.contains(key(2), 1));
            assert!(store.read(key(2), 1, 0, 10).await.unwrap().is_none());

            // Replacement: the newer copy wins, in memory and on disk.
            store.insert(key(3), 1, &data(3, 8192));
            store.insert(key(3), 2, &data(33, 4096));
            store.flush().await.unwrap();
            let got = store.read(key(3), 2, 0, BLOCK).await.unwrap().unwrap();
            assert_eq!(&got[..], &data(33, 4096)[..]);
            assert_eq!(store.stats().misses, 3);

            // Empty and oversized blocks are not stored.
            store.insert(key(4), 1, &[]);
            store.insert(key(5), 1, &vec![0u8; BLOCK as usize + 1]);
            assert!(!store.contains(key(4), 1) && !store.contains(key(5), 1));
        });
    }

    #[test]
    fn restart_starts_empty_and_rewrites_superblock() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c");
            let first = SegmentStore::open(cfg(&path, 4)).await.unwrap();
            first.insert(key(1), 1, &data(1, 8192));
            first.flush().await.unwrap();
            let epoch1 = first.epoch();
            drop(first);
            let raw = std::fs::read(&path).unwrap();
            let sb = Superblock::decode(&raw).unwrap();
            assert_eq!(sb.epoch, epoch1);
            assert_eq!(
                (sb.version, sb.segment_size, sb.segment_count),
                (FORMAT_VERSION, SEG, 4)
            );
            assert_eq!(sb.size, raw.len() as u64);

            let second = SegmentStore::open(cfg(&path, 4)).await.unwrap();
            assert!(second.is_empty());
            assert!(!second.contains(key(1), 1));
            assert!(second.read(key(1), 1, 0, 10).await.unwrap().is_none());
            assert_ne!(second.epoch(), epoch1);
            let raw = std::fs::read(&path).unwrap();
            assert_eq!(Superblock::decode(&raw).unwrap().epoch, second.epoch());
            assert_eq!(second.stats().misses, 1);
        });
    }

    #[test]
    fn open_errors_are_clear() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c");
            std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
            let err = SegmentStore::open(cfg(&path, 4)).await.unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, StoreError::WrongSize { actual: 1048576, .. }),
                "{msg}"
            );
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("delete it or set cache size to 1048576"), "{msg}");

            let missing = dir.path().join("no/such/dir/c");
            let err = SegmentStore::open(cfg(&missing, 4)).await.unwrap_err();
            assert!(matches!(err, StoreError::DirMissing { .. }), "{err}");
            assert!(err.to_string().contains("does not exist"));

            let small = dir.path().join("small");
            let err = SegmentStore::open(cfg(&small, 1)).await.unwrap_err();
            assert!(matches!(err, StoreError::TooSmall { .. }), "{err}");

            let mut c = cfg(&dir.path().join("x"), 4);
            c.block_size = 1000;
            assert!(matches!(
                SegmentStore::open(c).await,
                Err(StoreError::InvalidConfig { .. })
            ));

            let err = SegmentStore::open(cfg(dir.path(), 4)).await.unwrap_err();
            assert!(matches!(err, StoreError::NotAFile { .. }), "{err}");

            // Size 0: an existing file is used at its own size; a missing one
            // cannot be created.
            let mut c = cfg(&path, 0);
            c.size = 0;
            let reused = SegmentStore::open(c.clone()).await.unwrap();
            assert_eq!(reused.size(), 1 << 20);
            assert_eq!(reused.segment_count(), 15);
            drop(reused);
            c.path = dir.path().join("absent");
            assert!(matches!(
                SegmentStore::open(c).await,
                Err(StoreError::SizeRequired { .. })
            ));

            // An existing empty file is treated as new.
            let empty = dir.path().join("empty");
            std::fs::write(&empty, b"").unwrap();
            let store = SegmentStore::open(cfg(&empty, 4)).await.unwrap();
            assert_eq!(std::fs::metadata(&empty).unwrap().len(), store.size());
        });
    }

    #[test]
    fn checksum_failure_is_dropped_and_counted() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c");
            let store = SegmentStore::open(cfg(&path, 4)).await.unwrap();
            store.insert(key(1), 1, &data(1, BLOCK as usize));
            store.insert(key(2), 1, &data(2, BLOCK as usize));
            store.flush().await.unwrap();
            let at = store.block_location(key(1)).unwrap();
            {
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all_at(b"garbage!", at + 5000).unwrap();
                f.sync_all().unwrap();
            }
            // A read that does not touch the damaged page still succeeds.
            let ok = store.read(key(1), 1, 0, 4096).await.unwrap().unwrap();
            assert_eq!(&ok[..], &data(1, 4096)[..]);
            assert!(store.read(key(1), 1, 4096, 100).await.unwrap().is_none());
            assert_eq!(store.stats().checksum_failures, 1);
            assert!(!store.contains(key(1), 1));
            assert!(store.read(key(1), 1, 0, 10).await.unwrap().is_none());
            check(&store, 2, BLOCK as usize).await;

            store.insert(key(1), 1, &data(1, BLOCK as usize));
            check(&store, 1, BLOCK as usize).await;
            store.flush().await.unwrap();
            check(&store, 1, BLOCK as usize).await;
            assert_eq!(store.stats().checksum_failures, 1);
        });
    }

    #[test]
    fn read_many_merges_neighbours_and_checks_each_block() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c");
            let store = SegmentStore::open(cfg(&path, 4)).await.unwrap();
            for b in 0..4 {
                store.insert(key(b), 1, &data(b, BLOCK as usize));
            }
            store.flush().await.unwrap();
            // Damage block 2 only.
            let at = store.block_location(key(2)).unwrap();
            {
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all_at(b"garbage!", at + 100).unwrap();
                f.sync_all().unwrap();
            }
            let reqs: Vec<_> = (0..5).map(|b| (key(b), 1, 10, BLOCK - 20)).collect();
            let got = store.read_many(&reqs).await;
            for (b, r) in got.into_iter().enumerate() {
                let r = r.unwrap();
                match b {
                    2 | 4 => assert!(r.is_none(), "block {b}"),
                    _ => assert_eq!(
                        &r.unwrap()[..],
                        &data(b as u64, BLOCK as usize)[10..BLOCK as usize - 10]
                    ),
                }
            }
            assert_eq!(store.stats().checksum_failures, 1);
            assert!(!store.contains(key(2), 1));
        });
    }

    /// Fill `count` blocks starting at `first`, flushing after each segment's
    /// worth so that every write (and the reclaim read) completes.
    async fn fill(store: &SegmentStore, first: u64, count: u64) {
        let per_seg = u64::from(SEG / BLOCK);
        for b in first..first + count {
            store.insert(key(b), 1, &data(b, BLOCK as usize));
            if (b - first) % per_seg == per_seg - 1 {
                store.flush().await.unwrap();
            }
        }
    }

    #[test]
    fn reclaim_evicts_oldest_and_reinserts_hit_blocks() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
            // 4 segments of 4 blocks: 0..4 land in segment 0.
            fill(&store, 0, 12).await;
            // Hit three blocks of segment 0; reinsertion is capped at half a
            // segment (two blocks), in log order. Filling the last segment
            // reads segment 0 back for them, ahead of its reclaim.
            for b in [1, 2, 3] {
                assert!(store.read(key(b), 1, 0, 1).await.unwrap().is_some());
            }
            fill(&store, 12, 4).await;
            assert_eq!(store.len(), 16);
            fill(&store, 16, 1).await;
            let s = store.stats();
            assert_eq!(s.reinserted_blocks, 2);
            assert_eq!(s.evicted_blocks, 2);
            assert_eq!(s.reclaim_reads, 1, "segment 0 was read back for its hit blocks");
            for b in [0, 3] {
                assert!(!store.contains(key(b), 1), "block {b} should be evicted");
                assert!(store.read(key(b), 1, 0, 1).await.unwrap().is_none());
            }
            // Reading would set the hit bits again; only look at the index.
            for b in [1, 2].into_iter().chain(4..17) {
                assert!(store.contains(key(b), 1), "block {b}");
            }
            check(&store, 16, BLOCK as usize).await;
            // Reinsertion cleared the hit bits of 1 and 2: one more lap
            // (segment 0 holds 1, 2, 16 and one more block) evicts them.
            fill(&store, 17, 14).await;
            let s = store.stats();
            assert_eq!(s.reinserted_blocks, 3, "only 16 was hit since its insertion");
            for b in [1, 2, 17] {
                assert!(!store.contains(key(b), 1), "block {b} should be gone after a lap");
            }
            for b in [16, 20, 30] {
                check(&store, b, BLOCK as usize).await;
            }
        });
    }

    #[test]
    fn segments_without_hits_are_reclaimed_without_reading_them() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
            // Two laps of the ring, nothing ever read: every reclaim evicts.
            fill(&store, 0, 32).await;
            let s = store.stats();
            assert_eq!(s.reclaim_reads, 0);
            assert_eq!(s.reinserted_blocks, 0);
            assert!(s.evicted_blocks > 0);
            // Segments 0..4 now hold blocks 16..32. A hit in segment 1 makes
            // it worth reading back while segment 0 fills again.
            assert!(store.read(key(21), 1, 0, 1).await.unwrap().is_some());
            fill(&store, 32, 8).await;
            let s = store.stats();
            assert_eq!(s.reclaim_reads, 1);
            assert_eq!(s.reinserted_blocks, 1);
            assert!(store.contains(key(21), 1), "the hit block was kept");
            assert!(!store.contains(key(20), 1));
            check(&store, 21, BLOCK as usize).await;
            check(&store, 39, BLOCK as usize).await;
        });
    }

    #[test]
    fn burst_past_capacity_never_serves_wrong_bytes() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
            // No awaits between inserts: writes pile up, the ring wraps
            // without reclaim reads, inserts beyond the limits are declined.
            for b in 0..200 {
                store.insert(key(b), 1, &data(b, BLOCK as usize));
            }
            let _ = store.flush().await;
            let mut hits = 0;
            for b in 0..200 {
                if let Some(got) = store.read(key(b), 1, 0, BLOCK).await.unwrap() {
                    assert_eq!(&got[..], &data(b, BLOCK as usize)[..], "block {b}");
                    hits += 1;
                }
            }
            assert!(hits > 0 && hits <= 16, "hits {hits}");
            let s = store.stats();
            assert_eq!(s.inserts + s.dropped_inserts, 200);
            assert_eq!(s.checksum_failures, 0);
        });
    }

    #[test]
    fn read_racing_with_reclaim_is_a_miss() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
            fill(&store, 0, 12).await;
            let mut read = std::pin::pin!(store.read(key(0), 1, 0, BLOCK));
            // First poll plans the read and submits it to the ring.
            assert!(futures::poll!(&mut read).is_pending());
            fill(&store, 12, 4).await;
            // Segment 0 is reused before the completion is seen.
            store.insert(key(50), 1, &data(50, BLOCK as usize));
            assert!(read.await.unwrap().is_none());
            // Block 0 had its hit bit set by the read, so it was reinserted.
            check(&store, 0, BLOCK as usize).await;
        });
    }

    #[test]
    fn write_error_marks_segment_bad() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
            store.insert(key(1), 1, &data(1, BLOCK as usize));
            store.dev.fail_next_write.set(true);
            assert!(store.flush().await.is_err());
            assert!(!store.contains(key(1), 1));
            assert!(store.read(key(1), 1, 0, 1).await.unwrap().is_none());
            assert_eq!(store.stats().write_errors, 1);
            // The other segments keep working, and the bad one is skipped.
            fill(&store, 10, 12).await;
            for b in 10..22 {
                check(&store, b, BLOCK as usize).await;
            }
            fill(&store, 30, 4).await;
            assert!(store.flush().await.is_ok());
            assert!(matches!(store.dev.log.borrow().segs[0].state, SegState::Bad));
        });
    }

    #[test]
    fn many_concurrent_reads() {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Rc::new(SegmentStore::open(cfg(&dir.path().join("c"), 8)).await.unwrap());
            for b in 0..24 {
                store.insert(key(b), 1, &data(b, BLOCK as usize));
            }
            store.flush().await.unwrap();
            // Some blocks in memory too.
            for b in 24..26 {
                store.insert(key(b), 1, &data(b, BLOCK as usize));
            }
            let tasks: Vec<_> = (0..32u64)
                .map(|i| {
                    let store = Rc::clone(&store);
                    compio::runtime::spawn(async move {
                        let b = i % 26;
                        let off = (i as u32 * 1237) % (BLOCK - 6000);
                        let got = store.read(key(b), 1, off, 6000).await.unwrap().unwrap();
                        assert_eq!(
                            &got[..],
                            &data(b, BLOCK as usize)[off as usize..off as usize + 6000]
                        );
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(store.stats().hits, 32);
        });
    }
}
