//! Weir's cache engine: thread-per-core shards that serve file operations from
//! RAM and NVMe and fetch what they lack from a core filer.
//!
//! It is protocol-neutral: NFS and SMB front ends call the same [`Engine`]
//! API. It must not know about any wire protocol, and cache hits must never
//! wait on a core filer or on another shard. It reaches back ends only
//! through the [`core_filer::CoreFiler`] trait; the back ends live in the
//! `core-filer` crate.
//!
//! # Layers
//!
//! A module uses only modules on its own line or below it, and no two
//! import each other, directly or around a cycle (the `layers` test reads
//! the source and fails on any such cycle, and on `rt` importing from the
//! rest of the crate):
//!
//! - `front`: what every front end needs to serve: listeners spread over
//!   the shards, large messages, the directory an export names.
//! - `engine`: the [`Engine`] API; routes each call to the shard owning
//!   its file, starts and stops the shards.
//! - `shard`: one core's slice of the cache and metadata cache, and the
//!   shard threads with their job queues (`ShardSet`).
//! - `junction`, `tier` (RAM and NVMe), `journal` (the write journal of
//!   write-behind), `change`, `stats`, `handle`, `config`: what shards are
//!   made of.
//! - `filer`, `perm`, `types`: the core filer trait and its types (from the
//!   `core-filer` crate, below this one), permission checks, engine-only types.
//! - `rt`, the ground floor: the per-core executor and its polling, CPUs and
//!   pinning, aligned buffers and their reads and writes, the message
//!   buffer pool, fast maps. It imports nothing from the rest of the crate.

pub mod change;
pub mod config;
pub mod engine;
pub mod filer;
pub mod front;
pub mod handle;
pub mod journal;
pub mod junction;
pub mod perm;
pub mod rt;
mod shard;
pub mod stats;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod tier;
pub mod types;
mod verifier;

pub use change::{Change, ChangeKind, Subscriber};
pub use config::{CachePolicy, EngineConfig};
pub use engine::{Created, DirEntry, DirListing, Engine, RenameReply, WriteReply};
pub use handle::{FileHandle, MAX_TAG};
pub use junction::{JunctionSpec, Mount};
pub use rt::cpu::{allowed_cpus, pin_self};
pub use rt::poll::note_work;
pub use shard::{DirtyFiler, DirtyStatus, FlushReport, ParkedFile, Prefetched, ReadReply, StartError};

pub use core_filer::{error, Error, Result};

/// The checksum kept beside every cached page (the one in NFS handle maps too).
pub(crate) use core_filer::crc32c;
