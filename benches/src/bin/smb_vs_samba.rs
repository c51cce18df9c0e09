//! SMB servers side by side in one run, over the same directory: Samba (the
//! reference) and, once it serves SMB, Weir (`--servers weir,samba`).
//! - smbtorture's `smb2.bench.*` load generators (echo, path-contention-shared,
//!   oplock1: whatever this smbtorture lists): operations per second;
//! - a 1 GiB sequential put and get with Samba's `smbclient` CLI: MB/s;
//! - 4 KiB random reads with smbprotocol (Python, one process per reader, one
//!   read in flight each, `--rand-concurrency`): IOPS, mean and p99 latency.
//!
//! Servers run on the first half of the CPUs and clients on the rest
//! (`--layout split`), as on separate machines, unless `--layout shared`.
//! Servers alternate in each round (who goes first flips), since this
//! machine's speed drifts. The first server's figure over the second's is
//! the ratio. `cargo run --release -p benches --bin smb_vs_samba -- --servers samba`
//! (see benches/README.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use benches::{make_file, Table};
use clap::Parser;
use testbed::process::{self, Guard};
use testbed::samba::{self, Samba};

#[derive(Parser)]
struct Args {
    /// Servers to compare, in column order (samba, weir); the ratio is the
    /// first over the second.
    #[arg(long, value_delimiter = ',', default_value = "samba")]
    servers: Vec<String>,
    /// Scratch directory: `export/` (what every server shares), `work/`.
    #[arg(long, default_value = "target/bench-smb")]
    dir: PathBuf,
    /// Size of the sequential put/get file.
    #[arg(long, default_value_t = 1024)]
    seq_mib: u64,
    /// Size of the random read file.
    #[arg(long, default_value_t = 256)]
    rand_mib: u64,
    /// Seconds of each random read slice.
    #[arg(long, default_value_t = 10)]
    rand_seconds: u64,
    /// Readers of the random read workload (processes, one read in flight each).
    #[arg(long, default_value_t = 4)]
    rand_concurrency: u32,
    /// Seconds of each smbtorture bench slice (torture:timelimit).
    #[arg(long, default_value_t = 10)]
    bench_seconds: u64,
    /// Measured put/get pairs per server per round (each put into a file
    /// just deleted).
    #[arg(long, default_value_t = 3)]
    seq_repeats: u32,
    /// Rounds: every workload once per server per round.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// The weir binary [default: `weir` beside this binary].
    #[arg(long)]
    weir_cmd: Option<PathBuf>,
    /// RAM tier of the Weir this driver starts (holds the data set, as the
    /// page cache does for Samba: hot cache).
    #[arg(long, default_value = "3GiB")]
    weir_memory: String,
    /// Python with smbprotocol [default: the test venv, made by tests/smb/lib.sh].
    #[arg(long)]
    python: Option<PathBuf>,
    /// Where servers and clients run: `split` gives the servers the first
    /// half of the CPUs and the clients the rest, as on separate machines;
    /// `shared` lets them all compete for every CPU.
    #[arg(long, default_value = "split", value_parser = ["split", "shared"])]
    layout: String,
}

/// A running server and how to reach its share.
struct Server {
    name: String,
    addr: SocketAddr,
    share: String,
    user: String,
    password: String,
    /// Samba serves from the host page cache, which this VM drops when idle.
    warm_page_cache: bool,
    _samba: Option<Samba>,
    _guard: Option<Guard>,
}

impl Server {
    fn unc(&self) -> String {
        format!("//{}/{}", self.addr.ip(), self.share)
    }
    fn creds(&self) -> String {
        format!("{}%{}", self.user, self.password)
    }
}

fn start_samba(export: &Path) -> anyhow::Result<Server> {
    let s = Samba::start(export, 0).map_err(anyhow::Error::msg)?;
    eprintln!("samba: smbd {} on {}", s.pid(), s.addr);
    Ok(Server {
        name: "samba".into(),
        addr: s.addr,
        share: s.config.share.clone(),
        user: s.config.user.clone(),
        password: s.config.password.clone(),
        warm_page_cache: true,
        _samba: Some(s),
        _guard: None,
    })
}

/// `weir serve` with its SMB front end over `export` (the `local` core filer),
/// a user made with `weir smbpasswd NAME --data-dir D` (password on stdin),
/// acting as root as Samba's user does.
fn start_weir(export: &Path, work: &Path, weir: &Path, memory: &str) -> anyhow::Result<Server> {
    let data = work.join("weir-data");
    // A cache left by another layout has other shard sizes; start empty.
    let _ = std::fs::remove_dir_all(data.join("cache"));
    std::fs::create_dir_all(&data)?;
    let (user, password) = ("bench", "weir-bench-pass");
    let mut child = Command::new(weir)
        .arg("smbpasswd")
        .arg(user)
        .args(["--uid", "0", "--gid", "0", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{password}")?;
    }
    anyhow::ensure!(
        child.wait()?.success(),
        "`{} smbpasswd {user}` failed: this weir has no SMB server?",
        weir.display()
    );
    let port = samba::free_port().map_err(anyhow::Error::msg)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = std::fs::File::create(work.join("weir.log"))?;
    let child = Command::new(weir)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .arg("--origin")
        .arg(export)
        .arg("--smb-listen")
        .arg(addr.to_string())
        .args(["--nfs-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--memory", memory])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let mut guard = Guard::new("weir", child);
    anyhow::ensure!(
        process::wait_port(addr, Duration::from_secs(30), || guard.running()),
        "weir did not serve SMB on {addr}; log: {}",
        work.join("weir.log").display()
    );
    eprintln!("weir: pid {} on {addr}", guard.pid());
    Ok(Server {
        name: "weir".into(),
        addr,
        share: "export".into(),
        user: user.into(),
        password: password.into(),
        warm_page_cache: false,
        _samba: None,
        _guard: Some(guard),
    })
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        text.lines().rev().take(15).collect::<Vec<_>>().join("\n")
    );
    Ok(text)
}

/// The `smb2.bench.*` tests this smbtorture has.
fn bench_tests() -> anyhow::Result<Vec<String>> {
    let list = output(Command::new("smbtorture").args(["--list", "smb2.bench"]))?;
    let mut tests: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("smb2.bench."))
        .map(|l| {
            // "smb2.bench.echo.echo" is the test `echo` of suite smb2.bench.echo.
            let parts: Vec<&str> = l.split('.').collect();
            parts[..parts.len().min(3)].join(".")
        })
        .collect();
    tests.dedup();
    Ok(tests)
}

/// Operations per second of one smbtorture bench run, per operation:
/// the mean of its per-second `op[num/s=N,...]` figures, or the last
/// running `N ops/second` figure.
fn parse_bench(text: &str) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for (i, _) in text.match_indices("[num/s=") {
        let op: String = text[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let rest = &text[i + "[num/s=".len()..];
        let num: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = num.parse::<f64>() {
            let e = sums.entry(op).or_default();
            e.0 += n;
            e.1 += 1;
        }
    }
    let mut out: BTreeMap<String, f64> = sums
        .into_iter()
        .map(|(op, (sum, n))| (op, sum / f64::from(n)))
        .collect();
    if out.is_empty() {
        // The running figure is printed again and again: the last one counts.
        let last = text.rfind(" ops/second").and_then(|end| {
            let head = &text[..end];
            let start = head
                .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
                .map_or(0, |i| i + 1);
            head[start..].parse::<f64>().ok()
        });
        if let Some(v) = last {
            out.insert("ops".into(), v);
        }
    }
    out
}

fn smbtorture_bench(s: &Server, test: &str, seconds: u64) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = output(
        Command::new("smbtorture")
            .arg(s.unc())
            .args(["-p", &s.addr.port().to_string(), "-U", &s.creds()])
            .arg(format!("--option=torture:timelimit={seconds}"))
            .arg(test),
    )?;
    let figures = parse_bench(&text);
    anyhow::ensure!(!figures.is_empty(), "{test}: no figures in its output");
    Ok(figures)
}

fn smbclient(s: &Server, cwd: &Path, commands: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let text = output(
        Command::new("smbclient")
            .current_dir(cwd)
            .arg(s.unc())
            .args(["-p", &s.addr.port().to_string(), "-U", &s.creds()])
            .args(["-m", "SMB3", "-c", commands]),
    )?;
    let elapsed = t.elapsed();
    anyhow::ensure!(!text.contains("NT_STATUS_"), "smbclient -c {commands:?}:\n{text}");
    Ok(elapsed)
}

/// Read a file through the local file system (the server's page cache).
fn warm(path: &Path) -> anyhow::Result<()> {
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut std::io::sink())?;
    Ok(())
}

fn default_python(root: &Path) -> anyhow::Result<PathBuf> {
    let out = output(
        Command::new("bash")
            .current_dir(root)
            .args(["-c", "source tests/smb/lib.sh && ensure_venv"]),
    )?;
    let py = out
        .lines()
        .rev()
        .find(|l| l.ends_with("/python"))
        .ok_or_else(|| anyhow::anyhow!("tests/smb/lib.sh printed no venv python"))?;
    Ok(PathBuf::from(py))
}

#[derive(Default)]
struct Figures {
    /// (workload, server) -> samples
    samples: BTreeMap<(String, String), Vec<f64>>,
    order: Vec<String>,
}

impl Figures {
    fn add(&mut self, what: &str, server: &str, v: f64) {
        if !self.order.iter().any(|w| w == what) {
            self.order.push(what.into());
        }
        self.samples
            .entry((what.into(), server.into()))
            .or_default()
            .push(v);
    }
    /// The median sample: this machine's speed drifts, and one stall
    /// should not move a figure.
    fn median(&self, what: &str, server: &str) -> Option<f64> {
        let mut v = self.samples.get(&(what.into(), server.into()))?.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    process::ensure_installed(
        &["smbd", "smbclient", "smbtorture"],
        &["samba", "smbclient", "samba-testsuite"],
    )
    .map_err(anyhow::Error::msg)?;
    let python = match &a.python {
        Some(p) => p.clone(),
        None => default_python(&root)?,
    };
    let export = a.dir.join("export");
    let work = a.dir.join("work");
    let local = work.join("local");
    std::fs::create_dir_all(&export)?;
    std::fs::create_dir_all(&local)?;
    let export = std::fs::canonicalize(&export)?;
    eprintln!("making the data files in {}", export.display());
    make_file(&export.join("rand.bin"), a.rand_mib << 20);
    make_file(&local.join("seq.bin"), a.seq_mib << 20);

    let split = match a.layout.as_str() {
        "split" => benches::server_client_cpus(),
        _ => None,
    };
    if let Some((server, _)) = &split {
        cache_engine::pin_self(server)?;
    }
    let mut servers = Vec::new();
    for name in &a.servers {
        servers.push(match name.as_str() {
            "samba" => start_samba(&export)?,
            "weir" => {
                let weir = a.weir_cmd.clone().unwrap_or_else(|| {
                    std::env::current_exe()
                        .ok()
                        .and_then(|p| p.parent().map(|d| d.join("weir")))
                        .unwrap_or_else(|| PathBuf::from("weir"))
                });
                start_weir(&export, &work, &weir, &a.weir_memory)?
            }
            other => anyhow::bail!("unknown server {other:?}: samba or weir"),
        });
    }
    let layout = match &split {
        Some((server, client)) => {
            cache_engine::pin_self(client)?;
            format!("servers on CPUs {server:?}, clients on CPUs {client:?}")
        }
        None => "servers and clients share every CPU".to_string(),
    };
    eprintln!("{layout}");
    let tests = bench_tests()?;
    eprintln!("smbtorture bench tests: {}", tests.join(" "));
    let mut fig = Figures::default();
    let mut notes: Vec<String> = Vec::new();
    for round in 0..a.rounds {
        let mut order: Vec<&Server> = servers.iter().collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for test in &tests {
            for s in &order {
                eprintln!("round {round}: {test} on {}", s.name);
                // A server that fails a bench test gets no figure for it (noted below the table).
                let figures = match smbtorture_bench(s, test, a.bench_seconds) {
                    Ok(f) => f,
                    Err(e) => {
                        let first = e
                            .to_string()
                            .lines()
                            .find(|l| l.contains("NT_STATUS"))
                            .unwrap_or("")
                            .to_string();
                        notes.push(format!("{test} failed on {}: {}", s.name, first.trim()));
                        continue;
                    }
                };
                for (op, v) in figures {
                    let short = test.trim_start_matches("smb2.bench.");
                    let what = if op == "ops" || op == short {
                        format!("smb2.bench.{short} ops/s")
                    } else {
                        format!("smb2.bench.{short} {op} ops/s")
                    };
                    fig.add(&what, &s.name, v);
                }
            }
        }
        for s in &order {
            let remote = format!("seq-{}.bin", s.name);
            eprintln!("round {round}: smbclient put/get {} MiB on {}", a.seq_mib, s.name);
            // Unmeasured first: a put whose pages the measured one reuses (this
            // VM's first touch of guest memory runs at ~0.4 GB/s, which would
            // otherwise be what the figure measures), and a get that warms the
            // server's cache (Weir's tiers, Samba's page cache) and the
            // client's page cache alike.
            smbclient(s, &local, &format!("put seq.bin {remote}"))?;
            smbclient(s, &local, &format!("get {remote} back.bin"))?;
            std::fs::remove_file(local.join("back.bin"))?;
            for _ in 0..a.seq_repeats.max(1) {
                smbclient(s, &local, &format!("del {remote}"))?;
                let put = smbclient(s, &local, &format!("put seq.bin {remote}"))?;
                smbclient(s, &local, &format!("get {remote} back.bin"))?;
                std::fs::remove_file(local.join("back.bin"))?;
                let get = smbclient(s, &local, &format!("get {remote} back.bin"))?;
                anyhow::ensure!(
                    std::fs::metadata(local.join("back.bin"))?.len() == a.seq_mib << 20,
                    "get of {remote} returned a file of the wrong size"
                );
                let mb = (a.seq_mib << 20) as f64 / 1e6;
                fig.add("smbclient put 1 file MB/s", &s.name, mb / put.as_secs_f64());
                fig.add("smbclient get 1 file MB/s", &s.name, mb / get.as_secs_f64());
                std::fs::remove_file(local.join("back.bin"))?;
            }
            // Through the server: a file removed behind a caching server's
            // back is only noticed after its verify period.
            smbclient(s, &local, &format!("del {remote}"))?;
        }
        for s in &order {
            eprintln!(
                "round {round}: 4 KiB random read x{} on {}",
                a.rand_concurrency, s.name
            );
            // Hot cache for both: the page cache for Samba, Weir's tiers
            // (filled by reading the file through it) for Weir.
            if s.warm_page_cache {
                warm(&export.join("rand.bin"))?;
            } else {
                smbclient(s, &local, "get rand.bin /dev/null")?;
            }
            let out = output(
                Command::new(&python)
                    .arg(root.join("benches/scripts/smb_randread.py"))
                    .arg(s.addr.ip().to_string())
                    .arg(s.addr.port().to_string())
                    .args([&s.share, &s.user, &s.password, "rand.bin"])
                    .arg(a.rand_seconds.to_string())
                    .arg(a.rand_concurrency.to_string()),
            )?;
            let line = out
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .ok_or_else(|| anyhow::anyhow!("smb_randread.py printed no result:\n{out}"))?;
            let v: serde_json::Value = serde_json::from_str(line)?;
            let get = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
            let what = format!("4K random read x{} IOPS", a.rand_concurrency);
            fig.add(&what, &s.name, get("iops"));
            fig.add("4K random read mean µs", &s.name, get("mean_us"));
            fig.add("4K random read p99 µs", &s.name, get("p99_us"));
        }
    }
    notes.push(layout);
    notes.push(format!(
        "medians of {} rounds; smbtorture benches {} s each; put/get {} MiB with smbclient -m SMB3, {} of each per round after an unmeasured one (hot cache); \
         random reads: smbprotocol 3.1.1 signed, {} processes, {} s",
        a.rounds, a.bench_seconds, a.seq_mib, a.seq_repeats, a.rand_concurrency, a.rand_seconds
    ));

    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let mut header = vec!["workload".to_string()];
    header.extend(names.iter().map(|n| n.to_string()));
    let ratio = (names.len() >= 2).then(|| format!("{} / {}", names[0], names[1]));
    header.push(ratio.clone().unwrap_or_else(|| "ratio".into()));
    let mut table = Table::with_header(header);
    for what in &fig.order {
        let mut cells = vec![what.clone()];
        let vals: Vec<Option<f64>> = names.iter().map(|n| fig.median(what, n)).collect();
        cells.extend(vals.iter().map(|v| v.map_or("n/a".into(), |v| format!("{v:.1}"))));
        cells.push(
            match (vals.first().copied().flatten(), vals.get(1).copied().flatten()) {
                (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
                _ => "n/a".into(),
            },
        );
        table.cells(cells);
    }
    table.print();
    for n in notes {
        println!("\n{n}");
    }
    Ok(())
}
