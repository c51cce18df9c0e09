//! Write-behind's durability promise with real processes: `weir serve`
//! ("read-write" policy) caching nfs-ganesha behind the delay proxy, NFSv3
//! clients writing through it. A change Weir acknowledged (a FILE_SYNC
//! WRITE, a COMMIT, a SETATTR of the size, a MKDIR, CREATE, RENAME or
//! REMOVE) survives `kill -9` of Weir at any instant, and an outage of the
//! core filer, and reaches the NAS in the end byte for byte and name for
//! name.
//!
//! The kill instants come from a seeded RNG: the seed is printed, and
//! `WEIR_CRASH_SEED=N` runs the same sequence again (`WEIR_CRASH_KILLS=N`
//! changes the number of kills).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::namer::{namer, Tree};
use common::nas::*;
use common::writers::{self, check, File, Stats};
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use testbed::ganesha::Ganesha;
use testbed::nfs_client::{self as nfs, Endpoint, Pipe};
use testbed::{DelayProxy, Link};

/// Clients, each writing its own files over its own connection.
const CLIENTS: usize = 4;
const FILES_PER_CLIENT: usize = 3;

/// ganesha, the proxy in front of it, and how to start `weir serve` caching
/// it through the proxy ("read-write", 300ms write-back delay) on a fixed
/// NFS port.
struct Rig {
    tmp: tempfile::TempDir,
    _ganesha: Ganesha,
    proxy: DelayProxy,
    args: Vec<String>,
    nfs: SocketAddr,
    rt: tokio::runtime::Runtime,
}

impl Rig {
    /// `timeout`: how long one call to the NAS may take.
    fn new(timeout: &str) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("export")).unwrap();
        std::fs::create_dir(tmp.path().join("data")).unwrap();
        let ports = free_ports();
        let ganesha = start_ganesha(tmp.path(), ports);
        let proxy = DelayProxy::start(ganesha.nfs, Link::new(Duration::from_millis(4), None)).unwrap();
        let config = tmp.path().join("weir.toml");
        std::fs::write(
            &config,
            format!(
                "[cache]\njournal_size = \"64MiB\"\ndirty_max = \"32MiB\"\n\
                 [core_filer]\nurl = \"nfs://127.0.0.1:{}/export?mountport={}\"\ntimeout = \"{timeout}\"\n\
                 [policy]\npreset = \"read-write\"\nwriteback_delay = \"300ms\"\nattr_verify = \"120s\"\n\
                 [[exports]]\npath = \"/export\"\n[[exports.rules]]\nclients = [\"127.0.0.1\"]\n\
                 squash = \"none\"\nsecure = false\n",
                proxy.addr().port(),
                ports.1,
            ),
        )
        .unwrap();
        let nfs = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let args = [
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            tmp.path().join("data").to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
            "--nfs-listen",
            &nfs.to_string(),
            "--smb-listen",
            "127.0.0.1:0",
            "--memory",
            "256MiB",
            "--cache-size",
            "64MiB",
            "--shards",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Rig {
            tmp,
            _ganesha: ganesha,
            proxy,
            args,
            nfs,
            rt,
        }
    }

    fn export(&self) -> PathBuf {
        self.tmp.path().join("export")
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// `weir serve`, once it answers on the NFS port.
    fn start_weir(&self) -> Daemon {
        let mut weir = Daemon::start(&self.args, self.tmp.path());
        let banner = weir.banner();
        assert_eq!(nfs_port(&banner), self.nfs.port(), "{banner:?}");
        weir
    }

    fn pipe(&self) -> Pipe {
        self.rt.block_on(bounded(Pipe::connect(self.nfs))).unwrap()
    }

    /// The test's files, looked up or created (empty) through Weir.
    fn open_files(&self) -> Vec<Arc<Mutex<File>>> {
        self.rt.block_on(bounded(async {
            let ep = Endpoint {
                nfs: self.nfs,
                mount_port: self.nfs.port(),
            };
            let root = nfs::connect(&ep).await.unwrap().root_nfs_fh3();
            let pipe = Pipe::connect(self.nfs).await.unwrap();
            let mut files = Vec::new();
            for i in 0..CLIENTS * FILES_PER_CLIENT {
                let name = format!("c{}-f{}", i / FILES_PER_CLIENT, i % FILES_PER_CLIENT);
                let (fh, created) = writers::lookup_or_create(&pipe, &root, &name).await;
                assert!(created, "{name} was there before the test");
                files.push(Arc::new(Mutex::new(File {
                    name,
                    fh,
                    model: Vec::new(),
                    pending: None,
                })));
            }
            files
        }))
    }

    /// One writer per file, the files of a client sharing its connection.
    fn launch(
        &self,
        files: &[Arc<Mutex<File>>],
        rng: &mut StdRng,
        stats: &Arc<Stats>,
        stop: &Arc<AtomicBool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for mine in files.chunks(FILES_PER_CLIENT) {
            let pipe = Arc::new(self.pipe());
            for file in mine {
                let rng = StdRng::seed_from_u64(rng.next_u64());
                let w = writers::writer(pipe.clone(), file.clone(), rng, stats.clone(), stop.clone());
                tasks.push(self.rt.spawn(w));
            }
        }
        tasks
    }

    /// The namespace writer's top directory (`ns`, made on the NAS before
    /// the test), looked up through Weir.
    fn open_tree(&self) -> Arc<Mutex<Tree>> {
        self.rt.block_on(bounded(async {
            let ep = Endpoint {
                nfs: self.nfs,
                mount_port: self.nfs.port(),
            };
            let mut c = nfs::connect(&ep).await.unwrap();
            let root = c.root_nfs_fh3();
            let top = nfs::lookup(&mut c, &root, "ns").await.unwrap();
            Arc::new(Mutex::new(Tree::new(top)))
        }))
    }

    /// The namespace writer, on a connection of its own.
    fn launch_namer(
        &self,
        tree: &Arc<Mutex<Tree>>,
        rng: &mut StdRng,
        stats: &Arc<Stats>,
        stop: &Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let pipe = Arc::new(self.pipe());
        let rng = StdRng::seed_from_u64(rng.next_u64());
        self.rt
            .spawn(namer(pipe, tree.clone(), rng, stats.clone(), stop.clone()))
    }

    /// Wait for the writers; a writer's panic fails the test here.
    fn join(&self, tasks: Vec<tokio::task::JoinHandle<()>>) {
        for t in tasks {
            self.rt.block_on(bounded(t)).unwrap();
        }
    }

    /// Read every file through Weir and compare it with its model.
    fn check(&self, files: &[Arc<Mutex<File>>], stats: &Stats, context: &str) {
        let pipe = self.pipe();
        self.rt.block_on(check(&pipe, files, stats, context));
    }

    /// `weir status --json`.
    fn status(&self) -> Dirty {
        let data = self.data();
        let out = weir(
            &["status", "--json", "--data-dir", data.to_str().unwrap()],
            self.tmp.path(),
        );
        assert!(out.status.success(), "weir status: {}", text(&out.stderr));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let filers = s["filers"].as_array().unwrap_or_else(|| panic!("status: {s}"));
        let sum = |k: &str| filers.iter().map(|f| f[k].as_u64().unwrap()).sum();
        Dirty {
            bytes: sum("bytes"),
            files: sum("files"),
            unreachable: filers.iter().any(|f| f["reachable"] == false),
            journal_used: s["journal_used"].as_u64().unwrap(),
        }
    }

    /// The NAS's copy of every file equals its model; the bytes compared.
    fn compare_nas(&self, files: &[Arc<Mutex<File>>]) -> u64 {
        let mut bytes = 0;
        for file in files {
            let f = file.lock().unwrap();
            let nas = std::fs::read(self.export().join(&f.name)).unwrap();
            assert!(
                nas == f.model,
                "the NAS's {} has {} bytes, the acknowledged changes make {} ({})",
                f.name,
                nas.len(),
                f.model.len(),
                writers::first_difference(&nas, &f.model)
            );
            bytes += nas.len() as u64;
        }
        bytes
    }
}

/// What `weir status` says, over all core filers.
#[derive(Debug, Clone, Copy)]
struct Dirty {
    bytes: u64,
    files: u64,
    unreachable: bool,
    journal_used: u64,
}

/// The seed of this run: `WEIR_CRASH_SEED`, or a new one.
fn seed() -> u64 {
    match std::env::var("WEIR_CRASH_SEED") {
        Ok(s) => s.parse().expect("WEIR_CRASH_SEED: a number"),
        Err(_) => rand::rng().next_u64(),
    }
}

/// Poll `weir status` until `done` holds, for up to `bound`.
fn wait_status(rig: &Rig, bound: Duration, what: &str, done: impl Fn(Dirty) -> bool) -> Dirty {
    let t = Instant::now();
    loop {
        let s = rig.status();
        if done(s) {
            return s;
        }
        assert!(t.elapsed() < bound, "{what}: not after {bound:?}; status: {s:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop_weir(mut weir: Daemon) {
    weir.signal(libc::SIGTERM);
    let status = weir.wait();
    assert!(
        status.success(),
        "weir serve: {status}; stderr: {}",
        weir.stderr()
    );
}

fn flush_all(data: &Path, cwd: &Path) {
    let out = weir(&["flush", "--all", "--data-dir", data.to_str().unwrap()], cwd);
    assert!(
        out.status.success(),
        "weir flush --all: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    eprintln!("weir flush --all: {}", text(&out.stdout).trim());
}

#[test]
fn acknowledged_writes_survive_kill_9_and_reach_the_nas() {
    let seed = seed();
    let kills: usize = std::env::var("WEIR_CRASH_KILLS").map_or(50, |s| s.parse().expect("WEIR_CRASH_KILLS"));
    eprintln!("seed {seed} (WEIR_CRASH_SEED={seed} runs this sequence again), {kills} kills");
    let mut rng = StdRng::seed_from_u64(seed);
    let rig = Rig::new("3s");
    std::fs::create_dir(rig.export().join("ns")).unwrap();
    let stats = Arc::new(Stats::default());
    let mut weir = rig.start_weir();
    let files = rig.open_files();
    let tree = rig.open_tree();
    let started = Instant::now();
    for kill in 1..=kills {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = rig.launch(&files, &mut rng, &stats, &stop);
        tasks.push(rig.launch_namer(&tree, &mut rng, &stats, &stop));
        // Before and after the write-back delay (300ms; 900ms for a file
        // written all the time), and across write-back of earlier runs.
        let after = Duration::from_millis(rng.random_range(10..1200));
        std::thread::sleep(after);
        weir.signal(libc::SIGKILL);
        weir.wait();
        rig.join(tasks);
        weir = rig.start_weir();
        let context = format!("seed {seed}, after kill {kill} ({after:?} into the run)");
        rig.check(&files, &stats, &context);
        let pipe = rig.pipe();
        let mut t = tree.lock().unwrap();
        rig.rt.block_on(bounded(t.check(&pipe, &context)));
    }
    let (ns_acked, ns_landed) = {
        let t = tree.lock().unwrap();
        (t.acknowledged, t.landed)
    };
    eprintln!(
        "{kills} kills in {:?}: {}; {ns_acked} namespace operations acknowledged, of those in flight at a kill {ns_landed} landed",
        started.elapsed(),
        stats.summary()
    );
    assert!(ns_acked > 0, "no namespace operation was acknowledged");
    assert!(stats.writes.load(Relaxed) > 0 && stats.resizes.load(Relaxed) > 0);

    flush_all(&rig.data(), rig.tmp.path());
    assert_eq!(rig.status().bytes, 0, "dirty bytes left after a flush");
    stop_weir(weir);
    let bytes = rig.compare_nas(&files);
    let names = tree.lock().unwrap().compare_nas(&rig.export().join("ns"));
    eprintln!(
        "the NAS holds every acknowledged change: {bytes} bytes in {} files compared, \
         and exactly the {names} names made under ns/",
        files.len()
    );
}

/// Writers go on through an outage of the NAS longer than the write-back
/// delay; what they wrote reads back through Weir meanwhile, and reaches the
/// NAS once it is back, with no flush asked for. The files hold at most 12
/// MiB, well within `dirty_max` (32 MiB): no write may be told to retry.
#[test]
fn writes_are_absorbed_in_an_outage_and_written_back_when_the_nas_returns() {
    let seed = seed();
    eprintln!("seed {seed} (WEIR_CRASH_SEED={seed} runs this sequence again)");
    let mut rng = StdRng::seed_from_u64(seed);
    let rig = Rig::new("2s");
    let stats = Arc::new(Stats::default());
    let weir = rig.start_weir();
    let files = rig.open_files();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = rig.launch(&files, &mut rng, &stats, &stop);
    std::thread::sleep(Duration::from_secs(1));

    rig.proxy.cut();
    let (before, jukebox_before) = (stats.acknowledged(), stats.jukebox.load(Relaxed));
    // Ten times the write-back delay, writing all along.
    std::thread::sleep(Duration::from_secs(3));
    let in_outage = rig.status();
    stop.store(true, Relaxed);
    rig.join(tasks);
    let during = stats.acknowledged() - before;
    let jukebox = stats.jukebox.load(Relaxed) - jukebox_before;
    eprintln!(
        "during the outage: {during} changes acknowledged, {jukebox} JUKEBOX answers; {in_outage:?}; {}",
        stats.summary()
    );
    assert!(during > 0, "no write was answered during the outage");
    rig.check(&files, &stats, "reading through Weir during the outage");
    let s = wait_status(&rig, HANG, "core filer reported unreachable", |s| s.unreachable);
    eprintln!("status in the outage: {s:?}");
    assert!(s.bytes > 0, "nothing dirty during the outage");

    rig.proxy.restore();
    let t = Instant::now();
    wait_status(&rig, 2 * HANG, "written back after the link came back", |s| {
        s.bytes == 0 && s.files == 0
    });
    eprintln!(
        "written back by itself {:?} after the link came back",
        t.elapsed()
    );
    let compared = rig.compare_nas(&files);
    eprintln!(
        "the NAS holds every acknowledged change: {compared} bytes in {} files compared",
        files.len()
    );
    stop_weir(weir);
    assert_eq!(
        jukebox, 0,
        "writes were told to retry during the outage with at most {} dirty bytes (dirty_max 32 MiB): \
         the journal was full ({} bytes used of 64 MiB)",
        in_outage.bytes, in_outage.journal_used
    );
}
