//! Starting and stopping an engine: the shard threads over the core
//! filers, each mount's root, the junctions that join the mounts into one
//! namespace.

use std::sync::Arc;

use super::{Engine, Running};
use crate::config::EngineConfig;
use crate::filer::CoreFiler;
use crate::handle::{FileHandle, HandleKey, Resolved};
use crate::junction::{self, Junction, JunctionSpec, Junctions, Mount};
use crate::shard::{EngineState, ShardSet, StartError};
use crate::stats::OpLatency;
use crate::types::*;
use crate::{Error, Result};

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
        if cfg.journal_bytes == 0 && mounts.iter().any(|m| m.policy.writeback_delay.is_some()) {
            return Err(StartError::Setup(
                "a read-write (write-behind) policy needs a write journal: give it a size".into(),
            ));
        }
        if cfg.journal_bytes > 0 {
            std::fs::create_dir_all(&cfg.journal_dir)
                .map_err(|e| setup("cannot create journal directory", &cfg.journal_dir, e))?;
        }
        let key = HandleKey::load_or_create(&cfg.state_dir).map_err(|e| StartError::Setup(e.to_string()))?;
        let all_behind = mounts.iter().all(|m| m.policy.writeback_delay.is_some());
        let verifier = crate::verifier::at_start(&cfg.state_dir, all_behind)
            .map_err(|e| setup("cannot keep the write verifier in", &cfg.state_dir, e))?;
        let sidecar =
            crate::rt::poll::sidecar().map_err(|e| StartError::Setup(format!("sidecar runtime: {e}")))?;
        let shared = Arc::new(EngineState {
            cfg,
            cache_id: key.cache_id(),
            key,
            filers: mounts.iter().map(|m| m.filer.clone()).collect(),
            policies: mounts.iter().map(|m| m.policy.clone()).collect(),
            write_verifier: verifier.into(),
            changes: crate::change::ChangeHub::new(),
            published: Default::default(),
            placing: Default::default(),
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
                futures::executor::block_on(engine.start_pools(&roots));
                Ok(engine)
            }
            Err(why) => {
                engine.shutdown();
                Err(StartError::Setup(why))
            }
        }
    }

    /// Find each junction's directory, shallowest first, and build the table.
    pub(super) async fn join(
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

    pub(super) fn junctions(&self) -> Option<&Junctions> {
        self.running.junctions.get().filter(|j| !j.is_empty())
    }

    /// Refuse to remove, replace or create `name` in `dir` when a junction
    /// stands there.
    pub(super) fn not_a_junction(&self, dir: &Resolved, name: &[u8], err: Error) -> Result<()> {
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
}
