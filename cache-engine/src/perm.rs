//! POSIX permission checks against cached attributes, so that cache hits need
//! no call to the core filer (which checks again, with the caller's rights,
//! when it is called).

use crate::types::{access, Attr, Credentials, FileType, SetAttr, SetTime};
use crate::{Error, Result};

pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

/// Whether `cred` has all of the rwx bits in `want` on `attr`.
pub fn may(cred: &Credentials, attr: &Attr, want: u32) -> bool {
    if cred.uid == 0 {
        // Root passes everything but execute of a file nobody may execute.
        return want & X == 0 || attr.ftype == FileType::Directory || attr.mode & 0o111 != 0;
    }
    let bits = if cred.uid == attr.uid {
        attr.mode >> 6
    } else if cred.in_group(attr.gid) {
        attr.mode >> 3
    } else {
        attr.mode
    } & 7;
    bits & want == want
}

pub fn require(cred: &Credentials, attr: &Attr, want: u32) -> Result<()> {
    if may(cred, attr, want) {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

/// Read access for file data: NFS clients read executables they may only
/// execute, and the owner reads whatever the mode (knfsd's owner override).
pub fn require_read(cred: &Credentials, attr: &Attr) -> Result<()> {
    if cred.uid == attr.uid || may(cred, attr, R) || (attr.ftype == FileType::Regular && may(cred, attr, X)) {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

/// Write access for file data: the owner writes whatever the mode, as knfsd
/// lets them, so that a file created read-only (git's objects) is written
/// after its create.
pub fn require_write(cred: &Credentials, attr: &Attr) -> Result<()> {
    if cred.uid == attr.uid || may(cred, attr, W) {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

/// Which of the requested ACCESS bits are granted.
pub fn granted(cred: &Credentials, attr: &Attr, mask: u32) -> u32 {
    let dir = attr.ftype == FileType::Directory;
    let mut out = 0;
    if mask & access::READ != 0 && may(cred, attr, R) {
        out |= access::READ;
    }
    if mask & access::LOOKUP != 0 && dir && may(cred, attr, X) {
        out |= access::LOOKUP;
    }
    if mask & (access::MODIFY | access::EXTEND) != 0 && may(cred, attr, W) {
        out |= mask & (access::MODIFY | access::EXTEND);
    }
    if mask & access::DELETE != 0 && dir && may(cred, attr, W | X) {
        out |= access::DELETE;
    }
    if mask & access::EXECUTE != 0 && !dir && may(cred, attr, X) {
        out |= access::EXECUTE;
    }
    out
}

/// Removing or renaming `victim` out of `dir`: write and search on the
/// directory, and with the sticky bit, ownership of the file or the directory.
pub fn may_delete(cred: &Credentials, dir: &Attr, victim: Option<&Attr>) -> Result<()> {
    require(cred, dir, W | X)?;
    if let Some(v) = victim {
        if dir.mode & 0o1000 != 0 && cred.uid != 0 && cred.uid != v.uid && cred.uid != dir.uid {
            return Err(Error::Access);
        }
    }
    Ok(())
}

/// The POSIX rules for changing attributes; returns the attributes to apply,
/// with the setuid/setgid bits cleared where a non-root chown requires it.
pub fn check_setattr(cred: &Credentials, attr: &Attr, set: &SetAttr) -> Result<SetAttr> {
    let mut out = *set;
    let root = cred.uid == 0;
    let owner = root || cred.uid == attr.uid;
    if let Some(uid) = set.uid {
        if uid != attr.uid && !root {
            return Err(Error::Perm);
        }
    }
    if let Some(gid) = set.gid {
        if gid != attr.gid && !(root || (cred.uid == attr.uid && cred.in_group(gid))) {
            return Err(Error::Perm);
        }
    }
    if let Some(mode) = set.mode {
        if !owner {
            return Err(Error::Perm);
        }
        let mut mode = mode & 0o7777;
        // A non-member may not set setgid on a file.
        let group = set.gid.unwrap_or(attr.gid);
        if !root && mode & 0o2000 != 0 && attr.ftype != FileType::Directory && !cred.in_group(group) {
            mode &= !0o2000;
        }
        out.mode = Some(mode);
    } else if !root && (set.uid.is_some_and(|u| u != attr.uid) || set.gid.is_some_and(|g| g != attr.gid)) {
        // chown by a non-root owner clears setuid and setgid.
        if attr.ftype == FileType::Regular && attr.mode & 0o6000 != 0 {
            out.mode = Some(attr.mode & !0o6000);
        }
    }
    if set.size.is_some() {
        if attr.ftype == FileType::Directory {
            return Err(Error::IsDir);
        }
        if attr.ftype != FileType::Regular {
            return Err(Error::Inval);
        }
        require_write(cred, attr)?;
    }
    for t in [set.atime, set.mtime] {
        match t {
            SetTime::DontChange => {}
            SetTime::ServerNow => {
                if !owner && !may(cred, attr, W) {
                    return Err(Error::Access);
                }
            }
            SetTime::Client(_) => {
                if !owner {
                    return Err(Error::Perm);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timespec;

    fn attr(mode: u32, uid: u32, gid: u32, ftype: FileType) -> Attr {
        Attr {
            ftype,
            mode,
            nlink: 1,
            uid,
            gid,
            size: 0,
            used: 0,
            rdev: (0, 0),
            fsid: 0,
            fileid: 1,
            atime: Timespec::default(),
            mtime: Timespec::default(),
            ctime: Timespec::default(),
            btime: None,
            change: 0,
        }
    }

    fn user(uid: u32, gid: u32, gids: &[u32]) -> Credentials {
        Credentials {
            uid,
            gid,
            gids: gids.to_vec(),
            origin: 0,
        }
    }

    #[test]
    fn owner_group_other() {
        let a = attr(0o640, 10, 20, FileType::Regular);
        assert!(may(&user(10, 1, &[]), &a, R | W));
        assert!(may(&user(11, 1, &[20]), &a, R));
        assert!(!may(&user(11, 1, &[20]), &a, W));
        assert!(!may(&user(12, 1, &[]), &a, R));
        assert!(may(&Credentials::root(), &a, R | W));
        assert!(!may(&Credentials::root(), &a, X));
    }

    #[test]
    fn the_owner_reads_and_writes_whatever_the_mode() {
        let a = attr(0o444, 10, 20, FileType::Regular);
        assert!(require_write(&user(10, 1, &[]), &a).is_ok());
        assert_eq!(require_write(&user(11, 20, &[]), &a), Err(Error::Access));
        let none = attr(0o000, 10, 20, FileType::Regular);
        assert!(require_read(&user(10, 1, &[]), &none).is_ok());
        assert_eq!(require_read(&user(11, 20, &[]), &none), Err(Error::Access));
    }

    #[test]
    fn access_bits() {
        let d = attr(0o755, 10, 20, FileType::Directory);
        let all = 0x3f;
        assert_eq!(
            granted(&user(10, 1, &[]), &d, all),
            access::READ | access::LOOKUP | 0x0c | access::DELETE
        );
        assert_eq!(granted(&user(11, 1, &[]), &d, all), access::READ | access::LOOKUP);
    }

    #[test]
    fn sticky_directory() {
        let d = attr(0o1777, 0, 0, FileType::Directory);
        let f = attr(0o644, 10, 10, FileType::Regular);
        assert!(may_delete(&user(10, 10, &[]), &d, Some(&f)).is_ok());
        assert_eq!(may_delete(&user(11, 11, &[]), &d, Some(&f)), Err(Error::Access));
    }

    #[test]
    fn setattr_rules() {
        let f = attr(0o6755, 10, 20, FileType::Regular);
        let owner = user(10, 20, &[20, 30]);
        assert_eq!(
            check_setattr(
                &owner,
                &f,
                &SetAttr {
                    uid: Some(11),
                    ..Default::default()
                }
            ),
            Err(Error::Perm)
        );
        let chgrp = check_setattr(
            &owner,
            &f,
            &SetAttr {
                gid: Some(30),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(chgrp.mode, Some(0o755));
        assert_eq!(
            check_setattr(
                &user(11, 1, &[]),
                &f,
                &SetAttr {
                    mode: Some(0o777),
                    ..Default::default()
                }
            ),
            Err(Error::Perm)
        );
        assert!(check_setattr(
            &Credentials::root(),
            &f,
            &SetAttr {
                uid: Some(0),
                ..Default::default()
            }
        )
        .is_ok());
    }
}
