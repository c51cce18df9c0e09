//! A namespace writer for the write-behind crash test: under one directory
//! it makes directories (some inside others), makes files and writes each
//! once (FILE_SYNC), renames and removes some, one operation in flight at a
//! time. Its model holds exactly what Weir acknowledged; the operation in
//! flight when Weir died may or may not have landed, and [`Tree::check`]
//! settles which from what Weir then shows. Names are never reused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use testbed::nfs_client::nfs3_types::nfs3::{
    self, createhow3, nfs_fh3, sattr3, stable_how, CREATE3args, CREATE3res, LOOKUP3args, LOOKUP3res,
    MKDIR3args, MKDIR3res, Nfs3Option, REMOVE3args, REMOVE3res, RENAME3args, RENAME3res, WRITE3args,
    WRITE3res,
};
use testbed::nfs_client::nfs3_types::xdr_codec::Opaque;
use testbed::nfs_client::{self as nfs, Pipe};

use super::writers::{outcome, read_whole, retrying, Fail, Stats};

/// One namespace change.
#[derive(Clone, Debug)]
pub enum NsOp {
    Mkdir(String),
    Create(String),
    Write(String, Vec<u8>),
    Rename(String, String),
    Remove(String),
}

/// The writer's model: directories and files (with their contents) under
/// the top directory, by path relative to it.
#[derive(Default)]
pub struct Tree {
    pub dirs: BTreeSet<String>,
    pub files: BTreeMap<String, Vec<u8>>,
    pub pending: Option<NsOp>,
    /// Handles of directories, by path ("" is the top).
    handles: BTreeMap<String, nfs_fh3>,
    next: u64,
    pub acknowledged: u64,
    pub landed: u64,
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn leaf(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl Tree {
    pub fn new(top: nfs_fh3) -> Tree {
        let mut t = Tree::default();
        t.handles.insert(String::new(), top);
        t
    }

    fn apply(&mut self, op: &NsOp) {
        match op {
            NsOp::Mkdir(p) => {
                self.dirs.insert(p.clone());
            }
            NsOp::Create(p) => {
                self.files.insert(p.clone(), Vec::new());
            }
            NsOp::Write(p, d) => {
                self.files.insert(p.clone(), d.clone());
            }
            NsOp::Rename(a, b) => {
                let d = self.files.remove(a).expect("renamed a known file");
                self.files.insert(b.clone(), d);
            }
            NsOp::Remove(p) => {
                self.files.remove(p);
            }
        }
    }

    /// What to do next.
    fn choose(&mut self, rng: &mut StdRng) -> NsOp {
        self.next += 1;
        let n = self.next;
        // A file made but not written yet is written first.
        if let Some((p, _)) = self.files.iter().find(|(_, d)| d.is_empty()) {
            let len = rng.random_range(1..20_000);
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            return NsOp::Write(p.clone(), data);
        }
        let dirs: Vec<&String> = self.handles.keys().collect();
        let dir = dirs[rng.random_range(0..dirs.len())].clone();
        let files: Vec<&String> = self.files.keys().collect();
        // A tree of at most about this many files: every check reads it all.
        let full = files.len() >= 24;
        match rng.random_range(0..20) {
            _ if full => NsOp::Remove(files[rng.random_range(0..files.len())].clone()),
            0..3 if dir.matches('/').count() < 3 => NsOp::Mkdir(join(&dir, &format!("d{n}"))),
            3..5 if !files.is_empty() => {
                let f = files[rng.random_range(0..files.len())].clone();
                let to = join(parent(&f), &format!("r{n}"));
                NsOp::Rename(f, to)
            }
            5 if !files.is_empty() => NsOp::Remove(files[rng.random_range(0..files.len())].clone()),
            _ => NsOp::Create(join(&dir, &format!("f{n}"))),
        }
    }

    /// Look every name up and read every file through Weir, and compare
    /// with the model; the operation in flight may have landed.
    pub async fn check(&mut self, pipe: &Pipe, context: &str) {
        let top = self.handles[""].clone();
        let pending = self.pending.take();
        let exists = async |p: &str| lookup_path(pipe, &top, p).await;
        if let Some(op) = &pending {
            let landed = match op {
                NsOp::Mkdir(p) | NsOp::Create(p) => exists(p).await.is_some(),
                NsOp::Write(p, d) => {
                    let fh = exists(p)
                        .await
                        .unwrap_or_else(|| panic!("{context}: {p} is gone"));
                    read_whole(pipe, &fh).await == *d
                }
                NsOp::Rename(_, b) => exists(b).await.is_some(),
                NsOp::Remove(p) => exists(p).await.is_none(),
            };
            if landed {
                self.landed += 1;
                self.apply(op);
                if let NsOp::Mkdir(p) = op {
                    let fh = exists(p).await.expect("landed");
                    self.handles.insert(p.clone(), fh);
                }
            }
        }
        for d in &self.dirs {
            assert!(
                exists(d).await.is_some(),
                "{context}: directory {d} is lost (in flight: {pending:?})"
            );
        }
        for (p, want) in &self.files {
            let fh = exists(p)
                .await
                .unwrap_or_else(|| panic!("{context}: file {p} is lost (in flight: {pending:?})"));
            let got = read_whole(pipe, &fh).await;
            assert!(
                got == *want,
                "{context}: {p} reads {} bytes, {} acknowledged (in flight: {pending:?})",
                got.len(),
                want.len()
            );
        }
    }

    /// The directory `top` on the NAS holds exactly the model.
    pub fn compare_nas(&self, top: &Path) -> usize {
        let mut seen = BTreeSet::new();
        let mut stack = vec![top.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(top).unwrap().to_string_lossy().into_owned();
                if e.file_type().unwrap().is_dir() {
                    assert!(
                        self.dirs.contains(&rel),
                        "the NAS has a directory {rel} nobody made"
                    );
                    stack.push(e.path());
                } else {
                    let want = self
                        .files
                        .get(&rel)
                        .unwrap_or_else(|| panic!("the NAS has a file {rel} nobody made"));
                    let got = std::fs::read(e.path()).unwrap();
                    assert!(
                        got == *want,
                        "the NAS's {rel} has {} bytes, {} acknowledged",
                        got.len(),
                        want.len()
                    );
                }
                seen.insert(rel);
            }
        }
        for p in self.dirs.iter().chain(self.files.keys()) {
            assert!(seen.contains(p), "the NAS lacks {p}, which Weir acknowledged");
        }
        seen.len()
    }
}

/// The handle `path` (relative to `top`) leads to, if any.
async fn lookup_path(pipe: &Pipe, top: &nfs_fh3, path: &str) -> Option<nfs_fh3> {
    let mut fh = top.clone();
    for name in path.split('/') {
        let args = LOOKUP3args {
            what: nfs::dirop(&fh, name),
        };
        let r = super::nas::retry_jukebox(async || {
            pipe.call::<_, LOOKUP3res>(nfs3::NFS_PROGRAM::NFSPROC3_LOOKUP as u32, &args)
                .await
        })
        .await;
        match nfs::status(r, "LOOKUP", name) {
            Ok(ok) => fh = ok.object,
            Err(e) if e.contains("NOENT") => return None,
            Err(e) => panic!("{e}"),
        }
    }
    Some(fh)
}

/// Change the tree at random until `stop` is set or Weir goes away (the
/// operation in flight stays pending).
pub async fn namer(
    pipe: Arc<Pipe>,
    tree: Arc<Mutex<Tree>>,
    mut rng: StdRng,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Relaxed) {
        let op = {
            let mut t = tree.lock().unwrap();
            let op = t.choose(&mut rng);
            t.pending = Some(op.clone());
            op
        };
        match perform(&pipe, &tree, &op, (&stats, &stop)).await {
            Ok(()) => {
                let mut t = tree.lock().unwrap();
                t.apply(&op);
                t.pending = None;
                t.acknowledged += 1;
            }
            Err(Fail::Gone(_) | Fail::Stopped) => return,
            Err(Fail::Nfs(e)) => panic!("{op:?} failed: {e}"),
        }
    }
}

async fn perform(pipe: &Pipe, tree: &Mutex<Tree>, op: &NsOp, ctx: (&Stats, &AtomicBool)) -> Result<(), Fail> {
    let dir_of = |p: &str| tree.lock().unwrap().handles[parent(p)].clone();
    let proc = |p: nfs3::NFS_PROGRAM| p as u32;
    match op {
        NsOp::Mkdir(p) => {
            let dir = dir_of(p);
            let args = MKDIR3args {
                where_: nfs::dirop(&dir, leaf(p)),
                attributes: sattr3 {
                    mode: Nfs3Option::Some(0o755),
                    ..Default::default()
                },
            };
            let ok = retrying(ctx, "MKDIR", || {
                pipe.call::<_, MKDIR3res>(proc(nfs3::NFS_PROGRAM::NFSPROC3_MKDIR), &args)
            })
            .await?;
            let Nfs3Option::Some(fh) = ok.obj else {
                panic!("MKDIR {p} returned no handle")
            };
            tree.lock().unwrap().handles.insert(p.clone(), fh);
        }
        NsOp::Create(p) => {
            let dir = dir_of(p);
            let args = CREATE3args {
                where_: nfs::dirop(&dir, leaf(p)),
                how: createhow3::GUARDED(sattr3 {
                    mode: Nfs3Option::Some(0o644),
                    ..Default::default()
                }),
            };
            retrying(ctx, "CREATE", || {
                pipe.call::<_, CREATE3res>(proc(nfs3::NFS_PROGRAM::NFSPROC3_CREATE), &args)
            })
            .await?;
        }
        NsOp::Write(p, data) => {
            let dir = dir_of(p);
            let look = LOOKUP3args {
                what: nfs::dirop(&dir, leaf(p)),
            };
            let fh = outcome(
                pipe.call::<_, LOOKUP3res>(proc(nfs3::NFS_PROGRAM::NFSPROC3_LOOKUP), &look)
                    .await,
                "LOOKUP",
            )?
            .object;
            let args = WRITE3args {
                file: fh,
                offset: 0,
                count: data.len() as u32,
                stable: stable_how::FILE_SYNC,
                data: Opaque::borrowed(data),
            };
            retrying(ctx, "WRITE", || {
                pipe.call::<_, WRITE3res>(proc(nfs3::NFS_PROGRAM::NFSPROC3_WRITE), &args)
            })
            .await?;
        }
        NsOp::Rename(a, b) => {
            let dir = dir_of(a);
            let args = RENAME3args {
                from: nfs::dirop(&dir, leaf(a)),
                to: nfs::dirop(&dir, leaf(b)),
            };
            retrying(ctx, "RENAME", || {
                pipe.call::<_, RENAME3res>(proc(nfs3::NFS_PROGRAM::NFSPROC3_RENAME), &args)
            })
            .await?;
        }
        NsOp::Remove(p) => {
            let dir = dir_of(p);
            let args = REMOVE3args {
                object: nfs::dirop(&dir, leaf(p)),
            };
            retrying(ctx, "REMOVE", || {
                pipe.call::<_, REMOVE3res>(proc(nfs3::NFS_PROGRAM::NFSPROC3_REMOVE), &args)
            })
            .await?;
        }
    }
    Ok(())
}
