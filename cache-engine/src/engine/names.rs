//! Operations on names: lookup, creating and removing objects, links and
//! renames. A call that touches several files goes to each owning shard in
//! turn.

use super::{Created, Engine, RenameReply};
use crate::change::ChangeKind;
use crate::handle::{FileHandle, Resolved};
use crate::perm;
use crate::shard::Created as ShardCreated;
use crate::stats::Op;
use crate::types::*;
use crate::{Error, Result};

impl Engine {
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
    pub(super) async fn lookup_name(
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
    pub(super) async fn once_more_if_stale<T, Fut>(
        &self,
        d: Resolved,
        name: &[u8],
        op: impl Fn() -> Fut,
    ) -> Result<T>
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

    pub(super) async fn make(
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
            self.not_the_pool(&d, name)?;
            if self.writes_behind_on(d.filer) {
                if let Some(made) = self.make_behind(cred, d, name, &node, set).await? {
                    return Ok(made);
                }
                self.settle(&d).await;
            }
            self.once_more_if_stale(d, name, || self.make_once(cred, d, name, node.clone(), set))
                .await
        })
        .await
    }

    /// Create `name` in `d`, or with an unchecked create open what is there.
    /// `Stale` when the names cache led to an object the core filer no longer has.
    pub(super) async fn make_once(
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
                        if attr.ftype == FileType::Directory {
                            s.made_empty(child);
                        }
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
                            s.refresh(&child, Some(attr), true);
                            // Made through the engine: it holds no names yet.
                            if attr.ftype == FileType::Directory {
                                s.made_empty(&child);
                            }
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
                let unchanged = BeforeAfter {
                    before: Some(AttrStamp::from(&dir_attr)),
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
    ) -> Result<(Attr, BeforeAfter)> {
        self.timed(Op::Link, async {
            let (f, d) = (self.resolve(fh)?, self.resolve(dir)?);
            if f.filer != d.filer {
                return Err(Error::XDev);
            }
            self.not_a_junction(&d, name, Error::Exist)?;
            self.not_the_pool(&d, name)?;
            self.settle(&d).await;
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

    pub(super) async fn unlink(
        &self,
        cred: &Credentials,
        dir: &FileHandle,
        name: &[u8],
        rmdir: bool,
    ) -> Result<BeforeAfter> {
        self.timed(Op::Remove, async {
            let d = self.resolve(dir)?;
            self.not_a_junction(&d, name, Error::Access)?;
            self.not_the_pool(&d, name)?;
            if rmdir && self.writes_behind_on(d.filer) {
                // What was made in it must be on the core filer, or the
                // core filer would find it empty.
                if let Ok((h, _, _)) = self.lookup(cred, dir, name).await {
                    self.settle(&self.resolve(&h)?).await;
                }
            }
            self.settle(&d).await;
            let (c, n, engine) = (cred.clone(), name.to_vec(), self.clone());
            let (wcc, victim, refreshed) = self
                .running
                .shards
                .call(self.shard_of(&d), move |s| async move {
                    let (wcc, victim) = s.remove(&d, &c, &n, rmdir).await?;
                    let refreshed = engine.owns(&s, &victim);
                    if refreshed {
                        engine.unlinked_on(victim).await;
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
                self.unlinked_on(victim).await;
            }
            Ok(wcc)
        })
        .await
    }

    pub async fn remove(&self, cred: &Credentials, dir: &FileHandle, name: &[u8]) -> Result<BeforeAfter> {
        self.unlink(cred, dir, name, false).await
    }

    pub async fn rmdir(&self, cred: &Credentials, dir: &FileHandle, name: &[u8]) -> Result<BeforeAfter> {
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
            self.not_the_pool(&f, from_name)?;
            self.not_the_pool(&t, to_name)?;
            self.settle(&f).await;
            self.settle(&t).await;
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
                self.unlinked_on(v).await;
            }
            Ok(RenameReply {
                from_wcc: out.from_wcc,
                to_wcc: out.to_wcc,
            })
        })
        .await
    }
}
