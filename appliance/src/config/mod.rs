//! The `weir` configuration: a TOML file (every key documented in
//! `weir.example.toml`), overridden by `weir serve` flags, on top of embedded
//! defaults that serve a `local` core filer under `./weir-data/`.
//!
//! Each section's struct, its defaults and its checks live in a module of
//! their own; [`Config::validate`] checks them in turn and works out the
//! [`Settings`] `weir serve` runs.
//!
//! Loading and validating never touch the file system beyond reading the
//! config file; `weir serve` checks directories itself.

mod cache;
mod core_filer;
mod flags;
mod limits;
mod load;
mod namespace;
mod nfs;
mod policy;
mod server;
mod settings;
mod smb;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use cache::Cache;
pub use core_filer::CoreFiler;
pub use flags::ServeFlags;
pub use limits::Limits;
pub use load::load;
pub use namespace::{Junction, NamedFiler};
pub use nfs::Nfs;
pub use policy::Policy;
pub use server::{Server, DEFAULT_DATA_DIR};
pub use settings::Settings;
pub use smb::Smb;

/// The whole config file. Every section and key is optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub cache: Cache,
    pub core_filer: CoreFiler,
    pub policy: Policy,
    pub nfs: Nfs,
    /// NFS exports; none: `/export` is the core filer's root (see weir.example.toml).
    pub exports: Vec<nfs_front::ExportConfig>,
    /// Further core filers, by name, for junctions.
    pub core_filers: std::collections::BTreeMap<String, NamedFiler>,
    /// Where further core filers (or their directories) join the namespace.
    pub junctions: Vec<Junction>,
    pub smb: Smb,
    /// SMB shares; none: `export` is the core filer's root (see weir.example.toml).
    pub shares: Vec<smb_front::config::ShareConfig>,
    pub limits: Limits,
}
