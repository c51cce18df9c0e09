//! `[server]`: where `weir` keeps its state, where it listens, and its log
//! filter.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};

pub const DEFAULT_DATA_DIR: &str = "./weir-data";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// State that must survive restarts; parent of the default cache and origin.
    pub data_dir: PathBuf,
    pub nfs_listen: SocketAddr,
    pub smb_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// Log filter used when `RUST_LOG` is not set (tracing `EnvFilter` syntax).
    pub log: String,
    /// Write dirty data back before stopping; otherwise the journal keeps
    /// it and write-back resumes at the next start.
    pub flush_on_exit: bool,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            nfs_listen: SocketAddr::from(([0, 0, 0, 0], 2049)),
            smb_listen: SocketAddr::from(([0, 0, 0, 0], 445)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9108)),
            log: "info".into(),
            flush_on_exit: false,
        }
    }
}

impl Server {
    /// Check the data directory and the log filter.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            bail!("server.data_dir must not be empty");
        }
        tracing_subscriber::EnvFilter::builder()
            .parse(&self.log)
            .map_err(|e| anyhow!("server.log = {:?}: {e}", self.log))?;
        Ok(())
    }
}
