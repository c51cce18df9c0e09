//! What the NFS front end serves: listen address, exports and their client
//! rules, and the NLM and portmapper switches. The export and rule structs
//! are the `[[exports]]` tables of the appliance config as they are.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Read-write or read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    Rw,
    Ro,
}

/// Which callers are mapped to the anonymous identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Squash {
    None,
    /// uid 0 (and gid 0) become anonuid/anongid, as knfsd's root_squash.
    #[default]
    Root,
    All,
}

fn anon() -> u32 {
    65534
}

fn yes() -> bool {
    true
}

fn root_dir() -> String {
    "/".into()
}

/// One client rule of an export: the first rule whose `clients` match the
/// caller's address decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// CIDRs ("10.0.0.0/8"), addresses ("192.0.2.7", "::1") or "*".
    pub clients: Vec<String>,
    #[serde(default)]
    pub access: Access,
    #[serde(default)]
    pub squash: Squash,
    #[serde(default = "anon")]
    pub anonuid: u32,
    #[serde(default = "anon")]
    pub anongid: u32,
    /// Require a source port below 1024 (knfsd's default `secure`), so an
    /// unprivileged process on a client cannot speak for any uid it names.
    #[serde(default = "yes")]
    pub secure: bool,
}

impl RuleConfig {
    /// A rule with the config file's defaults for the rest (anonymous
    /// 65534, `secure`).
    pub fn new(clients: &[&str], access: Access, squash: Squash) -> Self {
        RuleConfig {
            clients: clients.iter().map(|s| s.to_string()).collect(),
            access,
            squash,
            anonuid: anon(),
            anongid: anon(),
            secure: yes(),
        }
    }
}

/// One NFS export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The path clients mount, e.g. "/export".
    pub path: String,
    /// The directory of the core filer it shows, "/" for its root.
    #[serde(default = "root_dir")]
    pub subdir: String,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

impl ExportConfig {
    /// The embedded default, knfsd's defaults: `/export` is the core
    /// filer's root, read-write for everyone, root squashed to 65534 for
    /// every client (this host too), privileged source ports only.
    pub fn embedded_default() -> Vec<ExportConfig> {
        vec![ExportConfig {
            path: "/export".into(),
            subdir: "/".into(),
            rules: vec![RuleConfig::new(&["*"], Access::Rw, Squash::Root)],
        }]
    }
}

/// Everything the front end needs to start.
#[derive(Debug, Clone)]
pub struct NfsConfig {
    /// NFSv3, MOUNT v3, NLM v4 and NSM on one port.
    pub listen: SocketAddr,
    /// Empty: [`ExportConfig::embedded_default`].
    pub exports: Vec<ExportConfig>,
    /// Also serve portmapper v2 on `portmapper_port` (TCP and UDP).
    pub portmapper: bool,
    pub portmapper_port: u16,
    /// Take callers' groups from the local user database instead of AUTH_SYS.
    pub manage_gids: bool,
    /// Largest RPC record accepted; a larger one closes the connection.
    pub max_record: usize,
    /// Most calls in progress per connection before reading pauses.
    pub max_inflight: usize,
    /// Connections at once, in all and from one client address.
    pub limits: cache_engine::front::limits::ConnLimits,
    /// A connection with no call in progress that sends nothing for this
    /// long is closed (clients reconnect when they need to).
    pub idle_timeout: Duration,
    /// After a start, only lock reclaims succeed for this long (when clients
    /// held locks before it, or when there is no `state_dir` to tell).
    pub nlm_grace: Duration,
    /// Port of the portmapper on clients, asked where their NLM service is
    /// for GRANTED callbacks (111; tests point it elsewhere).
    pub callback_portmapper_port: u16,
    /// Where the addresses of clients that took locks are kept, so that
    /// they are sent SM_NOTIFY at the next start and reclaim their locks
    /// during the grace period. None: nothing is kept.
    pub state_dir: Option<std::path::PathBuf>,
}

impl NfsConfig {
    pub fn new(listen: SocketAddr) -> Self {
        NfsConfig {
            listen,
            exports: Vec::new(),
            portmapper: false,
            portmapper_port: nfs_proto::portmap::PORT,
            manage_gids: false,
            max_record: (1 << 20) + (64 << 10),
            max_inflight: 128,
            limits: Default::default(),
            // As knfsd does.
            idle_timeout: Duration::from_secs(6 * 60),
            nlm_grace: Duration::ZERO,
            callback_portmapper_port: nfs_proto::portmap::PORT,
            state_dir: None,
        }
    }
}
