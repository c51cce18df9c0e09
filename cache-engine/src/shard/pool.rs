//! The pool: empty files and directories each shard makes ahead of need in
//! a hidden directory (`.weir-pool`) at the root of each write-behind
//! mount, so that a create under write-behind takes a real object of the
//! core filer at once, and only its placement waits for write-back
//! (`placing.rs`). Objects are made as root, mode 0600 / 0700; their mode
//! and owner come with the placement. Each shard names its objects
//! `SHARD.RANDOM` and, at start, takes back those of its own that no
//! journaled placement holds (made before a restart, never handed out).

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use super::Shard;
use crate::handle::Resolved;
use crate::types::*;
use crate::{Error, Result};

/// The pool directory's name, hidden from clients in write-behind mounts.
pub(crate) const POOL_DIR: &[u8] = b".weir-pool";
/// Below this many spare objects the shard makes more, up to the high mark.
const FILES: (usize, usize) = (128, 512);
const DIRS: (usize, usize) = (32, 128);
/// Objects made at once.
const MAKING: usize = 16;
/// After a failure to make objects, the pool is left alone this long.
const BACKOFF: Duration = Duration::from_secs(10);

/// A spare object.
pub(crate) struct Pooled {
    pub handle: FilerHandle,
    pub attr: Attr,
    pub name: Vec<u8>,
}

/// A shard's spare objects on one core filer.
pub(crate) struct Pool {
    pub dir: FilerHandle,
    files: Vec<Pooled>,
    dirs: Vec<Pooled>,
    filling: bool,
    failed: Option<Instant>,
}

impl Pool {
    fn new(dir: FilerHandle) -> Pool {
        Pool {
            dir,
            files: Vec::new(),
            dirs: Vec::new(),
            filling: false,
            failed: None,
        }
    }
}

fn cannot_fill(e: &Error) -> String {
    let why = match e {
        Error::Perm => "the core filer squashes root, so the mode and owner of what is made \
                        cannot be set: export it with no_root_squash to Weir"
            .to_string(),
        e => e.to_string(),
    };
    format!("write-behind pool: cannot make spare objects ({why}); creates go to the core filer meanwhile")
}

fn is_dir(ftype: FileType) -> bool {
    ftype == FileType::Directory
}

impl Shard {
    /// Whether `name` in `dir` is the hidden pool directory.
    pub(crate) fn is_pool_dir(&self, dir: &Resolved, name: &[u8]) -> bool {
        name == POOL_DIR && self.writes_behind(dir)
    }

    /// Find, or make, the pool directory in `root`, a mount's root.
    pub(crate) async fn pool_dir(&self, root: &Resolved) -> Result<FilerHandle> {
        let filer = self.filer(root)?.clone();
        let cred = Credentials::root();
        let fh = &root.filer_handle;
        match self.filer_call(filer.lookup(&cred, fh, POOL_DIR)).await {
            Ok((h, a)) if a.ftype == FileType::Directory => return Ok(h),
            Ok(_) => return Err(Error::Exist),
            Err(Error::NoEnt) => {}
            Err(e) => return Err(e),
        }
        let set = SetAttr {
            mode: Some(0o700),
            uid: Some(0),
            gid: Some(0),
            ..SetAttr::default()
        };
        match self
            .filer_call(filer.create(&cred, fh, POOL_DIR, &NewNode::Directory, &set))
            .await
        {
            Ok(c) => Ok(c.handle),
            // Another shard made it meanwhile.
            Err(Error::Exist) => Ok(self.filer_call(filer.lookup(&cred, fh, POOL_DIR)).await?.0),
            Err(e) => Err(e),
        }
    }

    /// Take the pool of core filer `filer` in `dir`: this shard's objects
    /// that no placement holds (made before a restart and never handed
    /// out) are spare again, then the low mark's worth is made (so creates
    /// are journaled from the first) and the rest in the background.
    /// `shards`: how many there are (shard 0 also takes what shards no
    /// longer running left).
    pub(crate) async fn start_pool(self: &Rc<Self>, filer: u8, dir: FilerHandle, shards: usize) {
        let mut pool = Pool::new(dir);
        let at = Resolved {
            filer,
            fileid: 0,
            filer_handle: dir,
        };
        if let Err(e) = self.recover_pool(&at, shards, &mut pool).await {
            tracing::warn!(shard = self.id, "write-behind pool: cannot list it: {e}");
        }
        self.pool.borrow_mut().insert(filer, pool);
        if let Err(e) = self.fill_pool(filer, (FILES.0, DIRS.0)).await {
            tracing::warn!(shard = self.id, "{}", cannot_fill(&e));
            if let Some(pool) = self.pool.borrow_mut().get_mut(&filer) {
                pool.failed = Some(Instant::now());
            }
        }
        self.refill(filer);
    }

    async fn recover_pool(&self, at: &Resolved, shards: usize, pool: &mut Pool) -> Result<()> {
        let filer = self.filer(at)?.clone();
        let cred = Credentials::root();
        let mine = |name: &[u8]| {
            let name = std::str::from_utf8(name).ok()?;
            let (shard, _) = name.split_once('.')?;
            let shard: usize = shard.parse().ok()?;
            Some(shard == self.id || (self.id == 0 && shard >= shards))
        };
        let mut gone = Vec::new();
        let mut cookie = 0;
        loop {
            let (page, eof) = self
                .filer_call(filer.readdir_plus(&cred, &at.filer_handle, cookie, 1024))
                .await?;
            for e in &page {
                cookie = e.entry.cookie;
                let name = &e.entry.name;
                if mine(name) != Some(true) || self.shared.placing.holds_pool_name(name) {
                    continue;
                }
                match &e.object {
                    // As made: spare again.
                    Some((handle, attr)) if attr.uid == 0 && (attr.size == 0 || is_dir(attr.ftype)) => {
                        let p = Pooled {
                            handle: *handle,
                            attr: *attr,
                            name: name.clone(),
                        };
                        if is_dir(attr.ftype) {
                            &mut pool.dirs
                        } else {
                            &mut pool.files
                        }
                        .push(p);
                    }
                    Some((_, attr)) => gone.push((name.clone(), is_dir(attr.ftype))),
                    None => {}
                }
            }
            if eof || page.is_empty() {
                break;
            }
        }
        for (name, dir) in gone {
            self.filer_call(filer.remove(&cred, &at.filer_handle, &name, dir))
                .await?;
        }
        Ok(())
    }

    /// A spare object of type `ftype` on core filer `filer`, and the pool
    /// directory it is in; `None` when there is none (the create then goes
    /// to the core filer as under write-through).
    pub(crate) fn claim(self: &Rc<Self>, filer: u8, ftype: FileType) -> Option<(FilerHandle, Pooled)> {
        let taken = {
            let mut pools = self.pool.borrow_mut();
            let pool = pools.get_mut(&filer)?;
            let spare = if is_dir(ftype) {
                &mut pool.dirs
            } else {
                &mut pool.files
            };
            spare.pop().map(|p| (pool.dir, p))
        };
        self.refill(filer);
        taken
    }

    /// Make spare objects up to the high mark, if below the low one.
    fn refill(self: &Rc<Self>, filer: u8) {
        {
            let mut pools = self.pool.borrow_mut();
            let Some(pool) = pools.get_mut(&filer) else { return };
            let low = pool.files.len() < FILES.0 || pool.dirs.len() < DIRS.0;
            if pool.filling || !low || pool.failed.is_some_and(|t| t.elapsed() < BACKOFF) {
                return;
            }
            pool.filling = true;
        }
        let s = Rc::clone(self);
        compio::runtime::spawn(async move {
            let res = s.fill_pool(filer, (FILES.1, DIRS.1)).await;
            let mut pools = s.pool.borrow_mut();
            if let Some(pool) = pools.get_mut(&filer) {
                pool.filling = false;
                if let Err(e) = res {
                    if pool.failed.is_none() {
                        tracing::warn!(shard = s.id, "{}", cannot_fill(&e));
                    }
                    pool.failed = Some(Instant::now());
                } else {
                    pool.failed = None;
                }
            }
        })
        .detach();
    }

    /// Make spare objects up to `upto` (files, directories).
    async fn fill_pool(&self, filer: u8, upto: (usize, usize)) -> Result<()> {
        let (dir, want) = {
            let pools = self.pool.borrow();
            let Some(pool) = pools.get(&filer) else {
                return Ok(());
            };
            let files = upto.0.saturating_sub(pool.files.len());
            let dirs = upto.1.saturating_sub(pool.dirs.len());
            let want: Vec<FileType> = std::iter::repeat_n(FileType::Directory, dirs)
                .chain(std::iter::repeat_n(FileType::Regular, files))
                .collect();
            (pool.dir, want)
        };
        let at = Resolved {
            filer,
            fileid: 0,
            filer_handle: dir,
        };
        let f = self.filer(&at)?.clone();
        let cred = Credentials::root();
        let mut making = stream::iter(want.into_iter().map(|ftype| {
            let (f, cred) = (f.clone(), cred.clone());
            let name = format!("{}.{:016x}", self.id, rand::random::<u64>()).into_bytes();
            async move {
                let (node, mode) = match ftype {
                    FileType::Directory => (NewNode::Directory, 0o700),
                    _ => (NewNode::File(CreateMode::Guarded), 0o600),
                };
                let set = SetAttr {
                    mode: Some(mode),
                    uid: Some(0),
                    gid: Some(0),
                    ..SetAttr::default()
                };
                let made = self.filer_call(f.create(&cred, &dir, &name, &node, &set)).await?;
                if made.attr.uid != 0 {
                    // The core filer squashes root: the owner a placement
                    // gives could never be set.
                    let _ = self.filer_call(f.remove(&cred, &dir, &name, is_dir(ftype))).await;
                    return Err(Error::Perm);
                }
                Ok::<_, Error>(Pooled {
                    handle: made.handle,
                    attr: made.attr,
                    name,
                })
            }
        }))
        .buffer_unordered(MAKING);
        while let Some(made) = making.next().await {
            let p = made?;
            let mut pools = self.pool.borrow_mut();
            let Some(pool) = pools.get_mut(&filer) else {
                return Ok(());
            };
            if is_dir(p.attr.ftype) {
                &mut pool.dirs
            } else {
                &mut pool.files
            }
            .push(p);
        }
        Ok(())
    }
}
