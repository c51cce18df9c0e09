//! Weir's NFSv3 front end: an ONC RPC server that serves NFSv3, MOUNT v3,
//! NLM v4 and NSM on one port (and portmapper v2 on port 111 when asked),
//! mapping every call onto the cache engine.
//!
//! Connections are accepted on every shard thread (`SO_REUSEPORT`), decoded
//! there, and each call runs as its own task, so one connection can have many
//! calls in flight; replies go out through one writer per connection. The
//! wire formats live in `nfs-proto`; this crate must not grow codecs of its
//! own, must hold no caching logic (that is the engine's), and must never
//! panic on anything a client sends.

pub mod config;
mod conn;
mod context;
mod dispatch;
pub mod exports;
mod mount;
mod nfs;
mod nlm;
mod portmap;
mod rpcclient;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cache_engine::Engine;

pub use config::{Access, ExportConfig, NfsConfig, RuleConfig, Squash};
use exports::Export;

/// Why the front end could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("exports: {0}")]
    Exports(String),
    #[error("export {path}: subdir {subdir} is not a reachable directory of the core filer ({error})")]
    Subdir {
        path: String,
        subdir: String,
        error: cache_engine::Error,
    },
    #[error("cannot start listeners on the shards: {0}")]
    Shard(cache_engine::Error),
}

/// State every connection of one server shares.
pub(crate) struct Server {
    engine: Engine,
    exports: Vec<Export>,
    cfg: NfsConfig,
    /// The port NFS, MOUNT and NLM are served on.
    port: u16,
    /// Tells this server's lock tables apart from another's on the same thread.
    id: u64,
    started: Instant,
    /// How long after `started` only lock reclaims succeed.
    grace: std::time::Duration,
    /// NSM state number: odd while up, new at every start.
    nsm_state: i32,
    /// Who mounted what (MOUNT DUMP); changed only by MNT and UMNT.
    mounts: Mutex<Vec<(String, String)>>,
    /// Clients that took locks since this start (written to the state dir once each).
    lockers: Mutex<std::collections::HashSet<std::net::IpAddr>>,
    /// Open connections, against the configured limits.
    conns: Arc<cache_engine::front::limits::ConnCounter>,
}

/// A running NFS front end.
pub struct NfsServer {
    server: Arc<Server>,
    addr: SocketAddr,
    portmapper: Option<SocketAddr>,
    stop: cache_engine::front::StopSignal,
}

impl NfsServer {
    /// Resolve the exports, bind the listeners on every shard and start
    /// accepting. Returns once the port is bound.
    pub fn start(engine: Engine, cfg: NfsConfig) -> Result<NfsServer, StartError> {
        futures::executor::block_on(Self::start_async(engine, cfg))
    }

    async fn start_async(engine: Engine, mut cfg: NfsConfig) -> Result<NfsServer, StartError> {
        if cfg.exports.is_empty() {
            cfg.exports = ExportConfig::embedded_default();
        }
        let parsed = exports::parse(&cfg.exports).map_err(StartError::Exports)?;
        let mut list = Vec::new();
        for (path, subdir, rules) in parsed {
            let root = engine
                .resolve_dir(&subdir)
                .await
                .map_err(|error| StartError::Subdir {
                    path: path.clone(),
                    subdir: subdir.clone(),
                    error,
                })?;
            list.push(Export {
                path,
                subdir,
                rules,
                root,
            });
        }
        let (addr, listeners) = cache_engine::front::listeners_for_shards(cfg.listen, engine.shard_count())
            .map_err(|(addr, source)| StartError::Listen { addr, source })?;
        let portmap = if cfg.portmapper {
            let at = SocketAddr::new(addr.ip(), cfg.portmapper_port);
            let bound = portmap::bind(at).map_err(|source| StartError::Listen { addr: at, source })?;
            Some((at, bound))
        } else {
            None
        };
        static IDS: AtomicU64 = AtomicU64::new(1);
        let nsm_state = nsm_state(cfg.state_dir.as_deref());
        let earlier = nlm::take_lock_clients(cfg.state_dir.as_deref());
        // With a record of lock clients, a grace period is needed only when
        // some had locks to reclaim; without one, always.
        let grace = if cfg.state_dir.is_some() && earlier.is_empty() {
            std::time::Duration::ZERO
        } else {
            cfg.nlm_grace
        };
        let conns = cache_engine::front::limits::ConnCounter::new("nfs", cfg.limits);
        let server = Arc::new(Server {
            conns,
            engine: engine.clone(),
            exports: list,
            cfg,
            port: addr.port(),
            id: IDS.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
            grace,
            nsm_state,
            mounts: Mutex::new(Vec::new()),
            lockers: Mutex::new(Default::default()),
        });
        let (stop_tx, stop_rx) = cache_engine::front::StopSignal::new();
        let spread = cache_engine::front::Spread::new(listeners.len());
        for (i, l) in listeners.into_iter().enumerate() {
            let (srv, stop, spread) = (server.clone(), stop_rx.clone(), spread.clone());
            engine
                .run_on(i, move || async move {
                    conn::spawn_acceptor(srv, l, stop, Some((spread, i)));
                })
                .await
                .map_err(StartError::Shard)?;
        }
        if !earlier.is_empty() {
            let srv = server.clone();
            engine
                .run_on(0, move || async move { nlm::notify_restart(srv, earlier) })
                .await
                .map_err(StartError::Shard)?;
        }
        let portmapper = match portmap {
            Some((at, bound)) => {
                let (srv, stop) = (server.clone(), stop_rx.clone());
                engine
                    .run_on(0, move || async move {
                        portmap::spawn(srv, bound, stop);
                    })
                    .await
                    .map_err(StartError::Shard)?;
                Some(at)
            }
            None => None,
        };
        Ok(NfsServer {
            server,
            addr,
            portmapper,
            stop: stop_tx,
        })
    }

    /// The address NFS, MOUNT and NLM are served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the portmapper listens, when it was asked for.
    pub fn portmapper_addr(&self) -> Option<SocketAddr> {
        self.portmapper
    }

    /// The export paths, in configuration order.
    pub fn export_paths(&self) -> Vec<String> {
        self.server.exports.iter().map(|e| e.path.clone()).collect()
    }

    /// Each export's path and the engine handle of the directory it shows
    /// (for local tools that resolve export paths, such as `weir prime`).
    pub fn export_roots(&self) -> Vec<(String, cache_engine::FileHandle)> {
        self.server
            .exports
            .iter()
            .map(|e| (e.path.clone(), e.root))
            .collect()
    }

    /// Stop accepting connections (open ones end with the engine).
    pub fn stop(&mut self) {
        self.stop.stop();
    }
}

/// This start's NSM state number: odd, and larger than the last start's
/// (kept in the state directory, as statd keeps its own).
fn nsm_state(dir: Option<&std::path::Path>) -> i32 {
    let fallback = || {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (t.as_secs() & 0x3fff_ffff) as i32 | 1
    };
    let Some(dir) = dir else { return fallback() };
    let path = dir.join("nsm-state");
    let last: i32 = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(-1);
    let next = if last >= i32::MAX - 2 { 1 } else { (last + 2) | 1 };
    let _ = std::fs::create_dir_all(dir);
    if let Err(e) = std::fs::write(&path, format!("{next}\n")) {
        tracing::warn!("nsm: cannot keep the state number in {}: {e}", path.display());
    }
    next
}
