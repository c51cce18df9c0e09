//! The `weir` configuration: a TOML file (every key documented in
//! `weir.example.toml`), overridden by `weir serve` flags, on top of embedded
//! defaults that serve a `local` core filer under `./weir-data/`.
//!
//! Loading and validating never touch the file system beyond reading the
//! config file; `weir serve` checks directories itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use cache_engine::{CachePolicy, EngineConfig};
use serde::{Deserialize, Serialize};

use crate::filer_url::CoreFilerUrl;
use crate::units::{parse_size, ByteSize, HumanDuration};

pub const DEFAULT_DATA_DIR: &str = "./weir-data";

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

/// What one client, or all of them, may hold before and after logging on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections at once to each front end (NFS, SMB), from all clients.
    pub max_connections: usize,
    /// Connections at once to each front end from one client address.
    pub max_connections_per_client: usize,
    /// Memory of large messages still arriving, in all connections.
    pub receive_buffer_memory: ByteSize,
    /// How long a message waits for room in that memory before its connection is closed.
    pub receive_buffer_wait: HumanDuration,
    /// An NFS connection with no call in progress that sends nothing for this long is closed.
    pub nfs_idle_timeout: HumanDuration,
    /// An SMB connection with no open file that sends nothing for this long is closed.
    pub smb_idle_timeout: HumanDuration,
    /// An SMB connection with no logged-on session this long after it was made
    /// (or its last session logged off) is closed.
    pub smb_logon_timeout: HumanDuration,
    /// SMB sessions in setup at once on one connection.
    pub smb_sessions_in_setup_per_connection: usize,
    /// SMB logons in progress at once from one client address.
    pub smb_logons_per_client: usize,
    /// SMB logons in progress at once, from all clients.
    pub smb_logons_total: usize,
    /// Failed SMB logons in a row that lock a client address out; 0: never.
    pub smb_lockout_after: u32,
    /// How long a locked-out address is refused.
    pub smb_lockout_for: HumanDuration,
}

impl Default for Limits {
    fn default() -> Self {
        let conns = cache_engine::front::limits::ConnLimits::default();
        let logons = smb_front::config::LogonLimits::default();
        let nfs = nfs_front::NfsConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)));
        let smb = smb_front::config::SmbConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)));
        Limits {
            max_connections: conns.max_connections,
            max_connections_per_client: conns.max_per_client,
            receive_buffer_memory: ByteSize(1 << 30),
            receive_buffer_wait: HumanDuration(Duration::from_secs(10)),
            nfs_idle_timeout: HumanDuration(nfs.idle_timeout),
            smb_idle_timeout: HumanDuration(smb.idle_timeout),
            smb_logon_timeout: HumanDuration(smb.logon_timeout),
            smb_sessions_in_setup_per_connection: logons.per_connection,
            smb_logons_per_client: logons.per_client,
            smb_logons_total: logons.total,
            smb_lockout_after: logons.lockout_after,
            smb_lockout_for: HumanDuration(logons.lockout_for),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smb {
    /// "optional" or "required" (Samba's `server signing = mandatory`).
    pub signing: smb_front::config::Signing,
    /// "off", "optional" or "required" (Samba's `smb encrypt`); per share too.
    pub encryption: smb_front::config::Encryption,
    /// Let unknown users and anonymous logons in as guest_uid/guest_gid.
    pub guest: bool,
    pub guest_uid: u32,
    pub guest_gid: u32,
    /// NetBIOS domain the server names itself in.
    pub workgroup: String,
    /// Users kept by `weir smbpasswd`; `<data_dir>/smb-users.toml` when unset.
    pub users_file: Option<PathBuf>,
    /// Users written into this file: NAME = { nt_hash, uid, gid, groups }.
    pub users: std::collections::BTreeMap<String, smb_front::config::UserConfig>,
}

impl Default for Smb {
    fn default() -> Self {
        Smb {
            signing: Default::default(),
            encryption: Default::default(),
            guest: false,
            guest_uid: 65534,
            guest_gid: 65534,
            workgroup: "WORKGROUP".into(),
            users_file: None,
            users: Default::default(),
        }
    }
}

impl Smb {
    pub fn users_file(&self, data_dir: &Path) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| data_dir.join("smb-users.toml"))
    }
}

/// A core filer other than the namespace root, named for junctions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedFiler {
    pub url: String,
}

/// A core filer directory joined into the namespace at `path`, with its own
/// cache policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Junction {
    /// Absolute path in the namespace, e.g. "/projects".
    pub path: String,
    /// Name of a [core_filers.NAME] table.
    pub core_filer: String,
    /// Directory of that core filer; its root when unset.
    #[serde(default)]
    pub subdir: Option<String>,
    /// Preset; the [policy] of the namespace root when unset.
    #[serde(default)]
    pub policy: Option<Preset>,
    #[serde(default)]
    pub attr_verify: Option<HumanDuration>,
    #[serde(default)]
    pub dir_verify: Option<HumanDuration>,
    #[serde(default)]
    pub negative_lookups: Option<bool>,
}

/// One mount of the namespace as `weir serve` opens it.
#[derive(Debug, Clone)]
pub struct MountSettings {
    /// The [core_filers] name, or "" for the namespace root.
    pub name: String,
    pub url: CoreFilerUrl,
    pub subdir: String,
    pub policy: CachePolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nfs {
    /// Also serve portmapper v2 on port 111 (TCP and UDP).
    pub portmapper: bool,
    /// Take callers' groups from the local user database, not AUTH_SYS.
    pub manage_gids: bool,
    /// After a restart with lock clients to notify, only reclaims succeed for this long.
    pub nlm_grace: HumanDuration,
}

impl Default for Nfs {
    fn default() -> Self {
        Nfs {
            portmapper: false,
            manage_gids: false,
            nlm_grace: HumanDuration(Duration::from_secs(45)),
        }
    }
}

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
}

impl Default for Server {
    fn default() -> Self {
        Server {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            nfs_listen: SocketAddr::from(([0, 0, 0, 0], 2049)),
            smb_listen: SocketAddr::from(([0, 0, 0, 0], 445)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9108)),
            log: "info".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    /// Directory of the NVMe tier's cache files; `<data_dir>/cache` when unset.
    pub dir: Option<PathBuf>,
    /// NVMe tier capacity; 0 turns the tier off.
    pub size: ByteSize,
    /// RAM tier capacity.
    pub memory: ByteSize,
    pub block_size: ByteSize,
    pub segment_size: ByteSize,
    /// 0: one shard per core.
    pub shards: usize,
    pub pin_threads: bool,
    /// How long a shard keeps polling for work before its thread sleeps.
    pub poll_before_sleep: HumanDuration,
    /// Largest read-ahead window per file; 0 turns read-ahead off.
    pub readahead_max: ByteSize,
}

impl Default for Cache {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Cache {
            dir: None,
            size: ByteSize::gib(2),
            memory: ByteSize::mib(512),
            block_size: ByteSize(engine.block_size.into()),
            segment_size: ByteSize(engine.segment_size.into()),
            shards: 0,
            pin_threads: engine.pin_threads,
            poll_before_sleep: HumanDuration(engine.spin),
            readahead_max: ByteSize(engine.readahead_max.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreFiler {
    /// Where the data lives; `file://<data_dir>/origin` when unset.
    pub url: Option<String>,
    /// How long one call to the core filer may take before it fails.
    pub timeout: HumanDuration,
}

impl Default for CoreFiler {
    fn default() -> Self {
        CoreFiler {
            url: None,
            timeout: HumanDuration(EngineConfig::default().filer_timeout),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub preset: Preset,
    /// Overrides the preset's attribute verify period.
    pub attr_verify: Option<HumanDuration>,
    /// Overrides the preset's directory verify period.
    pub dir_verify: Option<HumanDuration>,
    /// Overrides whether the preset caches "no such file" answers.
    pub negative_lookups: Option<bool>,
}

/// Cache policy presets, named as the field names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Reads are cached; writes go straight to the core filer.
    #[default]
    ReadOnly,
    /// Write-behind: not in this build yet.
    ReadWrite,
    /// Other clients change the core filer directly: verify often, cache no negative lookups.
    ClientsBypassing,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::ReadOnly => "read-only",
            Preset::ReadWrite => "read-write",
            Preset::ClientsBypassing => "clients-bypassing",
        }
    }

    fn policy(self) -> CachePolicy {
        match self {
            Preset::ReadOnly | Preset::ReadWrite => CachePolicy::default(),
            Preset::ClientsBypassing => CachePolicy {
                attr_verify: Duration::from_secs(3),
                dir_verify: Duration::from_secs(3),
                negative_lookups: false,
            },
        }
    }
}

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
}

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

/// Read and parse a config file. Errors name the file and the line.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Parse config text; the error is one line with the line number and text.
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| describe_toml_error(text, &e))
}

fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let Some(start) = e.span().map(|s| s.start) else {
        return msg;
    };
    let before = text.get(..start).unwrap_or(text);
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    format!("line {line_no}, column {column}: {msg} (in `{line}`)")
}

impl Config {
    /// Load `flags.config` if given, then apply the flags on top.
    pub fn from_flags(flags: &ServeFlags) -> anyhow::Result<Config> {
        let mut cfg = match &flags.config {
            Some(path) => load(path)?,
            None => Config::default(),
        };
        cfg.apply(flags)?;
        Ok(cfg)
    }

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
        Ok(())
    }

    /// Check every value and work out what `weir serve` would run.
    pub fn validate(&self) -> anyhow::Result<Settings> {
        let (server, cache, policy) = (&self.server, &self.cache, &self.policy);
        if server.data_dir.as_os_str().is_empty() {
            bail!("server.data_dir must not be empty");
        }
        tracing_subscriber::EnvFilter::builder()
            .parse(&server.log)
            .map_err(|e| anyhow!("server.log = {:?}: {e}", server.log))?;

        let (core_filer, origin_is_default) = match &self.core_filer.url {
            Some(url) => (
                url.parse::<CoreFilerUrl>()
                    .map_err(|e| anyhow!("core_filer.url: {e}"))?,
                false,
            ),
            None => (CoreFilerUrl::Local(server.data_dir.join("origin")), true),
        };
        if !core_filer.available() {
            bail!(
                "core_filer.url = {:?}: the `{}` core filer is not available in this build yet \
                 (only file:// and nfs:// work today)",
                self.core_filer.url.as_deref().unwrap_or_default(),
                core_filer.kind()
            );
        }
        if self.core_filer.timeout.0.is_zero() {
            bail!("core_filer.timeout must be longer than 0s");
        }

        let block = cache.block_size.0;
        if !block.is_power_of_two() || !(4096..=16 << 20).contains(&block) {
            bail!(
                "cache.block_size = {}: must be a power of two from 4KiB to 16MiB",
                cache.block_size
            );
        }
        let segment = cache.segment_size.0;
        if segment < block || segment % block != 0 || segment > 1 << 30 {
            bail!(
                "cache.segment_size = {}: must be a multiple of cache.block_size ({}) and at most 1GiB",
                cache.segment_size,
                cache.block_size
            );
        }
        let readahead = cache.readahead_max.0;
        if readahead != 0 && (readahead < block || readahead > 1 << 30) {
            bail!(
                "cache.readahead_max = {}: must be 0 (off) or from cache.block_size ({}) to 1GiB",
                cache.readahead_max,
                cache.block_size
            );
        }
        if cache.poll_before_sleep.0 > Duration::from_millis(10) {
            bail!(
                "cache.poll_before_sleep = {}: at most 10ms",
                cache.poll_before_sleep
            );
        }
        if cache.shards > 1024 {
            bail!("cache.shards = {}: at most 1024", cache.shards);
        }
        let mut engine = EngineConfig {
            shards: cache.shards,
            pin_threads: cache.pin_threads,
            spin: cache.poll_before_sleep.0,
            ram_bytes: cache.memory.0,
            cache_dir: cache.dir.clone().unwrap_or_else(|| server.data_dir.join("cache")),
            cache_bytes: cache.size.0,
            block_size: block as u32,
            segment_size: segment as u32,
            readahead_max: readahead as u32,
            policy: policy.preset.policy(),
            filer_timeout: self.core_filer.timeout.0,
            state_dir: server.data_dir.clone(),
            ..EngineConfig::default()
        };
        let shards = engine.shard_count() as u64;
        if cache.memory.0 < block * shards {
            bail!(
                "cache.memory = {}: too small, each of the {shards} shards needs at least one block ({})",
                cache.memory,
                cache.block_size
            );
        }
        if cache.size.0 != 0 && cache.size.0 < 2 * segment * shards {
            bail!(
                "cache.size = {}: too small, each of the {shards} shards needs at least two segments ({} each); \
                 use 0 to turn the NVMe tier off",
                cache.size,
                cache.segment_size
            );
        }

        if policy.preset == Preset::ReadWrite {
            bail!(
                "policy.preset = \"read-write\": write-behind is not available in this build yet \
                 (writes go straight to the core filer); use \"read-only\" or \"clients-bypassing\""
            );
        }
        if let Some(d) = policy.attr_verify {
            engine.policy.attr_verify = d.0;
        }
        if let Some(d) = policy.dir_verify {
            engine.policy.dir_verify = d.0;
        }
        if let Some(b) = policy.negative_lookups {
            engine.policy.negative_lookups = b;
        }

        let (mounts, junctions) = self.junctions(&engine.policy)?;

        nfs_front::exports::parse(&self.exports).map_err(|e| anyhow!("exports: {e}"))?;
        let mut nfs = nfs_front::NfsConfig::new(server.nfs_listen);
        nfs.exports = self.exports.clone();
        nfs.portmapper = self.nfs.portmapper;
        nfs.manage_gids = self.nfs.manage_gids;
        nfs.nlm_grace = self.nfs.nlm_grace.0;
        nfs.state_dir = Some(server.data_dir.clone());
        let l = &self.limits;
        if l.max_connections == 0 || l.max_connections_per_client == 0 {
            bail!("limits.max_connections and limits.max_connections_per_client must be at least 1");
        }
        if l.smb_sessions_in_setup_per_connection == 0
            || l.smb_logons_per_client == 0
            || l.smb_logons_total == 0
        {
            bail!("limits: the smb_* logon limits must be at least 1");
        }
        let conn_limits = cache_engine::front::limits::ConnLimits {
            max_connections: l.max_connections,
            max_per_client: l.max_connections_per_client,
        };
        nfs.limits = conn_limits;
        nfs.idle_timeout = l.nfs_idle_timeout.0;

        let mut smb = smb_front::config::SmbConfig::new(server.smb_listen);
        smb.shares = self.shares.clone();
        smb.users = self.smb.users.clone();
        smb.users_file = Some(self.smb.users_file(&server.data_dir));
        smb.signing = self.smb.signing;
        smb.encryption = self.smb.encryption;
        smb.guest = self.smb.guest.then_some((self.smb.guest_uid, self.smb.guest_gid));
        smb.limits = conn_limits;
        smb.idle_timeout = l.smb_idle_timeout.0;
        smb.logon_timeout = l.smb_logon_timeout.0;
        smb.logons = smb_front::config::LogonLimits {
            per_client: l.smb_logons_per_client,
            total: l.smb_logons_total,
            per_connection: l.smb_sessions_in_setup_per_connection,
            lockout_after: l.smb_lockout_after,
            lockout_for: l.smb_lockout_for.0,
        };
        if self.smb.workgroup.is_empty()
            || self.smb.workgroup.len() > 15
            || !self
                .smb
                .workgroup
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!(
                "smb.workgroup = {:?}: 1 to 15 letters, digits, '-', '_' or '.'",
                self.smb.workgroup
            );
        }
        smb.workgroup = self.smb.workgroup.clone();
        smb.check().map_err(|e| anyhow!("smb: {e}"))?;

        Ok(Settings {
            nfs,
            smb,
            receive_budget: (l.receive_buffer_memory.0 as usize, l.receive_buffer_wait.0),
            data_dir: server.data_dir.clone(),
            core_filer,
            origin_is_default,
            preset: policy.preset,
            metrics_listen: server.metrics_listen,
            log: server.log.clone(),
            engine,
            mounts,
            junctions,
        })
    }

    /// Check the junctions and the core filers they name; `root` is the
    /// namespace root's policy, which a junction without a preset starts from.
    fn junctions(
        &self,
        root: &CachePolicy,
    ) -> anyhow::Result<(Vec<MountSettings>, Vec<cache_engine::JunctionSpec>)> {
        let mut urls = std::collections::BTreeMap::new();
        for (name, f) in &self.core_filers {
            let url: CoreFilerUrl = f
                .url
                .parse()
                .map_err(|e| anyhow!("core_filers.{name}.url: {e}"))?;
            if !url.available() {
                bail!(
                    "core_filers.{name}.url: the `{}` core filer is not available in this build yet",
                    url.kind()
                );
            }
            urls.insert(name.as_str(), url);
        }
        let (mut mounts, mut specs) = (Vec::new(), Vec::new());
        let mut paths = std::collections::BTreeSet::new();
        for (i, j) in self.junctions.iter().enumerate() {
            let at = |why: String| anyhow!("junctions[{i}] (path {:?}): {why}", j.path);
            let comps = cache_engine::junction::components(&j.path).map_err(at)?;
            if comps.is_empty() {
                return Err(at(
                    "the root is [core_filer]'s; a junction needs a path below it".into()
                ));
            }
            let path = format!("/{}", comps.join("/"));
            if !paths.insert(path.clone()) {
                return Err(at("another junction has the same path".into()));
            }
            let url = urls.get(j.core_filer.as_str()).ok_or_else(|| {
                at(format!(
                    "core_filer = {:?}: no [core_filers.{}] table",
                    j.core_filer, j.core_filer
                ))
            })?;
            let subdir = j.subdir.as_deref().unwrap_or("/");
            let subdir = cache_engine::junction::components(subdir)
                .map_err(|e| at(format!("subdir: {e}")))?
                .join("/");
            if j.policy == Some(Preset::ReadWrite) {
                return Err(at(
                    "policy = \"read-write\": write-behind is not available in this build yet".into(),
                ));
            }
            let mut policy = j.policy.map_or_else(|| root.clone(), Preset::policy);
            if let Some(d) = j.attr_verify {
                policy.attr_verify = d.0;
            }
            if let Some(d) = j.dir_verify {
                policy.dir_verify = d.0;
            }
            if let Some(b) = j.negative_lookups {
                policy.negative_lookups = b;
            }
            mounts.push(MountSettings {
                name: j.core_filer.clone(),
                url: url.clone(),
                subdir: format!("/{subdir}"),
                policy,
            });
            specs.push(cache_engine::JunctionSpec {
                path,
                mount: mounts.len(),
            });
        }
        Ok((mounts, specs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../weir.example.toml");

    fn flags() -> ServeFlags {
        ServeFlags::default()
    }

    #[test]
    fn junctions_join_named_core_filers_with_their_own_policies() {
        let s = parse(
            r#"
[policy]
attr_verify = "10s"
[core_filers.nas2]
url = "file:///srv/nas2"
[[junctions]]
path = "/projects/"
core_filer = "nas2"
subdir = "/vol/shots/"
policy = "clients-bypassing"
negative_lookups = true
[[junctions]]
path = "/lib"
core_filer = "nas2"
"#,
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(s.mounts.len(), 2);
        assert_eq!(s.mounts[0].subdir, "/vol/shots");
        assert_eq!(s.mounts[0].policy.attr_verify, Duration::from_secs(3));
        assert!(s.mounts[0].policy.negative_lookups);
        assert_eq!(s.mounts[1].subdir, "/");
        assert_eq!(
            s.mounts[1].policy.attr_verify,
            Duration::from_secs(10),
            "the root's policy"
        );
        assert_eq!(s.junctions[0].path, "/projects");
        assert_eq!(s.junctions[1].mount, 2);
        assert!(s.summary().contains("+ 2 junctions"), "{}", s.summary());
    }

    #[test]
    fn broken_junctions_are_refused_with_the_reason() {
        let filer = "[core_filers.n]\nurl = \"file:///x\"\n";
        let cases = [
            ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"", "no [core_filers.n]"),
            ("[[junctions]]\npath = \"a\"\ncore_filer = \"n\"", "not an absolute path"),
            ("[[junctions]]\npath = \"/\"\ncore_filer = \"n\"", "below it"),
            ("[[junctions]]\npath = \"/a/../b\"\ncore_filer = \"n\"", "plain names"),
            ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"\nsubdir = \"x\"", "subdir"),
            ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"\n[[junctions]]\npath = \"/a/\"\ncore_filer = \"n\"", "same path"),
            ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"\npolicy = \"read-write\"", "write-behind"),
            ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"\nspeed = 1", "unknown field"),
            ("[[junctions]]\npath = \"/a\"", "core_filer"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let text = if i == 0 {
                text.to_string()
            } else {
                format!("{filer}{text}")
            };
            let err = match parse(&text) {
                Ok(c) => c.validate().map(|_| ()).unwrap_err().to_string(),
                Err(e) => e,
            };
            assert!(err.contains(want), "{text}: {err:?} lacks {want:?}");
        }
        let err = parse("[core_filers.n]\nurl = \"s3://b/p\"")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("core_filers.n.url"), "{err}");
    }

    #[test]
    fn embedded_default_serves_a_local_origin_under_weir_data() {
        let s = Config::default().validate().unwrap();
        assert_eq!(s.data_dir, Path::new("./weir-data"));
        assert_eq!(s.core_filer, CoreFilerUrl::Local("./weir-data/origin".into()));
        assert!(s.origin_is_default);
        assert_eq!(s.engine.cache_dir, Path::new("./weir-data/cache"));
        assert_eq!(s.engine.state_dir, Path::new("./weir-data"));
        assert_eq!(s.engine.ram_bytes, 512 << 20);
        assert_eq!(s.engine.cache_bytes, 2 << 30);
        assert_eq!(s.preset, Preset::ReadOnly);
        assert_eq!(s.metrics_listen.to_string(), "127.0.0.1:9108");
    }

    #[test]
    fn limits_reach_both_front_ends_and_unknown_ones_are_refused() {
        let s = parse(
            "[limits]\nmax_connections = 10\nmax_connections_per_client = 3\nsmb_lockout_after = 0\n\
             nfs_idle_timeout = \"90s\"\nsmb_logon_timeout = \"5s\"\nreceive_buffer_memory = \"64MiB\"",
        )
        .unwrap()
        .validate()
        .unwrap();
        for l in [s.nfs.limits, s.smb.limits] {
            assert_eq!((l.max_connections, l.max_per_client), (10, 3));
        }
        assert_eq!(s.nfs.idle_timeout, Duration::from_secs(90));
        assert_eq!(s.smb.logon_timeout, Duration::from_secs(5));
        assert_eq!(s.smb.logons.lockout_after, 0);
        assert_eq!(s.smb.logons.per_client, 32, "default");
        assert_eq!(s.receive_budget.0, 64 << 20);
        assert!(parse("[limits]\nmax_conections = 10").is_err());
        let zero = parse("[limits]\nmax_connections_per_client = 0").unwrap();
        assert!(zero.validate().is_err());
    }

    #[test]
    fn flags_beat_the_file_which_beats_the_defaults() {
        let mut cfg =
            parse("[cache]\nmemory = \"1GiB\"\nsize = \"8GiB\"\n[server]\ndata_dir = \"/d\"").unwrap();
        let f = ServeFlags {
            memory: Some(ByteSize::gib(2)),
            ..flags()
        };
        cfg.apply(&f).unwrap();
        let s = cfg.validate().unwrap();
        assert_eq!(s.engine.ram_bytes, 2 << 30, "flag wins");
        assert_eq!(s.engine.cache_bytes, 8 << 30, "file wins over default");
        assert_eq!(s.engine.readahead_max, 8 << 20, "default");
        assert_eq!(
            s.engine.cache_dir,
            Path::new("/d/cache"),
            "derived from the file's data_dir"
        );
    }

    #[test]
    fn data_dir_moves_derived_paths_but_not_explicit_ones() {
        let mut cfg = parse("[cache]\ndir = \"/fast/cache\"").unwrap();
        cfg.apply(&ServeFlags {
            data_dir: Some("/var/lib/weir".into()),
            ..flags()
        })
        .unwrap();
        let s = cfg.validate().unwrap();
        assert_eq!(s.engine.cache_dir, Path::new("/fast/cache"));
        assert_eq!(s.core_filer, CoreFilerUrl::Local("/var/lib/weir/origin".into()));
        assert_eq!(s.engine.state_dir, Path::new("/var/lib/weir"));
    }

    #[test]
    fn origin_flag_is_a_local_core_filer() {
        let mut cfg = parse("[core_filer]\nurl = \"file:///elsewhere\"").unwrap();
        cfg.apply(&ServeFlags {
            origin: Some("/srv/data".into()),
            ..flags()
        })
        .unwrap();
        let s = cfg.validate().unwrap();
        assert_eq!(s.core_filer, CoreFilerUrl::Local("/srv/data".into()));
        assert!(!s.origin_is_default);
    }

    #[test]
    fn future_core_filer_kinds_are_checked_then_refused() {
        let s = parse("[core_filer]\nurl = \"nfs://nas:2049/export?mountport=20048\"")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(s.core_filer.kind(), "nfs");
        for url in ["s3://bucket/prefix", "gcs://bucket/prefix"] {
            let cfg = parse(&format!("[core_filer]\nurl = \"{url}\"")).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("not available in this build yet"), "{url}: {err}");
        }
        let cfg = parse("[core_filer]\nurl = \"nfs://nas\"").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("invalid core filer URL"), "{err}");
    }

    #[test]
    fn presets_and_their_overrides() {
        let s = parse("[policy]\npreset = \"clients-bypassing\"")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(s.engine.policy.attr_verify, Duration::from_secs(3));
        assert!(!s.engine.policy.negative_lookups);
        let s =
            parse("[policy]\npreset = \"clients-bypassing\"\nattr_verify = \"1m\"\nnegative_lookups = true")
                .unwrap()
                .validate()
                .unwrap();
        assert_eq!(s.engine.policy.attr_verify, Duration::from_secs(60));
        assert_eq!(s.engine.policy.dir_verify, Duration::from_secs(3));
        assert!(s.engine.policy.negative_lookups);
        let err = parse("[policy]\npreset = \"read-write\"")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("not available in this build yet"),
            "{err}"
        );
        let err = parse("[policy]\npreset = \"write-around\"").unwrap_err();
        assert!(err.contains("unknown variant `write-around`"), "{err}");
    }

    #[test]
    fn errors_point_at_the_line() {
        let err = parse("[cache]\nsize = \"2GiB\"\nsise = \"2GiB\"\n").unwrap_err();
        assert!(err.starts_with("line 3"), "{err}");
        assert!(err.contains("unknown field `sise`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = parse("[cache]\nmemory = \"lots\"\n").unwrap_err();
        assert!(
            err.starts_with("line 2") && err.contains("invalid size `lots`"),
            "{err}"
        );
        let err = parse("[policy]\nattr_verify = \"30\"\n").unwrap_err();
        assert!(
            err.starts_with("line 2") && err.contains("invalid duration"),
            "{err}"
        );
        let err = parse("[server]\nnfs_listen = \"nowhere\"\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        let err = parse("[server\n").unwrap_err();
        assert!(err.starts_with("line 1") && !err.contains('\n'), "{err}");
        let err = parse("[nfs]\nport = 1\n").unwrap_err();
        assert!(err.contains("unknown field `port`"), "{err}");
    }

    #[test]
    fn bad_cache_geometry_is_refused() {
        for (toml, what) in [
            ("block_size = 3000", "cache.block_size"),
            ("block_size = \"1KiB\"", "cache.block_size"),
            ("segment_size = \"100KiB\"", "cache.segment_size"),
            ("readahead_max = 100", "cache.readahead_max"),
            ("memory = 1024", "cache.memory"),
            ("size = \"4MiB\"", "cache.size"),
            ("shards = 5000", "cache.shards"),
        ] {
            let err = parse(&format!("[cache]\n{toml}"))
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(err.to_string().starts_with(what), "{toml}: {err}");
        }
        let s = parse("[cache]\nsize = 0\nreadahead_max = 0")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!((s.engine.cache_bytes, s.engine.readahead_max), (0, 0));
        let err = parse("[server]\nlog = \"info,=[\"")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with("server.log"), "{err}");
    }

    #[test]
    fn example_config_parses_validates_and_round_trips() {
        let cfg = parse(EXAMPLE).unwrap_or_else(|e| panic!("weir.example.toml: {e}"));
        cfg.validate().unwrap();
        let again = parse(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(cfg, again);
        assert_eq!(
            again.validate().unwrap().summary(),
            cfg.validate().unwrap().summary()
        );
    }

    #[test]
    fn default_config_round_trips_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(parse(&text).unwrap(), Config::default());
    }

    /// The field names a derived `Deserialize` struct accepts, read from the
    /// derive itself, so a key added to the structs cannot hide from the docs.
    fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        use serde::de::Visitor;
        #[derive(Debug)]
        struct Stop;
        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("stop")
            }
        }
        impl std::error::Error for Stop {}
        impl serde::de::Error for Stop {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Stop
            }
        }
        struct Grab<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Grab<'_> {
            type Error = Stop;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Stop> {
                *self.0 = fields;
                Err(Stop)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Grab(&mut fields));
        assert!(!fields.is_empty(), "not a struct");
        fields
    }

    /// Section name -> that section's lines in the example file.
    fn example_sections() -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out = std::collections::BTreeMap::new();
        let mut current = String::new();
        for line in EXAMPLE.lines() {
            let t = line.trim();
            // Arrays of tables are documented commented out: `# [[exports]]`.
            let header = t
                .strip_prefix("# [[")
                .map(|r| format!("[[{r}"))
                .or_else(|| {
                    t.strip_prefix("# [core_filers.")
                        .map(|_| "[core_filers]".to_string())
                })
                .unwrap_or(t.to_string());
            let t = header.as_str();
            if let Some(name) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                let name = name.trim_start_matches('[').trim_end_matches(']');
                current = name.to_string();
                out.entry(current.clone()).or_insert_with(Vec::new);
            } else {
                out.entry(current.clone())
                    .or_insert_with(Vec::new)
                    .push(t.to_string());
            }
        }
        out
    }

    /// The key a line sets, commented out (`# key = ...`) or not.
    fn key_of(line: &str) -> Option<&str> {
        let t = line.trim_start_matches('#').trim_start();
        let (key, _) = t.split_once('=')?;
        let key = key.trim();
        (!key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')).then_some(key)
    }

    #[test]
    fn example_config_documents_every_key_and_only_real_keys() {
        let sections = example_sections();
        let sections_and_rules = fields_of::<Config>().iter().copied().chain(["exports.rules"]);
        for section in sections_and_rules {
            let fields = match section {
                "exports.rules" => fields_of::<nfs_front::RuleConfig>(),
                "server" => fields_of::<Server>(),
                "cache" => fields_of::<Cache>(),
                "core_filer" => fields_of::<CoreFiler>(),
                "policy" => fields_of::<Policy>(),
                "nfs" => fields_of::<Nfs>(),
                "exports" => fields_of::<nfs_front::ExportConfig>(),
                "core_filers" => fields_of::<NamedFiler>(),
                "junctions" => fields_of::<Junction>(),
                "smb" => fields_of::<Smb>(),
                "shares" => fields_of::<smb_front::config::ShareConfig>(),
                "limits" => fields_of::<Limits>(),
                other => panic!("section [{other}] is new: teach this test its struct"),
            };
            let lines = sections
                .get(section)
                .unwrap_or_else(|| panic!("weir.example.toml has no [{section}] section"));
            let mut documented: Vec<&str> = lines.iter().filter_map(|l| key_of(l)).collect();
            if section == "exports" && sections.contains_key("exports.rules") {
                documented.push("rules");
            }
            for key in fields {
                assert!(
                    documented.contains(key),
                    "weir.example.toml does not document {section}.{key}"
                );
            }
            for key in documented {
                assert!(
                    fields.contains(&key),
                    "weir.example.toml documents {section}.{key}, which does not exist"
                );
            }
        }
        for name in sections.keys().filter(|s| !s.is_empty()) {
            assert!(
                fields_of::<Config>().contains(&name.as_str()) || name == "exports.rules",
                "unknown section [{name}] in the example"
            );
        }
    }
}
