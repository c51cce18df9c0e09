//! The journal's state machine, with no I/O: records are queued by
//! [`Log::append`], handed out as group writes by [`Log::next_write`] and
//! acknowledged by [`Log::write_done`]; [`Log::done`] confirms a record's
//! write-back so its space can be reclaimed.
//!
//! Up to [`MAX_IN_FLIGHT`] group writes are in flight at once; appends made
//! meanwhile queue, and the next group carries all of them (group commit).
//! Groups may complete in any order, but a group is acknowledged only once
//! every group before it is: acknowledgements go in sequence order. Each
//! group header names the sequence below which everything was acknowledged
//! when it was made; replay tells by it whether a damaged group had been
//! acknowledged (damage) or was in flight at a crash (a torn tail). A
//! superblock write (advancing the head) may be in flight beside them.
//!
//! Confirmations become durable two ways: every group header lists the
//! sequences confirmed since the previous group (replay drops those
//! records), and the superblock's head moves past the oldest record still
//! needed (replay starts there). Space is reused only behind the head of the
//! last superblock that reached the disk, so a record not confirmed is never
//! overwritten, and neither is anything a replay would read before it.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::ops::Range;

use crate::rt::aligned::{align_up, AlignedBuf, ALIGN};

use super::format::{
    encode_group, header_size, record_size, Geometry, GroupHeader, Head, Op, Superblock, FORMAT_VERSION,
    LOG_START, MAX_DONES, PAGE,
};
use super::JournalError;

/// Group writes in flight at once at most.
pub const MAX_IN_FLIGHT: usize = 4;

/// What a write is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Group,
    Superblock,
    /// Zeroes the header of a group a replay dropped, which lay beyond the
    /// end of the log: before the log grows over it.
    Erase,
}

/// Which write finished (for [`Log::write_done`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteId {
    pub kind: WriteKind,
    n: u64,
}

/// A device write to make: `buf` at byte `offset` of the region (both
/// aligned to 4 KiB). Report its result with [`Log::write_done`].
#[derive(Debug)]
pub struct WriteReq {
    pub kind: WriteKind,
    pub id: WriteId,
    pub offset: u64,
    pub buf: AlignedBuf,
}

/// A group write in flight.
#[derive(Debug)]
struct Flight {
    n: u64,
    end_seq: u64,
    dones: Vec<u64>,
    done: bool,
}

/// What a finished write changed.
#[derive(Debug, Default)]
pub struct Completion {
    /// Records now durable: acknowledge them.
    pub acked: Range<u64>,
    /// Confirmations now durable (replay will not return these records).
    pub dones: Vec<u64>,
    /// The head now durable: every record before `head.seq` is confirmed.
    pub head: Option<Head>,
    /// Records that will never be acknowledged, and why.
    pub failed: Option<(Range<u64>, JournalError)>,
}

/// A group written or being written that may hold records not confirmed.
#[derive(Clone, Debug)]
pub(super) struct GroupMeta {
    /// Where the log before it ended (replay reaches it from there).
    pub chain: u64,
    pub first_seq: u64,
    pub count: u32,
    /// Its records not yet confirmed.
    pub undone: u32,
    pub durable: bool,
}

/// Where a replayed log continues.
pub(super) struct Resume {
    /// The new epoch.
    pub epoch: u64,
    /// Of the superblock read.
    pub generation: u64,
    pub durable_head: Head,
    /// Groups holding the records in `undone`, with their counts set.
    pub groups: VecDeque<GroupMeta>,
    pub undone: BTreeSet<u64>,
    pub tail_end: u64,
    pub next_seq: u64,
    /// Positions of group headers beyond the end of the log, to zero first.
    pub erase: Vec<u64>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Log {
    geo: Geometry,
    epoch: u64,
    /// Generation of the last superblock written (or read).
    generation: u64,
    durable_head: Head,
    sb_flight: Option<(u64, Head)>,
    /// A superblock (new epoch, or the format) must reach the disk before
    /// any group does.
    sb_first: bool,
    groups: VecDeque<GroupMeta>,
    /// Group writes in flight, oldest first.
    flight: VecDeque<Flight>,
    next_write_id: u64,
    /// Every record before this one is acknowledged.
    acked_end: u64,
    /// Group headers to zero before any group is written, and how many of
    /// those writes are in flight.
    erase: Vec<u64>,
    erasing: usize,
    queue: VecDeque<(u64, Op)>,
    queued_bytes: u64,
    next_seq: u64,
    /// End of the last group handed out: the next one chains from here.
    tail_end: u64,
    undone: BTreeSet<u64>,
    pending_dones: Vec<u64>,
    poisoned: Option<JournalError>,
    /// Group and superblock writes completed.
    groups_written: u64,
    superblocks_written: u64,
    /// Buffers of written groups, for the next groups (see [`Log::recycle`]).
    spare: Vec<AlignedBuf>,
}

impl Log {
    /// A new, empty journal. Its first write formats the region (both
    /// superblock copies); nothing else is written before that completes.
    pub fn format(geo: Geometry) -> Result<Log, JournalError> {
        geo.check()?;
        let head = Head { pos: 0, seq: 1 };
        Ok(Log::resume(
            geo,
            Resume {
                epoch: 0,
                generation: 0,
                durable_head: head,
                groups: VecDeque::new(),
                undone: BTreeSet::new(),
                tail_end: 0,
                next_seq: 1,
                erase: Vec::new(),
            },
        ))
    }

    /// Continue after a replay (see `replay`).
    pub(super) fn resume(geo: Geometry, r: Resume) -> Log {
        let mut log = Log {
            geo,
            epoch: r.epoch,
            generation: r.generation,
            durable_head: r.durable_head,
            sb_flight: None,
            sb_first: true,
            groups: r.groups,
            flight: VecDeque::new(),
            next_write_id: 0,
            acked_end: r.next_seq,
            erase: r.erase,
            erasing: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_seq: r.next_seq,
            tail_end: r.tail_end,
            undone: r.undone,
            pending_dones: Vec::new(),
            poisoned: None,
            groups_written: 0,
            superblocks_written: 0,
            spare: Vec::new(),
        };
        log.trim();
        log
    }

    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Sequence the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Records appended and not yet confirmed.
    pub fn outstanding(&self) -> usize {
        self.undone.len()
    }

    /// Log bytes between the head and the end of what is queued.
    /// The oldest record not confirmed: what keeps the log from reusing
    /// the space after it.
    pub fn oldest_undone(&self) -> Option<u64> {
        self.undone.first().copied()
    }

    pub fn used_bytes(&self) -> u64 {
        self.tail_end + self.queued_bytes - self.mem_head().pos
    }

    /// Group and superblock writes completed since open.
    pub fn writes(&self) -> (u64, u64) {
        (self.groups_written, self.superblocks_written)
    }

    /// Why the journal refuses appends, if a write failed.
    pub fn failed(&self) -> Option<&JournalError> {
        self.poisoned.as_ref()
    }

    /// Group writes in flight.
    pub fn groups_in_flight(&self) -> usize {
        self.flight.len()
    }

    /// Whether anything waits to be written (records, confirmations, or
    /// headers to erase).
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty() || !self.pending_dones.is_empty() || !self.erase.is_empty()
    }

    /// Queue a record; it is durable once a `write_done` acknowledges its
    /// sequence. Refused when the journal is full ([`JournalError::Full`]:
    /// retry once write-back confirmed older records), the payload too large,
    /// or after a failed write.
    pub fn append(&mut self, op: Op) -> Result<u64, JournalError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let len = op.len();
        let max = self.geo.max_payload();
        if len > max {
            return Err(JournalError::TooLarge { len, max });
        }
        // Room for this record and the queue, reckoned high so that what is
        // accepted here always finds room when its turn comes: every group
        // but the last is at least half full (no record fills more than
        // half a group), a group costs at most a page of header and a page
        // of padding, a wrap wastes less than a record and a page, and a
        // page is kept for confirmations.
        let rs = (record_size(len) + 8) as u64;
        let bytes = self.queued_bytes + rs;
        let half = self.geo.group_max() as u64 / 2;
        let groups = bytes / half + 2;
        let slack = groups * 2 * PAGE + half + 3 * PAGE;
        let head = self.mem_head().pos;
        let need = self.tail_end + bytes + slack - head;
        if need > self.geo.log_len() {
            return Err(JournalError::Full {
                used: self.tail_end + self.queued_bytes - head,
                size: self.geo.log_len(),
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back((seq, op));
        self.queued_bytes += rs;
        self.undone.insert(seq);
        Ok(seq)
    }

    /// Confirm that record `seq` was written back: it is not returned by a
    /// replay once this confirmation is durable (it rides with the next
    /// group write), and its space is reused once every older record is
    /// confirmed too.
    pub fn done(&mut self, seq: u64) -> Result<(), JournalError> {
        if !self.undone.remove(&seq) {
            return Err(JournalError::UnknownSeq(seq));
        }
        if let Some(g) = self.group_of(seq) {
            g.undone -= 1;
        }
        self.pending_dones.push(seq);
        self.trim();
        Ok(())
    }

    fn group_of(&mut self, seq: u64) -> Option<&mut GroupMeta> {
        let i = self
            .groups
            .partition_point(|g| g.first_seq + u64::from(g.count) <= seq);
        self.groups
            .get_mut(i)
            .filter(|g| g.first_seq <= seq && seq < g.first_seq + u64::from(g.count))
    }

    fn trim(&mut self) {
        while self.groups.front().is_some_and(|g| g.durable && g.undone == 0) {
            self.groups.pop_front();
        }
    }

    /// Where a replay would have to start to find every record not
    /// confirmed.
    fn mem_head(&self) -> Head {
        if let Some(g) = self.groups.iter().find(|g| g.undone > 0) {
            return Head {
                pos: g.chain,
                seq: g.first_seq,
            };
        }
        Head {
            pos: self.tail_end,
            seq: self.queue.front().map_or(self.next_seq, |(s, _)| *s),
        }
    }

    /// The next write to make, if any: a superblock when the head must
    /// advance (or the epoch is new), else a group of everything queued.
    pub fn next_write(&mut self) -> Option<WriteReq> {
        if self.poisoned.is_some() {
            return None;
        }
        let plan = self.plan();
        let head = self.mem_head();
        if self.sb_flight.is_none() {
            let blocked = plan.as_ref().is_some_and(|p| !self.fits(p.end));
            let behind = head.pos - self.durable_head.pos;
            if self.sb_first || (behind > 0 && (blocked || behind >= self.geo.log_len() / 4)) {
                return Some(self.superblock_write(head, None));
            }
        }
        if let Some(pos) = self.erase.pop() {
            self.erasing += 1;
            return Some(WriteReq {
                kind: WriteKind::Erase,
                id: self.write_id(WriteKind::Erase),
                offset: LOG_START + pos % self.geo.log_len(),
                buf: AlignedBuf::zeroed(ALIGN),
            });
        }
        if self.sb_first || self.erasing > 0 || self.flight.len() >= MAX_IN_FLIGHT {
            return None;
        }
        let plan = plan.filter(|p| self.fits(p.end))?;
        Some(self.seal(plan))
    }

    fn write_id(&mut self, kind: WriteKind) -> WriteId {
        self.next_write_id += 1;
        WriteId {
            kind,
            n: self.next_write_id,
        }
    }

    fn fits(&self, end: u64) -> bool {
        end <= self.durable_head.pos + self.geo.log_len()
    }

    /// Where the next group would go and what it would hold.
    fn plan(&self) -> Option<Plan> {
        if self.queue.is_empty() && self.pending_dones.is_empty() {
            return None;
        }
        let ndones = self.pending_dones.len().min(MAX_DONES);
        let hlen = header_size(ndones);
        let l = self.geo.log_len();
        let mut pos = self.tail_end;
        let mut lap_end = (pos / l + 1) * l;
        let first = self.queue.front().map_or(0, |(_, op)| record_size(op.len()));
        if pos + align_up(hlen + first) as u64 > lap_end {
            pos = lap_end;
            lap_end += l;
        }
        let mut size = hlen;
        let mut count = 0;
        for (_, op) in &self.queue {
            let rs = record_size(op.len());
            if count > 0 && (size + rs > self.geo.group_max() || pos + (size + rs) as u64 > lap_end) {
                break;
            }
            size += rs;
            count += 1;
        }
        Some(Plan {
            pos,
            end: pos + align_up(size) as u64,
            count,
            ndones,
        })
    }

    fn seal(&mut self, p: Plan) -> WriteReq {
        let first_seq = self.queue.front().map_or(self.next_seq, |(s, _)| *s);
        let dones: Vec<u64> = self.pending_dones.drain(..p.ndones).collect();
        let hdr = GroupHeader {
            cache_id: self.geo.cache_id,
            shard: self.geo.shard,
            epoch: self.epoch,
            vpos: p.pos,
            prev_end: self.tail_end,
            first_seq,
            acked_through: self.acked_end,
            count: 0,
            ndones: 0,
            byte_len: 0,
        };
        let buf = encode_group(
            hdr,
            &dones,
            self.queue.iter().take(p.count).map(|(s, op)| (*s, op)),
            Some(
                self.spare
                    .pop()
                    .unwrap_or_else(|| AlignedBuf::with_capacity(self.geo.group_max())),
            ),
        );
        let mut undone = 0;
        for (seq, op) in self.queue.drain(..p.count) {
            self.queued_bytes -= (record_size(op.len()) + 8) as u64;
            undone += u32::from(self.undone.contains(&seq));
        }
        self.groups.push_back(GroupMeta {
            chain: self.tail_end,
            first_seq,
            count: p.count as u32,
            undone,
            durable: false,
        });
        self.tail_end = p.end;
        let id = self.write_id(WriteKind::Group);
        self.flight.push_back(Flight {
            n: id.n,
            end_seq: first_seq + p.count as u64,
            dones,
            done: false,
        });
        WriteReq {
            kind: WriteKind::Group,
            id,
            offset: LOG_START + p.pos % self.geo.log_len(),
            buf,
        }
    }

    /// For a clean close, once nothing is pending or in flight: a
    /// superblock naming where the log ends, so that the next open need not
    /// read the log past its end. Nothing may be appended after it.
    pub fn close_write(&mut self) -> Option<WriteReq> {
        let idle =
            !self.has_pending() && self.flight.is_empty() && self.sb_flight.is_none() && self.erasing == 0;
        if !idle || self.poisoned.is_some() || self.sb_first {
            return None;
        }
        let tail = Head {
            pos: self.tail_end,
            seq: self.next_seq,
        };
        self.poisoned = Some(JournalError::Closed);
        Some(self.superblock_write(self.mem_head(), Some(tail)))
    }

    fn superblock_write(&mut self, head: Head, tail: Option<Head>) -> WriteReq {
        let generation = self.generation + 1;
        let sb = Superblock {
            version: FORMAT_VERSION,
            shard: self.geo.shard,
            cache_id: self.geo.cache_id,
            epoch: self.epoch,
            region_size: self.geo.region_size,
            head,
            generation,
            tail,
        };
        self.sb_flight = Some((generation, head));
        // Formatting writes both copies at once; later, each write goes to
        // the copy not holding the current superblock.
        let (offset, copies) = if self.generation == 0 {
            (0, 2)
        } else {
            (Superblock::slot_offset(generation), 1)
        };
        let mut buf = AlignedBuf::zeroed(copies * ALIGN);
        for page in buf.as_mut_slice().chunks_mut(ALIGN) {
            sb.encode(page);
        }
        WriteReq {
            kind: WriteKind::Superblock,
            id: self.write_id(WriteKind::Superblock),
            offset,
            buf,
        }
    }

    /// A write from [`next_write`](Self::next_write) finished. A failed
    /// write fails every record not yet acknowledged, and the journal
    /// refuses appends until it is opened again (replay): a device that
    /// failed a write is not trusted with the next one in its place.
    /// Give back the buffer of a finished group write, so that a later group
    /// reuses its pages instead of faulting in fresh (zeroed) ones.
    pub fn recycle(&mut self, buf: AlignedBuf) {
        if self.spare.len() <= MAX_IN_FLIGHT && buf.capacity() >= self.geo.group_max() {
            self.spare.push(buf);
        }
    }

    pub fn write_done(&mut self, id: WriteId, result: io::Result<()>) -> Completion {
        let mut c = Completion {
            acked: self.acked_end..self.acked_end,
            ..Completion::default()
        };
        if self.poisoned.is_some() {
            // Whatever completes now was already reported failed.
            return c;
        }
        if let Err(e) = result {
            let err = JournalError::Failed(format!("{:?} write: {e}", id.kind));
            self.queue.clear();
            self.queued_bytes = 0;
            self.poisoned = Some(err.clone());
            c.failed = Some((self.acked_end..self.next_seq, err));
            return c;
        }
        match id.kind {
            WriteKind::Group => {
                if let Some(f) = self.flight.iter_mut().find(|f| f.n == id.n) {
                    f.done = true;
                }
                while let Some(f) = self.flight.pop_front() {
                    if !f.done {
                        self.flight.push_front(f);
                        break;
                    }
                    c.acked.end = f.end_seq;
                    c.dones.extend(f.dones);
                    self.groups_written += 1;
                    if let Some(g) = self.groups.iter_mut().find(|g| !g.durable) {
                        g.durable = true;
                    }
                }
                self.acked_end = c.acked.end;
                self.trim();
            }
            WriteKind::Superblock => {
                if let Some((generation, head)) = self.sb_flight.take() {
                    self.generation = generation;
                    self.durable_head = head;
                    self.sb_first = false;
                    self.superblocks_written += 1;
                    c.head = Some(head);
                }
            }
            WriteKind::Erase => self.erasing = self.erasing.saturating_sub(1),
        }
        c
    }
}

struct Plan {
    pos: u64,
    end: u64,
    count: usize,
    ndones: usize,
}
