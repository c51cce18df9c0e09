//! An NFSv3 client (crates.io `nfs3_client`, an implementation nobody here
//! wrote) for what fio's `nfs` engine does not do: warming a server's cache,
//! making and removing files, and the metadata workload at queue depth 1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nfs3_client::nfs3_types::nfs3::{
    cookieverf3, createhow3, diropargs3, filename3, nfs_fh3, sattr3, CREATE3args, GETATTR3args, LOOKUP3args,
    MKDIR3args, Nfs3Option, Nfs3Result, READ3args, READDIRPLUS3args, REMOVE3args, RMDIR3args,
};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3Connection, Nfs3ConnectionBuilder};

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

/// A single-threaded runtime: the client runs at queue depth 1 anyway.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Mount `/export` as root (AUTH_UNIX 0/0).
pub async fn connect(ep: &Endpoint) -> Result<Conn, String> {
    let cred = opaque_auth::auth_unix(&auth_unix {
        stamp: 0,
        machinename: Opaque::borrowed(b"weir-bench"),
        uid: 0,
        gid: 0,
        gids: vec![0],
    });
    Nfs3ConnectionBuilder::new(TokioConnector, ep.nfs.ip().to_string(), "/export")
        .mount_port(ep.mount_port)
        .nfs3_port(ep.nfs.port())
        .credential(cred)
        .mount()
        .await
        .map_err(|e| format!("mounting {}: {e}", ep.url()))
}

fn name(n: &str) -> filename3<'_> {
    filename3(Opaque::borrowed(n.as_bytes()))
}

fn dirop<'a>(dir: &nfs_fh3, n: &'a str) -> diropargs3<'a> {
    diropargs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

fn err<'a, E: std::fmt::Display>(what: &'a str, n: &'a str) -> impl FnOnce(E) -> String + 'a {
    move |e| format!("{what} {n}: {e}")
}

fn status<T, E>(r: Nfs3Result<T, E>, what: &str, n: &str) -> Result<T, String> {
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

pub async fn getattr(c: &mut Conn, fh: &nfs_fh3) -> Result<(), String> {
    let r = c
        .getattr(&GETATTR3args { object: fh.clone() })
        .await
        .map_err(err("GETATTR", ""))?;
    status(r, "GETATTR", "").map(drop)
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

/// Latencies of one kind of operation and the wall time they took.
#[derive(Debug, Clone, Default)]
pub struct OpStats {
    pub lat: Vec<Duration>,
    /// Items done (files, or entries listed for readdir).
    pub items: u64,
    pub wall: Duration,
}

impl OpStats {
    pub fn add(&mut self, o: &OpStats) {
        self.lat.extend_from_slice(&o.lat);
        self.items += o.items;
        self.wall += o.wall;
    }

    pub fn per_sec(&self) -> f64 {
        self.items as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn mean_us(&self) -> f64 {
        let sum: Duration = self.lat.iter().sum();
        sum.as_secs_f64() * 1e6 / self.lat.len().max(1) as f64
    }

    pub fn p99_us(&self) -> f64 {
        percentile(&self.lat, 99.0).as_secs_f64() * 1e6
    }
}

/// Nearest-rank percentile (0 for no samples).
pub fn percentile(lat: &[Duration], p: f64) -> Duration {
    if lat.is_empty() {
        return Duration::ZERO;
    }
    let mut v = lat.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The metadata workload's operations, in the order they run.
pub const META_OPS: [&str; 6] = [
    "NULL (transport floor)",
    "create",
    "stat (GETATTR)",
    "lookup",
    "readdirplus",
    "remove",
];

/// The metadata workload on one server, one call at a time, in steps a
/// driver can interleave with another server's: NULL calls (the transport
/// floor), then in a fresh directory create empty files, GETATTR each, LOOKUP each, list the directory with
/// READDIRPLUS, remove each, remove the directory.
pub struct Meta {
    dir: String,
    fh: nfs_fh3,
    names: Vec<String>,
    handles: Vec<nfs_fh3>,
}

impl Meta {
    /// Make the directory `dir` under the export for `files` files.
    pub async fn start(c: &mut Conn, dir: &str, files: usize) -> Result<Meta, String> {
        let root = c.root_nfs_fh3();
        let r = c
            .mkdir(&MKDIR3args {
                where_: dirop(&root, dir),
                attributes: sattr3 {
                    mode: Nfs3Option::Some(0o755),
                    ..Default::default()
                },
            })
            .await
            .map_err(err("MKDIR", dir))?;
        let fh = match status(r, "MKDIR", dir)?.obj {
            Nfs3Option::Some(fh) => fh,
            Nfs3Option::None => lookup(c, &root, dir).await?,
        };
        Ok(Meta {
            dir: dir.into(),
            fh,
            names: (0..files).map(|i| format!("f{i:06}")).collect(),
            handles: Vec::with_capacity(files),
        })
    }

    /// Run `op` (one of [`META_OPS`]) on files `range`; readdirplus lists
    /// the whole directory and ignores `range`.
    pub async fn step(
        &mut self,
        c: &mut Conn,
        op: &str,
        range: std::ops::Range<usize>,
    ) -> Result<OpStats, String> {
        if op == META_OPS[4] {
            return self.readdirplus(c).await;
        }
        let mut s = OpStats::default();
        let t = Instant::now();
        for i in range {
            let n = &self.names[i];
            let t1 = Instant::now();
            match op {
                "create" => {
                    let fh = create(c, &self.fh, n).await?;
                    s.lat.push(t1.elapsed());
                    self.handles.push(fh);
                    continue;
                }
                "NULL (transport floor)" => c.null().await.map_err(err("NULL", ""))?,
                "stat (GETATTR)" => getattr(c, &self.handles[i]).await?,
                "lookup" => drop(lookup(c, &self.fh, n).await?),
                "remove" => remove(c, &self.fh, n).await?,
                _ => return Err(format!("no metadata operation {op}")),
            }
            s.lat.push(t1.elapsed());
        }
        s.wall = t.elapsed();
        s.items = s.lat.len() as u64;
        Ok(s)
    }

    async fn readdirplus(&self, c: &mut Conn) -> Result<OpStats, String> {
        let dir = &self.dir;
        let mut s = OpStats::default();
        let t = Instant::now();
        let (mut cookie, mut verf) = (0u64, cookieverf3::default());
        loop {
            let t1 = Instant::now();
            let r = c
                .readdirplus(&READDIRPLUS3args {
                    dir: self.fh.clone(),
                    cookie,
                    cookieverf: verf,
                    dircount: 8192,
                    maxcount: 65536,
                })
                .await
                .map_err(err("READDIRPLUS", dir))?;
            let ok = status(r, "READDIRPLUS", dir)?;
            s.lat.push(t1.elapsed());
            verf = ok.cookieverf;
            let entries = ok.reply.entries.0;
            s.items += entries.iter().filter(|e| e.name.0.first() != Some(&b'.')).count() as u64;
            match entries.last() {
                Some(e) if !ok.reply.eof => cookie = e.cookie,
                _ => break,
            }
        }
        s.wall = t.elapsed();
        if s.items != self.handles.len() as u64 {
            let n = self.handles.len();
            return Err(format!("READDIRPLUS of {dir} listed {} of {n} files", s.items));
        }
        Ok(s)
    }

    /// Remove the (by now empty) directory.
    pub async fn finish(self, c: &mut Conn) -> Result<(), String> {
        let root = c.root_nfs_fh3();
        let r = c
            .rmdir(&RMDIR3args {
                object: dirop(&root, &self.dir),
            })
            .await
            .map_err(err("RMDIR", &self.dir))?;
        status(r, "RMDIR", &self.dir).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let us = |v: u64| Duration::from_micros(v);
        let lat: Vec<_> = (1..=100).rev().map(us).collect();
        assert_eq!(percentile(&lat, 99.0), us(99));
        assert_eq!(percentile(&lat, 50.0), us(50));
        assert_eq!(percentile(&lat, 100.0), us(100));
        assert_eq!(percentile(&[us(7)], 99.0), us(7));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }

    #[test]
    fn urls_name_both_ports() {
        let ep = Endpoint {
            nfs: "127.0.0.1:20690".parse().unwrap(),
            mount_port: 20680,
        };
        assert_eq!(
            ep.url(),
            "nfs://127.0.0.1/export?version=3&nfsport=20690&mountport=20680"
        );
    }
}
