//! Weir's cache engine: thread-per-core shards that serve file operations from
//! RAM and NVMe and fetch what they lack from a core filer.
//!
//! It is protocol-neutral: NFS and SMB front ends call the same [`Engine`]
//! API. It must not know about any wire protocol, and cache hits must never
//! wait on a core filer or on another shard. It reaches back ends only
//! through the [`core_filer::CoreFiler`] trait; the back ends live in the
//! `core-filer` crate.

pub mod change;
pub mod config;
pub mod engine;
pub mod filer;
pub mod front;
pub mod handle;
pub mod junction;
pub mod perm;
mod runtime;
mod shard;
pub mod stats;
pub mod tier;
pub mod types;

pub use change::{Change, ChangeKind, Subscriber};
pub use config::{CachePolicy, EngineConfig};
pub use engine::{Created, DirEntry, DirListing, Engine, RenameReply, WriteReply};
pub use handle::{FileHandle, MAX_TAG};
pub use junction::{JunctionSpec, Mount};
pub use runtime::{allowed_cpus, note_work, pin_self, StartError};
pub use shard::{Prefetched, ReadReply};

pub use core_filer::{error, Error, Result};

/// CRC-32C (Castagnoli) of `data`, as stored beside every cached page and
/// in NFS file handles. crc-fast folds with carry-less multiplies: a 4 KiB
/// page costs a third of what the plain SSE4.2 instruction loop does.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_is_castagnoli() {
        // The standard check value of CRC-32C.
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(super::crc32c(b""), 0);
    }
}
