//! NFSv3 writers for the write-behind tests, and the model they keep: each
//! file has one operation in flight at a time (a WRITE at a random offset,
//! FILE_SYNC or UNSTABLE followed by COMMIT, or a SETATTR of its size), and
//! its model holds exactly the operations Weir acknowledged as durable. The
//! operation in flight when Weir died may or may not have landed; [`check`]
//! accepts either for that one operation only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use testbed::nfs_client::nfs3_types::nfs3::{
    self, createhow3, nfs_fh3, sattr3, stable_how, COMMIT3args, COMMIT3res, CREATE3args, CREATE3res,
    LOOKUP3args, LOOKUP3res, Nfs3Option, SETATTR3args, SETATTR3res, WRITE3args, WRITE3res,
};
use testbed::nfs_client::nfs3_types::xdr_codec::Opaque;
use testbed::nfs_client::{self as nfs, Pipe};

use super::nas::{bounded, HANG};

/// Files grow to at most this size.
pub const MAX_SIZE: u64 = 1 << 20;

/// One change a client asks for.
#[derive(Clone, Debug)]
pub enum Op {
    Write {
        offset: u64,
        data: Vec<u8>,
        stable: bool,
    },
    Resize(u64),
}

impl Op {
    /// A random change of a file of up to [`MAX_SIZE`] bytes.
    pub fn random(rng: &mut StdRng) -> Op {
        if rng.random_ratio(1, 10) {
            return Op::Resize(rng.random_range(0..=MAX_SIZE));
        }
        let offset = rng.random_range(0..MAX_SIZE);
        let max = if rng.random_ratio(1, 4) { 4096 } else { 128 << 10 };
        let len = rng.random_range(1..=max.min(MAX_SIZE - offset));
        let mut data = vec![0u8; len as usize];
        rng.fill_bytes(&mut data);
        Op::Write {
            offset,
            data,
            stable: rng.random_bool(0.5),
        }
    }

    /// What the file holds once the change is made.
    pub fn apply(&self, model: &mut Vec<u8>) {
        match self {
            Op::Write { offset, data, .. } => {
                let (at, end) = (*offset as usize, *offset as usize + data.len());
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[at..end].copy_from_slice(data);
            }
            Op::Resize(size) => model.resize(*size as usize, 0),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Op::Write { offset, data, stable } => format!(
                "WRITE {} bytes at {offset} ({})",
                data.len(),
                if *stable { "FILE_SYNC" } else { "UNSTABLE + COMMIT" }
            ),
            Op::Resize(size) => format!("SETATTR size {size}"),
        }
    }
}

/// A file the test writes, and what it must hold.
pub struct File {
    pub name: String,
    pub fh: nfs_fh3,
    /// Every acknowledged change applied, in order.
    pub model: Vec<u8>,
    /// The change sent and not yet acknowledged.
    pub pending: Option<Op>,
}

/// What the writers did, over the whole test.
#[derive(Default)]
pub struct Stats {
    pub writes: AtomicU64,
    pub written_bytes: AtomicU64,
    pub resizes: AtomicU64,
    pub jukebox: AtomicU64,
    /// Operations in flight when Weir died, and those of them that landed.
    pub in_flight: AtomicU64,
    pub landed: AtomicU64,
}

impl Stats {
    pub fn acknowledged(&self) -> u64 {
        self.writes.load(Relaxed) + self.resizes.load(Relaxed)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} writes ({} bytes) and {} resizes acknowledged, {} JUKEBOX retries, \
             {} operations in flight at a kill of which {} landed",
            self.writes.load(Relaxed),
            self.written_bytes.load(Relaxed),
            self.resizes.load(Relaxed),
            self.jukebox.load(Relaxed),
            self.in_flight.load(Relaxed),
            self.landed.load(Relaxed),
        )
    }
}

/// Why an operation did not complete.
pub enum Fail {
    /// The connection broke: Weir is gone.
    Gone(String),
    /// Told to stop while Weir answered JUKEBOX.
    Stopped,
    /// Weir answered with an error.
    Nfs(String),
}

/// An NFS call's outcome: transport errors mean Weir is gone.
pub fn outcome<T, E>(r: Result<nfs3::Nfs3Result<T, E>, String>, what: &str) -> Result<T, Fail> {
    nfs::status(r.map_err(Fail::Gone)?, what, "").map_err(Fail::Nfs)
}

/// `call` again while Weir answers JUKEBOX (the dirty quota is full), for
/// up to [`HANG`].
pub async fn retrying<T, E, F>(
    (stats, stop): (&Stats, &AtomicBool),
    what: &str,
    mut call: impl FnMut() -> F,
) -> Result<T, Fail>
where
    F: std::future::Future<Output = Result<nfs3::Nfs3Result<T, E>, String>>,
{
    let t = Instant::now();
    loop {
        match outcome(call().await, what) {
            Err(Fail::Nfs(e)) if e.contains("JUKEBOX") && t.elapsed() < HANG => {
                stats.jukebox.fetch_add(1, Relaxed);
                if stop.load(Relaxed) {
                    return Err(Fail::Stopped);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// What one writer works with.
struct Writer {
    pipe: Arc<Pipe>,
    file: Arc<Mutex<File>>,
    fh: nfs_fh3,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

impl Writer {
    fn ctx(&self) -> (&Stats, &AtomicBool) {
        (&self.stats, &self.stop)
    }

    /// Weir acknowledged `op` as durable: the model takes it.
    fn acknowledged(&self, op: &Op) {
        let mut f = self.file.lock().unwrap();
        op.apply(&mut f.model);
        f.pending = None;
        match op {
            Op::Write { data, .. } => {
                self.stats.writes.fetch_add(1, Relaxed);
                self.stats.written_bytes.fetch_add(data.len() as u64, Relaxed);
            }
            Op::Resize(_) => {
                self.stats.resizes.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Make the change, and acknowledge it in the model once Weir has (a
/// FILE_SYNC answer to a WRITE of either stability, or the COMMIT after it).
async fn perform(w: &Writer, op: &Op) -> Result<(), Fail> {
    let (pipe, fh) = (&w.pipe, &w.fh);
    match op {
        Op::Write { offset, data, stable } => {
            let args = WRITE3args {
                file: fh.clone(),
                offset: *offset,
                count: data.len() as u32,
                stable: if *stable {
                    stable_how::FILE_SYNC
                } else {
                    stable_how::UNSTABLE
                },
                data: Opaque::borrowed(data),
            };
            let proc = nfs3::NFS_PROGRAM::NFSPROC3_WRITE as u32;
            let ok = retrying(w.ctx(), "WRITE", || pipe.call::<_, WRITE3res>(proc, &args)).await?;
            assert_eq!(ok.count as usize, data.len(), "a short WRITE");
            if *stable {
                assert_eq!(
                    ok.committed,
                    stable_how::FILE_SYNC,
                    "FILE_SYNC WRITE answered {:?}",
                    ok.committed
                );
                w.acknowledged(op);
                return Ok(());
            }
            // An answer of FILE_SYNC already promises durability (RFC 1813);
            // the client commits all the same, as kernel clients do.
            let early = ok.committed == stable_how::FILE_SYNC;
            if early {
                w.acknowledged(op);
            }
            let commit = COMMIT3args {
                file: fh.clone(),
                offset: 0,
                count: 0,
            };
            let proc = nfs3::NFS_PROGRAM::NFSPROC3_COMMIT as u32;
            let c = retrying(w.ctx(), "COMMIT", || pipe.call::<_, COMMIT3res>(proc, &commit)).await?;
            assert_eq!(
                c.verf, ok.verf,
                "the write verifier changed within one run of Weir"
            );
            if !early {
                w.acknowledged(op);
            }
            Ok(())
        }
        Op::Resize(size) => {
            let args = SETATTR3args {
                object: fh.clone(),
                new_attributes: sattr3 {
                    size: Nfs3Option::Some(*size),
                    ..Default::default()
                },
                guard: Nfs3Option::None,
            };
            let proc = nfs3::NFS_PROGRAM::NFSPROC3_SETATTR as u32;
            retrying(w.ctx(), "SETATTR", || pipe.call::<_, SETATTR3res>(proc, &args)).await?;
            w.acknowledged(op);
            Ok(())
        }
    }
}

/// Change `file` at random until `stop` is set (after the change in flight)
/// or Weir goes away (the change in flight stays pending).
pub async fn writer(
    pipe: Arc<Pipe>,
    file: Arc<Mutex<File>>,
    mut rng: StdRng,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let fh = file.lock().unwrap().fh.clone();
    let w = Writer {
        pipe,
        file,
        fh,
        stats,
        stop,
    };
    while !w.stop.load(Relaxed) {
        let op = Op::random(&mut rng);
        w.file.lock().unwrap().pending = Some(op.clone());
        match perform(&w, &op).await {
            Ok(()) => {}
            Err(Fail::Gone(_) | Fail::Stopped) => return,
            Err(Fail::Nfs(e)) => {
                let name = w.file.lock().unwrap().name.clone();
                panic!("{name}: {} failed: {e}", op.describe())
            }
        }
    }
}

/// The handle of `name` in `dir`, creating it (GUARDED, so an existing file
/// is never truncated) when missing; whether it was created.
pub async fn lookup_or_create(pipe: &Pipe, dir: &nfs_fh3, name: &str) -> (nfs_fh3, bool) {
    let lookup = LOOKUP3args {
        what: nfs::dirop(dir, name),
    };
    let r: Result<LOOKUP3res, _> = pipe
        .call(nfs3::NFS_PROGRAM::NFSPROC3_LOOKUP as u32, &lookup)
        .await;
    match nfs::status(r.unwrap(), "LOOKUP", name) {
        Ok(ok) => return (ok.object, false),
        Err(e) if e.contains("NOENT") => {}
        Err(e) => panic!("{e}"),
    }
    let create = CREATE3args {
        where_: nfs::dirop(dir, name),
        how: createhow3::GUARDED(sattr3 {
            mode: Nfs3Option::Some(0o644),
            ..Default::default()
        }),
    };
    let r: Result<CREATE3res, _> = pipe
        .call(nfs3::NFS_PROGRAM::NFSPROC3_CREATE as u32, &create)
        .await;
    match nfs::status(r.unwrap(), "CREATE", name).unwrap().obj {
        Nfs3Option::Some(fh) => (fh, true),
        Nfs3Option::None => panic!("CREATE {name} returned no handle"),
    }
}

/// A whole file read through Weir, retrying JUKEBOX.
pub async fn read_whole(pipe: &Pipe, fh: &nfs_fh3) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let off = out.len() as u64;
        let (data, eof) = super::nas::retry_jukebox(async || pipe.read(fh, off, 1 << 20).await).await;
        out.extend_from_slice(&data);
        if eof || data.is_empty() {
            return out;
        }
    }
}

/// Where two contents first differ, for failure messages.
pub fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!("first difference at byte {i}"),
        None => "one is a prefix of the other".into(),
    }
}

/// Read every file through Weir and compare it with its model; a pending
/// change may have landed or not (the model then follows what was read).
pub async fn check(pipe: &Pipe, files: &[Arc<Mutex<File>>], stats: &Stats, context: &str) {
    for file in files {
        let fh = file.lock().unwrap().fh.clone();
        let got = bounded(read_whole(pipe, &fh)).await;
        let mut f = file.lock().unwrap();
        let pending = f.pending.take();
        if pending.is_some() {
            stats.in_flight.fetch_add(1, Relaxed);
        }
        if got == f.model {
            continue;
        }
        let mut landed = f.model.clone();
        if let Some(op) = &pending {
            op.apply(&mut landed);
            if got == landed {
                stats.landed.fetch_add(1, Relaxed);
                f.model = landed;
                continue;
            }
        }
        panic!(
            "{context}: {} read back {} bytes, the acknowledged changes make {} ({}); in flight: {}",
            f.name,
            got.len(),
            f.model.len(),
            first_difference(&got, &f.model),
            pending.map_or("nothing".into(), |op| format!(
                "{} (with it: {} bytes, {})",
                op.describe(),
                landed.len(),
                first_difference(&got, &landed)
            )),
        );
    }
}
