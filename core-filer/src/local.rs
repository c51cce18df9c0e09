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

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct RawHandle {
    handle_bytes: u32,
    handle_type: c_int,
    f_handle: [u8; MAX_HANDLE_SZ],
}

impl RawHandle {
    fn empty() -> Self {
        RawHandle {
            handle_bytes: MAX_HANDLE_SZ as u32,
            handle_type: 0,
            f_handle: [0; MAX_HANDLE_SZ],
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.f_handle[..(self.handle_bytes as usize).min(MAX_HANDLE_SZ)]
    }

    /// Our wire form: the type (i32 LE), then the kernel's bytes.
    fn to_filer(&self) -> Result<FilerHandle> {
        let f = self.bytes();
        if f.len() + TYPE_LEN > MAX_FILER_HANDLE {
            return Err(Error::NotSupp);
        }
        let mut b = [0u8; MAX_FILER_HANDLE];
        b[..TYPE_LEN].copy_from_slice(&self.handle_type.to_le_bytes());
        b[TYPE_LEN..TYPE_LEN + f.len()].copy_from_slice(f);
        FilerHandle::new(&b[..TYPE_LEN + f.len()])
    }

    fn from_filer(fh: &FilerHandle) -> Result<Self> {
        let b = fh.as_bytes();
        if b.len() <= TYPE_LEN {
            return Err(Error::BadHandle);
        }
        let mut raw = RawHandle::empty();
        raw.handle_type = c_int::from_le_bytes([b[0], b[1], b[2], b[3]]);
        raw.handle_bytes = (b.len() - TYPE_LEN) as u32;
        raw.f_handle[..b.len() - TYPE_LEN].copy_from_slice(&b[TYPE_LEN..]);
        Ok(raw)
    }
}

/// `struct open_how` of openat2 (libc's is `#[non_exhaustive]`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// An object we hold open: an `O_PATH` descriptor (or one as good) and its handle.
struct Node {
    fd: OwnedFd,
    handle: FilerHandle,
    ftype: FileType,
}

/// Bounded map handle → open node, evicting in insertion order.
struct NodeCache {
    map: HashMap<FilerHandle, (Arc<Node>, u64)>,
    order: VecDeque<(FilerHandle, u64)>,
    seq: u64,
}

impl NodeCache {
    fn new() -> Self {
        NodeCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
        }
    }

    fn get(&self, h: &FilerHandle) -> Option<Arc<Node>> {
        self.map.get(h).map(|(n, _)| n.clone())
    }

    fn insert(&mut self, node: Arc<Node>) {
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

    fn remove(&mut self, h: &FilerHandle) {
        self.map.remove(h);
    }
}

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

// ---------------------------------------------------------------------------
// Thin wrappers around the system calls.

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

fn errno_of(e: &io::Error) -> c_int {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn cvt(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(last_err())
    } else {
        Ok(r)
    }
}

fn cvt_fd(r: c_int) -> io::Result<OwnedFd> {
    let fd = cvt(r)?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cstring(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| Error::Inval)
}

fn statx_at(fd: BorrowedFd<'_>, name: &CStr, flags: c_int, mask: u32) -> io::Result<libc::statx> {
    let mut st = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `name` is NUL-terminated and `st` is valid for writes of a whole statx.
    cvt(unsafe { libc::statx(fd.as_raw_fd(), name.as_ptr(), flags, mask, st.as_mut_ptr()) })?;
    // SAFETY: statx succeeded, so it filled the buffer (which was zeroed anyway).
    Ok(unsafe { st.assume_init() })
}

/// statx of the object an fd refers to (never of a symlink's target).
fn statx_fd(fd: BorrowedFd<'_>) -> io::Result<libc::statx> {
    statx_at(
        fd,
        c"",
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT,
        libc::STATX_BASIC_STATS | libc::STATX_BTIME,
    )
}

fn encode_at(fd: BorrowedFd<'_>, name: &CStr, flags: c_int) -> io::Result<RawHandle> {
    let mut raw = RawHandle::empty();
    let mut mount_id: c_int = 0;
    // SAFETY: `raw` is a file_handle whose handle_bytes says how much room f_handle has;
    // `name` is NUL-terminated and `mount_id` is a valid int.
    cvt(unsafe {
        libc::name_to_handle_at(
            fd.as_raw_fd(),
            name.as_ptr(),
            (&mut raw as *mut RawHandle).cast::<libc::file_handle>(),
            &mut mount_id,
            flags,
        )
    })?;
    Ok(raw)
}

fn open_by_handle(mount: BorrowedFd<'_>, raw: &RawHandle, flags: c_int) -> io::Result<OwnedFd> {
    // The kernel only reads the handle; copy it so the pointer can be `*mut`.
    let mut h = RawHandle {
        handle_bytes: raw.handle_bytes,
        handle_type: raw.handle_type,
        f_handle: raw.f_handle,
    };
    // SAFETY: `h` is a valid file_handle with handle_bytes ≤ the room in f_handle.
    cvt_fd(unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            (&mut h as *mut RawHandle).cast::<libc::file_handle>(),
            flags | libc::O_CLOEXEC | libc::O_NOCTTY,
        )
    })
}

/// Open what a descriptor refers to anew, through its `/proc` link: the kernel
/// checks the current identity's rights to the object for `flags`, as an open
/// by name would, without a name that could lead elsewhere.
fn reopen(fd: BorrowedFd<'_>, flags: c_int) -> io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}\0", fd.as_raw_fd());
    // SAFETY: `path` is NUL-terminated; the result is a new descriptor we own.
    cvt_fd(unsafe {
        libc::openat(
            libc::AT_FDCWD,
            path.as_ptr().cast::<libc::c_char>(),
            flags | libc::O_CLOEXEC | libc::O_NOCTTY,
        )
    })
}

/// Errors of `open_by_handle_at`: a handle that does not resolve is stale.
fn handle_err(e: io::Error) -> Error {
    match errno_of(&e) {
        libc::EINVAL | libc::EOVERFLOW => Error::BadHandle,
        libc::EPERM => Error::Perm,
        libc::ENOMEM | libc::EMFILE | libc::ENFILE | libc::EINTR => Error::Jukebox,
        _ => Error::Stale,
    }
}

fn dev_of(st: &libc::statx) -> (u32, u32) {
    (st.stx_dev_major, st.stx_dev_minor)
}

fn ts(t: &libc::statx_timestamp) -> Timespec {
    Timespec {
        sec: t.tv_sec,
        nsec: t.tv_nsec.min(999_999_999),
    }
}

fn ftype_of(mode: u32) -> Result<FileType> {
    Ok(match mode & libc::S_IFMT {
        libc::S_IFREG => FileType::Regular,
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFBLK => FileType::BlockDev,
        libc::S_IFCHR => FileType::CharDev,
        libc::S_IFIFO => FileType::Fifo,
        libc::S_IFSOCK => FileType::Socket,
        _ => return Err(Error::Io),
    })
}

fn attr_of(st: &libc::statx) -> Result<Attr> {
    let mode = u32::from(st.stx_mode);
    let ctime = ts(&st.stx_ctime);
    Ok(Attr {
        ftype: ftype_of(mode)?,
        mode: mode & 0o7777,
        nlink: st.stx_nlink,
        uid: st.stx_uid,
        gid: st.stx_gid,
        size: st.stx_size,
        used: st.stx_blocks.saturating_mul(512),
        rdev: (st.stx_rdev_major, st.stx_rdev_minor),
        fsid: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        fileid: st.stx_ino,
        atime: ts(&st.stx_atime),
        mtime: ts(&st.stx_mtime),
        ctime,
        btime: (st.stx_mask & libc::STATX_BTIME != 0).then(|| ts(&st.stx_btime)),
        // ctime moves on every data or metadata change.
        change: (ctime.sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(u64::from(ctime.nsec)),
    })
}

fn stat(fd: BorrowedFd<'_>) -> Result<Attr> {
    attr_of(&statx_fd(fd)?)
}

fn proc_name(fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|p| p.into_os_string().into_vec())
}

fn is_beneath(path: &[u8], root: &[u8]) -> bool {
    root == b"/" || path == root || (path.starts_with(root) && path.get(root.len()) == Some(&b'/'))
}

fn timespec_arg(t: SetTime) -> Result<libc::timespec> {
    Ok(match t {
        SetTime::DontChange => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        SetTime::ServerNow => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        SetTime::Client(t) => {
            if t.nsec >= 1_000_000_000 {
                return Err(Error::Inval);
            }
            libc::timespec {
                tv_sec: t.sec,
                tv_nsec: i64::from(t.nsec),
            }
        }
    })
}

/// Set times of whatever `fd` is (a symlink itself, never its target).
fn set_times(fd: BorrowedFd<'_>, atime: SetTime, mtime: SetTime) -> Result<()> {
    if atime == SetTime::DontChange && mtime == SetTime::DontChange {
        return Ok(());
    }
    let times = [timespec_arg(atime)?, timespec_arg(mtime)?];
    // SAFETY: the empty name is NUL-terminated and `times` holds the two entries utimensat reads.
    cvt(unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            times.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// chown of whatever `fd` is; `None` leaves that id alone.
fn set_owner(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    // SAFETY: the empty name is NUL-terminated; -1 (as u32::MAX) means "unchanged".
    cvt(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid.unwrap_or(u32::MAX),
            gid.unwrap_or(u32::MAX),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// Whether the thread's current identity may execute what `fd` refers to.
fn may_execute(fd: BorrowedFd<'_>) -> bool {
    // AT_EACCESS: the file system ids, not the real ones.
    // SAFETY: the empty name is NUL-terminated; the descriptor is ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::X_OK,
            libc::AT_EACCESS | libc::AT_EMPTY_PATH,
        )
    };
    r == 0
}

/// Give a new object the owner asked for. Made as a caller, it has the
/// caller's fsuid, and its fsgid or a setgid directory's group, already.
fn own_new(fd: BorrowedFd<'_>, attrs: &SetAttr) -> Result<()> {
    if identity::acting_as_caller() {
        return Ok(());
    }
    set_owner(fd, attrs.uid, attrs.gid)
}

fn ftruncate(fd: BorrowedFd<'_>, size: u64) -> Result<()> {
    let size = i64::try_from(size).map_err(|_| Error::FBig)?;
    // SAFETY: plain syscall on a descriptor we own.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
    Ok(())
}

fn open_dotdot(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: ".." is NUL-terminated; the result is a new descriptor we own.
    cvt_fd(unsafe {
        libc::openat(
            fd.as_raw_fd(),
            c"..".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

fn dev_ino(fd: BorrowedFd<'_>) -> io::Result<((u32, u32), u64)> {
    let st = statx_at(
        fd,
        c"",
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        libc::STATX_INO,
    )?;
    Ok((dev_of(&st), st.stx_ino))
}

fn into_compio(fd: OwnedFd) -> compio::fs::File {
    // SAFETY: we give up ownership of `fd`; the compio file closes it when the last
    // in-flight operation that uses it is done.
    unsafe { compio::fs::File::from_raw_fd(fd.into_raw_fd()) }
}

/// pread until `len` bytes or EOF.
async fn pread(fd: OwnedFd, offset: u64, len: usize) -> Result<Vec<u8>> {
    let file = into_compio(fd);
    let mut buf: Vec<u8> = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| Error::Jukebox)?;
    while buf.len() < len {
        let have = buf.len();
        let BufResult(res, b) = file.read_at(buf.uninit(), offset + have as u64).await;
        buf = b.into_inner();
        let n = res?;
        if n == 0 {
            break;
        }
        if buf.len() != have + n {
            return Err(Error::Io);
        }
    }
    Ok(buf)
}

/// pwrite all of `data`; a failure after some bytes went out returns the count so far.
async fn pwrite(file: &compio::fs::File, offset: u64, data: Bytes) -> Result<usize> {
    let mut done = 0usize;
    let mut w = file;
    while done < data.len() {
        let BufResult(res, _) = w
            .write_at(Bytes::slice(&data, done..), offset + done as u64)
            .await;
        match res {
            Ok(0) => return if done > 0 { Ok(done) } else { Err(Error::Io) },
            Ok(n) => done += n,
            Err(_) if done > 0 => return Ok(done),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

fn getdents(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of buf.len() bytes and the kernel writes at most that.
    let r = unsafe { libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if r < 0 {
        Err(last_err())
    } else {
        Ok(r as usize)
    }
}

/// One `linux_dirent64` record.
struct RawDirent<'a> {
    ino: u64,
    off: u64,
    dtype: u8,
    name: &'a [u8],
    reclen: usize,
}

fn parse_dirent(buf: &[u8]) -> Result<RawDirent<'_>> {
    const HDR: usize = 19;
    if buf.len() < HDR {
        return Err(Error::Io);
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    let ino = word(0);
    let off = word(8);
    let reclen = usize::from(u16::from_ne_bytes([buf[16], buf[17]]));
    let dtype = buf[18];
    if reclen < HDR || reclen > buf.len() {
        return Err(Error::Io);
    }
    let name = &buf[HDR..reclen];
    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
    Ok(RawDirent {
        ino,
        off,
        dtype,
        name,
        reclen,
    })
}

fn ftype_of_dtype(t: u8) -> Option<FileType> {
    match t {
        libc::DT_REG => Some(FileType::Regular),
        libc::DT_DIR => Some(FileType::Directory),
        libc::DT_LNK => Some(FileType::Symlink),
        libc::DT_BLK => Some(FileType::BlockDev),
        libc::DT_CHR => Some(FileType::CharDev),
        libc::DT_FIFO => Some(FileType::Fifo),
        libc::DT_SOCK => Some(FileType::Socket),
        _ => None,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------

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

    /// Open one checked name in `dir` without following it, never leaving the tree.
    fn open_child(&self, dir: BorrowedFd<'_>, name: &CStr, flags: c_int, mode: u32) -> io::Result<OwnedFd> {
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
    fn probe(&self, fd: BorrowedFd<'_>) -> Result<(FilerHandle, Attr)> {
        let st = statx_fd(fd)?;
        if dev_of(&st) != self.root_dev {
            return Err(Error::XDev);
        }
        let attr = attr_of(&st)?;
        let raw = encode_at(fd, c"", libc::AT_EMPTY_PATH)?;
        Ok((raw.to_filer()?, attr))
    }

    /// Remember an object found by name beneath the root.
    fn adopt(&self, fd: OwnedFd) -> Result<(Arc<Node>, Attr)> {
        let (handle, attr) = self.probe(fd.as_fd())?;
        Ok((self.remember(fd, handle, attr.ftype), attr))
    }

    /// Cache an object whose handle and type are known.
    fn remember(&self, fd: OwnedFd, handle: FilerHandle, ftype: FileType) -> Arc<Node> {
        let node = Arc::new(Node { fd, handle, ftype });
        lock(&self.cache).insert(node.clone());
        node
    }

    /// The `O_PATH` descriptor of a name in `dir`, as a cached node.
    fn lookup_in(&self, dir: &Node, name: &CStr) -> Result<(Arc<Node>, Attr)> {
        let fd = self.open_child(dir.fd.as_fd(), name, libc::O_PATH, 0)?;
        self.adopt(fd)
    }

    fn forget(&self, h: &FilerHandle) {
        lock(&self.cache).remove(h);
    }

    /// Handle of what `name` in `dir` is now, to forget it after it goes away.
    fn handle_of_name(&self, dir: &Node, name: &CStr) -> Option<FilerHandle> {
        encode_at(dir.fd.as_fd(), name, 0).ok()?.to_filer().ok()
    }

    /// Open a handle and its current attributes. Deleted objects and objects that
    /// are not ours are stale.
    fn resolve(&self, fh: &FilerHandle) -> Result<(Arc<Node>, Attr)> {
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

    fn resolve_dir(&self, fh: &FilerHandle) -> Result<(Arc<Node>, Attr)> {
        let (node, attr) = self.resolve(fh)?;
        if node.ftype != FileType::Directory {
            return Err(Error::NotDir);
        }
        Ok((node, attr))
    }

    /// Walk `..` until the root (beneath) or the top of the file system (not).
    fn dir_is_beneath(&self, fd: BorrowedFd<'_>, ino: u64) -> Result<bool> {
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
    fn nondir_is_beneath(&self, fd: BorrowedFd<'_>) -> bool {
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
    fn open_data(&self, node: &Node, flags: c_int) -> Result<OwnedFd> {
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
            libc::ENOMEM | libc::EMFILE | libc::ENFILE | libc::EINTR => Error::Jukebox,
            _ => Error::Stale,
        })
    }

    /// `open_data` as `cred`; when the kernel refuses, knfsd's overrides: the
    /// owner may read and write whatever the mode, and a file one may
    /// execute may be read (clients read the programs they run). Decided on
    /// the object's current attributes.
    fn open_data_as(&self, cred: &Credentials, node: &Node, flags: c_int) -> Result<OwnedFd> {
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
    fn open_data_granted(&self, node: &Node, flags: c_int) -> Result<OwnedFd> {
        identity::daemon()?;
        self.open_data(node, flags)
    }

    /// chmod that never opens a device or FIFO and never touches a symlink's target.
    fn set_mode(&self, node: &Node, mode: u32) -> Result<()> {
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
    fn apply_new(&self, node: &Node, attrs: &SetAttr, default_mode: u32, times: bool) -> Result<()> {
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

    fn create_file(
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
        Err(Error::Jukebox)
    }

    fn init_new_file(&self, file: OwnedFd, how: CreateMode, attrs: &SetAttr) -> Result<(Arc<Node>, Attr)> {
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
    fn list(&self, dir: BorrowedFd<'_>, cookie: u64, max: usize) -> Result<(Vec<FilerDirEntry>, bool)> {
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

    fn open_dir_for_listing(&self, cred: &Credentials, fh: &FilerHandle) -> Result<OwnedFd> {
        let (node, _) = self.resolve_dir(fh)?;
        identity::assume(cred)?;
        self.open_data(&node, libc::O_RDONLY | libc::O_DIRECTORY)
    }

    /// A write as `cred`, or (`None`) through an open granted write access.
    async fn write_as(
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
            wcc: Wcc {
                before: Some(WccAttr::from(&before)),
                after: Some(after),
            },
        })
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        lock(&self.cache).map.len()
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

    async fn commit(&self, _cred: &Credentials, fh: &FilerHandle) -> Result<Wcc> {
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
        Ok(Wcc {
            before: Some(WccAttr::from(&before)),
            after: Some(after),
        })
    }
    async fn setattr(&self, cred: &Credentials, fh: &FilerHandle, attrs: &SetAttr) -> Result<Wcc> {
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
        Ok(Wcc {
            before: Some(WccAttr::from(&before)),
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
            dir_wcc: Wcc {
                before: Some(WccAttr::from(&dir_before)),
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
    ) -> Result<(Attr, Wcc)> {
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
            Wcc {
                before: Some(WccAttr::from(&dir_before)),
                after: Some(dir_after),
            },
        ))
    }

    async fn remove(&self, cred: &Credentials, dir: &FilerHandle, name: &[u8], rmdir: bool) -> Result<Wcc> {
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
        Ok(Wcc {
            before: Some(WccAttr::from(&before)),
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
    ) -> Result<(Wcc, Wcc)> {
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
        let from_wcc = Wcc {
            before: Some(WccAttr::from(&from_before)),
            after: Some(from_after),
        };
        if from_before.fileid == to_before.fileid {
            return Ok((from_wcc, from_wcc));
        }
        let to_after = stat(td_dir.fd.as_fd())?;
        Ok((
            from_wcc,
            Wcc {
                before: Some(WccAttr::from(&to_before)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        compio::runtime::Runtime::new().unwrap().block_on(f)
    }

    fn cred() -> Credentials {
        Credentials::root()
    }

    /// A temp dir holding `root` (served) and `outside` (a sibling on the same fs).
    struct Fx {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
        fs: LocalFiler,
    }

    fn fixture() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        let fs = LocalFiler::open(&root).unwrap();
        Fx {
            _tmp: tmp,
            root,
            outside,
            fs,
        }
    }

    async fn mk(fs: &LocalFiler, dir: &FilerHandle, name: &str, node: NewNode) -> FilerHandle {
        fs.create(&cred(), dir, name.as_bytes(), &node, &SetAttr::default())
            .await
            .unwrap()
            .handle
    }

    async fn mkfile(fs: &LocalFiler, dir: &FilerHandle, name: &str) -> FilerHandle {
        mk(fs, dir, name, NewNode::File(CreateMode::Guarded)).await
    }

    /// The kernel's handle of any path on this machine, in our wire form.
    fn host_handle(path: &Path) -> FilerHandle {
        let parent = std::fs::File::open(path.parent().unwrap()).unwrap();
        let name = CString::new(path.file_name().unwrap().as_bytes()).unwrap();
        encode_at(parent.as_fd(), &name, 0).unwrap().to_filer().unwrap()
    }

    #[test]
    fn parent_of_a_directory_and_of_the_root() {
        let fx = fixture();
        let filer = &fx.fs;
        std::fs::create_dir_all(fx.root.join("a/b")).unwrap();
        run(async {
            let c = cred();
            let root = filer.root();
            let (a, _) = filer.lookup(&c, &root, b"a").await.unwrap();
            let (b, _) = filer.lookup(&c, &a, b"b").await.unwrap();
            assert_eq!(filer.lookup_parent(&c, &b).await.unwrap().0, a);
            assert_eq!(filer.lookup_parent(&c, &a).await.unwrap().0, root);
            assert_eq!(filer.lookup_parent(&c, &root).await.unwrap().0, root);
        });
    }

    #[test]
    fn open_errors_name_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let e = LocalFiler::open(&missing).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");

        let f = tmp.path().join("plain");
        std::fs::write(&f, b"x").unwrap();
        let e = LocalFiler::open(&f).unwrap_err();
        assert!(e.to_string().contains("plain"), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::NotADirectory);
    }

    #[test]
    fn open_refuses_fs_without_handles() {
        let e = LocalFiler::open(Path::new("/proc")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(
            e.to_string().contains("/proc") && e.to_string().contains("file handles"),
            "{e}"
        );
        assert_eq!(Error::from(e), Error::NotSupp);
    }

    #[test]
    fn root_attributes() {
        let fx = fixture();
        run(async {
            assert_eq!(fx.fs.name(), "local");
            let a = fx.fs.getattr(&cred(), &fx.fs.root()).await.unwrap();
            let md = std::fs::metadata(&fx.root).unwrap();
            assert_eq!(a.ftype, FileType::Directory);
            assert_eq!(a.fileid, md.ino());
            assert_eq!(a.fsid, md.dev());
            assert_eq!(a.mode, md.mode() & 0o7777);
            assert!(a.btime.is_some());
            assert_eq!(
                a.change,
                a.ctime.sec as u64 * 1_000_000_000 + u64::from(a.ctime.nsec)
            );
            assert!(fx.fs.root().as_bytes().len() <= MAX_FILER_HANDLE);
        });
    }

    #[test]
    fn lookup_finds_and_misses() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let h = mkfile(&fx.fs, &root, "a").await;
            let (h2, a) = fx.fs.lookup(&cred(), &root, b"a").await.unwrap();
            assert_eq!(h, h2);
            assert_eq!(a.ftype, FileType::Regular);
            assert_eq!(a.fileid, std::fs::metadata(fx.root.join("a")).unwrap().ino());
            assert_eq!(
                fx.fs.lookup(&cred(), &root, b"b").await.unwrap_err(),
                Error::NoEnt
            );
            // A file is not a directory.
            assert_eq!(fx.fs.lookup(&cred(), &h, b"x").await.unwrap_err(), Error::NotDir);
        });
    }

    #[test]
    fn bad_names_are_refused() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let f = mkfile(&fx.fs, &root, "f").await;
            let long = vec![b'x'; NAME_MAX + 1];
            let bad: [&[u8]; 6] = [b"..", b".", b"a/b", b"a\0b", b"", b"/etc"];
            for name in bad.iter().copied().chain([&long[..]]) {
                let want = if name.len() > NAME_MAX {
                    Error::NameTooLong
                } else {
                    Error::Inval
                };
                let c = cred();
                assert_eq!(fx.fs.lookup(&c, &root, name).await.unwrap_err(), want);
                let node = NewNode::Directory;
                let e = fx.fs.create(&c, &root, name, &node, &SetAttr::default()).await;
                assert_eq!(e.unwrap_err(), want);
                assert_eq!(fx.fs.remove(&c, &root, name, false).await.unwrap_err(), want);
                assert_eq!(fx.fs.remove(&c, &root, name, true).await.unwrap_err(), want);
                assert_eq!(
                    fx.fs.rename(&c, &root, b"f", &root, name).await.unwrap_err(),
                    want
                );
                assert_eq!(
                    fx.fs.rename(&c, &root, name, &root, b"g").await.unwrap_err(),
                    want
                );
                assert_eq!(fx.fs.link(&c, &f, &root, name).await.unwrap_err(), want);
            }
            // Nothing happened to the tree.
            let names: Vec<_> = std::fs::read_dir(&fx.root)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("f")]);
            assert!(std::fs::read_dir(&fx.outside).unwrap().next().is_none());
        });
    }

    #[test]
    fn handles_survive_restart() {
        let fx = fixture();
        let (d, f, l) = run(async {
            let root = fx.fs.root();
            let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
            let d2 = mk(&fx.fs, &d, "deeper", NewNode::Directory).await;
            let f = mkfile(&fx.fs, &d2, "f").await;
            fx.fs
                .write(&cred(), &f, 0, Bytes::from_static(b"kept"), Stability::FileSync)
                .await
                .unwrap();
            let l = mk(&fx.fs, &d2, "l", NewNode::Symlink(b"f".to_vec())).await;
            (d, f, l)
        });
        let root = fx.fs.root();
        let Fx {
            _tmp, root: path, fs, ..
        } = fx;
        drop(fs);
        let fs = LocalFiler::open(&path).unwrap();
        run(async {
            assert_eq!(fs.root(), root);
            assert_eq!(fs.cached(), 0);
            assert_eq!(fs.getattr(&cred(), &d).await.unwrap().ftype, FileType::Directory);
            let r = fs.read(&cred(), &f, 0, 100).await.unwrap();
            assert_eq!(&r.data[..], b"kept");
            assert!(r.eof);
            assert_eq!(fs.readlink(&cred(), &l).await.unwrap(), b"f");
            let (h, _) = fs.lookup(&cred(), &root, b"d").await.unwrap();
            assert_eq!(h, d);
        });
    }

    #[test]
    fn removed_objects_are_stale() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let f = mkfile(&fx.fs, &root, "f").await;
            let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
            let g = mkfile(&fx.fs, &root, "g").await;
            fx.fs.remove(&cred(), &root, b"f", false).await.unwrap();
            fx.fs.remove(&cred(), &root, b"d", true).await.unwrap();
            assert_eq!(fx.fs.getattr(&cred(), &f).await.unwrap_err(), Error::Stale);
            assert_eq!(fx.fs.getattr(&cred(), &d).await.unwrap_err(), Error::Stale);
            assert_eq!(fx.fs.read(&cred(), &f, 0, 1).await.unwrap_err(), Error::Stale);
            // Removed behind our back while cached.
            fx.fs.getattr(&cred(), &g).await.unwrap();
            std::fs::remove_file(fx.root.join("g")).unwrap();
            assert_eq!(fx.fs.getattr(&cred(), &g).await.unwrap_err(), Error::Stale);
            // And through a fresh filer (nothing cached).
            let fresh = LocalFiler::open(&fx.root).unwrap();
            for h in [f, d, g] {
                assert_eq!(fresh.getattr(&cred(), &h).await.unwrap_err(), Error::Stale);
            }
        });
    }

    #[test]
    fn garbage_handles_never_resolve() {
        let fx = fixture();
        run(async {
            for b in [&[][..], &[1], &[1, 0, 0, 0], &[0xff; 4]] {
                let h = FilerHandle::new(b).unwrap();
                assert_eq!(fx.fs.getattr(&cred(), &h).await.unwrap_err(), Error::BadHandle);
            }
            let real = fx.fs.root();
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..3000 {
                let len = 5 + i % (MAX_FILER_HANDLE - 4);
                let mut b = vec![0u8; len];
                for x in b.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *x = seed as u8;
                }
                // Half of them keep a real handle type so the file system decodes them.
                if i % 2 == 0 {
                    b[..4].copy_from_slice(&real.as_bytes()[..4]);
                }
                let h = FilerHandle::new(&b).unwrap();
                match fx.fs.getattr(&cred(), &h).await {
                    Err(Error::Stale) | Err(Error::BadHandle) => {}
                    other => panic!("{h:?} gave {other:?}"),
                }
                assert!(fx.fs.read(&cred(), &h, 0, 10).await.is_err());
                assert!(fx.fs.readdir(&cred(), &h, 0, 10).await.is_err());
            }
        });
    }

    #[test]
    fn non_canonical_handle_is_refused() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let f = mkfile(&fx.fs, &root, "f").await;
            let b = f.as_bytes();
            // ext4's FILEID_INO32_GEN: inode then generation; generation 0 makes ext4
            // skip its check, so only our re-encode comparison stops it.
            if b[..4] == 1i32.to_le_bytes() && b.len() == 12 {
                let mut forged = b.to_vec();
                forged[8..12].copy_from_slice(&[0; 4]);
                let h = FilerHandle::new(&forged).unwrap();
                let fresh = LocalFiler::open(&fx.root).unwrap();
                assert_eq!(fresh.getattr(&cred(), &h).await.unwrap_err(), Error::Stale);
            }
        });
    }

    #[test]
    fn objects_outside_the_root_are_refused() {
        let fx = fixture();
        let out_file = fx.outside.join("secret");
        std::fs::write(&out_file, b"secret").unwrap();
        let out_dir = fx.outside.join("dir");
        std::fs::create_dir(&out_dir).unwrap();
        run(async {
            let parent = fx.root.parent().unwrap();
            for p in [&out_file, &out_dir, &fx.outside, parent] {
                let h = host_handle(p);
                assert_eq!(
                    fx.fs.getattr(&cred(), &h).await.unwrap_err(),
                    Error::Stale,
                    "{p:?}"
                );
                assert_eq!(fx.fs.read(&cred(), &h, 0, 10).await.unwrap_err(), Error::Stale);
                let e = fx
                    .fs
                    .create(&cred(), &h, b"x", &NewNode::Directory, &SetAttr::default())
                    .await;
                assert_eq!(e.unwrap_err(), Error::Stale);
            }
            // A handle of another file system is garbage here.
            if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
                let p = shm.path().join("f");
                std::fs::write(&p, b"x").unwrap();
                let h = host_handle(&p);
                let e = fx.fs.getattr(&cred(), &h).await.unwrap_err();
                assert!(matches!(e, Error::Stale | Error::BadHandle), "{e:?}");
            }
            // Inside the root the same kind of handle works.
            std::fs::write(fx.root.join("in"), b"in").unwrap();
            let h = host_handle(&fx.root.join("in"));
            assert_eq!(fx.fs.read(&cred(), &h, 0, 10).await.unwrap().data, &b"in"[..]);
        });
        assert!(std::fs::read_dir(&out_dir).unwrap().next().is_none());
    }

    #[test]
    fn read_write_commit() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let f = mkfile(&fx.fs, &root, "f").await;
            let c = cred();
            for (i, st) in [Stability::Unstable, Stability::DataSync, Stability::FileSync]
                .into_iter()
                .enumerate()
            {
                let before = fx.fs.getattr(&c, &f).await.unwrap();
                let w = fx
                    .fs
                    .write(&c, &f, i as u64 * 5, Bytes::from_static(b"hello"), st)
                    .await
                    .unwrap();
                assert_eq!(w.count, 5);
                assert_eq!(w.committed, st);
                assert_eq!(w.wcc.before, Some(WccAttr::from(&before)));
                assert_eq!(w.wcc.after.unwrap().size, (i as u64 + 1) * 5);
            }
            assert_eq!(std::fs::read(fx.root.join("f")).unwrap(), b"hellohellohello");
            let r = fx.fs.read(&c, &f, 0, 5).await.unwrap();
            assert_eq!((&r.data[..], r.eof), (&b"hello"[..], false));
            let r = fx.fs.read(&c, &f, 10, 5).await.unwrap();
            assert_eq!((&r.data[..], r.eof), (&b"hello"[..], true));
            let r = fx.fs.read(&c, &f, 12, 100).await.unwrap();
            assert_eq!((&r.data[..], r.eof), (&b"llo"[..], true));
            let r = fx.fs.read(&c, &f, 100, 10).await.unwrap();
            assert!(r.data.is_empty() && r.eof);
            let r = fx.fs.read(&c, &f, 0, 0).await.unwrap();
            assert!(r.data.is_empty() && !r.eof);
            let r = fx.fs.read(&c, &f, u64::MAX, 10).await.unwrap();
            assert!(r.data.is_empty() && r.eof);
            let r = fx.fs.read(&c, &f, i64::MAX as u64 - 1, 10).await.unwrap();
            assert!(r.data.is_empty() && r.eof);

            // A hole reads as zeros.
            fx.fs
                .write(&c, &f, 20, Bytes::from_static(b"z"), Stability::Unstable)
                .await
                .unwrap();
            let r = fx.fs.read(&c, &f, 15, 10).await.unwrap();
            assert_eq!(&r.data[..], b"\0\0\0\0\0z");

            // Large transfer through io_uring.
            let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
            let g = mkfile(&fx.fs, &root, "g").await;
            let w = fx
                .fs
                .write(&c, &g, 7, Bytes::from(big.clone()), Stability::Unstable)
                .await
                .unwrap();
            assert_eq!(w.count as usize, big.len());
            let r = fx.fs.read(&c, &g, 7, big.len() as u32).await.unwrap();
            assert!(r.data[..] == big[..] && r.eof);

            let wcc = fx.fs.commit(&c, &g).await.unwrap();
            assert_eq!(wcc.after.unwrap().size, big.len() as u64 + 7);

            let e = fx
                .fs
                .write(
                    &c,
                    &f,
                    u64::MAX - 2,
                    Bytes::from_static(b"xx"),
                    Stability::Unstable,
                )
                .await;
            assert_eq!(e.unwrap_err(), Error::FBig);
            let e = fx
                .fs
                .write(
                    &c,
                    &f,
                    i64::MAX as u64,
                    Bytes::from_static(b"x"),
                    Stability::Unstable,
                )
                .await;
            assert_eq!(e.unwrap_err(), Error::FBig);
            assert_eq!(fx.fs.read(&c, &root, 0, 1).await.unwrap_err(), Error::IsDir);
            let e = fx
                .fs
                .write(&c, &root, 0, Bytes::from_static(b"x"), Stability::Unstable)
                .await;
            assert_eq!(e.unwrap_err(), Error::IsDir);
            assert_eq!(fx.fs.commit(&c, &root).await.unwrap_err(), Error::IsDir);
            let l = mk(&fx.fs, &root, "l", NewNode::Symlink(b"f".to_vec())).await;
            assert_eq!(fx.fs.read(&c, &l, 0, 1).await.unwrap_err(), Error::Inval);
            let e = fx
                .fs
                .write(&c, &l, 0, Bytes::from_static(b"x"), Stability::Unstable)
                .await;
            assert_eq!(e.unwrap_err(), Error::Inval);
            let p = mk(&fx.fs, &root, "p", NewNode::Fifo).await;
            assert_eq!(fx.fs.read(&c, &p, 0, 1).await.unwrap_err(), Error::Inval);
            assert_eq!(fx.fs.commit(&c, &p).await.unwrap_err(), Error::Inval);
        });
    }

    #[test]
    fn setattr_changes_what_is_asked() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            let f = mkfile(&fx.fs, &root, "f").await;
            fx.fs
                .write(&c, &f, 0, Bytes::from_static(b"0123456789"), Stability::Unstable)
                .await
                .unwrap();
            let before = fx.fs.getattr(&c, &f).await.unwrap();
            let t1 = Timespec {
                sec: 1_000_000,
                nsec: 5,
            };
            let t2 = Timespec {
                sec: 2_000_000,
                nsec: 7,
            };
            let set = SetAttr {
                mode: Some(0o4751),
                uid: Some(1234),
                gid: Some(5678),
                size: Some(4),
                atime: SetTime::Client(t1),
                mtime: SetTime::Client(t2),
            };
            let wcc = fx.fs.setattr(&c, &f, &set).await.unwrap();
            assert_eq!(wcc.before, Some(WccAttr::from(&before)));
            let a = wcc.after.unwrap();
            assert_eq!((a.mode, a.uid, a.gid, a.size), (0o4751, 1234, 5678, 4));
            assert_eq!((a.atime, a.mtime), (t1, t2));
            assert_eq!(a, fx.fs.getattr(&c, &f).await.unwrap());
            assert_eq!(std::fs::read(fx.root.join("f")).unwrap(), b"0123");

            // Grow, and "now" times.
            let set = SetAttr {
                size: Some(100),
                mtime: SetTime::ServerNow,
                ..SetAttr::default()
            };
            let atime = fx.fs.getattr(&c, &f).await.unwrap().atime;
            let a = fx.fs.setattr(&c, &f, &set).await.unwrap().after.unwrap();
            assert_eq!(a.size, 100);
            assert_eq!(a.atime, atime);
            assert!(a.mtime.sec > t2.sec);
            // Only the gid.
            let a = fx
                .fs
                .setattr(
                    &c,
                    &f,
                    &SetAttr {
                        gid: Some(42),
                        ..SetAttr::default()
                    },
                )
                .await
                .unwrap();
            let a = a.after.unwrap();
            assert_eq!((a.uid, a.gid), (1234, 42));

            // Symlink: mode is ignored, owner and times apply to the link itself.
            let l = mk(&fx.fs, &root, "l", NewNode::Symlink(b"f".to_vec())).await;
            let set = SetAttr {
                mode: Some(0o600),
                uid: Some(77),
                gid: Some(88),
                mtime: SetTime::Client(t1),
                ..SetAttr::default()
            };
            let a = fx.fs.setattr(&c, &l, &set).await.unwrap().after.unwrap();
            assert_eq!((a.ftype, a.uid, a.gid, a.mtime), (FileType::Symlink, 77, 88, t1));
            let fa = fx.fs.getattr(&c, &f).await.unwrap();
            // (The gid change above cleared set-uid, as chown does.)
            assert_eq!((fa.uid, fa.mode), (1234, 0o751));

            // A FIFO is changed without being opened.
            let p = mk(&fx.fs, &root, "p", NewNode::Fifo).await;
            let a = fx
                .fs
                .setattr(
                    &c,
                    &p,
                    &SetAttr {
                        mode: Some(0o602),
                        ..SetAttr::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(a.after.unwrap().mode, 0o602);
            // Directory mode.
            let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
            let a = fx
                .fs
                .setattr(
                    &c,
                    &d,
                    &SetAttr {
                        mode: Some(0o1777),
                        ..SetAttr::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(a.after.unwrap().mode, 0o1777);

            let size = SetAttr {
                size: Some(0),
                ..SetAttr::default()
            };
            assert_eq!(fx.fs.setattr(&c, &d, &size).await.unwrap_err(), Error::IsDir);
            assert_eq!(fx.fs.setattr(&c, &l, &size).await.unwrap_err(), Error::Inval);
            assert_eq!(fx.fs.setattr(&c, &p, &size).await.unwrap_err(), Error::Inval);
            let bad = SetAttr {
                atime: SetTime::Client(Timespec {
                    sec: 1,
                    nsec: 1_000_000_000,
                }),
                ..SetAttr::default()
            };
            assert_eq!(fx.fs.setattr(&c, &f, &bad).await.unwrap_err(), Error::Inval);
        });
    }

    #[test]
    fn create_every_kind_with_exact_attributes() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            let attrs = SetAttr {
                mode: Some(0o777),
                uid: Some(1001),
                gid: Some(1002),
                ..SetAttr::default()
            };
            let kinds = [
                ("file", NewNode::File(CreateMode::Unchecked), FileType::Regular),
                ("dir", NewNode::Directory, FileType::Directory),
                ("fifo", NewNode::Fifo, FileType::Fifo),
                ("sock", NewNode::Socket, FileType::Socket),
                ("chr", NewNode::CharDev(1, 3), FileType::CharDev),
                ("blk", NewNode::BlockDev(7, 200), FileType::BlockDev),
            ];
            for (name, node, ftype) in kinds {
                let before = fx.fs.getattr(&c, &root).await.unwrap();
                let made = fx
                    .fs
                    .create(&c, &root, name.as_bytes(), &node, &attrs)
                    .await
                    .unwrap();
                let a = made.attr;
                // Exact bits despite the umask.
                assert_eq!(
                    (a.ftype, a.mode, a.uid, a.gid),
                    (ftype, 0o777, 1001, 1002),
                    "{name}"
                );
                assert_eq!(fx.fs.getattr(&c, &made.handle).await.unwrap(), a);
                assert_eq!(made.dir_wcc.before, Some(WccAttr::from(&before)));
                assert_eq!(
                    made.dir_wcc.after.unwrap(),
                    fx.fs.getattr(&c, &root).await.unwrap()
                );
                let md = std::fs::symlink_metadata(fx.root.join(name)).unwrap();
                assert_eq!(md.ino(), a.fileid);
                assert_eq!(md.permissions().mode() & 0o7777, 0o777);
                let e = fx
                    .fs
                    .create(&c, &root, name.as_bytes(), &NewNode::Directory, &attrs)
                    .await;
                assert_eq!(e.unwrap_err(), Error::Exist);
            }
            let chr = fx.fs.lookup(&c, &root, b"chr").await.unwrap().1;
            assert_eq!(chr.rdev, (1, 3));
            let blk = fx.fs.lookup(&c, &root, b"blk").await.unwrap().1;
            assert_eq!(blk.rdev, (7, 200));

            // Defaults without a mode; a setuid file keeps its bit.
            let d = mk(&fx.fs, &root, "d2", NewNode::Directory).await;
            assert_eq!(fx.fs.getattr(&c, &d).await.unwrap().mode, DEFAULT_DIR_MODE);
            let f = mkfile(&fx.fs, &root, "f2").await;
            assert_eq!(fx.fs.getattr(&c, &f).await.unwrap().mode, DEFAULT_FILE_MODE);
            let suid = SetAttr {
                mode: Some(0o4755),
                uid: Some(5),
                ..SetAttr::default()
            };
            let made = fx
                .fs
                .create(&c, &root, b"s", &NewNode::File(CreateMode::Guarded), &suid)
                .await
                .unwrap();
            assert_eq!((made.attr.mode, made.attr.uid), (0o4755, 5));

            // Symlinks store their target as given.
            let s = mk(&fx.fs, &root, "ln", NewNode::Symlink(b"../../x".to_vec())).await;
            assert_eq!(fx.fs.readlink(&c, &s).await.unwrap(), b"../../x");
            let e = fx
                .fs
                .create(&c, &root, b"bad", &NewNode::Symlink(Vec::new()), &attrs)
                .await;
            assert_eq!(e.unwrap_err(), Error::Inval);
            let e = fx
                .fs
                .create(&c, &root, b"bad", &NewNode::Symlink(b"a\0b".to_vec()), &attrs)
                .await;
            assert_eq!(e.unwrap_err(), Error::Inval);

            // Created in a subdirectory through its handle.
            let sub = fx.fs.lookup(&c, &root, b"dir").await.unwrap().0;
            mkfile(&fx.fs, &sub, "inner").await;
            assert!(fx.root.join("dir/inner").is_file());
        });
    }

    #[test]
    fn create_unchecked_and_guarded() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            let un = NewNode::File(CreateMode::Unchecked);
            let made = fx
                .fs
                .create(&c, &root, b"f", &un, &SetAttr::default())
                .await
                .unwrap();
            fx.fs
                .write(
                    &c,
                    &made.handle,
                    0,
                    Bytes::from_static(b"content"),
                    Stability::Unstable,
                )
                .await
                .unwrap();
            // Existing regular file: same object, contents kept, mode untouched.
            let again = SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            };
            let same = fx.fs.create(&c, &root, b"f", &un, &again).await.unwrap();
            assert_eq!(same.handle, made.handle);
            assert_eq!(same.attr.size, 7);
            assert_eq!(same.attr.mode, DEFAULT_FILE_MODE);
            // With a size it truncates.
            let trunc = SetAttr {
                size: Some(3),
                ..SetAttr::default()
            };
            let same = fx.fs.create(&c, &root, b"f", &un, &trunc).await.unwrap();
            assert_eq!((same.handle, same.attr.size), (made.handle, 3));
            assert_eq!(std::fs::read(fx.root.join("f")).unwrap(), b"con");
            // New file with a size.
            let sized = fx
                .fs
                .create(
                    &c,
                    &root,
                    b"g",
                    &un,
                    &SetAttr {
                        size: Some(10),
                        ..SetAttr::default()
                    },
                )
                .await;
            assert_eq!(sized.unwrap().attr.size, 10);
            // Not a regular file: Exist.
            mk(&fx.fs, &root, "d", NewNode::Directory).await;
            mk(&fx.fs, &root, "l", NewNode::Symlink(b"f".to_vec())).await;
            for name in [&b"d"[..], b"l"] {
                let e = fx.fs.create(&c, &root, name, &un, &SetAttr::default()).await;
                assert_eq!(e.unwrap_err(), Error::Exist);
            }
            let g = NewNode::File(CreateMode::Guarded);
            assert_eq!(
                fx.fs
                    .create(&c, &root, b"f", &g, &SetAttr::default())
                    .await
                    .unwrap_err(),
                Error::Exist
            );
            assert!(fx
                .fs
                .create(&c, &root, b"h", &g, &SetAttr::default())
                .await
                .is_ok());
            // Into something that is not a directory.
            let e = fx
                .fs
                .create(&c, &made.handle, b"x", &g, &SetAttr::default())
                .await;
            assert_eq!(e.unwrap_err(), Error::NotDir);
        });
    }

    #[test]
    fn create_exclusive_retries() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            let verf = 0xdead_beef_1234_5678u64;
            let node = NewNode::File(CreateMode::Exclusive(verf));
            let attrs = SetAttr {
                mode: Some(0o640),
                ..SetAttr::default()
            };
            let first = fx.fs.create(&c, &root, b"x", &node, &attrs).await.unwrap();
            assert_eq!(first.attr.mode, 0o640);
            // A retransmission gets the same file.
            let retry = fx.fs.create(&c, &root, b"x", &node, &attrs).await.unwrap();
            assert_eq!(retry.handle, first.handle);
            // Also after a restart.
            let fresh = LocalFiler::open(&fx.root).unwrap();
            assert_eq!(
                fresh.create(&c, &root, b"x", &node, &attrs).await.unwrap().handle,
                first.handle
            );
            // Another verifier, or a file made otherwise: Exist.
            let other = NewNode::File(CreateMode::Exclusive(verf + 1));
            assert_eq!(
                fx.fs.create(&c, &root, b"x", &other, &attrs).await.unwrap_err(),
                Error::Exist
            );
            mkfile(&fx.fs, &root, "y").await;
            assert_eq!(
                fx.fs.create(&c, &root, b"y", &node, &attrs).await.unwrap_err(),
                Error::Exist
            );
            mk(&fx.fs, &root, "z", NewNode::Directory).await;
            assert_eq!(
                fx.fs.create(&c, &root, b"z", &node, &attrs).await.unwrap_err(),
                Error::Exist
            );
            // The client's SETATTR afterwards replaces the verifier times.
            let set = SetAttr {
                mtime: SetTime::ServerNow,
                atime: SetTime::ServerNow,
                ..SetAttr::default()
            };
            fx.fs.setattr(&c, &first.handle, &set).await.unwrap();
            assert_eq!(
                fx.fs.create(&c, &root, b"x", &node, &attrs).await.unwrap_err(),
                Error::Exist
            );
        });
    }

    #[test]
    fn readlink_only_on_symlinks() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            let long = vec![b'a'; 4000];
            let l = mk(&fx.fs, &root, "l", NewNode::Symlink(long.clone())).await;
            assert_eq!(fx.fs.readlink(&c, &l).await.unwrap(), long);
            let f = mkfile(&fx.fs, &root, "f").await;
            assert_eq!(fx.fs.readlink(&c, &f).await.unwrap_err(), Error::Inval);
            assert_eq!(fx.fs.readlink(&c, &root).await.unwrap_err(), Error::Inval);
        });
    }

    #[test]
    fn link_and_its_errors() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            let f = mkfile(&fx.fs, &root, "f").await;
            let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
            let before = fx.fs.getattr(&c, &d).await.unwrap();
            let (a, wcc) = fx.fs.link(&c, &f, &d, b"f2").await.unwrap();
            assert_eq!(a.nlink, 2);
            assert_eq!(wcc.before, Some(WccAttr::from(&before)));
            assert_eq!(wcc.after.unwrap(), fx.fs.getattr(&c, &d).await.unwrap());
            assert_eq!(fx.fs.lookup(&c, &d, b"f2").await.unwrap().0, f);
            assert_eq!(fx.fs.link(&c, &f, &d, b"f2").await.unwrap_err(), Error::Exist);
            assert_eq!(fx.fs.link(&c, &d, &root, b"d2").await.unwrap_err(), Error::Perm);
            assert_eq!(fx.fs.link(&c, &f, &f, b"x").await.unwrap_err(), Error::NotDir);
            // A symlink is linked as itself.
            let l = mk(&fx.fs, &root, "l", NewNode::Symlink(b"/etc/passwd".to_vec())).await;
            let (a, _) = fx.fs.link(&c, &l, &d, b"l2").await.unwrap();
            assert_eq!((a.ftype, a.nlink), (FileType::Symlink, 2));
            // A removed file cannot be linked back.
            fx.fs.remove(&c, &root, b"f", false).await.unwrap();
            fx.fs.remove(&c, &d, b"f2", false).await.unwrap();
            assert_eq!(fx.fs.link(&c, &f, &d, b"back").await.unwrap_err(), Error::Stale);
        });
    }

    #[test]
    fn remove_and_its_errors() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            mkfile(&fx.fs, &root, "f").await;
            let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
            mkfile(&fx.fs, &d, "inner").await;
            assert_eq!(
                fx.fs.remove(&c, &root, b"d", false).await.unwrap_err(),
                Error::IsDir
            );
            assert_eq!(
                fx.fs.remove(&c, &root, b"f", true).await.unwrap_err(),
                Error::NotDir
            );
            assert_eq!(
                fx.fs.remove(&c, &root, b"d", true).await.unwrap_err(),
                Error::NotEmpty
            );
            assert_eq!(
                fx.fs.remove(&c, &root, b"nope", false).await.unwrap_err(),
                Error::NoEnt
            );
            let before = fx.fs.getattr(&c, &root).await.unwrap();
            let wcc = fx.fs.remove(&c, &root, b"f", false).await.unwrap();
            assert_eq!(wcc.before, Some(WccAttr::from(&before)));
            assert_eq!(wcc.after.unwrap(), fx.fs.getattr(&c, &root).await.unwrap());
            fx.fs.remove(&c, &d, b"inner", false).await.unwrap();
            fx.fs.remove(&c, &root, b"d", true).await.unwrap();
            assert!(std::fs::read_dir(&fx.root).unwrap().next().is_none());
            // A symlink is removed, not its target.
            std::fs::write(fx.outside.join("keep"), b"k").unwrap();
            symlink(fx.outside.join("keep"), fx.root.join("l")).unwrap();
            fx.fs.remove(&c, &root, b"l", false).await.unwrap();
            assert!(fx.outside.join("keep").exists());
        });
    }

    #[test]
    fn rename_and_its_errors() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            let f = mkfile(&fx.fs, &root, "f").await;
            let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
            let e = mk(&fx.fs, &root, "e", NewNode::Directory).await;
            mkfile(&fx.fs, &e, "full").await;

            let (a, b) = fx.fs.rename(&c, &root, b"f", &root, b"g").await.unwrap();
            assert_eq!(a, b);
            assert_eq!(a.after.unwrap(), fx.fs.getattr(&c, &root).await.unwrap());
            assert_eq!(fx.fs.lookup(&c, &root, b"g").await.unwrap().0, f);

            let dir_before = fx.fs.getattr(&c, &d).await.unwrap();
            let (from, to) = fx.fs.rename(&c, &root, b"g", &d, b"h").await.unwrap();
            assert_eq!(from.after.unwrap(), fx.fs.getattr(&c, &root).await.unwrap());
            assert_eq!(to.before, Some(WccAttr::from(&dir_before)));
            assert_eq!(to.after.unwrap(), fx.fs.getattr(&c, &d).await.unwrap());
            // The handle follows the object.
            assert_eq!(
                fx.fs.getattr(&c, &f).await.unwrap().fileid,
                from_ino(&fx.root.join("d/h"))
            );

            // Replacing a file: the old target's handle goes stale.
            let victim = mkfile(&fx.fs, &root, "victim").await;
            fx.fs.rename(&c, &d, b"h", &root, b"victim").await.unwrap();
            assert_eq!(fx.fs.getattr(&c, &victim).await.unwrap_err(), Error::Stale);
            assert_eq!(fx.fs.lookup(&c, &root, b"victim").await.unwrap().0, f);

            assert_eq!(
                fx.fs.rename(&c, &root, b"nope", &root, b"x").await.unwrap_err(),
                Error::NoEnt
            );
            assert_eq!(
                fx.fs.rename(&c, &root, b"d", &root, b"e").await.unwrap_err(),
                Error::NotEmpty
            );
            assert_eq!(
                fx.fs.rename(&c, &root, b"victim", &root, b"d").await.unwrap_err(),
                Error::IsDir
            );
            assert_eq!(
                fx.fs.rename(&c, &root, b"d", &root, b"victim").await.unwrap_err(),
                Error::NotDir
            );
            assert_eq!(
                fx.fs.rename(&c, &root, b"d", &d, b"x").await.unwrap_err(),
                Error::Inval
            );
            assert_eq!(
                fx.fs.rename(&c, &f, b"a", &root, b"b").await.unwrap_err(),
                Error::NotDir
            );
            assert_eq!(
                fx.fs.rename(&c, &root, b"victim", &f, b"b").await.unwrap_err(),
                Error::NotDir
            );
            // A directory onto an empty one.
            mk(&fx.fs, &root, "empty", NewNode::Directory).await;
            fx.fs.rename(&c, &root, b"d", &root, b"empty").await.unwrap();
            assert_eq!(fx.fs.lookup(&c, &root, b"empty").await.unwrap().0, d);
        });
    }

    fn from_ino(p: &Path) -> u64 {
        std::fs::symlink_metadata(p).unwrap().ino()
    }

    #[test]
    fn readdir_pages_through_1000_entries() {
        let fx = fixture();
        for i in 0..1000 {
            std::fs::write(fx.root.join(format!("entry-{i:04}")), b"").unwrap();
        }
        run(async {
            let root = fx.fs.root();
            let c = cred();
            let mut seen = HashSet::new();
            let mut cookie = 0;
            let mut pages = 0;
            loop {
                let page = fx.fs.readdir(&c, &root, cookie, 37).await.unwrap();
                pages += 1;
                assert!(page.entries.len() <= 37);
                for e in &page.entries {
                    assert!(
                        seen.insert(e.name.clone()),
                        "{:?} twice",
                        String::from_utf8_lossy(&e.name)
                    );
                    assert_eq!(e.ftype, Some(FileType::Regular));
                    assert_eq!(
                        e.fileid,
                        from_ino(&fx.root.join(std::ffi::OsStr::from_bytes(&e.name)))
                    );
                }
                if page.eof {
                    break;
                }
                assert_eq!(page.entries.len(), 37);
                cookie = page.entries.last().unwrap().cookie;
                assert!(pages < 100);
            }
            assert_eq!(seen.len(), 1000);
            assert_eq!(pages, 1000usize.div_ceil(37));

            // Resuming from any entry's cookie continues right after it.
            let all = fx.fs.readdir(&c, &root, 0, 5000).await.unwrap();
            assert!(all.eof);
            assert_eq!(all.entries.len(), 1000);
            for at in [0, 1, 36, 500, 998] {
                let page = fx.fs.readdir(&c, &root, all.entries[at].cookie, 3).await.unwrap();
                assert_eq!(page.entries[..], all.entries[at + 1..(at + 4).min(1000)]);
            }
            let last = fx
                .fs
                .readdir(&c, &root, all.entries[999].cookie, 3)
                .await
                .unwrap();
            assert!(last.entries.is_empty() && last.eof);
        });
    }

    #[test]
    fn readdir_edges() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            let page = fx.fs.readdir(&c, &root, 0, 10).await.unwrap();
            assert!(page.entries.is_empty() && page.eof);
            let f = mkfile(&fx.fs, &root, "f").await;
            mk(&fx.fs, &root, "d", NewNode::Directory).await;
            mk(&fx.fs, &root, "l", NewNode::Symlink(b"x".to_vec())).await;
            // Exactly `max` entries left: eof is still reported.
            let page = fx.fs.readdir(&c, &root, 0, 3).await.unwrap();
            assert_eq!(page.entries.len(), 3);
            assert!(page.eof);
            let page = fx.fs.readdir(&c, &root, 0, 2).await.unwrap();
            assert!(!page.eof);
            let mut kinds: Vec<_> = fx
                .fs
                .readdir(&c, &root, 0, 10)
                .await
                .unwrap()
                .entries
                .into_iter()
                .map(|e| (e.name, e.ftype))
                .collect();
            kinds.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                kinds,
                vec![
                    (b"d".to_vec(), Some(FileType::Directory)),
                    (b"f".to_vec(), Some(FileType::Regular)),
                    (b"l".to_vec(), Some(FileType::Symlink)),
                ]
            );
            assert_eq!(fx.fs.readdir(&c, &f, 0, 10).await.unwrap_err(), Error::NotDir);
            assert_eq!(fx.fs.readdir(&c, &root, 0, 0).await.unwrap_err(), Error::TooSmall);
            assert_eq!(
                fx.fs.readdir(&c, &root, u64::MAX, 10).await.unwrap_err(),
                Error::BadCookie
            );
            assert_eq!(
                fx.fs.readdir(&c, &root, 1 << 63, 10).await.unwrap_err(),
                Error::BadCookie
            );
            // Garbage cookies within range never panic.
            for cookie in [1, 2, 3, 12345, i64::MAX as u64] {
                let _ = fx.fs.readdir(&c, &root, cookie, 10).await;
            }
        });
    }

    #[test]
    fn readdir_plus_matches_lookup() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            let c = cred();
            for i in 0..50 {
                mkfile(&fx.fs, &root, &format!("f{i}")).await;
            }
            mk(&fx.fs, &root, "d", NewNode::Directory).await;
            mk(&fx.fs, &root, "l", NewNode::Symlink(b"/etc".to_vec())).await;
            let mut cookie = 0;
            let mut n = 0;
            loop {
                let (entries, eof) = fx.fs.readdir_plus(&c, &root, cookie, 7).await.unwrap();
                for e in &entries {
                    let (h, a) = e.object.unwrap();
                    let (lh, la) = fx.fs.lookup(&c, &root, &e.entry.name).await.unwrap();
                    assert_eq!(h, lh);
                    assert_eq!(a.fileid, la.fileid);
                    assert_eq!(a.fileid, e.entry.fileid);
                    assert_eq!(e.entry.ftype, Some(la.ftype));
                    n += 1;
                }
                if eof {
                    break;
                }
                cookie = entries.last().unwrap().entry.cookie;
            }
            assert_eq!(n, 52);
            let f = fx.fs.lookup(&c, &root, b"f0").await.unwrap().0;
            assert_eq!(fx.fs.readdir_plus(&c, &f, 0, 7).await.unwrap_err(), Error::NotDir);
        });
    }

    #[test]
    fn fsstat_reports_space() {
        let fx = fixture();
        run(async {
            let s = fx.fs.fsstat(&cred(), &fx.fs.root()).await.unwrap();
            assert!(s.total_bytes > 0 && s.free_bytes <= s.total_bytes && s.avail_bytes <= s.free_bytes);
            assert!(s.total_files > 0 && s.free_files <= s.total_files);
        });
    }

    #[test]
    fn symlinks_are_never_followed() {
        let fx = fixture();
        let sub = fx.root.join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        symlink("/etc", sub.join("abs")).unwrap();
        symlink("../../", sub.join("rel")).unwrap();
        symlink(&fx.outside, sub.join("out")).unwrap();
        let probe = "weir-escape-probe";
        run(async {
            let c = cred();
            let a = fx.fs.lookup(&c, &fx.fs.root(), b"a").await.unwrap().0;
            let b = fx.fs.lookup(&c, &a, b"b").await.unwrap().0;
            let regular = mkfile(&fx.fs, &a, "regular").await;
            for (name, target) in [
                ("abs", &b"/etc"[..]),
                ("rel", b"../../"),
                ("out", fx.outside.as_os_str().as_bytes()),
            ] {
                let (h, attr) = fx.fs.lookup(&c, &b, name.as_bytes()).await.unwrap();
                assert_eq!(attr.ftype, FileType::Symlink);
                assert_eq!(attr.fileid, from_ino(&sub.join(name)));
                assert_eq!(fx.fs.readlink(&c, &h).await.unwrap(), target);
                assert_eq!(fx.fs.lookup(&c, &h, b"passwd").await.unwrap_err(), Error::NotDir);
                assert_eq!(fx.fs.readdir(&c, &h, 0, 10).await.unwrap_err(), Error::NotDir);
                assert_eq!(
                    fx.fs.readdir_plus(&c, &h, 0, 10).await.unwrap_err(),
                    Error::NotDir
                );
                for node in [
                    NewNode::File(CreateMode::Unchecked),
                    NewNode::Directory,
                    NewNode::Fifo,
                ] {
                    let e = fx
                        .fs
                        .create(&c, &h, probe.as_bytes(), &node, &SetAttr::default())
                        .await;
                    assert_eq!(e.unwrap_err(), Error::NotDir);
                }
                assert_eq!(
                    fx.fs.remove(&c, &h, b"passwd", false).await.unwrap_err(),
                    Error::NotDir
                );
                assert_eq!(
                    fx.fs.rename(&c, &h, b"passwd", &b, b"x").await.unwrap_err(),
                    Error::NotDir
                );
                assert_eq!(
                    fx.fs.rename(&c, &b, b"abs", &h, b"x").await.unwrap_err(),
                    Error::NotDir
                );
                assert_eq!(
                    fx.fs.link(&c, &regular, &h, b"x").await.unwrap_err(),
                    Error::NotDir
                );
                // setattr changes the link, never its target.
                let set = SetAttr {
                    mode: Some(0o700),
                    size: None,
                    ..SetAttr::default()
                };
                fx.fs.setattr(&c, &h, &set).await.unwrap();
                // An Unchecked create over the link's name does not open the target.
                let e = fx
                    .fs
                    .create(
                        &c,
                        &b,
                        name.as_bytes(),
                        &NewNode::File(CreateMode::Unchecked),
                        &SetAttr::default(),
                    )
                    .await;
                assert_eq!(e.unwrap_err(), Error::Exist);
            }
        });
        assert!(!Path::new("/etc").join(probe).exists());
        assert!(std::fs::read_dir(&fx.outside).unwrap().next().is_none());
        assert_eq!(
            std::fs::metadata("/etc").unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn symlink_swap_race_stays_inside() {
        let fx = fixture();
        let real = fx.root.join("sub");
        let lnk = fx.root.join("lnk");
        std::fs::create_dir(&real).unwrap();
        symlink(&fx.outside, &lnk).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = stop.clone();
            let (a, b) = (
                CString::new(real.as_os_str().as_bytes()).unwrap(),
                CString::new(lnk.as_os_str().as_bytes()).unwrap(),
            );
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: both paths are NUL-terminated.
                    let r = unsafe {
                        libc::renameat2(
                            libc::AT_FDCWD,
                            a.as_ptr(),
                            libc::AT_FDCWD,
                            b.as_ptr(),
                            libc::RENAME_EXCHANGE,
                        )
                    };
                    assert_eq!(r, 0, "{}", io::Error::last_os_error());
                    swaps += 1;
                }
                swaps
            })
        };
        let (made, refused) = run(async {
            let c = cred();
            let root = fx.fs.root();
            let pinned = fx.fs.lookup(&c, &root, b"sub").await;
            let (mut made, mut refused) = (HashSet::new(), 0);
            for i in 0..1500 {
                let name = format!("f{i}");
                for dir_name in [&b"sub"[..], b"lnk"] {
                    let Ok((h, _)) = fx.fs.lookup(&c, &root, dir_name).await else {
                        continue;
                    };
                    let node = NewNode::File(CreateMode::Unchecked);
                    match fx
                        .fs
                        .create(&c, &h, name.as_bytes(), &node, &SetAttr::default())
                        .await
                    {
                        Ok(_) => {
                            made.insert(name.clone());
                        }
                        Err(Error::NotDir) => refused += 1,
                        Err(e) => panic!("create: {e:?}"),
                    }
                    match fx.fs.readdir(&c, &h, 0, 4).await {
                        Ok(_) | Err(Error::NotDir) => {}
                        Err(e) => panic!("readdir: {e:?}"),
                    }
                    match fx.fs.lookup(&c, &h, name.as_bytes()).await {
                        Ok(_) | Err(Error::NotDir) => {}
                        Err(e) => panic!("lookup: {e:?}"),
                    }
                }
                if let Ok((h, _)) = &pinned {
                    let _ = fx
                        .fs
                        .create(
                            &c,
                            h,
                            format!("p{i}").as_bytes(),
                            &NewNode::Directory,
                            &SetAttr::default(),
                        )
                        .await;
                }
            }
            (made, refused)
        });
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        assert!(
            !made.is_empty() && swaps > 0,
            "made {} refused {refused} swaps {swaps}",
            made.len()
        );
        assert!(
            std::fs::read_dir(&fx.outside).unwrap().next().is_none(),
            "something escaped"
        );
        // Everything landed in the real directory, wherever its name is now.
        let real_now = if std::fs::symlink_metadata(&real).unwrap().is_dir() {
            real
        } else {
            lnk
        };
        for name in made {
            assert!(real_now.join(name).is_file());
        }
    }

    #[test]
    fn cache_is_bounded() {
        let fx = fixture();
        run(async {
            let root = fx.fs.root();
            for i in 0..CACHE_CAP * 2 + 10 {
                mkfile(&fx.fs, &root, &format!("f{i}")).await;
                // Re-lookups and removals churn the eviction queue.
                let _ = fx
                    .fs
                    .lookup(&cred(), &root, format!("f{}", i / 2).as_bytes())
                    .await;
            }
            assert!(fx.fs.cached() <= CACHE_CAP);
            assert!(lock(&fx.fs.cache).order.len() <= 2 * CACHE_CAP + 1);
            // Evicted handles still resolve.
            let first = fx.fs.lookup(&cred(), &root, b"f0").await.unwrap().0;
            for i in 1..CACHE_CAP + 5 {
                let _ = fx.fs.lookup(&cred(), &root, format!("f{i}").as_bytes()).await;
            }
            assert!(fx.fs.getattr(&cred(), &first).await.is_ok());
        });
    }
}
