//! The `local` core filer acts with the caller's rights: the kernel checks
//! every operation against the file system as it is (modes, groups, POSIX
//! ACLs, changes made behind the engine's cache). The tests run as root and
//! act as other users.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use core_filer::local::LocalFiler;
use core_filer::types::*;
use core_filer::{CoreFiler, Error};

fn user(uid: u32, gids: &[u32]) -> Credentials {
    Credentials {
        uid,
        gid: uid,
        gids: gids.to_vec(),
        origin: 0,
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    compio::runtime::Runtime::new().unwrap().block_on(f)
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A served directory (0755 root) holding `f` (0600, uid 2000) and an open
/// directory `pub` (0777).
fn origin() -> (tempfile::TempDir, LocalFiler) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    chmod(root, 0o755);
    std::fs::write(root.join("f"), b"private").unwrap();
    chown(&root.join("f"), 2000, 2000);
    chmod(&root.join("f"), 0o600);
    std::fs::create_dir(root.join("pub")).unwrap();
    chmod(&root.join("pub"), 0o777);
    let fs = LocalFiler::open(root).unwrap();
    (tmp, fs)
}

async fn find(fs: &LocalFiler, dir: &FilerHandle, name: &str) -> FilerHandle {
    fs.lookup(&Credentials::root(), dir, name.as_bytes())
        .await
        .unwrap()
        .0
}

fn data(b: &'static [u8]) -> Bytes {
    Bytes::from_static(b)
}

#[test]
fn another_users_private_file_stays_closed() {
    let (_tmp, fs) = origin();
    run(async {
        let f = find(&fs, &fs.root(), "f").await;
        let me = user(1000, &[]);
        assert_eq!(fs.read(&me, &f, 0, 10).await.unwrap_err(), Error::Access);
        let w = fs.write(&me, &f, 0, data(b"x"), Stability::FileSync).await;
        assert_eq!(w.unwrap_err(), Error::Access);
        let trunc = SetAttr {
            size: Some(0),
            ..Default::default()
        };
        assert_eq!(fs.setattr(&me, &f, &trunc).await.unwrap_err(), Error::Access);
        // Its owner, and root, read it.
        assert_eq!(
            &fs.read(&user(2000, &[]), &f, 0, 10).await.unwrap().data[..],
            b"private"
        );
        assert_eq!(
            &fs.read(&Credentials::root(), &f, 0, 10).await.unwrap().data[..],
            b"private"
        );
    });
}

#[test]
fn a_root_owned_directory_refuses_changes() {
    let (tmp, fs) = origin();
    run(async {
        let me = user(1000, &[]);
        let root = fs.root();
        let set = SetAttr {
            uid: Some(1000),
            gid: Some(1000),
            ..Default::default()
        };
        for node in [
            NewNode::File(CreateMode::Guarded),
            NewNode::Directory,
            NewNode::Symlink(b"f".to_vec()),
            NewNode::Fifo,
        ] {
            let made = fs.create(&me, &root, b"mine", &node, &set).await;
            assert_eq!(made.unwrap_err(), Error::Access, "{node:?}");
        }
        assert_eq!(
            fs.remove(&me, &root, b"f", false).await.unwrap_err(),
            Error::Access
        );
        let mv = fs.rename(&me, &root, b"f", &root, b"g").await;
        assert_eq!(mv.unwrap_err(), Error::Access);
        let f = find(&fs, &root, "f").await;
        let pubd = find(&fs, &root, "pub").await;
        // Linking another user's private file is refused (protected hard links).
        assert!(fs.link(&me, &f, &pubd, b"l").await.is_err());
        let mut names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["f", "pub"]);
    });
}

#[test]
fn what_a_caller_makes_is_its_own() {
    let (tmp, fs) = origin();
    // A setgid directory of a group the caller is not in.
    let sg = tmp.path().join("sg");
    std::fs::create_dir(&sg).unwrap();
    chown(&sg, 0, 3000);
    chmod(&sg, 0o2777);
    run(async {
        let me = user(1000, &[]);
        let pubd = find(&fs, &fs.root(), "pub").await;
        let sgd = find(&fs, &fs.root(), "sg").await;
        // As the engine asks: the caller's ids, the setgid directory's group.
        let set = |gid| SetAttr {
            mode: Some(0o640),
            uid: Some(1000),
            gid: Some(gid),
            ..Default::default()
        };
        let file = NewNode::File(CreateMode::Guarded);
        let made = fs.create(&me, &pubd, b"a", &file, &set(1000)).await.unwrap();
        assert_eq!(
            (made.attr.uid, made.attr.gid, made.attr.mode),
            (1000, 1000, 0o640)
        );
        let md = std::fs::metadata(tmp.path().join("pub/a")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1000, 1000));
        let d = fs
            .create(&me, &pubd, b"d", &NewNode::Directory, &set(1000))
            .await
            .unwrap();
        assert_eq!((d.attr.uid, d.attr.gid), (1000, 1000));
        let s = fs.create(&me, &sgd, b"s", &file, &set(3000)).await.unwrap();
        assert_eq!((s.attr.uid, s.attr.gid), (1000, 3000));
        let dir_set = SetAttr {
            mode: Some(0o2755),
            ..set(3000)
        };
        let sd = fs
            .create(&me, &sgd, b"sd", &NewNode::Directory, &dir_set)
            .await
            .unwrap();
        assert_eq!((sd.attr.uid, sd.attr.gid), (1000, 3000));
        assert_ne!(
            sd.attr.mode & 0o2000,
            0,
            "a setgid directory's subdirectory is setgid"
        );
        // The caller writes, renames and removes what it made.
        fs.write(&me, &made.handle, 0, data(b"mine"), Stability::FileSync)
            .await
            .unwrap();
        fs.rename(&me, &pubd, b"a", &pubd, b"b").await.unwrap();
        fs.remove(&me, &pubd, b"b", false).await.unwrap();
        // It may not give it away.
        let give = SetAttr {
            uid: Some(2000),
            ..Default::default()
        };
        assert_eq!(fs.setattr(&me, &s.handle, &give).await.unwrap_err(), Error::Perm);
    });
}

#[test]
fn groups_are_honoured() {
    let (tmp, fs) = origin();
    let g = tmp.path().join("g");
    std::fs::write(&g, b"group").unwrap();
    chown(&g, 2000, 3000);
    chmod(&g, 0o640);
    run(async {
        let g = find(&fs, &fs.root(), "g").await;
        let member = user(1000, &[3000]);
        assert_eq!(&fs.read(&member, &g, 0, 10).await.unwrap().data[..], b"group");
        let w = fs.write(&member, &g, 0, data(b"x"), Stability::FileSync).await;
        assert_eq!(w.unwrap_err(), Error::Access);
        assert_eq!(
            fs.read(&user(1000, &[]), &g, 0, 10).await.unwrap_err(),
            Error::Access
        );
        // The same thread acts as one caller, then the other, then the first again.
        assert_eq!(&fs.read(&member, &g, 0, 10).await.unwrap().data[..], b"group");
    });
}

#[test]
fn posix_acls_are_enforced() {
    let (tmp, fs) = origin();
    let a = tmp.path().join("acl");
    std::fs::write(&a, b"acl").unwrap();
    chown(&a, 2000, 2000);
    chmod(&a, 0o644);
    let path = a.to_str().unwrap();
    // uid 1000 may read and write although the mode says no; uid 1001 may
    // not read although the mode says yes.
    let out = Command::new("setfacl")
        .args(["-m", "u:1000:rw,u:1001:---", path])
        .output()
        .expect("setfacl (Debian package acl) must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run(async {
        let h = find(&fs, &fs.root(), "acl").await;
        fs.write(&user(1000, &[]), &h, 0, data(b"ACL"), Stability::FileSync)
            .await
            .unwrap();
        assert_eq!(
            &fs.read(&user(1000, &[]), &h, 0, 10).await.unwrap().data[..],
            b"ACL"
        );
        assert_eq!(
            fs.read(&user(1001, &[]), &h, 0, 10).await.unwrap_err(),
            Error::Access
        );
        assert_eq!(
            &fs.read(&user(1002, &[]), &h, 0, 10).await.unwrap().data[..],
            b"ACL"
        );
    });
}

#[test]
fn the_owner_writes_a_read_only_file_and_an_open_keeps_its_access() {
    let (tmp, fs) = origin();
    run(async {
        let me = user(1000, &[]);
        let pubd = find(&fs, &fs.root(), "pub").await;
        // git's loose objects: created 0444, then written.
        let set = SetAttr {
            mode: Some(0o444),
            uid: Some(1000),
            gid: Some(1000),
            ..Default::default()
        };
        let file = NewNode::File(CreateMode::Guarded);
        let made = fs.create(&me, &pubd, b"obj", &file, &set).await.unwrap();
        assert_eq!(made.attr.mode, 0o444);
        fs.write(&me, &made.handle, 0, data(b"blob"), Stability::FileSync)
            .await
            .unwrap();
        assert_eq!(
            &fs.read(&me, &made.handle, 0, 10).await.unwrap().data[..],
            b"blob"
        );
        // Anyone else is refused, unless an open granted the access earlier.
        let other = user(1001, &[]);
        let w = fs
            .write(&other, &made.handle, 0, data(b"x"), Stability::FileSync)
            .await;
        assert_eq!(w.unwrap_err(), Error::Access);
        fs.write_opened(&other, &made.handle, 4, data(b"!"), Stability::FileSync)
            .await
            .unwrap();
        assert_eq!(std::fs::read(tmp.path().join("pub/obj")).unwrap(), b"blob!");
        // An executable the caller may only run is still read (clients load it).
        chmod(&tmp.path().join("pub/obj"), 0o711);
        assert_eq!(
            &fs.read(&other, &made.handle, 0, 10).await.unwrap().data[..],
            b"blob!"
        );
        chmod(&tmp.path().join("pub/obj"), 0o700);
        assert_eq!(
            fs.read(&other, &made.handle, 0, 10).await.unwrap_err(),
            Error::Access
        );
    });
}
