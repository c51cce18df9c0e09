//! The engine API the front ends call. Each call goes to the shard that owns
//! the file it names (a hash of the file id); calls that touch several files
//! are sequenced here, one shard at a time.
//!
//! This module holds the engine handle, the replies and the routing of a
//! call to its shard; `start` starts and stops the engine, `data`, `names`
//! and `dirs` hold the operations on attributes and data, on names, and on
//! directory listings.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::change::Subscriber;
use crate::config::EngineConfig;
use crate::handle::{FileHandle, Resolved};
use crate::junction::Junctions;
use crate::shard::{EngineState, Shard, ShardSet};
use crate::stats::{Op, OpLatency};
use crate::types::*;

use crate::{Error, Result};

mod behind;
mod data;
mod dirs;
mod names;
mod placing;
mod start;

/// A listed entry to stat on its shard: position, object, attributes as listed.
type Seeded = (usize, Resolved, Option<(Attr, Instant)>);

/// What a running engine holds: its shards and the state they share, the
/// namespace root and junctions, the sidecar runtime.
struct Running {
    shared: Arc<EngineState>,
    shards: ShardSet,
    root: FileHandle,
    /// Set once at start, when every junction's directory is found.
    junctions: std::sync::OnceLock<Junctions>,
    latency: OpLatency,
    sidecar: std::sync::Mutex<Option<tokio::runtime::Runtime>>,
    sidecar_handle: tokio::runtime::Handle,
}

/// A running engine. Cheap to clone; every clone talks to the same shards.
#[derive(Clone)]
pub struct Engine {
    running: Arc<Running>,
}

/// A new object and the change to its directory.
#[derive(Debug, Clone, Copy)]
pub struct Created {
    pub handle: FileHandle,
    pub attr: Attr,
    pub dir_wcc: BeforeAfter,
}

#[derive(Debug, Clone, Copy)]
pub struct WriteReply {
    pub count: u32,
    pub committed: Stability,
    pub verifier: u64,
    pub wcc: BeforeAfter,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub fileid: u64,
    pub cookie: u64,
    pub ftype: Option<FileType>,
    /// With `readdir_plus`: the entry's handle and attributes (when still there).
    pub object: Option<(FileHandle, Attr)>,
}

#[derive(Debug, Clone)]
pub struct DirListing {
    pub entries: Vec<DirEntry>,
    pub eof: bool,
    pub verifier: u64,
    pub dir_attr: Attr,
}

#[derive(Debug, Clone, Copy)]
pub struct RenameReply {
    pub from_wcc: BeforeAfter,
    pub to_wcc: BeforeAfter,
}

impl Engine {
    pub fn config(&self) -> &EngineConfig {
        &self.running.shared.cfg
    }

    /// The tokio runtime beside the shards.
    pub fn sidecar(&self) -> &tokio::runtime::Handle {
        &self.running.sidecar_handle
    }

    pub fn shard_count(&self) -> usize {
        self.running.shards.len()
    }

    /// Run `f` on shard `shard`'s thread (front ends serve connections there,
    /// so that calls for files that shard owns never leave the thread).
    pub async fn run_on<R, F, Fut>(&self, shard: usize, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R> + 'static,
    {
        if shard >= self.running.shards.len() {
            return Err(Error::Inval);
        }
        self.running
            .shards
            .call(shard, move |_| async move { Ok(f().await) })
            .await
    }

    /// Call `f` for every change made through the engine from now on, by
    /// any front end: on the thread of the shard that made it (see
    /// [`ChangeKind::reported_by`]), right after it succeeded. `f` must not
    /// block; it should only queue work. Reads are never reported.
    pub fn subscribe(&self, f: Subscriber) {
        self.running.shared.changes.subscribe(f);
    }

    /// The shard that owns the file `fh` names.
    pub fn owner(&self, fh: &FileHandle) -> usize {
        self.shard_for(fh.filer_hint(), fh.fileid_hint())
    }

    /// Handle of the core filer's root directory.
    pub fn root(&self) -> FileHandle {
        self.running.root
    }

    /// Changes at every start: a client that sees it change resends its unstable writes.
    pub fn write_verifier(&self) -> u64 {
        self.running
            .shared
            .write_verifier
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `fh` with `tag` (0 to [`MAX_TAG`](crate::handle::MAX_TAG)) under
    /// its MAC, for a front end that hands out one file under several
    /// rights (the NFS front end's exports). The engine accepts tagged
    /// handles as they are; [`Engine::untag`] gives back the tag, verified.
    pub fn tag(&self, fh: &FileHandle, tag: u8) -> Result<FileHandle> {
        let r = self.running.shared.key.open(fh)?;
        Ok(self.tagged_handle(Some(tag), &r))
    }

    /// Verify `fh` and split it into its tag (None: untagged) and the
    /// engine's own untagged handle, the one the engine compares, reports
    /// changes with and gives to every front end.
    pub fn untag(&self, fh: &FileHandle) -> Result<(Option<u8>, FileHandle)> {
        let (tag, r) = self.running.shared.key.open_tagged(fh)?;
        Ok((tag, self.handle(&r)))
    }

    fn resolve(&self, fh: &FileHandle) -> Result<Resolved> {
        self.resolve_tagged(fh).map(|(_, r)| r)
    }

    fn resolve_tagged(&self, fh: &FileHandle) -> Result<(Option<u8>, Resolved)> {
        let (tag, r) = self.running.shared.key.open_tagged(fh)?;
        if r.filer as usize >= self.running.shared.filers.len() {
            return Err(Error::Stale);
        }
        Ok((tag, r))
    }

    fn handle(&self, r: &Resolved) -> FileHandle {
        self.tagged_handle(None, r)
    }

    fn tagged_handle(&self, tag: Option<u8>, r: &Resolved) -> FileHandle {
        self.running
            .shared
            .key
            .make_tagged(tag, r.filer, r.fileid, &r.filer_handle)
    }

    fn shard_of(&self, r: &Resolved) -> usize {
        self.shard_for(r.filer, r.fileid)
    }

    fn shard_for(&self, filer: u8, fileid: u64) -> usize {
        let h = (fileid ^ ((filer as u64) << 56)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 32) % self.running.shards.len() as u64) as usize
    }

    /// Inside a call on shard `s`: whether `r` is `s`'s too. Then the part
    /// of the operation that belongs to `r` runs there and then (`call`
    /// runs it in place on its own shard), not after a hop back.
    fn owns(&self, s: &Shard, r: &Resolved) -> bool {
        self.shard_of(r) == s.id
    }

    /// Cookie verifier of a directory: stable, since cookies are.
    fn cookie_verifier(&self, r: &Resolved) -> u64 {
        let mut h = blake3::Hasher::new();
        h.update(b"cookieverf");
        h.update(&r.fileid.to_le_bytes());
        let out = h.finalize();
        u64::from_le_bytes(out.as_bytes()[..8].try_into().unwrap_or_default()) | 1
    }

    async fn timed<T>(&self, op: Op, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let t = Instant::now();
        let out = fut.await;
        self.running.latency.record(op, t.elapsed().as_secs_f64());
        out
    }

    /// Run `f` on the shard that owns `r`, with the caller's credentials.
    async fn on_owner<R, F, Fut>(&self, r: Resolved, cred: &Credentials, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>, Resolved, Credentials) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<R>> + 'static,
    {
        let cred = cred.clone();
        let owner = self.shard_of(&r);
        self.running
            .shards
            .call(owner, move |s| async move {
                // A file's state lives on one shard only; work on it anywhere
                // else would fork its cache.
                assert_eq!(s.id, owner, "file work ran off its owning shard");
                let out = f(s.clone(), r, cred).await;
                if matches!(out, Err(Error::Stale)) {
                    // Gone from the core filer: nothing cached of it may answer again.
                    s.forget(&r);
                }
                out
            })
            .await
    }

    async fn attr_on(&self, r: Resolved, cred: &Credentials, seed: Option<(Attr, Instant)>) -> Result<Attr> {
        if let Some(attr) = self.running.shared.published_attr(&r) {
            return Ok(attr);
        }
        self.on_owner(r, cred, move |s, r, c| async move {
            s.attr_with_seed(&r, &c, seed).await
        })
        .await
    }

    /// Tell `r`'s shard a name of it was removed (it may be gone: its
    /// attributes are checked again, and dirty data of it may be dropped).
    async fn unlinked_on(&self, r: Resolved) {
        let _ = self
            .running
            .shards
            .call(self.shard_of(&r), move |s| async move {
                s.unlinked(&r);
                Ok(())
            })
            .await;
    }

    /// Tell `r`'s shard its attributes changed (or, with `None`, may have).
    async fn refresh_on(&self, r: Resolved, attr: Option<Attr>, data_changed: bool) {
        let _ = self
            .running
            .shards
            .call(self.shard_of(&r), move |s| async move {
                s.refresh(&r, attr, data_changed);
                Ok(())
            })
            .await;
    }
}
