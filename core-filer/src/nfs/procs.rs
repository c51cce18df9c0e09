//! The [`CoreFiler`] methods of the `nfs` core filer, each one NFSv3
//! procedure or a few.

use super::listing::{Plain, Plus};
use super::*;

#[async_trait(?Send)]
impl CoreFiler for NfsFiler {
    fn name(&self) -> &str {
        "nfs"
    }

    fn root(&self) -> FilerHandle {
        self.inner.root
    }

    async fn getattr(&self, cred: &Credentials, fh: &FilerHandle) -> Result<Attr> {
        let l = self.local();
        let up = self.upstream(&l, fh)?;
        self.getattr_up(&l, cred, &up).await
    }

    async fn lookup(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
    ) -> Result<(FilerHandle, Attr)> {
        check_name(name)?;
        let l = self.local();
        let dir = self.upstream(&l, dir)?;
        let (up, a) = self.lookup_up(&l, cred, dir, name).await?;
        Ok((self.our(&l, &up)?, a))
    }

    async fn lookup_parent(&self, cred: &Credentials, dir: &FilerHandle) -> Result<(FilerHandle, Attr)> {
        let l = self.local();
        let up = self.upstream(&l, dir)?;
        if *dir == self.inner.root {
            // The root is its own parent: ".." never leads out of the export.
            let a = self.getattr_up(&l, cred, &up).await?;
            return Ok((*dir, a));
        }
        let (parent, a) = self.lookup_up(&l, cred, up, b"..").await?;
        Ok((self.our(&l, &parent)?, a))
    }

    async fn read(&self, cred: &Credentials, fh: &FilerHandle, offset: u64, len: u32) -> Result<FilerRead> {
        let l = self.local();
        let file = self.upstream(&l, fh)?;
        let count = len.min(self.inner.rtmax);
        let args = [Read3Args { file, offset, count }.to_bytes()];
        let (r, _) = self.call::<Read3Res>(&l, cred, NfsProc3::Read, &args).await?;
        let r = ok(r)?;
        if r.data.0.len() > count as usize || r.count as usize != r.data.0.len() {
            tracing::warn!(
                "NFS upstream: READ of {count} answered with {} bytes",
                r.data.0.len()
            );
            return Err(Error::Io);
        }
        Ok(FilerRead {
            data: r.data.0,
            eof: r.eof,
        })
    }

    async fn write(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        offset: u64,
        data: Bytes,
        stability_wanted: Stability,
    ) -> Result<FilerWrite> {
        let l = self.local();
        let up = self.upstream(&l, fh)?;
        if u32::try_from(data.len()).is_err() {
            return Err(Error::Inval);
        }
        if offset.checked_add(data.len() as u64).is_none() {
            return Err(Error::FBig);
        }
        let mut how = stable_how(stability_wanted);
        if how == StableHow::Unstable && !self.unstable().may_defer(fh) {
            how = StableHow::FileSync;
        }
        let chunk = self.inner.wtmax.max(1) as usize;
        let mut done = 0usize;
        let mut committed = Stability::FileSync;
        let mut before = None;
        let mut after = None;
        loop {
            let n = (data.len() - done).min(chunk);
            let part = data.slice(done..done + n);
            let w = self
                .write_chunk(&l, cred, &up, offset + done as u64, part, how)
                .await?;
            if w.count as usize > n {
                return Err(Error::Io);
            }
            if before.is_none() {
                before = w.file_wcc.before;
            }
            if w.file_wcc.after.is_some() {
                after = w.file_wcc.after;
            }
            let c = stability(w.committed);
            self.unstable().wrote(fh, w.verf, c == Stability::Unstable);
            committed = committed.min(c);
            done += w.count as usize;
            if done >= data.len() || (w.count as usize) < n {
                break;
            }
        }
        Ok(FilerWrite {
            count: done as u32,
            committed,
            wcc: crate::nfs3::before_after(&WccData { before, after }),
        })
    }

    async fn commit(&self, cred: &Credentials, fh: &FilerHandle) -> Result<BeforeAfter> {
        let l = self.local();
        let file = self.upstream(&l, fh)?;
        let args = [Commit3Args {
            file,
            offset: 0,
            count: 0,
        }
        .to_bytes()];
        let start = self.unstable().commit_start();
        let (r, _) = self.call::<Commit3Res>(&l, cred, NfsProc3::Commit, &args).await?;
        let c = ok(r)?;
        if !self.unstable().committed(fh, c.verf, start) {
            // The upstream restarted since those writes: they may be lost.
            tracing::warn!("NFS upstream: write verifier changed before COMMIT; unstable writes may be lost");
            return Err(Error::WritesLost);
        }
        Ok(crate::nfs3::before_after(&c.file_wcc))
    }

    async fn setattr(&self, cred: &Credentials, fh: &FilerHandle, attrs: &SetAttr) -> Result<BeforeAfter> {
        let l = self.local();
        let object = self.upstream(&l, fh)?;
        let args = [SetAttr3Args {
            object: object.clone(),
            new_attributes: sattr(attrs)?,
            guard: None,
        }
        .to_bytes()];
        let (r, _) = self.call::<WccRes>(&l, cred, NfsProc3::Setattr, &args).await?;
        match r {
            NfsResult::Ok(w) => Ok(crate::nfs3::before_after(&w)),
            // A size for what is not a regular file: some servers (ganesha)
            // say BADTYPE where POSIX, and so the local filer, says EISDIR or EINVAL.
            NfsResult::Err(NfsStat3::BadType, w) if attrs.size.is_some() => {
                let ftype = match w.after {
                    Some(a) => attr(&a).ftype,
                    None => self.getattr_up(&l, cred, &object).await?.ftype,
                };
                Err(if ftype == FileType::Directory {
                    Error::IsDir
                } else {
                    Error::Inval
                })
            }
            NfsResult::Err(s, _) => Err(crate::nfs3::error(s)),
        }
    }

    async fn create(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
        node: &NewNode,
        attrs: &SetAttr,
    ) -> Result<FilerCreated> {
        check_name(name)?;
        let l = self.local();
        let dir_up = self.upstream(&l, dir)?;
        let sa = sattr(attrs)?;
        let where_ = dirop(dir_up.clone(), name);
        let (proc_, args, want) = match node {
            NewNode::File(how) => {
                let how = match how {
                    CreateMode::Unchecked => CreateHow3::Unchecked(sa.clone()),
                    CreateMode::Guarded => CreateHow3::Guarded(sa.clone()),
                    CreateMode::Exclusive(v) => CreateHow3::Exclusive(*v),
                };
                (
                    NfsProc3::Create,
                    Create3Args { where_, how }.to_bytes(),
                    FileType::Regular,
                )
            }
            NewNode::Directory => (
                NfsProc3::Mkdir,
                Mkdir3Args {
                    where_,
                    attributes: sa.clone(),
                }
                .to_bytes(),
                FileType::Directory,
            ),
            NewNode::Symlink(target) => {
                if target.is_empty() || target.contains(&0) {
                    return Err(Error::Inval);
                }
                if target.len() > nfs3::MAX_PATH {
                    return Err(Error::NameTooLong);
                }
                let args = Symlink3Args {
                    where_,
                    attributes: Sattr3 {
                        mode: None,
                        ..sa.clone()
                    },
                    data: Opaque::new(Bytes::copy_from_slice(target)),
                };
                (NfsProc3::Symlink, args.to_bytes(), FileType::Symlink)
            }
            special => {
                let spec = |ma: u32, mi: u32| SpecData3 {
                    specdata1: ma,
                    specdata2: mi,
                };
                let (what, t) = match special {
                    NewNode::Fifo => (MknodData3::Fifo(sa.clone()), FileType::Fifo),
                    NewNode::Socket => (MknodData3::Sock(sa.clone()), FileType::Socket),
                    NewNode::CharDev(ma, mi) => {
                        (MknodData3::Chr(sa.clone(), spec(*ma, *mi)), FileType::CharDev)
                    }
                    NewNode::BlockDev(ma, mi) => {
                        (MknodData3::Blk(sa.clone(), spec(*ma, *mi)), FileType::BlockDev)
                    }
                    _ => return Err(Error::ServerFault),
                };
                (NfsProc3::Mknod, Mknod3Args { where_, what }.to_bytes(), t)
            }
        };
        let (r, retransmitted) = self.call::<Create3Res>(&l, cred, proc_, &[args]).await?;
        let (obj, mut a, dir_wcc) = match r {
            NfsResult::Ok(c) => {
                let (obj, a) = match c.obj {
                    Some(fh) => {
                        let a = self.attr_or_fetch(&l, cred, &fh, c.obj_attributes).await?;
                        (fh, a)
                    }
                    None => self.lookup_up(&l, cred, dir_up, name).await?,
                };
                (obj, a, c.dir_wcc)
            }
            // Our own first transmission may have made it.
            NfsResult::Err(NfsStat3::Exist, dir_wcc)
                if retransmitted && !matches!(node, NewNode::File(CreateMode::Exclusive(_))) =>
            {
                match self
                    .made_by_us(&l, cred, &dir_up, name, |a| a.ftype == want)
                    .await
                {
                    Some((fh, a)) => (fh, a, dir_wcc),
                    None => return Err(Error::Exist),
                }
            }
            NfsResult::Err(s, _) => return Err(crate::nfs3::error(s)),
        };
        if let NewNode::File(CreateMode::Exclusive(_)) = node {
            // The verifier stays in the times (so a repeat of this create still
            // matches, as with the local filer); apply the owner and mode.
            let fix = Sattr3 {
                mode: sa.mode,
                uid: sa.uid,
                gid: sa.gid,
                ..Sattr3::default()
            };
            if fix != Sattr3::default() {
                let args = [SetAttr3Args {
                    object: obj.clone(),
                    new_attributes: fix,
                    guard: None,
                }
                .to_bytes()];
                let (r, _) = self.call::<WccRes>(&l, cred, NfsProc3::Setattr, &args).await?;
                if let Some(after) = ok(r)?.after {
                    a = attr(&after);
                }
            }
        }
        Ok(FilerCreated {
            handle: self.our(&l, &obj)?,
            attr: a,
            dir_wcc: crate::nfs3::before_after(&dir_wcc),
        })
    }

    async fn readlink(&self, cred: &Credentials, fh: &FilerHandle) -> Result<Vec<u8>> {
        let l = self.local();
        let object = self.upstream(&l, fh)?;
        let args = [GetAttr3Args { object }.to_bytes()];
        let (r, _) = self
            .call::<Readlink3Res>(&l, cred, NfsProc3::Readlink, &args)
            .await?;
        Ok(ok(r)?.data.0.to_vec())
    }

    async fn link(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        dir: &FilerHandle,
        name: &[u8],
    ) -> Result<(Attr, BeforeAfter)> {
        check_name(name)?;
        let l = self.local();
        let file = self.upstream(&l, fh)?;
        let dir_up = self.upstream(&l, dir)?;
        let args = [Link3Args {
            file: file.clone(),
            link: dirop(dir_up.clone(), name),
        }
        .to_bytes()];
        let (r, retransmitted) = self.call::<Link3Res>(&l, cred, NfsProc3::Link, &args).await?;
        match r {
            NfsResult::Ok(w) => {
                let a = self.attr_or_fetch(&l, cred, &file, w.file_attributes).await?;
                Ok((a, crate::nfs3::before_after(&w.linkdir_wcc)))
            }
            NfsResult::Err(NfsStat3::Exist, w) if retransmitted => {
                let target = self.getattr_up(&l, cred, &file).await?;
                match self
                    .made_by_us(&l, cred, &dir_up, name, |a| a.fileid == target.fileid)
                    .await
                {
                    Some((_, a)) => Ok((a, crate::nfs3::before_after(&w.linkdir_wcc))),
                    None => Err(Error::Exist),
                }
            }
            // A directory: some servers (ganesha) say BADTYPE where POSIX, and
            // so the local filer, says EEXIST for a taken name, else EPERM.
            NfsResult::Err(NfsStat3::BadType, _) => match self.lookup_up(&l, cred, dir_up, name).await {
                Ok(_) => Err(Error::Exist),
                Err(_) => Err(Error::Perm),
            },
            NfsResult::Err(s, _) => Err(crate::nfs3::error(s)),
        }
    }

    async fn remove(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
        rmdir: bool,
    ) -> Result<BeforeAfter> {
        check_name(name)?;
        let l = self.local();
        let args = [dirop(self.upstream(&l, dir)?, name).to_bytes()];
        let p = if rmdir { NfsProc3::Rmdir } else { NfsProc3::Remove };
        let (r, retransmitted) = self.call::<WccRes>(&l, cred, p, &args).await?;
        match r {
            NfsResult::Ok(w) => Ok(crate::nfs3::before_after(&w)),
            // The first transmission removed it.
            NfsResult::Err(NfsStat3::NoEnt, w) if retransmitted => Ok(crate::nfs3::before_after(&w)),
            NfsResult::Err(s, _) => Err(crate::nfs3::error(s)),
        }
    }

    async fn rename(
        &self,
        cred: &Credentials,
        from_dir: &FilerHandle,
        from_name: &[u8],
        to_dir: &FilerHandle,
        to_name: &[u8],
    ) -> Result<(BeforeAfter, BeforeAfter)> {
        check_name(from_name)?;
        check_name(to_name)?;
        let l = self.local();
        let to_up = self.upstream(&l, to_dir)?;
        let args = [Rename3Args {
            from: dirop(self.upstream(&l, from_dir)?, from_name),
            to: dirop(to_up.clone(), to_name),
        }
        .to_bytes()];
        let (r, retransmitted) = self.call::<Rename3Res>(&l, cred, NfsProc3::Rename, &args).await?;
        match r {
            NfsResult::Ok(w) => Ok((
                crate::nfs3::before_after(&w.fromdir_wcc),
                crate::nfs3::before_after(&w.todir_wcc),
            )),
            NfsResult::Err(NfsStat3::NoEnt, w) if retransmitted => {
                // Gone from the old name and present at the new one: our first try did it.
                match self.made_by_us(&l, cred, &to_up, to_name, |_| true).await {
                    Some(_) => Ok((
                        crate::nfs3::before_after(&w.fromdir_wcc),
                        crate::nfs3::before_after(&w.todir_wcc),
                    )),
                    None => Err(Error::NoEnt),
                }
            }
            NfsResult::Err(s, _) => Err(crate::nfs3::error(s)),
        }
    }

    async fn readdir(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<FilerDirPage> {
        let l = self.local();
        let (entries, eof) = self.list::<Plain>(&l, cred, dir, cookie, max).await?;
        Ok(FilerDirPage {
            entries: entries
                .into_iter()
                .map(|e| FilerDirEntry {
                    name: e.name.0.to_vec(),
                    fileid: e.fileid,
                    cookie: e.cookie,
                    ftype: None,
                })
                .collect(),
            eof,
        })
    }

    async fn readdir_plus(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<(Vec<FilerDirEntryPlus>, bool)> {
        let l = self.local();
        let (entries, eof) = self.list::<Plus>(&l, cred, dir, cookie, max).await?;
        let complete: Vec<&NfsFh3> = entries
            .iter()
            .filter(|e| e.name_attributes.is_some())
            .filter_map(|e| e.name_handle.as_ref())
            .collect();
        let mut mapped = self.ours(&l, &complete)?.into_iter();
        let mut dir_up = None;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let object = match (&e.name_handle, &e.name_attributes) {
                (Some(_), Some(a)) => mapped.next().map(|h| (h, attr(a))),
                _ => {
                    // The server left this one out: look it up.
                    let d = match &dir_up {
                        Some(d) => d,
                        None => dir_up.insert(self.upstream(&l, dir)?),
                    };
                    match self.lookup_up(&l, cred, d.clone(), e.name.as_bytes()).await {
                        Ok((up, a)) => Some((self.our(&l, &up)?, a)),
                        Err(Error::NoEnt) => None,
                        Err(err) => return Err(err),
                    }
                }
            };
            let entry = FilerDirEntry {
                name: e.name.0.to_vec(),
                fileid: e.fileid,
                cookie: e.cookie,
                ftype: object.as_ref().map(|(_, a)| a.ftype),
            };
            out.push(FilerDirEntryPlus { entry, object });
        }
        Ok((out, eof))
    }

    async fn fsstat(&self, cred: &Credentials, fh: &FilerHandle) -> Result<FsStat> {
        let l = self.local();
        let object = self.upstream(&l, fh)?;
        let args = [GetAttr3Args { object }.to_bytes()];
        let (r, _) = self.call::<Fsstat3Res>(&l, cred, NfsProc3::Fsstat, &args).await?;
        let s = ok(r)?;
        Ok(FsStat {
            total_bytes: s.tbytes,
            free_bytes: s.fbytes,
            avail_bytes: s.abytes,
            total_files: s.tfiles,
            free_files: s.ffiles,
            avail_files: s.afiles,
        })
    }
}
