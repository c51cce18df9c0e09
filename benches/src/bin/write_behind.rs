//! Writes behind a slow link: nfs-ganesha behind the delay proxy (RTT and a
//! bandwidth cap), written by many userspace NFSv3 clients, four ways in
//! one run:
//! - direct: the clients write ganesha through the proxy;
//! - Weir write-through: `weir serve` over ganesha through the proxy, its
//!   default policy (every write reaches ganesha before it is answered);
//! - Weir write-behind: the same with policy `read-write` (answered once
//!   durable in Weir's journal, written back later);
//! - local limit: `weir serve` over the exported directory itself (a
//!   `local` core filer), what Weir does with no link at all.
//!
//! Workloads (each way writes a directory of its own on the export):
//! - sequential: every client writes a fresh file in 1 MiB UNSTABLE
//!   WRITEs, several in flight, then COMMITs it (MB/s until the last
//!   COMMIT answered);
//! - random FILE_SYNC and random UNSTABLE + COMMIT: 4 KiB WRITEs at random
//!   offsets of a sparse file per client, several in flight (IOPS);
//! - untar: one client unpacks a tree as tar over an NFS mount does:
//!   per directory LOOKUP + MKDIR, per file LOOKUP, CREATE, WRITEs,
//!   COMMIT, SETATTR of the mtime (entries/s, MB/s);
//! - QD 1: one client, 4 KiB FILE_SYNC WRITEs one at a time (latency).
//!
//! After the write-behind way, `weir flush --all` writes back what it left
//! dirty; then the clients write half the sequential workload again, which
//! a timed `weir flush --all` drains: the rate at which write-back drains,
//! against the link's bandwidth.
//!
//! `cargo run --release -p benches --bin write_behind -- [--rtt-ms 20]`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::nfs_client::nfs3_types::nfs3::{
    self, createhow3, diropargs3, nfs_fh3, nfstime3, sattr3, set_mtime, stable_how, COMMIT3args, COMMIT3res,
    CREATE3args, CREATE3res, LOOKUP3args, LOOKUP3res, MKDIR3args, MKDIR3res, Nfs3Option, Nfs3Result,
    SETATTR3args, SETATTR3res, WRITE3args, WRITE3res,
};
use benches::nfs_client::nfs3_types::xdr_codec::Opaque;
use benches::nfs_client::{self, percentile, Endpoint, Pipe};
use benches::weir_serve::WeirServe;
use benches::Table;
use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt};
use testbed::ganesha::Ganesha;
use testbed::{DelayProxy, Link};

#[derive(Parser)]
struct Args {
    /// Scratch directory: `export/` (what ganesha exports), `work/`.
    #[arg(long, default_value = "target/bench-write")]
    dir: PathBuf,
    /// Round-trip time of the link, in milliseconds (half each way).
    #[arg(long, default_value_t = 20)]
    rtt_ms: u64,
    /// Bandwidth cap of the link, each way, in Mbit/s.
    #[arg(long, default_value_t = 1000)]
    bandwidth_mbit: u64,
    /// Concurrent clients of the sequential and random workloads, one TCP
    /// connection each.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// MiB each client writes in the sequential workload.
    #[arg(long, default_value_t = 8)]
    seq_mib: u64,
    /// WRITEs each client keeps in flight.
    #[arg(long, default_value_t = 4)]
    outstanding: usize,
    /// Seconds of each random-write and QD 1 workload.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Entries of the untar workload (directories of 50 and files of
    /// about 14 KiB, 50 MB for 3,500).
    #[arg(long, default_value_t = 3500)]
    untar_entries: usize,
    /// Longest an untar may run; the rate is of the entries it made.
    #[arg(long, default_value_t = 60)]
    untar_seconds: u64,
    /// Ways to run, of direct, through, behind, local.
    #[arg(long, value_delimiter = ',', default_value = "direct,through,behind,local")]
    ways: Vec<String>,
    #[arg(long, default_value_t = 20890)]
    ganesha_port: u16,
    #[arg(long, default_value_t = 20880)]
    ganesha_mount_port: u16,
    /// Port of the Weir servers this driver starts, one after another.
    #[arg(long, default_value_t = 20891)]
    weir_port: u16,
    /// The weir binary [default: `weir` beside this binary, else target/release/weir].
    #[arg(long)]
    weir_cmd: Option<PathBuf>,
}

/// What one workload measured.
#[derive(Default, Clone)]
struct Run {
    ops: u64,
    bytes: u64,
    elapsed: Duration,
    lat: Vec<Duration>,
    /// Why it did not run, when it did not.
    skipped: Option<String>,
}

impl Run {
    fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// WRITEs answered NFS3ERR_JUKEBOX and sent again, over the run.
static JUKEBOX: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const WORKLOADS: [&str; 5] = ["seq", "rand-sync", "rand-commit", "untar", "qd1"];

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("write_behind: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.clients == 0 || args.outstanding == 0 {
        return Err("--clients and --outstanding must be at least 1".into());
    }
    let export = args.dir.join("export");
    let work = args.dir.join("work");
    let _ = std::fs::remove_dir_all(&export);
    for d in [&export, &work] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let export = std::fs::canonicalize(&export).map_err(|e| e.to_string())?;
    let weir_cmd = args.weir_cmd.clone().unwrap_or_else(benches::default_weir_cmd);
    let ganesha = Ganesha::start(
        &export,
        &work.join("ganesha"),
        args.ganesha_port,
        args.ganesha_mount_port,
    )?;
    let bandwidth = args.bandwidth_mbit * 1_000_000 / 8;
    let link = Link::new(Duration::from_millis(args.rtt_ms), Some(bandwidth));
    let proxy = DelayProxy::start(ganesha.nfs, link).map_err(|e| format!("delay proxy: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    println!(
        "write behind: ganesha {} behind a delay proxy on {} ({} ms RTT, {} Mbit/s each way); \
         {} clients × {} MiB sequential, {} WRITEs in flight each; random and QD 1 {} s each; \
         untar of {} entries; Weir {}",
        ganesha.nfs,
        proxy.addr(),
        args.rtt_ms,
        args.bandwidth_mbit,
        args.clients,
        args.seq_mib,
        args.outstanding,
        args.seconds,
        args.untar_entries,
        weir_cmd.display()
    );

    let mut results: Vec<(String, Vec<Run>)> = Vec::new();
    let mut drain = None;
    for way in &args.ways {
        let ganesha_url = format!(
            "nfs://127.0.0.1:{}/export?mountport={}",
            proxy.addr().port(),
            ganesha.mount_port
        );
        let weir = |name: &str, filer: &str, config: Option<&str>| -> Result<WeirServe, String> {
            let mut extra = vec![
                "--config".to_string(),
                weir_config(&work, name, config)?.display().to_string(),
                "--core-filer".into(),
                filer.to_string(),
            ];
            extra.extend(["--memory".into(), "2GiB".into()]);
            WeirServe::start(&weir_cmd, &work, name, args.weir_port, &extra)
        };
        let (label, server) = match way.as_str() {
            "direct" => ("direct", Ok(None)),
            "through" => (
                "Weir write-through",
                weir("through", &ganesha_url, None).map(Some),
            ),
            "behind" => (
                "Weir write-behind",
                weir(
                    "behind",
                    &ganesha_url,
                    Some("[policy]\npreset = \"read-write\"\n"),
                )
                .map(Some),
            ),
            "local" => (
                "local limit",
                weir("local", &format!("file://{}", export.display()), None).map(Some),
            ),
            other => return Err(format!("--ways: unknown way `{other}`")),
        };
        let ep = match &server {
            Ok(Some(w)) => w.ep.clone(),
            Ok(None) => Endpoint {
                nfs: proxy.addr(),
                mount_port: ganesha.mount_port,
            },
            Err(e) => {
                eprintln!("{label}: not run: {e}");
                let skipped = Run {
                    skipped: Some(e.clone()),
                    ..Run::default()
                };
                results.push((label.into(), vec![skipped; WORKLOADS.len()]));
                continue;
            }
        };
        let runs = rt.block_on(workloads(args, &ep, way))?;
        for (w, r) in WORKLOADS.iter().zip(&runs) {
            eprintln!(
                "{label:<20} {w:<12} {:>9.0} ops/s {:>8.1} MB/s  p99 {:>8.0} µs",
                r.per_sec(r.ops),
                r.per_sec(r.bytes) / 1e6,
                p99_us(r)
            );
        }
        if let Ok(Some(w)) = &server {
            if way == "behind" {
                flush_all(&weir_cmd, w)?;
                rt.block_on(async {
                    let c = nfs_client::connect(&w.ep).await?;
                    let top = mkdir(&Pipe::connect(w.ep.nfs).await?, &c.root_nfs_fh3(), "drain").await?;
                    sequential(args, &w.ep, &top, args.seq_mib << 19).await
                })?;
                drain = Some(measure_drain(&weir_cmd, w, &proxy)?);
            }
        }
        drop(server);
        results.push((label.into(), runs));
    }
    drop(proxy);
    drop(ganesha);
    print_table(&results);
    println!(
        "\nWRITEs answered NFS3ERR_JUKEBOX and sent again after 100 ms: {}",
        JUKEBOX.load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Some(d) = drain {
        print_drain(&d, bandwidth);
    }
    Ok(())
}

/// What `weir flush --all` after the workloads wrote back, and how fast.
struct Drain {
    dirty: f64,
    sent: u64,
    took: Duration,
    ok: bool,
}

/// `weir flush --all`: whether it wrote everything back.
fn flush_all(cmd: &Path, w: &WeirServe) -> Result<bool, String> {
    let status = std::process::Command::new(cmd)
        .args(["flush", "--all", "--data-dir"])
        .arg(&w.data)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("weir flush: {e}"))?;
    Ok(status.success())
}

/// Write back what is dirty, timed, counting the bytes that crossed the
/// link.
fn measure_drain(cmd: &Path, w: &WeirServe, proxy: &DelayProxy) -> Result<Drain, String> {
    let dirty = w.metric("weir_dirty_bytes")?;
    let before = proxy.bytes_to_target();
    let t = Instant::now();
    let ok = flush_all(cmd, w)?;
    Ok(Drain {
        dirty,
        sent: proxy.bytes_to_target() - before,
        took: t.elapsed(),
        ok,
    })
}

fn print_drain(d: &Drain, link: u64) {
    let rate = d.sent as f64 / d.took.as_secs_f64().max(1e-9);
    println!();
    let mut t = Table::new([
        "write-back drain",
        "dirty MB",
        "MB over the link",
        "seconds",
        "MB/s",
        "× link",
        "flush ok",
    ]);
    t.cells(vec![
        "weir flush --all after sequential writes".into(),
        format!("{:.1}", d.dirty / 1e6),
        format!("{:.1}", d.sent as f64 / 1e6),
        format!("{:.2}", d.took.as_secs_f64()),
        format!("{:.1}", rate / 1e6),
        format!("{:.2}", rate / link as f64),
        if d.ok { "yes" } else { "NO" }.into(),
    ]);
    t.print();
}

/// The config of one Weir: `/export` served as ganesha serves it, plus `more`.
fn weir_config(work: &Path, name: &str, more: Option<&str>) -> Result<PathBuf, String> {
    let base = std::fs::read_to_string(benches::weir_bench_config(work)).map_err(|e| e.to_string())?;
    let path = work.join(format!("{name}.toml"));
    std::fs::write(&path, format!("{}{base}", more.unwrap_or(""))).map_err(|e| e.to_string())?;
    Ok(path)
}

async fn workloads(args: &Args, ep: &Endpoint, way: &str) -> Result<Vec<Run>, String> {
    let c = nfs_client::connect(ep).await?;
    let root = c.root_nfs_fh3();
    let top = mkdir(&Pipe::connect(ep.nfs).await?, &root, &format!("w-{way}")).await?;
    let mut out = Vec::new();
    out.push(sequential(args, ep, &top, args.seq_mib << 20).await?);
    out.push(random(args, ep, &top, stable_how::FILE_SYNC).await?);
    out.push(random(args, ep, &top, stable_how::UNSTABLE).await?);
    out.push(untar(args, ep, &top).await?);
    out.push(qd1(args, ep, &top).await?);
    Ok(out)
}

/// Every client writes a fresh file of `per_client` bytes and commits it.
async fn sequential(args: &Args, ep: &Endpoint, top: &nfs_fh3, per_client: u64) -> Result<Run, String> {
    let clients = connect_all(args, ep).await?;
    let mut files = Vec::new();
    for (i, p) in clients.iter().enumerate() {
        files.push(create(p, top, &format!("seq-{i}"), None).await?);
    }
    let block = Arc::new(pattern(1 << 20, 7));
    let t = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(files)
        .map(|(p, fh)| {
            let (block, outstanding) = (block.clone(), args.outstanding);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut inflight = FuturesUnordered::new();
                let mut off = 0;
                while off < per_client || !inflight.is_empty() {
                    while off < per_client && inflight.len() < outstanding {
                        inflight.push(timed(write(&p, &fh, off, &block, stable_how::UNSTABLE)));
                        off += block.len() as u64;
                    }
                    if let Some(r) = inflight.next().await {
                        lat.push(r?);
                    }
                }
                commit(&p, &fh).await?;
                Ok::<_, String>(lat)
            })
        })
        .collect();
    let lat = join(tasks).await?;
    Ok(Run {
        ops: lat.len() as u64,
        bytes: per_client * args.clients as u64,
        elapsed: t.elapsed(),
        lat,
        skipped: None,
    })
}

/// 4 KiB WRITEs at random offsets of a sparse 64 MiB file per client for
/// `--seconds`; UNSTABLE ones are committed every 64 WRITEs.
async fn random(args: &Args, ep: &Endpoint, top: &nfs_fh3, how: stable_how) -> Result<Run, String> {
    const SPAN: u64 = 64 << 20;
    let clients = connect_all(args, ep).await?;
    let tag = if how == stable_how::FILE_SYNC {
        "sync"
    } else {
        "commit"
    };
    let mut files = Vec::new();
    for (i, p) in clients.iter().enumerate() {
        files.push(create(p, top, &format!("rand-{tag}-{i}"), Some(SPAN)).await?);
    }
    let block = Arc::new(pattern(4096, 3));
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let t = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(files)
        .enumerate()
        .map(|(i, (p, fh))| {
            let (block, outstanding) = (block.clone(), args.outstanding);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut inflight = FuturesUnordered::new();
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
                let mut since_commit = 0;
                loop {
                    while Instant::now() < until && inflight.len() < outstanding {
                        let off = (next(&mut seed) % (SPAN / 4096)) * 4096;
                        inflight.push(timed(write(&p, &fh, off, &block, how)));
                    }
                    match inflight.next().await {
                        Some(r) => lat.push(r?),
                        None => break,
                    }
                    since_commit += 1;
                    if how == stable_how::UNSTABLE && since_commit == 64 {
                        since_commit = 0;
                        commit(&p, &fh).await?;
                    }
                }
                if how == stable_how::UNSTABLE {
                    commit(&p, &fh).await?;
                }
                Ok::<_, String>(lat)
            })
        })
        .collect();
    let lat = join(tasks).await?;
    Ok(Run {
        ops: lat.len() as u64,
        bytes: lat.len() as u64 * 4096,
        elapsed: t.elapsed(),
        lat,
        skipped: None,
    })
}

/// One client unpacks a tree the way tar does over an NFS mount.
async fn untar(args: &Args, ep: &Endpoint, top: &nfs_fh3) -> Result<Run, String> {
    let p = Pipe::connect(ep.nfs).await?;
    let root = mkdir(&p, top, "untar").await?;
    let until = Instant::now() + Duration::from_secs(args.untar_seconds);
    let t = Instant::now();
    let (mut ops, mut bytes, mut lat) = (0u64, 0u64, Vec::new());
    let mut dir = root.clone();
    let mut seed = 42u64;
    for i in 0..args.untar_entries {
        if Instant::now() >= until {
            break;
        }
        let e0 = Instant::now();
        if i % 50 == 0 {
            let name = format!("d{}", i / 50);
            let _ = lookup(&p, &root, &name).await?;
            dir = mkdir(&p, &root, &name).await?;
        } else {
            let name = format!("f{i}");
            // Mostly small files, a few large: about 14 KiB on average.
            let size = (next(&mut seed) % 20_000) as usize + if i % 97 == 0 { 300_000 } else { 0 };
            let _ = lookup(&p, &dir, &name).await?;
            let fh = create(&p, &dir, &name, None).await?;
            let data = pattern(size, i as u64);
            for (k, chunk) in data.chunks(64 << 10).enumerate() {
                write(&p, &fh, (k as u64) << 16, chunk, stable_how::UNSTABLE).await?;
            }
            commit(&p, &fh).await?;
            set_mtime_to(&p, &fh, 1_600_000_000 + i as u32).await?;
            bytes += size as u64;
        }
        ops += 1;
        lat.push(e0.elapsed());
    }
    Ok(Run {
        ops,
        bytes,
        elapsed: t.elapsed(),
        lat,
        skipped: None,
    })
}

/// One client, 4 KiB FILE_SYNC WRITEs one after another.
async fn qd1(args: &Args, ep: &Endpoint, top: &nfs_fh3) -> Result<Run, String> {
    let p = Pipe::connect(ep.nfs).await?;
    let fh = create(&p, top, "qd1", None).await?;
    let block = pattern(4096, 5);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let t = Instant::now();
    let mut lat = Vec::new();
    let mut off = 0;
    while Instant::now() < until {
        lat.push(timed(write(&p, &fh, off, &block, stable_how::FILE_SYNC)).await?);
        off += 4096;
    }
    Ok(Run {
        ops: lat.len() as u64,
        bytes: off,
        elapsed: t.elapsed(),
        lat,
        skipped: None,
    })
}

async fn connect_all(args: &Args, ep: &Endpoint) -> Result<Vec<Arc<Pipe>>, String> {
    let mut out = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        out.push(Arc::new(Pipe::connect(ep.nfs).await?));
    }
    Ok(out)
}

async fn join(
    tasks: Vec<tokio::task::JoinHandle<Result<Vec<Duration>, String>>>,
) -> Result<Vec<Duration>, String> {
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok(lat)
}

async fn timed<F: std::future::Future<Output = Result<(), String>>>(f: F) -> Result<Duration, String> {
    let t = Instant::now();
    f.await?;
    Ok(t.elapsed())
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len).map(|_| next(&mut s) as u8).collect()
}

/// xorshift64: the next pseudo-random number of `s` (never 0).
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn proc(p: nfs3::NFS_PROGRAM) -> u32 {
    p as u32
}

fn dirop<'a>(dir: &nfs_fh3, name: &'a str) -> diropargs3<'a> {
    nfs_client::dirop(dir, name)
}

fn ok<T, E>(r: Nfs3Result<T, E>, what: &str) -> Result<T, String> {
    nfs_client::status(r, what, "")
}

async fn write(p: &Pipe, fh: &nfs_fh3, offset: u64, data: &[u8], stable: stable_how) -> Result<(), String> {
    let args = WRITE3args {
        file: fh.clone(),
        offset,
        count: data.len() as u32,
        stable,
        data: Opaque::borrowed(data),
    };
    // NFS3ERR_JUKEBOX (the dirty quota full) is retried, as a kernel
    // client does (after 100 ms here, not its 5 s); the wait counts.
    let res = loop {
        let r: WRITE3res = p.call(proc(nfs3::NFS_PROGRAM::NFSPROC3_WRITE), &args).await?;
        match r {
            Nfs3Result::Err((nfs3::nfsstat3::NFS3ERR_JUKEBOX, _)) => {
                JUKEBOX.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => break ok(r, "WRITE")?,
        }
    };
    if res.count as usize != data.len() {
        return Err(format!(
            "WRITE at {offset}: {} of {} bytes written",
            res.count,
            data.len()
        ));
    }
    Ok(())
}

async fn commit(p: &Pipe, fh: &nfs_fh3) -> Result<(), String> {
    let args = COMMIT3args {
        file: fh.clone(),
        offset: 0,
        count: 0,
    };
    let r: COMMIT3res = p.call(proc(nfs3::NFS_PROGRAM::NFSPROC3_COMMIT), &args).await?;
    ok(r, "COMMIT").map(drop)
}

/// Whether `name` exists in `dir` (tar looks before it makes).
async fn lookup(p: &Pipe, dir: &nfs_fh3, name: &str) -> Result<bool, String> {
    let args = LOOKUP3args {
        what: dirop(dir, name),
    };
    let r: LOOKUP3res = p.call(proc(nfs3::NFS_PROGRAM::NFSPROC3_LOOKUP), &args).await?;
    Ok(matches!(r, Nfs3Result::Ok(_)))
}

/// CREATE (unchecked, mode 0644), sized to `size` when given (sparse).
async fn create(p: &Pipe, dir: &nfs_fh3, name: &str, size: Option<u64>) -> Result<nfs_fh3, String> {
    let attrs = sattr3 {
        mode: Nfs3Option::Some(0o644),
        size: Nfs3Option::Some(size.unwrap_or(0)),
        ..Default::default()
    };
    let args = CREATE3args {
        where_: dirop(dir, name),
        how: createhow3::UNCHECKED(attrs),
    };
    let r: CREATE3res = p.call(proc(nfs3::NFS_PROGRAM::NFSPROC3_CREATE), &args).await?;
    match ok(r, "CREATE")?.obj {
        Nfs3Option::Some(fh) => Ok(fh),
        Nfs3Option::None => Err(format!("CREATE {name}: no handle in the reply")),
    }
}

async fn mkdir(p: &Pipe, dir: &nfs_fh3, name: &str) -> Result<nfs_fh3, String> {
    let args = MKDIR3args {
        where_: dirop(dir, name),
        attributes: sattr3 {
            mode: Nfs3Option::Some(0o755),
            ..Default::default()
        },
    };
    let r: MKDIR3res = p.call(proc(nfs3::NFS_PROGRAM::NFSPROC3_MKDIR), &args).await?;
    match ok(r, "MKDIR")?.obj {
        Nfs3Option::Some(fh) => Ok(fh),
        Nfs3Option::None => Err(format!("MKDIR {name}: no handle in the reply")),
    }
}

async fn set_mtime_to(p: &Pipe, fh: &nfs_fh3, seconds: u32) -> Result<(), String> {
    let args = SETATTR3args {
        object: fh.clone(),
        new_attributes: sattr3 {
            mtime: set_mtime::SET_TO_CLIENT_TIME(nfstime3 { seconds, nseconds: 0 }),
            ..Default::default()
        },
        guard: Default::default(),
    };
    let r: SETATTR3res = p.call(proc(nfs3::NFS_PROGRAM::NFSPROC3_SETATTR), &args).await?;
    ok(r, "SETATTR").map(drop)
}

fn p99_us(r: &Run) -> f64 {
    percentile(&r.lat, 99.0).as_secs_f64() * 1e6
}

/// A table row: what, its unit, its rate from a run.
type Row = (&'static str, &'static str, fn(&Run) -> f64);

fn print_table(results: &[(String, Vec<Run>)]) {
    let find = |label: &str| results.iter().find(|(l, _)| l == label).map(|(_, r)| r);
    let (direct, local) = (find("direct"), find("local limit"));
    let rows: [Row; 5] = [
        ("1 MiB sequential writes + COMMIT", "MB/s", |r| {
            r.per_sec(r.bytes) / 1e6
        }),
        ("4 KiB random writes, FILE_SYNC", "IOPS", |r| r.per_sec(r.ops)),
        ("4 KiB random writes, UNSTABLE + COMMIT", "IOPS", |r| {
            r.per_sec(r.ops)
        }),
        ("untar", "entries/s", |r| r.per_sec(r.ops)),
        ("4 KiB FILE_SYNC writes at QD 1", "IOPS", |r| r.per_sec(r.ops)),
    ];
    let mut t = Table::new([
        "workload",
        "way",
        "rate",
        "× direct",
        "× local limit",
        "mean µs",
        "p99 µs",
    ]);
    for (w, (what, unit, rate)) in rows.iter().enumerate() {
        for (label, runs) in results {
            let r = &runs[w];
            if r.skipped.is_some() {
                t.cells(vec![
                    what.to_string(),
                    label.clone(),
                    "n/a (not run)".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                continue;
            }
            let ratio = |base: Option<&Vec<Run>>| {
                base.map(|b| &b[w])
                    .filter(|b| b.skipped.is_none())
                    .map_or("-".into(), |b| format!("{:.2}", rate(r) / rate(b).max(1e-9)))
            };
            let mean = r.lat.iter().sum::<Duration>().as_secs_f64() * 1e6 / r.lat.len().max(1) as f64;
            t.cells(vec![
                what.to_string(),
                label.clone(),
                format!("{:.0} {unit}", rate(r)),
                ratio(direct),
                ratio(local),
                format!("{mean:.0}"),
                format!("{:.0}", p99_us(r)),
            ]);
        }
    }
    println!();
    for (label, runs) in results {
        if let Some(why) = runs.first().and_then(|r| r.skipped.as_ref()) {
            println!("{label} not run: {why}\n");
        }
    }
    t.print();
}
