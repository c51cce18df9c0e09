//! NFSv3 client helpers for benchmarks: the plain calls live in
//! [`testbed::nfs_client`] (re-exported here); this adds the metadata
//! workload at queue depth 1 and its latency statistics.

use std::time::{Duration, Instant};

use testbed::nfs_client::nfs3_types::nfs3::{
    cookieverf3, nfs_fh3, sattr3, MKDIR3args, Nfs3Option, READDIRPLUS3args, RMDIR3args,
};
pub use testbed::nfs_client::*;

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
                "stat (GETATTR)" => {
                    getattr(c, &self.handles[i]).await?;
                }
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
