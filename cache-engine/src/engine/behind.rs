//! Write-behind as the operator sees it: write back now (`flush`) and what
//! is waiting (`dirty_status`), over every shard.

use super::Engine;
use crate::handle::FileHandle;
use crate::shard::{DirtyFiler, DirtyStatus, FlushReport};
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
                return Ok(rep);
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
                t.parked.extend(d.parked);
            }
        }
        Ok(out)
    }
}
