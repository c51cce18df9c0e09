//! Weir's cache engine: thread-per-core shards that serve file operations from
//! RAM and NVMe and fetch what they lack from a core filer.
//!
//! It is protocol-neutral: NFS and SMB front ends call the same [`Engine`]
//! API. It must not know about any wire protocol, and cache hits must never
//! wait on a core filer or on another shard.

pub mod error;
pub mod filer;
pub mod tier;
pub mod types;

pub use error::{Error, Result};
