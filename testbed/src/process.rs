//! Child processes a benchmark starts: stopped by their own PID (never by
//! name: other servers may run on the same machine), ports to wait for, and
//! the disk reads a process caused.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Guard {
    name: String,
    child: Option<Child>,
}

impl Guard {
    pub fn new(name: &str, child: Child) -> Self {
        Guard {
            name: name.into(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process is still running (false once it exited).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            signal(child.id(), libc::SIGTERM);
            let t = Instant::now();
            while t.elapsed() < grace {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("{} (pid {}) ignored SIGTERM; killing it", self.name, child.id());
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Send `sig` to one process.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a PID we started; no memory is shared.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Send `sig` to the process group led by `leader` (a server that made
/// itself a group leader); nothing happens when there is no such group.
pub fn signal_group(leader: u32, sig: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(leader) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative id signals one process group; no memory is shared.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Whether something accepts TCP connections at `addr`.
pub fn answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Wait until `addr` accepts connections; false after `timeout` or when
/// `alive` says the server is gone.
pub fn wait_port(addr: SocketAddr, timeout: Duration, mut alive: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if answers(addr) {
            return true;
        }
        if !alive() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Bytes `pid` made the kernel fetch from storage (`read_bytes` in
/// `/proc/PID/io`): page cache misses and direct I/O, not cache hits.
pub fn disk_read_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The last `n` lines of a log file, for an error message ("" when unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Direct children of `pid` (from `/proc/*/stat`).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| parent(p) == Some(pid))
        .collect()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `program` is on the PATH (or is a path that exists).
pub fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Install Debian packages with apt-get when some `programs` are missing
/// (root only; otherwise say what to install).
pub fn ensure_installed(programs: &[&str], packages: &[&str]) -> Result<(), String> {
    if programs.iter().all(|p| have(p)) {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "missing {programs:?}: run as root, or apt-get install -y {}",
            packages.join(" ")
        ));
    }
    eprintln!("installing {} with apt-get", packages.join(" "));
    let status = std::process::Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get: {e}"))?;
    if !status.success() || !programs.iter().all(|p| have(p)) {
        return Err(format!("apt-get install {} failed", packages.join(" ")));
    }
    Ok(())
}

/// An exclusive flock(2) on a file in the temporary directory, held until
/// dropped: serialises steps of several processes (tests run in parallel).
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Wait for the lock named `name` (a file name in the temporary directory).
    pub fn take(name: &str) -> Result<Self, String> {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        loop {
            // SAFETY: flock(2) on a descriptor this function owns; released when it closes.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock { _file: f });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("{}: {e}", path.display()));
            }
        }
    }
}
