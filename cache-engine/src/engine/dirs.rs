//! Directory listings: a page of entries from the directory's shard, with
//! each entry's attributes asked of its own shard when wanted.

use super::{DirEntry, DirListing, Engine, Seeded};
use crate::handle::{FileHandle, Resolved};
use crate::junction::{self, Junction};
use crate::shard::{ListEntry, POOL_DIR};
use crate::stats::Op;
use crate::types::*;
use crate::{Error, Result};

impl Engine {
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

    pub(super) async fn list(
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
            self.settle(&d).await;
            let hide_pool = self.writes_behind_on(d.filer);
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
                    let hidden =
                        |name: &[u8]| here.iter().any(|j| j.name == name) || (hide_pool && name == POOL_DIR);
                    page.retain(|e| !hidden(&e.name));
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

    pub(super) fn plain(&self, entries: Vec<ListEntry>) -> Vec<DirEntry> {
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
    pub(super) async fn with_attrs(
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
}
