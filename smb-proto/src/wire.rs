//! Little-endian readers and writers shared by every codec, and UTF-16LE
//! strings.
//!
//! Offsets in SMB2 bodies count from the start of the SMB2 header, which
//! sits 64 bytes before the body. A [`Reader`] knows where its buffer starts
//! relative to that origin, so offsets from the wire are resolved (and bounds
//! checked) in one place.
//!
//! Strings are decoded into `String`; a name with an unpaired surrogate or an
//! odd byte length is rejected with [`DecodeError::Utf16`] rather than kept
//! as raw code units, so every layer above sees valid Unicode.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};

/// Size of the SMB2 header; body offsets on the wire are relative to it.
pub const HEADER_LEN: usize = 64;

/// A 16-byte SMB2 file id (persistent + volatile halves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileId {
    pub persistent: u64,
    pub volatile: u64,
}

impl FileId {
    /// The "any" id (all ones) that compounded related requests use.
    pub const ANY: FileId = FileId {
        persistent: u64::MAX,
        volatile: u64::MAX,
    };
}

/// Bounded little-endian cursor over one structure.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
    /// Offset of `buf[0]` from the origin that wire offsets count from.
    origin: usize,
}

impl Reader {
    /// A reader whose wire offsets count from `buf[0]` itself.
    pub fn new(buf: Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            origin: 0,
        }
    }

    /// A reader over an SMB2 body: wire offsets count from the header, 64
    /// bytes earlier.
    pub fn body(buf: Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            origin: HEADER_LEN,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn buf(&self) -> &Bytes {
        &self.buf
    }

    /// Everything not consumed yet.
    pub fn rest(&self) -> Bytes {
        self.buf.slice(self.pos.min(self.buf.len())..)
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated {
                what,
                need: n,
                have: self.remaining(),
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes> {
        let start = self.pos;
        self.take(n, what)?;
        Ok(self.buf.slice(start..self.pos))
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        self.take(n, what).map(drop)
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub fn file_id(&mut self, what: &'static str) -> Result<FileId> {
        Ok(FileId {
            persistent: self.u64(what)?,
            volatile: self.u64(what)?,
        })
    }

    /// Read the StructureSize field and check it. Variable-length bodies
    /// count one byte of their buffer in it, so only the fixed part
    /// (`expected & !1`) must be present.
    pub fn structure_size(&mut self, expected: u16, what: &'static str) -> Result<()> {
        let fixed = usize::from(expected & !1);
        if self.buf.len() < fixed {
            return Err(DecodeError::Truncated {
                what,
                need: fixed,
                have: self.buf.len(),
            });
        }
        let got = self.u16(what)?;
        if got != expected {
            return Err(DecodeError::StructureSize { what, expected, got });
        }
        Ok(())
    }

    /// The `len` bytes at wire offset `offset`, bounds checked. A zero
    /// length yields an empty buffer whatever the offset.
    pub fn region(&self, offset: u64, len: u64, what: &'static str) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let oob = DecodeError::OutOfBounds {
            what,
            offset,
            len,
            size: self.buf.len(),
        };
        let start = offset.checked_sub(self.origin as u64).ok_or(oob.clone())?;
        let end = start.checked_add(len).ok_or(oob.clone())?;
        if end > self.buf.len() as u64 {
            return Err(oob);
        }
        Ok(self.buf.slice(start as usize..end as usize))
    }

    /// Like [`Reader::region`] but also returns a reader over the rest of
    /// the buffer from `offset` (for chained structures such as contexts).
    pub fn from_offset(&self, offset: u64, what: &'static str) -> Result<Reader> {
        let start = offset
            .checked_sub(self.origin as u64)
            .filter(|&s| s <= self.buf.len() as u64)
            .ok_or(DecodeError::OutOfBounds {
                what,
                offset,
                len: 0,
                size: self.buf.len(),
            })?;
        Ok(Reader {
            buf: self.buf.slice(start as usize..),
            pos: 0,
            origin: 0,
        })
    }

    /// A UTF-16LE string of `len` bytes at the cursor.
    pub fn utf16(&mut self, len: usize, what: &'static str) -> Result<String> {
        utf16_decode(self.take(len, what)?, what)
    }
}

/// Decode UTF-16LE, rejecting odd lengths and unpaired surrogates.
pub fn utf16_decode(b: &[u8], what: &'static str) -> Result<String> {
    if b.len() % 2 != 0 {
        return Err(DecodeError::Utf16 { what });
    }
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<std::result::Result<String, _>>()
        .map_err(|_| DecodeError::Utf16 { what })
}

/// Byte length of `s` in UTF-16LE.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count() * 2
}

/// Append `s` in UTF-16LE.
pub fn put_utf16(out: &mut BytesMut, s: &str) {
    for u in s.encode_utf16() {
        out.put_u16_le(u);
    }
}

/// Little-endian writing helpers on `BytesMut`.
pub trait WriteExt {
    fn put_file_id(&mut self, id: FileId);
    /// Zero bytes up to the next multiple of `align` counted from `start`.
    fn pad_to(&mut self, start: usize, align: usize);
    fn patch_u16(&mut self, at: usize, v: u16);
    fn patch_u32(&mut self, at: usize, v: u32);
}

impl WriteExt for BytesMut {
    fn put_file_id(&mut self, id: FileId) {
        self.put_u64_le(id.persistent);
        self.put_u64_le(id.volatile);
    }

    fn pad_to(&mut self, start: usize, align: usize) {
        let rel = self.len().saturating_sub(start);
        self.put_bytes(0, pad(rel, align));
    }

    fn patch_u16(&mut self, at: usize, v: u16) {
        if let Some(s) = self.get_mut(at..at + 2) {
            s.copy_from_slice(&v.to_le_bytes());
        }
    }

    fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(s) = self.get_mut(at..at + 4) {
            s.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Start the next entry of a NextEntryOffset chain: pad to `align` counted
/// from the previous entry, point the previous entry's first u32 here, and
/// remember this entry as the previous one.
pub fn next_chain_entry(out: &mut BytesMut, prev: &mut Option<usize>, align: usize) {
    if let Some(p) = *prev {
        out.pad_to(p, align);
        let off = (out.len() - p) as u32;
        out.patch_u32(p, off);
    }
    *prev = Some(out.len());
}

/// Padding needed after `len` bytes to reach a multiple of `align` (a power
/// of two).
pub const fn pad(len: usize, align: usize) -> usize {
    (align - (len & (align - 1))) & (align - 1)
}

/// Wire offset (from the SMB2 header) of the byte about to be written to a
/// body that started at `body_start` in `out`.
pub fn body_offset(out: &BytesMut, body_start: usize) -> usize {
    HEADER_LEN + out.len().saturating_sub(body_start)
}

/// Check a length read from the wire against what is left before
/// allocating for `count` items of at least `min_size` bytes each.
pub fn check_count(count: usize, min_size: usize, available: usize, what: &'static str) -> Result<()> {
    if count.saturating_mul(min_size.max(1)) > available {
        return Err(DecodeError::Truncated {
            what,
            need: count.saturating_mul(min_size.max(1)),
            have: available,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_bounds_checked_against_the_header_origin() {
        let r = Reader::body(Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(&r.region(66, 2, "x").unwrap()[..], &[3, 4]);
        assert!(r.region(63, 1, "x").is_err());
        assert!(r.region(67, 2, "x").is_err());
        assert!(r.region(u64::MAX, 2, "x").is_err());
        assert!(r.region(0, 0, "x").unwrap().is_empty());
    }

    #[test]
    fn utf16_rejects_unpaired_surrogates_and_odd_lengths() {
        assert_eq!(
            utf16_decode(&[b'a', 0, 0x3d, 0xd8, 0x00, 0xde], "n").unwrap(),
            "a\u{1f600}"
        );
        assert!(utf16_decode(&[0x3d, 0xd8], "n").is_err());
        assert!(utf16_decode(b"a", "n").is_err());
        let mut b = BytesMut::new();
        put_utf16(&mut b, "é\u{1f600}");
        assert_eq!(utf16_len("é\u{1f600}"), b.len());
        assert_eq!(utf16_decode(&b, "n").unwrap(), "é\u{1f600}");
    }

    #[test]
    fn structure_size_is_checked() {
        let mut r = Reader::body(Bytes::from_static(&[4, 0, 0, 0]));
        r.structure_size(4, "x").unwrap();
        let mut r = Reader::body(Bytes::from_static(&[5, 0, 0, 0]));
        assert!(matches!(
            r.structure_size(4, "x"),
            Err(DecodeError::StructureSize { .. })
        ));
        let mut r = Reader::body(Bytes::from_static(&[9, 0]));
        assert!(matches!(
            r.structure_size(9, "x"),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
