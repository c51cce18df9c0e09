//! The per-shard write journal of write-behind: dirty data and metadata
//! changes are appended here, durable before they are acknowledged, and
//! kept until the core filer confirmed their write-back. It lives apart
//! from the evictable tiers, in a file, a block device or a region of one,
//! written with `O_DIRECT | O_DSYNC`.
//!
//! - [`format`]: the on-disk layout (superblocks, groups, records).
//! - [`log`]: the state machine, with no I/O: append, group commit,
//!   acknowledgement, confirmation and space reclaim.
//! - [`replay`]: reading a region back after a restart or a crash.
//! - [`device`]: the [`Journal`] a shard uses, over compio (io_uring).
//! - `sim` (tests): a region in memory whose writes can be torn.
//!
//! A shard appends with [`Journal::append`] (returns once the record is
//! durable), and calls [`Journal::done`] once the core filer confirmed a
//! record's write-back. A full journal refuses appends with
//! [`JournalError::Full`], which the caller turns into "retry later".

pub mod device;
pub mod format;
pub mod log;
pub mod replay;
#[cfg(any(test, feature = "test-support"))]
pub mod sim;
#[cfg(test)]
mod tests;

pub use device::{Journal, JournalConfig, Opened};
pub use format::{CacheId, FileRef, Geometry, Op, OpKind, Record};
pub use log::{Completion, Log, WriteId, WriteKind, WriteReq, MAX_IN_FLIGHT};
pub use replay::{replay, Corruption, Expect, RegionRead, Replayed, TornTail};

/// Why the journal refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("journal full: {used} of {size} bytes hold records not yet written back; retry later")]
    Full { used: u64, size: u64 },
    #[error("record of {len} bytes is larger than the journal takes ({max})")]
    TooLarge { len: usize, max: usize },
    #[error("journal write failed ({0}); it takes no records until it is opened again")]
    Failed(String),
    #[error("the journal is closed: the server is stopping")]
    Closed,
    #[error("journal sequence {0} is not a record awaiting write-back")]
    UnknownSeq(u64),
    #[error("{0}")]
    BadRegion(String),
    #[error("the journal region is not formatted")]
    Unformatted,
    #[error("both superblock copies of the journal are damaged; not formatting over it")]
    SuperblockDamaged,
    #[error(
        "the journal belongs to cache {found_id} shard {found_shard}, not cache {expected_id} shard \
         {expected_shard}; refusing to use or overwrite it"
    )]
    WrongJournal {
        found_id: CacheId,
        found_shard: u32,
        expected_id: CacheId,
        expected_shard: u32,
    },
    #[error("journal format version {0} is not supported (this build reads version {v})", v = format::FORMAT_VERSION)]
    Version(u32),
    #[error("the journal superblock says its region is {found} bytes, but it is {expected}")]
    WrongSize { found: u64, expected: u64 },
    #[error("journal I/O: {0}")]
    Io(String),
}

impl JournalError {
    /// Whether the caller should answer "retry later" (NFS3ERR_JUKEBOX,
    /// STATUS_RETRY-class): the journal is full until write-back catches up.
    pub fn is_retry_later(&self) -> bool {
        matches!(self, JournalError::Full { .. })
    }
}
