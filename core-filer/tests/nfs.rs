//! The `nfs` core filer against nfs-ganesha (FSAL_VFS) exporting a temp
//! directory: every method's success and error paths checked in the backing
//! directory, handles across filer restarts (long ones through the map), an
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

#[test]
fn every_method_against_ganesha() {
    let nas = Export::start();
    let f = nas.filer();
    let c = root();
    let r = f.root();
    run(async {
        assert_eq!(f.name(), "nfs");
        let ra = f.getattr(&c, &r).await.unwrap();
        assert_eq!(ra.ftype, FileType::Directory);
        assert_eq!(ra.fileid, std::fs::metadata(nas.dir()).unwrap().ino());

        // CREATE (unchecked, guarded, exclusive)
        let file = f
            .create(&c, &r, b"f", &NewNode::File(CreateMode::Unchecked), &mode(0o640))
            .await
            .unwrap();
        let meta = std::fs::metadata(nas.path("f")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(file.attr.fileid, meta.ino());
        assert_eq!(file.attr.ftype, FileType::Regular);
        assert!(file.dir_wcc.after.is_some());
        let e = f
            .create(&c, &r, b"f", &NewNode::File(CreateMode::Guarded), &mode(0o600))
            .await;
        assert_eq!(e.err(), Some(Error::Exist));
        let x1 = f
            .create(
                &c,
                &r,
                b"x",
                &NewNode::File(CreateMode::Exclusive(77)),
                &mode(0o600),
            )
            .await
            .unwrap();
        let x2 = f
            .create(
                &c,
                &r,
                b"x",
                &NewNode::File(CreateMode::Exclusive(77)),
                &mode(0o600),
            )
            .await
            .unwrap();
        assert_eq!(x1.handle, x2.handle);
        assert_eq!(
            std::fs::metadata(nas.path("x")).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        let e = f
            .create(
                &c,
                &r,
                b"x",
                &NewNode::File(CreateMode::Exclusive(78)),
                &mode(0o600),
            )
            .await;
        assert_eq!(e.err(), Some(Error::Exist));

        // WRITE, COMMIT, READ
        let w = f
            .write(
                &c,
                &file.handle,
                0,
                Bytes::from_static(b"hello world"),
                Stability::FileSync,
            )
            .await
            .unwrap();
        assert_eq!(w.count, 11);
        assert_eq!(w.committed, Stability::FileSync);
        assert_eq!(w.wcc.after.unwrap().size, 11);
        let w = f
            .write(
                &c,
                &file.handle,
                11,
                Bytes::from_static(b"!"),
                Stability::Unstable,
            )
            .await
            .unwrap();
        assert_eq!(w.count, 1);
        f.commit(&c, &file.handle).await.unwrap();
        assert_eq!(std::fs::read(nas.path("f")).unwrap(), b"hello world!");
        let rd = f.read(&c, &file.handle, 0, 5).await.unwrap();
        assert_eq!(&rd.data[..], b"hello");
        assert!(!rd.eof);
        let rd = f.read(&c, &file.handle, 6, 100).await.unwrap();
        assert_eq!(&rd.data[..], b"world!");
        assert!(rd.eof);
        let rd = f.read(&c, &file.handle, 1000, 10).await.unwrap();
        assert!(rd.data.is_empty() && rd.eof);
        // Larger than one WRITE and one READ of the server's: split and short.
        let big = common::pattern(5 << 20 | 123, 3);
        let w = f
            .write(&c, &file.handle, 0, Bytes::from(big.clone()), Stability::DataSync)
            .await
            .unwrap();
        assert_eq!(w.count as usize, big.len());
        assert!(w.committed >= Stability::DataSync);
        assert_eq!(std::fs::read(nas.path("f")).unwrap(), big);
        let mut got = Vec::new();
        loop {
            let rd = f
                .read(&c, &file.handle, got.len() as u64, 16 << 20)
                .await
                .unwrap();
            assert!(!rd.data.is_empty() || rd.eof);
            got.extend_from_slice(&rd.data);
            if rd.eof {
                break;
            }
        }
        assert_eq!(got, big);

        // LOOKUP, and names that never reach the wire
        let (h, a) = f.lookup(&c, &r, b"f").await.unwrap();
        assert_eq!(h, file.handle);
        assert_eq!(a.size, big.len() as u64);
        assert_eq!(f.lookup(&c, &r, b"nope").await.err(), Some(Error::NoEnt));
        assert_eq!(f.lookup(&c, &file.handle, b"x").await.err(), Some(Error::NotDir));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert_eq!(f.lookup(&c, &r, bad).await.err(), Some(Error::Inval), "{bad:?}");
            assert_eq!(
                mk(&f, &r, std::str::from_utf8(bad).unwrap(), NewNode::Directory)
                    .await
                    .err(),
                Some(Error::Inval)
            );
            assert_eq!(f.remove(&c, &r, bad, false).await.err(), Some(Error::Inval));
            assert_eq!(f.rename(&c, &r, b"f", &r, bad).await.err(), Some(Error::Inval));
            assert_eq!(f.link(&c, &file.handle, &r, bad).await.err(), Some(Error::Inval));
        }
        let long = vec![b'n'; 256];
        assert_eq!(f.lookup(&c, &r, &long).await.err(), Some(Error::NameTooLong));

        // MKDIR, LOOKUP ".."
        let d = f
            .create(&c, &r, b"d", &NewNode::Directory, &mode(0o750))
            .await
            .unwrap();
        let meta = std::fs::metadata(nas.path("d")).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
        assert_eq!(
            mk(&f, &r, "d", NewNode::Directory).await.err(),
            Some(Error::Exist)
        );
        assert_eq!(
            mk(&f, &file.handle, "y", NewNode::Directory).await.err(),
            Some(Error::NotDir)
        );
        let (p, pa) = f.lookup_parent(&c, &d.handle).await.unwrap();
        assert_eq!(p, r);
        assert_eq!(pa.fileid, ra.fileid);
        let (p, _) = f.lookup_parent(&c, &r).await.unwrap();
        assert_eq!(p, r);
        let sub = mk(&f, &d.handle, "sub", NewNode::Directory).await.unwrap();
        assert_eq!(f.lookup_parent(&c, &sub.handle).await.unwrap().0, d.handle);

        // SYMLINK, READLINK
        let s = mk(&f, &r, "s", NewNode::Symlink(b"target/x".to_vec()))
            .await
            .unwrap();
        assert_eq!(s.attr.ftype, FileType::Symlink);
        assert_eq!(std::fs::read_link(nas.path("s")).unwrap(), Path::new("target/x"));
        assert_eq!(f.readlink(&c, &s.handle).await.unwrap(), b"target/x");
        assert_eq!(
            mk(&f, &r, "s2", NewNode::Symlink(Vec::new())).await.err(),
            Some(Error::Inval)
        );
        // A lookup does not follow the symlink.
        let (_, la) = f.lookup(&c, &r, b"s").await.unwrap();
        assert_eq!(la.ftype, FileType::Symlink);

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

        // SETATTR
        let t = Timespec {
            sec: 1_500_000_000,
            nsec: 0,
        };
        let wcc = f
            .setattr(
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
        let after = wcc.after.unwrap();
        assert_eq!(
            (after.size, after.mode, after.uid, after.gid),
            (3, 0o604, 1234, 4321)
        );
        assert_eq!(wcc.before.unwrap().size, big.len() as u64);
        let meta = std::fs::metadata(nas.path("f")).unwrap();
        assert_eq!(
            (meta.len(), meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (3, 0o604, 1234, 4321)
        );
        assert_eq!(meta.mtime(), t.sec);
        assert!(f
            .setattr(
                &c,
                &d.handle,
                &SetAttr {
                    size: Some(0),
                    ..SetAttr::default()
                }
            )
            .await
            .is_err());
        let bad_time = SetAttr {
            mtime: SetTime::Client(Timespec { sec: -5, nsec: 0 }),
            ..SetAttr::default()
        };
        assert_eq!(
            f.setattr(&c, &file.handle, &bad_time).await.err(),
            Some(Error::Inval)
        );

        // LINK
        let (la, lw) = f.link(&c, &file.handle, &d.handle, b"f2").await.unwrap();
        assert_eq!(la.nlink, 2);
        assert!(lw.after.is_some());
        assert_eq!(
            std::fs::metadata(nas.path("d/f2")).unwrap().ino(),
            file.attr.fileid
        );
        assert_eq!(
            f.link(&c, &file.handle, &d.handle, b"f2").await.err(),
            Some(Error::Exist)
        );
        assert!(f.link(&c, &d.handle, &r, b"dirlink").await.is_err());
        assert_eq!(
            f.link(&c, &file.handle, &file.handle, b"z").await.err(),
            Some(Error::NotDir)
        );

        // RENAME
        let (fw, tw) = f.rename(&c, &d.handle, b"f2", &r, b"g").await.unwrap();
        assert!(fw.after.is_some() && tw.after.is_some());
        assert!(!nas.path("d/f2").exists());
        assert_eq!(std::fs::metadata(nas.path("g")).unwrap().ino(), file.attr.fileid);
        assert_eq!(
            f.rename(&c, &r, b"missing", &r, b"h").await.err(),
            Some(Error::NoEnt)
        );
        assert!(f.rename(&c, &r, b"g", &r, b"d").await.is_err());
        assert!(nas.path("d").is_dir() && nas.path("g").is_file());

        // READDIR, READDIRPLUS, paged
        for i in 0..150 {
            std::fs::write(nas.path(&format!("d/e{i:03}")), b"").unwrap();
        }
        let want: BTreeSet<Vec<u8>> = std::fs::read_dir(nas.path("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_encoded_bytes())
            .collect();
        for plus in [false, true] {
            let mut names = BTreeSet::new();
            let mut cookie = 0;
            loop {
                let (entries, eof) = if plus {
                    let (es, eof) = f.readdir_plus(&c, &d.handle, cookie, 17).await.unwrap();
                    let mut out = Vec::new();
                    for e in es {
                        let (h, a) = e.object.unwrap();
                        assert_eq!(a.fileid, e.entry.fileid);
                        assert_eq!(e.entry.ftype, Some(a.ftype));
                        assert_eq!(f.getattr(&c, &h).await.unwrap().fileid, a.fileid);
                        if e.entry.name == b"sub" {
                            assert_eq!(h, sub.handle);
                        }
                        out.push(e.entry);
                    }
                    (out, eof)
                } else {
                    let p = f.readdir(&c, &d.handle, cookie, 17).await.unwrap();
                    (p.entries, p.eof)
                };
                assert!(entries.len() <= 17);
                for e in &entries {
                    assert!(names.insert(e.name.clone()), "{:?} twice", e.name);
                }
                if eof {
                    break;
                }
                cookie = entries.last().unwrap().cookie;
            }
            assert_eq!(names, want, "plus={plus}");
        }
        assert_eq!(
            f.readdir(&c, &file.handle, 0, 10).await.err(),
            Some(Error::NotDir)
        );
        assert_eq!(f.readdir(&c, &r, 0, 0).await.err(), Some(Error::TooSmall));

        // REMOVE, RMDIR
        f.remove(&c, &r, b"g", false).await.unwrap();
        assert!(!nas.path("g").exists());
        assert_eq!(f.remove(&c, &r, b"g", false).await.err(), Some(Error::NoEnt));
        assert_eq!(f.remove(&c, &r, b"d", true).await.err(), Some(Error::NotEmpty));
        assert_eq!(f.remove(&c, &r, b"f", true).await.err(), Some(Error::NotDir));
        f.remove(&c, &d.handle, b"sub", true).await.unwrap();
        assert!(!nas.path("d/sub").exists());
        // The removed directory's handle is stale now.
        assert_eq!(f.getattr(&c, &sub.handle).await.err(), Some(Error::Stale));

        // Calls on the wrong kind of object answer as the local filer does.
        let size0 = SetAttr {
            size: Some(0),
            ..SetAttr::default()
        };
        let x = Bytes::from_static(b"x");
        assert_eq!(f.read(&c, &d.handle, 0, 10).await.err(), Some(Error::IsDir));
        assert_eq!(f.read(&c, &s.handle, 0, 10).await.err(), Some(Error::Inval));
        assert_eq!(
            f.write(&c, &d.handle, 0, x.clone(), Stability::FileSync)
                .await
                .err(),
            Some(Error::IsDir)
        );
        assert_eq!(
            f.write(&c, &p.handle, 0, x, Stability::FileSync).await.err(),
            Some(Error::Inval)
        );
        assert_eq!(f.commit(&c, &d.handle).await.err(), Some(Error::IsDir));
        assert_eq!(f.setattr(&c, &d.handle, &size0).await.err(), Some(Error::IsDir));
        assert_eq!(f.setattr(&c, &s.handle, &size0).await.err(), Some(Error::Inval));
        assert_eq!(f.readlink(&c, &file.handle).await.err(), Some(Error::Inval));
        assert_eq!(f.readlink(&c, &r).await.err(), Some(Error::Inval));
        assert_eq!(f.lookup_parent(&c, &file.handle).await.err(), Some(Error::NotDir));
        assert_eq!(
            f.readdir_plus(&c, &file.handle, 0, 5).await.err(),
            Some(Error::NotDir)
        );
        assert_eq!(f.remove(&c, &r, b"d", false).await.err(), Some(Error::IsDir));
        assert_eq!(f.fsstat(&c, &sub.handle).await.err(), Some(Error::Stale));

        // FSSTAT
        let st = f.fsstat(&c, &r).await.unwrap();
        assert!(st.total_bytes > 0 && st.total_bytes >= st.free_bytes);

        // The caller's identity reaches the upstream.
        let secret = f
            .create(&c, &r, b"secret", &NewNode::Directory, &mode(0o700))
            .await
            .unwrap();
        mk(&f, &secret.handle, "inside", NewNode::File(CreateMode::Unchecked))
            .await
            .unwrap();
        let bob = user(1000);
        assert_eq!(
            f.lookup(&bob, &secret.handle, b"inside").await.err(),
            Some(Error::Access)
        );
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
        let made = f
            .create(
                &bob,
                &open.handle,
                b"bobs",
                &NewNode::File(CreateMode::Guarded),
                &owned,
            )
            .await
            .unwrap();
        assert_eq!((made.attr.uid, made.attr.gid), (1000, 1000));
        let meta = std::fs::metadata(nas.path("open/bobs")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
        assert_eq!(
            f.setattr(&bob, &file.handle, &mode(0o777)).await.err(),
            Some(Error::Perm)
        );
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
            assert_eq!(f.getattr(&root(), &h).await.err(), Some(Error::Jukebox));
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
                        assert_eq!(e, Error::Jukebox);
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
