//! Engine tiers, side by side with references in one run:
//! - NVMe tier: 4 KiB random reads at QD 32 and 1 MiB sequential reads through
//!   the engine vs `fio --ioengine=io_uring --direct=1` on the same cache files;
//! - RAM tier: hit throughput on one shard vs a plain memcpy of the same bytes;
//! - coalescing: core filer bytes / unique bytes for 64 cold concurrent readers.
//!
//! `cargo run --release -p benches --bin engine_tiers -- [--dir DIR] [--seconds N]`

// As `weir` does: buffers freed on another shard's thread than the one
// that allocated them take a lock in glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::fio::{self, FioRead, Measured};
use benches::{make_file, Table};
use cache_engine::filer::counting::CountingFiler;
use cache_engine::filer::local::LocalFiler;
use cache_engine::test_support::defaults_in;
use cache_engine::types::Credentials;
use cache_engine::{Engine, EngineConfig, FileHandle};
use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt};

#[derive(Parser)]
struct Args {
    /// Scratch directory (origin files, cache files).
    #[arg(long, default_value = "target/bench-engine")]
    dir: PathBuf,
    /// Seconds per timed phase.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Size of the data set read through the NVMe tier.
    #[arg(long, default_value_t = 512)]
    nvme_mib: u64,
    /// Run only these parts (nvme, ram, coalescing) [default: all].
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// How long shards poll for work before sleeping (µs) [default: the engine's].
    #[arg(long)]
    poll_before_sleep_us: Option<u64>,
}

/// The engine as `weir` runs it by default (pinned shards, its block,
/// segment and queue sizes) with these tier sizes.
fn engine_config(args: &Args, dir: &Path, shards: usize, ram: u64, cache: u64) -> EngineConfig {
    let base = defaults_in(dir);
    let spin = args.poll_before_sleep_us.map(Duration::from_micros);
    EngineConfig {
        shards,
        ram_bytes: ram,
        cache_bytes: cache,
        spin: spin.unwrap_or(base.spin),
        ..base
    }
}

fn start(dir: &Path, cfg: EngineConfig, delay: Duration) -> (Engine, Arc<CountingFiler<LocalFiler>>) {
    let filer = Arc::new(CountingFiler::with_read_delay(
        LocalFiler::open(&dir.join("origin")).unwrap(),
        delay,
    ));
    let engine = Engine::start(cfg, filer.clone()).unwrap();
    (engine, filer)
}

async fn open(engine: &Engine, name: &str) -> FileHandle {
    engine
        .lookup(&Credentials::root(), &engine.root(), name.as_bytes())
        .await
        .unwrap()
        .0
}

/// Read the whole file sequentially in 1 MiB requests with `depth` in flight.
async fn read_all(engine: &Engine, fh: FileHandle, size: u64, depth: usize) -> u64 {
    let cred = Credentials::root();
    let mut inflight = FuturesUnordered::new();
    let (mut next, mut bytes) = (0u64, 0u64);
    loop {
        while inflight.len() < depth && next < size {
            inflight.push(engine.read(&cred, &fh, next, 1 << 20));
            next += 1 << 20;
        }
        match inflight.next().await {
            Some(r) => bytes += r.unwrap().len() as u64,
            None => return bytes,
        }
    }
}

/// 4 KiB random reads at QD 32 through the engine for `slice`: 32 readers,
/// each issuing its next read as soon as its last one returns, as 32
/// clients (or fio's 32 slots) do.
async fn engine_random(engine: &Engine, fh: FileHandle, size: u64, slice: Duration, seed: u64) -> Measured {
    let t = Instant::now();
    let reader = |i: u64| async move {
        let rng = &mut (seed.wrapping_mul(1000) + i).max(1);
        let cred = Credentials::root();
        let mut m = Measured::default();
        while t.elapsed() < slice {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            let r = engine.read(&cred, &fh, (*rng % (size / 4096)) * 4096, 4096).await;
            m.bytes += r.unwrap().len() as u64;
            m.ops += 1;
        }
        m
    };
    let mut m = Measured::default();
    for r in futures::future::join_all((0..32).map(reader)).await {
        m.ops += r.ops;
        m.bytes += r.bytes;
    }
    m.elapsed = t.elapsed();
    m
}

fn nvme(args: &Args, table: &mut Table) {
    let dir = args.dir.join("nvme");
    let _ = std::fs::remove_dir_all(dir.join("cache"));
    std::fs::create_dir_all(dir.join("origin")).unwrap();
    let size = args.nvme_mib << 20;
    make_file(&dir.join("origin/data"), size);
    // One shard owns the file, as every file has one owner: compare it with
    // one fio job on that shard's cache file. A second shard, on a CPU of
    // its own, is where a front end's connection to another shard calls
    // from. The RAM tier is too small to matter.
    let shards = cache_engine::allowed_cpus().len().min(2);
    let cfg = engine_config(args, &dir, shards, 1 << 20, shards as u64 * 2 * size);
    let (engine, _) = start(&dir, cfg, Duration::ZERO);
    let fh = futures::executor::block_on(async {
        let fh = open(&engine, "data").await;
        read_all(&engine, fh, size, 4).await;
        fh
    });
    let owner = engine.owner(&fh);
    let other = (shards > 1).then_some((owner + 1) % shards);
    // Let the last segments reach the disk.
    std::thread::sleep(Duration::from_secs(1));
    // fio reads the part of the cache file the engine wrote (the rest is
    // unwritten space, which reads as zeros without touching the disk).
    let written = (size + (16 << 20)).next_multiple_of(1 << 20);
    let fio_ok = fio::available();
    let fio_job = |rw, bs, depth, seconds| FioRead {
        files: vec![dir.join(format!("cache/shard-{owner}.cache"))],
        offset: 0,
        size: written,
        rw,
        bs,
        depth,
        seconds,
    };
    // Alternate short slices of each contender: this machine's disk speed drifts.
    let rounds = 4;
    let slice = Duration::from_secs(args.seconds.div_ceil(rounds).max(1));
    let [mut rand, mut rand_remote, mut seq, mut fio_rand, mut fio_seq] = [Measured::default(); 5];
    for round in 0..rounds {
        // Clients on the owning shard's thread, as front ends run them.
        let e = engine.clone();
        let m = futures::executor::block_on(engine.run_on(owner, move || async move {
            let r = engine_random(&e, fh, size, slice, 7 + round).await;
            let t = Instant::now();
            let mut bytes = 0;
            while t.elapsed() < slice {
                bytes += read_all(&e, fh, size, 4).await;
            }
            (
                r,
                Measured {
                    ops: bytes >> 20,
                    bytes,
                    elapsed: t.elapsed(),
                },
            )
        }))
        .unwrap();
        rand.add(m.0);
        seq.add(m.1);
        // The same from the other shard: every call crosses to the owner and back.
        if let Some(other) = other {
            let e = engine.clone();
            let m = engine.run_on(other, move || async move {
                engine_random(&e, fh, size, slice, 99 + round).await
            });
            rand_remote.add(futures::executor::block_on(m).unwrap());
        }
        if fio_ok {
            let run = |j: FioRead| j.run().unwrap_or_else(|e| panic!("{e}"));
            fio_rand.add(run(fio_job("randread", "4k", 32, slice.as_secs())));
            fio_seq.add(run(fio_job("read", "1M", 4, slice.as_secs())));
        }
    }
    engine.shutdown();
    let fio = |m: Measured, f: fn(&Measured) -> f64| fio_ok.then(|| f(&m));
    table.row(
        "NVMe tier 4 KiB random read, QD 32 (IOPS)",
        rand.iops(),
        fio(fio_rand, Measured::iops),
    );
    if other.is_some() {
        table.row(
            "NVMe tier 4 KiB random read, QD 32, caller on another shard (IOPS)",
            rand_remote.iops(),
            fio(fio_rand, Measured::iops),
        );
    }
    table.row(
        "NVMe tier 1 MiB sequential read, 4 in flight (MB/s)",
        seq.mbps(),
        fio(fio_seq, Measured::mbps),
    );
}

fn ram(args: &Args, table: &mut Table) {
    let dir = args.dir.join("ram");
    let _ = std::fs::remove_dir_all(dir.join("cache"));
    std::fs::create_dir_all(dir.join("origin")).unwrap();
    let size: u64 = 256 << 20;
    make_file(&dir.join("origin/data"), size);
    let (engine, _) = start(&dir, engine_config(args, &dir, 1, 1 << 30, 0), Duration::ZERO);
    let seconds = Duration::from_secs(args.seconds);
    let mut sink = vec![0u8; 1 << 20];
    // The reader runs on the shard's own core and copies each hit once, as
    // a front end sending it to a socket would: hit throughput per core.
    let e = engine.clone();
    let engine_gbs = futures::executor::block_on(engine.run_on(0, move || async move {
        let fh = open(&e, "data").await;
        read_all(&e, fh, size, 4).await;
        let cred = Credentials::root();
        let mut sink = vec![0u8; 1 << 20];
        let t = Instant::now();
        let mut bytes = 0u64;
        while t.elapsed() < seconds {
            let mut off = 0;
            while off < size {
                let r = e.read(&cred, &fh, off, 1 << 20).await.unwrap();
                let mut at = 0;
                for part in &r.data {
                    sink[at..at + part.len()].copy_from_slice(part);
                    at += part.len();
                }
                bytes += at as u64;
                off += 1 << 20;
            }
        }
        std::hint::black_box(&sink);
        bytes as f64 / t.elapsed().as_secs_f64() / 1e9
    }))
    .unwrap();
    engine.shutdown();
    let src = std::fs::read(dir.join("origin/data")).unwrap();
    let t = Instant::now();
    let mut bytes = 0u64;
    while t.elapsed() < seconds {
        for chunk in src.chunks(1 << 20) {
            sink[..chunk.len()].copy_from_slice(std::hint::black_box(chunk));
            bytes += chunk.len() as u64;
        }
    }
    let memcpy_gbs = bytes as f64 / t.elapsed().as_secs_f64() / 1e9;
    std::hint::black_box(&sink);
    table.row(
        "RAM tier hits, 1 MiB reads, one shard (GB/s)",
        engine_gbs,
        Some(memcpy_gbs),
    );
}

fn coalescing(args: &Args, table: &mut Table) {
    let dir = args.dir.join("coalesce");
    let _ = std::fs::remove_dir_all(dir.join("cache"));
    let _ = std::fs::remove_dir_all(dir.join("state"));
    std::fs::create_dir_all(dir.join("origin")).unwrap();
    let size: u64 = 256 << 20;
    make_file(&dir.join("origin/data"), size);
    // A core filer read costs 2 ms more than local disk, as over a LAN hop.
    let (engine, filer) = start(
        &dir,
        engine_config(args, &dir, 2, 1 << 30, 0),
        Duration::from_millis(2),
    );
    let t = Instant::now();
    futures::executor::block_on(async {
        let fh = open(&engine, "data").await;
        let readers = (0..64).map(|_| read_all(&engine, fh, size, 2));
        let total: u64 = futures::future::join_all(readers).await.into_iter().sum();
        assert_eq!(total, 64 * size);
    });
    let elapsed = t.elapsed();
    engine.shutdown();
    let fetched = filer.read_bytes.load(Relaxed);
    table.ratio_row(
        "Coalescing: core filer bytes / unique bytes, 64 cold readers of 256 MiB",
        fetched as f64 / size as f64,
        format!(
            "{} reads in {:.1} s",
            filer.reads.load(Relaxed),
            elapsed.as_secs_f64()
        ),
    );
}

/// One part of the benchmark, adding its rows to the table.
type Part = fn(&Args, &mut Table);

fn main() {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir).unwrap();
    let mut table = Table::new(["workload", "Weir engine", "reference", "ratio"]);
    let parts: [(&str, Part); 3] = [("nvme", nvme), ("ram", ram), ("coalescing", coalescing)];
    for (name, part) in parts {
        if args.only.is_empty() || args.only.iter().any(|o| o == name) {
            part(&args, &mut table);
        }
    }
    table.print();
}
