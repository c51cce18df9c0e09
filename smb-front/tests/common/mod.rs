//! A real engine over a temp dir with the SMB front end on 127.0.0.1:0,
//! and a runner for the `smbclient` command-line client.
#![allow(dead_code)]

pub mod client;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use cache_engine::filer::counting::CountingFiler;
use cache_engine::filer::local::LocalFiler;
use cache_engine::test_support::engine_config;
use cache_engine::{Engine, EngineConfig};
use smb_front::config::UserConfig;
use smb_front::{SmbConfig, SmbServer};

pub const USER: &str = "alice";
pub const PASS: &str = "wonder land";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    pub server: SmbServer,
    /// The core filer, counted, able to lose unstable writes.
    pub filer: Arc<CountingFiler<LocalFiler>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.server.stop();
            self.engine.shutdown();
        }
    }
}

impl Fixture {
    pub fn origin(&self) -> PathBuf {
        self.dir.path().join("origin")
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Run smbclient against `share` with `commands`, as `user%pass`.
    pub fn smbclient(&self, share: &str, auth: &str, extra: &[&str], commands: &str) -> Output {
        let mut c = Command::new("smbclient");
        c.arg(format!("//127.0.0.1/{share}"))
            .arg("-p")
            .arg(self.addr().port().to_string())
            .arg("-U")
            .arg(auth)
            .args(extra)
            .arg("-c")
            .arg(commands)
            .env("HOME", self.dir.path());
        c.output().expect("smbclient runs (apt-get install smbclient)")
    }

    /// smbclient as the test user; panics with its output if it fails.
    pub fn run(&self, extra: &[&str], commands: &str) -> String {
        let out = self.smbclient("export", &format!("{USER}%{PASS}"), extra, commands);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "smbclient {extra:?} -c {commands:?} failed:\n{text}"
        );
        assert!(
            !text.contains("NT_STATUS_"),
            "smbclient {extra:?} -c {commands:?}:\n{text}"
        );
        text
    }
}

pub fn start(tune: impl FnOnce(&mut SmbConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("origin")).unwrap();
    let filer = Arc::new(CountingFiler::new(
        LocalFiler::open(&dir.path().join("origin")).unwrap(),
    ));
    filer.set_passing_caches_writes(true);
    // No NVMe tier: what a test reads back comes from RAM or the origin.
    let cfg = EngineConfig {
        cache_bytes: 0,
        ..engine_config(dir.path())
    };
    let engine = Engine::start(cfg, filer.clone()).unwrap();
    let mut cfg = SmbConfig::new("127.0.0.1:0".parse().unwrap());
    let hash = smb_front::auth::users::nt_hash(PASS);
    cfg.users
        .insert(USER.into(), UserConfig::new(&hash, 0, 0, Vec::new()));
    tune(&mut cfg);
    let server = SmbServer::start(engine.clone(), cfg).unwrap();
    Fixture {
        dir,
        engine,
        server,
        filer,
    }
}
