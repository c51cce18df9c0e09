//! The engine's file handles: opaque to clients, at most 64 bytes, valid across
//! restarts, and unforgeable.
//!
//! Layout: form (1) | filer index (1) | file id (8, LE) | core filer handle
//! (up to 46) | MAC (8). The MAC is a keyed BLAKE3 of everything before it,
//! with a key kept in the state directory, so a client cannot make up a
//! handle for an object it was never given.
//!
//! The form byte is the version (1) in the engine's own handles, or the tag
//! bit plus a 7-bit tag a front end chose (the NFS front end's export), so
//! the MAC covers the tag too and a client cannot move a handle from one
//! tag to another.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::types::{FilerHandle, MAX_FILER_HANDLE};
use crate::{Error, Result};

pub const MAX_HANDLE: usize = 64;
const VERSION: u8 = 1;
/// Set in the form byte of a tagged handle; the low 7 bits are the tag.
const TAGGED: u8 = 0x80;
/// Tags run from 0 to this.
pub const MAX_TAG: u8 = 0x7f;
const HEADER: usize = 10;
const MAC: usize = 8;

/// A handle the engine gives to front ends.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileHandle {
    len: u8,
    bytes: [u8; MAX_HANDLE],
}

impl FileHandle {
    /// Wrap wire bytes; nothing is trusted until [`HandleKey::open`] checks them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER + MAC || bytes.len() > MAX_HANDLE {
            return Err(Error::BadHandle);
        }
        let mut h = FileHandle {
            len: bytes.len() as u8,
            bytes: [0; MAX_HANDLE],
        };
        h.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(h)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The filer index, unverified: only for routing to a shard, which verifies.
    pub fn filer_hint(&self) -> u8 {
        self.bytes[1]
    }

    /// The tag, unverified: `Some(None)` for an untagged handle, `None` for
    /// a form the engine never makes. Only for choosing what to check a call
    /// against; the shard that serves the call verifies it, tag included.
    pub fn tag_hint(&self) -> Option<Option<u8>> {
        match self.bytes[0] {
            VERSION => Some(None),
            t if t & TAGGED != 0 => Some(Some(t & MAX_TAG)),
            _ => None,
        }
    }

    /// Whether `self` and `other` name the same object, whatever their tags,
    /// unverified: the call that follows verifies whichever goes to a shard.
    pub fn same_object(&self, other: &FileHandle) -> bool {
        fn body(h: &FileHandle) -> &[u8] {
            &h.bytes[1..(h.len as usize).saturating_sub(MAC)]
        }
        body(self) == body(other)
    }

    /// The file id, unverified: only for routing to a shard, which verifies.
    pub fn fileid_hint(&self) -> u64 {
        u64::from_le_bytes(self.bytes[2..10].try_into().unwrap_or_default())
    }
}

impl fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileHandle(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// What a verified handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub filer: u8,
    pub fileid: u64,
    pub filer_handle: FilerHandle,
}

/// The secret that signs handles.
#[derive(Clone)]
pub struct HandleKey([u8; 32]);

impl HandleKey {
    /// The name of this cache that its journals carry: derived from the
    /// key, so it lives as long as the cache's handles do.
    pub fn cache_id(&self) -> crate::journal::CacheId {
        let h = blake3::keyed_hash(&self.0, b"weir journal cache id");
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.as_bytes()[..16]);
        crate::journal::CacheId(id)
    }

    /// Load the key from `dir/handle.key`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> io::Result<Self> {
        let path = dir.join("handle.key");
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                let mut key = [0u8; 32];
                f.read_exact(&mut key).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("{}: handle key is damaged ({e})", path.display()),
                    )
                })?;
                Ok(HandleKey(key))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                let tmp = dir.join("handle.key.tmp");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", tmp.display())))?;
                f.write_all(&key)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                Ok(HandleKey(key))
            }
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    #[cfg(test)]
    pub fn for_tests() -> Self {
        HandleKey([7; 32])
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC] {
        let hash = blake3::keyed_hash(&self.0, body);
        let mut out = [0u8; MAC];
        out.copy_from_slice(&hash.as_bytes()[..MAC]);
        out
    }

    pub fn make(&self, filer: u8, fileid: u64, fh: &FilerHandle) -> FileHandle {
        self.make_tagged(None, filer, fileid, fh)
    }

    /// A handle carrying `tag` (0 to [`MAX_TAG`]) under its MAC; None: untagged.
    pub fn make_tagged(&self, tag: Option<u8>, filer: u8, fileid: u64, fh: &FilerHandle) -> FileHandle {
        let inner = fh.as_bytes();
        assert!(inner.len() <= MAX_FILER_HANDLE, "a filer handle past its bound");
        let body_len = HEADER + inner.len();
        let mut h = FileHandle {
            len: (body_len + MAC) as u8,
            bytes: [0; MAX_HANDLE],
        };
        h.bytes[0] = match tag {
            Some(t) => TAGGED | (t & MAX_TAG),
            None => VERSION,
        };
        h.bytes[1] = filer;
        h.bytes[2..10].copy_from_slice(&fileid.to_le_bytes());
        h.bytes[HEADER..body_len].copy_from_slice(inner);
        let mac = self.mac(&h.bytes[..body_len]);
        h.bytes[body_len..body_len + MAC].copy_from_slice(&mac);
        h
    }

    /// Verify a handle, tagged or not. A handle this key did not sign is `BadHandle`.
    pub fn open(&self, h: &FileHandle) -> Result<Resolved> {
        self.open_tagged(h).map(|(_, r)| r)
    }

    /// Verify a handle and return its tag too (None: untagged).
    pub fn open_tagged(&self, h: &FileHandle) -> Result<(Option<u8>, Resolved)> {
        let b = h.as_bytes();
        if b.len() < HEADER + MAC {
            return Err(Error::BadHandle);
        }
        let tag = h.tag_hint().ok_or(Error::BadHandle)?;
        let body_len = b.len() - MAC;
        // Constant-time enough: the MAC is compared as a whole 64-bit word.
        let mac = u64::from_le_bytes(self.mac(&b[..body_len]));
        let given = u64::from_le_bytes(b[body_len..].try_into().map_err(|_| Error::BadHandle)?);
        if mac != given {
            return Err(Error::BadHandle);
        }
        let r = Resolved {
            filer: b[1],
            fileid: u64::from_le_bytes(b[2..10].try_into().map_err(|_| Error::BadHandle)?),
            filer_handle: FilerHandle::new(&b[HEADER..body_len])?,
        };
        Ok((tag, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forgery() {
        let key = HandleKey::for_tests();
        let fh = FilerHandle::new(&[1; MAX_FILER_HANDLE]).unwrap();
        let h = key.make(3, 42, &fh);
        assert!(h.as_bytes().len() <= MAX_HANDLE);
        let r = key.open(&h).unwrap();
        assert_eq!((r.filer, r.fileid, r.filer_handle), (3, 42, fh));
        assert_eq!(h.fileid_hint(), 42);
        for i in 0..h.as_bytes().len() {
            let mut bad = h.as_bytes().to_vec();
            bad[i] ^= 1;
            assert_eq!(
                key.open(&FileHandle::from_bytes(&bad).unwrap()),
                Err(Error::BadHandle)
            );
        }
        assert_eq!(FileHandle::from_bytes(&[1; 3]), Err(Error::BadHandle));
        assert_eq!(FileHandle::from_bytes(&[1; 65]), Err(Error::BadHandle));
    }

    #[test]
    fn tags_are_under_the_mac() {
        let key = HandleKey::for_tests();
        let fh = FilerHandle::new(&[5; MAX_FILER_HANDLE]).unwrap();
        let plain = key.make(1, 9, &fh);
        assert_eq!(key.open_tagged(&plain).unwrap().0, None);
        let t3 = key.make_tagged(Some(3), 1, 9, &fh);
        assert!(t3.as_bytes().len() <= MAX_HANDLE);
        let (tag, r) = key.open_tagged(&t3).unwrap();
        assert_eq!((tag, r), (Some(3), key.open(&plain).unwrap()));
        assert_eq!(
            key.open_tagged(&key.make_tagged(Some(MAX_TAG), 1, 9, &fh))
                .unwrap()
                .0,
            Some(MAX_TAG)
        );
        // Moving a handle to another tag, or dropping its tag, breaks the MAC.
        for form in [TAGGED | 4, VERSION, TAGGED] {
            let mut moved = t3.as_bytes().to_vec();
            moved[0] = form;
            assert_eq!(
                key.open_tagged(&FileHandle::from_bytes(&moved).unwrap()),
                Err(Error::BadHandle)
            );
        }
        // An unknown untagged form is refused whatever its MAC.
        let mut v2 = plain.as_bytes().to_vec();
        v2[0] = 2;
        assert_eq!(
            key.open(&FileHandle::from_bytes(&v2).unwrap()),
            Err(Error::BadHandle)
        );
    }

    #[test]
    fn key_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = HandleKey::load_or_create(dir.path()).unwrap();
        let b = HandleKey::load_or_create(dir.path()).unwrap();
        let fh = FilerHandle::new(b"abc").unwrap();
        assert_eq!(b.open(&a.make(0, 1, &fh)).unwrap().fileid, 1);
    }
}
