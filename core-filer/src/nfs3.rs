//! NFSv3's types and the core filers', both ways, in one place: the `nfs`
//! core filer reads its upstream's replies with these, and the NFS front end
//! answers its clients with them.

use nfs_proto::nfs3::*;

use crate::types::*;
use crate::{Error, Result};

// NFSv3 to ours.

/// The engine's error for an upstream status, as the local filer maps the
/// matching errno.
pub fn error(s: NfsStat3) -> Error {
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

/// The core filer's time for an NFSv3 time.
pub fn timespec(t: NfsTime3) -> Timespec {
    Timespec {
        sec: i64::from(t.seconds),
        nsec: t.nseconds.min(999_999_999),
    }
}

pub fn attr(a: &Fattr3) -> Attr {
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

/// Attributes before and after an operation, from NFSv3's wcc data.
pub fn before_after(w: &WccData) -> BeforeAfter {
    BeforeAfter {
        before: w.before.map(|b| AttrStamp {
            size: b.size,
            mtime: timespec(b.mtime),
            ctime: timespec(b.ctime),
        }),
        after: w.after.as_ref().map(attr),
    }
}

fn set_time(t: &SetTime3) -> SetTime {
    match t {
        SetTime3::DontChange => SetTime::DontChange,
        SetTime3::ServerTime => SetTime::ServerNow,
        SetTime3::ClientTime(t) => SetTime::Client(timespec(*t)),
    }
}

/// What a client asked SETATTR (or CREATE, MKDIR...) to set.
pub fn set_attr(s: &Sattr3) -> SetAttr {
    SetAttr {
        mode: s.mode.map(|m| m & 0o7777),
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        atime: set_time(&s.atime),
        mtime: set_time(&s.mtime),
    }
}

pub fn stability(s: StableHow) -> Stability {
    match s {
        StableHow::Unstable => Stability::Unstable,
        StableHow::DataSync => Stability::DataSync,
        StableHow::FileSync => Stability::FileSync,
    }
}

// Ours to NFSv3.

/// The NFSv3 status for a core filer or engine error.
pub fn status(e: Error) -> NfsStat3 {
    match e {
        Error::Perm => NfsStat3::Perm,
        Error::NoEnt => NfsStat3::NoEnt,
        Error::Io | Error::WritesLost => NfsStat3::Io,
        Error::Access => NfsStat3::Acces,
        Error::Exist => NfsStat3::Exist,
        Error::XDev => NfsStat3::XDev,
        Error::NotDir => NfsStat3::NotDir,
        Error::IsDir => NfsStat3::IsDir,
        Error::Inval => NfsStat3::Inval,
        Error::FBig => NfsStat3::FBig,
        Error::NoSpc => NfsStat3::NoSpc,
        Error::RoFs => NfsStat3::RoFs,
        Error::MLink => NfsStat3::MLink,
        Error::NameTooLong => NfsStat3::NameTooLong,
        Error::NotEmpty => NfsStat3::NotEmpty,
        Error::DQuot => NfsStat3::DQuot,
        Error::Stale => NfsStat3::Stale,
        Error::BadHandle => NfsStat3::BadHandle,
        Error::NotSupp => NfsStat3::NotSupp,
        Error::TooSmall => NfsStat3::TooSmall,
        Error::BadType => NfsStat3::BadType,
        Error::GuardMismatch => NfsStat3::NotSync,
        Error::BadCookie => NfsStat3::BadCookie,
        Error::Unavailable => NfsStat3::Jukebox,
        Error::ServerFault => NfsStat3::ServerFault,
    }
}

/// An NFSv3 time: seconds before 1970 or past 2106 are clamped.
pub fn time(t: Timespec) -> NfsTime3 {
    NfsTime3 {
        seconds: t.sec.clamp(0, u32::MAX as i64) as u32,
        nseconds: t.nsec,
    }
}

pub fn fattr(a: &Attr) -> Fattr3 {
    Fattr3 {
        ftype: match a.ftype {
            FileType::Regular => Ftype3::Reg,
            FileType::Directory => Ftype3::Dir,
            FileType::Symlink => Ftype3::Lnk,
            FileType::BlockDev => Ftype3::Blk,
            FileType::CharDev => Ftype3::Chr,
            FileType::Fifo => Ftype3::Fifo,
            FileType::Socket => Ftype3::Sock,
        },
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.used,
        rdev: SpecData3 {
            specdata1: a.rdev.0,
            specdata2: a.rdev.1,
        },
        fsid: a.fsid,
        fileid: a.fileid,
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
    }
}

/// NFSv3's wcc data for attributes before and after an operation.
pub fn wcc_data(w: &BeforeAfter) -> WccData {
    WccData {
        before: w.before.map(|b| WccAttr {
            size: b.size,
            mtime: time(b.mtime),
            ctime: time(b.ctime),
        }),
        after: w.after.as_ref().map(fattr),
    }
}

/// An NFSv3 time to set; times it cannot carry are `Inval`.
pub fn set_time3(t: SetTime) -> Result<SetTime3> {
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

/// What to ask an upstream to set; times it cannot carry are `Inval`.
pub fn sattr(a: &SetAttr) -> Result<Sattr3> {
    Ok(Sattr3 {
        mode: a.mode.map(|m| m & 0o7777),
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        atime: set_time3(a.atime)?,
        mtime: set_time3(a.mtime)?,
    })
}

pub fn stable_how(s: Stability) -> StableHow {
    match s {
        Stability::Unstable => StableHow::Unstable,
        Stability::DataSync => StableHow::DataSync,
        Stability::FileSync => StableHow::FileSync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_errors_map_back_and_forth() {
        use NfsStat3 as S;
        for s in [
            S::Perm,
            S::NoEnt,
            S::Acces,
            S::Exist,
            S::XDev,
            S::NotDir,
            S::IsDir,
            S::Inval,
            S::FBig,
            S::NoSpc,
            S::RoFs,
            S::MLink,
            S::NameTooLong,
            S::NotEmpty,
            S::DQuot,
            S::Stale,
            S::NotSync,
            S::BadCookie,
            S::NotSupp,
            S::TooSmall,
            S::BadType,
            S::Jukebox,
        ] {
            assert_eq!(status(error(s)), s, "{s:?}");
        }
    }

    #[test]
    fn attributes_and_times_survive_the_round_trip() {
        let t = Timespec {
            sec: 1_700_000_000,
            nsec: 123,
        };
        assert_eq!(timespec(time(t)), t);
        let w = WccData {
            before: Some(WccAttr {
                size: 9,
                mtime: time(t),
                ctime: time(t),
            }),
            after: None,
        };
        assert_eq!(wcc_data(&before_after(&w)).before.map(|b| b.size), Some(9));
        let s = SetAttr {
            mode: Some(0o640),
            size: Some(3),
            ..Default::default()
        };
        assert_eq!(set_attr(&sattr(&s).unwrap()), s);
        assert_eq!(stability(stable_how(Stability::DataSync)), Stability::DataSync);
    }
}
