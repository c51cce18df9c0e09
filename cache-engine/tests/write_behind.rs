//! Write-behind over a local core filer: writes answered from the journal,
//! read back through the dirty state, written back by a flush or after the
//! delay, kept across a restart, kept while the core filer is unreachable.

mod common;

use std::time::Duration;

use bytes::Bytes;
use cache_engine::types::*;
use cache_engine::{EngineConfig, Error};
use common::*;

/// Write-behind with a delay long enough that only a flush writes back.
fn behind(cfg: &mut EngineConfig) {
    cfg.policy.writeback_delay = Some(Duration::from_secs(3600));
    cfg.journal_bytes = 64 << 20;
    cfg.dirty_max = 32 << 20;
}

async fn new_file(fx: &Fixture, name: &str) -> cache_engine::FileHandle {
    new_file_on(&fx.engine, name).await
}

async fn new_file_on(engine: &cache_engine::Engine, name: &str) -> cache_engine::FileHandle {
    engine
        .create(
            &root(),
            &engine.root(),
            name.as_bytes(),
            CreateMode::Unchecked,
            &SetAttr::default(),
        )
        .await
        .unwrap()
        .handle
}

/// A FILE_SYNC write that must succeed.
async fn write_at(engine: &cache_engine::Engine, fh: &cache_engine::FileHandle, offset: u64, data: Bytes) {
    engine
        .write(&root(), fh, offset, data, Stability::FileSync)
        .await
        .unwrap();
}

async fn read_all(fx: &Fixture, fh: &cache_engine::FileHandle) -> Vec<u8> {
    read_all_on(&fx.engine, fh).await
}

async fn read_all_on(engine: &cache_engine::Engine, fh: &cache_engine::FileHandle) -> Vec<u8> {
    let r = engine.read(&root(), fh, 0, 4 << 20).await.unwrap();
    assert!(r.eof);
    r.to_bytes().to_vec()
}

#[test]
fn writes_are_durable_answers_read_back_and_reach_the_core_filer_at_a_flush() {
    let fx = fixture(behind);
    block_on(async {
        let fh = new_file(&fx, "w").await;
        let data = pattern(300_000, 6);
        let w = fx
            .engine
            .write(&root(), &fh, 0, Bytes::from(data.clone()), Stability::Unstable)
            .await
            .unwrap();
        assert_eq!(w.count, 300_000);
        assert_eq!(
            w.committed,
            Stability::FileSync,
            "durable in the journal when answered"
        );
        assert_eq!(w.wcc.after.unwrap().size, 300_000);
        assert!(
            !fx.origin().join("w").exists(),
            "not written back yet, its name neither"
        );
        assert_eq!(read_all(&fx, &fh).await, data);
        assert_eq!(fx.engine.getattr(&fh).await.unwrap().size, 300_000);

        let status = fx.engine.dirty_status().await.unwrap();
        assert_eq!((status.filers[0].files, status.filers[0].bytes), (1, 300_000));
        assert!(status.journal_used >= 300_000);

        let report = fx.engine.flush(None).await.unwrap();
        assert_eq!((report.files, report.bytes), (1, 300_000));
        assert!(report.parked.is_empty());
        assert_eq!(std::fs::read(fx.origin().join("w")).unwrap(), data);
        let status = fx.engine.dirty_status().await.unwrap();
        assert_eq!((status.filers[0].files, status.filers[0].bytes), (0, 0));
        assert_eq!(read_all(&fx, &fh).await, data);
    });
}

#[test]
fn overwrites_truncates_and_times_reach_the_core_filer_as_clients_saw_them() {
    let fx = fixture(behind);
    block_on(async {
        let fh = new_file(&fx, "t").await;
        let data = pattern(200_000, 9);
        let e = &fx.engine;
        e.write(&root(), &fh, 0, Bytes::from(data.clone()), Stability::FileSync)
            .await
            .unwrap();
        e.write(
            &root(),
            &fh,
            70_000,
            Bytes::from_static(b"XYZ"),
            Stability::FileSync,
        )
        .await
        .unwrap();
        let got = e.read(&root(), &fh, 69_999, 5).await.unwrap().to_bytes();
        assert_eq!(&got[..], &[data[69_999], b'X', b'Y', b'Z', data[70_003]]);
        let cut = SetAttr {
            size: Some(10),
            ..Default::default()
        };
        e.setattr(&root(), &fh, &cut, None).await.unwrap();
        e.write(&root(), &fh, 20, Bytes::from_static(b"end"), Stability::FileSync)
            .await
            .unwrap();
        let mtime = Timespec {
            sec: 1_600_000_000,
            nsec: 0,
        };
        let times = SetAttr {
            mtime: SetTime::Client(mtime),
            ..Default::default()
        };
        e.setattr(&root(), &fh, &times, None).await.unwrap();
        let mut want = data[..10].to_vec();
        want.extend_from_slice(&[0; 10]);
        want.extend_from_slice(b"end");
        assert_eq!(read_all(&fx, &fh).await, want);
        assert_eq!(e.getattr(&fh).await.unwrap().mtime, mtime);

        assert!(e.flush(None).await.unwrap().parked.is_empty());
        assert_eq!(std::fs::read(fx.origin().join("t")).unwrap(), want);
        let meta = std::fs::metadata(fx.origin().join("t")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            meta.mtime(),
            mtime.sec,
            "the mtime clients set survives write-back"
        );
        assert_eq!(read_all(&fx, &fh).await, want);
    });
}

#[test]
fn a_restart_replays_what_was_not_written_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("origin")).unwrap();
    let (engine, _) = start(dir.path(), Duration::ZERO, behind);
    let data = pattern(150_000, 3);
    let fh = block_on(async {
        let fh = new_file_on(&engine, "r").await;
        write_at(&engine, &fh, 0, Bytes::from(data.clone())).await;
        write_at(&engine, &fh, 1000, Bytes::from_static(b"later")).await;
        fh
    });
    let verifier = engine.write_verifier();
    // Stopped without a flush: the journal keeps it.
    engine.shutdown();
    assert!(!dir.path().join("origin/r").exists());
    let mut want = data.clone();
    want[1000..1005].copy_from_slice(b"later");

    let (engine, _) = start(dir.path(), Duration::ZERO, behind);
    assert_eq!(
        engine.write_verifier(),
        verifier,
        "nothing acknowledged was lost: clients need not resend"
    );
    block_on(async {
        let r = engine.read(&root(), &fh, 0, 1 << 20).await.unwrap();
        assert_eq!(&r.to_bytes()[..], &want[..], "replayed from the journal");
        assert!(engine.flush(None).await.unwrap().parked.is_empty());
    });
    assert_eq!(std::fs::read(dir.path().join("origin/r")).unwrap(), want);
    engine.shutdown();

    // Written back and confirmed: a third start has nothing to replay.
    let (engine, _) = start(dir.path(), Duration::ZERO, behind);
    block_on(async {
        let s = engine.dirty_status().await.unwrap();
        assert_eq!(s.filers[0].files, 0);
    });
    engine.shutdown();
}

#[test]
fn a_dirty_file_removed_through_the_engine_goes_with_its_data() {
    let fx = fixture(behind);
    block_on(async {
        let fh = new_file(&fx, "gone").await;
        fx.engine
            .write(
                &root(),
                &fh,
                0,
                Bytes::from(pattern(5000, 1)),
                Stability::FileSync,
            )
            .await
            .unwrap();
        let root_fh = fx.engine.root();
        fx.engine.remove(&root(), &root_fh, b"gone").await.unwrap();
        let report = fx.engine.flush(None).await.unwrap();
        assert!(report.parked.is_empty(), "{report:?}");
        let s = fx.engine.dirty_status().await.unwrap();
        assert_eq!(s.filers[0].files, 0);
        assert!(!fx.origin().join("gone").exists());
    });
}

#[test]
fn a_dirty_file_shows_its_link_count_after_a_link_is_removed() {
    let fx = fixture(behind);
    block_on(async {
        let (e, root_fh) = (&fx.engine, fx.engine.root());
        let fh = new_file(&fx, "a").await;
        e.link(&root(), &fh, &root_fh, b"a.link").await.unwrap();
        e.write(&root(), &fh, 0, Bytes::from_static(b"dirty"), Stability::FileSync)
            .await
            .unwrap();
        let (attr, _) = e.link(&root(), &fh, &root_fh, b"a.link2").await.unwrap();
        assert_eq!(attr.nlink, 3);
        e.remove(&root(), &root_fh, b"a.link2").await.unwrap();
        let attr = e.getattr(&fh).await.unwrap();
        assert_eq!(attr.nlink, 2, "link count after the unlink");
        assert_eq!(attr.size, 5, "the dirty size still shows");
        assert_eq!(read_all(&fx, &fh).await, b"dirty");
        assert_eq!(e.dirty_status().await.unwrap().filers[0].files, 1);
    });
}

#[test]
fn an_unreachable_core_filer_keeps_writes_and_a_flush_says_so() {
    let fx = fixture(behind);
    block_on(async {
        let fh = new_file(&fx, "u").await;
        let data = pattern(64_000, 4);
        fx.filer.set_unreachable(true);
        // Absorbed while the core filer is away.
        fx.engine
            .write(&root(), &fh, 0, Bytes::from(data.clone()), Stability::FileSync)
            .await
            .unwrap();
        assert_eq!(read_all(&fx, &fh).await, data);
        let report = fx.engine.flush(None).await.unwrap();
        assert_eq!(report.parked.len(), 1, "{report:?}");
        assert!(report.parked[0].why.contains("unavailable"), "{report:?}");
        assert_eq!(report.parked[0].path.as_deref(), Some("/u"), "{report:?}");
        fx.filer.set_unreachable(false);
        let report = fx.engine.flush(None).await.unwrap();
        assert!(report.parked.is_empty(), "{report:?}");
        assert_eq!(std::fs::read(fx.origin().join("u")).unwrap(), data);
    });
}

#[test]
fn write_behind_without_a_journal_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("origin")).unwrap();
    let mut cfg = engine_config(dir.path());
    cfg.policy.writeback_delay = Some(Duration::from_secs(1));
    let local = cache_engine::filer::local::LocalFiler::open(&dir.path().join("origin")).unwrap();
    let err = cache_engine::Engine::start(cfg, std::sync::Arc::new(local))
        .err()
        .unwrap();
    assert!(err.to_string().contains("journal"), "{err}");
    let _ = Error::Io;
}

#[test]
fn overwrites_in_an_outage_are_absorbed_far_past_the_journal_size() {
    // 8 MiB of journal per shard; a 1 MiB file, then 40 MiB of 16 KiB
    // overwrites inside it, which never cover the first write whole: its
    // record stays needed, and only compaction lets the journal move on.
    let fx = fixture(|c| {
        behind(c);
        c.journal_bytes = 16 << 20;
        c.dirty_max = 8 << 20;
    });
    block_on(async {
        let fh = new_file(&fx, "o").await;
        fx.filer.set_unreachable(true);
        let mut want = pattern(1 << 20, 1);
        fx.engine
            .write(&root(), &fh, 0, Bytes::from(want.clone()), Stability::FileSync)
            .await
            .unwrap();
        let mut seed = 12345u32;
        for i in 0..2560u32 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            // Anywhere but the first 16 KiB.
            let off = 16_384 + (seed >> 8) as usize % ((1 << 20) - 32_768);
            let piece = pattern(16_384, i as u8);
            want[off..off + piece.len()].copy_from_slice(&piece);
            fx.engine
                .write(&root(), &fh, off as u64, Bytes::from(piece), Stability::FileSync)
                .await
                .unwrap_or_else(|e| panic!("write {i} refused: {e}"));
        }
        assert_eq!(read_all(&fx, &fh).await, want);
        let s = fx.engine.dirty_status().await.unwrap();
        assert!(s.journal_used < s.journal_size, "{s:?}");
        fx.filer.set_unreachable(false);
        assert!(fx.engine.flush(None).await.unwrap().parked.is_empty());
        assert_eq!(std::fs::read(fx.origin().join("o")).unwrap(), want);
    });
}

#[test]
fn what_was_written_back_reads_from_the_cache_while_the_core_filer_is_away() {
    let fx = fixture(behind);
    block_on(async {
        let fh = new_file(&fx, "w").await;
        let e = &fx.engine;
        let mut want = pattern(100_000, 3);
        let size = |n: u64| SetAttr {
            size: Some(n),
            ..Default::default()
        };
        // Each step is written back alone, then read with the core filer away:
        // partial blocks, a cut inside a block, a hole, two writes in a block.
        for step in 0..5 {
            match step {
                0 => {
                    e.write(&root(), &fh, 0, Bytes::from(want.clone()), Stability::FileSync)
                        .await
                        .unwrap();
                }
                1 => {
                    e.write(
                        &root(),
                        &fh,
                        70_000,
                        Bytes::from_static(b"0123456789"),
                        Stability::FileSync,
                    )
                    .await
                    .unwrap();
                    want[70_000..70_010].copy_from_slice(b"0123456789");
                }
                2 => {
                    e.setattr(&root(), &fh, &size(50_001), None).await.unwrap();
                    want.truncate(50_001);
                }
                3 => {
                    e.setattr(&root(), &fh, &size(300_000), None).await.unwrap();
                    want.resize(300_000, 0);
                }
                _ => {
                    for (off, bytes) in [(200_001usize, &b"ab"[..]), (200_100, b"cd"), (299_999, b"e")] {
                        e.write(
                            &root(),
                            &fh,
                            off as u64,
                            Bytes::from_static(bytes),
                            Stability::FileSync,
                        )
                        .await
                        .unwrap();
                        want[off..off + bytes.len()].copy_from_slice(bytes);
                    }
                }
            }
            assert!(e.flush(None).await.unwrap().parked.is_empty());
            assert_eq!(std::fs::read(fx.origin().join("w")).unwrap(), want, "step {step}");
            fx.filer.set_unreachable(true);
            assert!(
                read_all(&fx, &fh).await == want,
                "step {step}: read with the core filer away"
            );
            fx.filer.set_unreachable(false);
        }
    });
}

#[test]
fn a_dirty_file_changed_on_the_core_filer_is_a_conflict_that_weir_wins() {
    let fx = fixture(behind);
    block_on(async {
        let fh = new_file(&fx, "c").await;
        let e = &fx.engine;
        let ours = pattern(10_000, 7);
        e.write(&root(), &fh, 0, Bytes::from(ours.clone()), Stability::FileSync)
            .await
            .unwrap();
        assert!(e.flush(None).await.unwrap().parked.is_empty());
        // Clean: a change behind the cache is no conflict.
        std::fs::write(fx.origin().join("c"), b"theirs, before").unwrap();
        assert_eq!(e.dirty_status().await.unwrap().filers[0].conflicts, 0);
        e.write(&root(), &fh, 0, Bytes::from(ours.clone()), Stability::FileSync)
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(fx.origin().join("c"), b"theirs, while dirty here").unwrap();
        assert!(e.flush(None).await.unwrap().parked.is_empty());
        assert_eq!(
            std::fs::read(fx.origin().join("c")).unwrap(),
            ours,
            "Weir's changes win"
        );
        assert_eq!(e.dirty_status().await.unwrap().filers[0].conflicts, 1);
    });
}

#[test]
fn a_replay_waits_for_a_core_filer_that_does_not_answer_yet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("origin")).unwrap();
    let (engine, _) = start(dir.path(), Duration::ZERO, behind);
    let mut want = pattern(150_000, 5);
    let fh = block_on(async {
        let fh = new_file_on(&engine, "s").await;
        write_at(&engine, &fh, 0, Bytes::from(want.clone())).await;
        assert!(engine.flush(None).await.unwrap().parked.is_empty());
        write_at(&engine, &fh, 1000, Bytes::from_static(b"later")).await;
        fh
    });
    engine.shutdown();
    want[1000..1005].copy_from_slice(b"later");

    // The core filer answers only a second after the start began, past its
    // timeout: the replay asks it again, so the bytes no record covers
    // read as its own (not as zeros).
    let mut cfg = engine_config(dir.path());
    behind(&mut cfg);
    cfg.filer_timeout = Duration::from_millis(300);
    let local = cache_engine::filer::local::LocalFiler::open(&dir.path().join("origin")).unwrap();
    let filer = std::sync::Arc::new(cache_engine::filer::counting::CountingFiler::with_read_delay(
        local,
        Duration::ZERO,
    ));
    filer.set_unreachable(true);
    let f = filer.clone();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        f.set_unreachable(false);
    });
    let engine = cache_engine::Engine::start(cfg, filer).unwrap();
    waker.join().unwrap();
    block_on(async {
        let r = engine.read(&root(), &fh, 0, 1 << 20).await.unwrap();
        assert!(r.to_bytes()[..] == want[..], "read after a replay that waited");
    });
    engine.shutdown();
}

fn user(uid: u32) -> Credentials {
    Credentials {
        uid,
        gid: uid,
        gids: vec![uid],
        origin: 0,
    }
}

#[test]
fn creates_and_mkdirs_are_journaled_and_placed_whole_at_write_back_after_a_restart() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    std::fs::create_dir(&origin).unwrap();
    std::fs::set_permissions(&origin, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (engine, filer) = start(dir.path(), Duration::ZERO, behind);
    let data = pattern(70_000, 4);
    let (d, f) = block_on(async {
        let top = engine.root();
        let lookups = || filer.lookups.load(std::sync::atomic::Ordering::Relaxed);
        let before = lookups();
        let mode = |m| SetAttr {
            mode: Some(m),
            ..SetAttr::default()
        };
        let d = engine
            .mkdir(&user(1000), &top, b"shots", &mode(0o750))
            .await
            .unwrap();
        let f = engine
            .create(
                &user(1000),
                &d.handle,
                b"frame.exr",
                CreateMode::Guarded,
                &mode(0o640),
            )
            .await
            .unwrap();
        write_at(&engine, &f.handle, 0, Bytes::from(data.clone())).await;
        let chown = SetAttr {
            gid: Some(0),
            ..SetAttr::default()
        };
        engine.setattr(&root(), &f.handle, &chown, None).await.unwrap();
        assert_eq!(
            lookups(),
            before + 1,
            "only the name in a directory not made here was looked up on the core filer"
        );
        // Clients see it whole; the core filer has none of it yet.
        let (h, attr, _) = engine.lookup(&user(1000), &d.handle, b"frame.exr").await.unwrap();
        assert_eq!(h, f.handle);
        assert_eq!(
            (attr.mode, attr.uid, attr.gid, attr.size),
            (0o640, 1000, 0, 70_000)
        );
        let dattr = engine.getattr(&d.handle).await.unwrap();
        assert_eq!((dattr.mode, dattr.uid), (0o750, 1000));
        let (up, _, _) = engine.lookup(&user(1000), &d.handle, b"..").await.unwrap();
        assert_eq!(up, top, "its parent is where it was made, not the pool");
        assert_eq!(
            engine
                .create(&user(1000), &top, b"shots", CreateMode::Guarded, &mode(0o600))
                .await
                .err(),
            Some(Error::Exist)
        );
        assert!(
            engine.lookup(&user(1001), &d.handle, b"frame.exr").await.is_err(),
            "the mode it was made with stands: others may not search it"
        );
        assert!(!origin.join("shots").exists());
        (d.handle, f.handle)
    });
    engine.shutdown();

    // Replayed: the same handles, names and attributes.
    let (engine, _) = start(dir.path(), Duration::ZERO, behind);
    block_on(async {
        let (h, attr, _) = engine.lookup(&user(1000), &d, b"frame.exr").await.unwrap();
        assert_eq!(h, f);
        assert_eq!((attr.mode, attr.gid), (0o640, 0));
        assert_eq!(read_all_on(&engine, &f).await, data);
        // A listing shows the core filer's names: what is pending goes first.
        let top = engine.root();
        let list = engine.readdir(&root(), &top, 0, 0, 100).await.unwrap();
        let names: Vec<&[u8]> = list.entries.iter().map(|e| &e.name[..]).collect();
        assert_eq!(names, vec![&b"shots"[..]], "the pool is not listed");
        assert!(engine.flush(None).await.unwrap().parked.is_empty());
    });
    let m = std::fs::metadata(origin.join("shots/frame.exr")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 1000, 0));
    assert_eq!(std::fs::read(origin.join("shots/frame.exr")).unwrap(), data);
    let m = std::fs::metadata(origin.join("shots")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o750, 1000));
    block_on(async {
        let top = engine.root();
        assert_eq!(
            engine.lookup(&root(), &top, b".weir-pool").await.err(),
            Some(Error::NoEnt),
            "the pool is hidden"
        );
        // Removed through Weir once placed: nothing left behind.
        engine.remove(&user(1000), &d, b"frame.exr").await.unwrap();
        engine.rmdir(&user(1000), &top, b"shots").await.unwrap();
    });
    assert!(!origin.join("shots").exists());
    engine.shutdown();
}

#[test]
fn a_directory_made_here_is_written_back_before_it_is_removed() {
    let fx = fixture(behind);
    block_on(async {
        let (e, top) = (&fx.engine, fx.engine.root());
        let d = e.mkdir(&root(), &top, b"tmp", &SetAttr::default()).await.unwrap();
        let f = e
            .create(&root(), &d.handle, b"x", CreateMode::Guarded, &SetAttr::default())
            .await
            .unwrap();
        write_at(e, &f.handle, 0, Bytes::from_static(b"scratch")).await;
        assert_eq!(e.rmdir(&root(), &top, b"tmp").await.err(), Some(Error::NotEmpty));
        e.rename(&root(), &d.handle, b"x", &top, b"kept").await.unwrap();
        e.rmdir(&root(), &top, b"tmp").await.unwrap();
        assert!(e.flush(None).await.unwrap().parked.is_empty());
    });
    assert!(!fx.origin().join("tmp").exists());
    assert_eq!(std::fs::read(fx.origin().join("kept")).unwrap(), b"scratch");
}

#[test]
fn a_user_renames_between_directories_made_here_before_they_were_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    std::fs::create_dir(&origin).unwrap();
    std::os::unix::fs::chown(&origin, Some(1000), Some(1000)).unwrap();
    let (engine, _) = start(dir.path(), Duration::ZERO, behind);
    let alice = user(1000);
    block_on(async {
        let (e, top) = (&engine, engine.root());
        let d1 = e
            .mkdir(&alice, &top, b"d1", &SetAttr::default())
            .await
            .unwrap()
            .handle;
        let d2 = e
            .mkdir(&alice, &top, b"d2", &SetAttr::default())
            .await
            .unwrap()
            .handle;
        let f = e
            .create(&alice, &d1, b"f", CreateMode::Guarded, &SetAttr::default())
            .await
            .unwrap();
        e.write(
            &alice,
            &f.handle,
            0,
            Bytes::from_static(b"moving"),
            Stability::FileSync,
        )
        .await
        .unwrap();
        let sub = e
            .mkdir(&alice, &d1, b"sub", &SetAttr::default())
            .await
            .unwrap()
            .handle;
        e.create(&alice, &sub, b"x", CreateMode::Guarded, &SetAttr::default())
            .await
            .unwrap();
        // Goes to the core filer as alice, into directories that were root's
        // in the pool until written back.
        e.rename(&alice, &d1, b"f", &d2, b"g").await.unwrap();
        e.rename(&alice, &d1, b"sub", &d2, b"sub").await.unwrap();
        let list = e.readdir(&alice, &d2, 0, 0, 100).await.unwrap();
        let mut names: Vec<&[u8]> = list.entries.iter().map(|e| &e.name[..]).collect();
        names.sort();
        assert_eq!(names, vec![&b"g"[..], &b"sub"[..]]);
        e.rmdir(&alice, &top, b"d1").await.unwrap();
        assert!(e.flush(None).await.unwrap().parked.is_empty());
        assert_eq!(e.dirty_status().await.unwrap().filers[0].conflicts, 0);
    });
    assert_eq!(std::fs::read(origin.join("d2/g")).unwrap(), b"moving");
    assert!(origin.join("d2/sub/x").exists());
    assert!(!origin.join("d1").exists());
    engine.shutdown();
}
