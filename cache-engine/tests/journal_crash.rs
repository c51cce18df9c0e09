//! Deterministic crash simulation of the write journal: random workloads of
//! appends, confirmations, device writes completing in any order, failing,
//! and crashes that drop or tear (at 512-byte sectors) the writes in
//! flight; after every replay, every acknowledged record not durably
//! confirmed is returned exactly once, in order, with its bytes; nothing
//! else appears but whole records that were appended.
//!
//! `JOURNAL_SIM_SEED=n` runs that one case; `JOURNAL_SIM_CASES=n` sets how
//! many cases run (from seed 0). A failing case prints its seed.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use cache_engine::journal::format::LOG_START;
use cache_engine::journal::sim::MemRegion;
use cache_engine::journal::{
    replay, CacheId, Expect, FileRef, Geometry, JournalError, Log, Op, OpKind, WriteKind, WriteReq,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KINDS: [OpKind; 4] = [OpKind::Write, OpKind::SetAttr, OpKind::Create, OpKind::Rename];

/// What the journal promised so far.
#[derive(Default)]
struct Model {
    /// Every record that may be on disk, by sequence (reused sequences
    /// replace what a replay dropped).
    appended: HashMap<u64, Op>,
    /// Acknowledged (or returned by a replay) and not durably confirmed:
    /// must come back.
    required: BTreeSet<u64>,
    /// Confirmed, the confirmation not yet durable: may come back.
    confirming: BTreeSet<u64>,
    /// Durably confirmed: must never come back.
    gone: BTreeSet<u64>,
}

struct Case {
    rng: StdRng,
    expect: Expect,
    dev: MemRegion,
    log: Log,
    flight: Vec<WriteReq>,
    m: Model,
    max_payload: usize,
    stats: Stats,
    last_group: u64,
}

/// What the cases exercised, printed at the end.
#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    replays: u64,
    torn_tails: u64,
    full: u64,
    failed_writes: u64,
    acked: u64,
    /// Group writes placed at a lower offset than the previous one.
    wraps: u64,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.replays += o.replays;
        self.torn_tails += o.torn_tails;
        self.full += o.full;
        self.failed_writes += o.failed_writes;
        self.acked += o.acked;
        self.wraps += o.wraps;
    }
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut rng = StdRng::seed_from_u64(seed);
        let log_len = [128u64 << 10, 256 << 10, 512 << 10][rng.random_range(0..3)];
        let geo = Geometry {
            region_size: LOG_START + log_len,
            cache_id: CacheId(rng.random()),
            shard: rng.random_range(0..8),
        };
        let mut log = Log::format(geo).unwrap();
        let mut dev = MemRegion::new(geo.region_size);
        dev.drive(&mut log);
        let max_payload = [64, 4096, geo.max_payload()][rng.random_range(0..3)];
        Case {
            rng,
            expect: Expect {
                cache_id: geo.cache_id,
                shard: geo.shard,
                region_size: geo.region_size,
            },
            dev,
            log,
            flight: Vec::new(),
            m: Model::default(),
            max_payload,
            stats: Stats::default(),
            last_group: 0,
        }
    }

    fn op(&mut self) -> Op {
        let len = self.rng.random_range(0..=self.max_payload);
        // Random ends on a random fill: distinct enough, and cheap.
        let mut data = vec![self.rng.random::<u8>(); len];
        for at in [0, len.saturating_sub(8)] {
            let tag = self.rng.random::<u64>().to_le_bytes();
            let n = 8.min(len - at);
            data[at..at + n].copy_from_slice(&tag[..n]);
        }
        // Split anywhere between payload and tail, as a write's data is.
        let mut payload = Bytes::from(data);
        let tail = payload.split_off(self.rng.random_range(0..=len));
        Op {
            kind: KINDS[self.rng.random_range(0..KINDS.len())],
            file: FileRef {
                filer: self.rng.random(),
                id: self.rng.random(),
            },
            offset: self.rng.random(),
            payload,
            tail,
        }
    }

    fn step(&mut self) {
        match self.rng.random_range(0..100) {
            0..40 => self.append(),
            40..55 => self.confirm(),
            55..75 => {
                if let Some(w) = self.log.next_write() {
                    if w.kind == WriteKind::Group {
                        self.stats.wraps += u64::from(w.offset < self.last_group);
                        self.last_group = w.offset;
                    }
                    self.flight.push(w);
                }
            }
            75..97 => self.complete(),
            97 => self.fail(),
            98 => self.close(),
            _ => self.crash(),
        }
    }

    fn append(&mut self) {
        let op = self.op();
        match self.log.append(op.clone()) {
            Ok(seq) => {
                self.m.appended.insert(seq, op);
            }
            Err(JournalError::Full { .. }) => self.stats.full += 1,
            Err(JournalError::Failed(_)) => self.crash(),
            Err(e) => panic!("append: {e}"),
        }
    }

    fn confirm(&mut self) {
        let n = self.m.required.len();
        if n == 0 {
            return;
        }
        let seq = *self.m.required.iter().nth(self.rng.random_range(0..n)).unwrap();
        self.log.done(seq).unwrap();
        self.m.required.remove(&seq);
        self.m.confirming.insert(seq);
    }

    fn complete(&mut self) {
        if self.flight.is_empty() {
            return;
        }
        let w = self.flight.remove(self.rng.random_range(0..self.flight.len()));
        self.dev.apply(&w);
        let c = self.log.write_done(w.id, Ok(()));
        assert!(c.failed.is_none());
        self.stats.acked += c.acked.end - c.acked.start;
        for seq in c.acked {
            assert!(
                self.m.appended.contains_key(&seq),
                "acknowledged {seq}, never appended"
            );
            self.m.required.insert(seq);
        }
        for seq in c.dones {
            if self.m.confirming.remove(&seq) {
                self.m.gone.insert(seq);
            }
        }
        if let Some(head) = c.head {
            let before: Vec<u64> = self.m.confirming.range(..head.seq).copied().collect();
            for seq in before {
                self.m.confirming.remove(&seq);
                self.m.gone.insert(seq);
            }
            assert!(
                self.m.required.range(..head.seq).next().is_none(),
                "the head passed a record not confirmed"
            );
        }
    }

    /// A write fails (maybe after reaching the disk in part): its records
    /// and all queued fail, and the journal takes no more until reopened.
    fn fail(&mut self) {
        if self.flight.is_empty() {
            return;
        }
        let w = self.flight.remove(self.rng.random_range(0..self.flight.len()));
        self.tear(&w);
        self.stats.failed_writes += 1;
        let c = self
            .log
            .write_done(w.id, Err(std::io::Error::from_raw_os_error(libc::EIO)));
        if let Some((failed, _)) = c.failed {
            assert!(
                failed.clone().all(|s| !self.m.required.contains(&s)),
                "failed an acknowledged record"
            );
        }
        assert!(matches!(
            self.log
                .append(Op::write(FileRef { filer: 0, id: 0 }, 0, Bytes::new())),
            Err(JournalError::Failed(_))
        ));
        self.crash();
    }

    /// Write none, all, or a random subset of the sectors of `w`.
    fn tear(&mut self, w: &WriteReq) {
        match self.rng.random_range(0..4) {
            0 => {}
            1 => self.dev.apply(w),
            2 => {
                let cut = self.rng.random_range(0..=w.buf.len() / 512);
                self.dev.apply_sectors(w, |i| i < cut);
            }
            _ => {
                let rng = &mut self.rng;
                self.dev.apply_sectors(w, |_| rng.random_bool(0.5));
            }
        }
    }

    /// A clean close (its superblock may be torn by a crash too), then a
    /// replay.
    fn close(&mut self) {
        self.drain_writes();
        if let Some(w) = self.log.close_write() {
            if self.rng.random_bool(0.8) {
                self.dev.apply(&w);
                self.log.write_done(w.id, Ok(()));
            } else {
                self.tear(&w);
            }
        }
        self.replay_and_check();
    }

    fn crash(&mut self) {
        for w in std::mem::take(&mut self.flight) {
            self.tear(&w);
        }
        self.replay_and_check();
    }

    fn replay_and_check(&mut self) {
        self.stats.replays += 1;
        let r = replay(&mut self.dev, self.expect).unwrap_or_else(|e| panic!("replay: {e}"));
        self.stats.torn_tails += u64::from(r.torn_tail.is_some());
        assert!(
            r.corruption.is_empty(),
            "crashes only, yet damage reported: {:?}",
            r.corruption
        );
        let mut last = 0;
        for rec in &r.records {
            assert!(rec.seq > last, "sequence {} out of order or twice", rec.seq);
            last = rec.seq;
            assert!(
                !self.m.gone.contains(&rec.seq),
                "record {} returned after its confirmation was durable",
                rec.seq
            );
            let Some(op) = self.m.appended.get(&rec.seq) else {
                panic!("record {} was never appended", rec.seq);
            };
            assert_eq!(&rec.op, op, "record {} returned with other contents", rec.seq);
        }
        let got: BTreeSet<u64> = r.records.iter().map(|r| r.seq).collect();
        let missing: Vec<&u64> = self.m.required.difference(&got).collect();
        assert!(missing.is_empty(), "acknowledged records lost: {missing:?}");
        // What came back is on disk for good; what did not is gone, and its
        // sequence may be given again.
        self.m.appended.retain(|s, _| got.contains(s));
        assert!(got.iter().all(|s| *s < r.log.next_seq()));
        self.m.required = got;
        self.m.confirming.clear();
        self.log = r.log;
    }

    /// Everything completes; every record is confirmed; then the journal
    /// has room again and a replay returns nothing.
    fn drain(&mut self) {
        for w in std::mem::take(&mut self.flight) {
            self.dev.apply(&w);
            self.log.write_done(w.id, Ok(()));
        }
        let all: Vec<u64> = self.m.required.iter().copied().collect();
        self.dev.drive(&mut self.log);
        for s in all {
            self.log.done(s).unwrap();
        }
        // Dones ride with groups; the head moves with superblocks.
        self.dev.drive(&mut self.log);
        assert_eq!(self.log.outstanding(), 0);
        assert!(!self.log.has_pending(), "confirmations stuck");
        let op = Op::write(
            FileRef { filer: 0, id: 0 },
            0,
            Bytes::from(vec![1; self.max_payload]),
        );
        let s = self
            .log
            .append(op.clone())
            .expect("room once everything is confirmed");
        self.dev.drive(&mut self.log);
        let r = replay(&mut self.dev, self.expect).unwrap();
        assert_eq!(r.records.len(), 1, "only the last record remains");
        assert_eq!((r.records[0].seq, &r.records[0].op), (s, &op));
    }
}

fn run_case(seed: u64) -> Stats {
    let mut c = Case::new(seed);
    let steps = 300;
    for _ in 0..steps {
        c.step();
    }
    c.crash();
    c.drain();
    c.stats
}

#[test]
fn crashes_never_lose_an_acknowledged_record() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match env("JOURNAL_SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env("JOURNAL_SIM_CASES").unwrap_or(2000)).collect(),
    };
    let mut stats = Stats::default();
    for seed in seeds {
        let res = std::panic::catch_unwind(|| run_case(seed));
        match res {
            Ok(s) => stats.add(s),
            Err(e) => {
                eprintln!(
                    "journal crash simulation failed with seed {seed}: rerun with JOURNAL_SIM_SEED={seed}"
                );
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!("{stats:?}");
    assert!(stats.replays > 0 && stats.acked > 0);
}

/// Damage in a log with no crash: random bytes flipped. Replay never
/// panics and never returns a record with other contents; an acknowledged
/// record is missing only inside a reported range, or at the very end of
/// the log (damage there looks like a torn write).
#[test]
fn damage_is_reported_never_a_panic() {
    let cases = std::env::var("JOURNAL_SIM_CASES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(2000)
        / 4;
    for seed in 0..cases {
        let res = std::panic::catch_unwind(|| damage_case(seed));
        if let Err(e) = res {
            eprintln!("journal damage case failed with seed {seed}");
            std::panic::resume_unwind(e);
        }
    }
}

fn damage_case(seed: u64) {
    let mut c = Case::new(seed);
    for _ in 0..200 {
        match c.rng.random_range(0..10) {
            0..6 => c.append(),
            6 => c.confirm(),
            _ => c.drain_writes(),
        }
    }
    c.drain_writes();
    let log_len = c.expect.region_size - LOG_START;
    for _ in 0..c.rng.random_range(1..4) {
        let at = LOG_START + c.rng.random_range(0..log_len);
        c.dev.bytes[at as usize] ^= 1 << c.rng.random_range(0..8);
    }
    let r = replay(&mut c.dev, c.expect).unwrap_or_else(|e| panic!("replay: {e}"));
    let mut last = 0;
    for rec in &r.records {
        assert!(rec.seq > last, "out of order");
        last = rec.seq;
        assert_eq!(
            Some(&rec.op),
            c.m.appended.get(&rec.seq),
            "record {} changed",
            rec.seq
        );
    }
    let got: BTreeSet<u64> = r.records.iter().map(|r| r.seq).collect();
    let reported = |s: u64| r.corruption.iter().any(|c| c.lost.contains(&s));
    for s in c.m.required.difference(&got) {
        assert!(
            reported(*s) || got.range(s..).next().is_none(),
            "acknowledged record {s} silently lost before {:?}",
            got.range(s..).next()
        );
    }
}

impl Case {
    /// Every write the log has ready, completed.
    fn drain_writes(&mut self) {
        while let Some(w) = self.log.next_write() {
            self.flight.push(w);
        }
        while !self.flight.is_empty() {
            self.complete();
            while let Some(w) = self.log.next_write() {
                self.flight.push(w);
            }
        }
    }
}
