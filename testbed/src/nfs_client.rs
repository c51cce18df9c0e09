//! NFSv3 clients that tests and benchmarks drive Weir and ganesha with, built
//! on crates.io `nfs3_client` / `nfs3_types` (an implementation nobody here
//! wrote): plain calls one at a time over [`Conn`], and [`Pipe`], which keeps
//! several calls in flight on one TCP connection as a kernel client does
//! (`nfs3_client` waits for each answer before it sends the next call).
//! Nothing here measures time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use nfs3_client::nfs3_types::nfs3::{
    self, createhow3, diropargs3, fattr3, filename3, nfs_fh3, sattr3, CREATE3args, GETATTR3args, LOOKUP3args,
    Nfs3Option, Nfs3Result, READ3args, READ3res, REMOVE3args,
};
use nfs3_client::nfs3_types::rpc::{
    accept_stat_data, auth_unix, call_body, msg_body, opaque_auth, reply_body, rpc_msg, RPC_VERSION_2,
};
use nfs3_client::nfs3_types::xdr_codec::{Opaque, Pack, Unpack};
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3Connection, Nfs3ConnectionBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::oneshot;

pub use nfs3_client::nfs3_types;

/// Where an NFSv3 server answers (its export is `/export`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub nfs: SocketAddr,
    pub mount_port: u16,
}

impl Endpoint {
    /// The export as a libnfs URL; both ports given, so no portmapper is asked.
    pub fn url(&self) -> String {
        format!(
            "nfs://{}/export?version=3&nfsport={}&mountport={}",
            self.nfs.ip(),
            self.nfs.port(),
            self.mount_port
        )
    }
}

pub type Conn = Nfs3Connection<TokioIo<tokio::net::TcpStream>>;

/// A single-threaded runtime, for clients that make one call at a time.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// AUTH_UNIX as root (0/0).
pub fn root_cred() -> opaque_auth<'static> {
    opaque_auth::auth_unix(&auth_unix {
        stamp: 0,
        machinename: Opaque::borrowed(b"weir-bench"),
        uid: 0,
        gid: 0,
        gids: vec![0],
    })
}

/// Mount `/export` as root (AUTH_UNIX 0/0).
pub async fn connect(ep: &Endpoint) -> Result<Conn, String> {
    Nfs3ConnectionBuilder::new(TokioConnector, ep.nfs.ip().to_string(), "/export")
        .mount_port(ep.mount_port)
        .nfs3_port(ep.nfs.port())
        .credential(root_cred())
        .mount()
        .await
        .map_err(|e| format!("mounting {}: {e}", ep.url()))
}

pub fn name(n: &str) -> filename3<'_> {
    filename3(Opaque::borrowed(n.as_bytes()))
}

pub fn dirop<'a>(dir: &nfs_fh3, n: &'a str) -> diropargs3<'a> {
    diropargs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

/// Maps a transport error of the call `what` on `n` to a message.
pub fn err<'a, E: std::fmt::Display>(what: &'a str, n: &'a str) -> impl FnOnce(E) -> String + 'a {
    move |e| format!("{what} {n}: {e}")
}

/// The result of a call that went through, or its NFS status as a message
/// (`"READ f: NFS3ERR_JUKEBOX"`).
pub fn status<T, E>(r: Nfs3Result<T, E>, what: &str, n: &str) -> Result<T, String> {
    match r {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((s, _)) => Err(format!("{what} {n}: {s:?}")),
    }
}

pub async fn lookup(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<nfs_fh3, String> {
    let r = c
        .lookup(&LOOKUP3args { what: dirop(dir, n) })
        .await
        .map_err(err("LOOKUP", n))?;
    Ok(status(r, "LOOKUP", n)?.object)
}

/// LOOKUP of each component of a `/`-separated path under the export root.
pub async fn lookup_path(c: &mut Conn, path: &str) -> Result<nfs_fh3, String> {
    let mut fh = c.root_nfs_fh3();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        fh = lookup(c, &fh, part).await?;
    }
    Ok(fh)
}

/// CREATE (unchecked: an existing file is truncated to `size` 0).
pub async fn create(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<nfs_fh3, String> {
    let attrs = sattr3 {
        mode: Nfs3Option::Some(0o644),
        size: Nfs3Option::Some(0),
        ..Default::default()
    };
    let r = c
        .create(&CREATE3args {
            where_: dirop(dir, n),
            how: createhow3::UNCHECKED(attrs),
        })
        .await
        .map_err(err("CREATE", n))?;
    match status(r, "CREATE", n)?.obj {
        Nfs3Option::Some(fh) => Ok(fh),
        Nfs3Option::None => lookup(c, dir, n).await,
    }
}

pub async fn remove(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<(), String> {
    let r = c
        .remove(&REMOVE3args {
            object: dirop(dir, n),
        })
        .await
        .map_err(err("REMOVE", n))?;
    status(r, "REMOVE", n).map(drop)
}

pub async fn getattr(c: &mut Conn, fh: &nfs_fh3) -> Result<fattr3, String> {
    let r = c
        .getattr(&GETATTR3args { object: fh.clone() })
        .await
        .map_err(err("GETATTR", ""))?;
    status(r, "GETATTR", "").map(|ok| ok.obj_attributes)
}

/// Read a file from start to end in 1 MiB requests; returns its size.
pub async fn read_file(c: &mut Conn, n: &str) -> Result<u64, String> {
    let root = c.root_nfs_fh3();
    let fh = lookup(c, &root, n).await?;
    let mut offset = 0u64;
    loop {
        let r = c
            .read(&READ3args {
                file: fh.clone(),
                offset,
                count: 1 << 20,
            })
            .await
            .map_err(err("READ", n))?;
        let ok = status(r, "READ", n)?;
        offset += u64::from(ok.count);
        if ok.eof || ok.count == 0 {
            return Ok(offset);
        }
    }
}

/// Replies waited for, by XID; `None` once the connection is gone.
type Waiters = Arc<Mutex<Option<HashMap<u32, oneshot::Sender<Vec<u8>>>>>>;

/// One TCP connection to an NFSv3 server on which any number of calls may be
/// in flight at once; replies are matched to calls by XID.
pub struct Pipe {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    waiters: Waiters,
    xid: AtomicU32,
    cred: opaque_auth<'static>,
    reader: tokio::task::JoinHandle<()>,
}

impl Pipe {
    /// Connect to the NFS service at `addr`, calling as root.
    pub async fn connect(addr: SocketAddr) -> Result<Pipe, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut rd, wr) = stream.into_split();
        let waiters: Waiters = Arc::new(Mutex::new(Some(HashMap::new())));
        let w = waiters.clone();
        let reader = tokio::spawn(async move {
            let mut record = Vec::new();
            while let Ok(mark) = rd.read_u32().await {
                let start = record.len();
                record.resize(start + (mark & 0x7fff_ffff) as usize, 0);
                if rd.read_exact(&mut record[start..]).await.is_err() {
                    break;
                }
                if mark & 0x8000_0000 == 0 {
                    continue; // more fragments of this record follow
                }
                let reply = std::mem::take(&mut record);
                let Some(xid) = reply
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                else {
                    break;
                };
                let waiter = w.lock().unwrap().as_mut().and_then(|m| m.remove(&xid));
                if let Some(tx) = waiter {
                    let _ = tx.send(reply);
                }
            }
            // Every call still waiting fails: its sender is dropped here.
            w.lock().unwrap().take();
        });
        Ok(Pipe {
            writer: tokio::sync::Mutex::new(wr),
            waiters,
            xid: AtomicU32::new(rand_xid()),
            cred: root_cred(),
            reader,
        })
    }

    /// Call NFSv3 procedure `proc` with `args`; several may be in flight.
    pub async fn call<A: Pack + Sync, R: Unpack>(&self, proc: u32, args: &A) -> Result<R, String> {
        let xid = self.xid.fetch_add(1, Ordering::Relaxed);
        let msg = rpc_msg {
            xid,
            body: msg_body::CALL(call_body {
                rpcvers: RPC_VERSION_2,
                prog: nfs3::PROGRAM,
                vers: nfs3::VERSION,
                proc,
                cred: self.cred.borrow(),
                verf: opaque_auth::default(),
            }),
        };
        let len = msg.packed_size() + args.packed_size();
        let mut buf = Vec::with_capacity(len + 4);
        buf.extend_from_slice(&(0x8000_0000 | len as u32).to_be_bytes());
        msg.pack(&mut buf).map_err(|e| format!("encoding a call: {e}"))?;
        args.pack(&mut buf).map_err(|e| format!("encoding a call: {e}"))?;
        let (tx, rx) = oneshot::channel();
        match self.waiters.lock().unwrap().as_mut() {
            Some(m) => m.insert(xid, tx),
            None => return Err("connection closed".into()),
        };
        self.writer
            .lock()
            .await
            .write_all(&buf)
            .await
            .map_err(|e| format!("sending a call: {e}"))?;
        let reply = rx
            .await
            .map_err(|_| "connection closed before the reply".to_string())?;
        let mut cur = std::io::Cursor::new(reply);
        let (reply, _) = rpc_msg::unpack(&mut cur).map_err(|e| format!("decoding a reply: {e}"))?;
        match reply.body {
            msg_body::REPLY(reply_body::MSG_ACCEPTED(a)) => match a.reply_data {
                accept_stat_data::SUCCESS => {}
                other => return Err(format!("call not accepted: {other:?}")),
            },
            other => return Err(format!("call rejected: {other:?}")),
        }
        R::unpack(&mut cur)
            .map(|(r, _)| r)
            .map_err(|e| format!("decoding a reply: {e}"))
    }

    /// READ `count` bytes at `offset`: the data and whether it reached the end.
    pub async fn read(&self, fh: &nfs_fh3, offset: u64, count: u32) -> Result<(Vec<u8>, bool), String> {
        let args = READ3args {
            file: fh.clone(),
            offset,
            count,
        };
        let r: READ3res<'static> = self.call(nfs3::NFS_PROGRAM::NFSPROC3_READ as u32, &args).await?;
        let ok = status(r, "READ", &format!("at {offset}"))?;
        Ok((ok.data.into_owned(), ok.eof))
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A starting XID that differs between connections and runs.
fn rand_xid() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    static N: AtomicU32 = AtomicU32::new(0);
    (t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(16))
        .wrapping_add(N.fetch_add(1 << 24, Ordering::Relaxed))
}
