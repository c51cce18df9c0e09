//! Conversions between NFSv3's types and the core filer's: statuses to
//! errors, attributes, times, stability.

use super::*;

pub(super) fn ok<T, F>(r: NfsResult<T, F>) -> Result<T> {
    match r {
        NfsResult::Ok(v) => Ok(v),
        NfsResult::Err(s, _) => Err(status_error(s)),
    }
}

/// The engine's error for an upstream status, as the local filer maps the
/// matching errno.
pub(super) fn status_error(s: NfsStat3) -> Error {
    use NfsStat3 as S;
    match s {
        S::Ok => Error::Io,
        S::Perm => Error::Perm,
        S::NoEnt => Error::NoEnt,
        S::Io | S::NxIo | S::NoDev | S::Remote | S::ServerFault => Error::Io,
        S::Acces => Error::Access,
        S::Exist => Error::Exist,
        S::XDev => Error::XDev,
        S::NotDir => Error::NotDir,
        S::IsDir => Error::IsDir,
        S::Inval => Error::Inval,
        S::FBig => Error::FBig,
        S::NoSpc => Error::NoSpc,
        S::RoFs => Error::RoFs,
        S::MLink => Error::MLink,
        S::NameTooLong => Error::NameTooLong,
        S::NotEmpty => Error::NotEmpty,
        S::DQuot => Error::DQuot,
        // The upstream no longer knows a handle it gave us.
        S::Stale | S::BadHandle => Error::Stale,
        S::NotSync => Error::GuardMismatch,
        S::BadCookie => Error::BadCookie,
        S::NotSupp => Error::NotSupp,
        S::TooSmall => Error::TooSmall,
        S::BadType => Error::BadType,
        S::Jukebox => Error::Unavailable,
    }
}

pub(super) fn timespec(t: NfsTime3) -> Timespec {
    Timespec {
        sec: i64::from(t.seconds),
        nsec: t.nseconds.min(999_999_999),
    }
}

pub(super) fn attr(a: &Fattr3) -> Attr {
    let ctime = timespec(a.ctime);
    Attr {
        ftype: match a.ftype {
            Ftype3::Reg => FileType::Regular,
            Ftype3::Dir => FileType::Directory,
            Ftype3::Blk => FileType::BlockDev,
            Ftype3::Chr => FileType::CharDev,
            Ftype3::Lnk => FileType::Symlink,
            Ftype3::Sock => FileType::Socket,
            Ftype3::Fifo => FileType::Fifo,
        },
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.used,
        rdev: (a.rdev.specdata1, a.rdev.specdata2),
        fsid: a.fsid,
        fileid: a.fileid,
        atime: timespec(a.atime),
        mtime: timespec(a.mtime),
        ctime,
        btime: None,
        // ctime moves on every data or metadata change (as for the local filer).
        change: (ctime.sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(u64::from(ctime.nsec)),
    }
}

pub(super) fn wcc(w: &WccData) -> BeforeAfter {
    BeforeAfter {
        before: w.before.map(|b| crate::types::AttrStamp {
            size: b.size,
            mtime: timespec(b.mtime),
            ctime: timespec(b.ctime),
        }),
        after: w.after.as_ref().map(attr),
    }
}

pub(super) fn set_time(t: SetTime) -> Result<SetTime3> {
    Ok(match t {
        SetTime::DontChange => SetTime3::DontChange,
        SetTime::ServerNow => SetTime3::ServerTime,
        SetTime::Client(ts) => SetTime3::ClientTime(NfsTime3 {
            seconds: u32::try_from(ts.sec).map_err(|_| Error::Inval)?,
            nseconds: if ts.nsec < 1_000_000_000 {
                ts.nsec
            } else {
                return Err(Error::Inval);
            },
        }),
    })
}

pub(super) fn sattr(a: &SetAttr) -> Result<Sattr3> {
    Ok(Sattr3 {
        mode: a.mode.map(|m| m & 0o7777),
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        atime: set_time(a.atime)?,
        mtime: set_time(a.mtime)?,
    })
}

pub(super) fn stable_how(s: Stability) -> StableHow {
    match s {
        Stability::Unstable => StableHow::Unstable,
        Stability::DataSync => StableHow::DataSync,
        Stability::FileSync => StableHow::FileSync,
    }
}

pub(super) fn stability(s: StableHow) -> Stability {
    match s {
        StableHow::Unstable => Stability::Unstable,
        StableHow::DataSync => Stability::DataSync,
        StableHow::FileSync => Stability::FileSync,
    }
}

pub(super) fn dirop(dir: NfsFh3, name: &[u8]) -> DirOpArgs3 {
    DirOpArgs3 {
        dir,
        name: Opaque::new(Bytes::copy_from_slice(name)),
    }
}
