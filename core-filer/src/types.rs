//! Protocol-neutral types of the core filer API, which the engine's API
//! speaks too: attributes, credentials, handles, directory pages.

use std::fmt;

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

impl Timespec {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timespec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    BlockDev,
    CharDev,
    Fifo,
    Socket,
}

/// Everything NFSv3's fattr3 and SMB2's file information classes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ftype: FileType,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Bytes of storage actually used.
    pub used: u64,
    /// Device numbers of a block or character device.
    pub rdev: (u32, u32),
    pub fsid: u64,
    pub fileid: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// Creation time where the core filer knows it.
    pub btime: Option<Timespec>,
    /// A value that changes whenever the file changes (ctime-derived where the
    /// core filer has no change counter).
    pub change: u64,
}

/// What tells one version of an object from another: size and times, as
/// taken just before an operation changed it (NFSv3's weak cache
/// consistency data is made from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrStamp {
    pub size: u64,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

impl From<&Attr> for AttrStamp {
    fn from(a: &Attr) -> Self {
        AttrStamp {
            size: a.size,
            mtime: a.mtime,
            ctime: a.ctime,
        }
    }
}

/// Attributes of an object before and after an operation changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BeforeAfter {
    pub before: Option<AttrStamp>,
    pub after: Option<Attr>,
}

/// Who is asking, as a POSIX identity (NFS AUTH_SYS, or an SMB user's mapping).
///
/// `origin` is an opaque tag of who is calling, handed back in every
/// change notice the call causes, so a front end can tell its own changes
/// apart (the SMB server puts a tag of the open there). Zero means
/// "unspecified"; the NFS front end leaves it at zero.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
    pub origin: u64,
}

impl Credentials {
    pub fn root() -> Self {
        Credentials::default()
    }

    /// The same identity, with `origin` as the tag of changes it makes.
    pub fn with_origin(mut self, origin: u64) -> Self {
        self.origin = origin;
        self
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetTime {
    #[default]
    DontChange,
    ServerNow,
    Client(Timespec),
}

/// Attributes to change (setattr) or to give a new object (create, mkdir, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: SetTime,
    pub mtime: SetTime,
}

/// How a regular file is created (NFSv3 createhow3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// Create, or open the existing file (applying the size in the attributes).
    Unchecked,
    /// Fail with `Exist` when the name exists.
    Guarded,
    /// Create exactly once: a retransmission with the same verifier succeeds.
    Exclusive(u64),
}

/// What a create call makes in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewNode {
    File(CreateMode),
    Directory,
    Symlink(Vec<u8>),
    Fifo,
    Socket,
    CharDev(u32, u32),
    BlockDev(u32, u32),
}

/// How durable a write must be before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    Unstable,
    DataSync,
    FileSync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStat {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub total_files: u64,
    pub free_files: u64,
    pub avail_files: u64,
}

/// Longest file name the engine and every core filer accept.
pub const NAME_MAX: usize = 255;

/// Check one path component: not empty, not `.` or `..`, no `/` or NUL.
pub fn check_name(name: &[u8]) -> crate::Result<()> {
    if name.len() > NAME_MAX {
        return Err(crate::Error::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(crate::Error::Inval);
    }
    Ok(())
}

/// Longest handle a core filer may give out, so that the engine's own
/// handles (which wrap it) stay within 64 bytes.
pub const MAX_FILER_HANDLE: usize = 46;

/// A core filer's handle for one object: opaque, stable across restarts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilerHandle {
    len: u8,
    bytes: [u8; MAX_FILER_HANDLE],
}

impl FilerHandle {
    pub fn new(bytes: &[u8]) -> crate::Result<Self> {
        if bytes.len() > MAX_FILER_HANDLE {
            return Err(crate::Error::BadHandle);
        }
        let mut h = FilerHandle {
            len: bytes.len() as u8,
            bytes: [0; MAX_FILER_HANDLE],
        };
        h.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(h)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Debug for FilerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FilerHandle(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// One directory entry as a core filer lists it. `cookie` resumes the
/// listing right after this entry and stays valid while the entry exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilerDirEntry {
    pub name: Vec<u8>,
    pub fileid: u64,
    pub cookie: u64,
    pub ftype: Option<FileType>,
}

/// One page of a directory listing from a core filer (`.` and `..` left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilerDirPage {
    pub entries: Vec<FilerDirEntry>,
    pub eof: bool,
}
