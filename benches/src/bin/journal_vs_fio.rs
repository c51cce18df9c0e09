//! The write journal against fio, side by side in one run on the same
//! file system: 4 KiB durable appends from 32 concurrent appenders on one
//! shard (one compio runtime thread), each appender confirming its record
//! at once as if written back, so the log keeps wrapping; then
//! `fio --direct=1 --sync=dsync --rw=write --bs=4k --iodepth=32
//! --ioengine=io_uring` on a file of the same size in the same directory.
//! Contenders alternate over several slices. Prints a markdown table with
//! IOPS, mean and p99 latency and the ratio journal / fio.
//!
//! `cargo run --release -p benches --bin journal_vs_fio -- [--dir DIR] [--seconds N]`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cache_engine::journal::{CacheId, FileRef, Journal, JournalConfig, Op};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Benchmark the write journal against fio's O_DSYNC writes on the same file system")]
struct Args {
    /// Scratch directory (the journal file and fio's file).
    #[arg(long, default_value = "target/bench-journal")]
    dir: PathBuf,
    /// Seconds per contender, split over the slices.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Slices the seconds are split into; contenders alternate.
    #[arg(long, default_value_t = 2)]
    rounds: u64,
    /// Concurrent appenders (and fio's queue depth).
    #[arg(long, default_value_t = 32)]
    qd: usize,
    /// Size of the journal region and of fio's file, MiB.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
}

/// Operations over a time, with every latency (ns) when known.
#[derive(Default)]
struct Run {
    ops: u64,
    elapsed: Duration,
    /// Latency sum and count (fio gives means), and p99s of each slice.
    lat_sum_ns: f64,
    lat_n: u64,
    p99s_ns: Vec<f64>,
}

impl Run {
    fn iops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn mean_us(&self) -> f64 {
        self.lat_sum_ns / self.lat_n.max(1) as f64 / 1e3
    }

    /// The worst slice's p99 (slices are equal in length).
    fn p99_us(&self) -> f64 {
        self.p99s_ns.iter().copied().fold(0.0, f64::max) / 1e3
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let jpath = args.dir.join("journal.bench");
    let fpath = args.dir.join("fio.bench");
    for p in [&jpath, &fpath] {
        if p.exists() {
            std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    if !benches::fio::available() {
        bail!("fio is needed for the comparison");
    }
    let size = args.mib << 20;
    let slice = Duration::from_secs(args.seconds).div_f64(args.rounds.max(1) as f64);

    let rt = compio::runtime::Runtime::new().context("starting the compio runtime")?;
    let cfg = JournalConfig {
        path: jpath.clone(),
        offset: 0,
        size,
        cache_id: CacheId::random(),
        shard: 0,
        create: true,
    };
    let journal = rt
        .block_on(Journal::open(cfg.clone()))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .journal;
    // fio lays its file out (written, like the journal's) before it times.
    fio_run(&fpath, args.qd, size, Duration::from_secs(1))?;

    let (mut j, mut f) = (Run::default(), Run::default());
    for _ in 0..args.rounds.max(1) {
        let r = rt.block_on(journal_run(&journal, args.qd, slice))?;
        add(&mut j, r);
        add(&mut f, fio_run(&fpath, args.qd, size, slice)?);
    }
    let (groups, sbs) = journal.with_log(|l| l.writes());
    drop(journal);
    // Reopening replays. Dropped without a close (as by a crash), the whole
    // log is read to tell a torn tail from damage further on; after a clean
    // close the superblock names the end and the walk stops there.
    let reopen = |cfg: &JournalConfig| {
        let t = Instant::now();
        let opened = rt
            .block_on(Journal::open(JournalConfig {
                create: false,
                ..cfg.clone()
            }))
            .map_err(|e| anyhow::anyhow!("reopening: {e}"))?;
        anyhow::Ok((t.elapsed(), opened))
    };
    let (after_crash, opened) = reopen(&cfg)?;
    let replayed = opened.records.len();
    rt.block_on(opened.journal.close())
        .map_err(|e| anyhow::anyhow!("closing: {e}"))?;
    let (after_close, _) = reopen(&cfg)?;
    drop(rt);

    let (fua, cache) = flush_mode(&args.dir);
    println!();
    println!(
        "{} MiB journal and fio file in {}, {} s per contender in {} alternating slices, QD {}, one core for the journal",
        args.mib,
        args.dir.display(),
        args.seconds,
        args.rounds.max(1),
        args.qd
    );
    println!();
    println!("| contender | how it is flushed | IOPS | mean latency | p99 latency | ratio journal/fio |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, how: String, r: &Run, ratio: String| {
        println!(
            "| {name} | {how} | {:.0} | {:.0} µs | {:.0} µs | {ratio} |",
            r.iops(),
            r.mean_us(),
            r.p99_us()
        );
    };
    row(
        "journal (4 KiB appends, group commit)",
        format!(
            "one O_DIRECT\\|O_DSYNC write per group: {} groups, {:.1} records each; {sbs} superblock writes",
            groups,
            j.ops as f64 / groups.max(1) as f64
        ),
        &j,
        format!("{:.2}", j.iops() / f.iops().max(1e-9)),
    );
    row(
        "fio --sync=dsync --direct=1 (io_uring)",
        "every 4 KiB write O_DIRECT\\|O_DSYNC".into(),
        &f,
        "-".into(),
    );
    println!();
    println!(
        "Device under {}: write cache \"{cache}\", FUA {fua}: {}",
        args.dir.display(),
        if fua == "1" {
            "an O_DSYNC write goes out with FUA"
        } else if cache.contains("back") {
            "no FUA, so the kernel follows each O_DSYNC write with a cache flush"
        } else {
            "write-through cache: an O_DSYNC write is durable when it completes"
        }
    );
    println!(
        "Reopening the journal: {:.0} ms without a clean close (the whole log read), {:.1} ms after one; \
         {replayed} records returned (the rest were confirmed).",
        after_crash.as_secs_f64() * 1e3,
        after_close.as_secs_f64() * 1e3
    );
    for p in [&jpath, &fpath] {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

fn add(total: &mut Run, r: Run) {
    total.ops += r.ops;
    total.elapsed += r.elapsed;
    total.lat_sum_ns += r.lat_sum_ns;
    total.lat_n += r.lat_n;
    total.p99s_ns.extend(r.p99s_ns);
}

/// `qd` appenders for `time`, each confirming its record once durable.
async fn journal_run(journal: &Journal, qd: usize, time: Duration) -> Result<Run> {
    let lats: Rc<RefCell<Vec<u32>>> = Rc::default();
    let start = Instant::now();
    let end = start + time;
    let data = Bytes::from(vec![0x5a; 4096]);
    let tasks = (0..qd).map(|i| {
        let (journal, lats, data) = (journal.clone(), Rc::clone(&lats), data.clone());
        async move {
            let mut off = 0u64;
            while Instant::now() < end {
                let t = Instant::now();
                let op = Op::write(
                    FileRef {
                        filer: 0,
                        id: i as u64,
                    },
                    off,
                    data.clone(),
                );
                let seq = journal.append(op).await?;
                lats.borrow_mut()
                    .push(t.elapsed().as_nanos().min(u32::MAX as u128) as u32);
                journal.done(seq)?;
                off += 4096;
            }
            Ok::<(), cache_engine::journal::JournalError>(())
        }
    });
    for r in futures::future::join_all(tasks).await {
        r.map_err(|e| anyhow::anyhow!("append: {e}"))?;
    }
    let elapsed = start.elapsed();
    let mut lats = Rc::try_unwrap(lats).map(RefCell::into_inner).unwrap_or_default();
    lats.sort_unstable();
    let p99 = lats.get(lats.len() * 99 / 100).copied().unwrap_or(0);
    Ok(Run {
        ops: lats.len() as u64,
        elapsed,
        lat_sum_ns: lats.iter().map(|&l| f64::from(l)).sum(),
        lat_n: lats.len() as u64,
        p99s_ns: vec![f64::from(p99)],
    })
}

fn fio_run(file: &Path, qd: usize, size: u64, time: Duration) -> Result<Run> {
    let out = Command::new("fio")
        .args([
            "--name=journal-vs-fio",
            "--direct=1",
            "--sync=dsync",
            "--rw=write",
            "--bs=4k",
            "--ioengine=io_uring",
            "--time_based",
            "--lat_percentiles=1",
            "--output-format=json",
        ])
        .arg(format!("--iodepth={qd}"))
        .arg(format!("--filename={}", file.display()))
        .arg(format!("--size={size}"))
        .arg(format!("--runtime={}ms", time.as_millis().max(1)))
        .output()
        .context("running fio")?;
    if !out.status.success() {
        bail!("fio failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v = benches::fio::parse_json(&String::from_utf8_lossy(&out.stdout)).map_err(anyhow::Error::msg)?;
    let w = &v["jobs"][0]["write"];
    let m = benches::fio::measured(&v["jobs"][0], "write").map_err(anyhow::Error::msg)?;
    let num = |x: &serde_json::Value| x.as_f64().context("fio JSON lacks a latency figure");
    Ok(Run {
        ops: m.ops,
        elapsed: m.elapsed,
        lat_sum_ns: num(&w["lat_ns"]["mean"])? * m.ops as f64,
        lat_n: m.ops,
        p99s_ns: vec![num(&w["lat_ns"]["percentile"]["99.000000"])?],
    })
}

/// The device holding `dir`: its FUA flag and write cache mode (sysfs).
fn flush_mode(dir: &Path) -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(dir) else {
        return ("?".into(), "?".into());
    };
    let (maj, min) = (libc::major(md.dev()), libc::minor(md.dev()));
    let base = PathBuf::from(format!("/sys/dev/block/{maj}:{min}"));
    let read = |name: &str| {
        // A partition keeps its queue in its disk's directory.
        [base.join("queue").join(name), base.join("../queue").join(name)]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map_or("?".into(), |s| s.trim().to_string())
    };
    (read("fua"), read("write_cache"))
}
