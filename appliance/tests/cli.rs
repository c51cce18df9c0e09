//! The `weir` binary as an operator meets it: config checks, start-up errors,
//! and a daemon that serves metrics and stops on a signal.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
/// Upper bound for start-up and shut-down; only reached when something hangs.
const PATIENCE: Duration = Duration::from_secs(60);

fn weir(args: &[&str], cwd: &Path) -> Output {
    Command::new(WEIR)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .expect("run weir")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failed run: exit code 1, no panic, and an error whose last line mentions `want`.
fn assert_clean_failure(out: &Output, want: &str) -> String {
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
fn small_serve_args(data: &Path) -> Vec<String> {
    serve_args(data, "127.0.0.1:0")
}

fn serve_args(data: &Path, metrics: &str) -> Vec<String> {
    [
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--metrics-listen",
        metrics,
        "--nfs-listen",
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

#[test]
fn version_is_the_crate_version() {
    let tmp = tempfile::tempdir().unwrap();
    let out = weir(&["--version"], tmp.path());
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("weir {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn config_check_accepts_a_good_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("weir.toml");
    std::fs::write(
        &file,
        "[cache]\nmemory = \"1GiB\"\nsize = \"10G\"\n[core_filer]\nurl = \"file:///srv/data\"\n",
    )
    .unwrap();
    let out = weir(&["config", "check", file.to_str().unwrap()], tmp.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!("{}: ok\n", file.display())),
        "{stdout}"
    );
    assert!(stdout.contains("core filer local /srv/data"), "{stdout}");
    assert!(
        stdout.contains("RAM 1GiB") && stdout.contains("NVMe 10GiB"),
        "{stdout}"
    );
}

#[test]
fn config_check_accepts_the_example_config() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weir.example.toml");
    let tmp = tempfile::tempdir().unwrap();
    let out = weir(&["config", "check", example.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(": ok"));
}

#[test]
fn config_check_shows_the_line_of_broken_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("broken.toml");
    std::fs::write(&file, "[server]\nlog = \"info\"\n[cache\nsize = 1\n").unwrap();
    let out = weir(&["config", "check", "broken.toml"], tmp.path());
    let line = assert_clean_failure(&out, "broken.toml: line 3");
    assert!(line.contains("[cache"), "{line}");
}

#[test]
fn config_check_names_an_unknown_key() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("typo.toml"), "[cache]\nmemroy = \"1GiB\"\n").unwrap();
    let out = weir(&["config", "check", "typo.toml"], tmp.path());
    let line = assert_clean_failure(&out, "unknown field `memroy`");
    assert!(line.contains("line 2"), "{line}");
}

#[test]
fn config_check_explains_bad_sizes_and_durations() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("size.toml"), "[cache]\nsize = \"lots\"\n").unwrap();
    assert_clean_failure(
        &weir(&["config", "check", "size.toml"], tmp.path()),
        "invalid size `lots`",
    );
    std::fs::write(tmp.path().join("dur.toml"), "[policy]\nattr_verify = \"soon\"\n").unwrap();
    assert_clean_failure(
        &weir(&["config", "check", "dur.toml"], tmp.path()),
        "invalid duration `soon`",
    );
}

#[test]
fn config_check_refuses_core_filers_not_in_this_build() {
    let tmp = tempfile::tempdir().unwrap();
    for url in ["s3://bucket/prefix", "gcs://bucket/prefix"] {
        std::fs::write(
            tmp.path().join("f.toml"),
            format!("[core_filer]\nurl = \"{url}\"\n"),
        )
        .unwrap();
        assert_clean_failure(
            &weir(&["config", "check", "f.toml"], tmp.path()),
            "not available in this build yet",
        );
    }
}

#[test]
fn config_check_of_a_missing_file_fails() {
    let tmp = tempfile::tempdir().unwrap();
    assert_clean_failure(
        &weir(&["config", "check", "nope.toml"], tmp.path()),
        "cannot read nope.toml",
    );
}

#[test]
fn serve_refuses_a_cache_dir_that_is_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cachefile"), b"x").unwrap();
    let mut args = small_serve_args(&tmp.path().join("data"));
    args.extend(["--cache-dir".into(), "cachefile".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let line = assert_clean_failure(
        &weir(&args, tmp.path()),
        "cache dir cachefile (cache.dir) is not a directory",
    );
    assert!(line.starts_with("weir: "), "{line}");
}

#[test]
fn serve_refuses_a_data_dir_it_cannot_write() {
    let tmp = tempfile::tempdir().unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let data = if root {
        // root may write anywhere; a path below a regular file defeats it too.
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        tmp.path().join("file/data")
    } else {
        use std::os::unix::fs::PermissionsExt;
        let ro = tmp.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        ro
    };
    let args = small_serve_args(&data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_clean_failure(&weir(&args, tmp.path()), "data dir");
}

#[test]
fn serve_refuses_an_origin_that_is_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("plain"), b"x").unwrap();
    let mut args = small_serve_args(&tmp.path().join("data"));
    args.extend(["--origin".into(), "plain".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_clean_failure(&weir(&args, tmp.path()), "origin plain is not a directory");

    let mut args = small_serve_args(&tmp.path().join("data"));
    args.extend(["--origin".into(), "missing".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_clean_failure(
        &weir(&args, tmp.path()),
        "origin missing: No such file or directory",
    );
}

#[test]
fn serve_refuses_a_busy_metrics_address() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let args = serve_args(&tmp.path().join("data"), &addr);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let line = assert_clean_failure(
        &weir(&args, tmp.path()),
        &format!("cannot listen for metrics on {addr}"),
    );
    assert!(line.contains("in use"), "{line}");
}

#[test]
fn serve_reports_a_broken_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("w.toml"), "[server]\ndata_dir = 5\n").unwrap();
    let out = weir(&["serve", "--config", "w.toml"], tmp.path());
    assert_clean_failure(&out, "weir: w.toml: line 2");
}

#[test]
fn serve_refuses_bad_sizes_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = weir(&["serve", "--memory", "12 parsecs"], tmp.path());
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown unit `parsecs`") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// A `weir serve` child, killed if the test ends while it runs.
struct Daemon {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    fn start(args: &[String], cwd: &Path) -> Daemon {
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
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
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
    fn banner(&mut self) -> Vec<String> {
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

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    fn wait(&mut self) -> std::process::ExitStatus {
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

fn http_get(addr: &str, path: &str) -> String {
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

fn metrics_addr(banner: &[String]) -> String {
    let line = banner
        .iter()
        .find(|l| l.trim_start().starts_with("metrics"))
        .unwrap_or_else(|| panic!("no metrics line in {banner:?}"));
    let url = line.split_whitespace().last().unwrap();
    url.trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string()
}

#[test]
fn serve_starts_serves_metrics_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut d = Daemon::start(&small_serve_args(&data), tmp.path());
    let banner = d.banner();
    let all = banner.join("\n");
    assert!(
        all.contains(&format!("local {}", data.join("origin").display())),
        "{all}"
    );
    assert!(all.contains("NFSv3, MOUNT, NLM on 127.0.0.1:"), "{all}");
    assert!(all.contains("mount -t nfs -o vers=3,proto=tcp,port="), "{all}");
    assert!(all.contains("SMB front end  not in this build"), "{all}");
    assert!(data.join("origin").is_dir(), "default origin not created");

    let addr = metrics_addr(&banner);
    let response = http_get(&addr, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("text/plain; version=0.0.4"), "{response}");
    assert!(response.contains("# TYPE weir_"), "{response}");
    assert!(
        response.contains("weir_filer_ops_total{filer=\"local\",shard=\"0\"}"),
        "{response}"
    );
    assert!(response.contains("weir_build_info{version="), "{response}");
    assert!(http_get(&addr, "/nothing").starts_with("HTTP/1.1 404"));

    d.signal(libc::SIGTERM);
    let status = d.wait();
    let stderr = d.stderr();
    assert!(status.success(), "{status}; stderr: {stderr}");
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_stops_on_sigint_and_restarts_on_the_same_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for _ in 0..2 {
        let mut d = Daemon::start(&small_serve_args(&data), tmp.path());
        d.banner();
        d.signal(libc::SIGINT);
        let status = d.wait();
        assert!(status.success(), "{status}; stderr: {}", d.stderr());
        assert!(d.stderr().contains("SIGINT: shutting down"), "{}", d.stderr());
    }
}
