//! Replay: read a journal region back, pick the valid superblock, walk the
//! log from its head and return the records not confirmed, in sequence
//! order, with the [`Log`] to continue appending after them.
//!
//! The walk goes from group to group along the chain: the group after
//! position `v` is the one at `v` whose header names `v` as the end of the
//! log before it, or, when the log wrapped, the one at the next multiple of
//! the log size naming `v`. Its first sequence must be the one expected.
//!
//! Where the chain stops — no such group, or one whose records fail their
//! checksums — the rest of the live log is searched for a complete group
//! further on. None: the end of the log, and a damaged group there is a
//! torn write that was never acknowledged (dropped). One: corruption in the
//! middle of the log; what was lost is reported and the walk resumes there.
//!
//! The search reads the whole log. A clean close spares it: its superblock
//! names where the log ends, and a walk that ends there is done.
//!
//! A damaged group at `v` and a complete one at the wrap position naming `v`
//! is the trace of an earlier replay: it dropped the torn group and the log
//! continued past it.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::io;
use std::ops::Range;

use bytes::Bytes;

use crate::rt::aligned::align_up;

use super::format::{
    decode_group_header, decode_records, CacheId, Geometry, GroupHeader, Head, Record, SbSlot, Superblock,
    FORMAT_VERSION, GROUP_MAGIC, LOG_START, PAGE,
};
use super::log::{GroupMeta, Log, Resume};
use super::JournalError;

/// Reads of the journal region. Offsets and lengths are multiples of 4 KiB.
pub trait RegionRead {
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Bytes>;
}

/// Chunk of the log read at once when searching past a damaged group.
const SCAN_CHUNK: usize = 1 << 20;

/// What a replay found.
#[derive(Debug)]
pub struct Replayed {
    /// Records not confirmed, in sequence order.
    pub records: Vec<Record>,
    /// Damage in the middle of the log (each a log line and a count for the
    /// caller): reported at every replay until the head moves past it.
    pub corruption: Vec<Corruption>,
    /// A torn group at the end, dropped (never acknowledged).
    pub torn_tail: Option<TornTail>,
    /// Continue here: its first write is a superblock with the new epoch.
    pub log: Log,
}

/// Records lost to damage followed by valid groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Log position where the damage starts and where valid groups resume.
    pub at: u64,
    pub resumed_at: u64,
    /// Sequences lost (some may have been confirmations or confirmed).
    pub lost: Range<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub at: u64,
    /// Sequences its header named.
    pub seqs: Range<u64>,
}

/// The journal expected in the region.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub cache_id: CacheId,
    pub shard: u32,
    pub region_size: u64,
}

/// A group read at a position.
struct Found {
    hdr: GroupHeader,
    dones: Vec<u64>,
    records: Vec<Record>,
    complete: bool,
}

impl Found {
    fn end(&self) -> u64 {
        self.hdr.vpos + align_up(self.hdr.byte_len as usize) as u64
    }
}

/// Read the superblock copies: the valid one with the higher generation.
pub fn read_superblock(r: &mut impl RegionRead, expect: &Expect) -> Result<Superblock, JournalError> {
    let pages = r
        .read_at(0, 2 * PAGE as usize)
        .map_err(|e| JournalError::Io(format!("read the superblocks: {e}")))?;
    let (a, b) = pages.split_at(PAGE as usize);
    let sb = match (Superblock::decode(a), Superblock::decode(b)) {
        (SbSlot::Valid(x), SbSlot::Valid(y)) => {
            if x.generation >= y.generation {
                x
            } else {
                y
            }
        }
        (SbSlot::Valid(x), _) | (_, SbSlot::Valid(x)) => x,
        (SbSlot::Missing, SbSlot::Missing) => return Err(JournalError::Unformatted),
        _ => return Err(JournalError::SuperblockDamaged),
    };
    if sb.version != FORMAT_VERSION {
        return Err(JournalError::Version(sb.version));
    }
    if sb.cache_id != expect.cache_id || sb.shard != expect.shard {
        return Err(JournalError::WrongJournal {
            found_id: sb.cache_id,
            found_shard: sb.shard,
            expected_id: expect.cache_id,
            expected_shard: expect.shard,
        });
    }
    if sb.region_size != expect.region_size {
        return Err(JournalError::WrongSize {
            found: sb.region_size,
            expected: expect.region_size,
        });
    }
    Ok(sb)
}

/// Replay the journal in the region. See the module documentation.
pub fn replay(r: &mut impl RegionRead, expect: Expect) -> Result<Replayed, JournalError> {
    let sb = read_superblock(r, &expect)?;
    let geo = Geometry {
        region_size: sb.region_size,
        cache_id: sb.cache_id,
        shard: sb.shard,
    };
    geo.check()?;
    let mut w = Walk {
        r,
        geo,
        l: geo.log_len(),
        epoch: sb.epoch,
        limit: sb.head.pos + geo.log_len(),
    };
    let (mut v, mut expected) = (sb.head.pos, sb.head.seq);
    let mut records = Vec::new();
    let mut dones = HashSet::new();
    let mut groups = VecDeque::new();
    let mut corruption = Vec::new();
    let mut erase = Vec::new();
    let mut take = |g: Found, chain: u64, records: &mut Vec<Record>, keep: usize| {
        dones.extend(g.dones.iter().copied());
        groups.push_back(GroupMeta {
            chain,
            first_seq: g.hdr.first_seq,
            count: keep as u32,
            undone: 0,
            durable: true,
        });
        records.extend(g.records.into_iter().take(keep));
    };
    let torn_tail = loop {
        let at_v = w.group(v, v, expected)?;
        let wrap = (v % w.l != 0).then(|| (v / w.l + 1) * w.l);
        let at_wrap = match wrap {
            Some(b) => w.group(b, v, expected)?,
            None => None,
        };
        let complete = |g: &Option<Found>| g.as_ref().is_some_and(|g| g.complete);
        let chosen = match (at_v, at_wrap) {
            (a, _) if complete(&a) => Ok(a),
            (_, b) if complete(&b) => Ok(b),
            (a, b) => Err(a.or(b)),
        };
        let damaged = match chosen {
            Ok(Some(g)) => {
                let (n, end) = (g.hdr.count as usize, g.end());
                take(g, v, &mut records, n);
                (v, expected) = (end, expected + n as u64);
                continue;
            }
            Ok(None) => None,
            Err(d) => d,
        };
        // A clean close named this end: nothing valid lies beyond it.
        let clean_end = sb.tail
            == Some(Head {
                pos: v,
                seq: expected,
            });
        let beyond = if clean_end { Vec::new() } else { w.scan(v)? };
        // A group made after `expected` was acknowledged: the log went on,
        // so this is damage, not the end.
        let claim = beyond.iter().map(|(h, _, _)| h.acked_through).max().unwrap_or(0);
        let mut next = None;
        if claim > expected {
            for (hdr, dones, page) in beyond.iter().filter(|(h, _, _)| h.first_seq >= expected) {
                let g = w.complete(*hdr, dones.clone(), page.clone())?;
                if g.complete {
                    next = Some(g);
                    break;
                }
            }
        }
        let Some(next) = next else {
            // The end of the log. Groups beyond it were in flight beside a
            // torn one, never acknowledged: erased before the log grows over
            // them, so that no later replay mistakes them for its own.
            erase.extend(beyond.iter().map(|(h, _, _)| h.vpos));
            erase.extend(damaged.as_ref().map(|d| d.hdr.vpos));
            if claim > expected {
                corruption.push(Corruption {
                    at: v,
                    resumed_at: v,
                    lost: expected..claim,
                });
                break None;
            }
            break damaged.map(|d| TornTail {
                at: d.hdr.vpos,
                seqs: d.hdr.first_seq..d.hdr.first_seq + u64::from(d.hdr.count),
            });
        };
        // Keep what of the damaged group still checks out.
        let mut lost_from = expected;
        if let Some(d) = damaged {
            let keep = d.records.len();
            lost_from += keep as u64;
            take(d, v, &mut records, keep);
        }
        corruption.push(Corruption {
            at: v,
            resumed_at: next.hdr.vpos,
            lost: lost_from..next.hdr.first_seq.max(lost_from),
        });
        let (n, end, first, chain) = (
            next.hdr.count as usize,
            next.end(),
            next.hdr.first_seq,
            next.hdr.prev_end,
        );
        take(next, chain, &mut records, n);
        (v, expected) = (end, first + n as u64);
    };
    records.retain(|r| !dones.contains(&r.seq));
    let undone: BTreeSet<u64> = records.iter().map(|r| r.seq).collect();
    for g in &mut groups {
        g.undone = undone
            .range(g.first_seq..g.first_seq + u64::from(g.count))
            .count() as u32;
    }
    let log = Log::resume(
        geo,
        Resume {
            epoch: sb.epoch + 1,
            generation: sb.generation,
            durable_head: sb.head,
            groups,
            undone,
            tail_end: v,
            next_seq: expected,
            erase,
        },
    );
    Ok(Replayed {
        records,
        corruption,
        torn_tail,
        log,
    })
}

struct Walk<'a, R> {
    r: &'a mut R,
    geo: Geometry,
    l: u64,
    epoch: u64,
    /// End of the live log at most: one lap after the head.
    limit: u64,
}

impl<R: RegionRead> Walk<'_, R> {
    fn read(&mut self, pos: u64, len: usize) -> Result<Bytes, JournalError> {
        self.r
            .read_at(LOG_START + pos % self.l, len)
            .map_err(|e| JournalError::Io(format!("read the log at position {pos}: {e}")))
    }

    fn header(&self, page: &[u8], pos: u64) -> Option<(GroupHeader, Vec<u64>)> {
        decode_group_header(page, self.geo.cache_id, self.geo.shard, self.l)
            .filter(|(h, _)| h.vpos == pos && h.epoch <= self.epoch)
    }

    /// The group at `pos` if its header is valid and chains from `chain`
    /// with first sequence `expected`.
    fn group(&mut self, pos: u64, chain: u64, expected: u64) -> Result<Option<Found>, JournalError> {
        if pos >= self.limit {
            return Ok(None);
        }
        let page = self.read(pos, PAGE as usize)?;
        let Some((hdr, dones)) = self.header(&page, pos) else {
            return Ok(None);
        };
        if hdr.prev_end != chain || hdr.first_seq != expected {
            return Ok(None);
        }
        self.complete(hdr, dones, page).map(Some)
    }

    fn complete(
        &mut self,
        hdr: GroupHeader,
        dones: Vec<u64>,
        first_page: Bytes,
    ) -> Result<Found, JournalError> {
        let len = align_up(hdr.byte_len as usize);
        let bytes = if len <= first_page.len() {
            first_page
        } else {
            self.read(hdr.vpos, len)?
        };
        let (records, complete) = decode_records(&bytes, &hdr);
        Ok(Found {
            hdr,
            dones,
            records,
            complete,
        })
    }

    /// Every valid group header placed after `v` in the live log, in log
    /// order, with the page it is on.
    fn scan(&mut self, v: u64) -> Result<Vec<(GroupHeader, Vec<u64>, Bytes)>, JournalError> {
        let mut found = Vec::new();
        let mut off = 0u64;
        while off < self.l {
            let len = (SCAN_CHUNK as u64).min(self.l - off) as usize;
            let chunk = self
                .r
                .read_at(LOG_START + off, len)
                .map_err(|e| JournalError::Io(format!("read the log at offset {off}: {e}")))?;
            for (i, page) in chunk.chunks(PAGE as usize).enumerate() {
                if page.len() < 16 || page[8..16] != GROUP_MAGIC {
                    continue;
                }
                let phys = off + i as u64 * PAGE;
                // The position this page has in the lap after `v`'s.
                let lap = if phys > v % self.l {
                    v / self.l
                } else {
                    v / self.l + 1
                };
                let pos = lap * self.l + phys;
                if pos <= v || pos >= self.limit {
                    continue;
                }
                if let Some((hdr, dones)) = self.header(page, pos) {
                    let start = i * PAGE as usize;
                    found.push((hdr, dones, chunk.slice(start..start + PAGE as usize)));
                }
            }
            off += len as u64;
        }
        found.sort_by_key(|(h, _, _)| h.vpos);
        Ok(found)
    }
}
