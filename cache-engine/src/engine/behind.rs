//! Write-behind as the operator sees it: write back now (`flush`) and what
//! is waiting (`dirty_status`), over every shard.

use super::Engine;
use crate::handle::FileHandle;
use crate::shard::{file_key, DirtyFiler, DirtyStatus, FlushReport, ParkedFile};
use crate::Result;

impl Engine {
    /// Write back the dirty data of `only` (a file), or of every file, now,
    /// and wait until each is on its core filer or could not be written.
    pub async fn flush(&self, only: Option<&FileHandle>) -> Result<FlushReport> {
        let mut total = FlushReport::default();
        let shards: Vec<usize> = match only {
            Some(fh) => {
                let r = self.resolve(fh)?;
                let key = crate::shard::file_key(&r);
                let owner = self.shard_of(&r);
                let rep = self
                    .running
                    .shards
                    .call(owner, move |s| async move { Ok(s.flush(Some(key)).await) })
                    .await?;
                total = rep;
                self.find_paths(&mut total.parked).await;
                return Ok(total);
            }
            None => (0..self.running.shards.len()).collect(),
        };
        for i in shards {
            let rep = self
                .running
                .shards
                .call(i, move |s| async move { Ok(s.flush(None).await) })
                .await?;
            total.files += rep.files;
            total.bytes += rep.bytes;
            total.parked.extend(rep.parked);
        }
        self.find_paths(&mut total.parked).await;
        Ok(total)
    }

    /// Dirty data per core filer, the journal's use, and what is parked.
    pub async fn dirty_status(&self) -> Result<DirtyStatus> {
        let names: Vec<String> = self
            .running
            .shared
            .filers
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let mut out = DirtyStatus {
            filers: names
                .into_iter()
                .map(|name| DirtyFiler {
                    name,
                    reachable: true,
                    ..DirtyFiler::default()
                })
                .collect(),
            ..DirtyStatus::default()
        };
        for i in 0..self.running.shards.len() {
            let shard = self
                .running
                .shards
                .call(i, move |s| async move { Ok(s.dirty_status()) })
                .await?;
            out.journal_used += shard.journal_used;
            out.journal_size += shard.journal_size;
            for (f, d) in shard.filers.into_iter().enumerate() {
                let Some(t) = out.filers.get_mut(f) else { continue };
                t.files += d.files;
                t.bytes += d.bytes;
                t.oldest = t.oldest.max(d.oldest);
                t.reachable &= d.reachable;
                t.conflicts += d.conflicts;
                t.parked.extend(d.parked);
            }
        }
        for f in &mut out.filers {
            self.find_paths(&mut f.parked).await;
        }
        Ok(out)
    }

    /// Fill in the paths of parked files, from the names the caches hold.
    async fn find_paths(&self, parked: &mut [ParkedFile]) {
        for p in parked {
            p.path = self.path_of(p.key, p.filer).await;
        }
    }

    /// `/`-joined names from the root to the file `key` on core filer
    /// `filer`, if the caches hold every name on the way.
    async fn path_of(&self, mut key: u64, filer: u8) -> Option<String> {
        let root = file_key(&self.resolve(&self.root()).ok()?);
        let mut names: Vec<Vec<u8>> = Vec::new();
        while key != root {
            // A loop of names (a stale cache) must not spin.
            if names.len() > 256 {
                return None;
            }
            let mut found = None;
            for i in 0..self.running.shards.len() {
                found = self
                    .running
                    .shards
                    .call(i, move |s| async move { Ok(s.name_of(key, filer)) })
                    .await
                    .ok()
                    .flatten();
                if found.is_some() {
                    break;
                }
            }
            let (dir, name) = found?;
            names.push(name);
            key = dir;
        }
        let path: Vec<String> = names
            .iter()
            .rev()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        Some(format!("/{}", path.join("/")))
    }
}
