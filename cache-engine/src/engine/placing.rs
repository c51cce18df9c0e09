//! Creates under write-behind (see `shard/placing.rs`): the directory's
//! shard takes a spare object and holds the name, the object's shard
//! journals its placement; and the barrier (`settle`) that writes pending
//! names back before an operation that must see them on the core filer.

use super::{Created, Engine};
use crate::change::ChangeKind;
use crate::handle::Resolved;
use crate::shard::{file_key, Claim, Claimed, POOL_DIR};
use crate::types::*;
use crate::Result;

impl Engine {
    /// Whether creates in mounts of core filer `filer` are journaled.
    pub(super) fn writes_behind_on(&self, filer: u8) -> bool {
        let shared = &self.running.shared;
        shared.cfg.journal_bytes > 0
            && shared
                .policies
                .get(filer as usize)
                .is_some_and(|p| p.writeback_delay.is_some())
    }

    /// Find or make the pool directory of each write-behind mount and let
    /// every shard take its part (after replay: what it holds is kept). A
    /// core filer that cannot have one gets its creates as under
    /// write-through.
    pub(super) async fn start_pools(&self, roots: &[crate::handle::FileHandle]) {
        let n = self.running.shards.len();
        for (i, root) in roots.iter().enumerate() {
            let filer = i as u8;
            if !self.writes_behind_on(filer) {
                continue;
            }
            let Ok(r) = self.resolve(root) else { continue };
            let dir = self
                .running
                .shards
                .call(self.shard_of(&r), move |s| async move { s.pool_dir(&r).await })
                .await;
            let dir = match dir {
                Ok(dir) => dir,
                Err(e) => {
                    tracing::warn!(
                        filer = i,
                        "write-behind: no pool directory ({e}): creates go to the core filer as they come"
                    );
                    continue;
                }
            };
            for shard in 0..n {
                let _ = self
                    .running
                    .shards
                    .call(shard, move |s| async move {
                        s.start_pool(filer, dir, n).await;
                        Ok(())
                    })
                    .await;
            }
        }
    }

    /// Refuse to touch the hidden pool directory by its name.
    pub(super) fn not_the_pool(&self, d: &Resolved, name: &[u8]) -> Result<()> {
        if name == POOL_DIR && self.writes_behind_on(d.filer) {
            return Err(crate::Error::Access);
        }
        Ok(())
    }

    /// A create or mkdir under write-behind; `None` when it goes to the
    /// core filer as under write-through (no spare object, or an unchecked
    /// create of a name that exists).
    pub(super) async fn make_behind(
        &self,
        cred: &Credentials,
        d: Resolved,
        name: &[u8],
        node: &NewNode,
        set: &SetAttr,
    ) -> Result<Option<Created>> {
        let (c, n, nd, s2) = (cred.clone(), name.to_vec(), node.clone(), *set);
        let claimed = self
            .running
            .shards
            .call(self.shard_of(&d), move |s| async move {
                s.claim_create(&d, &c, &n, &nd, &s2).await
            })
            .await?;
        let Claimed::New(claim) = claimed else {
            return Ok(None);
        };
        let Claim {
            child,
            attr,
            placement,
            owner,
            dattr,
        } = *claim;
        let ftype = placement.ftype;
        let c = cred.clone();
        let journaled = self
            .running
            .shards
            .call(self.shard_of(&child), move |s| async move {
                s.journal_create(&child, &c, attr, placement, owner).await
            })
            .await;
        let (c, n) = (cred.clone(), name.to_vec());
        let attr = match journaled {
            Ok(attr) => attr,
            Err(e) => {
                self.running
                    .shards
                    .post(
                        self.shard_of(&d),
                        move |s| async move { s.unclaim(&d, &n, &child) },
                    )
                    .await;
                return Err(e);
            }
        };
        let dir_attr = self
            .running
            .shards
            .call(self.shard_of(&d), move |s| async move {
                s.notify(c.origin, || ChangeKind::Created {
                    dir: s.handle(&d),
                    name: n,
                    object: s.handle(&child),
                    ftype,
                });
                s.getattr(&d, &c).await
            })
            .await
            .ok();
        Ok(Some(Created {
            handle: self.handle(&child),
            attr,
            dir_wcc: BeforeAfter {
                before: Some(AttrStamp::from(&dattr)),
                after: dir_attr,
            },
        }))
    }

    /// Write back the names made in `d` under write-behind and not yet on
    /// the core filer, and `d`'s own changes, before an operation that lists
    /// `d` or changes a name in it reaches the core filer. One that cannot be written back
    /// stays pending (and parked); the operation goes on.
    pub(super) async fn settle(&self, d: &Resolved) {
        if !self.writes_behind_on(d.filer) {
            return;
        }
        // The directory itself too: made here, it is root's and in the pool
        // on the core filer until then, where the operation goes as its caller.
        let children = self.running.shared.placing.children(file_key(d));
        for child in children.into_iter().chain([*d]) {
            let key = file_key(&child);
            let _ = self
                .running
                .shards
                .call(self.shard_of(&child), move |s| async move {
                    Ok(s.flush(Some(key)).await)
                })
                .await;
        }
    }
}
