//! `weir serve` flags: each one overrides the matching config key.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::anyhow;

use super::Config;
use crate::units::{parse_size, ByteSize};

/// `weir serve` flags; each one overrides the matching config key.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeFlags {
    /// Config file (TOML; see weir.example.toml)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// [server] data_dir: state, and the default cache and origin
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve the local directory DIR (same as --core-filer file://DIR)
    #[arg(long, value_name = "DIR", conflicts_with = "core_filer")]
    pub origin: Option<PathBuf>,
    /// [core_filer] url: file:///dir or nfs://host[:port]/export[?mountport=N&connections=N]
    /// (s3://, gcs:// are not in this build yet)
    #[arg(long, value_name = "URL")]
    pub core_filer: Option<String>,
    /// [cache] dir: where the NVMe tier keeps its cache files
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// [cache] size: NVMe tier capacity, e.g. 100GiB (0 turns it off)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: Option<ByteSize>,
    /// [cache] memory: RAM tier capacity, e.g. 4GiB
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<ByteSize>,
    /// [cache] shards: engine threads (0: one per core)
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// [server] nfs_listen
    #[arg(long, value_name = "ADDR")]
    pub nfs_listen: Option<SocketAddr>,
    /// [server] smb_listen
    #[arg(long, value_name = "ADDR")]
    pub smb_listen: Option<SocketAddr>,
    /// [server] metrics_listen (port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// [server] flush_on_exit: write dirty data back before stopping
    #[arg(long)]
    pub flush_on_exit: bool,
}

impl Config {
    /// Flags win over the file.
    pub fn apply(&mut self, f: &ServeFlags) -> anyhow::Result<()> {
        if let Some(v) = &f.data_dir {
            self.server.data_dir = v.clone();
        }
        if let Some(dir) = &f.origin {
            let dir = dir
                .to_str()
                .ok_or_else(|| anyhow!("--origin {}: path is not UTF-8", dir.display()))?;
            self.core_filer.url = Some(format!("file://{dir}"));
        }
        if let Some(v) = &f.core_filer {
            self.core_filer.url = Some(v.clone());
        }
        if let Some(v) = &f.cache_dir {
            self.cache.dir = Some(v.clone());
        }
        if let Some(v) = f.cache_size {
            self.cache.size = v;
        }
        if let Some(v) = f.memory {
            self.cache.memory = v;
        }
        if let Some(v) = f.shards {
            self.cache.shards = v;
        }
        if let Some(v) = f.nfs_listen {
            self.server.nfs_listen = v;
        }
        if let Some(v) = f.smb_listen {
            self.server.smb_listen = v;
        }
        if let Some(v) = f.metrics_listen {
            self.server.metrics_listen = v;
        }
        if f.flush_on_exit {
            self.server.flush_on_exit = true;
        }
        Ok(())
    }
}
