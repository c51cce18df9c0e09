//! Symlinks never followed, a swap race that stays inside, the node cache bound.

use super::*;

#[test]
fn symlinks_are_never_followed() {
    let fx = fixture();
    let sub = fx.root.join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    symlink("/etc", sub.join("abs")).unwrap();
    symlink("../../", sub.join("rel")).unwrap();
    symlink(&fx.outside, sub.join("out")).unwrap();
    let probe = "weir-escape-probe";
    run(async {
        let c = cred();
        let a = fx.fs.lookup(&c, &fx.fs.root(), b"a").await.unwrap().0;
        let b = fx.fs.lookup(&c, &a, b"b").await.unwrap().0;
        let regular = mkfile(&fx.fs, &a, "regular").await;
        for (name, target) in [
            ("abs", &b"/etc"[..]),
            ("rel", b"../../"),
            ("out", fx.outside.as_os_str().as_bytes()),
        ] {
            let (h, attr) = fx.fs.lookup(&c, &b, name.as_bytes()).await.unwrap();
            assert_eq!(attr.ftype, FileType::Symlink);
            assert_eq!(attr.fileid, from_ino(&sub.join(name)));
            assert_eq!(fx.fs.readlink(&c, &h).await.unwrap(), target);
            assert_eq!(fx.fs.lookup(&c, &h, b"passwd").await.unwrap_err(), Error::NotDir);
            assert_eq!(fx.fs.readdir(&c, &h, 0, 10).await.unwrap_err(), Error::NotDir);
            assert_eq!(
                fx.fs.readdir_plus(&c, &h, 0, 10).await.unwrap_err(),
                Error::NotDir
            );
            for node in [
                NewNode::File(CreateMode::Unchecked),
                NewNode::Directory,
                NewNode::Fifo,
            ] {
                let e = fx
                    .fs
                    .create(&c, &h, probe.as_bytes(), &node, &SetAttr::default())
                    .await;
                assert_eq!(e.unwrap_err(), Error::NotDir);
            }
            assert_eq!(
                fx.fs.remove(&c, &h, b"passwd", false).await.unwrap_err(),
                Error::NotDir
            );
            assert_eq!(
                fx.fs.rename(&c, &h, b"passwd", &b, b"x").await.unwrap_err(),
                Error::NotDir
            );
            assert_eq!(
                fx.fs.rename(&c, &b, b"abs", &h, b"x").await.unwrap_err(),
                Error::NotDir
            );
            assert_eq!(
                fx.fs.link(&c, &regular, &h, b"x").await.unwrap_err(),
                Error::NotDir
            );
            // setattr changes the link, never its target.
            let set = SetAttr {
                mode: Some(0o700),
                size: None,
                ..SetAttr::default()
            };
            fx.fs.setattr(&c, &h, &set).await.unwrap();
            // An Unchecked create over the link's name does not open the target.
            let e = fx
                .fs
                .create(
                    &c,
                    &b,
                    name.as_bytes(),
                    &NewNode::File(CreateMode::Unchecked),
                    &SetAttr::default(),
                )
                .await;
            assert_eq!(e.unwrap_err(), Error::Exist);
        }
    });
    assert!(!Path::new("/etc").join(probe).exists());
    assert!(std::fs::read_dir(&fx.outside).unwrap().next().is_none());
    assert_eq!(
        std::fs::metadata("/etc").unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[test]
fn symlink_swap_race_stays_inside() {
    let fx = fixture();
    let real = fx.root.join("sub");
    let lnk = fx.root.join("lnk");
    std::fs::create_dir(&real).unwrap();
    symlink(&fx.outside, &lnk).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (a, b) = (
            CString::new(real.as_os_str().as_bytes()).unwrap(),
            CString::new(lnk.as_os_str().as_bytes()).unwrap(),
        );
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: both paths are NUL-terminated.
                let r = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(r, 0, "{}", io::Error::last_os_error());
                swaps += 1;
            }
            swaps
        })
    };
    let (made, refused) = run(async {
        let c = cred();
        let root = fx.fs.root();
        let pinned = fx.fs.lookup(&c, &root, b"sub").await;
        let (mut made, mut refused) = (HashSet::new(), 0);
        for i in 0..1500 {
            let name = format!("f{i}");
            for dir_name in [&b"sub"[..], b"lnk"] {
                let Ok((h, _)) = fx.fs.lookup(&c, &root, dir_name).await else {
                    continue;
                };
                let node = NewNode::File(CreateMode::Unchecked);
                match fx
                    .fs
                    .create(&c, &h, name.as_bytes(), &node, &SetAttr::default())
                    .await
                {
                    Ok(_) => {
                        made.insert(name.clone());
                    }
                    Err(Error::NotDir) => refused += 1,
                    Err(e) => panic!("create: {e:?}"),
                }
                match fx.fs.readdir(&c, &h, 0, 4).await {
                    Ok(_) | Err(Error::NotDir) => {}
                    Err(e) => panic!("readdir: {e:?}"),
                }
                match fx.fs.lookup(&c, &h, name.as_bytes()).await {
                    Ok(_) | Err(Error::NotDir) => {}
                    Err(e) => panic!("lookup: {e:?}"),
                }
            }
            if let Ok((h, _)) = &pinned {
                let _ = fx
                    .fs
                    .create(
                        &c,
                        h,
                        format!("p{i}").as_bytes(),
                        &NewNode::Directory,
                        &SetAttr::default(),
                    )
                    .await;
            }
        }
        (made, refused)
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(
        !made.is_empty() && swaps > 0,
        "made {} refused {refused} swaps {swaps}",
        made.len()
    );
    assert!(
        std::fs::read_dir(&fx.outside).unwrap().next().is_none(),
        "something escaped"
    );
    // Everything landed in the real directory, wherever its name is now.
    let real_now = if std::fs::symlink_metadata(&real).unwrap().is_dir() {
        real
    } else {
        lnk
    };
    for name in made {
        assert!(real_now.join(name).is_file());
    }
}

#[test]
fn cache_is_bounded() {
    let fx = fixture();
    run(async {
        let root = fx.fs.root();
        for i in 0..CACHE_CAP * 2 + 10 {
            mkfile(&fx.fs, &root, &format!("f{i}")).await;
            // Re-lookups and removals churn the eviction queue.
            let _ = fx
                .fs
                .lookup(&cred(), &root, format!("f{}", i / 2).as_bytes())
                .await;
        }
        assert!(fx.fs.cached() <= CACHE_CAP);
        assert!(lock(&fx.fs.cache).order.len() <= 2 * CACHE_CAP + 1);
        // Evicted handles still resolve.
        let first = fx.fs.lookup(&cred(), &root, b"f0").await.unwrap().0;
        for i in 1..CACHE_CAP + 5 {
            let _ = fx.fs.lookup(&cred(), &root, format!("f{i}").as_bytes()).await;
        }
        assert!(fx.fs.getattr(&cred(), &first).await.is_ok());
    });
}
