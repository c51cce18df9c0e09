//! Upstream NFS file handles (up to 64 bytes) carried in the 46 bytes of a
//! [`FilerHandle`], the same way across restarts.
//!
//! A short upstream handle travels as it is, behind a tag byte. A longer one
//! becomes a tag and the first 16 bytes of its BLAKE3 digest; the digest →
//! handle pairs live in an append-only file in the engine's state directory,
//! fsynced before a digest is handed out and loaded at start. A torn or
//! corrupt tail (a crash in the middle of an append) is cut off. A digest the
//! map does not know is a stale handle.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use crate::types::{FilerHandle, MAX_FILER_HANDLE};
use crate::{Error, Result};

/// Tag of a handle carried as it is.
const TAG_INLINE: u8 = b'N';
/// Tag of a handle named by its digest.
const TAG_DIGEST: u8 = b'D';
/// Longest upstream handle carried inline.
pub(super) const INLINE_MAX: usize = MAX_FILER_HANDLE - 1;
pub(super) const DIGEST_LEN: usize = 16;
/// Longest upstream handle (NFSv3 `FHSIZE3`).
const UPSTREAM_MAX: usize = 64;
/// First bytes of a map file.
const MAGIC: &[u8; 8] = b"WEIRFH1\n";

pub(super) type Digest = [u8; DIGEST_LEN];

/// What one of our handles says about the upstream handle.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ours<'a> {
    Inline(&'a [u8]),
    Digest(Digest),
}

pub(super) fn digest(upstream: &[u8]) -> Digest {
    let mut d = [0u8; DIGEST_LEN];
    d.copy_from_slice(&blake3::hash(upstream).as_bytes()[..DIGEST_LEN]);
    d
}

/// Split one of our handles into its kind and payload.
pub(super) fn parse(fh: &FilerHandle) -> Result<Ours<'_>> {
    match fh.as_bytes().split_first() {
        Some((&TAG_INLINE, rest)) if !rest.is_empty() => Ok(Ours::Inline(rest)),
        Some((&TAG_DIGEST, rest)) if rest.len() == DIGEST_LEN => {
            let mut d = [0u8; DIGEST_LEN];
            d.copy_from_slice(rest);
            Ok(Ours::Digest(d))
        }
        _ => Err(Error::BadHandle),
    }
}

pub(super) fn inline_handle(upstream: &[u8]) -> Result<FilerHandle> {
    let mut b = [0u8; MAX_FILER_HANDLE];
    let n = upstream.len();
    if n == 0 || n > INLINE_MAX {
        return Err(Error::Io);
    }
    b[0] = TAG_INLINE;
    b[1..=n].copy_from_slice(upstream);
    FilerHandle::new(&b[..=n])
}

pub(super) fn digest_handle(d: &Digest) -> FilerHandle {
    let mut b = [0u8; 1 + DIGEST_LEN];
    b[0] = TAG_DIGEST;
    b[1..].copy_from_slice(d);
    // 17 bytes always fit.
    FilerHandle::new(&b).unwrap_or_else(|_| unreachable!())
}

/// The persistent digest → upstream handle map of one core filer.
pub(super) struct HandleMap {
    path: PathBuf,
    /// Whether short handles are carried inline (always, except in tests
    /// that push every handle through the map).
    inline: bool,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    map: HashMap<Digest, Bytes>,
}

impl HandleMap {
    /// Open (or create) the map at `path` and load what it holds.
    pub(super) fn open(path: &Path, inline: bool) -> io::Result<HandleMap> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let (map, good) = load(&raw).map_err(|why| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a handle map ({why})", path.display()),
            )
        })?;
        if good < raw.len() || raw.is_empty() {
            if good < raw.len() {
                tracing::warn!(
                    path = %path.display(),
                    "cutting {} bytes of torn or corrupt tail off the NFS handle map",
                    raw.len() - good
                );
            }
            file.set_len(good as u64)?;
            file.seek(SeekFrom::End(0))?;
            if good == 0 {
                file.write_all(MAGIC)?;
            }
            file.sync_all()?;
            // A new map's directory entry must be durable too.
            File::open(dir.unwrap_or(Path::new(".")))?.sync_all()?;
        }
        Ok(HandleMap {
            path: path.to_path_buf(),
            inline,
            inner: Mutex::new(Inner { file, map }),
        })
    }

    pub(super) fn inline(&self) -> bool {
        self.inline
    }

    /// The upstream handle behind a digest.
    pub(super) fn get(&self, d: &Digest) -> Option<Bytes> {
        self.lock().map.get(d).cloned()
    }

    /// Our handles for upstream handles: short ones inline, long ones by
    /// digest, new digests written to the map and synced before returning.
    pub(super) fn intern(&self, upstream: &[&[u8]]) -> Result<Vec<FilerHandle>> {
        let mut out = Vec::with_capacity(upstream.len());
        let mut fresh: Vec<(Digest, &[u8])> = Vec::new();
        for &up in upstream {
            if up.is_empty() || up.len() > UPSTREAM_MAX {
                return Err(Error::Io);
            }
            if self.inline && up.len() <= INLINE_MAX {
                out.push(inline_handle(up)?);
                continue;
            }
            let d = digest(up);
            out.push(digest_handle(&d));
            fresh.push((d, up));
        }
        if fresh.is_empty() {
            return Ok(out);
        }
        let mut inner = self.lock();
        let mut rec = Vec::new();
        let mut added = Vec::new();
        for (d, up) in fresh {
            if inner.map.contains_key(&d) || added.iter().any(|(a, _)| *a == d) {
                continue;
            }
            encode_record(&mut rec, up);
            added.push((d, Bytes::copy_from_slice(up)));
        }
        if !rec.is_empty() {
            let written = inner.file.write_all(&rec).and_then(|()| inner.file.sync_data());
            if let Err(e) = written {
                tracing::error!(path = %self.path.display(), "writing the NFS handle map: {e}");
                return Err(Error::Io);
            }
            inner.map.extend(added);
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }
}

/// One record: length byte, the handle, CRC32C of both (little endian).
fn encode_record(out: &mut Vec<u8>, up: &[u8]) {
    let start = out.len();
    out.push(up.len() as u8);
    out.extend_from_slice(up);
    let crc = crate::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The map in `raw` and the length of its good prefix.
fn load(raw: &[u8]) -> std::result::Result<(HashMap<Digest, Bytes>, usize), &'static str> {
    let mut map = HashMap::new();
    if raw.is_empty() {
        return Ok((map, 0));
    }
    if raw.len() < MAGIC.len() {
        // A crash while the header was written: start over.
        return if MAGIC.starts_with(raw) {
            Ok((map, 0))
        } else {
            Err("bad header")
        };
    }
    if &raw[..MAGIC.len()] != MAGIC {
        return Err("bad header");
    }
    let mut pos = MAGIC.len();
    while let Some(&len) = raw.get(pos) {
        let len = len as usize;
        let end = pos + 1 + len + 4;
        let Some(rec) = raw.get(pos..end) else { break };
        let (body, crc) = rec.split_at(1 + len);
        if len == 0 || len > UPSTREAM_MAX || crate::crc32c(body).to_le_bytes() != crc {
            break;
        }
        let up = &body[1..];
        map.insert(digest(up), Bytes::copy_from_slice(up));
        pos = end;
    }
    Ok((map, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_handles_inline_long_ones_by_digest_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let short = vec![7u8; INLINE_MAX];
        let long = vec![9u8; 64];
        let (hs, hl) = {
            let m = HandleMap::open(&path, true).unwrap();
            let h = m.intern(&[&short, &long, &long]).unwrap();
            assert_eq!(parse(&h[0]).unwrap(), Ours::Inline(&short[..]));
            assert_eq!(parse(&h[1]).unwrap(), Ours::Digest(digest(&long)));
            assert_eq!(h[1], h[2]);
            assert_eq!(m.len(), 1);
            (h[0], h[1])
        };
        let m = HandleMap::open(&path, true).unwrap();
        assert_eq!(m.intern(&[&short, &long]).unwrap(), vec![hs, hl]);
        let Ours::Digest(d) = parse(&hl).unwrap() else {
            panic!()
        };
        assert_eq!(m.get(&d).unwrap(), &long[..]);
        // Without inlining every handle goes through the map.
        let all = HandleMap::open(&dir.path().join("n"), false).unwrap();
        let h = all.intern(&[&short]).unwrap();
        assert!(matches!(parse(&h[0]).unwrap(), Ours::Digest(_)));
        assert!(all.intern(&[&[]]).is_err());
        assert!(all.intern(&[&[1u8; 65]]).is_err());
    }

    #[test]
    fn corrupt_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let a = vec![1u8; 50];
        let b = vec![2u8; 60];
        {
            let m = HandleMap::open(&path, true).unwrap();
            m.intern(&[&a, &b]).unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        for cut in [full.len() - 1, full.len() - 30, MAGIC.len() + 3] {
            std::fs::write(&path, &full[..cut]).unwrap();
            let m = HandleMap::open(&path, true).unwrap();
            assert!(m.get(&digest(&a)).is_some() || cut < MAGIC.len() + 55);
            assert!(m.get(&digest(&b)).is_none());
            // Appends after the cut are readable again.
            m.intern(&[&b]).unwrap();
            drop(m);
            let m = HandleMap::open(&path, true).unwrap();
            assert!(m.get(&digest(&b)).is_some());
        }
        // A flipped bit in the last record drops only that record.
        let mut bad = full.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let m = HandleMap::open(&path, true).unwrap();
        assert!(m.get(&digest(&a)).is_some());
        assert!(m.get(&digest(&b)).is_none());
        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(HandleMap::open(&path, true).is_err());
    }

    #[test]
    fn foreign_handles_are_refused() {
        for bytes in [
            &[][..],
            &[b'X', 1, 2][..],
            &[TAG_DIGEST, 1, 2][..],
            &[TAG_INLINE][..],
        ] {
            let fh = FilerHandle::new(bytes).unwrap();
            assert_eq!(parse(&fh), Err(Error::BadHandle));
        }
    }
}
