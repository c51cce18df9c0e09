//! The steps the `local` core filer's operations share: modes and owners of
//! new objects, creating files, listing directories, and writing as the caller.

use super::*;

impl LocalFiler {
    /// chmod that never opens a device or FIFO and never touches a symlink's target.
    pub(super) fn set_mode(&self, node: &Node, mode: u32) -> Result<()> {
        let mode = mode & 0o7777;
        if node.ftype == FileType::Symlink {
            // Linux has no symlink permissions.
            return Ok(());
        }
        if self.has_fchmodat2.load(Ordering::Relaxed) {
            // SAFETY: the empty name is NUL-terminated; fchmodat2 reads nothing else.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_fchmodat2,
                    node.fd.as_raw_fd(),
                    c"".as_ptr(),
                    mode,
                    libc::AT_EMPTY_PATH,
                )
            };
            if r == 0 {
                return Ok(());
            }
            let e = last_err();
            if errno_of(&e) != libc::ENOSYS {
                return Err(e.into());
            }
            self.has_fchmodat2.store(false, Ordering::Relaxed);
        }
        let flags = match node.ftype {
            FileType::Regular => libc::O_RDONLY | libc::O_NONBLOCK,
            FileType::Directory => libc::O_RDONLY | libc::O_DIRECTORY,
            _ => return Err(Error::NotSupp),
        };
        let fd = self.open_data(node, flags)?;
        // SAFETY: plain syscall on a descriptor we own.
        cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })?;
        Ok(())
    }

    /// Owner, then mode (chown clears set-id bits), then times.
    pub(super) fn apply_new(
        &self,
        node: &Node,
        attrs: &SetAttr,
        default_mode: u32,
        times: bool,
    ) -> Result<()> {
        own_new(node.fd.as_fd(), attrs)?;
        let mode = attrs.mode.unwrap_or(default_mode);
        if node.ftype == FileType::Directory && mode & 0o2000 != 0 && identity::acting_as_caller() {
            // mkdir in a setgid directory made this one setgid, whatever the
            // caller's groups; a chmod by a caller outside the group would
            // clear it again, so the mode goes on with the appliance's rights.
            if stat(node.fd.as_fd())?.mode & 0o2000 != 0 {
                identity::daemon()?;
            }
        }
        self.set_mode(node, mode)?;
        if times {
            set_times(node.fd.as_fd(), attrs.atime, attrs.mtime)?;
        }
        Ok(())
    }

    pub(super) fn create_file(
        &self,
        dir: &Node,
        name: &CStr,
        how: CreateMode,
        attrs: &SetAttr,
    ) -> Result<(Arc<Node>, Attr)> {
        // A few rounds: the name can vanish between "exists" and opening it.
        for _ in 0..4 {
            let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
            match self.open_child(dir.fd.as_fd(), name, flags, 0o600) {
                Ok(file) => return self.init_new_file(file, how, attrs),
                Err(e) if errno_of(&e) == libc::EEXIST => {}
                Err(e) => return Err(e.into()),
            }
            if how == CreateMode::Guarded {
                return Err(Error::Exist);
            }
            let (node, attr) = match self.lookup_in(dir, name) {
                Ok(found) => found,
                Err(Error::NoEnt) => continue,
                Err(e) => return Err(e),
            };
            if attr.ftype != FileType::Regular {
                return Err(Error::Exist);
            }
            return match how {
                CreateMode::Exclusive(verf) => {
                    let (hi, lo) = ((verf >> 32) as i64, (verf & 0xffff_ffff) as i64);
                    if attr.atime.sec == hi && attr.mtime.sec == lo {
                        Ok((node, attr))
                    } else {
                        Err(Error::Exist)
                    }
                }
                _ => match attrs.size {
                    Some(size) => {
                        let fd = self.open_data(&node, libc::O_WRONLY)?;
                        ftruncate(fd.as_fd(), size)?;
                        let attr = stat(node.fd.as_fd())?;
                        Ok((node, attr))
                    }
                    None => Ok((node, attr)),
                },
            };
        }
        Err(Error::Unavailable)
    }

    pub(super) fn init_new_file(
        &self,
        file: OwnedFd,
        how: CreateMode,
        attrs: &SetAttr,
    ) -> Result<(Arc<Node>, Attr)> {
        // Keep an O_PATH descriptor in the cache, not a writable one (which would
        // make the file unexecutable while cached).
        // Made just now in a directory on the root's file system (a new file
        // is no mount point): its handle is all `adopt` would find out.
        let raw = encode_at(file.as_fd(), c"", libc::AT_EMPTY_PATH)?;
        let path_fd = reopen(file.as_fd(), libc::O_PATH)?;
        let node = self.remember(path_fd, raw.to_filer()?, FileType::Regular);
        own_new(node.fd.as_fd(), attrs)?;
        let mode = attrs.mode.unwrap_or(DEFAULT_FILE_MODE) & 0o7777;
        // SAFETY: plain syscall on a descriptor we own.
        cvt(unsafe { libc::fchmod(file.as_raw_fd(), mode) })?;
        match how {
            CreateMode::Exclusive(verf) => {
                let at = SetTime::Client(Timespec {
                    sec: (verf >> 32) as i64,
                    nsec: 0,
                });
                let mt = SetTime::Client(Timespec {
                    sec: (verf & 0xffff_ffff) as i64,
                    nsec: 0,
                });
                set_times(node.fd.as_fd(), at, mt)?;
            }
            _ => {
                if let Some(size) = attrs.size {
                    ftruncate(file.as_fd(), size)?;
                }
                set_times(node.fd.as_fd(), attrs.atime, attrs.mtime)?;
            }
        }
        let attr = stat(node.fd.as_fd())?;
        Ok((node, attr))
    }

    /// A listing page from `dir` (a readable directory descriptor).
    pub(super) fn list(
        &self,
        dir: BorrowedFd<'_>,
        cookie: u64,
        max: usize,
    ) -> Result<(Vec<FilerDirEntry>, bool)> {
        if max == 0 {
            return Err(Error::TooSmall);
        }
        let off = i64::try_from(cookie).map_err(|_| Error::BadCookie)?;
        // SAFETY: plain syscall on a descriptor we own.
        if unsafe { libc::lseek(dir.as_raw_fd(), off, libc::SEEK_SET) } < 0 {
            let e = last_err();
            return Err(if errno_of(&e) == libc::EINVAL {
                Error::BadCookie
            } else {
                e.into()
            });
        }
        let mut buf = vec![0u8; DIRENT_BUF];
        let mut out = Vec::new();
        loop {
            let n = getdents(dir, &mut buf)?;
            if n == 0 {
                return Ok((out, true));
            }
            let mut pos = 0;
            while pos < n {
                let d = parse_dirent(&buf[pos..n])?;
                pos += d.reclen;
                if d.name == b"." || d.name == b".." {
                    continue;
                }
                if out.len() == max {
                    return Ok((out, false));
                }
                out.push(FilerDirEntry {
                    name: d.name.to_vec(),
                    fileid: d.ino,
                    // d_off is where the next entry starts: seeking there resumes after this one.
                    cookie: d.off,
                    ftype: ftype_of_dtype(d.dtype),
                });
            }
        }
    }

    pub(super) fn open_dir_for_listing(&self, cred: &Credentials, fh: &FilerHandle) -> Result<OwnedFd> {
        let (node, _) = self.resolve_dir(fh)?;
        identity::assume(cred)?;
        self.open_data(&node, libc::O_RDONLY | libc::O_DIRECTORY)
    }

    /// A write as `cred`, or (`None`) through an open granted write access.
    pub(super) async fn write_as(
        &self,
        cred: Option<&Credentials>,
        fh: &FilerHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<FilerWrite> {
        let (node, before) = self.resolve(fh)?;
        match node.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(Error::IsDir),
            _ => return Err(Error::Inval),
        }
        if u32::try_from(data.len()).is_err() {
            return Err(Error::Inval);
        }
        match offset.checked_add(data.len() as u64) {
            Some(end) if end <= i64::MAX as u64 => {}
            _ => return Err(Error::FBig),
        }
        let fd = match cred {
            Some(cred) => self.open_data_as(cred, &node, libc::O_WRONLY)?,
            None => self.open_data_granted(&node, libc::O_WRONLY)?,
        };
        let file = into_compio(fd);
        let count = pwrite(&file, offset, data).await?;
        match stability {
            Stability::Unstable => {}
            Stability::DataSync => file.sync_data().await?,
            Stability::FileSync => file.sync_all().await?,
        }
        let after = stat(node.fd.as_fd())?;
        Ok(FilerWrite {
            count: count as u32,
            committed: stability,
            wcc: BeforeAfter {
                before: Some(AttrStamp::from(&before)),
                after: Some(after),
            },
        })
    }

    #[cfg(test)]
    pub(super) fn cached(&self) -> usize {
        lock(&self.cache).map.len()
    }
}
