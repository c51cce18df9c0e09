//! Metric handles, registered once per shard so the hot path only bumps atomics.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// Counters of one shard (label `shard`) and its core filer (label `filer`).
pub struct ShardStats {
    pub ram_hits: Counter,
    pub ram_hit_bytes: Counter,
    pub ram_misses: Counter,
    pub ram_miss_bytes: Counter,
    /// Bytes neither tier held, for which a core filer read started.
    pub nvme_miss_bytes: Counter,
    pub ram_evictions: Counter,
    /// Bytes of writes kept in the cache as they went to the core filer.
    pub written_kept_bytes: Counter,
    pub filer_reads: Counter,
    pub filer_read_bytes: Counter,
    pub filer_writes: Counter,
    pub filer_write_bytes: Counter,
    pub filer_ops: Counter,
    pub filer_errors: Counter,
    pub coalesced_misses: Counter,
    pub readahead_used_bytes: Counter,
    pub readahead_wasted_bytes: Counter,
    pub revalidations: Counter,
    pub invalidations: Counter,
    pub filer_latency: Histogram,
    /// Write-behind: journal appends and how long each waited to be durable.
    pub journal_appends: Counter,
    pub journal_sync_latency: Histogram,
    pub journal_used_bytes: Gauge,
    /// Files journaled again so the journal could reuse space.
    pub journal_compactions: Counter,
    pub dirty_bytes: Gauge,
    pub dirty_files: Gauge,
    pub dirty_oldest_seconds: Gauge,
    /// Writers that waited for room under the dirty quota.
    pub dirty_quota_waits: Counter,
    pub writeback_bytes: Counter,
    pub writeback_batches: Counter,
    pub writeback_failures: Counter,
    /// Dirty files changed or removed on the core filer behind the cache.
    pub writeback_conflicts: Counter,
    pub writeback_latency: Histogram,
}

impl ShardStats {
    pub fn new(shard: usize, filer: &str) -> Self {
        let s = shard.to_string();
        let f = filer.to_string();
        ShardStats {
            ram_hits: counter!("weir_cache_hits_total", "tier" => "ram", "shard" => s.clone()),
            ram_hit_bytes: counter!("weir_cache_hit_bytes_total", "tier" => "ram", "shard" => s.clone()),
            ram_misses: counter!("weir_cache_misses_total", "tier" => "ram", "shard" => s.clone()),
            ram_miss_bytes: counter!("weir_cache_miss_bytes_total", "tier" => "ram", "shard" => s.clone()),
            nvme_miss_bytes: counter!("weir_cache_miss_bytes_total", "tier" => "nvme", "shard" => s.clone()),
            ram_evictions: counter!("weir_cache_evictions_total", "tier" => "ram", "shard" => s.clone()),
            written_kept_bytes: counter!("weir_cache_written_kept_bytes_total", "shard" => s.clone()),
            filer_reads: counter!("weir_filer_reads_total", "filer" => f.clone(), "shard" => s.clone()),
            filer_read_bytes: counter!("weir_filer_read_bytes_total", "filer" => f.clone(), "shard" => s.clone()),
            filer_writes: counter!("weir_filer_writes_total", "filer" => f.clone(), "shard" => s.clone()),
            filer_write_bytes: counter!("weir_filer_write_bytes_total", "filer" => f.clone(), "shard" => s.clone()),
            filer_ops: counter!("weir_filer_ops_total", "filer" => f.clone(), "shard" => s.clone()),
            filer_errors: counter!("weir_filer_errors_total", "filer" => f.clone(), "shard" => s.clone()),
            coalesced_misses: counter!("weir_coalesced_misses_total", "shard" => s.clone()),
            readahead_used_bytes: counter!("weir_readahead_used_bytes_total", "shard" => s.clone()),
            readahead_wasted_bytes: counter!("weir_readahead_wasted_bytes_total", "shard" => s.clone()),
            revalidations: counter!("weir_revalidations_total", "filer" => f.clone(), "shard" => s.clone()),
            invalidations: counter!("weir_invalidations_total", "filer" => f.clone(), "shard" => s.clone()),
            filer_latency: histogram!("weir_filer_op_seconds", "filer" => f.clone(), "shard" => s.clone()),
            journal_appends: counter!("weir_journal_appends_total", "shard" => s.clone()),
            journal_sync_latency: histogram!("weir_journal_sync_seconds", "shard" => s.clone()),
            journal_used_bytes: gauge!("weir_journal_used_bytes", "shard" => s.clone()),
            journal_compactions: counter!("weir_journal_compactions_total", "shard" => s.clone()),
            dirty_bytes: gauge!("weir_dirty_bytes", "shard" => s.clone()),
            dirty_files: gauge!("weir_dirty_files", "shard" => s.clone()),
            dirty_oldest_seconds: gauge!("weir_dirty_oldest_seconds", "shard" => s.clone()),
            dirty_quota_waits: counter!("weir_dirty_quota_waits_total", "shard" => s.clone()),
            writeback_bytes: counter!("weir_writeback_bytes_total", "filer" => f.clone(), "shard" => s.clone()),
            writeback_batches: counter!("weir_writeback_batches_total", "filer" => f.clone(), "shard" => s.clone()),
            writeback_failures: counter!("weir_writeback_failures_total", "filer" => f.clone(), "shard" => s.clone()),
            writeback_conflicts: counter!("weir_writeback_conflicts_total", "filer" => f.clone(), "shard" => s.clone()),
            writeback_latency: histogram!("weir_writeback_batch_seconds", "filer" => f, "shard" => s),
        }
    }
}

/// Engine operations, each with its latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Getattr,
    Setattr,
    Lookup,
    Access,
    Read,
    Write,
    Commit,
    Create,
    Readlink,
    Link,
    Remove,
    Rename,
    Readdir,
    Fsstat,
}

impl Op {
    pub const ALL: [Op; 14] = [
        Op::Getattr,
        Op::Setattr,
        Op::Lookup,
        Op::Access,
        Op::Read,
        Op::Write,
        Op::Commit,
        Op::Create,
        Op::Readlink,
        Op::Link,
        Op::Remove,
        Op::Rename,
        Op::Readdir,
        Op::Fsstat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Getattr => "getattr",
            Op::Setattr => "setattr",
            Op::Lookup => "lookup",
            Op::Access => "access",
            Op::Read => "read",
            Op::Write => "write",
            Op::Commit => "commit",
            Op::Create => "create",
            Op::Readlink => "readlink",
            Op::Link => "link",
            Op::Remove => "remove",
            Op::Rename => "rename",
            Op::Readdir => "readdir",
            Op::Fsstat => "fsstat",
        }
    }
}

pub struct OpLatency(Vec<Histogram>);

impl OpLatency {
    pub fn new() -> Self {
        OpLatency(
            Op::ALL
                .iter()
                .map(|op| histogram!("weir_op_seconds", "op" => op.name()))
                .collect(),
        )
    }

    pub fn record(&self, op: Op, secs: f64) {
        self.0[op as usize].record(secs);
    }
}

impl Default for OpLatency {
    fn default() -> Self {
        Self::new()
    }
}
