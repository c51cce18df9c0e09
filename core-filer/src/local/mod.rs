//! The `local` core filer: a directory on this machine.
//!
//! Objects are named by kernel file handles (`name_to_handle_at`), so a handle
//! stays valid across restarts as long as the object exists. Every access starts
//! from a file descriptor obtained from a handle and goes down one checked name
//! at a time; symlinks are never followed, so nothing outside the root is
//! reachable by name.
//!
//! A handle that does not come from a lookup in this process is verified when it
//! is first opened: it must re-encode to exactly the same bytes, live on the
//! root's device, and lie beneath the root. For a directory "beneath" is proven
//! by walking `..` up to the root. For anything else the kernel's name of the
//! open object (`/proc/self/fd`) must be beneath the root's name; when the kernel
//! cannot name it (a disconnected dentry, e.g. after a restart with a cold
//! dentry cache) only the device and canonical-encoding checks apply.
//!
//! Every operation that the kernel checks permissions for runs as the caller
//! ([`identity`]): names are looked up, made and removed, and data files
//! opened (by reopening the held `O_PATH` descriptor through `/proc`), with
//! the caller's fsuid, fsgid and groups. Only turning a handle into a
//! descriptor (`open_by_handle_at`, which needs `CAP_DAC_READ_SEARCH`) and
//! proving it lies beneath the root run with the appliance's own rights.
//! Reads, writes and syncs of an open descriptor go through io_uring, which
//! checks nothing more; no operation by name ever does.

mod node;
mod ops;
mod sys;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use compio::buf::{BufResult, IntoInner, IoBufMut};
use compio::io::{AsyncReadAt, AsyncWriteAt};
use libc::c_int;

use crate::types::*;
use crate::{identity, CoreFiler, FilerCreated, FilerDirEntryPlus, FilerRead, FilerWrite};
use crate::{Error, Result};

use node::{Node, NodeCache};
use sys::*;

/// Largest handle the kernel hands out (`MAX_HANDLE_SZ`).
const MAX_HANDLE_SZ: usize = 128;
/// Bytes of the handle type that precede the kernel's handle bytes in a [`FilerHandle`].
const TYPE_LEN: usize = 4;
/// Open `O_PATH` descriptors kept per filer. Small: each pins an inode.
const CACHE_CAP: usize = 256;
/// Most bytes one read moves; a larger request gets a short (non-EOF) read.
const MAX_IO: usize = 64 << 20;
/// Deepest directory the `..` walk follows before it gives up.
const MAX_DEPTH: usize = 4096;
/// Buffer for one `getdents64` call.
const DIRENT_BUF: usize = 32 << 10;

const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;

/// A core filer backed by a directory of a local file system.
pub struct LocalFiler {
    /// The root directory, `O_RDONLY`: also the mount fd for `open_by_handle_at`.
    root_fd: OwnedFd,
    root_handle: FilerHandle,
    root_dev: (u32, u32),
    root_ino: u64,
    /// The kernel's name of the root (from `/proc/self/fd`), refreshed if the root moves.
    root_name: Mutex<Option<Vec<u8>>>,
    cache: Mutex<NodeCache>,
    has_openat2: AtomicBool,
    has_fchmodat2: AtomicBool,
}

impl fmt::Debug for LocalFiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalFiler")
            .field("root", &self.root_handle)
            .field("dev", &self.root_dev)
            .finish()
    }
}

impl LocalFiler {
    /// Serve the directory `root`. Errors name the path and the cause; a file
    /// system without usable file handles gives `ErrorKind::Unsupported`.
    pub fn open(root: &Path) -> io::Result<LocalFiler> {
        let ctx = |what: &str, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("local core filer root {}: {what}: {e}", root.display()),
            )
        };
        let unsupported = |what: String| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("local core filer root {}: {what}", root.display()),
            )
        };
        let path = CString::new(root.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "local core filer root {}: path contains a NUL byte",
                    root.display()
                ),
            )
        })?;
        // SAFETY: `path` is NUL-terminated; the result is a new descriptor we own.
        let root_fd = cvt_fd(unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })
        .map_err(|e| ctx("cannot open the directory", e))?;
        let st = statx_fd(root_fd.as_fd()).map_err(|e| ctx("cannot stat the directory", e))?;
        let raw = encode_at(root_fd.as_fd(), c"", libc::AT_EMPTY_PATH).map_err(|e| match errno_of(&e) {
            libc::EOPNOTSUPP | libc::ENOSYS => {
                unsupported(format!("the file system does not support file handles ({e})"))
            }
            libc::EOVERFLOW => unsupported(format!(
                "the file system's file handles are larger than {MAX_HANDLE_SZ} bytes"
            )),
            _ => ctx("name_to_handle_at failed", e),
        })?;
        let root_handle = raw.to_filer().map_err(|_| {
            unsupported(format!(
                "the file system's handles ({} bytes) do not fit in {} bytes",
                raw.bytes().len() + TYPE_LEN,
                MAX_FILER_HANDLE
            ))
        })?;
        let check = open_by_handle(root_fd.as_fd(), &raw, libc::O_PATH).map_err(|e| match errno_of(&e) {
            libc::EPERM => ctx("open_by_handle_at needs CAP_DAC_READ_SEARCH (run as root)", e),
            libc::EOPNOTSUPP | libc::ENOSYS | libc::ESTALE => {
                unsupported(format!("the file system cannot open its own file handles ({e})"))
            }
            _ => ctx("open_by_handle_at failed", e),
        })?;
        let st2 = statx_fd(check.as_fd()).map_err(|e| ctx("cannot stat the directory", e))?;
        if st2.stx_ino != st.stx_ino || dev_of(&st2) != dev_of(&st) {
            return Err(unsupported(
                "the root's file handle opens a different object".to_string(),
            ));
        }
        let root_name = proc_name(root_fd.as_fd());
        Ok(LocalFiler {
            root_dev: dev_of(&st),
            root_ino: st.stx_ino,
            root_fd,
            root_handle,
            root_name: Mutex::new(root_name),
            cache: Mutex::new(NodeCache::new()),
            has_openat2: AtomicBool::new(true),
            has_fchmodat2: AtomicBool::new(true),
        })
    }
}

#[async_trait(?Send)]
impl CoreFiler for LocalFiler {
    fn name(&self) -> &str {
        "local"
    }

    fn caches_writes(&self) -> bool {
        true
    }

    fn root(&self) -> FilerHandle {
        self.root_handle
    }

    async fn getattr(&self, _cred: &Credentials, fh: &FilerHandle) -> Result<Attr> {
        Ok(self.resolve(fh)?.1)
    }

    async fn lookup(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
    ) -> Result<(FilerHandle, Attr)> {
        check_name(name)?;
        let name = cstring(name)?;
        let (d, _) = self.resolve_dir(dir)?;
        identity::assume(cred)?;
        let (node, attr) = self.lookup_in(&d, &name)?;
        Ok((node.handle, attr))
    }

    async fn lookup_parent(&self, cred: &Credentials, dir: &FilerHandle) -> Result<(FilerHandle, Attr)> {
        let (d, attr) = self.resolve_dir(dir)?;
        // The root is its own parent: ".." never leads out.
        if attr.fileid == self.root_ino {
            return Ok((self.root_handle, attr));
        }
        identity::assume(cred)?;
        let (node, attr) = self.adopt(open_dotdot(d.fd.as_fd())?)?;
        Ok((node.handle, attr))
    }

    async fn read(&self, cred: &Credentials, fh: &FilerHandle, offset: u64, len: u32) -> Result<FilerRead> {
        let (node, attr) = self.resolve(fh)?;
        match node.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(Error::IsDir),
            _ => return Err(Error::Inval),
        }
        // io_uring reads "at the file position" for offset -1: never go near it.
        let Some(room) = (i64::MAX as u64).checked_sub(offset) else {
            return Ok(FilerRead {
                data: Bytes::new(),
                eof: true,
            });
        };
        let want = (len as usize)
            .min(MAX_IO)
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        let fd = self.open_data_as(cred, &node, libc::O_RDONLY)?;
        let data = pread(fd, offset, want).await?;
        let eof = data.len() < want || offset + data.len() as u64 >= attr.size;
        Ok(FilerRead {
            data: Bytes::from(data),
            eof,
        })
    }

    async fn write(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<FilerWrite> {
        self.write_as(Some(cred), fh, offset, data, stability).await
    }

    async fn write_opened(
        &self,
        _cred: &Credentials,
        fh: &FilerHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<FilerWrite> {
        self.write_as(None, fh, offset, data, stability).await
    }

    async fn commit(&self, _cred: &Credentials, fh: &FilerHandle) -> Result<BeforeAfter> {
        let (node, before) = self.resolve(fh)?;
        match node.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(Error::IsDir),
            _ => return Err(Error::Inval),
        }
        // Making written data durable needs no right to the file: a file
        // its writer may not read is synced all the same.
        let file = into_compio(self.open_data_granted(&node, libc::O_RDONLY)?);
        file.sync_all().await?;
        let after = stat(node.fd.as_fd())?;
        Ok(BeforeAfter {
            before: Some(AttrStamp::from(&before)),
            after: Some(after),
        })
    }
    async fn setattr(&self, cred: &Credentials, fh: &FilerHandle, attrs: &SetAttr) -> Result<BeforeAfter> {
        let (node, before) = self.resolve(fh)?;
        // Refuse bad input before changing anything.
        timespec_arg(attrs.atime)?;
        timespec_arg(attrs.mtime)?;
        if let Some(size) = attrs.size {
            match node.ftype {
                FileType::Regular => {}
                FileType::Directory => return Err(Error::IsDir),
                _ => return Err(Error::Inval),
            }
            let fd = self.open_data_as(cred, &node, libc::O_WRONLY)?;
            ftruncate(fd.as_fd(), size)?;
        }
        identity::assume(cred)?;
        // Ids given as they are need no right (the kernel wants one even to
        // chown to the same owner).
        let uid = attrs.uid.filter(|&u| u != before.uid);
        let gid = attrs.gid.filter(|&g| g != before.gid);
        set_owner(node.fd.as_fd(), uid, gid)?;
        if let Some(mode) = attrs.mode {
            self.set_mode(&node, mode)?;
        }
        set_times(node.fd.as_fd(), attrs.atime, attrs.mtime)?;
        let after = stat(node.fd.as_fd())?;
        Ok(BeforeAfter {
            before: Some(AttrStamp::from(&before)),
            after: Some(after),
        })
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
        let cname = cstring(name)?;
        let (d, dir_before) = self.resolve_dir(dir)?;
        identity::assume(cred)?;
        let dfd = d.fd.as_raw_fd();
        let (obj, attr) = match node {
            NewNode::File(how) => self.create_file(&d, &cname, *how, attrs)?,
            other => {
                let (mode, default_mode) = match other {
                    NewNode::Directory => {
                        // SAFETY: `cname` is NUL-terminated; dfd is a directory we hold.
                        cvt(unsafe { libc::mkdirat(dfd, cname.as_ptr(), 0o700) })?;
                        (None, DEFAULT_DIR_MODE)
                    }
                    NewNode::Symlink(target) => {
                        if target.is_empty() {
                            return Err(Error::Inval);
                        }
                        let target = cstring(target)?;
                        // SAFETY: both strings are NUL-terminated; dfd is a directory we hold.
                        cvt(unsafe { libc::symlinkat(target.as_ptr(), dfd, cname.as_ptr()) })?;
                        (None, 0o777)
                    }
                    NewNode::Fifo => (Some((libc::S_IFIFO, 0)), DEFAULT_FILE_MODE),
                    NewNode::Socket => (Some((libc::S_IFSOCK, 0)), DEFAULT_FILE_MODE),
                    NewNode::CharDev(ma, mi) => {
                        (Some((libc::S_IFCHR, libc::makedev(*ma, *mi))), DEFAULT_FILE_MODE)
                    }
                    NewNode::BlockDev(ma, mi) => {
                        (Some((libc::S_IFBLK, libc::makedev(*ma, *mi))), DEFAULT_FILE_MODE)
                    }
                    NewNode::File(_) => return Err(Error::ServerFault),
                };
                if let Some((kind, rdev)) = mode {
                    // SAFETY: `cname` is NUL-terminated; dfd is a directory we hold.
                    cvt(unsafe { libc::mknodat(dfd, cname.as_ptr(), kind | 0o600, rdev) })?;
                }
                let (obj, _) = self.lookup_in(&d, &cname)?;
                self.apply_new(&obj, attrs, default_mode, true)?;
                let attr = stat(obj.fd.as_fd())?;
                (obj, attr)
            }
        };
        let dir_after = stat(d.fd.as_fd())?;
        Ok(FilerCreated {
            handle: obj.handle,
            attr,
            dir_wcc: BeforeAfter {
                before: Some(AttrStamp::from(&dir_before)),
                after: Some(dir_after),
            },
        })
    }

    async fn readlink(&self, _cred: &Credentials, fh: &FilerHandle) -> Result<Vec<u8>> {
        let (node, attr) = self.resolve(fh)?;
        if node.ftype != FileType::Symlink {
            return Err(Error::Inval);
        }
        // st_size is the target's length; one more byte detects a target that grew.
        let mut cap = (attr.size as usize).clamp(64, libc::PATH_MAX as usize) + 1;
        loop {
            let mut buf = vec![0u8; cap];
            // SAFETY: the empty name is NUL-terminated and `buf` has `cap` writable bytes.
            let n = unsafe {
                libc::readlinkat(
                    node.fd.as_raw_fd(),
                    c"".as_ptr(),
                    buf.as_mut_ptr().cast::<libc::c_char>(),
                    cap,
                )
            };
            if n < 0 {
                return Err(last_err().into());
            }
            let n = n as usize;
            if n < cap {
                buf.truncate(n);
                return Ok(buf);
            }
            if cap > 1 << 20 {
                return Err(Error::NameTooLong);
            }
            cap *= 2;
        }
    }

    async fn link(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        dir: &FilerHandle,
        name: &[u8],
    ) -> Result<(Attr, BeforeAfter)> {
        check_name(name)?;
        let cname = cstring(name)?;
        let (node, _) = self.resolve(fh)?;
        let (d, dir_before) = self.resolve_dir(dir)?;
        identity::assume(cred)?;
        // Directories are refused by the kernel (EPERM), after it checked the new name.
        // Link the very object the handle names, through its `/proc` link (which,
        // unlike AT_EMPTY_PATH, needs no capability) rather than by a name.
        let from =
            CString::new(format!("/proc/self/fd/{}", node.fd.as_raw_fd())).map_err(|_| Error::Inval)?;
        // SAFETY: both names are NUL-terminated; the descriptors are ours.
        cvt(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                d.fd.as_raw_fd(),
                cname.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        })?;
        let attr = stat(node.fd.as_fd())?;
        let dir_after = stat(d.fd.as_fd())?;
        Ok((
            attr,
            BeforeAfter {
                before: Some(AttrStamp::from(&dir_before)),
                after: Some(dir_after),
            },
        ))
    }

    async fn remove(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
        rmdir: bool,
    ) -> Result<BeforeAfter> {
        check_name(name)?;
        let cname = cstring(name)?;
        let (d, before) = self.resolve_dir(dir)?;
        identity::assume(cred)?;
        let victim = self.handle_of_name(&d, &cname);
        let flags = if rmdir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: `cname` is NUL-terminated; the descriptor is ours.
        cvt(unsafe { libc::unlinkat(d.fd.as_raw_fd(), cname.as_ptr(), flags) })?;
        if let Some(h) = victim {
            // Do not keep a removed inode alive in the cache.
            self.forget(&h);
        }
        let after = stat(d.fd.as_fd())?;
        Ok(BeforeAfter {
            before: Some(AttrStamp::from(&before)),
            after: Some(after),
        })
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
        let from = cstring(from_name)?;
        let to = cstring(to_name)?;
        let (fd_dir, from_before) = self.resolve_dir(from_dir)?;
        let (td_dir, to_before) = self.resolve_dir(to_dir)?;
        identity::assume(cred)?;
        let replaced = self.handle_of_name(&td_dir, &to);
        // SAFETY: both names are NUL-terminated; the descriptors are ours.
        cvt(unsafe {
            libc::renameat(
                fd_dir.fd.as_raw_fd(),
                from.as_ptr(),
                td_dir.fd.as_raw_fd(),
                to.as_ptr(),
            )
        })?;
        if let Some(h) = replaced {
            self.forget(&h);
        }
        let from_after = stat(fd_dir.fd.as_fd())?;
        let from_wcc = BeforeAfter {
            before: Some(AttrStamp::from(&from_before)),
            after: Some(from_after),
        };
        if from_before.fileid == to_before.fileid {
            return Ok((from_wcc, from_wcc));
        }
        let to_after = stat(td_dir.fd.as_fd())?;
        Ok((
            from_wcc,
            BeforeAfter {
                before: Some(AttrStamp::from(&to_before)),
                after: Some(to_after),
            },
        ))
    }

    async fn readdir(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<FilerDirPage> {
        let fd = self.open_dir_for_listing(cred, dir)?;
        let (entries, eof) = self.list(fd.as_fd(), cookie, max)?;
        Ok(FilerDirPage { entries, eof })
    }

    async fn readdir_plus(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<(Vec<FilerDirEntryPlus>, bool)> {
        let fd = self.open_dir_for_listing(cred, dir)?;
        let (entries, eof) = self.list(fd.as_fd(), cookie, max)?;
        let mut out = Vec::with_capacity(entries.len());
        for mut entry in entries {
            // One O_PATH open per entry so the handle and the attributes are of the
            // same object; not cached, so a big listing does not flush the cache.
            let name = cstring(&entry.name)?;
            let object = match self.open_child(fd.as_fd(), &name, libc::O_PATH, 0) {
                Ok(child) => match self.probe(child.as_fd()) {
                    Ok(found) => Some(found),
                    Err(Error::XDev) | Err(Error::NoEnt) => None,
                    Err(e) => return Err(e),
                },
                Err(e) => match Error::from(e) {
                    // Gone since the listing, a mount point we do not cross, or
                    // a directory the caller may list but not search.
                    Error::NoEnt | Error::XDev | Error::Access => None,
                    e => return Err(e),
                },
            };
            if let Some((_, attr)) = &object {
                entry.ftype = Some(attr.ftype);
            }
            out.push(FilerDirEntryPlus { entry, object });
        }
        Ok((out, eof))
    }

    async fn fsstat(&self, _cred: &Credentials, fh: &FilerHandle) -> Result<FsStat> {
        let (node, _) = self.resolve(fh)?;
        let mut st = MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: `st` is valid for writes of a whole statvfs; the descriptor is ours.
        cvt(unsafe { libc::fstatvfs(node.fd.as_raw_fd(), st.as_mut_ptr()) })?;
        // SAFETY: fstatvfs succeeded and filled the buffer (which was zeroed anyway).
        let st = unsafe { st.assume_init() };
        let unit = st.f_frsize;
        Ok(FsStat {
            total_bytes: st.f_blocks.saturating_mul(unit),
            free_bytes: st.f_bfree.saturating_mul(unit),
            avail_bytes: st.f_bavail.saturating_mul(unit),
            total_files: st.f_files,
            free_files: st.f_ffree,
            avail_files: st.f_favail,
        })
    }
}
