//! One file's dirty data under write-behind: what clients wrote that is
//! durable in the journal but not yet on the core filer.
//!
//! It answers three questions. What does a read see (the core filer's bytes
//! up to where the file was cut, with the dirty extents laid over them, at
//! the dirty size)? What goes to the core filer next (one batch per file at
//! a time: cut, the extents in order, then the size)? And which journal
//! records may be trimmed (a record is done once none of its bytes is still
//! needed: written back, or overwritten by a later durable record)?
//!
//! Replaying the records not yet done, in order, over what the core filer
//! holds gives the file as clients last saw it; the tests check that after
//! every step.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

/// One run of dirty bytes, from the record `seq`.
#[derive(Debug, Clone)]
struct Extent {
    data: Bytes,
    seq: u64,
}

/// What to send to the core filer for one file, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    /// Cut the file to this size first: bytes past it were truncated away
    /// and must not show through again.
    pub cut: Option<u64>,
    /// Writes, ascending and not overlapping.
    pub writes: Vec<(u64, Bytes)>,
    /// Set the size to this afterwards, when the writes alone do not make it.
    pub size: Option<u64>,
    /// The file's size once the batch is through.
    end_size: u64,
    /// The last record the batch carries: every record of the file up to
    /// it is on the core filer once the batch is.
    upto: u64,
}

/// A dirty file's state as few records, for compacting the journal.
#[derive(Debug, Clone)]
pub(crate) struct Compacted {
    pub cut: Option<u64>,
    /// (offset, bytes, the record they come from).
    pub extents: Vec<(u64, Bytes, u64)>,
    pub size: u64,
    /// The last record applied when this was taken.
    pub upto: u64,
    /// Batches the core filer confirmed before this was taken.
    batches: u64,
}

/// A file's dirty state.
///
/// Records are applied in journal order (`seq` ascending) once durable.
/// A record is done when none of its bytes is needed any more: a write's
/// bytes once written back or overwritten by a later write or cut; a size
/// change only once written back, since a cut keeps zeroing what lay past
/// it even after the file grew again.
#[derive(Debug)]
pub(crate) struct DirtyFile {
    extents: BTreeMap<u64, Extent>,
    /// Bytes still needed, per write record.
    live: HashMap<u64, u64>,
    /// Size and times records not yet written back.
    attr_records: Vec<u64>,
    /// The size clients see.
    size: u64,
    /// The core filer's size as of the last write-back (or when the file
    /// became dirty).
    filer_size: u64,
    /// Lowest size the file was cut to since the last batch was taken.
    cut: Option<u64>,
    /// The batch with the core filer: its cut and size.
    flight: Option<(Option<u64>, u64)>,
    last_seq: u64,
    /// Batches the core filer confirmed.
    batches_done: u64,
}

impl Batch {
    /// The file's size once the batch is through.
    pub fn end_size(&self) -> u64 {
        self.end_size
    }
}

impl DirtyFile {
    pub fn new(filer_size: u64) -> DirtyFile {
        DirtyFile {
            extents: BTreeMap::new(),
            live: HashMap::new(),
            attr_records: Vec::new(),
            size: filer_size,
            filer_size,
            cut: None,
            flight: None,
            last_seq: 0,
            batches_done: 0,
        }
    }

    /// The size clients see.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Nothing left to write back.
    pub fn is_clean(&self) -> bool {
        self.live.is_empty() && self.attr_records.is_empty()
    }

    /// A batch is with the core filer.
    pub fn in_flight(&self) -> bool {
        self.flight.is_some()
    }

    /// The last record applied.
    pub fn applied_seq(&self) -> u64 {
        self.last_seq
    }

    /// Record `seq` (durable) changed the file's times, which write-back
    /// sets with its batch: needed until then, like a size change.
    pub fn set_times(&mut self, seq: u64) -> Vec<u64> {
        self.applied(seq);
        self.attr_records.push(seq);
        Vec::new()
    }

    /// Bytes still to write back.
    pub fn dirty_bytes(&self) -> u64 {
        self.live.values().sum()
    }

    /// How many leading bytes of the core filer's copy a read may use:
    /// past this they were cut away (or never existed) and read as zeros
    /// where no extent covers them.
    pub fn filer_limit(&self) -> u64 {
        let flight_cut = self.flight.and_then(|(c, _)| c);
        [self.cut, flight_cut]
            .into_iter()
            .flatten()
            .fold(self.filer_size.min(self.size), u64::min)
    }

    fn applied(&mut self, seq: u64) {
        debug_assert!(
            seq > self.last_seq,
            "record {seq} applied after {}",
            self.last_seq
        );
        self.last_seq = self.last_seq.max(seq);
    }

    /// Record `seq` (durable) wrote `data` at `offset`. Returns the records
    /// this one made unneeded, which may be trimmed.
    pub fn write(&mut self, seq: u64, offset: u64, data: Bytes) -> Vec<u64> {
        self.applied(seq);
        let len = data.len() as u64;
        if len == 0 {
            return vec![seq];
        }
        let done = self.remove_range(offset, offset + len, |_| true);
        self.extents.insert(offset, Extent { data, seq });
        self.live.insert(seq, len);
        self.size = self.size.max(offset + len);
        done
    }

    /// Record `seq` (durable) set the size to `size`. Returns the records
    /// this one made unneeded.
    pub fn set_size(&mut self, seq: u64, size: u64) -> Vec<u64> {
        self.applied(seq);
        let mut done = Vec::new();
        if size < self.size {
            done = self.remove_range(size, u64::MAX, |_| true);
            self.cut = Some(self.cut.map_or(size, |c| c.min(size)));
        }
        self.size = size;
        self.attr_records.push(seq);
        done
    }

    /// Drop the parts in `from..to` of the extents `which` picks; the
    /// records left with no bytes needed are returned.
    fn remove_range(&mut self, from: u64, to: u64, which: impl Fn(&Extent) -> bool) -> Vec<u64> {
        let first = self
            .extents
            .range(..from)
            .next_back()
            .filter(|(&s, e)| s + e.data.len() as u64 > from)
            .map(|(&s, _)| s);
        let keys: Vec<u64> = first
            .into_iter()
            .chain(self.extents.range(from..to).map(|(&s, _)| s))
            .filter(|s| which(&self.extents[s]))
            .collect();
        let mut done = Vec::new();
        for start in keys {
            let e = self.extents.remove(&start).expect("key just listed");
            let end = start + e.data.len() as u64;
            let (cut_from, cut_to) = (from.max(start), to.min(end));
            if start < cut_from {
                let keep = e.data.slice(..(cut_from - start) as usize);
                self.extents.insert(
                    start,
                    Extent {
                        data: keep,
                        seq: e.seq,
                    },
                );
            }
            if cut_to < end {
                let keep = e.data.slice((cut_to - start) as usize..);
                self.extents.insert(
                    cut_to,
                    Extent {
                        data: keep,
                        seq: e.seq,
                    },
                );
            }
            done.extend(self.release(e.seq, cut_to - cut_from));
        }
        done
    }

    /// `n` of write record `seq`'s bytes are no longer needed: `Some(seq)`
    /// when that was the last of them.
    fn release(&mut self, seq: u64, n: u64) -> Option<u64> {
        let left = self.live.get_mut(&seq)?;
        debug_assert!(*left >= n, "record {seq} releases more than it holds");
        *left = left.saturating_sub(n);
        if *left == 0 {
            self.live.remove(&seq);
            return Some(seq);
        }
        None
    }

    /// The dirty pieces within `offset..offset + len`, ascending, as
    /// (offset, bytes) to lay over what the core filer holds.
    pub fn overlay(&self, offset: u64, len: u64) -> Vec<(u64, Bytes)> {
        let end = offset.saturating_add(len);
        let before = self
            .extents
            .range(..offset)
            .next_back()
            .filter(|(&s, e)| s + e.data.len() as u64 > offset);
        before
            .into_iter()
            .chain(self.extents.range(offset..end))
            .map(|(&s, e)| {
                let e_end = s + e.data.len() as u64;
                let (from, to) = (s.max(offset), e_end.min(end));
                (from, e.data.slice((from - s) as usize..(to - s) as usize))
            })
            .collect()
    }

    /// The next batch for the core filer: everything dirty now. None while
    /// one is in flight or when there is nothing to send.
    pub fn take_batch(&mut self) -> Option<Batch> {
        if self.flight.is_some() || self.is_clean() {
            return None;
        }
        let cut = self.cut.take();
        self.flight = Some((cut, self.size));
        let writes: Vec<(u64, Bytes)> = self.extents.iter().map(|(&s, e)| (s, e.data.clone())).collect();
        let written_to = writes.last().map_or(0, |(s, d)| s + d.len() as u64);
        let natural = cut.unwrap_or(self.filer_size).max(written_to);
        Some(Batch {
            cut,
            writes,
            size: (natural != self.size).then_some(self.size),
            end_size: self.size,
            upto: self.last_seq,
        })
    }

    /// The core filer has `batch` durably: returns the records no longer
    /// needed, to trim from the journal.
    pub fn batch_done(&mut self, batch: Batch) -> Vec<u64> {
        debug_assert!(self.flight.is_some(), "a batch finished that was never taken");
        self.flight = None;
        self.batches_done += 1;
        self.filer_size = batch.end_size;
        // What is left of records up to the batch was written with it
        // (later writes may have cut into them since, not moved them).
        let mut done = self.remove_range(0, u64::MAX, |e| e.seq <= batch.upto);
        let (sent, kept): (Vec<u64>, Vec<u64>) = self.attr_records.iter().partition(|&&s| s <= batch.upto);
        self.attr_records = kept;
        done.extend(sent);
        done
    }

    /// The oldest record this file still needs.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.live.keys().chain(self.attr_records.iter()).min().copied()
    }

    /// The file as few records: its cut, each extent, its size (times are
    /// the caller's), for [`DirtyFile::rebase`] once those are journaled.
    pub fn compacted(&self) -> Compacted {
        // A cut a batch in flight carries counts too: the batch may fail.
        let flight_cut = self.flight.and_then(|(c, _)| c);
        let cut = [self.cut, flight_cut].into_iter().flatten().min();
        Compacted {
            cut,
            extents: self
                .extents
                .iter()
                .map(|(&s, e)| (s, e.data.clone(), e.seq))
                .collect(),
            size: self.size,
            upto: self.last_seq,
            batches: self.batches_done,
        }
    }

    /// The records of `c` are durable as `new` (one per extent, in order)
    /// and `attrs` (its cut, size and times): they stand for every record
    /// up to `c.upto`, which are returned, to confirm. Records applied
    /// since `c` was taken stay as they are.
    pub fn rebase(&mut self, c: &Compacted, new: &[u64], attrs: &[u64]) -> Vec<u64> {
        debug_assert_eq!(c.extents.len(), new.len());
        if c.batches != self.batches_done {
            // A batch in flight when `c` was taken reached the core filer
            // meanwhile and retired what it carried: the new records, its
            // cut included, would say again only what the filer now has.
            let mut spare: Vec<u64> = new.iter().chain(attrs).copied().collect();
            spare.sort_unstable();
            return spare;
        }
        for ((start, data, old), &seq) in c.extents.iter().zip(new) {
            let end = start + data.len() as u64;
            // What is left of the old record there, later writes aside.
            let first = self.extents.range(..*start).next_back().map(|(&s, _)| s);
            let keys: Vec<u64> = first
                .into_iter()
                .chain(self.extents.range(*start..end).map(|(&s, _)| s))
                .collect();
            for k in keys {
                if let Some(e) = self.extents.get_mut(&k) {
                    if e.seq == *old && k < end && k + e.data.len() as u64 > *start {
                        e.seq = seq;
                    }
                }
            }
        }
        let mut live: HashMap<u64, u64> = HashMap::new();
        for e in self.extents.values() {
            *live.entry(e.seq).or_default() += e.data.len() as u64;
        }
        let mut done: Vec<u64> = self
            .live
            .keys()
            .filter(|s| !live.contains_key(s))
            .copied()
            .collect();
        // A new record whose bytes later writes replaced meanwhile.
        done.extend(new.iter().filter(|s| !live.contains_key(s)));
        self.live = live;
        let (old, kept): (Vec<u64>, Vec<u64>) = self.attr_records.iter().partition(|&&s| s <= c.upto);
        done.extend(old);
        self.attr_records = attrs.iter().copied().chain(kept).collect();
        // The new records are the file's now: a batch taken later covers them.
        let newest = new.iter().chain(attrs).max().copied().unwrap_or(0);
        self.last_seq = self.last_seq.max(newest);
        done.sort_unstable();
        done
    }

    /// Every record still needed, to confirm when the file itself is gone.
    pub fn discard(self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self.live.into_keys().chain(self.attr_records).collect();
        seqs.sort_unstable();
        seqs
    }

    /// The core filer refused or did not answer the batch: everything stays
    /// dirty, to be sent again, the cut included.
    pub fn batch_failed(&mut self) {
        if let Some((Some(c), _)) = self.flight.take() {
            self.cut = Some(self.cut.map_or(c, |n| n.min(c)));
        }
    }
}

#[cfg(test)]
mod tests;
