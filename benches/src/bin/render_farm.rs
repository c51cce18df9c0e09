//! The "render farm" benchmark (issue 4): why a cache in front of a NAS a WAN
//! hop away wins. Many render nodes (userspace NFSv3 clients, one TCP
//! connection each, several READs in flight) all read the same shared data
//! set after walking its tree (READDIRPLUS, then LOOKUP and GETATTR of every
//! file), from nfs-ganesha behind a delay proxy with a bandwidth cap. Three
//! ways in one run, at each RTT:
//! - direct: every client reads ganesha through the proxy;
//! - Weir cold: the clients read a fresh `weir serve` whose core filer is
//!   ganesha through the same proxy;
//! - Weir warm: the same Weir, a second pass.
//!
//! Every byte read is checked against the blake3 of its file, computed once
//! on the host, so a fast wrong answer cannot win. Upstream bytes come from
//! the proxy's counters and from Weir's own metrics.
//!
//! `cargo run --release -p benches --bin render_farm -- [--rtt-ms 2,20,100]`
//! (see benches/README.md).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::nfs_client::nfs3_types::nfs3::{cookieverf3, nfs_fh3, READDIRPLUS3args};
use benches::nfs_client::{self, Conn, Endpoint, Pipe};
use benches::weir_serve::WeirServe;
use benches::{make_file_seeded, Table};
use clap::Parser;
use futures::stream::{FuturesOrdered, StreamExt};
use testbed::ganesha::Ganesha;
use testbed::{DelayProxy, Link};

#[derive(Parser)]
struct Args {
    /// Scratch directory: `export/` (the data set ganesha exports), `work/`.
    #[arg(long, default_value = "target/bench-render")]
    dir: PathBuf,
    /// Round-trip times to run at, in milliseconds (half each way).
    #[arg(long, value_delimiter = ',', default_value = "2,20,100")]
    rtt_ms: Vec<u64>,
    /// Bandwidth cap of the link, each way, in Mbit/s (shared by every connection).
    #[arg(long, default_value_t = 1000)]
    bandwidth_mbit: u64,
    /// Concurrent clients (render nodes), each with its own TCP connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Files in the data set, spread over `--dirs` directories.
    #[arg(long, default_value_t = 96)]
    files: usize,
    /// Directories the files sit in.
    #[arg(long, default_value_t = 4)]
    dirs: usize,
    /// Size of each file, MiB.
    #[arg(long, default_value_t = 2)]
    file_mib: u64,
    /// Size of each READ, KiB.
    #[arg(long, default_value_t = 256)]
    read_kib: u32,
    /// READs each client keeps in flight.
    #[arg(long, default_value_t = 4)]
    outstanding: usize,
    /// ganesha's NFS port.
    #[arg(long, default_value_t = 20790)]
    ganesha_port: u16,
    /// ganesha's MOUNT port (reached directly, not through the proxy).
    #[arg(long, default_value_t = 20780)]
    ganesha_mount_port: u16,
    /// Port of the Weir server this driver starts (NFS and MOUNT).
    #[arg(long, default_value_t = 20791)]
    weir_port: u16,
    /// The weir binary [default: `weir` beside this binary, else target/release/weir].
    #[arg(long)]
    weir_cmd: Option<PathBuf>,
    /// RAM tier of Weir (must hold the data set; the NVMe tier is off).
    #[arg(long, default_value = "2GiB")]
    weir_memory: String,
    /// Shards of Weir [default: one per core].
    #[arg(long)]
    weir_shards: Option<usize>,
}

/// One file of the data set, as the host sees it.
struct File {
    dir: String,
    name: String,
    size: u64,
    hash: blake3::Hash,
}

/// What one way (direct, cold, warm) did at one RTT.
#[derive(Clone, Copy, Default)]
struct Pass {
    /// Until every client had walked the tree.
    walk: Duration,
    /// From then until every client had read every file.
    read: Duration,
    /// Bytes the clients read (and verified).
    bytes: u64,
    /// Bytes the proxy delivered from ganesha during the pass.
    upstream: u64,
    /// Bytes Weir's core filer read (its metrics), for passes through Weir.
    weir_filer: Option<u64>,
}

impl Pass {
    fn wall(&self) -> Duration {
        self.walk + self.read
    }

    fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.read.as_secs_f64().max(1e-9)
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("render_farm: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.clients == 0 || args.files == 0 || args.dirs == 0 || args.outstanding == 0 {
        return Err("--clients, --files, --dirs and --outstanding must be at least 1".into());
    }
    let export = args.dir.join("export");
    let work = args.dir.join("work");
    for d in [&export, &work] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let export = std::fs::canonicalize(&export).map_err(|e| e.to_string())?;
    let files = Arc::new(make_data_set(args, &export)?);
    let set_bytes: u64 = files.iter().map(|f| f.size).sum();
    let weir_cmd = args.weir_cmd.clone().unwrap_or_else(benches::default_weir_cmd);
    if !weir_cmd.exists() {
        return Err(format!(
            "{} not found; cargo build --release -p appliance",
            weir_cmd.display()
        ));
    }

    let ganesha = Ganesha::start(
        &export,
        &work.join("ganesha"),
        args.ganesha_port,
        args.ganesha_mount_port,
    )?;
    let bandwidth = args.bandwidth_mbit * 1_000_000 / 8;
    let proxy = DelayProxy::start(ganesha.nfs, Link::new(Duration::ZERO, Some(bandwidth)))
        .map_err(|e| format!("delay proxy: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    println!(
        "render farm: {} clients (one TCP connection each, {} READs of {} KiB in flight) each \
         read all {} files × {} MiB = {} MiB in {} directories, after walking the tree \
         (READDIRPLUS, LOOKUP + GETATTR of every file); link {} Mbit/s each way; ganesha {} \
         behind a delay proxy on {}; Weir {} (RAM tier {}, no NVMe tier)",
        args.clients,
        args.outstanding,
        args.read_kib,
        args.files,
        args.file_mib,
        set_bytes >> 20,
        args.dirs,
        args.bandwidth_mbit,
        ganesha.nfs,
        proxy.addr(),
        weir_cmd.display(),
        args.weir_memory,
    );

    let mut results = Vec::new();
    for &rtt_ms in &args.rtt_ms {
        let rtt = Duration::from_millis(rtt_ms);
        proxy.set_link(Link::new(rtt, Some(bandwidth)));
        let direct_ep = Endpoint {
            nfs: proxy.addr(),
            mount_port: ganesha.mount_port,
        };
        warm_page_cache(&export, &files);
        let direct = measure(&rt, args, &direct_ep, &files, &proxy, None)?;
        report("direct", rtt_ms, &direct);

        let weir = start_weir(args, &weir_cmd, &work, &proxy, ganesha.mount_port)?;
        warm_page_cache(&export, &files);
        let cold = measure(&rt, args, &weir.ep, &files, &proxy, Some(&weir))?;
        report("Weir cold", rtt_ms, &cold);
        let warm = measure(&rt, args, &weir.ep, &files, &proxy, Some(&weir))?;
        report("Weir warm", rtt_ms, &warm);
        drop(weir);
        results.push((rtt_ms, direct, cold, warm));
    }

    println!();
    print_table(args, set_bytes, &results);
    Ok(())
}

/// `--files` files of `--file-mib` in `--dirs` directories under `export`,
/// each with contents of its own, and their blake3 (computed once here).
fn make_data_set(args: &Args, export: &Path) -> Result<Vec<File>, String> {
    let size = args.file_mib << 20;
    let t = Instant::now();
    let mut files = Vec::with_capacity(args.files);
    for i in 0..args.files {
        let dir = format!("shots{:02}", i % args.dirs);
        let name = format!("frame{i:05}.exr");
        let d = export.join(&dir);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        let path = d.join(&name);
        make_file_seeded(&path, size, 0x9e37_79b9_7f4a_7c15 ^ i as u64);
        let mut hasher = blake3::Hasher::new();
        std::fs::File::open(&path)
            .and_then(|h| hasher.update_reader(h).map(drop))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(File {
            dir,
            name,
            size,
            hash: hasher.finalize(),
        });
    }
    eprintln!(
        "data set ready in {}: {} files, hashed in {:.1} s",
        export.display(),
        files.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(files)
}

/// ganesha serves from the host page cache, which this VM drops when idle.
fn warm_page_cache(export: &Path, files: &[File]) {
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        if let Ok(mut h) = std::fs::File::open(export.join(&f.dir).join(&f.name)) {
            while h.read(&mut buf).is_ok_and(|n| n > 0) {}
        }
    }
}

/// One pass of every client over the data set at `ep`.
fn measure(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    ep: &Endpoint,
    files: &Arc<Vec<File>>,
    proxy: &DelayProxy,
    weir: Option<&WeirServe>,
) -> Result<Pass, String> {
    let filer_before = weir.map(filer_read_bytes).transpose()?;
    let up_before = proxy.bytes_from_target();
    let mut pass = rt.block_on(farm(args, ep, files))?;
    pass.upstream = proxy.bytes_from_target() - up_before;
    if let (Some(w), Some(before)) = (weir, filer_before) {
        pass.weir_filer = Some(filer_read_bytes(w)? - before);
    }
    Ok(pass)
}

/// Every client connects, then all walk the tree at once, then (once all
/// walked) all read every file in an order of their own.
async fn farm(args: &Args, ep: &Endpoint, files: &Arc<Vec<File>>) -> Result<Pass, String> {
    let n = args.clients;
    let start = Arc::new(tokio::sync::Barrier::new(n + 1));
    let walked = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut tasks = Vec::with_capacity(n);
    for client in 0..n {
        let (ep, files, start, walked) = (ep.clone(), files.clone(), start.clone(), walked.clone());
        let (read_size, outstanding) = (args.read_kib << 10, args.outstanding);
        tasks.push(tokio::spawn(async move {
            let conn = async {
                let c = nfs_client::connect(&ep).await?;
                let p = Pipe::connect(ep.nfs).await?;
                Ok::<_, String>((c, p))
            }
            .await;
            start.wait().await;
            let (mut conn, pipe) = match conn {
                Ok(c) => c,
                Err(e) => {
                    walked.wait().await;
                    return Err(format!("client {client}: {e}"));
                }
            };
            let handles = walk(&mut conn, &files).await;
            walked.wait().await;
            let handles = handles.map_err(|e| format!("client {client}: {e}"))?;
            let mut bytes = 0;
            for i in order(client, files.len()) {
                let f = &files[i];
                bytes += read_verified(&pipe, &handles[i], f, read_size, outstanding)
                    .await
                    .map_err(|e| format!("client {client}: {}/{}: {e}", f.dir, f.name))?;
            }
            Ok::<u64, String>(bytes)
        }));
    }
    start.wait().await;
    let t = Instant::now();
    walked.wait().await;
    let walk = t.elapsed();
    let mut bytes = 0;
    let mut first_err = None;
    for t in tasks {
        match t.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(b) => bytes += b,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let read = t.elapsed() - walk;
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(Pass {
        walk,
        read,
        bytes,
        ..Pass::default()
    })
}

/// The metadata walk: READDIRPLUS of the root and of each directory, then
/// LOOKUP and GETATTR of every file, one call at a time. Returns the
/// handles of `files`, in order, after checking every file is listed with
/// its size.
async fn walk(c: &mut Conn, files: &[File]) -> Result<Vec<nfs_fh3>, String> {
    let root = c.root_nfs_fh3();
    let top = readdirplus(c, &root).await?;
    let mut dirs: Vec<&str> = files.iter().map(|f| f.dir.as_str()).collect();
    dirs.sort_unstable();
    dirs.dedup();
    let mut dir_fh = HashMap::new();
    for d in dirs {
        if !top.iter().any(|n| n == d) {
            return Err(format!("READDIRPLUS of the root does not list {d}"));
        }
        let fh = nfs_client::lookup(c, &root, d).await?;
        let listed = readdirplus(c, &fh).await?;
        if let Some(f) = files.iter().find(|f| f.dir == d && !listed.contains(&f.name)) {
            return Err(format!("READDIRPLUS of {d} does not list {}", f.name));
        }
        dir_fh.insert(d.to_string(), fh);
    }
    let mut handles = Vec::with_capacity(files.len());
    for f in files {
        let fh = nfs_client::lookup(c, &dir_fh[&f.dir], &f.name).await?;
        let attr = nfs_client::getattr(c, &fh).await?;
        if attr.size != f.size {
            return Err(format!(
                "{}/{}: size {} instead of {}",
                f.dir, f.name, attr.size, f.size
            ));
        }
        handles.push(fh);
    }
    Ok(handles)
}

/// Names in a directory (READDIRPLUS, every page).
async fn readdirplus(c: &mut Conn, dir: &nfs_fh3) -> Result<Vec<String>, String> {
    let (mut cookie, mut verf) = (0u64, cookieverf3::default());
    let mut names = Vec::new();
    loop {
        let r = c
            .readdirplus(&READDIRPLUS3args {
                dir: dir.clone(),
                cookie,
                cookieverf: verf,
                dircount: 8192,
                maxcount: 65536,
            })
            .await
            .map_err(nfs_client::err("READDIRPLUS", ""))?;
        let ok = nfs_client::status(r, "READDIRPLUS", "")?;
        verf = ok.cookieverf;
        let entries = ok.reply.entries.0;
        names.extend(
            entries
                .iter()
                .map(|e| String::from_utf8_lossy(&e.name.0).into_owned())
                .filter(|n| n != "." && n != ".."),
        );
        match entries.last() {
            Some(e) if !ok.reply.eof => cookie = e.cookie,
            _ => return Ok(names),
        }
    }
}

/// The order client `client` reads `n` files in: a shuffle of its own.
fn order(client: usize, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut s = 0x2545_f491_4f6c_dd1d_u64 ^ (client as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

/// Read `f` whole with `outstanding` READs in flight, hash what came back in
/// order and compare it with the host's hash. Returns the bytes read.
async fn read_verified(
    pipe: &Pipe,
    fh: &nfs_fh3,
    f: &File,
    read_size: u32,
    outstanding: usize,
) -> Result<u64, String> {
    let mut hasher = blake3::Hasher::new();
    let mut next = 0u64; // next offset to ask for
    let mut done = 0u64; // bytes hashed so far
    let mut inflight = FuturesOrdered::new();
    loop {
        while inflight.len() < outstanding && next < f.size {
            let count = (f.size - next).min(u64::from(read_size)) as u32;
            inflight.push_back(async move { (next, count, pipe.read(fh, next, count).await) });
            next += u64::from(count);
        }
        let Some((offset, count, r)) = inflight.next().await else {
            break;
        };
        let (mut data, _) = r?;
        // A short answer: ask for the rest, in order, before going on.
        while data.len() < count as usize {
            let at = offset + data.len() as u64;
            let (more, eof) = pipe.read(fh, at, count - data.len() as u32).await?;
            if more.is_empty() {
                return Err(format!(
                    "{} bytes short at {at} (eof {eof})",
                    count as usize - data.len()
                ));
            }
            data.extend_from_slice(&more);
        }
        hasher.update(&data[..count as usize]);
        done += u64::from(count);
    }
    if hasher.finalize() != f.hash {
        return Err("the data read differs from the file's (blake3 mismatch)".into());
    }
    Ok(done)
}

/// A `weir serve` whose core filer is ganesha through the proxy, with a
/// fresh data dir (so a cold cache).
fn start_weir(
    args: &Args,
    cmd: &Path,
    work: &Path,
    proxy: &DelayProxy,
    mount_port: u16,
) -> Result<WeirServe, String> {
    let url = format!(
        "nfs://127.0.0.1:{}/export?mountport={mount_port}",
        proxy.addr().port()
    );
    let mut extra = vec![
        "--config".to_string(),
        benches::weir_bench_config(work).display().to_string(),
        "--core-filer".into(),
        url,
        "--memory".into(),
        args.weir_memory.clone(),
        "--cache-size".into(),
        "0".into(),
    ];
    extra.extend(args.weir_shards.map(|n| format!("--shards={n}")));
    WeirServe::start(cmd, work, "weir", args.weir_port, &extra)
}

/// Bytes Weir read from its core filer, summed over shards.
fn filer_read_bytes(w: &WeirServe) -> Result<u64, String> {
    Ok(w.metric("weir_filer_read_bytes_total")? as u64)
}

fn report(way: &str, rtt_ms: u64, p: &Pass) {
    eprintln!(
        "{rtt_ms} ms {way}: walk {:.2} s, read {:.2} s ({:.0} MB/s), upstream {} MiB{}",
        p.walk.as_secs_f64(),
        p.read.as_secs_f64(),
        p.mbps(),
        p.upstream >> 20,
        p.weir_filer
            .map(|b| format!(", Weir filer reads {} MiB", b >> 20))
            .unwrap_or_default()
    );
}

fn print_table(args: &Args, set_bytes: u64, results: &[(u64, Pass, Pass, Pass)]) {
    let secs = |d: Duration| format!("{:.2}", d.as_secs_f64());
    let mut t = Table::new([
        "RTT",
        "way",
        "wall s (walk + read)",
        "walk s",
        "read s",
        "aggregate MB/s",
        "× faster than direct (wall)",
        "target",
        "upstream / data set (proxy)",
        "upstream / data set (Weir metrics)",
    ]);
    for (rtt, direct, cold, warm) in results {
        let set = set_bytes as f64;
        let ways = [
            ("direct", direct, "-", None),
            ("Weir cold", cold, "≥ 3×", Some(3.0)),
            ("Weir warm", warm, "≥ 10×", Some(10.0)),
        ];
        for (way, p, target, need) in ways {
            let speedup = direct.wall().as_secs_f64() / p.wall().as_secs_f64().max(1e-9);
            let verdict = match need {
                Some(n) if speedup >= n => format!("{target} met"),
                Some(_) => format!("{target} MISSED"),
                None => "-".into(),
            };
            t.cells(vec![
                format!("{rtt} ms"),
                way.into(),
                secs(p.wall()),
                secs(p.walk),
                secs(p.read),
                format!("{:.0}", p.mbps()),
                format!("{speedup:.1}"),
                verdict,
                format!("{:.3}", p.upstream as f64 / set),
                p.weir_filer
                    .map_or("-".into(), |b| format!("{:.3}", b as f64 / set)),
            ]);
        }
        // Cold and warm together: what caching the data set cost upstream.
        let proxy = (cold.upstream + warm.upstream) as f64 / set;
        let filer = (cold.weir_filer.unwrap_or(0) + warm.weir_filer.unwrap_or(0)) as f64 / set;
        let ok = |r: f64| if r <= 1.05 { "met" } else { "MISSED" };
        t.cells(vec![
            format!("{rtt} ms"),
            "Weir cold + warm upstream".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("≤ 1.05: proxy {}, metrics {}", ok(proxy), ok(filer)),
            format!("{proxy:.3}"),
            format!("{filer:.3}"),
        ]);
    }
    println!(
        "{} clients × {} MiB data set ({} files), {} Mbit/s link; every byte verified (blake3)",
        args.clients,
        set_bytes >> 20,
        args.files,
        args.bandwidth_mbit
    );
    t.print();
}
