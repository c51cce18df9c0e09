//! The NVMe tier against fio, side by side on the same cache file.
//!
//! Fills a `SegmentStore` with random blocks, then measures on one compio
//! runtime thread (a) 4 KiB random reads at queue depth 32 and (b) 1 MiB
//! sequential reads (consecutive blocks of one file after another, a few
//! requests in flight). Each is followed at once by the same pattern as plain
//! direct reads on the same runtime (the store's own cost is the difference)
//! and by fio with io_uring and O_DIRECT over the same bytes of the same file.
//! Prints a markdown table with the ratio store / fio.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use benches::fio::{FioRead, Measured};
use cache_engine::rt::aligned::AlignedBuf;
use cache_engine::tier::nvme::{BlockKey, NvmeConfig, SegmentStore};
use clap::Parser;
use compio::buf::BufResult;
use compio::io::AsyncReadAt;
use rand::{Rng, RngCore};

const PAGE: u64 = 4096;
/// Blocks per cached file (16 MiB files with 64 KiB blocks).
const BLOCKS_PER_FILE: u64 = 256;
const SEQ_REQUEST: u64 = 1 << 20;

#[derive(Parser, Debug)]
#[command(about = "Benchmark the NVMe cache tier against fio on the same file")]
struct Args {
    /// Directory for the cache file.
    #[arg(long, default_value = "./target/bench-nvme")]
    dir: PathBuf,
    /// Cache file size (suffixes K, M, G, T: powers of 1024).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    size: u64,
    /// Seconds per workload and contender (store, plain reads, fio).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Slices the seconds are split into; contenders alternate between slices.
    #[arg(long, default_value_t = 5)]
    rounds: u64,
    #[arg(long, default_value = "4M", value_parser = parse_size)]
    segment_size: u64,
    #[arg(long, default_value = "64K", value_parser = parse_size)]
    block_size: u64,
    /// Concurrent 4 KiB random reads.
    #[arg(long, default_value_t = 32)]
    qd: usize,
    /// 1 MiB sequential requests in flight.
    #[arg(long, default_value_t = 4)]
    seq_depth: usize,
    /// Skip the fio runs.
    #[arg(long)]
    no_fio: bool,
    /// Keep the cache file afterwards.
    #[arg(long)]
    keep: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in {s:?}")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().map_err(|e| format!("bad size {s:?}: {e}"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} overflows"))
}

/// Fast per-task generator for picking offsets (not for data).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Global block number `g` as a cache key: files of `BLOCKS_PER_FILE` blocks.
fn key(g: u64) -> BlockKey {
    BlockKey {
        file: g / BLOCKS_PER_FILE,
        block: g % BLOCKS_PER_FILE,
    }
}

/// Every page starts with (block number, page number), so reads are checked.
fn tag_ok(page: &[u8], g: u64, p: u64) -> bool {
    page.len() >= 16 && page[..8] == g.to_le_bytes() && page[8..16] == p.to_le_bytes()
}

struct Layout {
    blocks: u64,
    block_size: u64,
    data_start: u64,
    data_bytes: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.block_size.is_power_of_two() || args.block_size > SEQ_REQUEST {
        bail!("--block-size must be a power of two of at most 1 MiB");
    }
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let path = args.dir.join("nvme-tier.cache");
    // The benchmark owns this file: start from a fresh one of the right size.
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }

    let fio_ok = !args.no_fio && benches::fio::available();

    let rt = compio::runtime::Runtime::new().context("starting the compio runtime")?;
    println!("compio driver: {:?}", rt.driver_type());
    let (layout, rows) = rt.block_on(run_all(&args, &path, fio_ok))?;
    drop(rt);

    println!();
    println!(
        "cache file {} ({} MiB, {} blocks of {} KiB cached = {} MiB), {} s per workload and contender in {} \
         alternating slices, one core",
        path.display(),
        args.size >> 20,
        layout.blocks,
        layout.block_size >> 10,
        layout.data_bytes >> 20,
        args.seconds,
        args.rounds.max(1)
    );
    println!();
    println!(
        "| workload | SegmentStore | compio, plain reads | fio (io_uring, O_DIRECT) | ratio store/fio |"
    );
    println!("|---|---|---|---|---|");
    for row in &rows {
        let cell = |m: &Measured| match row.kind {
            Kind::Random => format!("{} IOPS ({:.1} MB/s)", fmt_thousands(m.iops()), m.mbps()),
            Kind::Sequential => format!("{:.1} MB/s ({} IOPS)", m.mbps(), fmt_thousands(m.iops())),
        };
        let ratio = row
            .fio
            .as_ref()
            .map_or("-".into(), |f| format!("{:.2}", row.store.mbps() / f.mbps()));
        println!(
            "| {} | {} | {} | {} | {} |",
            row.label,
            cell(&row.store),
            cell(&row.plain),
            row.fio.as_ref().map_or("skipped".into(), cell),
            ratio
        );
    }
    println!();
    println!(
        "Sequential IOPS count 1 MiB requests; through the store each \
         is {} block reads. \"compio, plain reads\": the same pattern as direct reads of the file on the \
         same runtime, without the store.",
        SEQ_REQUEST / layout.block_size
    );

    if !args.keep {
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Random,
    Sequential,
}

struct Row {
    label: String,
    kind: Kind,
    store: Measured,
    plain: Measured,
    fio: Option<Measured>,
}

async fn run_all(args: &Args, path: &Path, fio_ok: bool) -> Result<(Layout, Vec<Row>)> {
    let cfg = NvmeConfig {
        path: path.to_path_buf(),
        size: args.size,
        segment_size: u32::try_from(args.segment_size).context("--segment-size too large")?,
        block_size: u32::try_from(args.block_size).context("--block-size too large")?,
        shard: 0,
    };
    let t = Instant::now();
    let store = Rc::new(SegmentStore::open(cfg).await?);
    println!("created {} in {:.2?}", path.display(), t.elapsed());

    let blocks_per_seg = u64::from(store.segment_size()) / args.block_size;
    // One segment short of full, so nothing is reclaimed while measuring.
    let blocks = (u64::from(store.segment_count()) - 1) * blocks_per_seg;
    let blocks = blocks - blocks % (SEQ_REQUEST / args.block_size);
    if blocks == 0 {
        bail!("cache too small for the benchmark");
    }
    // Blocks were appended in order from the first segment: they fill the
    // file contiguously after the superblock.
    let layout = Layout {
        blocks,
        block_size: args.block_size,
        data_start: PAGE,
        data_bytes: blocks * args.block_size,
    };

    let t = Instant::now();
    fill(&store, blocks, args.block_size as usize, blocks_per_seg).await?;
    let el = t.elapsed();
    println!(
        "filled {} blocks ({} MiB) in {:.2?} ({:.0} MB/s)",
        blocks,
        (blocks * args.block_size) >> 20,
        el,
        (blocks * args.block_size) as f64 / el.as_secs_f64() / 1e6
    );
    // Let the device (or the hypervisor under it) finish absorbing the fill.
    compio::time::sleep(Duration::from_secs(2)).await;

    let file = Rc::new(
        compio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(path)
            .await
            .with_context(|| format!("opening {} for plain reads", path.display()))?,
    );

    // The device under these VMs drifts by tens of percent over seconds, so
    // the contenders take turns in short slices (rotating who goes first)
    // and each one's slices are summed.
    let rounds = args.rounds.max(1);
    let slice_secs = (args.seconds / rounds).max(1);
    let slice = Duration::from_secs(slice_secs);
    let mut store_rand = Measured::default();
    let mut plain_rand = Measured::default();
    let mut fio_rand = fio_ok.then(Measured::default);
    let mut store_seq = Measured::default();
    let mut plain_seq = Measured::default();
    let mut fio_seq = fio_ok.then(Measured::default);
    println!(
        "random 4 KiB reads at QD {}: {rounds} rounds of {slice_secs} s each for store, plain and fio ...",
        args.qd
    );
    for round in 0..rounds as usize {
        for turn in 0..3 {
            match (round + turn) % 3 {
                0 => store_rand.add(rand_reads(&store, blocks, args.block_size, args.qd, slice).await?),
                1 => plain_rand.add(plain_reads(&file, &layout, PAGE, args.qd, false, slice).await?),
                _ => {
                    if let Some(f) = fio_rand.as_mut() {
                        f.add(
                            fio_job(path, &layout, "randread", "4k", args.qd, slice_secs)
                                .run()
                                .map_err(anyhow::Error::msg)?,
                        );
                    }
                }
            }
        }
    }
    println!(
        "sequential 1 MiB reads, {} in flight: {rounds} rounds of {slice_secs} s each ...",
        args.seq_depth
    );
    for round in 0..rounds as usize {
        for turn in 0..3 {
            match (round + turn) % 3 {
                0 => store_seq.add(seq_reads(&store, blocks, args.block_size, args.seq_depth, slice).await?),
                1 => plain_seq
                    .add(plain_reads(&file, &layout, SEQ_REQUEST, args.seq_depth, true, slice).await?),
                _ => {
                    if let Some(f) = fio_seq.as_mut() {
                        f.add(
                            fio_job(path, &layout, "read", "1M", args.seq_depth, slice_secs)
                                .run()
                                .map_err(anyhow::Error::msg)?,
                        );
                    }
                }
            }
        }
    }

    let s = store.stats();
    if s.checksum_failures != 0 || s.misses != 0 {
        bail!("unexpected misses or checksum failures: {s:?}");
    }
    let rows = vec![
        Row {
            label: format!("4 KiB random read, QD {}", args.qd),
            kind: Kind::Random,
            store: store_rand,
            plain: plain_rand,
            fio: fio_rand,
        },
        Row {
            label: format!("1 MiB sequential read, {} in flight", args.seq_depth),
            kind: Kind::Sequential,
            store: store_seq,
            plain: plain_seq,
            fio: fio_seq,
        },
    ];
    Ok((layout, rows))
}

/// The same access pattern as direct reads of the file, without the store:
/// what the runtime and device give, to separate the store's own cost.
async fn plain_reads(
    file: &Rc<compio::fs::File>,
    layout: &Layout,
    size: u64,
    depth: usize,
    sequential: bool,
    dur: Duration,
) -> Result<Measured> {
    let units = layout.data_bytes / size;
    let start_off = layout.data_start;
    let next = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..depth)
        .map(|i| {
            let file = Rc::clone(file);
            let next = Rc::clone(&next);
            compio::runtime::spawn(async move {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1234_5678_9ABC_DEF1));
                let mut buf = AlignedBuf::with_capacity(size as usize);
                let mut ops = 0u64;
                while Instant::now() < deadline {
                    let unit = if sequential {
                        let u = next.get();
                        next.set(u + 1);
                        u % units
                    } else {
                        rng.next() % units
                    };
                    buf.clear();
                    let BufResult(res, b) = file.read_at(buf, start_off + unit * size).await;
                    buf = b;
                    match res {
                        Ok(n) if n as u64 == size => ops += 1,
                        Ok(n) => return Err(anyhow::anyhow!("short read of {n} bytes")),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(ops)
            })
        })
        .collect();
    let mut ops = 0;
    for t in tasks {
        ops += t.await.map_err(|e| anyhow::anyhow!("read task failed: {e}"))??;
    }
    Ok(Measured {
        ops,
        bytes: ops * size,
        elapsed: start.elapsed(),
    })
}

async fn fill(store: &SegmentStore, blocks: u64, bs: usize, blocks_per_seg: u64) -> Result<()> {
    let mut rng = rand::rng();
    let mut pool = vec![0u8; 8 << 20];
    rng.fill_bytes(&mut pool);
    let mut block = vec![0u8; bs];
    for g in 0..blocks {
        let start = rng.random_range(0..pool.len() - bs);
        block.copy_from_slice(&pool[start..start + bs]);
        for (p, page) in block.chunks_mut(PAGE as usize).enumerate() {
            page[..8].copy_from_slice(&g.to_le_bytes());
            page[8..16].copy_from_slice(&(p as u64).to_le_bytes());
        }
        store.insert(key(g), 1, &block);
        // Flushing at segment boundaries writes only full segments and keeps
        // the number of buffers in flight bounded.
        if g % blocks_per_seg == blocks_per_seg - 1 {
            store.flush().await?;
        }
    }
    store.flush().await?;
    let s = store.stats();
    if s.dropped_inserts != 0 || store.len() as u64 != blocks {
        bail!(
            "fill incomplete: {} of {blocks} blocks stored ({s:?})",
            store.len()
        );
    }
    Ok(())
}

async fn rand_reads(
    store: &Rc<SegmentStore>,
    blocks: u64,
    bs: u64,
    qd: usize,
    dur: Duration,
) -> Result<Measured> {
    let pages = bs / PAGE;
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..qd)
        .map(|i| {
            let store = Rc::clone(store);
            compio::runtime::spawn(async move {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1234_5678_9ABC_DEF1));
                let (mut ok, mut bad) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let g = rng.next() % blocks;
                    let p = rng.next() % pages;
                    match store.read(key(g), 1, (p * PAGE) as u32, PAGE as u32).await {
                        Ok(Some(b)) if b.len() == PAGE as usize && tag_ok(&b, g, p) => ok += 1,
                        _ => bad += 1,
                    }
                }
                (ok, bad)
            })
        })
        .collect();
    let mut ops = 0;
    for t in tasks {
        let (ok, bad) = t.await.map_err(|e| anyhow::anyhow!("read task failed: {e}"))?;
        if bad != 0 {
            bail!("{bad} random reads returned wrong data or missed");
        }
        ops += ok;
    }
    Ok(Measured {
        ops,
        bytes: ops * PAGE,
        elapsed: start.elapsed(),
    })
}

async fn seq_reads(
    store: &Rc<SegmentStore>,
    blocks: u64,
    bs: u64,
    depth: usize,
    dur: Duration,
) -> Result<Measured> {
    let per_req = SEQ_REQUEST / bs;
    let requests = blocks / per_req;
    let next = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..depth)
        .map(|_| {
            let store = Rc::clone(store);
            let next = Rc::clone(&next);
            compio::runtime::spawn(async move {
                let (mut ok, mut bad) = (0u64, 0u64);
                while Instant::now() < deadline {
                    // Requests are handed out in order, wrapping around the data.
                    let r = next.get();
                    next.set(r + 1);
                    let first = (r % requests) * per_req;
                    let reads = (first..first + per_req).map(|g| {
                        let store = &store;
                        async move { (g, store.read(key(g), 1, 0, bs as u32).await) }
                    });
                    for (g, res) in futures::future::join_all(reads).await {
                        match res {
                            Ok(Some(b)) if b.len() == bs as usize && tag_ok(&b, g, 0) => {}
                            _ => bad += 1,
                        }
                    }
                    ok += 1;
                }
                (ok, bad)
            })
        })
        .collect();
    let mut ops = 0;
    for t in tasks {
        let (ok, bad) = t.await.map_err(|e| anyhow::anyhow!("read task failed: {e}"))?;
        if bad != 0 {
            bail!("{bad} sequential block reads returned wrong data or missed");
        }
        ops += ok;
    }
    Ok(Measured {
        ops,
        bytes: ops * SEQ_REQUEST,
        elapsed: start.elapsed(),
    })
}

fn fmt_thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fio_job(
    path: &Path,
    layout: &Layout,
    rw: &'static str,
    bs: &'static str,
    depth: usize,
    seconds: u64,
) -> FioRead {
    FioRead {
        files: vec![path.to_path_buf()],
        offset: layout.data_start,
        size: layout.data_bytes,
        rw,
        bs,
        depth,
        seconds,
    }
}
