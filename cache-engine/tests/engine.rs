//! The engine over a `local` core filer: caching, coalescing, read-ahead,
//! revalidation, restarts, an unreachable core filer, permissions, listings.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_engine::types::*;
use cache_engine::Error;
use common::*;

fn write_origin(fx: &Fixture, name: &str, data: &[u8]) {
    std::fs::write(fx.origin().join(name), data).unwrap();
}

async fn create_in_root(fx: &Fixture, name: &[u8]) -> cache_engine::Created {
    let (cred, dir, set) = (root(), fx.engine.root(), SetAttr::default());
    fx.engine
        .create(&cred, &dir, name, CreateMode::Unchecked, &set)
        .await
        .unwrap()
}

#[test]
fn sixty_four_cold_readers_make_one_core_filer_read() {
    let fx = fixture_with_delay(Duration::from_millis(100), |_| {});
    let data = pattern(64 << 10, 1);
    write_origin(&fx, "one-block", &data);
    block_on(async {
        let fh = walk(&fx.engine, "one-block").await.unwrap();
        let cred = root();
        let reads = (0..64).map(|_| fx.engine.read(&cred, &fh, 0, 64 << 10));
        for r in futures::future::join_all(reads).await {
            assert_eq!(r.unwrap().to_bytes(), data);
        }
    });
    assert_eq!(fx.filer.reads.load(Relaxed), 1);
}

#[test]
fn concurrent_readers_of_a_file_fetch_it_once() {
    let fx = fixture_with_delay(Duration::from_millis(2), |_| {});
    let size = 8 << 20;
    let data = pattern(size, 2);
    write_origin(&fx, "big", &data);
    block_on(async {
        let fh = walk(&fx.engine, "big").await.unwrap();
        let readers = (0..64).map(|i| {
            let engine = fx.engine.clone();
            let data = &data;
            async move {
                // Half read forwards, half backwards, in 1 MiB requests.
                let chunks: Vec<u64> = if i % 2 == 0 {
                    (0..8).collect()
                } else {
                    (0..8).rev().collect()
                };
                for c in chunks {
                    let r = engine.read(&root(), &fh, c << 20, 1 << 20).await.unwrap();
                    assert_eq!(
                        &r.to_bytes()[..],
                        &data[(c as usize) << 20..((c as usize) + 1) << 20]
                    );
                }
            }
        });
        futures::future::join_all(readers).await;
    });
    let fetched = fx.filer.read_bytes.load(Relaxed);
    assert!(
        fetched as f64 <= size as f64 * 1.01,
        "fetched {fetched} bytes for a {size}-byte file"
    );
}

#[test]
fn sequential_reads_are_read_ahead_and_hits_stay_local() {
    let fx = fixture(|_| {});
    let size = 4 << 20;
    let data = pattern(size, 3);
    write_origin(&fx, "seq", &data);
    block_on(async {
        let fh = walk(&fx.engine, "seq").await.unwrap();
        let mut off = 0;
        while off < size {
            let r = fx.engine.read(&root(), &fh, off as u64, 64 << 10).await.unwrap();
            assert_eq!(&r.to_bytes()[..], &data[off..off + (64 << 10)]);
            off += 64 << 10;
        }
        // 64 requests; read-ahead turned them into a few large core filer reads.
        let reads = fx.filer.reads.load(Relaxed);
        assert!(reads < 20, "{reads} core filer reads for 64 sequential requests");
        assert_eq!(fx.filer.read_bytes.load(Relaxed), size as u64);
        // Everything is cached now: no more core filer reads.
        let r = fx.engine.read(&root(), &fh, 0, 1 << 20).await.unwrap();
        assert_eq!(&r.to_bytes()[..], &data[..1 << 20]);
        assert_eq!(fx.filer.reads.load(Relaxed), reads);
    });
}

#[test]
fn random_reads_do_not_read_ahead() {
    let fx = fixture(|_| {});
    let data = pattern(4 << 20, 4);
    write_origin(&fx, "rand", &data);
    block_on(async {
        let fh = walk(&fx.engine, "rand").await.unwrap();
        for block in [10u64, 3, 40, 22] {
            let r = fx
                .engine
                .read(&root(), &fh, block * 65536 + 100, 1000)
                .await
                .unwrap();
            let at = block as usize * 65536 + 100;
            assert_eq!(&r.to_bytes()[..], &data[at..at + 1000]);
        }
    });
    assert_eq!(fx.filer.read_bytes.load(Relaxed), 4 * 65536);
}

#[test]
fn changes_behind_the_cache_show_after_the_verify_period() {
    let fx = fixture(|c| {
        c.policy.attr_verify = Duration::from_millis(200);
        c.policy.dir_verify = Duration::from_millis(200);
    });
    write_origin(&fx, "f", b"old contents");
    block_on(async {
        let fh = walk(&fx.engine, "f").await.unwrap();
        assert_eq!(
            &fx.engine.read(&root(), &fh, 0, 100).await.unwrap().to_bytes()[..],
            b"old contents"
        );
        let getattrs = fx.filer.getattrs.load(Relaxed);
        for _ in 0..10 {
            fx.engine.getattr(&fh).await.unwrap();
        }
        assert_eq!(
            fx.filer.getattrs.load(Relaxed),
            getattrs,
            "fresh attributes must come from the cache"
        );
        // Same size, new bytes, behind the engine's back.
        std::fs::write(fx.origin().join("f"), b"NEW contents").unwrap();
        std::fs::write(fx.origin().join("g"), b"a new file").unwrap();
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            &fx.engine.read(&root(), &fh, 0, 100).await.unwrap().to_bytes()[..],
            b"NEW contents"
        );
        let g = walk(&fx.engine, "g").await.unwrap();
        assert_eq!(fx.engine.getattr(&g).await.unwrap().size, 10);
        // Removed behind the engine's back: stale after the period.
        std::fs::remove_file(fx.origin().join("f")).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(fx.engine.getattr(&fh).await, Err(Error::Stale));
        assert_eq!(
            fx.engine.lookup(&root(), &fx.engine.root(), b"f").await.err(),
            Some(Error::NoEnt)
        );
    });
}

#[test]
fn a_cached_name_whose_file_was_removed_behind_the_cache_is_looked_up_again() {
    let fx = fixture(|c| {
        c.policy.attr_verify = Duration::ZERO;
        c.policy.dir_verify = Duration::from_secs(3600);
    });
    write_origin(&fx, "gone", b"x");
    write_origin(&fx, "again", b"old");
    block_on(async {
        let r = fx.engine.root();
        walk(&fx.engine, "gone").await.unwrap();
        walk(&fx.engine, "again").await.unwrap();
        std::fs::remove_file(fx.origin().join("gone")).unwrap();
        std::fs::remove_file(fx.origin().join("again")).unwrap();
        // The name is still trusted, but its file is gone: a lookup says so.
        assert_eq!(
            fx.engine.lookup(&root(), &r, b"gone").await.err(),
            Some(Error::NoEnt)
        );
        // An unchecked create over the lost name makes a new file.
        let set = SetAttr {
            size: Some(0),
            ..Default::default()
        };
        let made = fx
            .engine
            .create(&root(), &r, b"again", CreateMode::Unchecked, &set)
            .await
            .unwrap();
        fx.engine
            .write(
                &root(),
                &made.handle,
                0,
                Bytes::from_static(b"new"),
                Stability::FileSync,
            )
            .await
            .unwrap();
        assert_eq!(std::fs::read(fx.origin().join("again")).unwrap(), b"new");
        let (fh, attr, _) = fx.engine.lookup(&root(), &r, b"again").await.unwrap();
        assert_eq!((fh, attr.size), (made.handle, 3));
    });
}

#[test]
fn negative_lookups_are_cached_until_the_directory_changes() {
    let fx = fixture(|_| {});
    block_on(async {
        let r = fx.engine.root();
        assert_eq!(
            fx.engine.lookup(&root(), &r, b"nope").await.err(),
            Some(Error::NoEnt)
        );
        let lookups = fx.filer.lookups.load(Relaxed);
        assert_eq!(
            fx.engine.lookup(&root(), &r, b"nope").await.err(),
            Some(Error::NoEnt)
        );
        assert_eq!(fx.filer.lookups.load(Relaxed), lookups);
        // A create through the engine replaces the negative entry.
        fx.engine
            .create(&root(), &r, b"nope", CreateMode::Guarded, &SetAttr::default())
            .await
            .unwrap();
        assert!(fx.engine.lookup(&root(), &r, b"nope").await.is_ok());
    });
}

#[test]
fn a_directory_made_through_the_engine_answers_absent_names_itself() {
    let fx = fixture(|_| {});
    block_on(async {
        let r = fx.engine.root();
        let d = fx
            .engine
            .mkdir(&root(), &r, b"fresh", &SetAttr::default())
            .await
            .unwrap()
            .handle;
        let lookups = fx.filer.lookups.load(Relaxed);
        for name in [&b"a"[..], b"b", b"c"] {
            assert_eq!(
                fx.engine.lookup(&root(), &d, name).await.err(),
                Some(Error::NoEnt)
            );
            fx.engine
                .create(&root(), &d, name, CreateMode::Guarded, &SetAttr::default())
                .await
                .unwrap();
            assert!(fx.engine.lookup(&root(), &d, name).await.is_ok());
        }
        assert_eq!(
            fx.filer.lookups.load(Relaxed),
            lookups,
            "no LOOKUP reached the core filer"
        );
    });
}

#[test]
fn handles_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("origin/sub")).unwrap();
    std::fs::write(dir.path().join("origin/sub/file"), b"persistent").unwrap();
    let (engine, _) = start(dir.path(), Duration::ZERO, |_| {});
    let (fh, verifier) =
        block_on(async { (walk(&engine, "sub/file").await.unwrap(), engine.write_verifier()) });
    let root_before = engine.root();
    engine.shutdown();
    let (engine, _) = start(dir.path(), Duration::ZERO, |_| {});
    assert_eq!(engine.root(), root_before);
    assert_ne!(
        engine.write_verifier(),
        verifier,
        "the write verifier must change at restart"
    );
    block_on(async {
        assert_eq!(
            &engine.read(&root(), &fh, 0, 100).await.unwrap().to_bytes()[..],
            b"persistent"
        );
        let forged = cache_engine::FileHandle::from_bytes(&[1u8; 40]).unwrap();
        assert_eq!(engine.getattr(&forged).await, Err(Error::BadHandle));
    });
    engine.shutdown();
}

#[test]
fn the_nvme_tier_serves_what_ram_cannot_hold() {
    let fx = fixture(|c| c.ram_bytes = 256 << 10);
    let size = 4 << 20;
    let data = pattern(size, 5);
    write_origin(&fx, "f", &data);
    block_on(async {
        let fh = walk(&fx.engine, "f").await.unwrap();
        for pass in 0..3 {
            let mut off = 0;
            while off < size {
                let r = fx.engine.read(&root(), &fh, off as u64, 1 << 20).await.unwrap();
                assert_eq!(
                    &r.to_bytes()[..],
                    &data[off..off + (1 << 20)],
                    "pass {pass} offset {off}"
                );
                off += 1 << 20;
            }
        }
    });
    assert_eq!(
        fx.filer.read_bytes.load(Relaxed),
        size as u64,
        "later passes must come from the NVMe tier"
    );
}

#[test]
fn an_unreachable_core_filer_keeps_cached_data_served() {
    let fx = fixture(|c| {
        c.policy.attr_verify = Duration::from_millis(50);
        c.filer_timeout = Duration::from_millis(300);
    });
    write_origin(&fx, "cached", b"cached bytes");
    write_origin(&fx, "cold", b"never read");
    block_on(async {
        let cached = walk(&fx.engine, "cached").await.unwrap();
        let cold = walk(&fx.engine, "cold").await.unwrap();
        fx.engine.read(&root(), &cached, 0, 100).await.unwrap();
        fx.filer.set_unreachable(true);
        std::thread::sleep(Duration::from_millis(100));
        // Revalidation times out once; the cached bytes are still served.
        let t = Instant::now();
        assert_eq!(
            &fx.engine.read(&root(), &cached, 0, 100).await.unwrap().to_bytes()[..],
            b"cached bytes"
        );
        assert!(t.elapsed() < Duration::from_secs(3));
        // What is not cached fails after a bounded wait, with "try again later".
        let t = Instant::now();
        assert_eq!(
            fx.engine.read(&root(), &cold, 0, 100).await.err(),
            Some(Error::Unavailable)
        );
        assert!(t.elapsed() < Duration::from_secs(3));
        fx.filer.set_unreachable(false);
        // It recovers by itself.
        let mut ok = false;
        for _ in 0..100 {
            if let Ok(r) = fx.engine.read(&root(), &cold, 0, 100).await {
                assert_eq!(&r.to_bytes()[..], b"never read");
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(ok, "the engine did not recover after the core filer came back");
    });
}

#[test]
fn writes_go_through_and_reads_see_them() {
    let fx = fixture(|_| {});
    block_on(async {
        let r = fx.engine.root();
        let c = fx
            .engine
            .create(&root(), &r, b"w", CreateMode::Unchecked, &SetAttr::default())
            .await
            .unwrap();
        let data = pattern(300_000, 6);
        let w = fx
            .engine
            .write(
                &root(),
                &c.handle,
                0,
                Bytes::from(data.clone()),
                Stability::Unstable,
            )
            .await
            .unwrap();
        assert_eq!(w.count, 300_000);
        assert_eq!(w.wcc.after.unwrap().size, 300_000);
        assert_eq!(
            &fx.engine
                .read(&root(), &c.handle, 0, 300_000)
                .await
                .unwrap()
                .to_bytes()[..],
            &data[..]
        );
        // Overwrite in the middle of cached blocks.
        fx.engine
            .write(
                &root(),
                &c.handle,
                70_000,
                Bytes::from_static(b"XYZ"),
                Stability::FileSync,
            )
            .await
            .unwrap();
        let got = fx
            .engine
            .read(&root(), &c.handle, 69_999, 5)
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&got[..], &[data[69_999], b'X', b'Y', b'Z', data[70_003]]);
        let (_, verf) = fx.engine.commit(&root(), &c.handle).await.unwrap();
        assert_eq!(verf, fx.engine.write_verifier());
        // Truncate and extend: no stale bytes past the old end.
        let set = SetAttr {
            size: Some(10),
            ..Default::default()
        };
        fx.engine.setattr(&root(), &c.handle, &set, None).await.unwrap();
        fx.engine
            .write(
                &root(),
                &c.handle,
                20,
                Bytes::from_static(b"end"),
                Stability::FileSync,
            )
            .await
            .unwrap();
        let got = fx.engine.read(&root(), &c.handle, 0, 100).await.unwrap();
        assert!(got.eof);
        let mut want = data[..10].to_vec();
        want.extend_from_slice(&[0; 10]);
        want.extend_from_slice(b"end");
        assert_eq!(&got.to_bytes()[..], &want[..]);
        assert_eq!(std::fs::read(fx.origin().join("w")).unwrap(), want);
    });
}

#[test]
fn a_commit_that_lost_writes_says_so_and_changes_the_verifier() {
    let fx = fixture(|_| {});
    block_on(async {
        let r = fx.engine.root();
        let c = fx
            .engine
            .create(&root(), &r, b"lost", CreateMode::Unchecked, &SetAttr::default())
            .await
            .unwrap();
        let w = fx
            .engine
            .write(
                &root(),
                &c.handle,
                0,
                Bytes::from_static(b"gone"),
                Stability::Unstable,
            )
            .await
            .unwrap();
        fx.filer.lose_next_commit();
        assert_eq!(
            fx.engine.commit(&root(), &c.handle).await.err(),
            Some(Error::WritesLost)
        );
        assert_ne!(fx.engine.write_verifier(), w.verifier);
        let (_, verf) = fx.engine.commit(&root(), &c.handle).await.unwrap();
        assert_eq!(verf, fx.engine.write_verifier());
    });
}

#[test]
fn written_bytes_stay_cached_and_overlapping_writes_do_not() {
    let fx = fixture(|_| {});
    block_on(async {
        let c = create_in_root(&fx, b"w").await;
        let cred = root();
        let write = |off: u64, data: Vec<u8>| {
            fx.engine
                .write(&cred, &c.handle, off, data.into(), Stability::Unstable)
        };
        let read_all = || async {
            let r = fx.engine.read(&root(), &c.handle, 0, 1 << 20).await.unwrap();
            assert!(r.eof);
            r.to_bytes()
        };
        let mut want = pattern(300_000, 7);
        write(0, want.clone()).await.unwrap();
        // Whole blocks and the block ending at EOF come from the write itself;
        // a small overwrite merges into the cached block it lands in.
        write(70_000, b"XYZ".to_vec()).await.unwrap();
        want[70_000..70_003].copy_from_slice(b"XYZ");
        assert_eq!(&read_all().await[..], &want[..]);
        assert_eq!(fx.filer.reads.load(Relaxed), 0);

        // Two writes of one block in flight at once: the core filer may apply
        // them in either order, so the block is read back from it.
        // (Slowed down so that they are, however loaded the machine.)
        fx.filer.set_write_delay(Duration::from_millis(50));
        let (a, b) = futures::join!(write(4096, vec![b'a'; 8192]), write(8192, vec![b'b'; 8192]));
        fx.filer.set_write_delay(Duration::ZERO);
        a.unwrap();
        b.unwrap();
        let on_disk = std::fs::read(fx.origin().join("w")).unwrap();
        assert_eq!(&read_all().await[..], &on_disk[..]);
        assert!(fx.filer.reads.load(Relaxed) > 0);
        assert!(on_disk[4096..8192].iter().all(|&x| x == b'a'));
        assert!(on_disk[12288..16384].iter().all(|&x| x == b'b'));

        // Past EOF the block before the write reads as zeros; truncation then
        // leaves no written byte behind.
        write(400_000, b"end".to_vec()).await.unwrap();
        let got = read_all().await;
        assert_eq!(got.len(), 400_003);
        assert_eq!(&got[..], &std::fs::read(fx.origin().join("w")).unwrap()[..]);
        let set = SetAttr {
            size: Some(399_000),
            ..Default::default()
        };
        fx.engine.setattr(&root(), &c.handle, &set, None).await.unwrap();
        write(399_500, b"!".to_vec()).await.unwrap();
        let got = read_all().await;
        let mut tail = vec![0u8; 500];
        tail.push(b'!');
        assert_eq!(&got[399_000..], &tail[..]);
        assert_eq!(&got[..], &std::fs::read(fx.origin().join("w")).unwrap()[..]);

        // A write that finds the file changed behind the cache drops what the
        // cache held of it.
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(fx.origin().join("w"))
                .unwrap();
            f.write_all_at(b"behind", 0).unwrap();
            f.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1))
                .unwrap();
        }
        write(399_600, b"?".to_vec()).await.unwrap();
        assert_eq!(
            &read_all().await[..],
            &std::fs::read(fx.origin().join("w")).unwrap()[..]
        );
    });
}

#[test]
fn written_bytes_over_a_page_cache_are_read_back_once_then_cached() {
    let fx = fixture(|_| {});
    // The `local` filer's page cache shows through.
    fx.filer.set_passing_caches_writes(true);
    block_on(async {
        let c = create_in_root(&fx, b"w").await;
        let want = pattern(300_000, 9);
        fx.engine
            .write(&root(), &c.handle, 0, want.clone().into(), Stability::Unstable)
            .await
            .unwrap();
        let read_all = || async {
            let r = fx.engine.read(&root(), &c.handle, 0, 1 << 20).await.unwrap();
            r.to_bytes()
        };
        assert_eq!(&read_all().await[..], &want[..]);
        let fetched = fx.filer.reads.load(Relaxed);
        assert!(fetched > 0, "written bytes were kept, not read back");
        assert_eq!(&read_all().await[..], &want[..]);
        assert_eq!(fx.filer.reads.load(Relaxed), fetched);
    });
}

#[test]
fn written_bytes_ram_cannot_hold_go_to_nvme() {
    let fx = fixture(|c| c.ram_bytes = 512 << 10);
    block_on(async {
        let c = create_in_root(&fx, b"w").await;
        let data = pattern(4 << 20, 8);
        for (i, chunk) in data.chunks(1 << 20).enumerate() {
            let off = (i << 20) as u64;
            let chunk = Bytes::copy_from_slice(chunk);
            fx.engine
                .write(&root(), &c.handle, off, chunk, Stability::Unstable)
                .await
                .unwrap();
        }
        let r = fx.engine.read(&root(), &c.handle, 0, 4 << 20).await.unwrap();
        assert_eq!(&r.to_bytes()[..], &data[..]);
    });
    assert_eq!(fx.filer.reads.load(Relaxed), 0);
}

#[test]
fn permissions_follow_posix() {
    let fx = fixture(|_| {});
    let alice = Credentials {
        uid: 1000,
        gid: 1000,
        gids: vec![],
        origin: 0,
    };
    let bob = Credentials {
        uid: 1001,
        gid: 1001,
        gids: vec![],
        origin: 0,
    };
    block_on(async {
        let r = fx.engine.root();
        let mode = |m| SetAttr {
            mode: Some(m),
            ..Default::default()
        };
        let pub_dir = fx.engine.mkdir(&root(), &r, b"pub", &mode(0o1777)).await.unwrap();
        let secret = fx
            .engine
            .create(&root(), &r, b"secret", CreateMode::Guarded, &mode(0o600))
            .await
            .unwrap();
        assert_eq!(
            fx.engine.read(&alice, &secret.handle, 0, 10).await.err(),
            Some(Error::Access)
        );
        let w = fx
            .engine
            .write(
                &alice,
                &secret.handle,
                0,
                Bytes::from_static(b"x"),
                Stability::FileSync,
            )
            .await;
        assert_eq!(w.err(), Some(Error::Access));
        // Root's directory: alice may not create in it.
        let denied = fx
            .engine
            .create(&alice, &r, b"mine", CreateMode::Guarded, &mode(0o644))
            .await;
        assert_eq!(denied.err(), Some(Error::Access));
        // In the sticky directory alice creates, bob may not remove.
        let f = fx
            .engine
            .create(&alice, &pub_dir.handle, b"a", CreateMode::Guarded, &mode(0o644))
            .await
            .unwrap();
        assert_eq!((f.attr.uid, f.attr.gid), (1000, 1000));
        assert_eq!(
            fx.engine.remove(&bob, &pub_dir.handle, b"a").await.err(),
            Some(Error::Access)
        );
        let chown = SetAttr {
            uid: Some(1001),
            ..Default::default()
        };
        assert_eq!(
            fx.engine.setattr(&alice, &f.handle, &chown, None).await.err(),
            Some(Error::Perm)
        );
        fx.engine.remove(&alice, &pub_dir.handle, b"a").await.unwrap();
        let (granted, _) = fx
            .engine
            .access(&bob, &secret.handle, access::READ | access::MODIFY)
            .await
            .unwrap();
        assert_eq!(granted, 0);
    });
}

#[test]
fn files_made_through_the_engine_are_listed_without_a_probe_of_each() {
    let fx = fixture(|_| {});
    block_on(async {
        let e = &fx.engine;
        let d = e
            .mkdir(&root(), &e.root(), b"d", &SetAttr::default())
            .await
            .unwrap()
            .handle;
        let mut made = std::collections::HashMap::new();
        for i in 0..300u32 {
            let name = format!("f{i}");
            let set = SetAttr {
                size: Some(u64::from(i)),
                ..Default::default()
            };
            let c = e
                .create(&root(), &d, name.as_bytes(), CreateMode::Guarded, &set)
                .await
                .unwrap();
            made.insert(name, (c.handle, c.attr.fileid));
        }
        let list_all = || async {
            let (mut cookie, mut verf, mut seen) = (0, 0, Vec::new());
            loop {
                let page = e.readdir_plus(&root(), &d, cookie, verf, 64).await.unwrap();
                verf = page.verifier;
                for en in page.entries {
                    cookie = en.cookie;
                    seen.push(en);
                }
                if page.eof {
                    return seen;
                }
            }
        };
        let pluses = fx.filer.readdir_pluses.load(Relaxed);
        let seen = list_all().await;
        assert_eq!(seen.len(), 300);
        for en in &seen {
            let name = String::from_utf8(en.name.clone()).unwrap();
            let (fh, attr) = en.object.unwrap();
            assert_eq!((fh, attr.fileid), made[&name]);
            assert_eq!(attr.size, name[1..].parse::<u64>().unwrap());
        }
        assert_eq!(
            fx.filer.readdir_pluses.load(Relaxed),
            pluses,
            "every name was known"
        );
        // A name the cache has never seen: that listing probes each entry.
        std::fs::write(fx.origin().join("d/behind"), b"12345").unwrap();
        e.create(&root(), &d, b"last", CreateMode::Guarded, &SetAttr::default())
            .await
            .unwrap();
        let seen = list_all().await;
        assert_eq!(seen.len(), 302);
        let behind = seen.iter().find(|en| en.name == b"behind").unwrap();
        assert_eq!(behind.object.unwrap().1.size, 5);
        assert!(fx.filer.readdir_pluses.load(Relaxed) > pluses);
    });
}

#[test]
fn a_large_listing_is_read_from_the_core_filer_as_far_as_it_is_listed() {
    let fx = fixture(|_| {});
    std::fs::create_dir(fx.origin().join("big")).unwrap();
    for i in 0..3000 {
        std::fs::write(fx.origin().join(format!("big/f{i}")), b"").unwrap();
    }
    block_on(async {
        let e = &fx.engine;
        let d = walk(e, "big").await.unwrap();
        let before = fx.filer.readdirs.load(Relaxed);
        let first = e.readdir_plus(&root(), &d, 0, 0, 100).await.unwrap();
        assert_eq!(first.entries.len(), 100);
        assert!(!first.eof);
        assert_eq!(
            fx.filer.readdirs.load(Relaxed) - before,
            1,
            "one page, not the directory"
        );
        let (mut cookie, mut names) = (first.entries[99].cookie, 100);
        loop {
            let page = e
                .readdir_plus(&root(), &d, cookie, first.verifier, 100)
                .await
                .unwrap();
            names += page.entries.len();
            assert!(page.entries.iter().all(|en| en.object.is_some()));
            if page.eof {
                break;
            }
            cookie = page.entries.last().unwrap().cookie;
        }
        assert_eq!(names, 3000);
        let pages = fx.filer.readdirs.load(Relaxed) - before;
        assert_eq!(pages, 3, "3000 entries in pages of 1024, each read once");
        // Listed again: all from the cache.
        let again = e.readdir(&root(), &d, 0, 0, 5000).await.unwrap();
        assert_eq!((again.entries.len(), again.eof), (3000, true));
        assert_eq!(fx.filer.readdirs.load(Relaxed) - before, pages);
    });
}

#[test]
fn listings_resume_from_cookies_across_eviction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("origin/d")).unwrap();
    for i in 0..1000 {
        std::fs::write(dir.path().join(format!("origin/d/entry-{i:04}")), b"").unwrap();
    }
    let (engine, _) = start(dir.path(), Duration::ZERO, |_| {});
    let (d, first, verf) = block_on(async {
        let d = walk(&engine, "d").await.unwrap();
        let first = engine.readdir(&root(), &d, 0, 0, 37).await.unwrap();
        (d, first, 0)
    });
    let _ = verf;
    assert_eq!(first.entries.len(), 37);
    engine.shutdown();
    // A new engine has nothing cached; the cookie still resumes the listing.
    let (engine, _) = start(dir.path(), Duration::ZERO, |_| {});
    let names = block_on(async {
        let mut names: Vec<Vec<u8>> = first.entries.iter().map(|e| e.name.clone()).collect();
        let mut cookie = first.entries.last().unwrap().cookie;
        loop {
            let page = engine
                .readdir_plus(&root(), &d, cookie, first.verifier, 37)
                .await
                .unwrap();
            for e in &page.entries {
                let (_, attr) = e.object.unwrap();
                assert_eq!(attr.fileid, e.fileid);
                names.push(e.name.clone());
            }
            if page.eof {
                break;
            }
            cookie = page.entries.last().unwrap().cookie;
        }
        assert_eq!(
            engine.readdir(&root(), &d, cookie, 12345, 10).await.err(),
            Some(Error::BadCookie)
        );
        names
    });
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 1000, "every entry exactly once");
    assert_eq!(names.len(), 1000);
    engine.shutdown();
}

#[test]
fn lookup_of_dot_and_dotdot_stays_inside() {
    let fx = fixture(|_| {});
    std::fs::create_dir_all(fx.origin().join("a/b")).unwrap();
    block_on(async {
        let r = fx.engine.root();
        let b = walk(&fx.engine, "a/b").await.unwrap();
        let a = walk(&fx.engine, "a").await.unwrap();
        assert_eq!(fx.engine.lookup(&root(), &b, b"..").await.unwrap().0, a);
        assert_eq!(fx.engine.lookup(&root(), &b, b".").await.unwrap().0, b);
        assert_eq!(fx.engine.lookup(&root(), &r, b"..").await.unwrap().0, r);
        for bad in [&b"a/b"[..], b"", b"x\0y"] {
            assert_eq!(fx.engine.lookup(&root(), &r, bad).await.err(), Some(Error::Inval));
        }
    });
}

#[test]
fn cache_size_is_split_between_pinned_shards() {
    let fx = fixture(|c| {
        c.shards = 0;
        c.pin_threads = true;
        c.cache_bytes = 16 << 20;
        c.segment_size = 1 << 20;
    });
    let total: u64 = std::fs::read_dir(fx.dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(
        total,
        16 << 20,
        "the configured cache size is the total over all shards"
    );
    assert_eq!(
        fx.engine.shard_count(),
        std::thread::available_parallelism().unwrap().get()
    );
}

#[test]
fn prefetch_fills_the_cache_without_returning_bytes() {
    let fx = fixture(|_| {});
    let size = (3 << 20) + 1000;
    let data = pattern(size, 9);
    write_origin(&fx, "warm", &data);
    block_on(async {
        let fh = walk(&fx.engine, "warm").await.unwrap();
        // A first piece, then the whole file: only what was missing is fetched.
        let p = fx.engine.prefetch(&root(), &fh, 0, 100 << 10).await.unwrap();
        assert_eq!((p.cached, p.fetched, p.attr.size), (0, 100 << 10, size as u64));
        let p = fx.engine.prefetch(&root(), &fh, 0, 8 << 20).await.unwrap();
        // The first two 64 KiB blocks came in whole with the first call.
        assert_eq!(p.cached, 128 << 10);
        assert_eq!(p.fetched, size as u64 - (128 << 10));
        assert_eq!(fx.filer.read_bytes.load(Relaxed), size as u64);
        let reads = fx.filer.reads.load(Relaxed);
        let p = fx.engine.prefetch(&root(), &fh, 0, 8 << 20).await.unwrap();
        assert_eq!((p.cached, p.fetched), (size as u64, 0));
        // Reads are now hits, and return the file's bytes.
        let mut off = 0;
        while off < size {
            let r = fx.engine.read(&root(), &fh, off as u64, 1 << 20).await.unwrap();
            let end = (off + (1 << 20)).min(size);
            assert_eq!(&r.to_bytes()[..], &data[off..end]);
            off = end;
        }
        assert_eq!(fx.filer.reads.load(Relaxed), reads);
        // Past the end, and on a directory.
        let p = fx.engine.prefetch(&root(), &fh, size as u64, 10).await.unwrap();
        assert_eq!((p.cached, p.fetched), (0, 0));
        let root_fh = fx.engine.root();
        assert_eq!(
            fx.engine.prefetch(&root(), &root_fh, 0, 10).await.unwrap_err(),
            Error::IsDir
        );
    });
}

#[test]
fn parents_are_cached_and_follow_a_moved_directory() {
    let fx = fixture(|_| {});
    for d in ["a/sub", "b"] {
        std::fs::create_dir_all(fx.origin().join(d)).unwrap();
    }
    block_on(async {
        let (a, b, sub) = (
            walk(&fx.engine, "a").await.unwrap(),
            walk(&fx.engine, "b").await.unwrap(),
            walk(&fx.engine, "a/sub").await.unwrap(),
        );
        assert_eq!(fx.engine.lookup(&root(), &sub, b"..").await.unwrap().0, a);
        let before = fx.filer.lookups.load(Relaxed);
        for _ in 0..5 {
            assert_eq!(fx.engine.lookup(&root(), &sub, b"..").await.unwrap().0, a);
        }
        assert_eq!(
            fx.filer.lookups.load(Relaxed),
            before,
            "`..` answered from the cache"
        );
        fx.engine.rename(&root(), &a, b"sub", &b, b"sub").await.unwrap();
        assert_eq!(fx.engine.lookup(&root(), &sub, b"..").await.unwrap().0, b);
    });
}

/// Attributes answered without a hop to the owning shard are never older
/// than the last change made through the engine, on any file of a directory
/// (whose files are spread over the shards).
#[test]
fn getattr_sees_every_change_made_through_the_engine_at_once() {
    let fx = fixture(|c| c.policy.attr_verify = Duration::from_secs(3600));
    block_on(async {
        let cred = root();
        for i in 0..16u32 {
            let name = format!("f{i}");
            let c = create_in_root(&fx, name.as_bytes()).await;
            let fh = c.handle;
            assert_eq!(fx.engine.getattr(&fh).await.unwrap().size, 0);
            let data = Bytes::from(vec![7u8; 1000 + i as usize]);
            fx.engine
                .write(&cred, &fh, 0, data, Stability::FileSync)
                .await
                .unwrap();
            assert_eq!(fx.engine.getattr(&fh).await.unwrap().size, 1000 + u64::from(i));
            let set = SetAttr {
                mode: Some(0o600),
                size: Some(10),
                ..SetAttr::default()
            };
            fx.engine.setattr(&cred, &fh, &set, None).await.unwrap();
            let a = fx.engine.getattr(&fh).await.unwrap();
            assert_eq!((a.size, a.mode & 0o7777), (10, 0o600));
            let linked = format!("l{i}");
            fx.engine
                .link(&cred, &fh, &fx.engine.root(), linked.as_bytes())
                .await
                .unwrap();
            assert_eq!(fx.engine.getattr(&fh).await.unwrap().nlink, 2);
            fx.engine
                .remove(&cred, &fx.engine.root(), linked.as_bytes())
                .await
                .unwrap();
            assert_eq!(fx.engine.getattr(&fh).await.unwrap().nlink, 1);
            fx.engine
                .remove(&cred, &fx.engine.root(), name.as_bytes())
                .await
                .unwrap();
            assert!(matches!(fx.engine.getattr(&fh).await, Err(Error::Stale)));
        }
    });
}

#[test]
fn a_job_that_panics_fails_its_call_and_the_shard_serves_on() {
    let fx = fixture(|c| c.shards = 1);
    write_origin(&fx, "f", b"still here");
    // Panics in its first step (run at once) and in a later one (as a task).
    let now = fx.engine.run_on(0, || async { panic!("first step") });
    assert!(block_on(now).is_err());
    let later = fx.engine.run_on(0, || async {
        compio::time::sleep(std::time::Duration::from_millis(1)).await;
        panic!("later step")
    });
    assert!(block_on(later).is_err());
    block_on(async {
        let fh = walk(&fx.engine, "f").await.unwrap();
        let r = fx.engine.read(&root(), &fh, 0, 100).await.unwrap();
        assert_eq!(r.to_bytes(), &b"still here"[..]);
    });
}
