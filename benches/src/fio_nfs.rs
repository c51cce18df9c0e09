//! fio with its `nfs` (libnfs) engine: built once from Debian's fio source
//! package by `benches/scripts/build-fio-nfs.sh` into a cache directory
//! outside the repository, and run with a watchdog.
//!
//! fio 3.33 with libnfs 4.0 can hang in `nfs_umount()` after a job's I/O is
//! over and its statistics are final. The watchdog ends such a job process
//! (fio forks one per job: the engine refuses threads) once the run time is
//! past and the process has used no CPU for a grace period;
//! fio's parent then reports the statistics it already holds.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fio::{self, Measured};
use testbed::process;

const BUILD_SCRIPT: &str = include_str!("../scripts/build-fio-nfs.sh");

fn cache_root() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache"),
    }
    .join("weir-bench")
}

fn has_nfs_engine(fio: &Path) -> bool {
    Command::new(fio)
        .arg("--enghelp=nfs")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nfs_url"))
}

/// The fio-nfs binary: `explicit` if given, else the cached build keyed by a
/// hash of the build script, built now (as root) when missing.
pub fn binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if has_nfs_engine(p) {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{} has no nfs engine", p.display()))
        };
    }
    let hash = blake3::hash(BUILD_SCRIPT.as_bytes()).to_hex();
    let root = cache_root();
    let prefix = root.join(format!("fio-nfs-{}", &hash[..12]));
    let bin = prefix.join("bin/fio");
    if has_nfs_engine(&bin) {
        return Ok(bin);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "no fio with the nfs engine at {}: run once as root to build it, or pass --fio-nfs",
            bin.display()
        ));
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let script = root.join(format!("build-fio-nfs-{}.sh", &hash[..12]));
    std::fs::write(&script, BUILD_SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    eprintln!(
        "building fio with the nfs engine into {} (once)",
        prefix.display()
    );
    let status = Command::new("bash")
        .arg(&script)
        .env("WORK", root.join("fio-nfs-src"))
        .env("PREFIX", &prefix)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("bash {}: {e}", script.display()))?;
    if !status.success() || !has_nfs_engine(&bin) {
        return Err(format!("{} failed", script.display()));
    }
    Ok(bin)
}

/// Which files a job reads or writes, relative to the export.
pub enum Files {
    /// Every job process uses all of these (they must exist).
    Shared(Vec<String>),
    /// One file per job process: `PREFIX.0`, `PREFIX.1`, ...
    PerJob(String),
}

/// One fio run of `numjobs` processes against an NFS export.
pub struct NfsJob {
    pub fio: PathBuf,
    pub url: String,
    pub rw: &'static str,
    pub bs: &'static str,
    pub iodepth: usize,
    pub numjobs: usize,
    pub files: Files,
    /// Bytes of each file the job uses.
    pub filesize: u64,
    pub seconds: u64,
    /// Quiet time after the run time before a job process counts as hung.
    pub grace: Duration,
}

/// Throughput and completion latency of one run (or of several, summed).
#[derive(Debug, Clone, Copy, Default)]
pub struct NfsResult {
    pub m: Measured,
    /// Operation-weighted sums of the runs' mean and p99 (µs × ops).
    mean_weighted: f64,
    p99_weighted: f64,
    /// Job processes the watchdog ended.
    pub ended_hung: u32,
}

impl NfsResult {
    pub fn add(&mut self, o: &NfsResult) {
        self.m.add(o.m);
        self.mean_weighted += o.mean_weighted;
        self.p99_weighted += o.p99_weighted;
        self.ended_hung += o.ended_hung;
    }

    /// Mean completion latency (fio's clat).
    pub fn mean_us(&self) -> f64 {
        self.mean_weighted / self.m.ops.max(1) as f64
    }

    /// 99th percentile of completion latency; over several runs, the runs'
    /// figures weighted by operations (fio reports percentiles, not histograms).
    pub fn p99_us(&self) -> f64 {
        self.p99_weighted / self.m.ops.max(1) as f64
    }
}

impl NfsJob {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.fio);
        cmd.args([
            "--ioengine=nfs",
            "--time_based",
            "--group_reporting",
            "--norandommap",
            "--randrepeat=0",
            "--output-format=json",
            "--name=weir-bench",
        ]);
        cmd.arg(format!("--nfs_url={}", self.url))
            .arg(format!("--rw={}", self.rw))
            .arg(format!("--bs={}", self.bs))
            .arg(format!("--iodepth={}", self.iodepth))
            .arg(format!("--numjobs={}", self.numjobs))
            .arg(format!("--filesize={}", self.filesize))
            .arg(format!("--runtime={}", self.seconds));
        match &self.files {
            Files::Shared(names) => cmd.arg(format!("--filename={}", names.join(":"))),
            Files::PerJob(prefix) => cmd.arg(format!("--filename_format={prefix}.$jobnum")),
        };
        cmd
    }

    pub fn run(&self) -> Result<NfsResult, String> {
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.fio.display()))?;
        let pid = child.id();
        let drain = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_string(&mut s);
                }
                s
            })
        };
        let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
        let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
        let start = Instant::now();
        let run_time = Duration::from_secs(self.seconds);
        let give_up = run_time + Duration::from_secs(120);
        // Per job process: CPU ticks last seen and when they last changed.
        let mut activity: Vec<(u32, u64, Instant)> = Vec::new();
        let mut ended = 0;
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| format!("waiting for fio: {e}"))? {
                break s;
            }
            let now = Instant::now();
            if now - start > give_up {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("fio {} did not finish in {give_up:?}", self.rw));
            }
            if now - start > run_time {
                for job in process::children(pid) {
                    let io = cpu_ticks(job);
                    match activity.iter_mut().find(|a| a.0 == job) {
                        Some(a) if a.1 != io => (a.1, a.2) = (io, now),
                        Some(a) if now - a.2 > self.grace => {
                            process::signal(job, libc::SIGKILL);
                            ended += 1;
                            a.2 = now + Duration::from_secs(3600);
                        }
                        Some(_) => {}
                        None => activity.push((job, io, now)),
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
        // A job we ended makes fio exit non-zero; its statistics still stand.
        if !status.success() && ended == 0 {
            return Err(format!("fio {} failed ({status}): {stderr}", self.rw));
        }
        let v = fio::parse_json(&stdout).map_err(|e| format!("{e}; fio stderr: {stderr}"))?;
        let job = &v["jobs"][0];
        let dir = if self.rw.contains("write") {
            "write"
        } else {
            "read"
        };
        let m = fio::measured(job, dir)?;
        if m.ops == 0 {
            return Err(format!("fio {} did no I/O: {stderr}", self.rw));
        }
        let clat = &job[dir]["clat_ns"];
        let mean = clat["mean"]
            .as_f64()
            .ok_or(format!("fio JSON lacks {dir}.clat_ns.mean"))?;
        let p99 = clat["percentile"]["99.000000"]
            .as_f64()
            .ok_or(format!("fio JSON lacks {dir}.clat_ns.percentile.99.000000"))?;
        Ok(NfsResult {
            m,
            mean_weighted: mean / 1e3 * m.ops as f64,
            p99_weighted: p99 / 1e3 * m.ops as f64,
            ended_hung: ended,
        })
    }
}

/// CPU time a process used, in clock ticks (`utime` + `stime` in
/// `/proc/PID/stat`): it grows while a job does I/O and stands still while
/// the job waits for a reply that never comes.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after "pid (comm)": state is the 1st, utime the 12th, stime the 13th.
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for fio whose one job process never exits on its own (as
    /// one stuck in nfs_umount), and whose parent prints the JSON once that
    /// job is gone.
    #[test]
    fn watchdog_ends_a_hung_job_and_keeps_its_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fio");
        let json = r#"{"jobs":[{"read":{"total_ios":1000,"io_bytes":4096000,"runtime":1000,
            "clat_ns":{"mean":20000.0,"percentile":{"99.000000":80000}}}}]}"#;
        std::fs::write(&fake, format!("#!/bin/sh\nsleep 600 &\nwait\necho '{json}'\n")).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let job = NfsJob {
            fio: fake,
            url: "nfs://127.0.0.1/export".into(),
            rw: "randread",
            bs: "4k",
            iodepth: 1,
            numjobs: 1,
            files: Files::Shared(vec!["a".into()]),
            filesize: 1 << 20,
            seconds: 0,
            grace: Duration::from_millis(300),
        };
        let r = job.run().unwrap();
        assert_eq!(r.ended_hung, 1);
        assert_eq!(r.m.ops, 1000);
        assert_eq!(r.mean_us(), 20.0);
        assert_eq!(r.p99_us(), 80.0);
    }

    #[test]
    fn a_failing_fio_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fio");
        std::fs::write(&fake, "#!/bin/sh\necho 'fio: bad option' >&2\nexit 1\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let job = NfsJob {
            fio: fake,
            url: String::new(),
            rw: "write",
            bs: "1M",
            iodepth: 1,
            numjobs: 1,
            files: Files::PerJob("w".into()),
            filesize: 1 << 20,
            seconds: 0,
            grace: Duration::from_secs(5),
        };
        let e = job.run().unwrap_err();
        assert!(e.contains("bad option"), "{e}");
    }
}
