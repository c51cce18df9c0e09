//! The journal's on-disk format: two superblock copies, then a circular log
//! of groups, each a group header, a list of confirmed sequences and records.
//!
//! ```text
//! region: | superblock A (4 KiB) | superblock B (4 KiB) | log (L bytes, circular) |
//! group:  | header (88 B) | done list (8 B each) | record | record | ... | zero pad to 4 KiB |
//! record: | header (56 B) | payload | zero pad to 8 B |
//! ```
//!
//! A superblock holds the magic, the format version, the shard, the cache
//! id, the epoch (bumped at every open), the region size, the head (where
//! replay starts), a generation (each write goes to the other copy; the
//! valid copy with the higher generation wins) and, after a clean close,
//! where the log ends.
//!
//! Positions in the log are *virtual*: bytes since the journal was formatted,
//! never wrapping; the byte on disk is at `LOG_START + pos % L`. A group never
//! crosses the end of the log: one that would is written at the next multiple
//! of `L` instead, and its header names where the log before it ended
//! (`prev_end`), which is what marks the wrap. Every header names its own
//! virtual position, so a group left from an earlier lap is never taken for a
//! current one.
//!
//! All integers are little-endian. Every header carries a CRC-32C: the
//! superblock's over its fields, the group header's over its fields and done
//! list, a record's over its header and payload. Group headers also carry the
//! cache id: client data inside a record cannot pass for a group header
//! without knowing it.

use std::fmt;

use bytes::Bytes;

use crate::rt::aligned::{AlignedBuf, ALIGN};

use super::JournalError;

/// Unit of alignment of every write and of every group.
pub const PAGE: u64 = ALIGN as u64;
/// Where the log starts in the region (after the two superblock copies).
pub const LOG_START: u64 = 2 * PAGE;
/// Magic at the start of each superblock copy.
pub const SB_MAGIC: [u8; 8] = *b"WEIRJNL1";
/// Magic in each group header.
pub const GROUP_MAGIC: [u8; 8] = *b"WEIRJGRP";
/// On-disk format version.
pub const FORMAT_VERSION: u32 = 1;
/// Fixed part of a group header.
pub const GROUP_HDR: usize = 88;
/// Record header.
pub const REC_HDR: usize = 56;
/// Largest record payload a journal of any size takes (a small one takes
/// less: [`Geometry::max_payload`]).
pub const MAX_PAYLOAD: usize = (2 << 20) - 2 * ALIGN;
/// Most confirmed sequences one group header carries: with them the header
/// still fits in its first 4 KiB, which replay reads before the rest.
pub const MAX_DONES: usize = (ALIGN - GROUP_HDR) / 8;
const SB_CRC_AT: usize = 88;

/// Identity of one cache: random, made once when its journals are formatted
/// and kept by the caller; a journal with another id is refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheId(pub [u8; 16]);

impl CacheId {
    pub fn random() -> Self {
        CacheId(rand::random())
    }
}

impl fmt::Display for CacheId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for CacheId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheId({self})")
    }
}

/// Groups stop taking records at this size (less in a small journal:
/// [`Geometry::group_max`]).
pub const GROUP_MAX: usize = 4 << 20;
/// Smallest log.
const MIN_LOG: u64 = 32 * PAGE;

/// The region a journal lives in and whose it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes of the region: two superblock pages and the log.
    pub region_size: u64,
    pub cache_id: CacheId,
    pub shard: u32,
}

impl Geometry {
    pub fn log_len(&self) -> u64 {
        self.region_size - LOG_START
    }

    /// Largest group: at most a quarter of the log.
    pub fn group_max(&self) -> usize {
        GROUP_MAX.min((self.log_len() / 4) as usize)
    }

    /// Largest record payload: a record fills at most half a group, so a
    /// group stopped by the next record is at least half full.
    pub fn max_payload(&self) -> usize {
        MAX_PAYLOAD.min(self.group_max() / 2 - 2 * ALIGN)
    }

    /// Whether a log fits: a multiple of 4 KiB, at least 128 KiB of log.
    pub fn check(&self) -> Result<(), JournalError> {
        let min = LOG_START + MIN_LOG;
        if !self.region_size.is_multiple_of(PAGE) || self.region_size < min {
            return Err(JournalError::BadRegion(format!(
                "journal region of {} bytes: it must be a multiple of 4096 and at least {min}",
                self.region_size
            )));
        }
        Ok(())
    }
}

/// A file on a core filer: the core filer's index and its file id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FileRef {
    pub filer: u8,
    pub id: u64,
}

/// What a record does. Only `Write` has a meaning to the journal (its
/// payload is file data at `offset`); the payload of every other kind is
/// the engine's own encoding, stored and returned as is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum OpKind {
    Write = 1,
    /// Size, mode, owner or time changes.
    SetAttr = 2,
    Create = 3,
    Mkdir = 4,
    Symlink = 5,
    Mknod = 6,
    Link = 7,
    Remove = 8,
    Rmdir = 9,
    Rename = 10,
}

impl OpKind {
    pub fn from_u8(v: u8) -> Option<OpKind> {
        use OpKind::*;
        Some(match v {
            1 => Write,
            2 => SetAttr,
            3 => Create,
            4 => Mkdir,
            5 => Symlink,
            6 => Mknod,
            7 => Link,
            8 => Remove,
            9 => Rmdir,
            10 => Rename,
            _ => return None,
        })
    }
}

/// One operation to journal. Its record's payload is `payload` followed by
/// `tail`: a write's data kept apart from what precedes it, so that
/// journaling copies it once, into the group. Replay returns the whole
/// payload in `payload`; two ops are equal when their bytes are.
#[derive(Clone, Debug)]
pub struct Op {
    pub kind: OpKind,
    pub file: FileRef,
    /// File offset of a write's data; the engine's to use for other kinds.
    pub offset: u64,
    pub payload: Bytes,
    pub tail: Bytes,
}

impl Op {
    pub fn write(file: FileRef, offset: u64, data: Bytes) -> Op {
        Op {
            kind: OpKind::Write,
            file,
            offset,
            payload: data,
            tail: Bytes::new(),
        }
    }

    /// Bytes of the record's payload.
    pub fn len(&self) -> usize {
        self.payload.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for Op {
    fn eq(&self, o: &Op) -> bool {
        let bytes = |op: &Op| {
            op.payload
                .iter()
                .chain(op.tail.iter())
                .copied()
                .collect::<Vec<u8>>()
        };
        (self.kind, self.file, self.offset, self.len()) == (o.kind, o.file, o.offset, o.len())
            && bytes(self) == bytes(o)
    }
}

impl Eq for Op {}

/// A record read back by replay.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record {
    pub seq: u64,
    /// Epoch of the journal open that wrote it.
    pub epoch: u64,
    pub op: Op,
}

/// Where replay starts: the chain position before the group holding the
/// oldest record still needed, and that group's first sequence.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Head {
    pub pos: u64,
    pub seq: u64,
}

/// One superblock copy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Superblock {
    pub version: u32,
    pub shard: u32,
    pub cache_id: CacheId,
    /// Bumped at every open; groups carry the epoch that wrote them.
    pub epoch: u64,
    pub region_size: u64,
    pub head: Head,
    /// Copy `generation % 2` holds it; the valid copy with the higher one wins.
    pub generation: u64,
    /// Set by a clean close: where the log ends. A replay that ends there
    /// needs no search for valid groups beyond a damaged one.
    pub tail: Option<Head>,
}

/// What a superblock slot holds.
#[derive(Debug, PartialEq, Eq)]
pub enum SbSlot {
    /// No magic: never formatted (or not a journal).
    Missing,
    /// Magic, but the checksum fails (a torn write).
    Damaged,
    Valid(Superblock),
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

fn put32(b: &mut [u8], i: usize, v: u32) {
    b[i..i + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], i: usize, v: u64) {
    b[i..i + 8].copy_from_slice(&v.to_le_bytes());
}

impl Superblock {
    /// Write this copy into `page` (at least 4 KiB; the rest is zeroed).
    pub fn encode(&self, page: &mut [u8]) {
        page[..ALIGN].fill(0);
        page[0..8].copy_from_slice(&SB_MAGIC);
        put32(page, 8, self.version);
        put32(page, 12, self.shard);
        page[16..32].copy_from_slice(&self.cache_id.0);
        put64(page, 32, self.epoch);
        put64(page, 40, self.region_size);
        put64(page, 48, self.head.pos);
        put64(page, 56, self.head.seq);
        put64(page, 64, self.generation);
        if let Some(t) = self.tail {
            // Sequences start at 1: 0 means "no tail".
            put64(page, 72, t.pos);
            put64(page, 80, t.seq);
        }
        let crc = crate::crc32c(&page[..SB_CRC_AT]);
        put32(page, SB_CRC_AT, crc);
    }

    pub fn decode(page: &[u8]) -> SbSlot {
        if page.len() < SB_CRC_AT + 4 || page[0..8] != SB_MAGIC {
            return SbSlot::Missing;
        }
        if u32_at(page, SB_CRC_AT) != crate::crc32c(&page[..SB_CRC_AT]) {
            return SbSlot::Damaged;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&page[16..32]);
        SbSlot::Valid(Superblock {
            version: u32_at(page, 8),
            shard: u32_at(page, 12),
            cache_id: CacheId(id),
            epoch: u64_at(page, 32),
            region_size: u64_at(page, 40),
            head: Head {
                pos: u64_at(page, 48),
                seq: u64_at(page, 56),
            },
            generation: u64_at(page, 64),
            tail: (u64_at(page, 80) != 0).then(|| Head {
                pos: u64_at(page, 72),
                seq: u64_at(page, 80),
            }),
        })
    }

    /// Region offset of the copy this generation goes to.
    pub fn slot_offset(generation: u64) -> u64 {
        (generation % 2) * PAGE
    }
}

/// A group header (without its done list).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GroupHeader {
    pub cache_id: CacheId,
    pub shard: u32,
    pub epoch: u64,
    /// Virtual position of this group.
    pub vpos: u64,
    /// Where the log before it ended: `vpos`, or less when the log wrapped.
    pub prev_end: u64,
    pub first_seq: u64,
    /// Every record before this one was acknowledged when the group was
    /// made: a group damaged below it had been acknowledged (damage), one
    /// above it may have been torn by the crash (in flight beside it).
    pub acked_through: u64,
    pub count: u32,
    pub ndones: u32,
    /// Bytes of header, done list and records (before the padding).
    pub byte_len: u32,
}

/// Bytes of a record with a payload of `len`, padded to 8.
pub const fn record_size(len: usize) -> usize {
    (REC_HDR + len).div_ceil(8) * 8
}

/// Bytes of a group header with `ndones` confirmed sequences, padded to 8.
pub const fn header_size(ndones: usize) -> usize {
    GROUP_HDR + ndones * 8
}

/// Encode a group into `spare` (a buffer of an earlier group, if large
/// enough: reused, it spares the kernel zeroing fresh pages) or a fresh
/// aligned buffer, padded with zeros to 4 KiB. `hdr.ndones`, `hdr.count`
/// and `hdr.byte_len` are filled in here.
pub fn encode_group<'a>(
    mut hdr: GroupHeader,
    dones: &[u64],
    records: impl ExactSizeIterator<Item = (u64, &'a Op)> + Clone,
    spare: Option<AlignedBuf>,
) -> AlignedBuf {
    let len = header_size(dones.len())
        + records
            .clone()
            .map(|(_, op)| record_size(op.len()))
            .sum::<usize>();
    let padded = len.next_multiple_of(ALIGN);
    let mut buf = match spare.filter(|b| b.capacity() >= padded) {
        Some(mut b) => {
            b.clear();
            b.extend_zeroed(padded);
            b
        }
        None => AlignedBuf::zeroed(padded),
    };
    hdr.ndones = dones.len() as u32;
    hdr.count = records.len() as u32;
    hdr.byte_len = len as u32;
    let b = buf.as_mut_slice();
    put32(b, 4, hdr.byte_len);
    b[8..16].copy_from_slice(&GROUP_MAGIC);
    b[16..32].copy_from_slice(&hdr.cache_id.0);
    put32(b, 32, hdr.shard);
    put32(b, 36, hdr.count);
    put64(b, 40, hdr.epoch);
    put64(b, 48, hdr.vpos);
    put64(b, 56, hdr.prev_end);
    put64(b, 64, hdr.first_seq);
    put32(b, 72, hdr.ndones);
    put64(b, 80, hdr.acked_through);
    for (i, d) in dones.iter().enumerate() {
        put64(b, GROUP_HDR + 8 * i, *d);
    }
    let hlen = header_size(dones.len());
    let crc = crate::crc32c(&b[4..hlen]);
    put32(b, 0, crc);
    let mut at = hlen;
    for (seq, op) in records {
        let plen = op.len();
        let r = &mut b[at..at + record_size(plen)];
        put32(r, 4, plen as u32);
        r[8] = op.kind as u8;
        r[9] = op.file.filer;
        put32(r, 12, hdr.shard);
        put64(r, 16, hdr.epoch);
        put64(r, 24, seq);
        put64(r, 32, op.file.id);
        put64(r, 40, op.offset);
        let split = REC_HDR + op.payload.len();
        r[REC_HDR..split].copy_from_slice(&op.payload);
        r[split..REC_HDR + plen].copy_from_slice(&op.tail);
        let crc = crate::crc32c(&r[4..REC_HDR + plen]);
        put32(r, 0, crc);
        at += r.len();
    }
    buf
}

/// Decode a group header and its done list from the start of a group (at
/// least the group's first 4 KiB). `None` unless the magic, the checksum,
/// the cache id and the shard are right and the length is possible for a
/// log of `log_len` bytes.
pub fn decode_group_header(
    b: &[u8],
    cache_id: CacheId,
    shard: u32,
    log_len: u64,
) -> Option<(GroupHeader, Vec<u64>)> {
    if b.len() < GROUP_HDR || b[8..16] != GROUP_MAGIC || b[16..32] != cache_id.0 || u32_at(b, 32) != shard {
        return None;
    }
    let ndones = u32_at(b, 72) as usize;
    let hlen = header_size(ndones);
    if ndones > MAX_DONES || hlen > b.len() || u32_at(b, 0) != crate::crc32c(&b[4..hlen]) {
        return None;
    }
    let hdr = GroupHeader {
        cache_id,
        shard,
        byte_len: u32_at(b, 4),
        count: u32_at(b, 36),
        epoch: u64_at(b, 40),
        vpos: u64_at(b, 48),
        prev_end: u64_at(b, 56),
        first_seq: u64_at(b, 64),
        acked_through: u64_at(b, 80),
        ndones: ndones as u32,
    };
    let fits = (hdr.byte_len as usize) >= hlen
        && hdr.vpos % log_len + u64::from(hdr.byte_len) <= log_len
        && hdr.vpos.is_multiple_of(PAGE)
        && hdr.prev_end <= hdr.vpos
        && (hdr.count as usize) <= (hdr.byte_len as usize - hlen) / REC_HDR;
    let dones = (0..ndones).map(|i| u64_at(b, GROUP_HDR + 8 * i)).collect();
    fits.then_some((hdr, dones))
}

/// Decode the records of a group whose header decoded as `hdr`; `group` is
/// the group's bytes from its start (at least `hdr.byte_len`). Returns the
/// records up to the first that fails its checks, and whether all passed.
pub fn decode_records(group: &Bytes, hdr: &GroupHeader) -> (Vec<Record>, bool) {
    let mut out = Vec::with_capacity(hdr.count as usize);
    let end = (hdr.byte_len as usize).min(group.len());
    let mut at = header_size(hdr.ndones as usize);
    for i in 0..u64::from(hdr.count) {
        let Some(r) = group.get(at..end).filter(|r| r.len() >= REC_HDR) else {
            return (out, false);
        };
        let len = u32_at(r, 4) as usize;
        if len > MAX_PAYLOAD || record_size(len) > r.len() {
            return (out, false);
        }
        let ok = u32_at(r, 0) == crate::crc32c(&r[4..REC_HDR + len])
            && u32_at(r, 12) == hdr.shard
            && u64_at(r, 16) == hdr.epoch
            && u64_at(r, 24) == hdr.first_seq + i;
        let Some(kind) = OpKind::from_u8(r[8]).filter(|_| ok) else {
            return (out, false);
        };
        out.push(Record {
            seq: hdr.first_seq + i,
            epoch: hdr.epoch,
            op: Op {
                kind,
                file: FileRef {
                    filer: r[9],
                    id: u64_at(r, 32),
                },
                offset: u64_at(r, 40),
                payload: group.slice(at + REC_HDR..at + REC_HDR + len),
                tail: Bytes::new(),
            },
        });
        at += record_size(len);
    }
    (out, true)
}
