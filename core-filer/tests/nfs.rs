//! The `nfs` core filer against nfs-ganesha (FSAL_VFS) exporting a temp
//! directory: what every method does in the backing directory (the answers
//! every back end owes are the contract suite's), handles across filer restarts (long ones through the map), an
//! upstream outage, and pipelined concurrency.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{mode, root, run, user, Nas};
use core_filer::nfs::NfsFiler;
use core_filer::types::*;
use core_filer::{CoreFiler, Error, FilerCreated};
use testbed::ganesha::Export;

fn unix_seconds() -> u64 {
    std::time::UNIX_EPOCH.elapsed().unwrap().as_secs()
}

async fn mk(f: &NfsFiler, dir: &FilerHandle, name: &str, node: NewNode) -> Result<FilerCreated, Error> {
    f.create(&root(), dir, name.as_bytes(), &node, &SetAttr::default())
        .await
}

/// What each method does in the exported directory, as the host sees it.
/// What every back end must answer (errors, paging, handles) is checked by
/// the contract suite (`tests/contract.rs`); this checks what is only true
/// of an NFS upstream over a directory.
#[test]
fn every_method_against_ganesha() {
    let nas = Export::start();
    let f = nas.filer();
    let c = root();
    let r = f.root();
    run(async {
        assert_eq!(f.name(), "nfs");
        let ra = f.getattr(&c, &r).await.unwrap();
        assert_eq!(ra.fileid, std::fs::metadata(nas.dir()).unwrap().ino());

        // CREATE (unchecked, exclusive): modes as asked, in the directory.
        let file = f
            .create(&c, &r, b"f", &NewNode::File(CreateMode::Unchecked), &mode(0o640))
            .await
            .unwrap();
        let meta = std::fs::metadata(nas.path("f")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(file.attr.fileid, meta.ino());
        f.create(
            &c,
            &r,
            b"x",
            &NewNode::File(CreateMode::Exclusive(77)),
            &mode(0o600),
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::metadata(nas.path("x")).unwrap().permissions().mode() & 0o7777,
            0o600
        );

        // WRITE, COMMIT: the bytes reach the directory, larger than one
        // WRITE of the server's too.
        f.write(
            &c,
            &file.handle,
            0,
            Bytes::from_static(b"hello world"),
            Stability::FileSync,
        )
        .await
        .unwrap();
        f.write(
            &c,
            &file.handle,
            11,
            Bytes::from_static(b"!"),
            Stability::Unstable,
        )
        .await
        .unwrap();
        f.commit(&c, &file.handle).await.unwrap();
        assert_eq!(std::fs::read(nas.path("f")).unwrap(), b"hello world!");
        let big = common::pattern(5 << 20 | 123, 3);
        let w = f
            .write(&c, &file.handle, 0, Bytes::from(big.clone()), Stability::DataSync)
            .await
            .unwrap();
        assert_eq!(w.count as usize, big.len());
        assert_eq!(std::fs::read(nas.path("f")).unwrap(), big);

        // MKDIR
        let d = f
            .create(&c, &r, b"d", &NewNode::Directory, &mode(0o750))
            .await
            .unwrap();
        let meta = std::fs::metadata(nas.path("d")).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o750);

        // SYMLINK
        let s = mk(&f, &r, "s", NewNode::Symlink(b"target/x".to_vec()))
            .await
            .unwrap();
        assert_eq!(s.attr.ftype, FileType::Symlink);
        assert_eq!(std::fs::read_link(nas.path("s")).unwrap(), Path::new("target/x"));

        // MKNOD
        let p = mk(&f, &r, "p", NewNode::Fifo).await.unwrap();
        assert_eq!(p.attr.ftype, FileType::Fifo);
        assert!(std::fs::symlink_metadata(nas.path("p"))
            .unwrap()
            .file_type()
            .is_fifo());
        let cd = mk(&f, &r, "null", NewNode::CharDev(1, 3)).await.unwrap();
        assert_eq!(cd.attr.ftype, FileType::CharDev);
        assert_eq!(cd.attr.rdev, (1, 3));
        let meta = std::fs::symlink_metadata(nas.path("null")).unwrap();
        assert!(meta.file_type().is_char_device());
        assert_eq!(meta.rdev(), libc::makedev(1, 3));
        let sock = mk(&f, &r, "sock", NewNode::Socket).await.unwrap();
        assert_eq!(sock.attr.ftype, FileType::Socket);
        assert_eq!(
            f.write(&c, &p.handle, 0, Bytes::from_static(b"x"), Stability::FileSync)
                .await
                .err(),
            Some(Error::Inval)
        );

        // SETATTR
        let t = Timespec {
            sec: 1_500_000_000,
            nsec: 0,
        };
        f.setattr(
            &c,
            &file.handle,
            &SetAttr {
                mode: Some(0o604),
                size: Some(3),
                uid: Some(1234),
                gid: Some(4321),
                mtime: SetTime::Client(t),
                atime: SetTime::ServerNow,
            },
        )
        .await
        .unwrap();
        let meta = std::fs::metadata(nas.path("f")).unwrap();
        assert_eq!(
            (meta.len(), meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (3, 0o604, 1234, 4321)
        );
        assert_eq!(meta.mtime(), t.sec);
        // NFSv3 has no times before 1970.
        let bad_time = SetAttr {
            mtime: SetTime::Client(Timespec { sec: -5, nsec: 0 }),
            ..SetAttr::default()
        };
        assert_eq!(
            f.setattr(&c, &file.handle, &bad_time).await.err(),
            Some(Error::Inval)
        );

        // LINK, RENAME
        f.link(&c, &file.handle, &d.handle, b"f2").await.unwrap();
        assert_eq!(
            std::fs::metadata(nas.path("d/f2")).unwrap().ino(),
            file.attr.fileid
        );
        f.rename(&c, &d.handle, b"f2", &r, b"g").await.unwrap();
        assert!(!nas.path("d/f2").exists());
        assert_eq!(std::fs::metadata(nas.path("g")).unwrap().ino(), file.attr.fileid);

        // READDIR lists what was made behind the filer's back too.
        for i in 0..150 {
            std::fs::write(nas.path(&format!("d/e{i:03}")), b"").unwrap();
        }
        let want: BTreeSet<Vec<u8>> = std::fs::read_dir(nas.path("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_encoded_bytes())
            .collect();
        let mut names = BTreeSet::new();
        let mut cookie = 0;
        loop {
            let page = f.readdir(&c, &d.handle, cookie, 64).await.unwrap();
            names.extend(page.entries.iter().map(|e| e.name.clone()));
            if page.eof {
                break;
            }
            cookie = page.entries.last().unwrap().cookie;
        }
        assert_eq!(names, want);

        // REMOVE, RMDIR
        f.remove(&c, &r, b"g", false).await.unwrap();
        assert!(!nas.path("g").exists());
        let sub = mk(&f, &d.handle, "sub", NewNode::Directory).await.unwrap();
        f.remove(&c, &d.handle, b"sub", true).await.unwrap();
        assert!(!nas.path("d/sub").exists());
        assert_eq!(f.getattr(&c, &sub.handle).await.err(), Some(Error::Stale));

        // The caller's identity reaches the upstream.
        let open = f
            .create(&c, &r, b"open", &NewNode::Directory, &mode(0o777))
            .await
            .unwrap();
        let owned = SetAttr {
            mode: Some(0o644),
            uid: Some(1000),
            gid: Some(1000),
            ..SetAttr::default()
        };
        f.create(
            &user(1000),
            &open.handle,
            b"bobs",
            &NewNode::File(CreateMode::Guarded),
            &owned,
        )
        .await
        .unwrap();
        let meta = std::fs::metadata(nas.path("open/bobs")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    });
}

#[test]
fn handles_survive_restarts_and_long_ones_go_through_the_map() {
    let nas = Export::start();
    std::fs::create_dir_all(nas.path("a/b")).unwrap();
    std::fs::write(nas.path("a/b/c"), b"data").unwrap();
    let mut cfg = nas.config();
    cfg.inline_handles = false;
    let walk = |f: &NfsFiler| {
        run(async {
            let a = f.lookup(&root(), &f.root(), b"a").await.unwrap().0;
            let b = f.lookup(&root(), &a, b"b").await.unwrap().0;
            let c = f.lookup(&root(), &b, b"c").await.unwrap().0;
            [f.root(), a, b, c]
        })
    };
    let first = nas.filer_with(&cfg, &nas.state());
    let hs = walk(&first);
    for h in hs {
        assert_eq!(h.as_bytes().len(), 17, "{h:?}");
        assert_eq!(h.as_bytes()[0], b'D');
    }
    drop(first);
    // A new filer over the same state directory knows every handle.
    let second = nas.filer_with(&cfg, &nas.state());
    assert_eq!(second.root(), hs[0]);
    run(async {
        let rd = second.read(&root(), &hs[3], 0, 10).await.unwrap();
        assert_eq!(&rd.data[..], b"data");
        assert_eq!(second.lookup_parent(&root(), &hs[2]).await.unwrap().0, hs[1]);
    });
    assert_eq!(walk(&second), hs);
    // One whose map lost them calls them stale; handles of no filer are bad.
    let other = tempfile::tempdir().unwrap();
    let third = nas.filer_with(&cfg, other.path());
    run(async {
        assert_eq!(third.getattr(&root(), &hs[3]).await.err(), Some(Error::Stale));
        let junk = FilerHandle::new(b"junk").unwrap();
        assert_eq!(third.getattr(&root(), &junk).await.err(), Some(Error::BadHandle));
    });
    // Inline handles (what ganesha's fit in) are the same in every instance.
    let inline_a = nas.filer();
    let inline_b = nas.filer_with(&nas.config(), other.path());
    assert_eq!(walk(&inline_a), walk(&inline_b));
    assert_ne!(walk(&inline_a)[3], hs[3]);
}

#[test]
fn upstream_outage_fails_within_the_bound_and_recovers() {
    let mut nas = Export::start();
    std::fs::write(nas.path("f"), b"before").unwrap();
    let mut cfg = nas.config();
    cfg.timeout = Duration::from_secs(2);
    cfg.attempt_timeout = Duration::from_millis(500);
    let f = nas.filer_with(&cfg, &nas.state());
    let rt = compio::runtime::Runtime::new().unwrap();
    let h = rt.block_on(async {
        let (h, _) = f.lookup(&root(), &f.root(), b"f").await.unwrap();
        assert_eq!(&f.read(&root(), &h, 0, 100).await.unwrap().data[..], b"before");
        let w = f
            .write(&root(), &h, 6, Bytes::from_static(b"+"), Stability::Unstable)
            .await
            .unwrap();
        assert_eq!(
            w.committed,
            Stability::Unstable,
            "ganesha answers unstable writes unstably"
        );
        h
    });
    nas.down();
    rt.block_on(async {
        for _ in 0..3 {
            let t = Instant::now();
            assert_eq!(f.getattr(&root(), &h).await.err(), Some(Error::Unavailable));
            let took = t.elapsed();
            assert!(took < Duration::from_secs(8), "{took:?}");
        }
    });
    nas.up();
    std::fs::write(nas.path("f"), b"after").unwrap();
    rt.block_on(async {
        // The server restarted (a new write verifier) before the unstable
        // write was committed: it may be lost, and COMMIT says so once.
        assert_eq!(f.commit(&root(), &h).await.err(), Some(Error::WritesLost));
        f.commit(&root(), &h).await.unwrap();
        assert_eq!(&f.read(&root(), &h, 0, 100).await.unwrap().data[..], b"after");
        f.write(&root(), &h, 0, Bytes::from_static(b"AFTER"), Stability::FileSync)
            .await
            .unwrap();
    });
    assert_eq!(std::fs::read(nas.path("f")).unwrap(), b"AFTER");
    // Calls in flight when the server dies (SIGKILL, no goodbye) fail
    // within the bound too, then all is well again.
    let pid = nas.server().unwrap().pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        testbed::process::signal(pid, libc::SIGKILL);
    });
    rt.block_on(async {
        let c = root();
        let t = Instant::now();
        let (mut ok, mut failed) = (0, 0);
        while t.elapsed() < Duration::from_secs(2) {
            let many: Vec<_> = (0..16).map(|i| f.read(&c, &h, i, 4)).collect();
            for r in futures::future::join_all(many).await {
                match r {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        assert_eq!(e, Error::Unavailable);
                        failed += 1;
                    }
                }
            }
        }
        assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    });
    killer.join().unwrap();
    nas.down();
    nas.up();
    rt.block_on(async { f.getattr(&root(), &h).await.unwrap() });
}

#[test]
fn a_restart_between_write_and_commit_on_other_threads_is_reported() {
    let mut nas = Export::start();
    std::fs::write(nas.path("f"), b"").unwrap();
    let f = nas.filer();
    let h = run(async { f.lookup(&root(), &f.root(), b"f").await.unwrap().0 });
    // The unstable write goes out from a thread (a shard) of its own.
    std::thread::scope(|s| {
        s.spawn(|| {
            run(async {
                let w = f
                    .write(
                        &root(),
                        &h,
                        0,
                        Bytes::from_static(b"unstable"),
                        Stability::Unstable,
                    )
                    .await
                    .unwrap();
                assert_eq!(w.committed, Stability::Unstable);
            })
        });
    });
    nas.down();
    // ganesha's write verifier is its start time in seconds.
    let started = unix_seconds();
    while unix_seconds() == started {
        std::thread::sleep(Duration::from_millis(50));
    }
    nas.up();
    run(async {
        assert_eq!(f.commit(&root(), &h).await.err(), Some(Error::WritesLost));
        f.commit(&root(), &h).await.unwrap();
    });
}

#[test]
fn many_concurrent_calls_are_pipelined() {
    let nas = Export::start();
    for i in 0..16 {
        std::fs::write(nas.path(&format!("f{i}")), common::pattern(100_000, i as u8)).unwrap();
    }
    for connections in [1, 3] {
        let mut cfg = nas.config();
        cfg.connections = connections;
        let f = nas.filer_with(&cfg, &nas.state());
        run(async {
            let mut hs = Vec::new();
            for i in 0..16 {
                hs.push(
                    f.lookup(&root(), &f.root(), format!("f{i}").as_bytes())
                        .await
                        .unwrap()
                        .0,
                );
            }
            let calls = (0..400).map(|n| {
                let (f, hs) = (&f, &hs);
                async move {
                    let i = n % 16;
                    let off = (n * 997) % 90_000;
                    let rd = f.read(&root(), &hs[i], off as u64, 4096).await.unwrap();
                    let want = common::pattern(100_000, i as u8);
                    assert_eq!(&rd.data[..], &want[off..off + 4096]);
                    if n % 7 == 0 {
                        assert_eq!(f.getattr(&root(), &hs[i]).await.unwrap().size, 100_000);
                    }
                }
            });
            futures::future::join_all(calls).await;
        });
    }
}
