//! The SMB2/3 server front end: maps the protocol (MS-SMB2) onto the cache
//! engine, with NTLMv2-over-SPNEGO authentication, signing and encryption.
//!
//! Connections are accepted on every shard thread (`SO_REUSEPORT`) and
//! decoded there; each frame runs as a task, and one writer per connection
//! sends the responses. State shared by the opens of one file (share modes,
//! byte-range locks, delete-on-close, change watchers) lives on the file's
//! owning shard. It must not hold file data of its own nor talk to core
//! filers directly: everything goes through the cache engine. No client
//! input may make it panic.

pub mod auth;
mod compound;
pub mod config;
mod conn;
mod context;
mod credits;
mod dir;
mod dispatch;
mod errors;
mod fileops;
mod info;
mod ioctl;
pub mod lease;
mod lock;
mod negotiate;
mod notify;
mod oplock;
mod posix;
mod session;
mod signing;
mod state;
mod tree;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cache_engine::{Engine, FileHandle};

use auth::ntlm::ServerNames;
use auth::throttle::LogonThrottle;
use auth::users::UserDb;
pub use config::SmbConfig;
use config::{Encryption, Signing};

/// Why the SMB front end could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("smb configuration: {0}")]
    Config(String),
    #[error("share {share}: subdir {subdir} is not a reachable directory of the core filer ({error})")]
    Subdir {
        share: String,
        subdir: String,
        error: cache_engine::Error,
    },
    #[error("cannot start listeners on the shards: {0}")]
    Shard(cache_engine::Error),
}

/// Where an open key keeps its connection's shard.
pub(crate) const OPEN_KEY_SHARD_SHIFT: u32 = 48;

/// One share as served: its configuration and the directory it shows.
pub(crate) struct Share {
    pub name: String,
    pub root: FileHandle,
    pub read_only: bool,
    pub encrypt: bool,
    /// Lower-cased user names allowed in; empty: everyone.
    pub users: Vec<String>,
}

/// State every connection of one server shares (read-only but for the
/// logon throttle, which only failed logons touch).
pub(crate) struct Server {
    pub engine: Engine,
    pub cfg: SmbConfig,
    pub users: Arc<UserDb>,
    pub shares: Vec<Share>,
    pub names: ServerNames,
    pub guid: [u8; 16],
    pub start_time: u64,
    /// Tells this server's per-file tables apart from another's on a thread.
    pub id: u64,
    pub throttle: Arc<Mutex<LogonThrottle>>,
    /// Open connections, against the configured limits.
    pub conns: Arc<cache_engine::front::limits::ConnCounter>,
    next_id: AtomicU64,
    /// How many opens the server has: with none, other front ends'
    /// changes need no look at the per-file state.
    pub open_count: AtomicUsize,
    /// Lease keys of each client (ClientGuid) and the files they name.
    pub lease_keys: Mutex<HashMap<lease::ClientGuid, lease::LeaseTable<FileHandle>>>,
}

impl Server {
    /// A server-wide unique number (session ids, open keys).
    pub fn unique(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A unique key for an open made on a connection of shard `shard`; the
    /// shard is in the top bits, so break notifications find their way
    /// with no table.
    pub fn open_key(&self, shard: usize) -> u64 {
        (shard as u64) << OPEN_KEY_SHARD_SHIFT | self.unique()
    }

    pub fn signing_required(&self) -> bool {
        self.cfg.signing == Signing::Required
    }

    pub fn share(&self, name: &str) -> Option<(usize, &Share)> {
        self.shares
            .iter()
            .enumerate()
            .find(|(_, s)| s.name.eq_ignore_ascii_case(name))
    }
}

/// A running SMB front end.
pub struct SmbServer {
    addr: SocketAddr,
    stop: cache_engine::front::StopSignal,
}

impl SmbServer {
    /// Check the configuration, resolve the shares, bind the listeners on
    /// every shard and start accepting. Returns once the port is bound.
    pub fn start(engine: Engine, cfg: SmbConfig) -> Result<SmbServer, StartError> {
        futures::executor::block_on(Self::start_async(engine, cfg))
    }

    async fn start_async(engine: Engine, cfg: SmbConfig) -> Result<SmbServer, StartError> {
        let users = cfg.validate().map_err(StartError::Config)?;
        let mut shares = Vec::new();
        for s in cfg.effective_shares() {
            let root = engine
                .resolve_dir(&s.subdir)
                .await
                .map_err(|error| StartError::Subdir {
                    share: s.name.clone(),
                    subdir: s.subdir.clone(),
                    error,
                })?;
            let enc = s.encryption.unwrap_or(cfg.encryption);
            shares.push(Share {
                name: s.name.clone(),
                root,
                read_only: s.read_only,
                encrypt: enc == Encryption::Required,
                users: s.users.iter().map(|u| u.to_lowercase()).collect(),
            });
        }
        let (addr, listeners) = cache_engine::front::listeners_for_shards(cfg.listen, engine.shard_count())
            .map_err(|(addr, source)| StartError::Listen { addr, source })?;
        static IDS: AtomicU64 = AtomicU64::new(1);
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "weir".into());
        let mut guid = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut guid);
        let mut throttle = LogonThrottle::default();
        throttle.set_limits(cfg.logons);
        let cfg_limits = cfg.limits;
        let server = Arc::new(Server {
            engine: engine.clone(),
            users: Arc::new(users),
            shares,
            names: ServerNames::standalone(&host, &cfg.workgroup),
            cfg,
            guid,
            start_time: auth::filetime_now(),
            id: IDS.fetch_add(1, Ordering::Relaxed),
            throttle: Arc::new(Mutex::new(throttle)),
            conns: cache_engine::front::limits::ConnCounter::new("smb", cfg_limits),
            next_id: AtomicU64::new(1),
            open_count: AtomicUsize::new(0),
            lease_keys: Mutex::new(HashMap::new()),
        });
        oplock::subscribe(&server);
        let (stop_tx, stop_rx) = cache_engine::front::StopSignal::new();
        let spread = cache_engine::front::Spread::new(listeners.len());
        for (i, l) in listeners.into_iter().enumerate() {
            let (srv, stop, spread) = (server.clone(), stop_rx.clone(), spread.clone());
            engine
                .run_on(i, move || async move {
                    conn::spawn_acceptor(srv, l, stop, spread, i);
                })
                .await
                .map_err(StartError::Shard)?;
        }
        Ok(SmbServer { addr, stop: stop_tx })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting connections (open ones end with the engine).
    pub fn stop(&mut self) {
        self.stop.stop();
    }
}
