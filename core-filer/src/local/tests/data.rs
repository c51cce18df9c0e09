//! Reads, writes, commits, setattr and creating every kind of object.

use super::*;

#[test]
fn read_write_commit() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let f = mkfile(&fx.fs, &root, "f").await;
        let c = cred();
        for (i, st) in [Stability::Unstable, Stability::DataSync, Stability::FileSync]
            .into_iter()
            .enumerate()
        {
            let before = fx.fs.getattr(&c, &f).await.unwrap();
            let w = fx
                .fs
                .write(&c, &f, i as u64 * 5, Bytes::from_static(b"hello"), st)
                .await
                .unwrap();
            assert_eq!(w.count, 5);
            assert_eq!(w.committed, st);
            assert_eq!(w.wcc.before, Some(AttrStamp::from(&before)));
            assert_eq!(w.wcc.after.unwrap().size, (i as u64 + 1) * 5);
        }
        assert_eq!(std::fs::read(fx.root.join("f")).unwrap(), b"hellohellohello");
        let r = fx.fs.read(&c, &f, 0, 5).await.unwrap();
        assert_eq!((&r.data[..], r.eof), (&b"hello"[..], false));
        let r = fx.fs.read(&c, &f, 10, 5).await.unwrap();
        assert_eq!((&r.data[..], r.eof), (&b"hello"[..], true));
        let r = fx.fs.read(&c, &f, 12, 100).await.unwrap();
        assert_eq!((&r.data[..], r.eof), (&b"llo"[..], true));
        let r = fx.fs.read(&c, &f, 100, 10).await.unwrap();
        assert!(r.data.is_empty() && r.eof);
        let r = fx.fs.read(&c, &f, 0, 0).await.unwrap();
        assert!(r.data.is_empty() && !r.eof);
        let r = fx.fs.read(&c, &f, u64::MAX, 10).await.unwrap();
        assert!(r.data.is_empty() && r.eof);
        let r = fx.fs.read(&c, &f, i64::MAX as u64 - 1, 10).await.unwrap();
        assert!(r.data.is_empty() && r.eof);

        // A hole reads as zeros.
        fx.fs
            .write(&c, &f, 20, Bytes::from_static(b"z"), Stability::Unstable)
            .await
            .unwrap();
        let r = fx.fs.read(&c, &f, 15, 10).await.unwrap();
        assert_eq!(&r.data[..], b"\0\0\0\0\0z");

        // Large transfer through io_uring.
        let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        let g = mkfile(&fx.fs, &root, "g").await;
        let w = fx
            .fs
            .write(&c, &g, 7, Bytes::from(big.clone()), Stability::Unstable)
            .await
            .unwrap();
        assert_eq!(w.count as usize, big.len());
        let r = fx.fs.read(&c, &g, 7, big.len() as u32).await.unwrap();
        assert!(r.data[..] == big[..] && r.eof);

        let wcc = fx.fs.commit(&c, &g).await.unwrap();
        assert_eq!(wcc.after.unwrap().size, big.len() as u64 + 7);

        let e = fx
            .fs
            .write(
                &c,
                &f,
                u64::MAX - 2,
                Bytes::from_static(b"xx"),
                Stability::Unstable,
            )
            .await;
        assert_eq!(e.unwrap_err(), Error::FBig);
        let e = fx
            .fs
            .write(
                &c,
                &f,
                i64::MAX as u64,
                Bytes::from_static(b"x"),
                Stability::Unstable,
            )
            .await;
        assert_eq!(e.unwrap_err(), Error::FBig);
        assert_eq!(fx.fs.read(&c, &root, 0, 1).await.unwrap_err(), Error::IsDir);
        let e = fx
            .fs
            .write(&c, &root, 0, Bytes::from_static(b"x"), Stability::Unstable)
            .await;
        assert_eq!(e.unwrap_err(), Error::IsDir);
        assert_eq!(fx.fs.commit(&c, &root).await.unwrap_err(), Error::IsDir);
        let l = mk(&fx.fs, &root, "l", NewNode::Symlink(b"f".to_vec())).await;
        assert_eq!(fx.fs.read(&c, &l, 0, 1).await.unwrap_err(), Error::Inval);
        let e = fx
            .fs
            .write(&c, &l, 0, Bytes::from_static(b"x"), Stability::Unstable)
            .await;
        assert_eq!(e.unwrap_err(), Error::Inval);
        let p = mk(&fx.fs, &root, "p", NewNode::Fifo).await;
        assert_eq!(fx.fs.read(&c, &p, 0, 1).await.unwrap_err(), Error::Inval);
        assert_eq!(fx.fs.commit(&c, &p).await.unwrap_err(), Error::Inval);
    });
}

#[test]
fn setattr_changes_what_is_asked() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        let f = mkfile(&fx.fs, &root, "f").await;
        fx.fs
            .write(&c, &f, 0, Bytes::from_static(b"0123456789"), Stability::Unstable)
            .await
            .unwrap();
        let before = fx.fs.getattr(&c, &f).await.unwrap();
        let t1 = Timespec {
            sec: 1_000_000,
            nsec: 5,
        };
        let t2 = Timespec {
            sec: 2_000_000,
            nsec: 7,
        };
        let set = SetAttr {
            mode: Some(0o4751),
            uid: Some(1234),
            gid: Some(5678),
            size: Some(4),
            atime: SetTime::Client(t1),
            mtime: SetTime::Client(t2),
        };
        let wcc = fx.fs.setattr(&c, &f, &set).await.unwrap();
        assert_eq!(wcc.before, Some(AttrStamp::from(&before)));
        let a = wcc.after.unwrap();
        assert_eq!((a.mode, a.uid, a.gid, a.size), (0o4751, 1234, 5678, 4));
        assert_eq!((a.atime, a.mtime), (t1, t2));
        assert_eq!(a, fx.fs.getattr(&c, &f).await.unwrap());
        assert_eq!(std::fs::read(fx.root.join("f")).unwrap(), b"0123");

        // Grow, and "now" times.
        let set = SetAttr {
            size: Some(100),
            mtime: SetTime::ServerNow,
            ..SetAttr::default()
        };
        let atime = fx.fs.getattr(&c, &f).await.unwrap().atime;
        let a = fx.fs.setattr(&c, &f, &set).await.unwrap().after.unwrap();
        assert_eq!(a.size, 100);
        assert_eq!(a.atime, atime);
        assert!(a.mtime.sec > t2.sec);
        // Only the gid.
        let a = fx
            .fs
            .setattr(
                &c,
                &f,
                &SetAttr {
                    gid: Some(42),
                    ..SetAttr::default()
                },
            )
            .await
            .unwrap();
        let a = a.after.unwrap();
        assert_eq!((a.uid, a.gid), (1234, 42));

        // Symlink: mode is ignored, owner and times apply to the link itself.
        let l = mk(&fx.fs, &root, "l", NewNode::Symlink(b"f".to_vec())).await;
        let set = SetAttr {
            mode: Some(0o600),
            uid: Some(77),
            gid: Some(88),
            mtime: SetTime::Client(t1),
            ..SetAttr::default()
        };
        let a = fx.fs.setattr(&c, &l, &set).await.unwrap().after.unwrap();
        assert_eq!((a.ftype, a.uid, a.gid, a.mtime), (FileType::Symlink, 77, 88, t1));
        let fa = fx.fs.getattr(&c, &f).await.unwrap();
        // (The gid change above cleared set-uid, as chown does.)
        assert_eq!((fa.uid, fa.mode), (1234, 0o751));

        // A FIFO is changed without being opened.
        let p = mk(&fx.fs, &root, "p", NewNode::Fifo).await;
        let a = fx
            .fs
            .setattr(
                &c,
                &p,
                &SetAttr {
                    mode: Some(0o602),
                    ..SetAttr::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(a.after.unwrap().mode, 0o602);
        // Directory mode.
        let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
        let a = fx
            .fs
            .setattr(
                &c,
                &d,
                &SetAttr {
                    mode: Some(0o1777),
                    ..SetAttr::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(a.after.unwrap().mode, 0o1777);

        let size = SetAttr {
            size: Some(0),
            ..SetAttr::default()
        };
        assert_eq!(fx.fs.setattr(&c, &d, &size).await.unwrap_err(), Error::IsDir);
        assert_eq!(fx.fs.setattr(&c, &l, &size).await.unwrap_err(), Error::Inval);
        assert_eq!(fx.fs.setattr(&c, &p, &size).await.unwrap_err(), Error::Inval);
        let bad = SetAttr {
            atime: SetTime::Client(Timespec {
                sec: 1,
                nsec: 1_000_000_000,
            }),
            ..SetAttr::default()
        };
        assert_eq!(fx.fs.setattr(&c, &f, &bad).await.unwrap_err(), Error::Inval);
    });
}

#[test]
fn create_every_kind_with_exact_attributes() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        let attrs = SetAttr {
            mode: Some(0o777),
            uid: Some(1001),
            gid: Some(1002),
            ..SetAttr::default()
        };
        let kinds = [
            ("file", NewNode::File(CreateMode::Unchecked), FileType::Regular),
            ("dir", NewNode::Directory, FileType::Directory),
            ("fifo", NewNode::Fifo, FileType::Fifo),
            ("sock", NewNode::Socket, FileType::Socket),
            ("chr", NewNode::CharDev(1, 3), FileType::CharDev),
            ("blk", NewNode::BlockDev(7, 200), FileType::BlockDev),
        ];
        for (name, node, ftype) in kinds {
            let before = fx.fs.getattr(&c, &root).await.unwrap();
            let made = fx
                .fs
                .create(&c, &root, name.as_bytes(), &node, &attrs)
                .await
                .unwrap();
            let a = made.attr;
            // Exact bits despite the umask.
            assert_eq!(
                (a.ftype, a.mode, a.uid, a.gid),
                (ftype, 0o777, 1001, 1002),
                "{name}"
            );
            assert_eq!(fx.fs.getattr(&c, &made.handle).await.unwrap(), a);
            assert_eq!(made.dir_wcc.before, Some(AttrStamp::from(&before)));
            assert_eq!(
                made.dir_wcc.after.unwrap(),
                fx.fs.getattr(&c, &root).await.unwrap()
            );
            let md = std::fs::symlink_metadata(fx.root.join(name)).unwrap();
            assert_eq!(md.ino(), a.fileid);
            assert_eq!(md.permissions().mode() & 0o7777, 0o777);
            let e = fx
                .fs
                .create(&c, &root, name.as_bytes(), &NewNode::Directory, &attrs)
                .await;
            assert_eq!(e.unwrap_err(), Error::Exist);
        }
        let chr = fx.fs.lookup(&c, &root, b"chr").await.unwrap().1;
        assert_eq!(chr.rdev, (1, 3));
        let blk = fx.fs.lookup(&c, &root, b"blk").await.unwrap().1;
        assert_eq!(blk.rdev, (7, 200));

        // Defaults without a mode; a setuid file keeps its bit.
        let d = mk(&fx.fs, &root, "d2", NewNode::Directory).await;
        assert_eq!(fx.fs.getattr(&c, &d).await.unwrap().mode, DEFAULT_DIR_MODE);
        let f = mkfile(&fx.fs, &root, "f2").await;
        assert_eq!(fx.fs.getattr(&c, &f).await.unwrap().mode, DEFAULT_FILE_MODE);
        let suid = SetAttr {
            mode: Some(0o4755),
            uid: Some(5),
            ..SetAttr::default()
        };
        let made = fx
            .fs
            .create(&c, &root, b"s", &NewNode::File(CreateMode::Guarded), &suid)
            .await
            .unwrap();
        assert_eq!((made.attr.mode, made.attr.uid), (0o4755, 5));

        // Symlinks store their target as given.
        let s = mk(&fx.fs, &root, "ln", NewNode::Symlink(b"../../x".to_vec())).await;
        assert_eq!(fx.fs.readlink(&c, &s).await.unwrap(), b"../../x");
        let e = fx
            .fs
            .create(&c, &root, b"bad", &NewNode::Symlink(Vec::new()), &attrs)
            .await;
        assert_eq!(e.unwrap_err(), Error::Inval);
        let e = fx
            .fs
            .create(&c, &root, b"bad", &NewNode::Symlink(b"a\0b".to_vec()), &attrs)
            .await;
        assert_eq!(e.unwrap_err(), Error::Inval);

        // Created in a subdirectory through its handle.
        let sub = fx.fs.lookup(&c, &root, b"dir").await.unwrap().0;
        mkfile(&fx.fs, &sub, "inner").await;
        assert!(fx.root.join("dir/inner").is_file());
    });
}

#[test]
fn create_unchecked_and_guarded() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        let un = NewNode::File(CreateMode::Unchecked);
        let made = fx
            .fs
            .create(&c, &root, b"f", &un, &SetAttr::default())
            .await
            .unwrap();
        fx.fs
            .write(
                &c,
                &made.handle,
                0,
                Bytes::from_static(b"content"),
                Stability::Unstable,
            )
            .await
            .unwrap();
        // Existing regular file: same object, contents kept, mode untouched.
        let again = SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        };
        let same = fx.fs.create(&c, &root, b"f", &un, &again).await.unwrap();
        assert_eq!(same.handle, made.handle);
        assert_eq!(same.attr.size, 7);
        assert_eq!(same.attr.mode, DEFAULT_FILE_MODE);
        // With a size it truncates.
        let trunc = SetAttr {
            size: Some(3),
            ..SetAttr::default()
        };
        let same = fx.fs.create(&c, &root, b"f", &un, &trunc).await.unwrap();
        assert_eq!((same.handle, same.attr.size), (made.handle, 3));
        assert_eq!(std::fs::read(fx.root.join("f")).unwrap(), b"con");
        // New file with a size.
        let sized = fx
            .fs
            .create(
                &c,
                &root,
                b"g",
                &un,
                &SetAttr {
                    size: Some(10),
                    ..SetAttr::default()
                },
            )
            .await;
        assert_eq!(sized.unwrap().attr.size, 10);
        // Not a regular file: Exist.
        mk(&fx.fs, &root, "d", NewNode::Directory).await;
        mk(&fx.fs, &root, "l", NewNode::Symlink(b"f".to_vec())).await;
        for name in [&b"d"[..], b"l"] {
            let e = fx.fs.create(&c, &root, name, &un, &SetAttr::default()).await;
            assert_eq!(e.unwrap_err(), Error::Exist);
        }
        let g = NewNode::File(CreateMode::Guarded);
        assert_eq!(
            fx.fs
                .create(&c, &root, b"f", &g, &SetAttr::default())
                .await
                .unwrap_err(),
            Error::Exist
        );
        assert!(fx
            .fs
            .create(&c, &root, b"h", &g, &SetAttr::default())
            .await
            .is_ok());
        // Into something that is not a directory.
        let e = fx
            .fs
            .create(&c, &made.handle, b"x", &g, &SetAttr::default())
            .await;
        assert_eq!(e.unwrap_err(), Error::NotDir);
    });
}

#[test]
fn create_exclusive_retries() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        let verf = 0xdead_beef_1234_5678u64;
        let node = NewNode::File(CreateMode::Exclusive(verf));
        let attrs = SetAttr {
            mode: Some(0o640),
            ..SetAttr::default()
        };
        let first = fx.fs.create(&c, &root, b"x", &node, &attrs).await.unwrap();
        assert_eq!(first.attr.mode, 0o640);
        // A retransmission gets the same file.
        let retry = fx.fs.create(&c, &root, b"x", &node, &attrs).await.unwrap();
        assert_eq!(retry.handle, first.handle);
        // Also after a restart.
        let fresh = LocalFiler::open(&fx.root).unwrap();
        assert_eq!(
            fresh.create(&c, &root, b"x", &node, &attrs).await.unwrap().handle,
            first.handle
        );
        // Another verifier, or a file made otherwise: Exist.
        let other = NewNode::File(CreateMode::Exclusive(verf + 1));
        assert_eq!(
            fx.fs.create(&c, &root, b"x", &other, &attrs).await.unwrap_err(),
            Error::Exist
        );
        mkfile(&fx.fs, &root, "y").await;
        assert_eq!(
            fx.fs.create(&c, &root, b"y", &node, &attrs).await.unwrap_err(),
            Error::Exist
        );
        mk(&fx.fs, &root, "z", NewNode::Directory).await;
        assert_eq!(
            fx.fs.create(&c, &root, b"z", &node, &attrs).await.unwrap_err(),
            Error::Exist
        );
        // The client's SETATTR afterwards replaces the verifier times.
        let set = SetAttr {
            mtime: SetTime::ServerNow,
            atime: SetTime::ServerNow,
            ..SetAttr::default()
        };
        fx.fs.setattr(&c, &first.handle, &set).await.unwrap();
        assert_eq!(
            fx.fs.create(&c, &root, b"x", &node, &attrs).await.unwrap_err(),
            Error::Exist
        );
    });
}
