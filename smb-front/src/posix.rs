//! How POSIX objects look to SMB clients (docs/smb-posix-mapping.md):
//! DOS attributes from mode bits and names, FILETIMEs, access masks from
//! permission checks, security descriptors from owner, group and mode,
//! and the names Windows forbids.

use cache_engine::types::{access as eacc, Attr, FileType, Timespec};
use smb_proto::fscc::{attributes as fa, filetime_from_unix, Times};
use smb_proto::security::{access as sa, Ace, Acl, SecurityDescriptor, Sid};
use smb_proto::NtStatus;

/// What a read-only share grants at most.
pub const READ_ACCESS: u32 = sa::FILE_READ_DATA
    | sa::FILE_READ_EA
    | sa::FILE_EXECUTE
    | sa::FILE_READ_ATTRIBUTES
    | sa::READ_CONTROL
    | sa::SYNCHRONIZE;
const WRITE_ACCESS: u32 = sa::FILE_WRITE_DATA
    | sa::FILE_APPEND_DATA
    | sa::FILE_WRITE_EA
    | sa::FILE_WRITE_ATTRIBUTES
    | sa::FILE_DELETE_CHILD
    | sa::DELETE;
const GENERIC_READ: u32 =
    sa::FILE_READ_DATA | sa::FILE_READ_EA | sa::FILE_READ_ATTRIBUTES | sa::READ_CONTROL | sa::SYNCHRONIZE;
const GENERIC_WRITE: u32 = sa::FILE_WRITE_DATA
    | sa::FILE_APPEND_DATA
    | sa::FILE_WRITE_EA
    | sa::FILE_WRITE_ATTRIBUTES
    | sa::READ_CONTROL
    | sa::SYNCHRONIZE;
const GENERIC_EXECUTE: u32 = sa::FILE_EXECUTE | sa::FILE_READ_ATTRIBUTES | sa::READ_CONTROL | sa::SYNCHRONIZE;

/// Bits that read file data, write it, or delete the file (share modes).
pub const DATA_READ: u32 = sa::FILE_READ_DATA | sa::FILE_EXECUTE;
pub const DATA_WRITE: u32 = sa::FILE_WRITE_DATA | sa::FILE_APPEND_DATA;

/// Expand GENERIC_* bits into the specific rights they stand for.
pub fn expand_generic(mask: u32) -> u32 {
    let mut m = mask & !(sa::GENERIC_READ | sa::GENERIC_WRITE | sa::GENERIC_EXECUTE | sa::GENERIC_ALL);
    if mask & sa::GENERIC_READ != 0 {
        m |= GENERIC_READ;
    }
    if mask & sa::GENERIC_WRITE != 0 {
        m |= GENERIC_WRITE;
    }
    if mask & sa::GENERIC_EXECUTE != 0 {
        m |= GENERIC_EXECUTE;
    }
    if mask & sa::GENERIC_ALL != 0 {
        m |= sa::FILE_ALL_ACCESS;
    }
    m
}

/// The SMB rights an engine access check granted. Reading attributes and
/// the security descriptor is always allowed; the owner may change them;
/// DELETE is left to the remove itself (it needs the parent's permission).
pub fn access_from_engine(granted: u32, is_owner: bool) -> u32 {
    let mut m = sa::FILE_READ_ATTRIBUTES | sa::READ_CONTROL | sa::SYNCHRONIZE | sa::DELETE | sa::FILE_READ_EA;
    if granted & (eacc::READ | eacc::LOOKUP) != 0 {
        // Reading is enough to run a program off a share (the client
        // executes, not the server), as Samba's `acl allow execute always`.
        m |= sa::FILE_READ_DATA | sa::FILE_EXECUTE;
    }
    if granted & eacc::MODIFY != 0 {
        m |= sa::FILE_WRITE_DATA | sa::FILE_WRITE_EA | sa::FILE_WRITE_ATTRIBUTES | sa::FILE_DELETE_CHILD;
    }
    if granted & eacc::EXTEND != 0 {
        m |= sa::FILE_APPEND_DATA;
    }
    if granted & eacc::EXECUTE != 0 {
        m |= sa::FILE_EXECUTE;
    }
    if is_owner {
        m |= sa::FILE_WRITE_ATTRIBUTES | sa::WRITE_DAC | sa::WRITE_OWNER;
    }
    m
}

/// Limit `mask` to what a read-only share allows.
pub fn read_only(mask: u32) -> u32 {
    mask & !(WRITE_ACCESS | sa::WRITE_DAC | sa::WRITE_OWNER)
}

pub fn wants_write(mask: u32) -> bool {
    mask & (WRITE_ACCESS | sa::WRITE_DAC | sa::WRITE_OWNER) != 0
}

fn ft(t: Timespec) -> u64 {
    filetime_from_unix(t.sec, t.nsec)
}

/// Creation time from btime, else the earliest of mtime and ctime.
pub fn times(a: &Attr) -> Times {
    let birth = a.btime.unwrap_or_else(|| a.mtime.min(a.ctime));
    Times {
        creation: ft(birth),
        last_access: ft(a.atime),
        last_write: ft(a.mtime),
        change: ft(a.ctime),
    }
}

/// DOS attributes: DIRECTORY; READONLY for a file without the owner write
/// bit; HIDDEN for names starting with '.'; ARCHIVE for other files.
pub fn attributes(a: &Attr, name: &str) -> u32 {
    let mut at = if a.ftype == FileType::Directory {
        fa::DIRECTORY
    } else {
        let mut v = fa::ARCHIVE;
        if a.mode & 0o200 == 0 {
            v |= fa::READONLY;
        }
        v
    };
    if name.starts_with('.') && name != "." && name != ".." {
        at |= fa::HIDDEN;
    }
    at
}

/// Allocation size: the bytes used, in 4 KiB units.
pub fn allocation(a: &Attr) -> u64 {
    a.used.div_ceil(4096).saturating_mul(4096)
}

/// The size a directory reports.
pub fn end_of_file(a: &Attr) -> u64 {
    if a.ftype == FileType::Directory {
        0
    } else {
        a.size
    }
}

/// Check one path component against the names Windows forbids.
pub fn check_component(c: &str) -> Result<(), NtStatus> {
    if c.is_empty() || c == "." || c == ".." {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    if c.len() > cache_engine::types::NAME_MAX {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    if c.contains(':') {
        // Named streams are not supported.
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    if c.chars()
        .any(|ch| (ch as u32) < 0x20 || matches!(ch, '<' | '>' | '"' | '/' | '\\' | '|' | '?' | '*'))
    {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    Ok(())
}

/// Split a share-relative path (backslashes) into checked components; a
/// trailing "::$DATA" (the default stream) is the file itself.
pub fn split_path(path: &str) -> Result<Vec<String>, NtStatus> {
    let path = path.strip_suffix("::$DATA").unwrap_or(path);
    let mut out = Vec::new();
    for c in path.split('\\').filter(|c| !c.is_empty()) {
        if c == ".." {
            return Err(NtStatus::OBJECT_PATH_SYNTAX_BAD);
        }
        check_component(c)?;
        out.push(c.to_string());
    }
    Ok(out)
}

/// An 8.3 name for clients that ask: the name itself when it is one,
/// else up to six characters of it, `~`, a digit from its hash, and up to
/// three characters of its extension, upper-cased.
pub fn short_name(name: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-$~!#%&'(){}^@`".contains(c);
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    };
    if name == "." || name == ".." {
        return name.to_string();
    }
    if !stem.is_empty() && stem.len() <= 8 && ext.len() <= 3 && stem.chars().chain(ext.chars()).all(ok) {
        return name.to_ascii_uppercase();
    }
    let hash = name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let pick = |s: &str, n: usize| -> String {
        s.chars()
            .filter(|&c| ok(c))
            .take(n)
            .collect::<String>()
            .to_ascii_uppercase()
    };
    let mut out = format!("{}~{}", pick(stem, 6), hash % 10);
    let ext = pick(ext, 3);
    if !ext.is_empty() {
        out.push('.');
        out.push_str(&ext);
    }
    out
}

/// Unix users and groups without a Windows mapping, as Samba shows them.
pub fn uid_sid(uid: u32) -> Sid {
    Sid::new(22, &[1, uid])
}

pub fn gid_sid(gid: u32) -> Sid {
    Sid::new(22, &[2, gid])
}

fn rwx_mask(bits: u32, owner: bool) -> u32 {
    let mut m = sa::FILE_READ_ATTRIBUTES | sa::READ_CONTROL | sa::SYNCHRONIZE | sa::FILE_READ_EA;
    if bits & 4 != 0 {
        m |= GENERIC_READ;
    }
    if bits & 2 != 0 {
        m |= GENERIC_WRITE | sa::DELETE | sa::FILE_DELETE_CHILD;
    }
    if bits & 1 != 0 {
        m |= GENERIC_EXECUTE;
    }
    if owner {
        m |= sa::WRITE_DAC | sa::WRITE_OWNER | sa::FILE_WRITE_ATTRIBUTES;
    }
    m
}

/// Owner, group and a DACL (owner, group, Everyone) from the mode bits.
pub fn security_descriptor(a: &Attr) -> SecurityDescriptor {
    let ace = |mask, sid| Ace::Allowed { flags: 0, mask, sid };
    SecurityDescriptor {
        control: 0,
        owner: Some(uid_sid(a.uid)),
        group: Some(gid_sid(a.gid)),
        dacl: Some(Acl::new(vec![
            ace(rwx_mask(a.mode >> 6 & 7, true), uid_sid(a.uid)),
            ace(rwx_mask(a.mode >> 3 & 7, false), gid_sid(a.gid)),
            ace(rwx_mask(a.mode & 7, false), Sid::everyone()),
        ])),
    }
}

fn bits_from_mask(mask: u32) -> u32 {
    let mask = expand_generic(mask);
    let mut b = 0;
    if mask & sa::FILE_READ_DATA != 0 {
        b |= 4;
    }
    if mask & (sa::FILE_WRITE_DATA | sa::FILE_APPEND_DATA) != 0 {
        b |= 2;
    }
    if mask & sa::FILE_EXECUTE != 0 {
        b |= 1;
    }
    b
}

/// What a security descriptor asks of the POSIX side: a new owner, group
/// and mode where it maps cleanly (S-1-22 SIDs; allow ACEs for the owner,
/// the group and Everyone), else `INVALID_PARAMETER`-free partial changes.
pub fn from_security_descriptor(
    sd: &SecurityDescriptor,
    cur: &Attr,
) -> (Option<u32>, Option<u32>, Option<u32>) {
    let unix_id = |s: &Sid, kind: u32| match (s.authority, s.sub_authorities.as_slice()) {
        (22, [k, id]) if *k == kind => Some(*id),
        _ => None,
    };
    let uid = sd.owner.as_ref().and_then(|s| unix_id(s, 1));
    let gid = sd.group.as_ref().and_then(|s| unix_id(s, 2));
    let mode = sd.dacl.as_ref().map(|acl| {
        let (owner, group) = (uid_sid(uid.unwrap_or(cur.uid)), gid_sid(gid.unwrap_or(cur.gid)));
        let mut mode = cur.mode & 0o7000;
        for ace in &acl.aces {
            if let Ace::Allowed { mask, sid, flags } = ace {
                if flags & smb_proto::security::ace_flags::INHERIT_ONLY != 0 {
                    continue;
                }
                let b = bits_from_mask(*mask);
                if *sid == owner {
                    mode |= b << 6;
                } else if *sid == group {
                    mode |= b << 3;
                } else if *sid == Sid::everyone() {
                    mode |= b;
                }
            }
        }
        mode
    });
    (uid, gid, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(mode: u32) -> Attr {
        Attr {
            ftype: FileType::Regular,
            mode,
            nlink: 1,
            uid: 1000,
            gid: 100,
            size: 5,
            used: 5,
            rdev: (0, 0),
            fsid: 1,
            fileid: 7,
            atime: Timespec { sec: 30, nsec: 0 },
            mtime: Timespec { sec: 20, nsec: 0 },
            ctime: Timespec { sec: 10, nsec: 0 },
            btime: None,
            change: 1,
        }
    }

    #[test]
    fn attributes_and_times() {
        assert_eq!(attributes(&attr(0o644), "a"), fa::ARCHIVE);
        assert_eq!(
            attributes(&attr(0o444), ".a"),
            fa::ARCHIVE | fa::READONLY | fa::HIDDEN
        );
        let t = times(&attr(0o644));
        assert_eq!(t.creation, filetime_from_unix(10, 0));
        assert_eq!(t.last_write, filetime_from_unix(20, 0));
        assert_eq!(allocation(&attr(0o644)), 4096);
    }

    #[test]
    fn short_names() {
        assert_eq!(short_name("a.txt"), "A.TXT");
        let s = short_name("a long name.html");
        assert!(s.starts_with("ALONGN~") && s.ends_with(".HTM"), "{s}");
    }

    #[test]
    fn names() {
        assert!(split_path("a\\b\\c.txt").is_ok());
        assert_eq!(split_path("a\\..\\b"), Err(NtStatus::OBJECT_PATH_SYNTAX_BAD));
        assert_eq!(split_path("a:s"), Err(NtStatus::OBJECT_NAME_INVALID));
        assert_eq!(split_path("a::$DATA").unwrap(), vec!["a".to_string()]);
        assert_eq!(split_path("a*"), Err(NtStatus::OBJECT_NAME_INVALID));
        assert!(split_path("").unwrap().is_empty());
    }

    #[test]
    fn security_descriptor_round_trip() {
        let a = attr(0o750);
        let sd = security_descriptor(&a);
        let (uid, gid, mode) = from_security_descriptor(&sd, &a);
        assert_eq!((uid, gid, mode), (Some(1000), Some(100), Some(0o750)));
    }
}
