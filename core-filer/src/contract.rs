//! The contract every core filer keeps, as public functions that take a
//! `&dyn CoreFiler` and panic where a back end breaks it. Each back end's
//! tests run every one of them (`local` over a temp directory, `nfs` over
//! nfs-ganesha); a new back end runs them too.
//!
//! Each check works in a directory of its own under the root, named after
//! the check, so the checks may run one after another on one filer. They
//! see the back end only through the trait. They call as root, except
//! [`access_for_non_owner`], which acts as uid 1000 and expects the back end
//! to check the caller's rights. [`all`] runs every check.

use bytes::Bytes;

use crate::types::*;
use crate::{CoreFiler, Error};

/// Every check below, one after the other.
pub async fn all(f: &dyn CoreFiler) {
    create_and_lookup(f).await;
    names(f).await;
    read_write_commit(f).await;
    large_files_and_offsets(f).await;
    setattr(f).await;
    readdir_paging(f).await;
    link_symlink_rename(f).await;
    remove_and_rmdir(f).await;
    wrong_kinds(f).await;
    access_for_non_owner(f).await;
}

fn root() -> Credentials {
    Credentials::root()
}

fn mode(m: u32) -> SetAttr {
    SetAttr {
        mode: Some(m),
        ..SetAttr::default()
    }
}

fn file(how: CreateMode) -> NewNode {
    NewNode::File(how)
}

/// Deterministic bytes for file contents.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// A fresh directory `name` under the root, for one check.
async fn workdir(f: &dyn CoreFiler, name: &str) -> FilerHandle {
    f.create(
        &root(),
        &f.root(),
        name.as_bytes(),
        &NewNode::Directory,
        &mode(0o755),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: mkdir {name}: {e}", f.name()))
    .handle
}

async fn mk(f: &dyn CoreFiler, dir: &FilerHandle, name: &[u8], node: NewNode) -> Result<FilerHandle, Error> {
    f.create(&root(), dir, name, &node, &mode(0o644))
        .await
        .map(|c| c.handle)
}

/// The whole file, read in as many calls as the back end needs.
async fn read_all(f: &dyn CoreFiler, fh: &FilerHandle) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        let rd = f.read(&root(), fh, got.len() as u64, 16 << 20).await.unwrap();
        assert!(!rd.data.is_empty() || rd.eof, "an empty read that is not EOF");
        got.extend_from_slice(&rd.data);
        if rd.eof {
            return got;
        }
    }
}

/// CREATE in its three modes, LOOKUP and GETATTR agree, and a handle is the
/// same however it was found.
pub async fn create_and_lookup(f: &dyn CoreFiler) {
    let c = root();
    let d = workdir(f, "create_and_lookup").await;
    let da = f.getattr(&c, &d).await.unwrap();
    assert_eq!(da.ftype, FileType::Directory);
    assert_eq!(f.getattr(&c, &f.root()).await.unwrap().ftype, FileType::Directory);

    let made = f
        .create(&c, &d, b"f", &file(CreateMode::Unchecked), &mode(0o640))
        .await
        .unwrap();
    assert_eq!(made.attr.ftype, FileType::Regular);
    assert_eq!(made.attr.mode & 0o7777, 0o640);
    assert_eq!(made.attr.size, 0);
    assert!(made.dir_wcc.after.is_some());
    let (h, a) = f.lookup(&c, &d, b"f").await.unwrap();
    assert_eq!(h, made.handle);
    assert_eq!(a.fileid, made.attr.fileid);
    assert_eq!(f.lookup(&c, &d, b"f").await.unwrap().0, h, "a second lookup");
    assert_eq!(f.getattr(&c, &h).await.unwrap().fileid, made.attr.fileid);
    // Unchecked opens what is there; guarded refuses it.
    let again = f
        .create(&c, &d, b"f", &file(CreateMode::Unchecked), &mode(0o600))
        .await
        .unwrap();
    assert_eq!(again.handle, h);
    let e = f
        .create(&c, &d, b"f", &file(CreateMode::Guarded), &mode(0o600))
        .await;
    assert_eq!(e.err(), Some(Error::Exist));
    // Exclusive: a retry with the same verifier succeeds, another fails.
    let x1 = mk(f, &d, b"x", file(CreateMode::Exclusive(77))).await.unwrap();
    let x2 = mk(f, &d, b"x", file(CreateMode::Exclusive(77))).await.unwrap();
    assert_eq!(x1, x2);
    assert_eq!(
        mk(f, &d, b"x", file(CreateMode::Exclusive(78))).await,
        Err(Error::Exist)
    );

    assert_eq!(f.lookup(&c, &d, b"nope").await.err(), Some(Error::NoEnt));
    assert_eq!(f.lookup(&c, &h, b"x").await.err(), Some(Error::NotDir));
    assert_eq!(mk(f, &d, b"f", NewNode::Directory).await, Err(Error::Exist));
    assert_eq!(mk(f, &h, b"y", NewNode::Directory).await, Err(Error::NotDir));
    // Parents: of a directory, and the root its own.
    let sub = mk(f, &d, b"sub", NewNode::Directory).await.unwrap();
    assert_eq!(f.lookup_parent(&c, &sub).await.unwrap().0, d);
    let (p, pa) = f.lookup_parent(&c, &d).await.unwrap();
    assert_eq!((p, pa.ftype), (f.root(), FileType::Directory));
    assert_eq!(f.lookup_parent(&c, &f.root()).await.unwrap().0, f.root());
}

/// Names the engine would refuse are refused again, before any effect.
pub async fn names(f: &dyn CoreFiler) {
    let c = root();
    let d = workdir(f, "names").await;
    let h = mk(f, &d, b"f", file(CreateMode::Guarded)).await.unwrap();
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert_eq!(f.lookup(&c, &d, bad).await.err(), Some(Error::Inval), "{bad:?}");
        assert_eq!(mk(f, &d, bad, NewNode::Directory).await, Err(Error::Inval));
        assert_eq!(f.remove(&c, &d, bad, false).await.err(), Some(Error::Inval));
        assert_eq!(f.rename(&c, &d, b"f", &d, bad).await.err(), Some(Error::Inval));
        assert_eq!(f.link(&c, &h, &d, bad).await.err(), Some(Error::Inval));
    }
    let long = vec![b'n'; NAME_MAX + 1];
    assert_eq!(f.lookup(&c, &d, &long).await.err(), Some(Error::NameTooLong));
    let longest = vec![b'n'; NAME_MAX];
    mk(f, &d, &longest, file(CreateMode::Guarded)).await.unwrap();
    assert_eq!(
        f.lookup(&c, &d, &longest).await.unwrap().1.ftype,
        FileType::Regular
    );
}

/// WRITE at every stability, COMMIT, and READ short at the end of file.
pub async fn read_write_commit(f: &dyn CoreFiler) {
    let c = root();
    let d = workdir(f, "read_write_commit").await;
    let h = mk(f, &d, b"f", file(CreateMode::Guarded)).await.unwrap();
    let w = f
        .write(&c, &h, 0, Bytes::from_static(b"hello world"), Stability::FileSync)
        .await
        .unwrap();
    assert_eq!((w.count, w.committed), (11, Stability::FileSync));
    assert_eq!(w.wcc.after.unwrap().size, 11);
    let w = f
        .write(&c, &h, 11, Bytes::from_static(b"!"), Stability::Unstable)
        .await
        .unwrap();
    assert_eq!(w.count, 1);
    let wcc = f.commit(&c, &h).await.unwrap();
    assert_eq!(wcc.after.map(|a| a.size), Some(12));
    let rd = f.read(&c, &h, 0, 5).await.unwrap();
    assert_eq!((&rd.data[..], rd.eof), (&b"hello"[..], false));
    let rd = f.read(&c, &h, 6, 100).await.unwrap();
    assert_eq!((&rd.data[..], rd.eof), (&b"world!"[..], true));
    let rd = f.read(&c, &h, 1000, 10).await.unwrap();
    assert!(rd.data.is_empty() && rd.eof);
    // Overwrite in the middle, through an open that was granted write access.
    let w = f
        .write_opened(&c, &h, 6, Bytes::from_static(b"WORLD"), Stability::DataSync)
        .await
        .unwrap();
    assert_eq!(w.count, 5);
    assert!(w.committed >= Stability::DataSync);
    assert_eq!(read_all(f, &h).await, b"hello WORLD!");
    assert_eq!(f.getattr(&c, &h).await.unwrap().size, 12);
}

/// Files larger than one call of the back end, and offsets past 4 GiB.
pub async fn large_files_and_offsets(f: &dyn CoreFiler) {
    let c = root();
    let d = workdir(f, "large_files_and_offsets").await;
    let h = mk(f, &d, b"big", file(CreateMode::Guarded)).await.unwrap();
    let big = pattern(5 << 20 | 123, 3);
    let w = f
        .write(&c, &h, 0, Bytes::from(big.clone()), Stability::DataSync)
        .await
        .unwrap();
    assert_eq!(w.count as usize, big.len());
    assert_eq!(read_all(f, &h).await, big);
    let rd = f.read(&c, &h, 4 << 20, 1 << 20).await.unwrap();
    assert_eq!(&rd.data[..], &big[4 << 20..5 << 20]);

    let far = mk(f, &d, b"far", file(CreateMode::Guarded)).await.unwrap();
    let off = (5u64 << 30) + 7;
    let w = f
        .write(
            &c,
            &far,
            off,
            Bytes::from_static(b"far away"),
            Stability::FileSync,
        )
        .await
        .unwrap();
    assert_eq!(w.count, 8);
    assert_eq!(f.getattr(&c, &far).await.unwrap().size, off + 8);
    let rd = f.read(&c, &far, off - 2, 100).await.unwrap();
    assert_eq!((&rd.data[..], rd.eof), (&b"\0\0far away"[..], true));
    let hole = f.read(&c, &far, 1 << 32, 4096).await.unwrap();
    assert!(hole.data.len() == 4096 && hole.data.iter().all(|&b| b == 0) && !hole.eof);
}

/// SETATTR changes what is asked and nothing else.
pub async fn setattr(f: &dyn CoreFiler) {
    let c = root();
    let d = workdir(f, "setattr").await;
    let h = mk(f, &d, b"f", file(CreateMode::Guarded)).await.unwrap();
    f.write(&c, &h, 0, Bytes::from(pattern(1000, 1)), Stability::FileSync)
        .await
        .unwrap();
    let t = Timespec {
        sec: 1_500_000_000,
        nsec: 0,
    };
    let set = SetAttr {
        mode: Some(0o604),
        size: Some(3),
        uid: Some(1234),
        gid: Some(4321),
        mtime: SetTime::Client(t),
        atime: SetTime::ServerNow,
    };
    let wcc = f.setattr(&c, &h, &set).await.unwrap();
    let after = wcc.after.unwrap();
    assert_eq!(
        (
            after.size,
            after.mode & 0o7777,
            after.uid,
            after.gid,
            after.mtime.sec
        ),
        (3, 0o604, 1234, 4321, t.sec)
    );
    assert_eq!(wcc.before.unwrap().size, 1000);
    assert_eq!(f.getattr(&c, &h).await.unwrap(), f.getattr(&c, &h).await.unwrap());
    // Growing reads back zeros; a mode change leaves the size alone.
    f.setattr(
        &c,
        &h,
        &SetAttr {
            size: Some(10),
            ..SetAttr::default()
        },
    )
    .await
    .unwrap();
    let wcc = f.setattr(&c, &h, &mode(0o600)).await.unwrap();
    assert_eq!(
        (wcc.after.unwrap().size, wcc.after.unwrap().mode & 0o7777),
        (10, 0o600)
    );
    let mut want = pattern(3, 1);
    want.resize(10, 0);
    assert_eq!(read_all(f, &h).await, want);
}

/// READDIR and READDIRPLUS in pages: every entry once, cookies resume where
/// they were given, `eof` on the last page, entries match LOOKUP.
pub async fn readdir_paging(f: &dyn CoreFiler) {
    let c = root();
    let d = workdir(f, "readdir_paging").await;
    let page = f.readdir(&c, &d, 0, 10).await.unwrap();
    assert!(page.entries.is_empty() && page.eof, "an empty directory");
    let mut want = std::collections::BTreeSet::new();
    for i in 0..150 {
        let name = format!("e{i:03}").into_bytes();
        mk(f, &d, &name, file(CreateMode::Guarded)).await.unwrap();
        want.insert(name);
    }
    let sub = mk(f, &d, b"sub", NewNode::Directory).await.unwrap();
    want.insert(b"sub".to_vec());
    for plus in [false, true] {
        let mut names = std::collections::BTreeSet::new();
        let mut cookie = 0;
        loop {
            let (entries, eof) = if plus {
                let (es, eof) = f.readdir_plus(&c, &d, cookie, 17).await.unwrap();
                let mut out = Vec::new();
                for e in es {
                    let (h, a) = e.object.expect("every entry still exists");
                    assert_eq!(a.fileid, e.entry.fileid);
                    assert_eq!(e.entry.ftype, Some(a.ftype));
                    assert_eq!(f.lookup(&c, &d, &e.entry.name).await.unwrap().0, h);
                    if e.entry.name == b"sub" {
                        assert_eq!(h, sub);
                    }
                    out.push(e.entry);
                }
                (out, eof)
            } else {
                let p = f.readdir(&c, &d, cookie, 17).await.unwrap();
                (p.entries, p.eof)
            };
            assert!(entries.len() <= 17);
            for e in &entries {
                assert!(names.insert(e.name.clone()), "{:?} twice", e.name);
            }
            if eof {
                break;
            }
            cookie = entries.last().expect("a page short of eof is not empty").cookie;
        }
        assert_eq!(names, want, "plus={plus}");
    }
    // A cookie resumes right after its entry, the same way every time.
    let first = f.readdir(&c, &d, 0, 20).await.unwrap();
    let mid = first.entries[9].cookie;
    let a = f.readdir(&c, &d, mid, 10).await.unwrap();
    let b = f.readdir(&c, &d, mid, 10).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.entries[..], first.entries[10..20]);
    assert_eq!(f.readdir(&c, &d, 0, 0).await.err(), Some(Error::TooSmall));
}

/// LINK, SYMLINK with READLINK, and RENAME, which keeps the handle.
pub async fn link_symlink_rename(f: &dyn CoreFiler) {
    let c = root();
    let d = workdir(f, "link_symlink_rename").await;
    let fh = mk(f, &d, b"f", file(CreateMode::Guarded)).await.unwrap();
    let sub = mk(f, &d, b"sub", NewNode::Directory).await.unwrap();
    let (la, lw) = f.link(&c, &fh, &sub, b"f2").await.unwrap();
    assert_eq!(la.nlink, 2);
    assert!(lw.after.is_some());
    assert_eq!(f.lookup(&c, &sub, b"f2").await.unwrap().0, fh);
    assert_eq!(f.link(&c, &fh, &sub, b"f2").await.err(), Some(Error::Exist));
    assert!(
        f.link(&c, &sub, &d, b"dirlink").await.is_err(),
        "a directory linked"
    );
    assert_eq!(f.link(&c, &fh, &fh, b"z").await.err(), Some(Error::NotDir));

    let s = mk(f, &d, b"s", NewNode::Symlink(b"target/x".to_vec()))
        .await
        .unwrap();
    assert_eq!(f.getattr(&c, &s).await.unwrap().ftype, FileType::Symlink);
    assert_eq!(f.readlink(&c, &s).await.unwrap(), b"target/x");
    assert_eq!(f.lookup(&c, &d, b"s").await.unwrap().1.ftype, FileType::Symlink);
    assert_eq!(
        mk(f, &d, b"s2", NewNode::Symlink(Vec::new())).await,
        Err(Error::Inval)
    );

    let (fw, tw) = f.rename(&c, &sub, b"f2", &d, b"g").await.unwrap();
    assert!(fw.after.is_some() && tw.after.is_some());
    assert_eq!(f.lookup(&c, &sub, b"f2").await.err(), Some(Error::NoEnt));
    assert_eq!(f.lookup(&c, &d, b"g").await.unwrap().0, fh);
    // A rename replaces a file, and the handle moves with the object.
    let other = mk(f, &d, b"other", file(CreateMode::Guarded)).await.unwrap();
    f.rename(&c, &d, b"other", &d, b"g").await.unwrap();
    assert_eq!(f.lookup(&c, &d, b"g").await.unwrap().0, other);
    assert_eq!(f.getattr(&c, &fh).await.unwrap().nlink, 1);
    assert_eq!(
        f.rename(&c, &d, b"missing", &d, b"h").await.err(),
        Some(Error::NoEnt)
    );
    assert!(
        f.rename(&c, &d, b"g", &d, b"sub").await.is_err(),
        "a file over a directory"
    );
    assert_eq!(f.lookup(&c, &d, b"sub").await.unwrap().0, sub);
}

/// REMOVE and RMDIR, their errors, and handles of removed objects.
pub async fn remove_and_rmdir(f: &dyn CoreFiler) {
    let c = root();
    let d = workdir(f, "remove_and_rmdir").await;
    mk(f, &d, b"f", file(CreateMode::Guarded)).await.unwrap();
    let full = mk(f, &d, b"full", NewNode::Directory).await.unwrap();
    mk(f, &full, b"inside", file(CreateMode::Guarded)).await.unwrap();
    let empty = mk(f, &d, b"empty", NewNode::Directory).await.unwrap();

    assert_eq!(f.remove(&c, &d, b"full", true).await.err(), Some(Error::NotEmpty));
    assert_eq!(f.remove(&c, &d, b"f", true).await.err(), Some(Error::NotDir));
    assert_eq!(f.remove(&c, &d, b"empty", false).await.err(), Some(Error::IsDir));
    let wcc = f.remove(&c, &d, b"f", false).await.unwrap();
    assert!(wcc.after.is_some());
    assert_eq!(f.lookup(&c, &d, b"f").await.err(), Some(Error::NoEnt));
    assert_eq!(f.remove(&c, &d, b"f", false).await.err(), Some(Error::NoEnt));
    f.remove(&c, &d, b"empty", true).await.unwrap();
    assert_eq!(f.getattr(&c, &empty).await.err(), Some(Error::Stale));
    assert_eq!(f.fsstat(&c, &empty).await.err(), Some(Error::Stale));
    f.remove(&c, &full, b"inside", false).await.unwrap();
    f.remove(&c, &d, b"full", true).await.unwrap();
    let page = f.readdir(&c, &d, 0, 10).await.unwrap();
    assert!(page.entries.is_empty() && page.eof);
    let st = f.fsstat(&c, &f.root()).await.unwrap();
    assert!(st.total_bytes > 0 && st.total_bytes >= st.free_bytes);
}

/// Calls on the wrong kind of object answer alike on every back end.
pub async fn wrong_kinds(f: &dyn CoreFiler) {
    let c = root();
    let d = workdir(f, "wrong_kinds").await;
    let fh = mk(f, &d, b"f", file(CreateMode::Guarded)).await.unwrap();
    let s = mk(f, &d, b"s", NewNode::Symlink(b"f".to_vec())).await.unwrap();
    let size0 = SetAttr {
        size: Some(0),
        ..SetAttr::default()
    };
    let x = Bytes::from_static(b"x");
    assert_eq!(f.read(&c, &d, 0, 10).await.err(), Some(Error::IsDir));
    assert_eq!(f.read(&c, &s, 0, 10).await.err(), Some(Error::Inval));
    let e = f.write(&c, &d, 0, x.clone(), Stability::FileSync).await;
    assert_eq!(e.err(), Some(Error::IsDir));
    let e = f.write(&c, &s, 0, x, Stability::FileSync).await;
    assert_eq!(e.err(), Some(Error::Inval));
    assert_eq!(f.commit(&c, &d).await.err(), Some(Error::IsDir));
    assert_eq!(f.setattr(&c, &d, &size0).await.err(), Some(Error::IsDir));
    assert_eq!(f.setattr(&c, &s, &size0).await.err(), Some(Error::Inval));
    assert_eq!(f.readlink(&c, &fh).await.err(), Some(Error::Inval));
    assert_eq!(f.readlink(&c, &d).await.err(), Some(Error::Inval));
    assert_eq!(f.lookup_parent(&c, &fh).await.err(), Some(Error::NotDir));
    assert_eq!(f.readdir(&c, &fh, 0, 10).await.err(), Some(Error::NotDir));
    assert_eq!(f.readdir_plus(&c, &fh, 0, 5).await.err(), Some(Error::NotDir));
}

/// A caller who is not the owner: refused where the mode says so, and what
/// it makes is its own.
pub async fn access_for_non_owner(f: &dyn CoreFiler) {
    let c = root();
    let bob = Credentials {
        uid: 1000,
        gid: 1000,
        gids: vec![1000],
        origin: 0,
    };
    let d = workdir(f, "access_for_non_owner").await;
    let secret = f
        .create(&c, &d, b"secret", &NewNode::Directory, &mode(0o700))
        .await
        .unwrap()
        .handle;
    mk(f, &secret, b"inside", file(CreateMode::Guarded))
        .await
        .unwrap();
    let roots = mk(f, &d, b"roots", file(CreateMode::Guarded)).await.unwrap();
    assert_eq!(
        f.lookup(&bob, &secret, b"inside").await.err(),
        Some(Error::Access)
    );
    assert_eq!(f.readdir(&bob, &secret, 0, 10).await.err(), Some(Error::Access));
    let e = f
        .create(&bob, &d, b"mine", &file(CreateMode::Guarded), &mode(0o644))
        .await;
    assert_eq!(e.err(), Some(Error::Access), "create in a directory of root's");
    let e = f
        .write(&bob, &roots, 0, Bytes::from_static(b"x"), Stability::FileSync)
        .await;
    assert_eq!(e.err(), Some(Error::Access));
    assert_eq!(
        f.setattr(&bob, &roots, &mode(0o777)).await.err(),
        Some(Error::Perm)
    );
    assert_eq!(
        f.remove(&bob, &d, b"roots", false).await.err(),
        Some(Error::Access)
    );

    let open = f
        .create(&c, &d, b"open", &NewNode::Directory, &mode(0o777))
        .await
        .unwrap()
        .handle;
    let owned = SetAttr {
        mode: Some(0o644),
        uid: Some(1000),
        gid: Some(1000),
        ..SetAttr::default()
    };
    let made = f
        .create(&bob, &open, b"bobs", &file(CreateMode::Guarded), &owned)
        .await
        .unwrap();
    assert_eq!((made.attr.uid, made.attr.gid), (1000, 1000));
    f.write(
        &bob,
        &made.handle,
        0,
        Bytes::from_static(b"mine"),
        Stability::FileSync,
    )
    .await
    .unwrap();
    f.setattr(&bob, &made.handle, &mode(0o600)).await.unwrap();
}
