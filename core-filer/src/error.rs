//! Errors of core filers and of the engine: one enum, which every front end
//! maps to its own status codes.

use std::io;

/// What went wrong, in terms every file protocol can express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("operation not permitted")]
    Perm,
    #[error("no such file or directory")]
    NoEnt,
    #[error("I/O error")]
    Io,
    /// The core filer restarted and may have lost unstable writes made
    /// before it: a COMMIT answers with a new write verifier so that
    /// clients write them again.
    #[error("unstable writes lost by the core filer")]
    WritesLost,
    #[error("permission denied")]
    Access,
    #[error("file exists")]
    Exist,
    #[error("cross-device link")]
    XDev,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("invalid argument")]
    Inval,
    #[error("file too large")]
    FBig,
    #[error("no space left on device")]
    NoSpc,
    #[error("read-only file system")]
    RoFs,
    #[error("too many links")]
    MLink,
    #[error("name too long")]
    NameTooLong,
    #[error("directory not empty")]
    NotEmpty,
    #[error("quota exceeded")]
    DQuot,
    #[error("stale file handle")]
    Stale,
    #[error("malformed file handle")]
    BadHandle,
    #[error("operation not supported")]
    NotSupp,
    #[error("buffer too small")]
    TooSmall,
    #[error("object type not supported here")]
    BadType,
    #[error("attribute guard mismatch")]
    GuardMismatch,
    #[error("stale directory cookie")]
    BadCookie,
    #[error("core filer unavailable, retry later")]
    Unavailable,
    #[error("internal server fault")]
    ServerFault,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Map an errno from the kernel to the engine's error.
    pub fn from_errno(errno: i32) -> Self {
        match errno {
            libc::EPERM => Error::Perm,
            libc::ENOENT => Error::NoEnt,
            libc::EACCES => Error::Access,
            libc::EEXIST => Error::Exist,
            libc::EXDEV => Error::XDev,
            libc::ENOTDIR => Error::NotDir,
            libc::EISDIR => Error::IsDir,
            libc::EINVAL => Error::Inval,
            libc::EFBIG => Error::FBig,
            libc::ENOSPC => Error::NoSpc,
            libc::EROFS => Error::RoFs,
            libc::EMLINK => Error::MLink,
            libc::ENAMETOOLONG => Error::NameTooLong,
            libc::ENOTEMPTY => Error::NotEmpty,
            libc::EDQUOT => Error::DQuot,
            libc::ESTALE => Error::Stale,
            libc::EOPNOTSUPP => Error::NotSupp,
            // A symlink met where the tree must not follow one, or a path leaving the root.
            libc::ELOOP => Error::Access,
            libc::ETIMEDOUT | libc::EAGAIN => Error::Unavailable,
            _ => Error::Io,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(errno) => Error::from_errno(errno),
            None => match e.kind() {
                io::ErrorKind::NotFound => Error::NoEnt,
                io::ErrorKind::PermissionDenied => Error::Access,
                io::ErrorKind::AlreadyExists => Error::Exist,
                io::ErrorKind::InvalidInput => Error::Inval,
                io::ErrorKind::TimedOut => Error::Unavailable,
                io::ErrorKind::Unsupported => Error::NotSupp,
                _ => Error::Io,
            },
        }
    }
}
