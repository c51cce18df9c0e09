//! Tests of the NVMe tier on real files: reads and writes, restarts,
//! checksums, reclaim and its races, device errors.

use super::*;
use std::future::Future;
use std::os::unix::fs::FileExt;

const SEG: u32 = 64 << 10;
const BLOCK: u32 = 16 << 10;

fn run<F: Future<Output = ()>>(f: F) {
    compio::runtime::Runtime::new().unwrap().block_on(f)
}

fn cfg(path: &Path, segments: u64) -> NvmeConfig {
    NvmeConfig {
        path: path.to_path_buf(),
        size: SUPERBLOCK_LEN + segments * u64::from(SEG),
        segment_size: SEG,
        block_size: BLOCK,
        shard: 0,
    }
}

fn key(block: u64) -> BlockKey {
    BlockKey { file: 7, block }
}

/// Deterministic, key-dependent bytes, so a block served from the wrong
/// place is noticed.
fn data(block: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(block.wrapping_mul(131)) as u8)
        .collect()
}

async fn check(store: &SegmentStore, block: u64, len: usize) {
    let d = data(block, len);
    let full = store.read(key(block), 1, 0, BLOCK).await.unwrap().expect("hit");
    assert_eq!(&full[..], &d[..]);
    for (off, l) in [
        (0usize, 1usize),
        (100, 5000),
        (4095, 2),
        (4096, 4096),
        (len - 1, 1),
        (3, len - 3),
    ] {
        let got = store
            .read(key(block), 1, off as u32, l as u32)
            .await
            .unwrap()
            .expect("hit");
        assert_eq!(&got[..], &d[off..off + l], "offset {off} len {l}");
    }
}

#[test]
fn insert_read_partial_memory_and_disk() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
        for b in 0..3 {
            store.insert(key(b), 1, &data(b, BLOCK as usize));
        }
        assert_eq!(store.len(), 3);
        assert!(store.contains(key(1), 1));
        for b in 0..3 {
            check(&store, b, BLOCK as usize).await;
        }
        assert_eq!(store.block_location(key(0)), None, "still in memory");
        store.flush().await.unwrap();
        assert_eq!(store.block_location(key(0)), Some(SUPERBLOCK_LEN));
        for b in 0..3 {
            check(&store, b, BLOCK as usize).await;
        }
        let s = store.stats();
        assert_eq!(s.inserts, 3);
        assert_eq!(s.misses, 0);
        assert_eq!(s.hits, 2 * 3 * 7);
        assert_eq!(s.segments_written, 1);
        assert_eq!(s.checksum_failures, 0);
    });
}

#[test]
fn short_block_at_eof() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
        let d = data(9, 10_000);
        store.insert(key(9), 1, &d);
        for round in 0..2 {
            let all = store.read(key(9), 1, 0, BLOCK).await.unwrap().unwrap();
            assert_eq!(&all[..], &d[..], "round {round}");
            let tail = store.read(key(9), 1, 9_000, 4_000).await.unwrap().unwrap();
            assert_eq!(&tail[..], &d[9_000..]);
            let past = store.read(key(9), 1, 12_000, 10).await.unwrap().unwrap();
            assert!(past.is_empty());
            store.flush().await.unwrap();
        }
    });
}

#[test]
fn generation_mismatch_remove_and_replace() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
        store.insert(key(1), 1, &data(1, 8192));
        assert!(!store.contains(key(1), 2));
        assert!(store.read(key(1), 2, 0, 10).await.unwrap().is_none());
        // The stale entry was dropped.
        assert!(!store.contains(key(1), 1));
        assert!(store.read(key(1), 1, 0, 10).await.unwrap().is_none());

        store.insert(key(2), 1, &data(2, 8192));
        store.remove(key(2));
        assert!(!store.contains(key(2), 1));
        assert!(store.read(key(2), 1, 0, 10).await.unwrap().is_none());

        // Replacement: the newer copy wins, in memory and on disk.
        store.insert(key(3), 1, &data(3, 8192));
        store.insert(key(3), 2, &data(33, 4096));
        store.flush().await.unwrap();
        let got = store.read(key(3), 2, 0, BLOCK).await.unwrap().unwrap();
        assert_eq!(&got[..], &data(33, 4096)[..]);
        assert_eq!(store.stats().misses, 3);

        // Empty and oversized blocks are not stored.
        store.insert(key(4), 1, &[]);
        store.insert(key(5), 1, &vec![0u8; BLOCK as usize + 1]);
        assert!(!store.contains(key(4), 1) && !store.contains(key(5), 1));
    });
}

#[test]
fn restart_starts_empty_and_rewrites_superblock() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let first = SegmentStore::open(cfg(&path, 4)).await.unwrap();
        first.insert(key(1), 1, &data(1, 8192));
        first.flush().await.unwrap();
        let epoch1 = first.epoch();
        drop(first);
        let raw = std::fs::read(&path).unwrap();
        let sb = Superblock::decode(&raw).unwrap();
        assert_eq!(sb.epoch, epoch1);
        assert_eq!(
            (sb.version, sb.segment_size, sb.segment_count),
            (FORMAT_VERSION, SEG, 4)
        );
        assert_eq!(sb.size, raw.len() as u64);

        let second = SegmentStore::open(cfg(&path, 4)).await.unwrap();
        assert!(second.is_empty());
        assert!(!second.contains(key(1), 1));
        assert!(second.read(key(1), 1, 0, 10).await.unwrap().is_none());
        assert_ne!(second.epoch(), epoch1);
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(Superblock::decode(&raw).unwrap().epoch, second.epoch());
        assert_eq!(second.stats().misses, 1);
    });
}

#[test]
fn open_errors_are_clear() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
        let err = SegmentStore::open(cfg(&path, 4)).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, StoreError::WrongSize { actual: 1048576, .. }),
            "{msg}"
        );
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("delete it or set cache size to 1048576"), "{msg}");

        let missing = dir.path().join("no/such/dir/c");
        let err = SegmentStore::open(cfg(&missing, 4)).await.unwrap_err();
        assert!(matches!(err, StoreError::DirMissing { .. }), "{err}");
        assert!(err.to_string().contains("does not exist"));

        let small = dir.path().join("small");
        let err = SegmentStore::open(cfg(&small, 1)).await.unwrap_err();
        assert!(matches!(err, StoreError::TooSmall { .. }), "{err}");

        let mut c = cfg(&dir.path().join("x"), 4);
        c.block_size = 1000;
        assert!(matches!(
            SegmentStore::open(c).await,
            Err(StoreError::InvalidConfig { .. })
        ));

        let err = SegmentStore::open(cfg(dir.path(), 4)).await.unwrap_err();
        assert!(matches!(err, StoreError::NotAFile { .. }), "{err}");

        // Size 0: an existing file is used at its own size; a missing one
        // cannot be created.
        let mut c = cfg(&path, 0);
        c.size = 0;
        let reused = SegmentStore::open(c.clone()).await.unwrap();
        assert_eq!(reused.size(), 1 << 20);
        assert_eq!(reused.segment_count(), 15);
        drop(reused);
        c.path = dir.path().join("absent");
        assert!(matches!(
            SegmentStore::open(c).await,
            Err(StoreError::SizeRequired { .. })
        ));

        // An existing empty file is treated as new.
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let store = SegmentStore::open(cfg(&empty, 4)).await.unwrap();
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), store.size());
    });
}

#[test]
fn checksum_failure_is_dropped_and_counted() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let store = SegmentStore::open(cfg(&path, 4)).await.unwrap();
        store.insert(key(1), 1, &data(1, BLOCK as usize));
        store.insert(key(2), 1, &data(2, BLOCK as usize));
        store.flush().await.unwrap();
        let at = store.block_location(key(1)).unwrap();
        {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(b"garbage!", at + 5000).unwrap();
            f.sync_all().unwrap();
        }
        // A read that does not touch the damaged page still succeeds.
        let ok = store.read(key(1), 1, 0, 4096).await.unwrap().unwrap();
        assert_eq!(&ok[..], &data(1, 4096)[..]);
        assert!(store.read(key(1), 1, 4096, 100).await.unwrap().is_none());
        assert_eq!(store.stats().checksum_failures, 1);
        assert!(!store.contains(key(1), 1));
        assert!(store.read(key(1), 1, 0, 10).await.unwrap().is_none());
        check(&store, 2, BLOCK as usize).await;

        store.insert(key(1), 1, &data(1, BLOCK as usize));
        check(&store, 1, BLOCK as usize).await;
        store.flush().await.unwrap();
        check(&store, 1, BLOCK as usize).await;
        assert_eq!(store.stats().checksum_failures, 1);
    });
}

#[test]
fn read_many_merges_neighbours_and_checks_each_block() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let store = SegmentStore::open(cfg(&path, 4)).await.unwrap();
        for b in 0..4 {
            store.insert(key(b), 1, &data(b, BLOCK as usize));
        }
        store.flush().await.unwrap();
        // Damage block 2 only.
        let at = store.block_location(key(2)).unwrap();
        {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(b"garbage!", at + 100).unwrap();
            f.sync_all().unwrap();
        }
        let reqs: Vec<_> = (0..5).map(|b| (key(b), 1, 10, BLOCK - 20)).collect();
        let got = store.read_many(&reqs).await;
        for (b, r) in got.into_iter().enumerate() {
            let r = r.unwrap();
            match b {
                2 | 4 => assert!(r.is_none(), "block {b}"),
                _ => assert_eq!(
                    &r.unwrap()[..],
                    &data(b as u64, BLOCK as usize)[10..BLOCK as usize - 10]
                ),
            }
        }
        assert_eq!(store.stats().checksum_failures, 1);
        assert!(!store.contains(key(2), 1));
    });
}

/// Fill `count` blocks starting at `first`, flushing after each segment's
/// worth so that every write (and the reclaim read) completes.
async fn fill(store: &SegmentStore, first: u64, count: u64) {
    let per_seg = u64::from(SEG / BLOCK);
    for b in first..first + count {
        store.insert(key(b), 1, &data(b, BLOCK as usize));
        if (b - first) % per_seg == per_seg - 1 {
            store.flush().await.unwrap();
        }
    }
}

#[test]
fn reclaim_evicts_oldest_and_reinserts_hit_blocks() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
        // 4 segments of 4 blocks: 0..4 land in segment 0.
        fill(&store, 0, 12).await;
        // Hit three blocks of segment 0; reinsertion is capped at half a
        // segment (two blocks), in log order. Filling the last segment
        // reads segment 0 back for them, ahead of its reclaim.
        for b in [1, 2, 3] {
            assert!(store.read(key(b), 1, 0, 1).await.unwrap().is_some());
        }
        fill(&store, 12, 4).await;
        assert_eq!(store.len(), 16);
        fill(&store, 16, 1).await;
        let s = store.stats();
        assert_eq!(s.reinserted_blocks, 2);
        assert_eq!(s.evicted_blocks, 2);
        assert_eq!(s.reclaim_reads, 1, "segment 0 was read back for its hit blocks");
        for b in [0, 3] {
            assert!(!store.contains(key(b), 1), "block {b} should be evicted");
            assert!(store.read(key(b), 1, 0, 1).await.unwrap().is_none());
        }
        // Reading would set the hit bits again; only look at the index.
        for b in [1, 2].into_iter().chain(4..17) {
            assert!(store.contains(key(b), 1), "block {b}");
        }
        check(&store, 16, BLOCK as usize).await;
        // Reinsertion cleared the hit bits of 1 and 2: one more lap
        // (segment 0 holds 1, 2, 16 and one more block) evicts them.
        fill(&store, 17, 14).await;
        let s = store.stats();
        assert_eq!(s.reinserted_blocks, 3, "only 16 was hit since its insertion");
        for b in [1, 2, 17] {
            assert!(!store.contains(key(b), 1), "block {b} should be gone after a lap");
        }
        for b in [16, 20, 30] {
            check(&store, b, BLOCK as usize).await;
        }
    });
}

#[test]
fn segments_without_hits_are_reclaimed_without_reading_them() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
        // Two laps of the ring, nothing ever read: every reclaim evicts.
        fill(&store, 0, 32).await;
        let s = store.stats();
        assert_eq!(s.reclaim_reads, 0);
        assert_eq!(s.reinserted_blocks, 0);
        assert!(s.evicted_blocks > 0);
        // Segments 0..4 now hold blocks 16..32. A hit in segment 1 makes
        // it worth reading back while segment 0 fills again.
        assert!(store.read(key(21), 1, 0, 1).await.unwrap().is_some());
        fill(&store, 32, 8).await;
        let s = store.stats();
        assert_eq!(s.reclaim_reads, 1);
        assert_eq!(s.reinserted_blocks, 1);
        assert!(store.contains(key(21), 1), "the hit block was kept");
        assert!(!store.contains(key(20), 1));
        check(&store, 21, BLOCK as usize).await;
        check(&store, 39, BLOCK as usize).await;
    });
}

#[test]
fn burst_past_capacity_never_serves_wrong_bytes() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
        // No awaits between inserts: writes pile up, the ring wraps
        // without reclaim reads, inserts beyond the limits are declined.
        for b in 0..200 {
            store.insert(key(b), 1, &data(b, BLOCK as usize));
        }
        let _ = store.flush().await;
        let mut hits = 0;
        for b in 0..200 {
            if let Some(got) = store.read(key(b), 1, 0, BLOCK).await.unwrap() {
                assert_eq!(&got[..], &data(b, BLOCK as usize)[..], "block {b}");
                hits += 1;
            }
        }
        assert!(hits > 0 && hits <= 16, "hits {hits}");
        let s = store.stats();
        assert_eq!(s.inserts + s.dropped_inserts, 200);
        assert_eq!(s.checksum_failures, 0);
    });
}

#[test]
fn read_racing_with_reclaim_is_a_miss() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
        fill(&store, 0, 12).await;
        let mut read = std::pin::pin!(store.read(key(0), 1, 0, BLOCK));
        // First poll plans the read and submits it to the ring.
        assert!(futures::poll!(&mut read).is_pending());
        fill(&store, 12, 4).await;
        // Segment 0 is reused before the completion is seen.
        store.insert(key(50), 1, &data(50, BLOCK as usize));
        assert!(read.await.unwrap().is_none());
        // Block 0 had its hit bit set by the read, so it was reinserted.
        check(&store, 0, BLOCK as usize).await;
    });
}

#[test]
fn write_error_marks_segment_bad() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(cfg(&dir.path().join("c"), 4)).await.unwrap();
        store.insert(key(1), 1, &data(1, BLOCK as usize));
        store.dev.fail_next_write.set(true);
        assert!(store.flush().await.is_err());
        assert!(!store.contains(key(1), 1));
        assert!(store.read(key(1), 1, 0, 1).await.unwrap().is_none());
        assert_eq!(store.stats().write_errors, 1);
        // The other segments keep working, and the bad one is skipped.
        fill(&store, 10, 12).await;
        for b in 10..22 {
            check(&store, b, BLOCK as usize).await;
        }
        fill(&store, 30, 4).await;
        assert!(store.flush().await.is_ok());
        assert!(matches!(store.dev.log.borrow().segs[0].state, SegState::Bad));
    });
}

#[test]
fn many_concurrent_reads() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Rc::new(SegmentStore::open(cfg(&dir.path().join("c"), 8)).await.unwrap());
        for b in 0..24 {
            store.insert(key(b), 1, &data(b, BLOCK as usize));
        }
        store.flush().await.unwrap();
        // Some blocks in memory too.
        for b in 24..26 {
            store.insert(key(b), 1, &data(b, BLOCK as usize));
        }
        let tasks: Vec<_> = (0..32u64)
            .map(|i| {
                let store = Rc::clone(&store);
                compio::runtime::spawn(async move {
                    let b = i % 26;
                    let off = (i as u32 * 1237) % (BLOCK - 6000);
                    let got = store.read(key(b), 1, off, 6000).await.unwrap().unwrap();
                    assert_eq!(
                        &got[..],
                        &data(b, BLOCK as usize)[off as usize..off as usize + 6000]
                    );
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.stats().hits, 32);
    });
}
