//! Engine configs for tests and benchmarks, kept in one place so that a field
//! added to [`EngineConfig`] is filled in once. Built only with the
//! `test-support` feature, which the crates' dev-dependencies (and the
//! benchmarks) turn on.

use std::path::Path;
use std::time::Duration;

use crate::{CachePolicy, EngineConfig};

/// The engine's defaults with its cache files and state under `dir`, and
/// metadata trusted for an hour, so that what a test or benchmark reads back
/// is what the engine cached rather than a fresh look at the core filer.
pub fn defaults_in(dir: &Path) -> EngineConfig {
    EngineConfig {
        cache_dir: dir.join("cache"),
        journal_dir: dir.join("cache"),
        state_dir: dir.join("state"),
        policy: CachePolicy {
            attr_verify: Duration::from_secs(3600),
            dir_verify: Duration::from_secs(3600),
            negative_lookups: true,
            writeback_delay: None,
        },
        ..EngineConfig::default()
    }
}

/// A small engine for tests, as [`defaults_in`] otherwise: two shards on
/// no fixed cores (tests run side by side), 64 MiB RAM and NVMe tiers, 1 MiB
/// segments and read-ahead, short queues, and a core filer call that fails
/// after 5 s rather than stalling a test.
pub fn engine_config(dir: &Path) -> EngineConfig {
    EngineConfig {
        shards: 2,
        pin_threads: false,
        ram_bytes: 64 << 20,
        cache_bytes: 64 << 20,
        segment_size: 1 << 20,
        readahead_max: 1 << 20,
        filer_timeout: Duration::from_secs(5),
        queue_depth: 256,
        ..defaults_in(dir)
    }
}
