//! Objects the `local` core filer holds open, and how a handle becomes one:
//! a bounded cache of `O_PATH` descriptors, lookups one checked name at a
//! time, and the proof that what a handle names lies beneath the root.

use super::*;

/// An object we hold open: an `O_PATH` descriptor (or one as good) and its handle.
pub(super) struct Node {
    pub(super) fd: OwnedFd,
    pub(super) handle: FilerHandle,
    pub(super) ftype: FileType,
}

/// Bounded map handle → open node, evicting in insertion order.
pub(super) struct NodeCache {
    pub(super) map: HashMap<FilerHandle, (Arc<Node>, u64)>,
    pub(super) order: VecDeque<(FilerHandle, u64)>,
    pub(super) seq: u64,
}

impl NodeCache {
    pub(super) fn new() -> Self {
        NodeCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
        }
    }

    pub(super) fn get(&self, h: &FilerHandle) -> Option<Arc<Node>> {
        self.map.get(h).map(|(n, _)| n.clone())
    }

    pub(super) fn insert(&mut self, node: Arc<Node>) {
        self.seq += 1;
        let h = node.handle;
        self.map.insert(h, (node, self.seq));
        self.order.push_back((h, self.seq));
        while self.map.len() > CACHE_CAP {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            // Only the newest insertion of a handle evicts it.
            if self.map.get(&old).is_some_and(|(_, s)| *s == seq) {
                self.map.remove(&old);
            }
        }
        // Removals and re-insertions leave dead entries behind; drop them now and then.
        if self.order.len() > 2 * CACHE_CAP {
            let map = &self.map;
            self.order
                .retain(|(h, s)| map.get(h).is_some_and(|(_, cur)| cur == s));
        }
    }

    pub(super) fn remove(&mut self, h: &FilerHandle) {
        self.map.remove(h);
    }
}

impl LocalFiler {
    /// Open one checked name in `dir` without following it, never leaving the tree.
    pub(super) fn open_child(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        flags: c_int,
        mode: u32,
    ) -> io::Result<OwnedFd> {
        let mut flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // openat2 refuses O_PATH with any flag but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC.
        if flags & libc::O_PATH == 0 {
            flags |= libc::O_NOCTTY;
        }
        if self.has_openat2.load(Ordering::Relaxed) {
            let how = OpenHow {
                flags: flags as u64,
                mode: if flags & libc::O_CREAT != 0 {
                    u64::from(mode)
                } else {
                    0
                },
                resolve: libc::RESOLVE_BENEATH
                    | libc::RESOLVE_NO_MAGICLINKS
                    | libc::RESOLVE_NO_SYMLINKS
                    | libc::RESOLVE_NO_XDEV,
            };
            let mut tries = 0;
            loop {
                // SAFETY: `name` is NUL-terminated and `how` is an open_how of the size passed.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_openat2,
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        &how as *const OpenHow,
                        std::mem::size_of::<OpenHow>(),
                    )
                };
                if r >= 0 {
                    return cvt_fd(r as c_int);
                }
                let e = last_err();
                match errno_of(&e) {
                    // A concurrent rename; harmless for one component, so try again.
                    libc::EAGAIN if tries < 16 => tries += 1,
                    libc::ENOSYS => {
                        self.has_openat2.store(false, Ordering::Relaxed);
                        break;
                    }
                    _ => return Err(e),
                }
            }
        }
        // One component with O_NOFOLLOW cannot leave `dir` either.
        // SAFETY: `name` is NUL-terminated; the result is a new descriptor we own.
        cvt_fd(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) })
    }

    /// Handle and attributes of an object we opened by name beneath the root.
    pub(super) fn probe(&self, fd: BorrowedFd<'_>) -> Result<(FilerHandle, Attr)> {
        let st = statx_fd(fd)?;
        if dev_of(&st) != self.root_dev {
            return Err(Error::XDev);
        }
        let attr = attr_of(&st)?;
        let raw = encode_at(fd, c"", libc::AT_EMPTY_PATH)?;
        Ok((raw.to_filer()?, attr))
    }

    /// Remember an object found by name beneath the root.
    pub(super) fn adopt(&self, fd: OwnedFd) -> Result<(Arc<Node>, Attr)> {
        let (handle, attr) = self.probe(fd.as_fd())?;
        Ok((self.remember(fd, handle, attr.ftype), attr))
    }

    /// Cache an object whose handle and type are known.
    pub(super) fn remember(&self, fd: OwnedFd, handle: FilerHandle, ftype: FileType) -> Arc<Node> {
        let node = Arc::new(Node { fd, handle, ftype });
        lock(&self.cache).insert(node.clone());
        node
    }

    /// The `O_PATH` descriptor of a name in `dir`, as a cached node.
    pub(super) fn lookup_in(&self, dir: &Node, name: &CStr) -> Result<(Arc<Node>, Attr)> {
        let fd = self.open_child(dir.fd.as_fd(), name, libc::O_PATH, 0)?;
        self.adopt(fd)
    }

    pub(super) fn forget(&self, h: &FilerHandle) {
        lock(&self.cache).remove(h);
    }

    /// Handle of what `name` in `dir` is now, to forget it after it goes away.
    pub(super) fn handle_of_name(&self, dir: &Node, name: &CStr) -> Option<FilerHandle> {
        encode_at(dir.fd.as_fd(), name, 0).ok()?.to_filer().ok()
    }

    /// Open a handle and its current attributes. Deleted objects and objects that
    /// are not ours are stale.
    pub(super) fn resolve(&self, fh: &FilerHandle) -> Result<(Arc<Node>, Attr)> {
        let cached = lock(&self.cache).get(fh);
        if let Some(node) = cached {
            match stat(node.fd.as_fd()) {
                Ok(attr) if attr.nlink > 0 => return Ok((node, attr)),
                Ok(_) => {
                    // Removed while we held it open.
                    self.forget(fh);
                    return Err(Error::Stale);
                }
                Err(e) => return Err(e),
            }
        }
        let raw = RawHandle::from_filer(fh)?;
        // Decoding a handle and walking `..` need the appliance's own rights.
        identity::daemon()?;
        let fd = open_by_handle(self.root_fd.as_fd(), &raw, libc::O_PATH).map_err(handle_err)?;
        // Only the exact encoding we hand out is accepted (e.g. ext4 skips the
        // generation check for a zero generation; a re-encode exposes that).
        let again = encode_at(fd.as_fd(), c"", libc::AT_EMPTY_PATH).map_err(|_| Error::Stale)?;
        if again.handle_type != raw.handle_type || again.bytes() != raw.bytes() {
            return Err(Error::Stale);
        }
        let st = statx_fd(fd.as_fd())?;
        if dev_of(&st) != self.root_dev {
            return Err(Error::Stale);
        }
        let attr = attr_of(&st)?;
        if attr.nlink == 0 {
            return Err(Error::Stale);
        }
        let beneath = if attr.ftype == FileType::Directory {
            self.dir_is_beneath(fd.as_fd(), attr.fileid)?
        } else {
            self.nondir_is_beneath(fd.as_fd())
        };
        if !beneath {
            return Err(Error::Stale);
        }
        let node = Arc::new(Node {
            fd,
            handle: *fh,
            ftype: attr.ftype,
        });
        lock(&self.cache).insert(node.clone());
        Ok((node, attr))
    }

    pub(super) fn resolve_dir(&self, fh: &FilerHandle) -> Result<(Arc<Node>, Attr)> {
        let (node, attr) = self.resolve(fh)?;
        if node.ftype != FileType::Directory {
            return Err(Error::NotDir);
        }
        Ok((node, attr))
    }

    /// Walk `..` until the root (beneath) or the top of the file system (not).
    pub(super) fn dir_is_beneath(&self, fd: BorrowedFd<'_>, ino: u64) -> Result<bool> {
        if ino == self.root_ino {
            return Ok(true);
        }
        let mut cur_ino = ino;
        let mut cur = open_dotdot(fd).map_err(|_| Error::Stale)?;
        for _ in 0..MAX_DEPTH {
            let (dev, ino) = dev_ino(cur.as_fd())?;
            if dev != self.root_dev {
                return Ok(false);
            }
            if ino == self.root_ino {
                return Ok(true);
            }
            if ino == cur_ino {
                return Ok(false);
            }
            cur_ino = ino;
            cur = open_dotdot(cur.as_fd()).map_err(|_| Error::Stale)?;
        }
        Ok(false)
    }

    /// Whether the kernel's name of a non-directory lies beneath the root's name.
    /// A disconnected object (named "/") cannot be placed and passes.
    pub(super) fn nondir_is_beneath(&self, fd: BorrowedFd<'_>) -> bool {
        let Some(path) = proc_name(fd) else {
            return true;
        };
        if path == b"/" {
            return true;
        }
        let mut root = lock(&self.root_name);
        if let Some(r) = root.as_deref() {
            if is_beneath(&path, r) {
                return true;
            }
        }
        // The root may have been renamed since: ask again.
        *root = proc_name(self.root_fd.as_fd());
        match root.as_deref() {
            Some(r) => is_beneath(&path, r),
            None => true,
        }
    }

    /// A real (non-`O_PATH`) descriptor for the node's data, opened with the
    /// thread's current identity (the kernel checks its rights).
    pub(super) fn open_data(&self, node: &Node, flags: c_int) -> Result<OwnedFd> {
        let fd = if identity::acting_as_caller() {
            reopen(node.fd.as_fd(), flags)
        } else {
            // The appliance's own rights: by handle, a third cheaper than `/proc`.
            RawHandle::from_filer(&node.handle)
                .map_err(|_| io::Error::from_raw_os_error(libc::ESTALE))
                .and_then(|raw| open_by_handle(self.root_fd.as_fd(), &raw, flags))
        };
        fd.map_err(|e| match errno_of(&e) {
            libc::EROFS | libc::EACCES | libc::EPERM | libc::ETXTBSY | libc::EISDIR => Error::from(e),
            libc::ENOMEM | libc::EMFILE | libc::ENFILE | libc::EINTR => Error::Unavailable,
            _ => Error::Stale,
        })
    }

    /// `open_data` as `cred`; when the kernel refuses, knfsd's overrides: the
    /// owner may read and write whatever the mode, and a file one may
    /// execute may be read (clients read the programs they run). Decided on
    /// the object's current attributes.
    pub(super) fn open_data_as(&self, cred: &Credentials, node: &Node, flags: c_int) -> Result<OwnedFd> {
        identity::assume(cred)?;
        match self.open_data(node, flags) {
            Err(Error::Access) => {
                let attr = stat(node.fd.as_fd())?;
                let exec = flags & libc::O_ACCMODE == libc::O_RDONLY && may_execute(node.fd.as_fd());
                if attr.uid != cred.uid && !exec {
                    return Err(Error::Access);
                }
                self.open_data_granted(node, flags)
            }
            other => other,
        }
    }

    /// `open_data` with the appliance's rights, for an access already proven.
    pub(super) fn open_data_granted(&self, node: &Node, flags: c_int) -> Result<OwnedFd> {
        identity::daemon()?;
        self.open_data(node, flags)
    }
}
