//! The engine API the front ends call. Each call goes to the shard that owns
//! the file it names (a hash of the file id); calls that touch several files
//! are sequenced here, one shard at a time.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::change::{ChangeKind, Subscriber};
use crate::config::EngineConfig;
use crate::filer::CoreFiler;
use crate::handle::{FileHandle, HandleKey, Resolved};
use crate::junction::{self, Junction, JunctionSpec, Junctions, Mount};
use crate::perm;
use crate::shard::{Created as ShardCreated, EngineState, ListEntry, Prefetched, ReadReply, Shard};
use crate::shard::{ShardSet, StartError};
use crate::stats::{Op, OpLatency};
use crate::types::*;
use crate::{Error, Result};

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
    pub dir_wcc: Wcc,
}

#[derive(Debug, Clone, Copy)]
pub struct WriteReply {
    pub count: u32,
    pub committed: Stability,
    pub verifier: u64,
    pub wcc: Wcc,
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
    pub from_wcc: Wcc,
    pub to_wcc: Wcc,
}

/// A mount's root directory: its core filer's root, or the directory
/// `subdir` names under it. Asks the core filer (on shard 0).
async fn mount_root(
    shards: &ShardSet,
    mount: u8,
    subdir: &str,
) -> std::result::Result<(FilerHandle, u64), String> {
    let comps: Vec<Vec<u8>> = junction::components(subdir)?
        .into_iter()
        .map(|c| c.as_bytes().to_vec())
        .collect();
    let subdir = subdir.to_string();
    shards
        .call(0, move |s| async move {
            let f = s.shared.filers[mount as usize].clone();
            let cred = Credentials::root();
            let mut fh = f.root();
            let mut attr = s.filer_call(f.getattr(&cred, &fh)).await?;
            for c in &comps {
                (fh, attr) = s.filer_call(f.lookup(&cred, &fh, c)).await?;
            }
            if attr.ftype != FileType::Directory {
                return Err(Error::NotDir);
            }
            Ok((fh, attr.fileid))
        })
        .await
        .map_err(|e| match subdir.trim_matches('/') {
            "" => format!("root is not reachable: {e}"),
            _ => format!("{subdir}: {e}"),
        })
}

impl Engine {
    /// Start the shards over `filer` (the core filer at index 0).
    pub fn start(cfg: EngineConfig, filer: Arc<dyn CoreFiler>) -> std::result::Result<Engine, StartError> {
        let mount = Mount {
            filer,
            subdir: "/".into(),
            policy: cfg.policy.clone(),
        };
        Self::start_namespace(cfg, vec![mount], Vec::new())
    }

    /// Start the shards over a namespace: `mounts[0]` is its root, and each
    /// other mount appears at the path its junction names.
    pub fn start_namespace(
        mut cfg: EngineConfig,
        mounts: Vec<Mount>,
        junctions: Vec<JunctionSpec>,
    ) -> std::result::Result<Engine, StartError> {
        // Count cores here: a pinned shard thread sees only its own.
        cfg.shards = cfg.shard_count();
        let setup = |what: &str, path: &std::path::Path, e: std::io::Error| {
            StartError::Setup(format!("{what} {}: {e}", path.display()))
        };
        if mounts.is_empty() || mounts.len() > u8::MAX as usize {
            return Err(StartError::Setup(format!(
                "{} core filer mounts: between 1 and 255 are possible",
                mounts.len()
            )));
        }
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|e| setup("cannot create state directory", &cfg.state_dir, e))?;
        if cfg.cache_bytes > 0 {
            std::fs::create_dir_all(&cfg.cache_dir)
                .map_err(|e| setup("cannot create cache directory", &cfg.cache_dir, e))?;
        }
        if cfg.block_size < 4096 || !cfg.block_size.is_power_of_two() {
            return Err(StartError::Setup(format!(
                "block size {} must be a power of two >= 4096",
                cfg.block_size
            )));
        }
        let key = HandleKey::load_or_create(&cfg.state_dir).map_err(|e| StartError::Setup(e.to_string()))?;
        let sidecar =
            crate::rt::poll::sidecar().map_err(|e| StartError::Setup(format!("sidecar runtime: {e}")))?;
        let shared = Arc::new(EngineState {
            cfg,
            key,
            filers: mounts.iter().map(|m| m.filer.clone()).collect(),
            policies: mounts.iter().map(|m| m.policy.clone()).collect(),
            write_verifier: rand::random::<u64>().into(),
            changes: crate::change::ChangeHub::new(),
            published: Default::default(),
        });
        let shards = ShardSet::start(shared.clone())?;
        let mut roots = Vec::with_capacity(mounts.len());
        for (i, m) in mounts.iter().enumerate() {
            match futures::executor::block_on(mount_root(&shards, i as u8, &m.subdir)) {
                Ok((fh, fileid)) => roots.push(shared.key.make(i as u8, fileid, &fh)),
                Err(why) => {
                    shards.stop();
                    return Err(StartError::Setup(format!("core filer {}: {why}", m.filer.name())));
                }
            }
        }
        let sidecar_handle = sidecar.handle().clone();
        let engine = Engine {
            running: Arc::new(Running {
                shared,
                shards,
                root: roots[0],
                junctions: std::sync::OnceLock::new(),
                latency: OpLatency::new(),
                sidecar: std::sync::Mutex::new(Some(sidecar)),
                sidecar_handle,
            }),
        };
        match futures::executor::block_on(engine.join(&roots, junctions)) {
            Ok(table) => {
                let _ = engine.running.junctions.set(table);
                Ok(engine)
            }
            Err(why) => {
                engine.shutdown();
                Err(StartError::Setup(why))
            }
        }
    }

    /// Find each junction's directory, shallowest first, and build the table.
    async fn join(
        &self,
        roots: &[FileHandle],
        mut specs: Vec<JunctionSpec>,
    ) -> std::result::Result<Junctions, String> {
        let mut table = Junctions::default();
        specs.sort_by_key(|j| j.path.matches('/').count());
        let mut joined = vec![false; roots.len()];
        joined[0] = true;
        let root = Credentials::root();
        for spec in specs {
            let bad = |why: String| format!("junction {}: {why}", spec.path);
            let comps = junction::components(&spec.path).map_err(bad)?;
            let Some((name, parents)) = comps.split_last() else {
                return Err(bad(
                    "the namespace root is mount 0's; a junction needs a path below it".into(),
                ));
            };
            if spec.mount == 0 || spec.mount >= roots.len() {
                return Err(bad(format!("no mount {}", spec.mount)));
            }
            let mut dir = self.running.root;
            for (k, comp) in parents.iter().enumerate() {
                let d = self.resolve(&dir).map_err(|e| bad(e.to_string()))?;
                if let Some(j) = table.at(&d, comp.as_bytes()) {
                    dir = j.root;
                    continue;
                }
                let at = format!("/{}", parents[..=k].join("/"));
                let (h, attr, _) = self
                    .lookup(&root, &dir, comp.as_bytes())
                    .await
                    .map_err(|e| bad(format!("{at}: {e}")))?;
                if attr.ftype != FileType::Directory {
                    return Err(bad(format!("{at} is not a directory")));
                }
                dir = h;
            }
            let parent = self.resolve(&dir).map_err(|e| bad(e.to_string()))?;
            let target = roots[spec.mount];
            let root_fileid = self.resolve(&target).map_err(|e| bad(e.to_string()))?.fileid;
            let j = Junction {
                parent: dir,
                name: name.as_bytes().to_vec(),
                root: target,
                root_fileid,
            };
            table
                .add(&parent, spec.mount as u8, j)
                .map_err(|_| bad("another junction is already there, or the mount has one already".into()))?;
            joined[spec.mount] = true;
        }
        if let Some(m) = joined.iter().position(|j| !j) {
            return Err(format!(
                "mount {m} has no junction: nothing in the namespace leads to it"
            ));
        }
        Ok(table)
    }

    fn junctions(&self) -> Option<&Junctions> {
        self.running.junctions.get().filter(|j| !j.is_empty())
    }

    /// Refuse to remove, replace or create `name` in `dir` when a junction
    /// stands there.
    fn not_a_junction(&self, dir: &Resolved, name: &[u8], err: Error) -> Result<()> {
        match self.junctions().and_then(|t| t.at(dir, name)) {
            Some(_) => Err(err),
            None => Ok(()),
        }
    }

    /// Stop the shards (after flushing what they buffer) and the sidecar.
    pub fn shutdown(&self) {
        self.running.shards.stop();
        if let Some(rt) = self
            .running
            .sidecar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            rt.shutdown_background();
        }
    }

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
        self.running
            .shards
            .call(self.shard_of(&r), move |s| async move {
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

    pub async fn getattr(&self, fh: &FileHandle) -> Result<Attr> {
        self.timed(Op::Getattr, async {
            let r = self.resolve(fh)?;
            self.attr_on(r, &Credentials::root(), None).await
        })
        .await
    }

    pub async fn setattr(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        set: &SetAttr,
        guard: Option<Timespec>,
    ) -> Result<Wcc> {
        self.timed(Op::Setattr, async {
            let (r, set) = (self.resolve(fh)?, *set);
            self.on_owner(r, cred, move |s, r, c| async move {
                let wcc = s.setattr(&r, &c, &set, guard).await?;
                if set != SetAttr::default() {
                    s.notify(c.origin, || ChangeKind::SetAttr {
                        file: s.handle(&r),
                        set,
                    });
                }
                Ok(wcc)
            })
            .await
        })
        .await
    }

    /// Find `name` in `dir`; `.` and `..` are understood. Returns the
    /// object's handle (with `dir`'s tag) and attributes, and the
    /// directory's attributes.
    pub async fn lookup(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        name: &[u8],
    ) -> Result<(FileHandle, Attr, Attr)> {
        self.timed(Op::Lookup, async {
            // What is found carries `dir`'s tag, so a front end that tags
            // (the NFS front end's exports) need not sign it again.
            let (tag, d) = self.resolve_tagged(dir)?;
            let shard = self.shard_of(&d);
            let c = cred.clone();
            if name == b"." || name == b".." {
                let dir_attr = self.attr_on(d, cred, None).await?;
                if dir_attr.ftype != FileType::Directory {
                    return Err(Error::NotDir);
                }
                let untagged = self.handle(&d);
                if name == b"." || untagged == self.running.root {
                    return Ok((*dir, dir_attr, dir_attr));
                }
                // A mount's root: its parent is the junction's directory.
                if let Some(j) = self.junctions().and_then(|t| t.above(&untagged, &d)) {
                    perm::require(cred, &dir_attr, perm::X)?;
                    let parent = self.resolve(&j.parent)?;
                    let attr = self.attr_on(parent, cred, None).await?;
                    return Ok((self.tagged_handle(tag, &parent), attr, dir_attr));
                }
                let (p, seed) = self
                    .running
                    .shards
                    .call(shard, move |s| async move { s.lookup_parent(&d, &c).await })
                    .await?;
                let attr = self.attr_on(p, cred, seed).await?;
                return Ok((self.tagged_handle(tag, &p), attr, dir_attr));
            }
            if let Some(j) = self.junctions().and_then(|t| t.at(&d, name)) {
                let root = self.resolve(&j.root)?;
                let dir_attr = self.attr_on(d, cred, None).await?;
                perm::require(cred, &dir_attr, perm::X)?;
                let attr = self.attr_on(root, cred, None).await?;
                return Ok((self.tagged_handle(tag, &root), attr, dir_attr));
            }
            let (child, attr, dir_attr) = self
                .once_more_if_stale(d, name, || self.lookup_name(d, cred, name))
                .await?;
            Ok((self.tagged_handle(tag, &child), attr, dir_attr))
        })
        .await
    }

    /// `name` in `d` with its attributes and `d`'s. `Stale` when the names
    /// cache led to an object the core filer no longer has.
    async fn lookup_name(
        &self,
        d: Resolved,
        cred: &Credentials,
        name: &[u8],
    ) -> Result<(Resolved, Attr, Attr)> {
        let (c, n, engine) = (cred.clone(), name.to_vec(), self.clone());
        let (child, seed, dir_attr, here) = self
            .running
            .shards
            .call(self.shard_of(&d), move |s| async move {
                let (child, seed, dir_attr) = s.lookup(&d, &c, &n).await?;
                if !engine.owns(&s, &child) {
                    return Ok((child, seed, dir_attr, None));
                }
                let attr = engine.attr_on(child, &c, seed).await?;
                Ok((child, None, dir_attr, Some(attr)))
            })
            .await?;
        let attr = match here {
            Some(attr) => attr,
            None => self.attr_on(child, cred, seed).await?,
        };
        Ok((child, attr, dir_attr))
    }

    /// Run `op` on `name` in `d`; if the names cache led it to an object
    /// removed behind the cache's back (`Stale`), drop the name and run it
    /// once more, against what the core filer has now.
    async fn once_more_if_stale<T, Fut>(&self, d: Resolved, name: &[u8], op: impl Fn() -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>>,
    {
        match op().await {
            Err(Error::Stale) => {
                let n = name.to_vec();
                self.running
                    .shards
                    .call(self.shard_of(&d), move |s| async move {
                        s.forget_name(&d, &n);
                        Ok(())
                    })
                    .await?;
                op().await
            }
            r => r,
        }
    }

    /// Which of the ACCESS bits in `mask` the caller has.
    pub async fn access(&self, cred: &Credentials, fh: &FileHandle, mask: u32) -> Result<(u32, Attr)> {
        self.timed(Op::Access, async {
            let r = self.resolve(fh)?;
            self.on_owner(
                r,
                cred,
                move |s, r, c| async move { s.access(&r, &c, mask).await },
            )
            .await
        })
        .await
    }

    pub async fn read(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        count: u32,
    ) -> Result<ReadReply> {
        self.timed(Op::Read, async {
            let r = self.resolve(fh)?;
            self.on_owner(r, cred, move |s, r, c| async move {
                s.read(&r, &c, offset, count).await
            })
            .await
        })
        .await
    }

    /// Bring bytes `offset..offset+len` of a file into the cache exactly as
    /// a read would, without returning them (cache pre-warming). Says how
    /// much was cached already and how much came from the core filer.
    pub async fn prefetch(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        len: u64,
    ) -> Result<Prefetched> {
        let r = self.resolve(fh)?;
        self.on_owner(r, cred, move |s, r, c| async move {
            s.prefetch(&r, &c, offset, len).await
        })
        .await
    }

    /// Write as `cred`: with write permission, or as the file's owner
    /// (knfsd's owner override: a file created read-only stays writable to
    /// the owner, e.g. through the NFS create that made it).
    pub async fn write(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<WriteReply> {
        self.write_as(cred, fh, offset, data, stability, false).await
    }

    /// Write through an open that the front end granted write access when
    /// it was made (an SMB handle): a later change of the mode or of the
    /// READONLY attribute does not take that access back.
    pub async fn write_opened(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<WriteReply> {
        self.write_as(cred, fh, offset, data, stability, true).await
    }

    async fn write_as(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
        opened: bool,
    ) -> Result<WriteReply> {
        self.timed(Op::Write, async {
            let r = self.resolve(fh)?;
            let (count, committed, wcc) = self
                .on_owner(r, cred, move |s, r, c| async move {
                    let out = s.write(&r, &c, offset, data, stability, opened).await?;
                    s.notify(c.origin, || ChangeKind::Write {
                        file: s.handle(&r),
                        offset,
                        len: u64::from(out.0),
                    });
                    Ok(out)
                })
                .await?;
            Ok(WriteReply {
                count,
                committed,
                verifier: self.write_verifier(),
                wcc,
            })
        })
        .await
    }

    /// Make the file's unstable writes durable; returns the write verifier.
    /// `WritesLost` when the core filer lost unstable writes: the verifier
    /// has changed by then, so an NFS client that sees it resends, and a
    /// front end without verifiers reports the loss.
    pub async fn commit(&self, cred: &Credentials, fh: &FileHandle) -> Result<(Wcc, u64)> {
        self.timed(Op::Commit, async {
            let r = self.resolve(fh)?;
            match self
                .on_owner(r, cred, move |s, r, c| async move { s.commit(&r, &c).await })
                .await
            {
                Ok(wcc) => Ok((wcc, self.write_verifier())),
                // A verifier no client has seen makes every client resend
                // its uncommitted writes, which the core filer may have lost.
                Err(Error::WritesLost) => {
                    let v = &self.running.shared.write_verifier;
                    v.fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed);
                    Err(Error::WritesLost)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn make(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        name: &[u8],
        node: NewNode,
        set: &SetAttr,
    ) -> Result<Created> {
        self.timed(Op::Create, async {
            let d = self.resolve(dir)?;
            self.not_a_junction(&d, name, Error::Exist)?;
            self.once_more_if_stale(d, name, || self.make_once(cred, d, name, node.clone(), set))
                .await
        })
        .await
    }

    /// Create `name` in `d`, or with an unchecked create open what is there.
    /// `Stale` when the names cache led to an object the core filer no longer has.
    async fn make_once(
        &self,
        cred: &Credentials,
        d: Resolved,
        name: &[u8],
        node: NewNode,
        set: &SetAttr,
    ) -> Result<Created> {
        let (c, n, s2, engine) = (cred.clone(), name.to_vec(), *set, self.clone());
        let (out, refreshed) = self
            .running
            .shards
            .call(self.shard_of(&d), move |s| async move {
                let out = s.create(&d, &c, &n, &node, &s2).await?;
                let mut refreshed = false;
                if let ShardCreated::New(child, attr, _) = &out {
                    // A new object: any state cached under a reused file id is stale.
                    refreshed = engine.owns(&s, child);
                    if refreshed {
                        engine.refresh_on(*child, Some(*attr), true).await;
                    }
                    s.notify(c.origin, || ChangeKind::Created {
                        dir: s.handle(&d),
                        name: n,
                        object: s.handle(child),
                        ftype: attr.ftype,
                    });
                }
                Ok((out, refreshed))
            })
            .await?;
        match out {
            ShardCreated::New(child, attr, dir_wcc) => {
                if !refreshed {
                    // Nothing waits for the owner to take the new object's
                    // attributes: it has none published under its handle, and
                    // a state it keeps under a reused file id has another
                    // handle, which it never answers for.
                    self.running
                        .shards
                        .post(self.shard_of(&child), move |s| async move {
                            s.refresh(&child, Some(attr), true)
                        })
                        .await;
                }
                Ok(Created {
                    handle: self.handle(&child),
                    attr,
                    dir_wcc,
                })
            }
            ShardCreated::Existing(child, seed, dir_attr) => {
                let mut attr = self.attr_on(child, cred, seed).await?;
                if attr.ftype != FileType::Regular {
                    return Err(if attr.ftype == FileType::Directory {
                        Error::IsDir
                    } else {
                        Error::Exist
                    });
                }
                let apply = SetAttr {
                    size: set.size,
                    ..Default::default()
                };
                if apply.size.is_some() {
                    let h = self.handle(&child);
                    if let Some(a) = self.setattr(cred, &h, &apply, None).await?.after {
                        attr = a;
                    }
                }
                let unchanged = Wcc {
                    before: Some(WccAttr::from(&dir_attr)),
                    after: Some(dir_attr),
                };
                Ok(Created {
                    handle: self.handle(&child),
                    attr,
                    dir_wcc: unchanged,
                })
            }
        }
    }

    pub async fn create(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        name: &[u8],
        mode: CreateMode,
        set: &SetAttr,
    ) -> Result<Created> {
        self.make(cred, dir, name, NewNode::File(mode), set).await
    }

    pub async fn mkdir(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        name: &[u8],
        set: &SetAttr,
    ) -> Result<Created> {
        self.make(cred, dir, name, NewNode::Directory, set).await
    }

    pub async fn symlink(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        name: &[u8],
        target: &[u8],
        set: &SetAttr,
    ) -> Result<Created> {
        if target.is_empty() || target.len() > 4095 || target.contains(&0) {
            return Err(Error::Inval);
        }
        self.make(cred, dir, name, NewNode::Symlink(target.to_vec()), set)
            .await
    }

    /// Make a fifo, socket or device node (`node` must be one of those).
    pub async fn mknod(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        name: &[u8],
        node: NewNode,
        set: &SetAttr,
    ) -> Result<Created> {
        if matches!(node, NewNode::File(_) | NewNode::Directory | NewNode::Symlink(_)) {
            return Err(Error::BadType);
        }
        self.make(cred, dir, name, node, set).await
    }

    pub async fn readlink(&self, cred: &Credentials, fh: &FileHandle) -> Result<(Vec<u8>, Attr)> {
        self.timed(Op::Readlink, async {
            let r = self.resolve(fh)?;
            self.on_owner(r, cred, move |s, r, c| async move { s.readlink(&r, &c).await })
                .await
        })
        .await
    }

    /// Hard link `fh` as `name` in `dir`; returns the file's attributes and the directory's change.
    pub async fn link(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        dir: &FileHandle,
        name: &[u8],
    ) -> Result<(Attr, Wcc)> {
        self.timed(Op::Link, async {
            let (f, d) = (self.resolve(fh)?, self.resolve(dir)?);
            if f.filer != d.filer {
                return Err(Error::XDev);
            }
            self.not_a_junction(&d, name, Error::Exist)?;
            // The file must still exist before its link is made.
            self.attr_on(f, cred, None).await?;
            let (c, n, engine) = (cred.clone(), name.to_vec(), self.clone());
            let (attr, wcc, refreshed) = self
                .running
                .shards
                .call(self.shard_of(&d), move |s| async move {
                    let (attr, wcc) = s.link(&f, &c, &d, &n).await?;
                    let refreshed = engine.owns(&s, &f);
                    if refreshed {
                        engine.refresh_on(f, Some(attr), false).await;
                    }
                    s.notify(c.origin, || ChangeKind::Linked {
                        dir: s.handle(&d),
                        name: n,
                        object: s.handle(&f),
                    });
                    Ok((attr, wcc, refreshed))
                })
                .await?;
            if !refreshed {
                self.refresh_on(f, Some(attr), false).await;
            }
            Ok((attr, wcc))
        })
        .await
    }

    async fn unlink(&self, cred: &Credentials, dir: &FileHandle, name: &[u8], rmdir: bool) -> Result<Wcc> {
        self.timed(Op::Remove, async {
            let d = self.resolve(dir)?;
            self.not_a_junction(&d, name, Error::Access)?;
            let (c, n, engine) = (cred.clone(), name.to_vec(), self.clone());
            let (wcc, victim, refreshed) = self
                .running
                .shards
                .call(self.shard_of(&d), move |s| async move {
                    let (wcc, victim) = s.remove(&d, &c, &n, rmdir).await?;
                    let refreshed = engine.owns(&s, &victim);
                    if refreshed {
                        engine.refresh_on(victim, None, false).await;
                    }
                    s.notify(c.origin, || ChangeKind::Removed {
                        dir: s.handle(&d),
                        name: n,
                        object: s.handle(&victim),
                    });
                    Ok((wcc, victim, refreshed))
                })
                .await?;
            if !refreshed {
                self.refresh_on(victim, None, false).await;
            }
            Ok(wcc)
        })
        .await
    }

    pub async fn remove(&self, cred: &Credentials, dir: &FileHandle, name: &[u8]) -> Result<Wcc> {
        self.unlink(cred, dir, name, false).await
    }

    pub async fn rmdir(&self, cred: &Credentials, dir: &FileHandle, name: &[u8]) -> Result<Wcc> {
        self.unlink(cred, dir, name, true).await
    }

    pub async fn rename(
        &self,
        cred: &Credentials,
        from_dir: &FileHandle,
        from_name: &[u8],
        to_dir: &FileHandle,
        to_name: &[u8],
    ) -> Result<RenameReply> {
        self.timed(Op::Rename, async {
            let (f, t) = (self.resolve(from_dir)?, self.resolve(to_dir)?);
            if f.filer != t.filer {
                return Err(Error::XDev);
            }
            self.not_a_junction(&f, from_name, Error::Access)?;
            self.not_a_junction(&t, to_name, Error::Access)?;
            let to_attr = self.attr_on(t, cred, None).await?;
            let (c, fname, tname) = (cred.clone(), from_name.to_vec(), to_name.to_vec());
            let out = self
                .running
                .shards
                .call(self.shard_of(&f), move |s| async move {
                    let out = s.rename(&f, &c, &fname, &t, &to_attr, &tname).await?;
                    // Nothing moved when both names were links of one file.
                    if let Some(moved) = &out.moved {
                        s.notify(c.origin, || ChangeKind::Renamed {
                            from_dir: s.handle(&f),
                            from_name: fname,
                            to_dir: s.handle(&t),
                            to_name: tname,
                            object: s.handle(moved),
                            replaced: out.replaced.as_ref().map(|v| s.handle(v)),
                        });
                    }
                    Ok(out)
                })
                .await?;
            let (fs, ts) = (self.shard_of(&f), self.shard_of(&t));
            // With nothing moved (two links of one file) the target's name stands.
            if out.moved.is_some() && crate::shard::file_key(&f) != crate::shard::file_key(&t) {
                let (moved, after, tname) = (out.moved, out.to_wcc.after, to_name.to_vec());
                let _ = self
                    .running
                    .shards
                    .call(ts, move |s| async move {
                        s.name_changed(&t, &tname, moved.as_ref(), after);
                        Ok(())
                    })
                    .await;
            }
            let _ = fs;
            if let Some(m) = out.moved {
                self.refresh_on(m, None, false).await;
            }
            if let Some(v) = out.replaced {
                self.refresh_on(v, None, false).await;
            }
            Ok(RenameReply {
                from_wcc: out.from_wcc,
                to_wcc: out.to_wcc,
            })
        })
        .await
    }

    /// List `dir` after `cookie`. A non-zero `verifier` must be the one a
    /// previous listing of this directory returned.
    pub async fn readdir(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        cookie: u64,
        verifier: u64,
        max: usize,
    ) -> Result<DirListing> {
        self.list(cred, dir, cookie, verifier, max, false).await
    }

    /// As `readdir`, with each entry's handle and attributes. The handles
    /// carry `dir`'s tag, if it has one (see [`Engine::tag`]).
    pub async fn readdir_plus(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        cookie: u64,
        verifier: u64,
        max: usize,
    ) -> Result<DirListing> {
        self.list(cred, dir, cookie, verifier, max, true).await
    }

    async fn list(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        cookie: u64,
        verifier: u64,
        max: usize,
        plus: bool,
    ) -> Result<DirListing> {
        self.timed(Op::Readdir, async {
            let (tag, d) = self.resolve_tagged(dir)?;
            let expected = self.cookie_verifier(&d);
            if cookie != 0 && verifier != 0 && verifier != expected {
                return Err(Error::BadCookie);
            }
            let here: Vec<&Junction> = self
                .junctions()
                .map(|t| t.in_dir(&d).collect())
                .unwrap_or_default();
            // Junctions are listed after the directory's own entries.
            let (mut entries, eof, dir_attr) = if here.is_empty() || cookie < junction::COOKIE_BASE {
                let mut from = cookie;
                let (entries, eof, dir_attr) = loop {
                    let c = cred.clone();
                    let (mut page, eof, dir_attr) = self
                        .running
                        .shards
                        .call(self.shard_of(&d), move |s| async move {
                            s.readdir(&d, &c, from, max.max(1)).await
                        })
                        .await?;
                    let last = page.last().map(|e| e.cookie);
                    // What a junction hides is not listed; a page left empty
                    // by that must not end the listing early.
                    page.retain(|e| !here.iter().any(|j| j.name == e.name));
                    match last {
                        Some(last) if page.is_empty() && !eof => from = last,
                        _ => break (page, eof, dir_attr),
                    }
                };
                let entries = if plus {
                    self.with_attrs(cred, &d, entries, tag).await
                } else {
                    self.plain(entries)
                };
                (entries, eof, dir_attr)
            } else {
                (Vec::new(), true, self.attr_on(d, cred, None).await?)
            };
            if eof && !here.is_empty() {
                let after = cookie.saturating_sub(junction::COOKIE_BASE) as usize;
                for (k, j) in here.iter().enumerate().skip(after) {
                    let object = match plus {
                        true => match self.resolve(&j.root) {
                            Ok(r) => {
                                let h = self.tagged_handle(tag, &r);
                                self.attr_on(r, cred, None).await.ok().map(|a| (h, a))
                            }
                            Err(_) => None,
                        },
                        false => None,
                    };
                    entries.push(DirEntry {
                        name: j.name.clone(),
                        fileid: j.root_fileid,
                        cookie: junction::COOKIE_BASE + k as u64 + 1,
                        ftype: Some(FileType::Directory),
                        object,
                    });
                }
            }
            Ok(DirListing {
                entries,
                eof,
                verifier: expected,
                dir_attr,
            })
        })
        .await
    }

    fn plain(&self, entries: Vec<ListEntry>) -> Vec<DirEntry> {
        entries
            .into_iter()
            .map(|e| DirEntry {
                name: e.name,
                fileid: e.fileid,
                cookie: e.cookie,
                ftype: e.ftype,
                object: None,
            })
            .collect()
    }

    /// Attributes for a page of entries, asked of each owning shard once;
    /// their handles carry `tag`.
    async fn with_attrs(
        &self,
        cred: &Credentials,
        dir: &Resolved,
        entries: Vec<ListEntry>,
        tag: Option<u8>,
    ) -> Vec<DirEntry> {
        let n = self.running.shards.len();
        let mut per_shard: Vec<Vec<Seeded>> = vec![Vec::new(); n];
        for (i, e) in entries.iter().enumerate() {
            if let Some(fh) = e.handle {
                let r = Resolved {
                    filer: dir.filer,
                    fileid: e.fileid,
                    filer_handle: fh,
                };
                per_shard[self.shard_of(&r)].push((i, r, e.attr));
            }
        }
        let mut objects: Vec<Option<(FileHandle, Attr)>> = vec![None; entries.len()];
        let calls = per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(shard, batch)| {
                let cred = cred.clone();
                self.running.shards.call(shard, move |s| async move {
                    let mut out = Vec::with_capacity(batch.len());
                    for (i, r, seed) in batch {
                        if let Ok(a) = s.attr_with_seed(&r, &cred, seed).await {
                            out.push((i, r, a));
                        }
                    }
                    Ok(out)
                })
            });
        for batch in futures::future::join_all(calls).await.into_iter().flatten() {
            for (i, r, a) in batch {
                objects[i] = Some((self.tagged_handle(tag, &r), a));
            }
        }
        entries
            .into_iter()
            .zip(objects)
            .map(|(e, object)| DirEntry {
                name: e.name,
                fileid: e.fileid,
                cookie: e.cookie,
                ftype: e.ftype,
                object,
            })
            .collect()
    }

    pub async fn fsstat(&self, cred: &Credentials, fh: &FileHandle) -> Result<(FsStat, Attr)> {
        self.timed(Op::Fsstat, async {
            let r = self.resolve(fh)?;
            self.on_owner(r, cred, move |s, r, c| async move { s.fsstat(&r, &c).await })
                .await
        })
        .await
    }

    pub async fn fsinfo(&self, fh: &FileHandle) -> Result<(FsInfo, Attr)> {
        let attr = self.getattr(fh).await?;
        let max = 1 << 20;
        Ok((
            FsInfo {
                rtmax: max,
                rtpref: max,
                rtmult: 4096,
                wtmax: max,
                wtpref: max,
                wtmult: 4096,
                dtpref: 64 << 10,
                max_file_size: i64::MAX as u64,
                time_delta: Timespec { sec: 0, nsec: 1 },
                link: true,
                symlink: true,
                homogeneous: true,
                can_set_time: true,
            },
            attr,
        ))
    }

    pub async fn pathconf(&self, fh: &FileHandle) -> Result<(PathConf, Attr)> {
        let attr = self.getattr(fh).await?;
        Ok((
            PathConf {
                link_max: 65_000,
                name_max: NAME_MAX as u32,
                no_trunc: true,
                chown_restricted: true,
                case_insensitive: false,
                case_preserving: true,
            },
            attr,
        ))
    }
}
