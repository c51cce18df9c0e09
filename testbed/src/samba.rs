//! A private Samba smbd sharing a directory as `export` on 127.0.0.1, for
//! tests and benchmarks that need the reference SMB2/3 server.
//!
//! Everything smbd keeps lives in a temporary directory of its own (config,
//! passdb, state, cache, lock, pid, log), so it never touches the machine's
//! Samba. No nmbd, no winbind, no NetBIOS. The SMB user is `root` by default:
//! Samba's passdb needs a Unix account of the same name, and root exists on
//! every machine (files written through the share are owned by root, as
//! files written by a root daemon such as Weir's are).
//!
//! smbd started in the foreground without `--no-process-group` makes itself
//! a session and process group leader; on SIGTERM it kills that whole group
//! (its per-connection children). It is never given `--no-process-group`:
//! it would then kill the group of whoever started it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, FileLock, Guard};

/// How a [`Samba`] is set up; `Default` is a plain share with optional signing.
#[derive(Clone, Debug)]
pub struct SambaConfig {
    /// The share name (`export`).
    pub share: String,
    /// The SMB user (a Unix account must exist with that name; `root`).
    pub user: String,
    /// The user's password (`weir-test-pass`).
    pub password: String,
    /// `server signing = mandatory`: unsigned sessions are refused.
    pub signing_required: bool,
    /// `smb encrypt = required`: only encrypted (SMB3) sessions get through.
    pub encrypt_required: bool,
    /// More `[global]` lines (`name = value`), after the ones set here.
    pub extra_global: Vec<String>,
    /// More SMB users, with the same password: (name, uid). Each gets a Unix
    /// account of that name, uid and a group of the same id when it has none.
    pub other_users: Vec<(String, u32)>,
}

impl Default for SambaConfig {
    fn default() -> Self {
        SambaConfig {
            share: "export".into(),
            user: "root".into(),
            password: "weir-test-pass".into(),
            signing_required: false,
            encrypt_required: false,
            extra_global: Vec::new(),
            other_users: Vec::new(),
        }
    }
}

/// A running smbd; stopped, with its work directory removed, when dropped.
pub struct Samba {
    pub addr: SocketAddr,
    pub config: SambaConfig,
    /// The shared directory (canonical).
    pub dir: PathBuf,
    /// smbd's log file.
    pub log: PathBuf,
    server: Option<Guard>,
    work: Option<tempfile::TempDir>,
}

impl Samba {
    /// Share `dir` as `export` (read-write, user `root`) on 127.0.0.1:`port`
    /// (0: a free port).
    pub fn start(dir: &Path, port: u16) -> Result<Self, String> {
        Samba::start_with(dir, port, SambaConfig::default())
    }

    /// As [`Samba::start`], set up by `config`.
    pub fn start_with(dir: &Path, port: u16, config: SambaConfig) -> Result<Self, String> {
        process::ensure_installed(&["smbd", "smbpasswd"], &["samba"])?;
        let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let work = tempfile::Builder::new()
            .prefix("weir-samba.")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let w = work.path();
        for sub in ["private", "state", "cache", "lock", "pid", "ncalrpc"] {
            std::fs::create_dir_all(w.join(sub)).map_err(|e| format!("{}: {e}", w.display()))?;
        }
        // Checking the port and starting the server are one step for every
        // process of this machine, so parallel tests never pick the same one.
        let _lock = FileLock::take("weir-samba-start.lock")?;
        let port = if port == 0 { free_port()? } else { port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if process::answers(addr) {
            return Err(format!("port {port} is already in use: pick another"));
        }
        let conf = w.join("smb.conf");
        let log = w.join("smbd.log");
        std::fs::write(&conf, smb_conf(w, &dir, port, &config))
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        add_user(&conf, &config.user, &config.password)?;
        for (name, uid) in &config.other_users {
            ensure_account(name, *uid)?;
            add_user(&conf, name, &config.password)?;
        }
        let child = Command::new("smbd")
            .arg("--foreground")
            .arg(format!("--configfile={}", conf.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("smbd: {e}"))?;
        let mut server = Guard::new("smbd", child);
        if !process::wait_port(addr, Duration::from_secs(30), || server.running()) {
            return Err(format!(
                "smbd did not come up on {addr}; {}:\n{}",
                log.display(),
                process::log_tail(&log, 20)
            ));
        }
        Ok(Samba {
            addr,
            config,
            dir,
            log,
            server: Some(server),
            work: Some(work),
        })
    }

    pub fn pid(&self) -> u32 {
        self.server.as_ref().map_or(0, Guard::pid)
    }

    /// `//127.0.0.1/export`, as smbclient and smbtorture name the share.
    pub fn unc(&self) -> String {
        format!("//{}/{}", self.addr.ip(), self.config.share)
    }

    /// The smb.conf this server runs with.
    pub fn conf(&self) -> Option<PathBuf> {
        self.work.as_ref().map(|w| w.path().join("smb.conf"))
    }

    /// Keep the work directory (config, log) after the server stops.
    pub fn keep_work(&mut self) -> Option<PathBuf> {
        self.work.take().map(tempfile::TempDir::keep)
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let leader = server.pid();
        let alive = server.running();
        if alive {
            // smbd leads its own process group (see the module comment):
            // TERM the whole group, connection children included.
            process::signal_group(leader, libc::SIGTERM);
        }
        server.stop(Duration::from_secs(10));
        if alive {
            // Children that outlived their parent still carry its group id.
            process::signal_group(leader, libc::SIGKILL);
        }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("bind: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("bind: {e}"))
}

fn smb_conf(work: &Path, dir: &Path, port: u16, c: &SambaConfig) -> String {
    let w = work.display();
    let signing = if c.signing_required {
        "mandatory"
    } else {
        "default"
    };
    let encrypt = if c.encrypt_required { "required" } else { "default" };
    let extra: String = c.extra_global.iter().map(|l| format!("   {l}\n")).collect();
    let users: Vec<&str> = std::iter::once(c.user.as_str())
        .chain(c.other_users.iter().map(|(n, _)| n.as_str()))
        .collect();
    format!(
        "[global]
   server role = standalone server
   workgroup = WEIRTEST
   netbios name = WEIRTEST
   smb ports = {port}
   bind interfaces only = yes
   interfaces = lo
   disable netbios = yes
   server min protocol = SMB2_02
   server max protocol = SMB3_11
   private dir = {w}/private
   state directory = {w}/state
   cache directory = {w}/cache
   lock directory = {w}/lock
   pid directory = {w}/pid
   ncalrpc dir = {w}/ncalrpc
   passdb backend = tdbsam:{w}/private/passdb.tdb
   log file = {w}/smbd.log
   max log size = 0
   log level = 1
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   usershare max shares = 0
   map to guest = never
   server signing = {signing}
   smb encrypt = {encrypt}
{extra}
[{share}]
   path = {dir}
   read only = no
   guest ok = no
   valid users = {users}
",
        share = c.share,
        dir = dir.display(),
        users = users.join(" "),
    )
}

/// Make the Unix account `name` with `uid` (and a group of the same id)
/// unless it exists; an account of that name with another uid is an error.
fn ensure_account(name: &str, uid: u32) -> Result<(), String> {
    let run = |cmd: &mut Command| -> Result<std::process::Output, String> {
        cmd.output().map_err(|e| format!("{cmd:?}: {e}"))
    };
    let found = run(Command::new("getent").args(["passwd", name]))?;
    if found.status.success() {
        let line = String::from_utf8_lossy(&found.stdout);
        let have = line.split(':').nth(2).unwrap_or("");
        return if have == uid.to_string() {
            Ok(())
        } else {
            Err(format!("the account {name} exists with uid {have}, not {uid}"))
        };
    }
    let id = uid.to_string();
    if !run(Command::new("getent").args(["group", &id]))?.status.success() {
        let out = run(Command::new("groupadd").args(["-g", &id, name]))?;
        if !out.status.success() {
            return Err(format!(
                "groupadd {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let out =
        run(Command::new("useradd").args(["-M", "-u", &id, "-g", &id, "-s", "/usr/sbin/nologin", name]))?;
    if !out.status.success() {
        return Err(format!(
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Add `user` with `password` to the private passdb of `conf`.
fn add_user(conf: &Path, user: &str, password: &str) -> Result<(), String> {
    let mut child = Command::new("smbpasswd")
        .arg("-c")
        .arg(conf)
        .args(["-a", "-s", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("smbpasswd: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{password}\n{password}").map_err(|e| format!("smbpasswd: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("smbpasswd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "smbpasswd -a {user} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
