//! Thin wrappers around the system calls the `local` core filer makes:
//! kernel file handles, `statx`, `openat2`, times and owners, `getdents64`,
//! and reads and writes through io_uring.

use super::*;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
pub(super) struct RawHandle {
    pub(super) handle_bytes: u32,
    pub(super) handle_type: c_int,
    pub(super) f_handle: [u8; MAX_HANDLE_SZ],
}

impl RawHandle {
    pub(super) fn empty() -> Self {
        RawHandle {
            handle_bytes: MAX_HANDLE_SZ as u32,
            handle_type: 0,
            f_handle: [0; MAX_HANDLE_SZ],
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.f_handle[..(self.handle_bytes as usize).min(MAX_HANDLE_SZ)]
    }

    /// Our wire form: the type (i32 LE), then the kernel's bytes.
    pub(super) fn to_filer(&self) -> Result<FilerHandle> {
        let f = self.bytes();
        if f.len() + TYPE_LEN > MAX_FILER_HANDLE {
            return Err(Error::NotSupp);
        }
        let mut b = [0u8; MAX_FILER_HANDLE];
        b[..TYPE_LEN].copy_from_slice(&self.handle_type.to_le_bytes());
        b[TYPE_LEN..TYPE_LEN + f.len()].copy_from_slice(f);
        FilerHandle::new(&b[..TYPE_LEN + f.len()])
    }

    pub(super) fn from_filer(fh: &FilerHandle) -> Result<Self> {
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
pub(super) struct OpenHow {
    pub(super) flags: u64,
    pub(super) mode: u64,
    pub(super) resolve: u64,
}

pub(super) fn last_err() -> io::Error {
    io::Error::last_os_error()
}

pub(super) fn errno_of(e: &io::Error) -> c_int {
    e.raw_os_error().unwrap_or(libc::EIO)
}

pub(super) fn cvt(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(last_err())
    } else {
        Ok(r)
    }
}

pub(super) fn cvt_fd(r: c_int) -> io::Result<OwnedFd> {
    let fd = cvt(r)?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn cstring(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| Error::Inval)
}

pub(super) fn statx_at(fd: BorrowedFd<'_>, name: &CStr, flags: c_int, mask: u32) -> io::Result<libc::statx> {
    let mut st = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `name` is NUL-terminated and `st` is valid for writes of a whole statx.
    cvt(unsafe { libc::statx(fd.as_raw_fd(), name.as_ptr(), flags, mask, st.as_mut_ptr()) })?;
    // SAFETY: statx succeeded, so it filled the buffer (which was zeroed anyway).
    Ok(unsafe { st.assume_init() })
}

/// statx of the object an fd refers to (never of a symlink's target).
pub(super) fn statx_fd(fd: BorrowedFd<'_>) -> io::Result<libc::statx> {
    statx_at(
        fd,
        c"",
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT,
        libc::STATX_BASIC_STATS | libc::STATX_BTIME,
    )
}

pub(super) fn encode_at(fd: BorrowedFd<'_>, name: &CStr, flags: c_int) -> io::Result<RawHandle> {
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

pub(super) fn open_by_handle(mount: BorrowedFd<'_>, raw: &RawHandle, flags: c_int) -> io::Result<OwnedFd> {
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
pub(super) fn reopen(fd: BorrowedFd<'_>, flags: c_int) -> io::Result<OwnedFd> {
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
pub(super) fn handle_err(e: io::Error) -> Error {
    match errno_of(&e) {
        libc::EINVAL | libc::EOVERFLOW => Error::BadHandle,
        libc::EPERM => Error::Perm,
        libc::ENOMEM | libc::EMFILE | libc::ENFILE | libc::EINTR => Error::Unavailable,
        _ => Error::Stale,
    }
}

pub(super) fn dev_of(st: &libc::statx) -> (u32, u32) {
    (st.stx_dev_major, st.stx_dev_minor)
}

pub(super) fn ts(t: &libc::statx_timestamp) -> Timespec {
    Timespec {
        sec: t.tv_sec,
        nsec: t.tv_nsec.min(999_999_999),
    }
}

pub(super) fn ftype_of(mode: u32) -> Result<FileType> {
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

pub(super) fn attr_of(st: &libc::statx) -> Result<Attr> {
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

pub(super) fn stat(fd: BorrowedFd<'_>) -> Result<Attr> {
    attr_of(&statx_fd(fd)?)
}

pub(super) fn proc_name(fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|p| p.into_os_string().into_vec())
}

pub(super) fn is_beneath(path: &[u8], root: &[u8]) -> bool {
    root == b"/" || path == root || (path.starts_with(root) && path.get(root.len()) == Some(&b'/'))
}

pub(super) fn timespec_arg(t: SetTime) -> Result<libc::timespec> {
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
pub(super) fn set_times(fd: BorrowedFd<'_>, atime: SetTime, mtime: SetTime) -> Result<()> {
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
pub(super) fn set_owner(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
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
pub(super) fn may_execute(fd: BorrowedFd<'_>) -> bool {
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
pub(super) fn own_new(fd: BorrowedFd<'_>, attrs: &SetAttr) -> Result<()> {
    if identity::acting_as_caller() {
        return Ok(());
    }
    set_owner(fd, attrs.uid, attrs.gid)
}

pub(super) fn ftruncate(fd: BorrowedFd<'_>, size: u64) -> Result<()> {
    let size = i64::try_from(size).map_err(|_| Error::FBig)?;
    // SAFETY: plain syscall on a descriptor we own.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
    Ok(())
}

pub(super) fn open_dotdot(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: ".." is NUL-terminated; the result is a new descriptor we own.
    cvt_fd(unsafe {
        libc::openat(
            fd.as_raw_fd(),
            c"..".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

pub(super) fn dev_ino(fd: BorrowedFd<'_>) -> io::Result<((u32, u32), u64)> {
    let st = statx_at(
        fd,
        c"",
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        libc::STATX_INO,
    )?;
    Ok((dev_of(&st), st.stx_ino))
}

pub(super) fn into_compio(fd: OwnedFd) -> compio::fs::File {
    // SAFETY: we give up ownership of `fd`; the compio file closes it when the last
    // in-flight operation that uses it is done.
    unsafe { compio::fs::File::from_raw_fd(fd.into_raw_fd()) }
}

/// pread until `len` bytes or EOF.
pub(super) async fn pread(fd: OwnedFd, offset: u64, len: usize) -> Result<Vec<u8>> {
    let file = into_compio(fd);
    let mut buf: Vec<u8> = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| Error::Unavailable)?;
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
pub(super) async fn pwrite(file: &compio::fs::File, offset: u64, data: Bytes) -> Result<usize> {
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

pub(super) fn getdents(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of buf.len() bytes and the kernel writes at most that.
    let r = unsafe { libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if r < 0 {
        Err(last_err())
    } else {
        Ok(r as usize)
    }
}

/// One `linux_dirent64` record.
pub(super) struct RawDirent<'a> {
    pub(super) ino: u64,
    pub(super) off: u64,
    pub(super) dtype: u8,
    pub(super) name: &'a [u8],
    pub(super) reclen: usize,
}

pub(super) fn parse_dirent(buf: &[u8]) -> Result<RawDirent<'_>> {
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

pub(super) fn ftype_of_dtype(t: u8) -> Option<FileType> {
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

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
