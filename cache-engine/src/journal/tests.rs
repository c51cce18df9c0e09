//! Unit tests of the journal: group commit, replay, torn tails, damage in
//! the middle of the log, reclaim and wrap-around, a full log, foreign
//! journals, torn superblocks; and the compio driver over a real file.

use bytes::Bytes;

use super::format::{LOG_START, PAGE};
use super::sim::MemRegion;
use super::*;

const SIZE: u64 = LOG_START + (8 << 20);

fn geo() -> Geometry {
    Geometry {
        region_size: SIZE,
        cache_id: CacheId([7; 16]),
        shard: 3,
    }
}

fn expect() -> Expect {
    Expect {
        cache_id: CacheId([7; 16]),
        shard: 3,
        region_size: SIZE,
    }
}

fn op(n: u64, len: usize) -> Op {
    let data: Vec<u8> = (0..len).map(|i| (n as usize * 31 + i) as u8).collect();
    Op::write(FileRef { filer: 1, id: n % 5 }, n * 4096, Bytes::from(data))
}

fn fresh() -> (Log, MemRegion) {
    let mut log = Log::format(geo()).unwrap();
    let mut dev = MemRegion::new(SIZE);
    dev.drive(&mut log);
    (log, dev)
}

fn seqs(r: &Replayed) -> Vec<u64> {
    r.records.iter().map(|r| r.seq).collect()
}

#[test]
fn concurrent_appends_share_one_write() {
    let (mut log, mut dev) = fresh();
    // Groups go out at once until MAX_IN_FLIGHT are in flight.
    let mut writes = Vec::new();
    let mut first = Vec::new();
    for n in 0..MAX_IN_FLIGHT as u64 {
        first.push(log.append(op(n, 4096)).unwrap());
        writes.push(log.next_write().unwrap());
        assert_eq!(writes[n as usize].kind, WriteKind::Group);
    }
    // Then ten more queue, and nothing else goes out.
    let more: Vec<u64> = (0..10).map(|n| log.append(op(100 + n, 4096)).unwrap()).collect();
    assert!(log.next_write().is_none());
    // The last group completes first: nothing is acknowledged before the
    // groups ahead of it are.
    let last = writes.pop().unwrap();
    dev.apply(&last);
    assert!(log.write_done(last.id, Ok(())).acked.is_empty());
    let mut acked = Vec::new();
    for w in writes {
        dev.apply(&w);
        acked.extend(log.write_done(w.id, Ok(())).acked);
    }
    assert_eq!(acked, first, "in order, the last one with those ahead of it");
    // A slot is free: all ten go in one write.
    let w = log.next_write().unwrap();
    assert!(log.next_write().is_none());
    dev.apply(&w);
    assert_eq!(log.write_done(w.id, Ok(())).acked, more[0]..more[9] + 1);
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), [&first[..], &more[..]].concat());
}

#[test]
fn replay_returns_exactly_the_records_not_done_in_order() {
    let (mut log, mut dev) = fresh();
    let all: Vec<u64> = (0..40)
        .map(|n| log.append(op(n, 100 + n as usize * 37)).unwrap())
        .collect();
    dev.drive(&mut log);
    for s in all.iter().filter(|s| *s % 3 == 0) {
        log.done(*s).unwrap();
    }
    assert_eq!(
        log.done(all[2]),
        Err(JournalError::UnknownSeq(all[2])),
        "done twice"
    );
    let c = dev.drive(&mut log);
    assert!(c.iter().any(|c| !c.dones.is_empty()), "confirmations written");
    let r = replay(&mut dev, expect()).unwrap();
    let want: Vec<u64> = all.iter().copied().filter(|s| s % 3 != 0).collect();
    assert_eq!(seqs(&r), want);
    for rec in &r.records {
        let n = all.iter().position(|s| *s == rec.seq).unwrap() as u64;
        assert_eq!(rec.op, op(n, 100 + n as usize * 37));
    }
    assert!(r.corruption.is_empty() && r.torn_tail.is_none());
    // The replayed log continues the sequence and its writes replay too.
    let mut log = r.log;
    dev.drive(&mut log);
    let next = log.append(op(99, 10)).unwrap();
    assert_eq!(next, all[39] + 1);
    dev.drive(&mut log);
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r).last(), Some(&next));
    assert_eq!(r.records.len(), want.len() + 1);
}

#[test]
fn torn_tail_is_dropped() {
    let (mut log, mut dev) = fresh();
    let kept: Vec<u64> = (0..5).map(|n| log.append(op(n, 3000)).unwrap()).collect();
    dev.drive(&mut log);
    for n in 5..10 {
        log.append(op(n, 3000)).unwrap();
    }
    let w = log.next_write().unwrap();
    // Only the sector with the group header reached the disk.
    dev.apply_sectors(&w, |i| i == 0);
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), kept);
    assert!(r.corruption.is_empty());
    assert_eq!(r.torn_tail.map(|t| t.seqs), Some(kept[4] + 1..kept[4] + 6));
    // The log continues over the torn group, and a second replay agrees.
    let mut log = r.log;
    let s = log.append(op(50, 10)).unwrap();
    assert_eq!(s, kept[4] + 1);
    dev.drive(&mut log);
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), [&kept[..], &[s]].concat());
    assert!(r.torn_tail.is_none() && r.corruption.is_empty());
}

/// Three groups of `n` records each; the physical offset of each group.
fn three_groups(log: &mut Log, dev: &mut MemRegion, n: u64) -> Vec<u64> {
    let mut at = Vec::new();
    for g in 0..3 {
        for i in 0..n {
            log.append(op(g * n + i, 2000)).unwrap();
        }
        let w = log.next_write().unwrap();
        at.push(w.offset);
        dev.apply(&w);
        log.write_done(w.id, Ok(()));
    }
    at
}

#[test]
fn a_group_in_flight_beside_a_torn_one_is_dropped_and_erased() {
    let (mut log, mut dev) = fresh();
    let a = log.append(op(0, 3000)).unwrap();
    dev.drive(&mut log);
    log.append(op(1, 3000)).unwrap();
    let torn = log.next_write().unwrap();
    log.append(op(2, 3000)).unwrap();
    let whole = log.next_write().unwrap();
    // The crash: the second group reached the disk, the first did not.
    dev.apply(&whole);
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), [a]);
    assert!(r.corruption.is_empty(), "not damage: {:?}", r.corruption);
    // The resumed log zeroes the stray group before writing any.
    let mut log = r.log;
    let kinds: Vec<WriteKind> = std::iter::from_fn(|| {
        let w = log.next_write()?;
        dev.apply(&w);
        log.write_done(w.id, Ok(()));
        Some(w.kind)
    })
    .collect();
    assert_eq!(kinds, [WriteKind::Superblock, WriteKind::Erase]);
    let b = log.append(op(9, 100)).unwrap();
    let w = log.next_write().unwrap();
    assert_eq!(w.offset, torn.offset, "the log goes on where it ended");
    dev.apply(&w);
    log.write_done(w.id, Ok(()));
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), [a, b]);
    assert_eq!(r.records[1].op, op(9, 100));
}

#[test]
fn damage_in_the_middle_is_reported_and_later_records_returned() {
    let (mut log, mut dev) = fresh();
    let at = three_groups(&mut log, &mut dev, 4);
    // A byte of the third record of the second group.
    let rec = at[1] as usize + 80 + 2 * format::record_size(2000) + 100;
    dev.bytes[rec] ^= 1;
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), [1, 2, 3, 4, 5, 6, 9, 10, 11, 12]);
    assert_eq!(r.corruption.len(), 1);
    assert_eq!(r.corruption[0].lost, 7..9);
    // A damaged group header: the whole group is lost.
    dev.bytes[at[1] as usize + 40] ^= 1;
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), [1, 2, 3, 4, 9, 10, 11, 12]);
    assert_eq!(r.corruption[0].lost, 5..9);
    assert!(r.torn_tail.is_none());
}

#[test]
fn space_is_reclaimed_only_after_done_and_wraps_then() {
    let (mut log, mut dev) = fresh();
    let rec = 256 << 10;
    let mut appended = Vec::new();
    // Fill the log: appends are refused once it is full, never overwrite.
    let full = loop {
        match log.append(op(appended.len() as u64, rec)) {
            Ok(s) => appended.push(s),
            Err(e) => break e,
        }
        for c in dev.drive(&mut log) {
            assert!(c.failed.is_none());
        }
    };
    assert!(matches!(full, JournalError::Full { .. }), "{full}");
    assert!(full.is_retry_later() && full.to_string().contains("retry later"));
    assert!(appended.len() > 16);
    // Confirming a record in the middle frees nothing.
    log.done(appended[5]).unwrap();
    dev.drive(&mut log);
    assert!(matches!(log.append(op(0, rec)), Err(JournalError::Full { .. })));
    // Confirming the oldest ones does: the head moves (a superblock write)
    // and a group wraps to the start of the log, behind the new head.
    for s in &appended[..8] {
        let _ = log.done(*s);
    }
    let (mut last_head, mut prev_off, mut wrapped) = (None, 0, None);
    for n in 0..100 {
        match log.append(op(1000 + n, rec)) {
            Ok(s) => appended.push(s),
            Err(e) => panic!("{e}"),
        }
        while let Some(w) = log.next_write() {
            if w.kind == WriteKind::Group {
                if w.offset < prev_off {
                    wrapped = Some((w.offset, w.buf.len() as u64, last_head));
                }
                prev_off = w.offset;
            }
            dev.apply(&w);
            let c = log.write_done(w.id, Ok(()));
            last_head = c.head.or(last_head);
        }
        if wrapped.is_some() {
            break;
        }
    }
    let (off, len, head) = wrapped.expect("the log wrapped");
    let head: format::Head = head.expect("a superblock moved the head first");
    assert!(
        off + len <= LOG_START + head.pos % geo().log_len(),
        "{off}+{len} over the head {head:?}"
    );
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), appended[8..]);
}

#[test]
fn foreign_or_unformatted_regions_are_refused() {
    let mut blank = MemRegion::new(SIZE);
    assert_eq!(
        replay(&mut blank, expect()).unwrap_err(),
        JournalError::Unformatted
    );
    let (_, mut dev) = fresh();
    let other = Expect {
        cache_id: CacheId([8; 16]),
        ..expect()
    };
    let e = replay(&mut dev, other).unwrap_err();
    assert!(matches!(e, JournalError::WrongJournal { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains(&CacheId([7; 16]).to_string()) && msg.contains(&CacheId([8; 16]).to_string()),
        "{msg}"
    );
    let e = replay(&mut dev, Expect { shard: 4, ..expect() }).unwrap_err();
    assert!(
        e.to_string().contains("shard 3") && e.to_string().contains("shard 4"),
        "{e}"
    );
    dev.bytes[20] ^= 1;
    dev.bytes[PAGE as usize + 20] ^= 1;
    assert_eq!(
        replay(&mut dev, expect()).unwrap_err(),
        JournalError::SuperblockDamaged
    );
}

#[test]
fn a_torn_superblock_copy_leaves_the_other() {
    let (mut log, mut dev) = fresh();
    let a: Vec<u64> = (0..3).map(|n| log.append(op(n, 500)).unwrap()).collect();
    dev.drive(&mut log);
    let r = replay(&mut dev, expect()).unwrap();
    let mut log = r.log;
    // The new epoch's superblock is torn: the previous copy is used.
    let w = log.next_write().unwrap();
    assert_eq!(w.kind, WriteKind::Superblock);
    dev.apply_sectors(&w, |i| i == 1);
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), a);
    // Written whole, it wins (newer generation), and records still replay.
    let mut log = r.log;
    dev.drive(&mut log);
    let b = log.append(op(9, 500)).unwrap();
    dev.drive(&mut log);
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(seqs(&r), [&a[..], &[b]].concat());
    assert_eq!(r.log.epoch(), 2, "the torn epoch was never used");
}

/// Counts the bytes a replay reads.
struct Counting<'a>(&'a mut MemRegion, u64);

impl RegionRead for Counting<'_> {
    fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        self.1 += len as u64;
        self.0.read_at(offset, len)
    }
}

#[test]
fn a_clean_close_spares_the_search_but_not_the_damage_report() {
    let (mut log, mut dev) = fresh();
    let at = three_groups(&mut log, &mut dev, 4);
    let mut crashed = Counting(&mut dev, 0);
    replay(&mut crashed, expect()).unwrap();
    assert!(crashed.1 > geo().log_len(), "after a crash the whole log is read");
    let w = log.close_write().unwrap();
    dev.apply(&w);
    log.write_done(w.id, Ok(()));
    assert!(matches!(log.append(op(0, 1)), Err(JournalError::Closed)));
    let mut clean = Counting(&mut dev, 0);
    let r = replay(&mut clean, expect()).unwrap();
    assert_eq!(r.records.len(), 12);
    assert!(clean.1 < 64 << 10, "{} bytes read after a clean close", clean.1);
    // Damage before the end named by the close is still found.
    dev.bytes[at[1] as usize + 40] ^= 1;
    let r = replay(&mut dev, expect()).unwrap();
    assert_eq!(r.corruption.len(), 1);
    assert_eq!(r.corruption[0].lost, 5..9);
}

#[test]
fn a_failed_write_fails_its_records_and_later_appends() {
    let (mut log, mut dev) = fresh();
    let a = log.append(op(0, 100)).unwrap();
    let w = log.next_write().unwrap();
    let b = log.append(op(1, 100)).unwrap();
    let c = log.write_done(w.id, Err(std::io::Error::from_raw_os_error(libc::EIO)));
    let (failed, err) = c.failed.unwrap();
    assert_eq!(failed, a..b + 1);
    assert!(c.acked.is_empty());
    assert!(matches!(err, JournalError::Failed(_)));
    assert!(matches!(log.append(op(2, 1)), Err(JournalError::Failed(_))));
    assert!(log.next_write().is_none());
    // Nothing was acknowledged; a replay may find nothing.
    let r = replay(&mut dev, expect()).unwrap();
    assert!(r.records.is_empty());
}

#[test]
fn oversized_records_are_refused() {
    let (mut log, _) = fresh();
    let e = log.append(op(0, geo().max_payload() + 1)).unwrap_err();
    assert!(matches!(e, JournalError::TooLarge { .. }));
}

#[test]
fn the_compio_driver_appends_durably_and_replays_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        path: dir.path().join("journal"),
        offset: 0,
        size: SIZE,
        cache_id: CacheId([7; 16]),
        shard: 3,
        create: true,
    };
    let rt = compio::runtime::Runtime::new().unwrap();
    let appended = rt.block_on(async {
        let opened = Journal::open(cfg.clone()).await.unwrap();
        assert!(opened.formatted && opened.records.is_empty());
        let j = opened.journal;
        // 64 concurrent appenders: fewer group writes than records.
        let tasks = (0..64u64).map(|n| {
            let j = j.clone();
            async move { j.append(op(n, 4096)).await.unwrap() }
        });
        let seqs = futures::future::join_all(tasks).await;
        assert_eq!(j.with_log(|l| l.next_seq()), 65);
        let (groups, _) = j.with_log(|l| l.writes());
        assert!(groups < 64, "{groups} group writes for 64 concurrent appends");
        j.done(seqs[0]).unwrap();
        j.done(seqs[10]).unwrap();
        j.sync().await.unwrap();
        seqs
    });
    drop(rt);
    let rt = compio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let no_create = JournalConfig {
            create: false,
            ..cfg.clone()
        };
        let opened = Journal::open(no_create).await.unwrap();
        assert!(!opened.formatted);
        let got: Vec<u64> = opened.records.iter().map(|r| r.seq).collect();
        let want: Vec<u64> = appended
            .iter()
            .copied()
            .filter(|s| *s != appended[0] && *s != appended[10])
            .collect();
        assert_eq!(got, want);
        for r in &opened.records {
            let n = appended.iter().position(|s| *s == r.seq).unwrap() as u64;
            assert_eq!(r.op, op(n, 4096));
        }
        let s = opened.journal.append(op(500, 10)).await.unwrap();
        assert_eq!(s, 65);
        opened.journal.close().await.unwrap();
        let again = Journal::open(cfg.clone()).await.unwrap();
        assert_eq!(again.records.len(), 63);
        assert_eq!(again.records.last().map(|r| r.seq), Some(65));
        let other = JournalConfig {
            shard: 4,
            ..cfg.clone()
        };
        assert!(matches!(
            Journal::open(other).await,
            Err(JournalError::WrongJournal { .. })
        ));
        let missing = JournalConfig {
            path: dir.path().join("absent"),
            create: false,
            ..cfg.clone()
        };
        assert!(matches!(Journal::open(missing).await, Err(JournalError::Io(_))));
    });
}
