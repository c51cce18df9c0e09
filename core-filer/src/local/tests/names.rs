//! Names in directories: readlink, link, remove, rename, listing, fsstat.

use super::*;

#[test]
fn readlink_only_on_symlinks() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        let long = vec![b'a'; 4000];
        let l = mk(&fx.fs, &root, "l", NewNode::Symlink(long.clone())).await;
        assert_eq!(fx.fs.readlink(&c, &l).await.unwrap(), long);
        let f = mkfile(&fx.fs, &root, "f").await;
        assert_eq!(fx.fs.readlink(&c, &f).await.unwrap_err(), Error::Inval);
        assert_eq!(fx.fs.readlink(&c, &root).await.unwrap_err(), Error::Inval);
    });
}

#[test]
fn link_and_its_errors() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        let f = mkfile(&fx.fs, &root, "f").await;
        let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
        let before = fx.fs.getattr(&c, &d).await.unwrap();
        let (a, wcc) = fx.fs.link(&c, &f, &d, b"f2").await.unwrap();
        assert_eq!(a.nlink, 2);
        assert_eq!(wcc.before, Some(AttrStamp::from(&before)));
        assert_eq!(wcc.after.unwrap(), fx.fs.getattr(&c, &d).await.unwrap());
        assert_eq!(fx.fs.lookup(&c, &d, b"f2").await.unwrap().0, f);
        assert_eq!(fx.fs.link(&c, &f, &d, b"f2").await.unwrap_err(), Error::Exist);
        assert_eq!(fx.fs.link(&c, &d, &root, b"d2").await.unwrap_err(), Error::Perm);
        assert_eq!(fx.fs.link(&c, &f, &f, b"x").await.unwrap_err(), Error::NotDir);
        // A symlink is linked as itself.
        let l = mk(&fx.fs, &root, "l", NewNode::Symlink(b"/etc/passwd".to_vec())).await;
        let (a, _) = fx.fs.link(&c, &l, &d, b"l2").await.unwrap();
        assert_eq!((a.ftype, a.nlink), (FileType::Symlink, 2));
        // A removed file cannot be linked back.
        fx.fs.remove(&c, &root, b"f", false).await.unwrap();
        fx.fs.remove(&c, &d, b"f2", false).await.unwrap();
        assert_eq!(fx.fs.link(&c, &f, &d, b"back").await.unwrap_err(), Error::Stale);
    });
}

#[test]
fn remove_and_its_errors() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        mkfile(&fx.fs, &root, "f").await;
        let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
        mkfile(&fx.fs, &d, "inner").await;
        assert_eq!(
            fx.fs.remove(&c, &root, b"d", false).await.unwrap_err(),
            Error::IsDir
        );
        assert_eq!(
            fx.fs.remove(&c, &root, b"f", true).await.unwrap_err(),
            Error::NotDir
        );
        assert_eq!(
            fx.fs.remove(&c, &root, b"d", true).await.unwrap_err(),
            Error::NotEmpty
        );
        assert_eq!(
            fx.fs.remove(&c, &root, b"nope", false).await.unwrap_err(),
            Error::NoEnt
        );
        let before = fx.fs.getattr(&c, &root).await.unwrap();
        let wcc = fx.fs.remove(&c, &root, b"f", false).await.unwrap();
        assert_eq!(wcc.before, Some(AttrStamp::from(&before)));
        assert_eq!(wcc.after.unwrap(), fx.fs.getattr(&c, &root).await.unwrap());
        fx.fs.remove(&c, &d, b"inner", false).await.unwrap();
        fx.fs.remove(&c, &root, b"d", true).await.unwrap();
        assert!(std::fs::read_dir(&fx.root).unwrap().next().is_none());
        // A symlink is removed, not its target.
        std::fs::write(fx.outside.join("keep"), b"k").unwrap();
        symlink(fx.outside.join("keep"), fx.root.join("l")).unwrap();
        fx.fs.remove(&c, &root, b"l", false).await.unwrap();
        assert!(fx.outside.join("keep").exists());
    });
}

#[test]
fn rename_and_its_errors() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        let f = mkfile(&fx.fs, &root, "f").await;
        let d = mk(&fx.fs, &root, "d", NewNode::Directory).await;
        let e = mk(&fx.fs, &root, "e", NewNode::Directory).await;
        mkfile(&fx.fs, &e, "full").await;

        let (a, b) = fx.fs.rename(&c, &root, b"f", &root, b"g").await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.after.unwrap(), fx.fs.getattr(&c, &root).await.unwrap());
        assert_eq!(fx.fs.lookup(&c, &root, b"g").await.unwrap().0, f);

        let dir_before = fx.fs.getattr(&c, &d).await.unwrap();
        let (from, to) = fx.fs.rename(&c, &root, b"g", &d, b"h").await.unwrap();
        assert_eq!(from.after.unwrap(), fx.fs.getattr(&c, &root).await.unwrap());
        assert_eq!(to.before, Some(AttrStamp::from(&dir_before)));
        assert_eq!(to.after.unwrap(), fx.fs.getattr(&c, &d).await.unwrap());
        // The handle follows the object.
        assert_eq!(
            fx.fs.getattr(&c, &f).await.unwrap().fileid,
            from_ino(&fx.root.join("d/h"))
        );

        // Replacing a file: the old target's handle goes stale.
        let victim = mkfile(&fx.fs, &root, "victim").await;
        fx.fs.rename(&c, &d, b"h", &root, b"victim").await.unwrap();
        assert_eq!(fx.fs.getattr(&c, &victim).await.unwrap_err(), Error::Stale);
        assert_eq!(fx.fs.lookup(&c, &root, b"victim").await.unwrap().0, f);

        assert_eq!(
            fx.fs.rename(&c, &root, b"nope", &root, b"x").await.unwrap_err(),
            Error::NoEnt
        );
        assert_eq!(
            fx.fs.rename(&c, &root, b"d", &root, b"e").await.unwrap_err(),
            Error::NotEmpty
        );
        assert_eq!(
            fx.fs.rename(&c, &root, b"victim", &root, b"d").await.unwrap_err(),
            Error::IsDir
        );
        assert_eq!(
            fx.fs.rename(&c, &root, b"d", &root, b"victim").await.unwrap_err(),
            Error::NotDir
        );
        assert_eq!(
            fx.fs.rename(&c, &root, b"d", &d, b"x").await.unwrap_err(),
            Error::Inval
        );
        assert_eq!(
            fx.fs.rename(&c, &f, b"a", &root, b"b").await.unwrap_err(),
            Error::NotDir
        );
        assert_eq!(
            fx.fs.rename(&c, &root, b"victim", &f, b"b").await.unwrap_err(),
            Error::NotDir
        );
        // A directory onto an empty one.
        mk(&fx.fs, &root, "empty", NewNode::Directory).await;
        fx.fs.rename(&c, &root, b"d", &root, b"empty").await.unwrap();
        assert_eq!(fx.fs.lookup(&c, &root, b"empty").await.unwrap().0, d);
    });
}

#[test]
fn readdir_pages_through_1000_entries() {
    let fx = fixture();
    for i in 0..1000 {
        std::fs::write(fx.root.join(format!("entry-{i:04}")), b"").unwrap();
    }
    run(async {
        let root = fx.fs.root();
        let c = cred();
        let mut seen = HashSet::new();
        let mut cookie = 0;
        let mut pages = 0;
        loop {
            let page = fx.fs.readdir(&c, &root, cookie, 37).await.unwrap();
            pages += 1;
            assert!(page.entries.len() <= 37);
            for e in &page.entries {
                assert!(
                    seen.insert(e.name.clone()),
                    "{:?} twice",
                    String::from_utf8_lossy(&e.name)
                );
                assert_eq!(e.ftype, Some(FileType::Regular));
                assert_eq!(
                    e.fileid,
                    from_ino(&fx.root.join(std::ffi::OsStr::from_bytes(&e.name)))
                );
            }
            if page.eof {
                break;
            }
            assert_eq!(page.entries.len(), 37);
            cookie = page.entries.last().unwrap().cookie;
            assert!(pages < 100);
        }
        assert_eq!(seen.len(), 1000);
        assert_eq!(pages, 1000usize.div_ceil(37));

        // Resuming from any entry's cookie continues right after it.
        let all = fx.fs.readdir(&c, &root, 0, 5000).await.unwrap();
        assert!(all.eof);
        assert_eq!(all.entries.len(), 1000);
        for at in [0, 1, 36, 500, 998] {
            let page = fx.fs.readdir(&c, &root, all.entries[at].cookie, 3).await.unwrap();
            assert_eq!(page.entries[..], all.entries[at + 1..(at + 4).min(1000)]);
        }
        let last = fx
            .fs
            .readdir(&c, &root, all.entries[999].cookie, 3)
            .await
            .unwrap();
        assert!(last.entries.is_empty() && last.eof);
    });
}

#[test]
fn readdir_edges() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        let page = fx.fs.readdir(&c, &root, 0, 10).await.unwrap();
        assert!(page.entries.is_empty() && page.eof);
        let f = mkfile(&fx.fs, &root, "f").await;
        mk(&fx.fs, &root, "d", NewNode::Directory).await;
        mk(&fx.fs, &root, "l", NewNode::Symlink(b"x".to_vec())).await;
        // Exactly `max` entries left: eof is still reported.
        let page = fx.fs.readdir(&c, &root, 0, 3).await.unwrap();
        assert_eq!(page.entries.len(), 3);
        assert!(page.eof);
        let page = fx.fs.readdir(&c, &root, 0, 2).await.unwrap();
        assert!(!page.eof);
        let mut kinds: Vec<_> = fx
            .fs
            .readdir(&c, &root, 0, 10)
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.name, e.ftype))
            .collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            kinds,
            vec![
                (b"d".to_vec(), Some(FileType::Directory)),
                (b"f".to_vec(), Some(FileType::Regular)),
                (b"l".to_vec(), Some(FileType::Symlink)),
            ]
        );
        assert_eq!(fx.fs.readdir(&c, &f, 0, 10).await.unwrap_err(), Error::NotDir);
        assert_eq!(fx.fs.readdir(&c, &root, 0, 0).await.unwrap_err(), Error::TooSmall);
        assert_eq!(
            fx.fs.readdir(&c, &root, u64::MAX, 10).await.unwrap_err(),
            Error::BadCookie
        );
        assert_eq!(
            fx.fs.readdir(&c, &root, 1 << 63, 10).await.unwrap_err(),
            Error::BadCookie
        );
        // Garbage cookies within range never panic.
        for cookie in [1, 2, 3, 12345, i64::MAX as u64] {
            let _ = fx.fs.readdir(&c, &root, cookie, 10).await;
        }
    });
}

#[test]
fn readdir_plus_matches_lookup() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        let c = cred();
        for i in 0..50 {
            mkfile(&fx.fs, &root, &format!("f{i}")).await;
        }
        mk(&fx.fs, &root, "d", NewNode::Directory).await;
        mk(&fx.fs, &root, "l", NewNode::Symlink(b"/etc".to_vec())).await;
        let mut cookie = 0;
        let mut n = 0;
        loop {
            let (entries, eof) = fx.fs.readdir_plus(&c, &root, cookie, 7).await.unwrap();
            for e in &entries {
                let (h, a) = e.object.unwrap();
                let (lh, la) = fx.fs.lookup(&c, &root, &e.entry.name).await.unwrap();
                assert_eq!(h, lh);
                assert_eq!(a.fileid, la.fileid);
                assert_eq!(a.fileid, e.entry.fileid);
                assert_eq!(e.entry.ftype, Some(la.ftype));
                n += 1;
            }
            if eof {
                break;
            }
            cookie = entries.last().unwrap().entry.cookie;
        }
        assert_eq!(n, 52);
        let f = fx.fs.lookup(&c, &root, b"f0").await.unwrap().0;
        assert_eq!(fx.fs.readdir_plus(&c, &f, 0, 7).await.unwrap_err(), Error::NotDir);
    });
}

#[test]
fn fsstat_reports_space() {
    let fx = fixture();
    run(async {
        let s = fx.fs.fsstat(&cred(), &fx.fs.root()).await.unwrap();
        assert!(s.total_bytes > 0 && s.free_bytes <= s.total_bytes && s.avail_bytes <= s.free_bytes);
        assert!(s.total_files > 0 && s.free_files <= s.total_files);
    });
}
