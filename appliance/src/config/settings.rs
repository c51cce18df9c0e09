//! A config checked as a whole and worked out into what `weir serve` runs:
//! the engine's config, both front ends' and the namespace's mounts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use cache_engine::EngineConfig;

use super::namespace::{self, MountSettings};
use super::policy::Preset;
use super::Config;
use crate::filer_url::CoreFilerUrl;
use crate::units::ByteSize;

/// A validated configuration, ready to start the engine with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub core_filer: CoreFilerUrl,
    /// The core filer is the embedded default `<data_dir>/origin` (created when missing).
    pub origin_is_default: bool,
    pub preset: Preset,
    pub metrics_listen: SocketAddr,
    pub log: String,
    pub flush_on_exit: bool,
    pub engine: EngineConfig,
    pub nfs: nfs_front::NfsConfig,
    pub smb: smb_front::config::SmbConfig,
    /// Memory for large messages still arriving, and how long one waits for room.
    pub receive_budget: (usize, Duration),
    /// Mounts other than the root, in junction order.
    pub mounts: Vec<MountSettings>,
    /// Where each of `mounts` joins the namespace (mount i + 1).
    pub junctions: Vec<cache_engine::JunctionSpec>,
}

impl Settings {
    /// One line: what this configuration serves and with how much cache.
    pub fn summary(&self) -> String {
        let e = &self.engine;
        let shards = if e.shards == 0 {
            "one shard per core".to_string()
        } else {
            format!("{} shards", e.shards)
        };
        let nvme = if e.cache_bytes == 0 {
            "no NVMe tier".to_string()
        } else {
            format!("NVMe {} in {}", ByteSize(e.cache_bytes), e.cache_dir.display())
        };
        format!(
            "core filer {} {}{}, RAM {}, {nvme}, {shards}, policy {}, SMB shares {}, metrics on {}",
            self.core_filer.kind(),
            self.core_filer_location(),
            match self.junctions.len() {
                0 => String::new(),
                1 => " + 1 junction".into(),
                n => format!(" + {n} junctions"),
            },
            ByteSize(e.ram_bytes),
            self.preset.name(),
            self.smb
                .effective_shares()
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.metrics_listen,
        )
    }

    pub fn core_filer_location(&self) -> String {
        match &self.core_filer {
            CoreFilerUrl::Local(p) => p.display().to_string(),
            other => other.to_string(),
        }
    }
}

impl Config {
    /// Check every value and work out what `weir serve` would run.
    pub fn validate(&self) -> anyhow::Result<Settings> {
        let server = &self.server;
        server.check()?;
        let (core_filer, origin_is_default) = self.core_filer.resolve(&server.data_dir)?;
        let mut engine = self
            .cache
            .engine_config(&server.data_dir, self.core_filer.timeout.0)?;
        engine.policy = self.policy.cache_policy()?;
        let (mounts, junctions) = namespace::mounts(&self.core_filers, &self.junctions, &engine.policy)?;
        let behind = std::iter::once(&engine.policy)
            .chain(mounts.iter().map(|m| &m.policy))
            .any(|p| p.writeback_delay.is_some());
        if behind && engine.journal_bytes == 0 {
            bail!("cache.journal_size = 0: a \"read-write\" policy writes behind through the journal; give it a size");
        }

        let mut nfs = self
            .nfs
            .front_config(server.nfs_listen, &self.exports, &server.data_dir)?;
        self.limits.check()?;
        let mut smb = self
            .smb
            .front_config(server.smb_listen, &self.shares, &server.data_dir)?;
        self.limits.apply(&mut nfs, &mut smb);
        smb.check().map_err(|e| anyhow!("smb: {e}"))?;

        Ok(Settings {
            nfs,
            smb,
            receive_budget: self.limits.receive_budget(),
            data_dir: server.data_dir.clone(),
            core_filer,
            origin_is_default,
            preset: self.policy.preset,
            metrics_listen: server.metrics_listen,
            log: server.log.clone(),
            flush_on_exit: server.flush_on_exit,
            engine,
            mounts,
            junctions,
        })
    }
}
