//! The dirty state against a model: a byte vector for the file as clients
//! see it, another for the core filer, and the journal's records. After
//! every step, a read through the dirty state and a replay of the records
//! not done over the core filer (as a crash would leave it, a batch sent in
//! part included) must both give the model.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    Write {
        offset: u64,
        len: u64,
    },
    SetSize(u64),
    Take,
    Done,
    /// The batch failed after its first `n` steps reached the core filer.
    Fail(usize),
    /// The file's state journaled again as few records (not while a batch
    /// is out); they become durable, and replace the old ones, at `Rebase`.
    Compact,
    Rebase,
}

#[derive(Debug, Clone)]
enum Record {
    Write(u64, Vec<u8>),
    Size(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u64..300, 1u64..120).prop_map(|(offset, len)| Step::Write { offset, len }),
        2 => (0u64..320).prop_map(Step::SetSize),
        2 => Just(Step::Take),
        2 => Just(Step::Done),
        1 => (0usize..8).prop_map(Step::Fail),
        1 => Just(Step::Compact),
        1 => Just(Step::Rebase),
    ]
}

fn resize(v: &mut Vec<u8>, size: u64) {
    v.resize(size as usize, 0);
}

fn apply(v: &mut Vec<u8>, r: &Record) {
    match r {
        Record::Write(off, data) => {
            let end = *off as usize + data.len();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[*off as usize..end].copy_from_slice(data);
        }
        Record::Size(s) => resize(v, *s),
    }
}

/// The batch's steps, as the core filer sees them one after another.
fn batch_steps(b: &Batch) -> Vec<Record> {
    let mut out = Vec::new();
    out.extend(b.cut.map(Record::Size));
    out.extend(b.writes.iter().map(|(o, d)| Record::Write(*o, d.to_vec())));
    out.extend(b.size.map(Record::Size));
    out
}

/// What a read sees: the core filer's bytes up to the limit, zeros past
/// it, the dirty extents over them, at the dirty size.
fn read_view(d: &DirtyFile, filer: &[u8]) -> Vec<u8> {
    let size = d.size() as usize;
    let limit = (d.filer_limit() as usize).min(filer.len());
    let mut v = vec![0u8; size];
    let n = limit.min(size);
    v[..n].copy_from_slice(&filer[..n]);
    for (off, b) in d.overlay(0, size as u64) {
        v[off as usize..off as usize + b.len()].copy_from_slice(&b);
    }
    v
}

struct World {
    d: DirtyFile,
    model: Vec<u8>,
    filer: Vec<u8>,
    records: Vec<(u64, Record)>,
    done: BTreeSet<u64>,
    batch: Option<Batch>,
    /// A compaction journaled, not yet rebased: what was taken, its write
    /// records (one per extent) and its size records.
    compacting: Option<(Compacted, Vec<u64>, Vec<u64>)>,
    seq: u64,
}

impl World {
    fn new(initial: usize) -> World {
        let filer: Vec<u8> = (0..initial).map(|i| (i % 251) as u8 | 1).collect();
        World {
            d: DirtyFile::new(initial as u64),
            model: filer.clone(),
            filer,
            records: Vec::new(),
            done: BTreeSet::new(),
            batch: None,
            compacting: None,
            seq: 0,
        }
    }

    fn retire(&mut self, seqs: Vec<u64>) {
        for s in seqs {
            assert!(s <= self.seq, "record {s} done before it was made");
            assert!(self.done.insert(s), "record {s} done twice");
        }
    }

    fn run(&mut self, s: &Step) {
        match *s {
            Step::Write { offset, len } => {
                self.seq += 1;
                let data: Vec<u8> = (0..len)
                    .map(|i| (self.seq as u8).wrapping_mul(31) ^ i as u8)
                    .collect();
                let r = Record::Write(offset, data.clone());
                apply(&mut self.model, &r);
                self.records.push((self.seq, r));
                let done = self.d.write(self.seq, offset, Bytes::from(data));
                self.retire(done);
            }
            Step::SetSize(size) => {
                self.seq += 1;
                let r = Record::Size(size);
                apply(&mut self.model, &r);
                self.records.push((self.seq, r));
                let done = self.d.set_size(self.seq, size);
                self.retire(done);
            }
            Step::Take if self.compacting.is_some() => {}
            Step::Take => {
                if self.batch.is_none() {
                    self.batch = self.d.take_batch();
                } else {
                    assert!(self.d.take_batch().is_none(), "two batches in flight");
                }
            }
            Step::Done => {
                if let Some(b) = self.batch.take() {
                    for r in batch_steps(&b) {
                        apply(&mut self.filer, &r);
                    }
                    let done = self.d.batch_done(b);
                    self.retire(done);
                }
            }
            Step::Compact => {
                if self.compacting.is_none() && !self.d.is_clean() {
                    let c = self.d.compacted();
                    let mut attrs = Vec::new();
                    if let Some(cut) = c.cut {
                        self.seq += 1;
                        self.records.push((self.seq, Record::Size(cut)));
                        attrs.push(self.seq);
                    }
                    let mut writes = Vec::new();
                    for (off, data, _) in &c.extents {
                        self.seq += 1;
                        self.records.push((self.seq, Record::Write(*off, data.to_vec())));
                        writes.push(self.seq);
                    }
                    self.seq += 1;
                    self.records.push((self.seq, Record::Size(c.size)));
                    attrs.push(self.seq);
                    self.compacting = Some((c, writes, attrs));
                }
            }
            Step::Rebase => {
                if let Some((c, writes, attrs)) = self.compacting.take() {
                    let done = self.d.rebase(&c, &writes, &attrs);
                    self.retire(done);
                }
            }
            Step::Fail(n) => {
                if let Some(b) = self.batch.take() {
                    for r in batch_steps(&b).iter().take(n) {
                        apply(&mut self.filer, r);
                    }
                    self.d.batch_failed();
                }
            }
        }
    }

    fn replay(&self, mut filer: Vec<u8>) -> Vec<u8> {
        for (seq, r) in &self.records {
            if !self.done.contains(seq) {
                apply(&mut filer, r);
            }
        }
        filer
    }

    fn check(&self) {
        assert_eq!(read_view(&self.d, &self.filer), self.model, "read view");
        assert_eq!(self.d.size(), self.model.len() as u64);
        // A crash now, the batch in flight having reached the core filer
        // in part or whole.
        let steps = self.batch.as_ref().map(batch_steps).unwrap_or_default();
        for k in 0..=steps.len() {
            let mut filer = self.filer.clone();
            for r in &steps[..k] {
                apply(&mut filer, r);
            }
            assert_eq!(
                self.replay(filer.clone()),
                self.model,
                "replay after {k} batch steps"
            );
            assert_eq!(
                read_view(&self.d, &filer),
                self.model,
                "read during the batch, {k} steps in"
            );
        }
        if self.d.is_clean() {
            assert_eq!(self.filer, self.model, "clean but the core filer differs");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reads_and_replay_after_a_crash_always_give_what_clients_wrote(
        initial in 0usize..200,
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let mut w = World::new(initial);
        w.check();
        for s in &steps {
            w.run(s);
            w.check();
        }
        // Drained: the core filer holds the model and every record is done.
        w.run(&Step::Rebase);
        w.run(&Step::Done);
        while let Some(b) = w.d.take_batch() {
            w.batch = Some(b);
            w.run(&Step::Done);
            w.check();
        }
        prop_assert!(w.d.is_clean());
        prop_assert_eq!(&w.filer, &w.model);
        prop_assert_eq!(w.done.len() as u64, w.seq);
    }
}

#[test]
fn an_overwrite_retires_the_record_it_replaces_whole() {
    let mut d = DirtyFile::new(0);
    assert!(d.write(1, 0, Bytes::from_static(b"aaaa")).is_empty());
    assert_eq!(d.write(2, 0, Bytes::from_static(b"bbbbbb")), vec![1]);
    assert_eq!(d.dirty_bytes(), 6);
}

#[test]
fn a_cut_stays_needed_after_the_file_grows_again() {
    let mut d = DirtyFile::new(100);
    assert!(d.set_size(1, 10).is_empty());
    assert!(d.set_size(2, 50).is_empty());
    assert_eq!(d.filer_limit(), 10);
    let b = d.take_batch().unwrap();
    assert_eq!((b.cut, b.size), (Some(10), Some(50)));
    assert_eq!(d.batch_done(b), vec![1, 2]);
    assert!(d.is_clean());
}

#[test]
fn writes_made_while_a_batch_is_out_stay_dirty() {
    let mut d = DirtyFile::new(0);
    d.write(1, 0, Bytes::from_static(b"aaaa"));
    let b = d.take_batch().unwrap();
    assert!(d.take_batch().is_none());
    d.write(2, 2, Bytes::from_static(b"bb"));
    assert_eq!(d.batch_done(b), vec![1]);
    assert_eq!(d.overlay(0, 4), vec![(2, Bytes::from_static(b"bb"))]);
    assert!(!d.is_clean());
}
