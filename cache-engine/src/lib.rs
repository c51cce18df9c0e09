//! Weir's cache engine: thread-per-core shards that serve file operations from
//! RAM and NVMe and fetch what they lack from a core filer.
//!
//! It is protocol-neutral: NFS and SMB front ends call the same [`Engine`]
//! API. It must not know about any wire protocol, and cache hits must never
//! wait on a core filer or on another shard.

pub mod change;
pub mod config;
pub mod engine;
pub mod error;
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
pub use handle::FileHandle;
pub use junction::{JunctionSpec, Mount};
pub use runtime::{allowed_cpus, note_work, pin_self, StartError};
pub use shard::{Prefetched, ReadReply};

pub use error::{Error, Result};
