//! Engine configuration: sizes, shard count, cache policy.

use std::path::PathBuf;
use std::time::Duration;

/// How long cached metadata is trusted before it is checked with the core filer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// Attributes (and so cached file data) are revalidated after this long.
    pub attr_verify: Duration,
    /// Lookups and directory listings are revalidated after this long.
    pub dir_verify: Duration,
    /// Whether "no such name" answers are cached too.
    pub negative_lookups: bool,
    /// Write-behind: writes are answered once durable in the journal and
    /// reach the core filer after the file has been quiet this long.
    /// `None`: write-through.
    pub writeback_delay: Option<Duration>,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            attr_verify: Duration::from_secs(30),
            dir_verify: Duration::from_secs(30),
            negative_lookups: true,
            writeback_delay: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Number of shards, one pinned thread each; 0 means one per core.
    pub shards: usize,
    /// Pin shard `i` to core `i % cores`.
    pub pin_threads: bool,
    /// RAM tier capacity over all shards, in bytes.
    pub ram_bytes: u64,
    /// Directory holding the NVMe tier's cache files (`shard-N.cache`).
    pub cache_dir: PathBuf,
    /// NVMe tier capacity over all shards, in bytes; 0 disables the tier.
    pub cache_bytes: u64,
    /// Cache block: the unit of caching and of core filer reads.
    pub block_size: u32,
    /// NVMe log segment size.
    pub segment_size: u32,
    /// Largest read-ahead window per file.
    pub readahead_max: u32,
    pub policy: CachePolicy,
    /// How long a call to the core filer may take before it fails with an I/O error.
    pub filer_timeout: Duration,
    /// Capacity of each shard's request queue.
    pub queue_depth: usize,
    /// Where the engine keeps state that must survive restarts (the handle key).
    pub state_dir: PathBuf,
    /// Where each shard's write journal lives (`shard-N.journal`): a
    /// directory on the cache device.
    pub journal_dir: PathBuf,
    /// Write journal over all shards, in bytes; 0: no journal, and no
    /// write-behind policy may be used.
    pub journal_bytes: u64,
    /// Dirty data over all shards at most, in bytes: past it writers wait
    /// for write-back, then are told to retry later.
    pub dirty_max: u64,
    /// How long a shard keeps polling for more work after the last piece
    /// before its thread sleeps; zero sleeps at once.
    pub spin: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: 0,
            pin_threads: true,
            ram_bytes: 1 << 30,
            cache_dir: PathBuf::from("weir-data/cache"),
            cache_bytes: 4 << 30,
            block_size: 64 << 10,
            segment_size: 4 << 20,
            readahead_max: 8 << 20,
            policy: CachePolicy::default(),
            filer_timeout: Duration::from_secs(30),
            queue_depth: 1024,
            state_dir: PathBuf::from("weir-data"),
            spin: Duration::from_micros(200),
            journal_dir: PathBuf::from("weir-data/cache"),
            journal_bytes: 0,
            dirty_max: 512 << 20,
        }
    }
}

impl EngineConfig {
    pub fn shard_count(&self) -> usize {
        if self.shards == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            self.shards
        }
    }
}
