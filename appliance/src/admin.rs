//! The admin socket: how local commands (`weir prime`, `flush`, `status`) reach a
//! running `weir serve`. A Unix socket `<data dir>/weir.sock`, mode 0600 so
//! only the user the server runs as may use it, made at start and removed at
//! exit; one JSON request per line in, JSON response lines out.
//!
//! It runs on the engine's sidecar runtime and never sits on the data path.
//! Whatever a client sends, the answer is an error line, never a crash.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdListener, UnixStream as StdStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use cache_engine::{Engine, FileHandle};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};

use crate::{flush, prime};

/// File name of the socket in the data dir.
pub const SOCKET_NAME: &str = "weir.sock";
/// Longest request line accepted.
const MAX_LINE: usize = 1 << 20;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// `dir/name` as an address a socket can take: a socket path must be short
/// (108 bytes), so a long one goes through `/proc/self/fd`, with the
/// directory held open by the returned file while the address is used.
fn sock_addr(dir: &Path, name: &str) -> std::io::Result<(PathBuf, Option<std::fs::File>)> {
    let full = dir.join(name);
    if full.as_os_str().len() < 100 {
        return Ok((full, None));
    }
    let d = std::fs::File::open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()));
    Ok((short, Some(d)))
}

/// Connect to the admin socket in `data_dir`.
fn connect_in(data_dir: &Path) -> std::io::Result<StdStream> {
    let (addr, _dir) = sock_addr(data_dir, SOCKET_NAME)?;
    StdStream::connect(addr)
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// Answered with `pong`: is the server there?
    Ping,
    /// Read `paths` (export paths; directories whole) into the cache.
    Prime {
        paths: Vec<String>,
        #[serde(default = "prime::default_parallel")]
        parallel: usize,
    },
    /// Write back the dirty data of `paths` (none: everything) now.
    Flush {
        #[serde(default)]
        paths: Vec<String>,
    },
    /// What is waiting to be written back.
    Status,
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Response {
    Pong {
        version: String,
    },
    /// Where a prime stands (sent periodically while it runs).
    Progress(prime::Progress),
    /// One path a prime could not do, and why.
    Failed {
        path: String,
        error: String,
    },
    /// The prime is over: final counts.
    Done {
        #[serde(flatten)]
        totals: prime::Progress,
        errors: u64,
        elapsed_ms: u64,
    },
    /// Where a flush stands: dirty bytes left.
    FlushProgress {
        dirty_bytes: u64,
    },
    /// A flush is over.
    Flushed {
        files: u64,
        bytes: u64,
        parked: Vec<flush::Parked>,
        elapsed_ms: u64,
    },
    Status(flush::Status),
    /// The request itself could not be done.
    Error {
        message: String,
    },
}

/// What request handlers may use.
pub struct Context {
    pub engine: Engine,
    /// Export paths and the engine handles of the directories they show.
    pub exports: Vec<(String, FileHandle)>,
}

/// The bound socket of a running server; the file goes when this is dropped.
pub struct AdminSocket {
    path: PathBuf,
    listener: Option<StdListener>,
}

impl AdminSocket {
    /// Create `<data_dir>/weir.sock`, replacing one left by a server that
    /// died, refusing when another server still answers on it.
    pub fn bind(data_dir: &Path) -> anyhow::Result<AdminSocket> {
        let path = socket_path(data_dir);
        match std::fs::symlink_metadata(&path) {
            Ok(md) if md.file_type().is_socket() => {
                if connect_in(data_dir).is_ok() {
                    bail!(
                        "another weir serve is running with data dir {} (its admin socket {} answers); \
                         stop it or use another --data-dir",
                        data_dir.display(),
                        path.display()
                    );
                }
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove the stale admin socket {}", path.display()))?;
            }
            Ok(_) => bail!(
                "{} exists and is not a socket: move it away (weir keeps its admin socket there)",
                path.display()
            ),
            Err(_) => {}
        }
        // Bound under a temporary name and renamed once it is 0600, so that
        // nobody else can connect in between whatever the umask.
        let tmp_name = format!(".{SOCKET_NAME}.{}", std::process::id());
        let tmp = data_dir.join(&tmp_name);
        let _ = std::fs::remove_file(&tmp);
        let listener = sock_addr(data_dir, &tmp_name)
            .and_then(|(addr, _dir)| StdListener::bind(addr))
            .and_then(|l| {
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
                std::fs::rename(&tmp, &path)?;
                Ok(l)
            })
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                anyhow!("cannot create the admin socket {}: {e}", path.display())
            })?;
        listener.set_nonblocking(true)?;
        Ok(AdminSocket {
            path,
            listener: Some(listener),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answer requests on `rt` (the sidecar) until it stops.
    pub fn serve(&mut self, rt: &tokio::runtime::Handle, ctx: Arc<Context>) -> anyhow::Result<()> {
        let Some(std) = self.listener.take() else {
            bail!("the admin socket is served already");
        };
        let listener = {
            let _ctx = rt.enter();
            UnixListener::from_std(std)?
        };
        rt.spawn(accept_loop(listener, ctx));
        Ok(())
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(listener: UnixListener, ctx: Arc<Context>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(session(stream, ctx.clone()));
            }
            Err(e) => {
                tracing::warn!("admin socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Writes response lines to one client.
pub struct Responder(OwnedWriteHalf);

impl Responder {
    pub async fn send(&mut self, r: &Response) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.0.write_all(&line).await
    }
}

/// Requests of one client, one after the other, until it hangs up.
async fn session(stream: UnixStream, ctx: Arc<Context>) {
    let (r, w) = stream.into_split();
    let mut r = AsyncBufReader::new(r);
    let mut out = Responder(w);
    loop {
        let mut line = Vec::new();
        match (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.len() > MAX_LINE {
            let message = format!("request longer than {MAX_LINE} bytes");
            let _ = out.send(&Response::Error { message }).await;
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let sent = match serde_json::from_slice::<Request>(&line) {
            Err(e) => {
                let message = format!("malformed request: {e}");
                out.send(&Response::Error { message }).await
            }
            Ok(Request::Ping) => {
                let version = env!("CARGO_PKG_VERSION").to_string();
                out.send(&Response::Pong { version }).await
            }
            Ok(Request::Prime { paths, parallel }) => prime::serve(&ctx, paths, parallel, &mut out).await,
            Ok(Request::Flush { paths }) => flush::serve_flush(&ctx, paths, &mut out).await,
            Ok(Request::Status) => flush::serve_status(&ctx, &mut out).await,
        };
        // The client went away.
        if sent.is_err() {
            return;
        }
    }
}

/// A connection to a running server's admin socket (blocking: the CLI side).
pub struct Client {
    reader: BufReader<StdStream>,
    writer: StdStream,
}

impl Client {
    /// Connect to the server using `data_dir`; the error says in one line
    /// whether none is running there.
    pub fn connect(data_dir: &Path) -> anyhow::Result<Client> {
        let path = socket_path(data_dir);
        let stream = connect_in(data_dir).map_err(|e| {
            let dir = data_dir.display();
            match e.kind() {
                std::io::ErrorKind::NotFound => anyhow!(
                    "no weir serve is running with data dir {dir} (no admin socket {}); \
                     start one, or name its --data-dir or --config",
                    path.display()
                ),
                std::io::ErrorKind::ConnectionRefused => anyhow!(
                    "no weir serve is running with data dir {dir} ({} was left by one that stopped)",
                    path.display()
                ),
                std::io::ErrorKind::PermissionDenied => anyhow!(
                    "{}: permission denied (run as the user weir serve runs as)",
                    path.display()
                ),
                _ => anyhow!("cannot reach weir serve at {}: {e}", path.display()),
            }
        })?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    pub fn send(&mut self, req: &Request) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .context("the admin socket closed while sending the request")
    }

    /// The next response; None when the server closed the connection.
    pub fn next(&mut self) -> anyhow::Result<Option<Response>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| anyhow!("unexpected answer from weir serve: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_json_lines() {
        let r: Request = serde_json::from_str(r#"{"cmd":"prime","paths":["/export/a"]}"#).unwrap();
        assert_eq!(
            r,
            Request::Prime {
                paths: vec!["/export/a".into()],
                parallel: prime::default_parallel()
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::Ping).unwrap(),
            r#"{"cmd":"ping"}"#
        );
        let done = Response::Done {
            totals: prime::Progress {
                files_done: 2,
                ..Default::default()
            },
            errors: 1,
            elapsed_ms: 5,
        };
        let text = serde_json::to_string(&done).unwrap();
        assert!(text.starts_with(r#"{"event":"done","#), "{text}");
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), done);
        for bad in [
            "",
            "{}",
            r#"{"cmd":"format-disk"}"#,
            r#"{"cmd":"prime"}"#,
            "\u{0}",
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stale_socket_is_replaced_and_removed_at_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let path = socket_path(tmp.path());
        // What a crashed server leaves: a socket file nobody listens on.
        drop(StdListener::bind(&path).unwrap());
        assert!(path.exists());
        let sock = AdminSocket::bind(tmp.path()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second server on the same data dir is refused while this one answers.
        let err = AdminSocket::bind(tmp.path()).err().unwrap();
        assert!(err.to_string().contains("another weir serve is running"), "{err}");
        drop(sock);
        assert!(!path.exists());
        std::fs::write(&path, b"x").unwrap();
        let err = AdminSocket::bind(tmp.path()).err().unwrap();
        assert!(err.to_string().contains("is not a socket"), "{err}");
    }

    #[test]
    fn a_long_data_dir_still_gets_its_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp
            .path()
            .join("a-rather-long-directory-name-for-a-data-dir".repeat(4));
        std::fs::create_dir_all(&deep).unwrap();
        assert!(socket_path(&deep).as_os_str().len() > 108);
        let sock = AdminSocket::bind(&deep).unwrap();
        assert!(socket_path(&deep).exists());
        // Listening (not yet served): a connection is queued, so it succeeds.
        Client::connect(&deep).unwrap();
        drop(sock);
        assert!(!socket_path(&deep).exists());
    }

    #[test]
    fn no_server_is_one_clear_line() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Client::connect(tmp.path()).err().unwrap().to_string();
        assert!(err.starts_with("no weir serve is running"), "{err}");
        drop(StdListener::bind(socket_path(tmp.path())).unwrap());
        let err = Client::connect(tmp.path()).err().unwrap().to_string();
        assert!(err.contains("left by one that stopped"), "{err}");
    }
}
