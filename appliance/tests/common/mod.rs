//! Helpers the `weir` binary's end-to-end tests share: running it, a
//! `weir serve` child, and reading its banner and metrics.
#![allow(dead_code)]

pub mod namer;
pub mod nas;
pub mod writers;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");
/// Upper bound for start-up and shut-down; only reached when something hangs.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn weir(args: &[&str], cwd: &Path) -> Output {
    Command::new(WEIR)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .expect("run weir")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failed run: exit code 1, no panic, and an error whose last line mentions `want`.
pub fn assert_clean_failure(out: &Output, want: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains(want),
        "wanted {want:?} in the last line of stderr: {stderr}"
    );
    last
}

/// `weir serve` on `data` with small caches and metrics on a free port.
pub fn small_serve_args(data: &Path) -> Vec<String> {
    serve_args(data, "127.0.0.1:0")
}

pub fn serve_args(data: &Path, metrics: &str) -> Vec<String> {
    [
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--metrics-listen",
        metrics,
        "--nfs-listen",
        "127.0.0.1:0",
        "--smb-listen",
        "127.0.0.1:0",
        "--cache-size",
        "64MiB",
        "--memory",
        "64MiB",
        "--shards",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A `weir serve` child, killed if the test ends while it runs.
pub struct Daemon {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(args: &[String], cwd: &Path) -> Daemon {
        let mut child = Command::new(WEIR)
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weir serve");
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        // WEIR_TEST_LOGS=DIR keeps every weir's log there, for a failure
        // that does not come back when run again.
        let mut keep = std::env::var_os("WEIR_TEST_LOGS").and_then(|d| {
            let path = Path::new(&d).join(format!("weir-{}.log", child.id()));
            std::fs::File::create(path).ok()
        });
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Some(f) = &mut keep {
                    let _ = std::io::Write::write_all(f, &buf[..n]);
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Daemon {
            child,
            stdout,
            stderr,
        }
    }

    /// Banner lines up to the one that ends it.
    pub fn banner(&mut self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("Stop with");
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(_) => panic!("no banner; stdout so far: {lines:?}; stderr: {}", self.stderr()),
            }
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weir did not stop; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

pub fn metrics_addr(banner: &[String]) -> String {
    let line = banner
        .iter()
        .find(|l| l.trim_start().starts_with("metrics"))
        .unwrap_or_else(|| panic!("no metrics line in {banner:?}"));
    let url = line.split_whitespace().last().unwrap();
    url.trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string()
}

/// Sum of every series of `name` in Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The port the banner says NFS is served on.
pub fn nfs_port(banner: &[String]) -> u16 {
    let line = banner
        .iter()
        .find(|l| l.contains("NFSv3, MOUNT, NLM on "))
        .unwrap_or_else(|| panic!("no NFS line in {banner:?}"));
    let addr = line
        .split(" on ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A file of the default export, read with libnfs-utils' `nfs-cat`.
pub fn nfs_cat(port: u16, rel: &str) -> Vec<u8> {
    let url = format!("nfs://127.0.0.1/export/{rel}?version=3&nfsport={port}&mountport={port}");
    let out = Command::new("nfs-cat").arg(&url).output().expect("run nfs-cat");
    assert!(out.status.success(), "nfs-cat {url}: {}", text(&out.stderr));
    out.stdout
}
