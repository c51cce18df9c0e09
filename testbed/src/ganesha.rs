//! nfs-ganesha (FSAL_VFS) exporting a directory at `/export` on 127.0.0.1,
//! NFSv3 over TCP only, plus the rpcbind it insists on registering with.
//!
//! rpcbind 1.2.6 listens on every address (and crashes with `-h`), so it runs
//! in a network namespace of its own; ganesha registers through
//! `/run/rpcbind.sock` all the same, and clients that name both ports never
//! ask it. An rpcbind that already answers on that socket is used as is.

use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, Guard};

const RPCBIND_SOCK: &str = "/run/rpcbind.sock";
/// What Debian's nfs-ganesha-vfs installs.
const FSAL_VFS: &str = "/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so";

/// A running ganesha (and the rpcbind this process started, if any).
pub struct Ganesha {
    pub nfs: SocketAddr,
    pub mount_port: u16,
    pub log: PathBuf,
    server: Guard,
    // Stopped after the server, which deregisters from it on exit.
    rpcbind: Option<Guard>,
}

impl Ganesha {
    /// Install (as root) what is missing, then start rpcbind and ganesha
    /// exporting `dir`; `work` holds the config, log and pid file.
    pub fn start(dir: &Path, work: &Path, nfs_port: u16, mount_port: u16) -> Result<Self, String> {
        Ganesha::start_with(dir, work, nfs_port, mount_port, None)
    }

    /// As [`Ganesha::start`], but ganesha's own attribute cache is off
    /// (`Attr_Expiration_Time = 0`), so files changed in `dir` directly,
    /// behind ganesha's back, show at once, as changes on a NAS's own disk do.
    /// With the default (60 s) ganesha answers GETATTR with the old size
    /// and times for up to a minute after such a change.
    pub fn start_fresh_attrs(
        dir: &Path,
        work: &Path,
        nfs_port: u16,
        mount_port: u16,
    ) -> Result<Self, String> {
        Ganesha::start_with(dir, work, nfs_port, mount_port, Some(0))
    }

    fn start_with(
        dir: &Path,
        work: &Path,
        nfs_port: u16,
        mount_port: u16,
        attr_expiration: Option<u32>,
    ) -> Result<Self, String> {
        process::ensure_installed(
            &["ganesha.nfsd", "rpcbind", "unshare", FSAL_VFS],
            &["nfs-ganesha", "nfs-ganesha-vfs", "rpcbind"],
        )?;
        let _lock = StartLock::take()?;
        let nfs = SocketAddr::from(([127, 0, 0, 1], nfs_port));
        for port in [nfs_port, mount_port] {
            if process::answers(SocketAddr::from(([127, 0, 0, 1], port))) {
                return Err(format!(
                    "port {port} is already in use: pick others with the port flags"
                ));
            }
        }
        let rpcbind = start_rpcbind()?;
        std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
        let conf = work.join("ganesha.conf");
        let log = work.join("ganesha.log");
        let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(&conf, config(&dir, nfs_port, mount_port, attr_expiration))
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        let child = Command::new("ganesha.nfsd")
            .arg("-F")
            .arg("-f")
            .arg(&conf)
            .arg("-L")
            .arg(&log)
            .arg("-p")
            .arg(work.join("ganesha.pid"))
            .args(["-N", "NIV_EVENT"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("ganesha.nfsd: {e}"))?;
        let mut server = Guard::new("ganesha.nfsd", child);
        let up = [nfs_port, mount_port].iter().all(|&p| {
            process::wait_port(
                SocketAddr::from(([127, 0, 0, 1], p)),
                Duration::from_secs(60),
                || server.running(),
            )
        });
        if !up {
            return Err(format!(
                "ganesha did not come up on ports {nfs_port}/{mount_port}; {}:\n{}",
                log.display(),
                process::log_tail(&log, 15)
            ));
        }
        Ok(Ganesha {
            nfs,
            mount_port,
            log,
            server,
            rpcbind,
        })
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        let _lock = StartLock::take();
        self.server.stop(Duration::from_secs(10));
        drop(self.rpcbind.take());
    }
}

/// Serialises ganesha starts and stops across processes (tests run in
/// parallel): instances registering with one rpcbind at the same moment make
/// each other fail with "Cannot register NFS V3 on TCP", and an rpcbind must
/// not go away while another instance registers with it.
struct StartLock;

impl StartLock {
    fn take() -> Result<process::FileLock, String> {
        process::FileLock::take("weir-ganesha-start.lock")
    }
}

fn config(dir: &Path, nfs_port: u16, mount_port: u16, attr_expiration: Option<u32>) -> String {
    let attr_expiration = attr_expiration
        .map(|s| format!("\n    Attr_Expiration_Time = {s};"))
        .unwrap_or_default();
    format!(
        r#"NFS_CORE_PARAM {{
    Protocols = 3;
    Bind_addr = 127.0.0.1;
    NFS_Port = {nfs_port};
    MNT_Port = {mount_port};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = true;
}}
NFSV4 {{ Graceless = true; }}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
    Export_Id = 1;
    Path = "{dir}";
    Pseudo = "/export";
    Protocols = 3;
    Transports = TCP;
    Access_Type = RW;
    Squash = None;
    SecType = sys;{attr_expiration}
    FSAL {{ Name = VFS; }}
}}
"#,
        dir = dir.display()
    )
}

/// An rpcbind for ganesha to register with: the one already answering on
/// its socket, or one of ours in a private network namespace.
fn start_rpcbind() -> Result<Option<Guard>, String> {
    if UnixStream::connect(RPCBIND_SOCK).is_ok() {
        return Ok(None);
    }
    // unshare execs rpcbind: the child's PID is rpcbind's.
    let child = Command::new("unshare")
        .args(["-n", "rpcbind", "-f", "-w"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("unshare -n rpcbind: {e}"))?;
    let mut guard = Guard::new("rpcbind", child);
    for _ in 0..100 {
        if UnixStream::connect(RPCBIND_SOCK).is_ok() {
            return Ok(Some(guard));
        }
        if !guard.running() {
            return Err("rpcbind exited at start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("rpcbind did not open {RPCBIND_SOCK}"))
}

/// ganesha exporting a fresh temp directory on ports of its own, which a
/// test can stop and start again to play an outage of the NAS. Ganesha's
/// work files and a `state` directory (for the client's own state) sit
/// beside the export.
pub struct Export {
    tmp: tempfile::TempDir,
    pub nfs_port: u16,
    pub mount_port: u16,
    server: Option<Ganesha>,
}

impl Export {
    /// A running export of an empty directory; panics when ganesha cannot start.
    pub fn start() -> Export {
        let tmp = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(tmp.path().join("export")).expect("export dir");
        let (nfs_port, mount_port) = loop {
            let pair = (crate::samba::free_port(), crate::samba::free_port());
            if let (Ok(a), Ok(b)) = pair {
                if a != b {
                    break (a, b);
                }
            }
        };
        let mut export = Export {
            tmp,
            nfs_port,
            mount_port,
            server: None,
        };
        export.up();
        export
    }

    /// Start ganesha again on the same ports, over the same directory.
    pub fn up(&mut self) {
        let g = Ganesha::start(
            &self.dir(),
            &self.tmp.path().join("ganesha"),
            self.nfs_port,
            self.mount_port,
        )
        .unwrap_or_else(|e| panic!("ganesha: {e}"));
        self.server = Some(g);
    }

    /// Stop ganesha (the directory stays).
    pub fn down(&mut self) {
        self.server = None;
    }

    /// The running server, if it is up.
    pub fn server(&self) -> Option<&Ganesha> {
        self.server.as_ref()
    }

    /// The exported directory, as the host sees it.
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("export")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    /// A directory for the client's own state, kept across its restarts.
    pub fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }
}
