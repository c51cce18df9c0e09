//! Weir's NFSv3 front end vs nfs-ganesha 4.3 (FSAL_VFS) over the same
//! directory, same machine, same clients, one run:
//! - fio's `nfs` engine (libnfs): 4 KiB random read (QD 32 × 2 jobs), 1 MiB
//!   sequential read, 4 KiB random write and 1 MiB sequential write to fresh
//!   files: IOPS or MB/s, mean and p99 completion latency, disk reads;
//! - iperf3 over loopback: the ceiling for sequential reads;
//! - metadata at queue depth 1 (crates.io `nfs3_client`): create, GETATTR,
//!   LOOKUP, READDIRPLUS and remove of 10,000 empty files in a fresh directory.
//!
//! Contenders alternate in short slices (this machine's speed drifts).
//! Without a Weir NFS server answering, its column reads n/a.
//!
//! `cargo run --release -p benches --bin nfs_vs_ganesha -- [--seconds N] [--rounds N]`
//! (see benches/README.md).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use benches::fio_nfs::{self, Files, NfsJob, NfsResult};
use benches::nfs_client::{self, Endpoint, OpStats, META_OPS};
use benches::{iperf, make_file, Table};
use clap::Parser;
use testbed::ganesha::Ganesha;
use testbed::process::{self, Guard};

#[derive(Parser)]
struct Args {
    /// Scratch directory: `export/` (the data both servers serve), `work/`.
    #[arg(long, default_value = "target/bench-nfs")]
    dir: PathBuf,
    /// Files the random read job reads (pre-created); the sequential read
    /// job's processes read one each (so at least 2).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..))]
    files: u64,
    /// Size of each read file.
    #[arg(long, default_value_t = 256)]
    file_mib: u64,
    /// Seconds per fio slice (one contender, one workload).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Slices per contender and workload, alternating contenders.
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Files of the metadata workload (each round, per contender).
    #[arg(long, default_value_t = 10_000)]
    meta_files: usize,
    /// Rounds of the metadata workload (a fresh directory each).
    #[arg(long, default_value_t = 1)]
    meta_rounds: usize,
    /// Files per metadata slice: servers alternate after each.
    #[arg(long, default_value_t = 500)]
    meta_chunk: usize,
    /// ganesha's NFS port.
    #[arg(long, default_value_t = 20690)]
    ganesha_port: u16,
    /// ganesha's MOUNT port.
    #[arg(long, default_value_t = 20680)]
    ganesha_mount_port: u16,
    /// Port of the Weir server this driver starts (NFS, MOUNT and NLM).
    #[arg(long, default_value_t = 20691)]
    weir_port: u16,
    /// Use an already running Weir at HOST:PORT instead of starting one.
    #[arg(long, value_name = "HOST:PORT")]
    weir_addr: Option<SocketAddr>,
    /// MOUNT port of that server, when not its NFS port.
    #[arg(long)]
    weir_mount_port: Option<u16>,
    /// The weir binary to start, or `none` for no Weir column
    /// [default: `weir` beside this binary, else target/release/weir].
    #[arg(long)]
    weir_cmd: Option<String>,
    /// RAM tier of the Weir this driver starts (holds the data set: hot cache).
    #[arg(long, default_value = "2GiB")]
    weir_memory: String,
    /// Shards of the Weir this driver starts [default: one per core].
    #[arg(long)]
    weir_shards: Option<usize>,
    /// A config file for the Weir this driver starts (its flags still apply);
    /// by default one exporting /export as ganesha does (no root squash, any
    /// port). One given here must say the same for the runs to compare.
    #[arg(long, value_name = "FILE")]
    weir_config: Option<PathBuf>,
    /// Skip the fio workloads (and iperf3): metadata only.
    #[arg(long)]
    meta_only: bool,
    /// CPU-bound processes kept running beside the servers during the
    /// metadata workload: a machine that is busy with something else.
    #[arg(long, default_value_t = 0)]
    meta_busy: usize,
    /// CPU the metadata client runs on (a number or `last`), or `none`. On
    /// loopback a QD 1 call costs what waking the other side costs: about
    /// 12 µs when the client shares the serving shard's core, 30 µs when
    /// it does not, so unpinned runs swing between the two.
    #[arg(long, default_value = "none")]
    meta_client_cpu: String,
    /// Loopback port for iperf3.
    #[arg(long, default_value_t = 20681)]
    iperf_port: u16,
    /// Seconds of each iperf3 run (one per round).
    #[arg(long, default_value_t = 3)]
    iperf_seconds: u64,
    /// fio built with the nfs engine [default: built once into ~/.cache/weir-bench].
    #[arg(long)]
    fio_nfs: Option<PathBuf>,
    /// Seconds a fio job process may sit idle after its run time before it
    /// counts as hung in nfs_umount and is ended.
    #[arg(long, default_value_t = 5)]
    umount_grace: u64,
}

/// One server under test.
struct Contender {
    label: &'static str,
    ep: Endpoint,
    /// For disk reads per job.
    pid: Option<u32>,
    /// ganesha serves from the host page cache, which this VM drops when idle.
    warm_page_cache: bool,
}

#[derive(Clone, Copy)]
enum Unit {
    Iops,
    Mbps,
}

struct Workload {
    what: &'static str,
    rw: &'static str,
    bs: &'static str,
    iodepth: usize,
    numjobs: usize,
    unit: Unit,
    target: &'static str,
    /// Weir / ganesha needed.
    need: f64,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        what: "4 KiB random read, QD 32 × 2 jobs (IOPS)",
        rw: "randread",
        bs: "4k",
        iodepth: 32,
        numjobs: 2,
        unit: Unit::Iops,
        target: "≥ 2×",
        need: 2.0,
    },
    Workload {
        what: "1 MiB sequential read, QD 4 × 2 jobs (MB/s)",
        rw: "read",
        bs: "1M",
        iodepth: 4,
        numjobs: 2,
        unit: Unit::Mbps,
        target: "≥ 1.2× or ≥ 90% of iperf3",
        need: 1.2,
    },
    Workload {
        what: "4 KiB random write, fresh files, QD 32 × 2 jobs (IOPS)",
        rw: "randwrite",
        bs: "4k",
        iodepth: 32,
        numjobs: 2,
        unit: Unit::Iops,
        target: "≥ 1×",
        need: 1.0,
    },
    Workload {
        what: "1 MiB sequential write, fresh files, QD 4 × 2 jobs (MB/s)",
        rw: "write",
        bs: "1M",
        iodepth: 4,
        numjobs: 2,
        unit: Unit::Mbps,
        target: "≥ 1×",
        need: 1.0,
    },
];

/// Bytes of each fresh file a write job uses.
const WRITE_FILE: u64 = 256 << 20;

fn read_names(n: u64) -> Vec<String> {
    (0..n).map(|i| format!("read.{i}")).collect()
}

/// Read the files through the local file system: the page cache ganesha
/// serves from.
fn warm_page_cache(dir: &Path, names: &[String]) {
    let mut buf = vec![0u8; 1 << 20];
    for n in names {
        let mut f = std::fs::File::open(dir.join(n)).expect("read file");
        while std::io::Read::read(&mut f, &mut buf).expect("read") > 0 {}
    }
}

/// Weir as a contender, if one answers: the server at `--weir-addr`, or
/// one started here. The guard stops the one started here.
fn weir(args: &Args, export: &Path, work: &Path) -> (Option<Contender>, Option<Guard>, String) {
    if let Some(addr) = args.weir_addr {
        let ep = Endpoint {
            nfs: addr,
            mount_port: args.weir_mount_port.unwrap_or(addr.port()),
        };
        return if process::answers(addr) {
            let c = Contender {
                label: "weir",
                ep,
                pid: None,
                warm_page_cache: false,
            };
            (Some(c), None, format!("Weir: the server at {addr}"))
        } else {
            (
                None,
                None,
                format!("Weir: not available (nothing answers at {addr})"),
            )
        };
    }
    let cmd = match args.weir_cmd.as_deref() {
        Some("none") => return (None, None, "Weir: not available (--weir-cmd none)".into()),
        Some(c) => PathBuf::from(c),
        None => benches::default_weir_cmd(),
    };
    if !cmd.exists() {
        let why = format!("{} not found; cargo build --release -p appliance", cmd.display());
        return (None, None, format!("Weir: not available ({why})"));
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], args.weir_port));
    if process::answers(addr) {
        let why = format!("port {} is in use: pick another with --weir-port", args.weir_port);
        return (None, None, format!("Weir: not available ({why})"));
    }
    let data_dir = work.join("weir-data");
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).unwrap();
    let log = std::fs::File::create(work.join("weir.log")).unwrap();
    let config = match &args.weir_config {
        Some(c) => c.clone(),
        None => benches::weir_bench_config(work),
    };
    let child = Command::new(&cmd)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--origin")
        .arg(export)
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--nfs-listen")
        .arg(addr.to_string())
        // Loopback only, and no fixed SMB port (others run servers here).
        .args(["--metrics-listen", "127.0.0.1:0", "--smb-listen", "127.0.0.1:0"])
        .args(["--memory", &args.weir_memory])
        .args(args.weir_shards.map(|n| format!("--shards={n}")))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn();
    let mut guard = match child {
        Ok(c) => Guard::new("weir serve", c),
        Err(e) => {
            return (
                None,
                None,
                format!("Weir: not available ({}: {e})", cmd.display()),
            )
        }
    };
    if !process::wait_port(addr, Duration::from_secs(20), || guard.running()) {
        let why = if guard.running() {
            format!("its NFS port {} does not answer", args.weir_port)
        } else {
            "it exited at start".into()
        };
        guard.stop(Duration::from_secs(5));
        let log = work.join("weir.log");
        return (
            None,
            None,
            format!("Weir: not available ({why}; log: {})", log.display()),
        );
    }
    let c = Contender {
        label: "weir",
        ep: Endpoint {
            nfs: addr,
            mount_port: addr.port(),
        },
        pid: Some(guard.pid()),
        warm_page_cache: false,
    };
    let note = format!("Weir: {} serve on {addr} (pid {})", cmd.display(), guard.pid());
    (Some(c), Some(guard), note)
}

/// What one contender did in one workload, summed over slices.
#[derive(Default, Clone, Copy)]
struct Sum {
    r: NfsResult,
    disk: Option<u64>,
}

/// Pins the calling thread to `cpu` (`last`, a number, or `none`) until
/// the guard drops, when it may run anywhere again.
fn pin_client(cpu: &str) -> Result<Option<PinGuard>, String> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = match cpu {
        "none" => return Ok(None),
        "last" => n - 1,
        c => c
            .parse()
            .map_err(|_| format!("--meta-client-cpu {c}: not a CPU number, `last` or `none`"))?,
    };
    // SAFETY: `before` is a plain bitmask the kernel fills in.
    let mut before: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid cpu_set_t of the size given, for this thread (0).
    unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut before) };
    set_affinity(&[cpu])?;
    Ok(Some(PinGuard(before)))
}

struct PinGuard(libc::cpu_set_t);

impl Drop for PinGuard {
    fn drop(&mut self) {
        // SAFETY: the mask read before pinning, for this thread.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
    }
}

fn set_affinity(cpus: &[usize]) -> Result<(), String> {
    // SAFETY: a plain bitmask, filled with CPU_SET below.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: CPU_SET bounds-checks `c` against the mask's size.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: a valid cpu_set_t of the size given, for this thread (0).
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(format!(
            "pinning the metadata client to CPU {cpus:?}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("nfs_vs_ganesha: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let export = args.dir.join("export");
    let work = args.dir.join("work");
    std::fs::create_dir_all(&export).map_err(|e| format!("{}: {e}", export.display()))?;
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let export = std::fs::canonicalize(&export).unwrap();
    let names = read_names(args.files);
    let file_size = args.file_mib << 20;
    for n in &names {
        make_file(&export.join(n), file_size);
    }
    let fio = fio_nfs::binary(args.fio_nfs.as_deref())?;

    let ganesha = Ganesha::start(
        &export,
        &work.join("ganesha"),
        args.ganesha_port,
        args.ganesha_mount_port,
    )?;
    let (weir, _weir_guard, weir_note) = weir(args, &export, &work);
    eprintln!("{weir_note}");
    eprintln!(
        "ganesha: {} (pid {}, log {})",
        ganesha.nfs,
        ganesha.pid(),
        ganesha.log.display()
    );
    let g = Contender {
        label: "ganesha",
        ep: Endpoint {
            nfs: ganesha.nfs,
            mount_port: ganesha.mount_port,
        },
        pid: Some(ganesha.pid()),
        warm_page_cache: true,
    };
    let contenders: Vec<&Contender> = weir.iter().chain([&g]).collect();

    // One client connection per contender for setup: warm, make and remove files.
    let rt = nfs_client::runtime();
    let mut conns = Vec::new();
    for c in &contenders {
        let mut conn = rt.block_on(nfs_client::connect(&c.ep))?;
        let t = Instant::now();
        let mut bytes = 0;
        for n in &names {
            bytes += rt.block_on(nfs_client::read_file(&mut conn, n))?;
        }
        eprintln!(
            "warmed {}: {} MiB in {:.1} s",
            c.label,
            bytes >> 20,
            t.elapsed().as_secs_f64()
        );
        conns.push(conn);
    }

    let mut sums: Vec<Vec<Sum>> = vec![vec![Sum::default(); contenders.len()]; WORKLOADS.len()];
    // iperf3 runs once per round, beside the servers' slices: its mean is
    // the loopback ceiling of this run.
    let mut iperf: Result<f64, String> = Ok(0.0);
    let fio_rounds = if args.meta_only { 0 } else { args.rounds };
    if args.meta_only {
        iperf = Err("skipped (--meta-only)".into());
    }
    for round in 0..fio_rounds {
        if let Ok(sum) = &mut iperf {
            match iperf::loopback(args.iperf_port, args.iperf_seconds, 1) {
                Ok(b) => *sum += b / args.rounds as f64,
                Err(e) => {
                    eprintln!("iperf3: {e}");
                    iperf = Err(e);
                }
            }
        }
        for (w, wl) in WORKLOADS.iter().enumerate() {
            for k in 0..contenders.len() {
                // Alternate which contender goes first.
                let i = if round % 2 == 0 {
                    k
                } else {
                    contenders.len() - 1 - k
                };
                let c = contenders[i];
                let conn = &mut conns[i];
                let write = wl.rw.contains("write");
                let fresh = format!("w-{}-{}-{round}", c.label, wl.rw);
                // fio's nfs engine crashes on sequential jobs with several
                // files: those get one file each (read.0, read.1, ...).
                let files = match wl.rw {
                    "randread" => Files::Shared(names.clone()),
                    "read" => Files::PerJob("read".into()),
                    _ => Files::PerJob(fresh.clone()),
                };
                if wl.rw == "randwrite" {
                    // fio's nfs engine creates files for sequential writes only.
                    let root = conn.root_nfs_fh3();
                    for j in 0..wl.numjobs {
                        rt.block_on(nfs_client::create(conn, &root, &format!("{fresh}.{j}")))?;
                    }
                }
                if c.warm_page_cache && !write {
                    warm_page_cache(&export, &names);
                }
                let job = NfsJob {
                    fio: fio.clone(),
                    url: c.ep.url(),
                    rw: wl.rw,
                    bs: wl.bs,
                    iodepth: wl.iodepth,
                    numjobs: wl.numjobs,
                    files,
                    filesize: if write { WRITE_FILE } else { file_size },
                    seconds: args.seconds,
                    grace: Duration::from_secs(args.umount_grace),
                };
                let before = c.pid.and_then(process::disk_read_bytes);
                let r = job
                    .run()
                    .map_err(|e| format!("{} on {}: {e}", wl.what, c.label))?;
                let after = c.pid.and_then(process::disk_read_bytes);
                if write {
                    let root = conn.root_nfs_fh3();
                    for j in 0..wl.numjobs {
                        rt.block_on(nfs_client::remove(conn, &root, &format!("{fresh}.{j}")))?;
                    }
                }
                let s = &mut sums[w][i];
                s.r.add(&r);
                if let (Some(b), Some(a)) = (before, after) {
                    s.disk = Some(s.disk.unwrap_or(0) + a.saturating_sub(b));
                }
                eprintln!(
                    "round {round} {:<8} {:<9} {:>10.0} IOPS {:>8.1} MB/s  mean {:>7.0} µs  p99 {:>7.0} µs{}",
                    c.label,
                    wl.rw,
                    r.m.iops(),
                    r.m.mbps(),
                    r.mean_us(),
                    r.p99_us(),
                    if r.ended_hung > 0 {
                        format!("  ({} job(s) ended in nfs_umount)", r.ended_hung)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }

    // Metadata: each operation in chunks of files, the servers alternating
    // chunk by chunk (readdirplus: whole listings, `--rounds` of them).
    let mut meta: Vec<BTreeMap<&'static str, OpStats>> = vec![BTreeMap::new(); contenders.len()];
    let busy = busy_loops(args.meta_busy)?;
    let _pinned = pin_client(&args.meta_client_cpu)?;
    for round in 0..args.meta_rounds {
        let t = Instant::now();
        let mut runs = Vec::new();
        for (i, c) in contenders.iter().enumerate() {
            let dir = format!("meta-{}-{round}", c.label);
            runs.push(rt.block_on(nfs_client::Meta::start(&mut conns[i], &dir, args.meta_files))?);
        }
        let chunk = args.meta_chunk.max(1);
        for op in META_OPS {
            let slices: Vec<_> = if op == "readdirplus" {
                (0..args.rounds as usize).map(|_| 0..0).collect()
            } else {
                (0..args.meta_files)
                    .step_by(chunk)
                    .map(|a| a..(a + chunk).min(args.meta_files))
                    .collect()
            };
            for (n, range) in slices.into_iter().enumerate() {
                for k in 0..contenders.len() {
                    let i = if (n + round) % 2 == 0 {
                        k
                    } else {
                        contenders.len() - 1 - k
                    };
                    let s = rt.block_on(runs[i].step(&mut conns[i], op, range.clone()))?;
                    meta[i].entry(op).or_default().add(&s);
                }
            }
        }
        for (i, run) in runs.into_iter().enumerate() {
            rt.block_on(run.finish(&mut conns[i]))?;
        }
        eprintln!(
            "metadata round {round}: {} files per server in {:.1} s",
            args.meta_files,
            t.elapsed().as_secs_f64()
        );
    }
    drop(busy);
    drop(conns);

    // The table: Weir's column is n/a when no Weir answered.
    let (wi, gi) = (weir.as_ref().map(|_| 0), contenders.len() - 1);
    let mut table = Table::new([
        "workload",
        "Weir",
        "ganesha",
        "ratio",
        "target",
        "met",
        "Weir mean µs",
        "ganesha mean µs",
        "Weir p99 µs",
        "ganesha p99 µs",
        "p99 no worse",
        "disk MB read (Weir / ganesha)",
    ]);
    let f0 = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    let mb = |v: Option<u64>| v.map_or("n/a".to_string(), |v| format!("{:.1}", v as f64 / 1e6));
    let iperf_mbps = iperf.as_ref().ok().map(|b| b / 1e6);
    for (w, wl) in WORKLOADS.iter().enumerate().filter(|_| !args.meta_only) {
        let fig = |s: &Sum| match wl.unit {
            Unit::Iops => s.r.m.iops(),
            Unit::Mbps => s.r.m.mbps(),
        };
        let ws = wi.map(|i| sums[w][i]);
        let gs = sums[w][gi];
        let ratio = ws.map(|s| fig(&s) / fig(&gs).max(1e-9));
        let met = match (ratio, ws) {
            (Some(r), Some(s)) => {
                let ok = r >= wl.need || (wl.rw == "read" && iperf_mbps.is_some_and(|i| fig(&s) >= 0.9 * i));
                if ok { "yes" } else { "no" }.to_string()
            }
            _ => "n/a".into(),
        };
        let p99_ok = ws.map_or("n/a".into(), |s| {
            if s.r.p99_us() <= gs.r.p99_us() {
                "yes"
            } else {
                "no"
            }
            .to_string()
        });
        table.cells(vec![
            wl.what.into(),
            f0(ws.map(|s| fig(&s))),
            format!("{:.0}", fig(&gs)),
            ratio.map_or("n/a".into(), |r| format!("{r:.2}")),
            wl.target.into(),
            met,
            f0(ws.map(|s| s.r.mean_us())),
            format!("{:.0}", gs.r.mean_us()),
            f0(ws.map(|s| s.r.p99_us())),
            format!("{:.0}", gs.r.p99_us()),
            p99_ok,
            format!("{} / {}", mb(ws.and_then(|s| s.disk)), mb(gs.disk)),
        ]);
    }
    for op in META_OPS {
        let unit = if op == "readdirplus" {
            "entries/s; latency per call"
        } else {
            "ops/s"
        };
        // NULL has no target: it shows what any call costs on the wire.
        let floor = op.starts_with("NULL");
        let ws = wi.map(|i| &meta[i][op]);
        let gs = &meta[gi][op];
        let ratio = ws.map(|s| s.per_sec() / gs.per_sec().max(1e-9));
        table.cells(vec![
            format!("metadata QD 1: {op}, {} files ({unit})", args.meta_files),
            f0(ws.map(OpStats::per_sec)),
            format!("{:.0}", gs.per_sec()),
            ratio.map_or("n/a".into(), |r| format!("{r:.2}")),
            if floor { "-" } else { "≥ 2×" }.into(),
            match ratio {
                _ if floor => "-".into(),
                Some(r) => if r >= 2.0 { "yes" } else { "no" }.into(),
                None => "n/a".into(),
            },
            ws.map_or("n/a".into(), |s| format!("{:.1}", s.mean_us())),
            format!("{:.1}", gs.mean_us()),
            ws.map_or("n/a".into(), |s| format!("{:.1}", s.p99_us())),
            format!("{:.1}", gs.p99_us()),
            ws.map_or("n/a".into(), |s| {
                if s.p99_us() <= gs.p99_us() { "yes" } else { "no" }.into()
            }),
            "-".into(),
        ]);
    }
    // Sequential reads against the loopback ceiling.
    let seq = WORKLOADS.iter().position(|w| w.rw == "read").unwrap();
    let of_iperf = |s: &Sum| iperf_mbps.map(|i| s.r.m.mbps() / i);
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.0}%", v * 100.0));
    let w_iperf = wi.and_then(|i| of_iperf(&sums[seq][i]));
    table.cells(vec![
        "1 MiB sequential read / iperf3 loopback".into(),
        pct(w_iperf),
        pct(of_iperf(&sums[seq][gi])),
        "-".into(),
        "Weir ≥ 90% (or ≥ 1.2× ganesha)".into(),
        w_iperf.map_or("n/a".into(), |r| if r >= 0.9 { "yes" } else { "no" }.into()),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);

    println!();
    println!("{weir_note}");
    println!(
        "ganesha: nfs-ganesha (FSAL_VFS) on {} (mount port {})",
        ganesha.nfs, ganesha.mount_port
    );
    match &iperf {
        Ok(b) => println!(
            "iperf3 over loopback, 1 stream, mean of {} runs of {} s: {:.0} MB/s ({:.1} Gbit/s)",
            args.rounds,
            args.iperf_seconds,
            b / 1e6,
            b * 8.0 / 1e9
        ),
        Err(e) => println!("iperf3 over loopback: n/a ({e})"),
    }
    println!(
        "{} rounds × {} s per fio slice, contenders alternating; {} × {} MiB read files; metadata {} rounds, client on CPU {}",
        args.rounds, args.seconds, args.files, args.file_mib, args.meta_rounds, args.meta_client_cpu
    );
    if args.meta_busy > 0 {
        println!(
            "metadata with {} busy-loop processes running beside the servers",
            args.meta_busy
        );
    }
    let hung: u32 = sums.iter().flatten().map(|s| s.r.ended_hung).sum();
    if hung > 0 {
        println!("fio job processes ended while hung in nfs_umount (statistics already final): {hung}");
    }
    println!();
    table.print();
    Ok(())
}

/// Busy-loop processes, stopped when the guards drop.
fn busy_loops(n: usize) -> Result<Vec<Guard>, String> {
    (0..n)
        .map(|_| {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .map(|c| Guard::new("busy loop", c))
                .map_err(|e| format!("starting a busy loop: {e}"))
        })
        .collect()
}
