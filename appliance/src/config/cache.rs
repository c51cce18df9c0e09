//! `[cache]`: the RAM and NVMe tiers' sizes and geometry, and the shards
//! that own them; checked here and turned into the engine's config.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use cache_engine::EngineConfig;
use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    /// Directory of the NVMe tier's cache files; `<data_dir>/cache` when unset.
    pub dir: Option<PathBuf>,
    /// NVMe tier capacity; 0 turns the tier off.
    pub size: ByteSize,
    /// RAM tier capacity.
    pub memory: ByteSize,
    pub block_size: ByteSize,
    pub segment_size: ByteSize,
    /// 0: one shard per core.
    pub shards: usize,
    pub pin_threads: bool,
    /// How long a shard keeps polling for work before its thread sleeps.
    pub poll_before_sleep: HumanDuration,
    /// Largest read-ahead window per file; 0 turns read-ahead off.
    pub readahead_max: ByteSize,
    /// The write journal of write-behind ("read-write" policies), over all
    /// shards; 0: none, and no "read-write" policy may be used.
    pub journal_size: ByteSize,
    /// Directory of the journal files; the cache directory when unset.
    pub journal_dir: Option<PathBuf>,
    /// Dirty data held at most (over all shards): past it writers wait
    /// for write-back, then are told to retry.
    pub dirty_max: ByteSize,
}

impl Default for Cache {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Cache {
            dir: None,
            size: ByteSize::gib(2),
            memory: ByteSize::mib(512),
            block_size: ByteSize(engine.block_size.into()),
            segment_size: ByteSize(engine.segment_size.into()),
            shards: 0,
            pin_threads: engine.pin_threads,
            poll_before_sleep: HumanDuration(engine.spin),
            readahead_max: ByteSize(engine.readahead_max.into()),
            journal_size: ByteSize::gib(1),
            journal_dir: None,
            dirty_max: ByteSize::mib(512),
        }
    }
}

impl Cache {
    /// Check the tiers' geometry and sizes and build the engine's config
    /// (its cache policy is [policy]'s, which the caller sets).
    pub(super) fn engine_config(
        &self,
        data_dir: &Path,
        filer_timeout: Duration,
    ) -> anyhow::Result<EngineConfig> {
        let block = self.block_size.0;
        if !block.is_power_of_two() || !(4096..=16 << 20).contains(&block) {
            bail!(
                "cache.block_size = {}: must be a power of two from 4KiB to 16MiB",
                self.block_size
            );
        }
        let segment = self.segment_size.0;
        if segment < block || segment % block != 0 || segment > 1 << 30 {
            bail!(
                "cache.segment_size = {}: must be a multiple of cache.block_size ({}) and at most 1GiB",
                self.segment_size,
                self.block_size
            );
        }
        let readahead = self.readahead_max.0;
        if readahead != 0 && (readahead < block || readahead > 1 << 30) {
            bail!(
                "cache.readahead_max = {}: must be 0 (off) or from cache.block_size ({}) to 1GiB",
                self.readahead_max,
                self.block_size
            );
        }
        if self.poll_before_sleep.0 > Duration::from_millis(10) {
            bail!(
                "cache.poll_before_sleep = {}: at most 10ms",
                self.poll_before_sleep
            );
        }
        let journal = self.journal_size.0;
        if journal != 0 && !(16 << 20..=1 << 40).contains(&journal) {
            bail!(
                "cache.journal_size = {}: 0 (none) or from 16MiB to 1TiB",
                self.journal_size
            );
        }
        if journal != 0 && (self.dirty_max.0 == 0 || self.dirty_max.0 > journal) {
            bail!(
                "cache.dirty_max = {}: more than 0 and at most cache.journal_size ({})",
                self.dirty_max,
                self.journal_size
            );
        }
        if self.shards > 1024 {
            bail!("cache.shards = {}: at most 1024", self.shards);
        }
        let engine = EngineConfig {
            shards: self.shards,
            pin_threads: self.pin_threads,
            spin: self.poll_before_sleep.0,
            ram_bytes: self.memory.0,
            cache_dir: self.dir.clone().unwrap_or_else(|| data_dir.join("cache")),
            journal_dir: self
                .journal_dir
                .clone()
                .or_else(|| self.dir.clone())
                .unwrap_or_else(|| data_dir.join("cache")),
            journal_bytes: journal,
            dirty_max: self.dirty_max.0,
            cache_bytes: self.size.0,
            block_size: block as u32,
            segment_size: segment as u32,
            readahead_max: readahead as u32,
            filer_timeout,
            state_dir: data_dir.to_path_buf(),
            ..EngineConfig::default()
        };
        let shards = engine.shard_count() as u64;
        if self.memory.0 < block * shards {
            bail!(
                "cache.memory = {}: too small, each of the {shards} shards needs at least one block ({})",
                self.memory,
                self.block_size
            );
        }
        if self.size.0 != 0 && self.size.0 < 2 * segment * shards {
            bail!(
                "cache.size = {}: too small, each of the {shards} shards needs at least two segments ({} each); \
                 use 0 to turn the NVMe tier off",
                self.size,
                self.segment_size
            );
        }
        Ok(engine)
    }
}
