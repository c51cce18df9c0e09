//! What a client cannot do to get past its export: move a handle to another
//! export, use an untagged handle where exports are several, climb out of a
//! subdirectory export, or act as root through the embedded default export.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use nfs_front::{Access, ExportConfig, Squash};
use nfs_proto::mount::{MountRes3, MountStat3};
use nfs_proto::nfs3::*;
use nfs_proto::xdr::Opaque;

fn at(dir: &NfsFh3, n: &[u8]) -> DirOpArgs3 {
    DirOpArgs3 {
        dir: dir.clone(),
        name: Opaque::new(n.to_vec()),
    }
}

fn export(path: &str, subdir: &str, access: Access) -> ExportConfig {
    ExportConfig {
        path: path.into(),
        subdir: subdir.into(),
        rules: vec![insecure(&["127.0.0.0/8"], access, Squash::None)],
    }
}

fn lookup(c: &mut Client, dir: &NfsFh3, n: &[u8]) -> Lookup3Ok {
    match c.nfs(Nfs3Args::Lookup(at(dir, n))) {
        Nfs3Res::Lookup(NfsResult::Ok(ok)) => ok,
        other => panic!("{other:?}"),
    }
}

fn write(c: &mut Client, f: &NfsFh3) -> Result<(), NfsStat3> {
    match c.nfs(Nfs3Args::Write(Write3Args {
        file: f.clone(),
        offset: 0,
        count: 1,
        stable: StableHow::FileSync,
        data: Opaque::new(&b"x"[..]),
    })) {
        Nfs3Res::Write(NfsResult::Ok(_)) => Ok(()),
        Nfs3Res::Write(NfsResult::Err(e, _)) => Err(e),
        other => panic!("{other:?}"),
    }
}

fn getattr(c: &mut Client, h: Vec<u8>) -> Result<Fattr3, NfsStat3> {
    match c.nfs(Nfs3Args::Getattr(GetAttr3Args {
        object: Opaque::new(h),
    })) {
        Nfs3Res::Getattr(NfsResult::Ok(a)) => Ok(a),
        Nfs3Res::Getattr(NfsResult::Err(e, ())) => Err(e),
        other => panic!("{other:?}"),
    }
}

/// `h` with its first byte saying export `i`, the way a client would retag it.
fn retagged(h: &NfsFh3, i: u8) -> Vec<u8> {
    let mut b = h.as_bytes().to_vec();
    b[0] = 0x80 | i;
    b
}

#[test]
fn a_handle_cannot_move_to_another_export() {
    let fx = start(|cfg| {
        cfg.exports = vec![export("/ro", "/", Access::Ro), export("/rw", "/", Access::Rw)];
    });
    std::fs::write(fx.origin().join("f"), b"data").unwrap();
    let mut c = fx.client();
    let ro = c.root("/ro");
    let f = lookup(&mut c, &ro, b"f").object;
    assert_eq!(write(&mut c, &f), Err(NfsStat3::RoFs));
    let listed = match c.nfs(Nfs3Args::Readdirplus(Readdirplus3Args {
        dir: ro.clone(),
        cookie: 0,
        cookieverf: 0,
        dircount: 4096,
        maxcount: 65536,
    })) {
        Nfs3Res::Readdirplus(NfsResult::Ok(ok)) => ok.reply.entries,
        other => panic!("{other:?}"),
    };
    let entry = listed.iter().find(|e| e.name.as_bytes() == b"f").unwrap();
    assert_eq!(
        entry.name_handle.as_ref(),
        Some(&f),
        "READDIRPLUS gives the export's handle"
    );
    let moved = Opaque::new(retagged(&f, 1));
    assert_eq!(write(&mut c, &moved), Err(NfsStat3::BadHandle));
    assert_eq!(std::fs::read(fx.origin().join("f")).unwrap(), b"data");
    // The same file through the read-write export is writable.
    let rw = c.root("/rw");
    assert_ne!(rw.as_bytes(), ro.as_bytes(), "each export has its own handles");
    let f = lookup(&mut c, &rw, b"f").object;
    assert_eq!(write(&mut c, &f), Ok(()));
}

#[test]
fn untagged_handles_name_an_export_only_when_there_is_one() {
    let fx = start(|cfg| {
        cfg.exports = vec![export("/a", "/", Access::Rw), export("/b", "/", Access::Rw)];
    });
    let mut c = fx.client();
    let untagged = fx.engine.root().as_bytes().to_vec();
    assert_eq!(getattr(&mut c, untagged).unwrap_err(), NfsStat3::BadHandle);
    drop(c);
    let fx = start(|_| {});
    let mut c = fx.client();
    let untagged = fx.engine.root().as_bytes().to_vec();
    assert_eq!(getattr(&mut c, untagged).unwrap().ftype, Ftype3::Dir);
}

#[test]
fn dotdot_never_leaves_a_subdirectory_export() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("origin/d/e")).unwrap();
    let fx = start_in(dir, |cfg| {
        cfg.exports = vec![export("/all", "/", Access::Rw), export("/sub", "/d", Access::Rw)];
    });
    let mut c = fx.client();
    let sub = c.root("/sub");
    let root_id = getattr(&mut c, sub.as_bytes().to_vec()).unwrap().fileid;
    let up = lookup(&mut c, &sub, b"..");
    assert_eq!(up.object, sub, "`..` of the export's root is the root");
    assert_eq!(up.obj_attributes.unwrap().fileid, root_id);
    let e = lookup(&mut c, &sub, b"e").object;
    assert_eq!(lookup(&mut c, &e, b"..").object, sub);
    match c.nfs(Nfs3Args::Readdirplus(Readdirplus3Args {
        dir: sub.clone(),
        cookie: 0,
        cookieverf: 0,
        dircount: 4096,
        maxcount: 65536,
    })) {
        Nfs3Res::Readdirplus(NfsResult::Ok(ok)) => {
            let dotdot = ok
                .reply
                .entries
                .iter()
                .find(|e| e.name.as_bytes() == b"..")
                .unwrap();
            assert_eq!(dotdot.fileid, root_id);
            assert_eq!(dotdot.name_handle.as_ref(), Some(&sub));
        }
        other => panic!("{other:?}"),
    }
    // Moved to the whole-filer export, the root's handle no longer verifies,
    // so its `..` cannot reach the directory above.
    let moved = Opaque::new(retagged(&sub, 0));
    match c.nfs(Nfs3Args::Lookup(at(&moved, b".."))) {
        Nfs3Res::Lookup(NfsResult::Err(NfsStat3::BadHandle, _)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_default_export_squashes_root_and_wants_privileged_ports() {
    let fx = start(|cfg| cfg.exports.clear());
    // What `weir serve` does with its default origin: anyone may create at the top.
    std::fs::set_permissions(fx.origin(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(fx.origin().join("roots"), b"").unwrap();
    assert_eq!(fx.client().mnt("/export"), MountRes3::Err(MountStat3::Acces));
    let mut c = Client::connect_privileged(fx.addr());
    let root = c.root("/export");
    match c.nfs(Nfs3Args::Create(Create3Args {
        where_: at(&root, b"mine"),
        how: CreateHow3::Guarded(Sattr3 {
            mode: Some(0o4755),
            ..Default::default()
        }),
    })) {
        Nfs3Res::Create(NfsResult::Ok(_)) => {}
        other => panic!("{other:?}"),
    }
    let md = std::fs::metadata(fx.origin().join("mine")).unwrap();
    assert_eq!((md.uid(), md.gid()), (65534, 65534), "uid 0 is squashed");
    // A root-owned file cannot be made setuid, nor a device node made.
    let roots = lookup(&mut c, &root, b"roots").object;
    match c.nfs(Nfs3Args::Setattr(SetAttr3Args {
        object: roots,
        new_attributes: Sattr3 {
            mode: Some(0o4755),
            ..Default::default()
        },
        guard: None,
    })) {
        Nfs3Res::Wcc(NfsResult::Err(NfsStat3::Perm, _)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::metadata(fx.origin().join("roots")).unwrap().mode() & 0o7777,
        0o644
    );
    match c.nfs(Nfs3Args::Mknod(Mknod3Args {
        where_: at(&root, b"null"),
        what: MknodData3::Chr(
            Sattr3::default(),
            SpecData3 {
                specdata1: 1,
                specdata2: 3,
            },
        ),
    })) {
        Nfs3Res::Create(NfsResult::Err(NfsStat3::Perm, _)) => {}
        other => panic!("{other:?}"),
    }
    assert!(!fx.origin().join("null").exists());
}
