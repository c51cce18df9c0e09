//! Engine errors as NT statuses: the one place they are mapped.

use cache_engine::Error;
use smb_proto::NtStatus;

pub(crate) fn status(e: Error) -> NtStatus {
    match e {
        Error::Perm | Error::Access => NtStatus::ACCESS_DENIED,
        Error::NoEnt => NtStatus::OBJECT_NAME_NOT_FOUND,
        Error::Exist => NtStatus::OBJECT_NAME_COLLISION,
        Error::XDev => NtStatus::NOT_SAME_DEVICE,
        Error::NotDir => NtStatus::NOT_A_DIRECTORY,
        Error::IsDir => NtStatus::FILE_IS_A_DIRECTORY,
        Error::Inval | Error::BadCookie | Error::GuardMismatch => NtStatus::INVALID_PARAMETER,
        Error::FBig => NtStatus::DISK_FULL,
        Error::NoSpc | Error::DQuot => NtStatus::DISK_FULL,
        Error::RoFs => NtStatus::MEDIA_WRITE_PROTECTED,
        Error::MLink => NtStatus::INSUFFICIENT_RESOURCES,
        Error::NameTooLong => NtStatus::OBJECT_NAME_INVALID,
        Error::NotEmpty => NtStatus::DIRECTORY_NOT_EMPTY,
        Error::Stale | Error::BadHandle => NtStatus::FILE_DELETED,
        Error::NotSupp | Error::BadType => NtStatus::NOT_SUPPORTED,
        Error::TooSmall => NtStatus::BUFFER_TOO_SMALL,
        Error::Unavailable => NtStatus::IO_TIMEOUT,
        Error::Io | Error::WritesLost | Error::ServerFault => NtStatus::UNEXPECTED_IO_ERROR,
    }
}

/// `?` on engine results inside handlers.
pub(crate) trait EngineResult<T> {
    fn nt(self) -> Result<T, NtStatus>;
}

impl<T> EngineResult<T> for cache_engine::Result<T> {
    fn nt(self) -> Result<T, NtStatus> {
        self.map_err(status)
    }
}
