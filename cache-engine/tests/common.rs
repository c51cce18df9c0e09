//! Engine fixtures shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cache_engine::filer::counting::CountingFiler;
use cache_engine::filer::local::LocalFiler;
pub use cache_engine::test_support::engine_config;
use cache_engine::types::Credentials;
use cache_engine::{Engine, EngineConfig, FileHandle};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    pub filer: Arc<CountingFiler<LocalFiler>>,
}

impl Fixture {
    pub fn origin(&self) -> PathBuf {
        self.dir.path().join("origin")
    }
}

/// An engine over a fresh `origin` directory; `tune` adjusts the config.
pub fn fixture(tune: impl FnOnce(&mut EngineConfig)) -> Fixture {
    fixture_with_delay(Duration::ZERO, tune)
}

pub fn fixture_with_delay(delay: Duration, tune: impl FnOnce(&mut EngineConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("origin")).unwrap();
    let (engine, filer) = start(dir.path(), delay, tune);
    Fixture { dir, engine, filer }
}

pub fn start(
    dir: &Path,
    delay: Duration,
    tune: impl FnOnce(&mut EngineConfig),
) -> (Engine, Arc<CountingFiler<LocalFiler>>) {
    let mut cfg = engine_config(dir);
    tune(&mut cfg);
    let local = LocalFiler::open(&dir.join("origin")).unwrap();
    let filer = Arc::new(CountingFiler::with_read_delay(local, delay));
    let engine = Engine::start(cfg, filer.clone()).unwrap();
    (engine, filer)
}

pub fn root() -> Credentials {
    Credentials::root()
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// Resolve a slash-separated path from the root.
pub async fn walk(engine: &Engine, path: &str) -> cache_engine::Result<FileHandle> {
    let mut fh = engine.root();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        fh = engine.lookup(&root(), &fh, part.as_bytes()).await?.0;
    }
    Ok(fh)
}

/// Deterministic bytes for file contents.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two different free ports.
pub fn free_ports() -> (u16, u16) {
    loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            return (a, b);
        }
    }
}

/// nfs-ganesha exporting `dir` (work files under `work`), and the `nfs`
/// core filer config that reaches it.
pub fn ganesha(
    dir: &Path,
    work: &Path,
    ports: (u16, u16),
) -> (testbed::ganesha::Ganesha, core_filer::nfs::NfsConfig) {
    let g = testbed::ganesha::Ganesha::start(dir, work, ports.0, ports.1)
        .unwrap_or_else(|e| panic!("ganesha: {e}"));
    let mut cfg = core_filer::nfs::NfsConfig::new("127.0.0.1", ports.0, "/export");
    cfg.mount_port = Some(ports.1);
    (g, cfg)
}
