//! A `weir serve` that a driver starts for one comparison: a fresh data
//! directory (a cold cache), NFS on a port of the driver's choosing, the
//! metrics endpoint on a free port, and whatever else the driver passes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testbed::nfs_client::Endpoint;
use testbed::process::{self, Guard};

/// A running `weir serve`; stopped when dropped.
pub struct WeirServe {
    pub ep: Endpoint,
    pub metrics: SocketAddr,
    /// Its `--data-dir` (where `weir flush` and `weir status` find it).
    pub data: std::path::PathBuf,
    _guard: Guard,
}

impl WeirServe {
    /// Start `cmd serve` with its data in `work/<name>-data` and its log in
    /// `work/<name>.log`, NFS (and MOUNT) on 127.0.0.1:`port`, plus `args`
    /// (the core filer, sizes, a config).
    pub fn start(
        cmd: &Path,
        work: &Path,
        name: &str,
        port: u16,
        args: &[String],
    ) -> Result<WeirServe, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if process::answers(addr) {
            return Err(format!("port {port} is in use: pick another with --weir-port"));
        }
        let data = work.join(format!("{name}-data"));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let log_path = work.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let child = Command::new(cmd)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--nfs-listen", &addr.to_string()])
            .args(["--metrics-listen", "127.0.0.1:0", "--smb-listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", cmd.display()))?;
        let mut guard = Guard::new("weir serve", child);
        if !process::wait_port(addr, Duration::from_secs(30), || guard.running()) {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!(
                "weir serve did not come up ({}): {}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
        }
        // The port may answer a moment before the banner is written.
        let until = std::time::Instant::now() + Duration::from_secs(10);
        let mut banner = std::fs::read_to_string(&log_path).unwrap_or_default();
        while !banner.contains("metrics ") && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            banner = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        let metrics = banner
            .lines()
            .find(|l| l.trim_start().starts_with("metrics"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|u| {
                u.trim_start_matches("http://")
                    .trim_end_matches("/metrics")
                    .parse()
                    .ok()
            })
            .ok_or_else(|| format!("no metrics address in {}", log_path.display()))?;
        Ok(WeirServe {
            ep: Endpoint {
                nfs: addr,
                mount_port: port,
            },
            metrics,
            data,
            _guard: guard,
        })
    }

    /// The sum over shards of the counter or gauge `name`.
    pub fn metric(&self, name: &str) -> Result<f64, String> {
        let text = http_get(self.metrics, "/metrics")?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| format!("{addr}: {e}"))?;
    Ok(text)
}
