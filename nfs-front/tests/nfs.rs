//! The NFS front end over TCP, driven with nfs-proto's client-side encoders.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use common::*;
use nfs_front::{Access, ExportConfig, RuleConfig, Squash};
use nfs_proto::mount::{MountRes3, MountStat3};
use nfs_proto::nfs3::*;
use nfs_proto::rpc::{AuthStat, ReplyStat};
use nfs_proto::xdr::{Encoder, Opaque};

fn name(s: &[u8]) -> Filename3 {
    Opaque::new(s.to_vec())
}

fn at(dir: &NfsFh3, n: &[u8]) -> DirOpArgs3 {
    DirOpArgs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

fn created(r: Nfs3Res) -> Create3Ok {
    match r {
        Nfs3Res::Create(NfsResult::Ok(ok)) => {
            assert!(
                ok.dir_wcc.before.is_some() && ok.dir_wcc.after.is_some(),
                "no wcc"
            );
            ok
        }
        other => panic!("{other:?}"),
    }
}

fn create(c: &mut Client, dir: &NfsFh3, n: &[u8]) -> NfsFh3 {
    let ok = created(c.nfs(Nfs3Args::Create(Create3Args {
        where_: at(dir, n),
        how: CreateHow3::Unchecked(Sattr3 {
            mode: Some(0o644),
            ..Default::default()
        }),
    })));
    ok.obj.unwrap()
}

#[test]
fn every_procedure_succeeds_and_fails_properly() {
    let fx = start(|_| {});
    let mut c = fx.client();
    let root = c.root("/export");
    assert_eq!(c.nfs(Nfs3Args::Null), Nfs3Res::Null);
    let Nfs3Res::Getattr(NfsResult::Ok(a)) = c.nfs(Nfs3Args::Getattr(GetAttr3Args { object: root.clone() }))
    else {
        panic!()
    };
    assert_eq!(a.ftype, Ftype3::Dir);

    // MKDIR, CREATE, WRITE, READ, COMMIT.
    let sub = created(c.nfs(Nfs3Args::Mkdir(Mkdir3Args {
        where_: at(&root, b"sub"),
        attributes: Sattr3::default(),
    })))
    .obj
    .unwrap();
    let f = create(&mut c, &sub, b"f");
    let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    match c.nfs(Nfs3Args::Write(Write3Args {
        file: f.clone(),
        offset: 0,
        count: data.len() as u32,
        stable: StableHow::Unstable,
        data: Opaque::new(data.clone()),
    })) {
        Nfs3Res::Write(NfsResult::Ok(w)) => {
            assert_eq!(w.count as usize, data.len());
            assert_eq!(w.verf, fx.engine.write_verifier());
            assert!(w.file_wcc.after.is_some());
        }
        other => panic!("{other:?}"),
    }
    match c.nfs(Nfs3Args::Read(Read3Args {
        file: f.clone(),
        offset: 1000,
        count: 200_000,
    })) {
        Nfs3Res::Read(NfsResult::Ok(r)) => {
            assert_eq!(r.count, 200_000);
            assert_eq!(r.data.as_bytes(), &data[1000..201_000]);
            assert!(!r.eof);
        }
        other => panic!("{other:?}"),
    }
    match c.nfs(Nfs3Args::Commit(Commit3Args {
        file: f.clone(),
        offset: 0,
        count: 0,
    })) {
        Nfs3Res::Commit(NfsResult::Ok(ok)) => assert_eq!(ok.verf, fx.engine.write_verifier()),
        other => panic!("{other:?}"),
    }

    // LOOKUP, ACCESS, SETATTR (with a guard that fails), READLINK, LINK, RENAME.
    let Nfs3Res::Lookup(NfsResult::Ok(l)) = c.nfs(Nfs3Args::Lookup(at(&sub, b"f"))) else {
        panic!()
    };
    assert_eq!(l.obj_attributes.unwrap().size, data.len() as u64);
    assert!(l.dir_attributes.is_some());
    match c.nfs(Nfs3Args::Lookup(at(&sub, b"missing"))) {
        Nfs3Res::Lookup(NfsResult::Err(NfsStat3::NoEnt, dir)) => assert!(dir.is_some()),
        other => panic!("{other:?}"),
    }
    let Nfs3Res::Lookup(NfsResult::Ok(up)) = c.nfs(Nfs3Args::Lookup(at(&root, b".."))) else {
        panic!()
    };
    assert_eq!(up.object, root, "`..` of the export root is the root");
    let Nfs3Res::Access(NfsResult::Ok(acc)) = c.nfs(Nfs3Args::Access(Access3Args {
        object: f.clone(),
        access: 0x3f,
    })) else {
        panic!()
    };
    assert_ne!(acc.access & access::MODIFY, 0);
    match c.nfs(Nfs3Args::Setattr(SetAttr3Args {
        object: f.clone(),
        new_attributes: Sattr3 {
            mode: Some(0o600),
            ..Default::default()
        },
        guard: Some(NfsTime3 {
            seconds: 1,
            nseconds: 0,
        }),
    })) {
        Nfs3Res::Wcc(NfsResult::Err(NfsStat3::NotSync, w)) => assert!(w.after.is_some()),
        other => panic!("{other:?}"),
    }
    match c.nfs(Nfs3Args::Setattr(SetAttr3Args {
        object: f.clone(),
        new_attributes: Sattr3 {
            mode: Some(0o600),
            size: Some(10),
            ..Default::default()
        },
        guard: None,
    })) {
        Nfs3Res::Wcc(NfsResult::Ok(w)) => {
            let after = w.after.unwrap();
            assert_eq!((after.mode, after.size), (0o600, 10));
            assert!(w.before.is_some());
        }
        other => panic!("{other:?}"),
    }
    let link = created(c.nfs(Nfs3Args::Symlink(Symlink3Args {
        where_: at(&sub, b"ln"),
        attributes: Sattr3::default(),
        data: Opaque::new(&b"f"[..]),
    })))
    .obj
    .unwrap();
    match c.nfs(Nfs3Args::Readlink(GetAttr3Args { object: link })) {
        Nfs3Res::Readlink(NfsResult::Ok(r)) => assert_eq!(r.data.as_bytes(), b"f"),
        other => panic!("{other:?}"),
    }
    match c.nfs(Nfs3Args::Link(Link3Args {
        file: f.clone(),
        link: at(&root, b"hard"),
    })) {
        Nfs3Res::Link(NfsResult::Ok(l)) => assert_eq!(l.file_attributes.unwrap().nlink, 2),
        other => panic!("{other:?}"),
    }
    match c.nfs(Nfs3Args::Rename(Rename3Args {
        from: at(&root, b"hard"),
        to: at(&sub, b"moved"),
    })) {
        Nfs3Res::Rename(NfsResult::Ok(r)) => {
            assert!(r.fromdir_wcc.after.is_some() && r.todir_wcc.after.is_some())
        }
        other => panic!("{other:?}"),
    }
    assert!(fx.origin().join("sub/moved").exists());
    // MKNOD: a fifo works, a regular file is the wrong type here.
    created(c.nfs(Nfs3Args::Mknod(Mknod3Args {
        where_: at(&sub, b"fifo"),
        what: MknodData3::Fifo(Sattr3::default()),
    })));
    match c.nfs(Nfs3Args::Mknod(Mknod3Args {
        where_: at(&sub, b"reg"),
        what: MknodData3::Other(Ftype3::Reg),
    })) {
        Nfs3Res::Create(NfsResult::Err(NfsStat3::BadType, _)) => {}
        other => panic!("{other:?}"),
    }
    // FSSTAT, FSINFO, PATHCONF.
    assert!(matches!(
        c.nfs(Nfs3Args::Fsstat(GetAttr3Args { object: root.clone() })),
        Nfs3Res::Fsstat(NfsResult::Ok(_))
    ));
    match c.nfs(Nfs3Args::Fsinfo(GetAttr3Args { object: root.clone() })) {
        Nfs3Res::Fsinfo(NfsResult::Ok(i)) => {
            assert_eq!((i.rtmax, i.wtmax), (1 << 20, 1 << 20));
            assert_ne!(i.properties & fsf::SYMLINK, 0);
        }
        other => panic!("{other:?}"),
    }
    match c.nfs(Nfs3Args::Pathconf(GetAttr3Args { object: root.clone() })) {
        Nfs3Res::Pathconf(NfsResult::Ok(p)) => assert_eq!(p.name_max, 255),
        other => panic!("{other:?}"),
    }
    // REMOVE, RMDIR (not empty, then empty).
    match c.nfs(Nfs3Args::Rmdir(at(&root, b"sub"))) {
        Nfs3Res::Wcc(NfsResult::Err(NfsStat3::NotEmpty, w)) => assert!(w.after.is_some()),
        other => panic!("{other:?}"),
    }
    for n in [&b"f"[..], b"ln", b"moved", b"fifo"] {
        match c.nfs(Nfs3Args::Remove(at(&sub, n))) {
            Nfs3Res::Wcc(NfsResult::Ok(w)) => assert!(w.before.is_some() && w.after.is_some()),
            other => panic!("{n:?}: {other:?}"),
        }
    }
    assert!(matches!(
        c.nfs(Nfs3Args::Rmdir(at(&root, b"sub"))),
        Nfs3Res::Wcc(NfsResult::Ok(_))
    ));
    // The removed file's handle is stale now.
    match c.nfs(Nfs3Args::Getattr(GetAttr3Args { object: f })) {
        Nfs3Res::Getattr(NfsResult::Err(NfsStat3::Stale, ())) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_names_and_handles() {
    let fx = start(|_| {});
    let mut c = fx.client();
    let root = c.root("/export");
    for bad in [&b"a/b"[..], b"nul\0", b""] {
        match c.nfs(Nfs3Args::Create(Create3Args {
            where_: at(&root, bad),
            how: CreateHow3::Guarded(Sattr3::default()),
        })) {
            Nfs3Res::Create(NfsResult::Err(NfsStat3::Inval, w)) => assert!(w.after.is_some()),
            other => panic!("{bad:?}: {other:?}"),
        }
        match c.nfs(Nfs3Args::Lookup(at(&root, bad))) {
            Nfs3Res::Lookup(NfsResult::Err(NfsStat3::Inval, _)) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    match c.nfs(Nfs3Args::Lookup(at(&root, &[b'x'; 256]))) {
        Nfs3Res::Lookup(NfsResult::Err(NfsStat3::NameTooLong, _)) => {}
        other => panic!("{other:?}"),
    }
    // Garbage handles: too short, forged MAC, unknown export index.
    let mut forged = root.as_bytes().to_vec();
    *forged.last_mut().unwrap() ^= 1;
    let mut other_export = root.as_bytes().to_vec();
    other_export[0] = 0x80 | 9;
    for (h, want) in [
        (vec![1u8, 2, 3], NfsStat3::BadHandle),
        (forged, NfsStat3::BadHandle),
        (other_export, NfsStat3::BadHandle),
    ] {
        match c.nfs(Nfs3Args::Getattr(GetAttr3Args {
            object: Opaque::new(h),
        })) {
            Nfs3Res::Getattr(NfsResult::Err(got, ())) => assert_eq!(got, want),
            other => panic!("{other:?}"),
        }
    }
    // Exclusive create: a retransmission with the same verifier succeeds.
    let ex = |c: &mut Client, v| {
        c.nfs(Nfs3Args::Create(Create3Args {
            where_: at(&root, b"ex"),
            how: CreateHow3::Exclusive(v),
        }))
    };
    created(ex(&mut c, 42));
    assert!(matches!(ex(&mut c, 42), Nfs3Res::Create(NfsResult::Ok(_))));
    assert!(matches!(
        ex(&mut c, 43),
        Nfs3Res::Create(NfsResult::Err(NfsStat3::Exist, _))
    ));
}

#[test]
fn readdir_pages_list_every_name_once() {
    let fx = start(|_| {});
    let dir = fx.origin().join("big");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..10_000 {
        std::fs::File::create(dir.join(format!("file-{i:05}"))).unwrap();
    }
    let mut c = fx.client();
    let root = c.root("/export");
    let Nfs3Res::Lookup(NfsResult::Ok(l)) = c.nfs(Nfs3Args::Lookup(at(&root, b"big"))) else {
        panic!()
    };
    let big = l.object;
    for plus in [false, true] {
        let (mut cookie, mut verf, mut seen, mut pages) = (0u64, 0u64, HashSet::new(), 0);
        loop {
            let (entries, eof, v): (Vec<(Vec<u8>, u64)>, bool, u64) = if plus {
                match c.nfs(Nfs3Args::Readdirplus(Readdirplus3Args {
                    dir: big.clone(),
                    cookie,
                    cookieverf: verf,
                    dircount: 512,
                    maxcount: 8192,
                })) {
                    Nfs3Res::Readdirplus(NfsResult::Ok(ok)) => {
                        for e in &ok.reply.entries {
                            assert!(e.name_attributes.is_some() && e.name_handle.is_some());
                        }
                        let list = ok
                            .reply
                            .entries
                            .iter()
                            .map(|e| (e.name.as_bytes().to_vec(), e.cookie));
                        (list.collect(), ok.reply.eof, ok.cookieverf)
                    }
                    other => panic!("{other:?}"),
                }
            } else {
                match c.nfs(Nfs3Args::Readdir(Readdir3Args {
                    dir: big.clone(),
                    cookie,
                    cookieverf: verf,
                    count: 1024,
                })) {
                    Nfs3Res::Readdir(NfsResult::Ok(ok)) => {
                        let list = ok
                            .reply
                            .entries
                            .iter()
                            .map(|e| (e.name.as_bytes().to_vec(), e.cookie));
                        (list.collect(), ok.reply.eof, ok.cookieverf)
                    }
                    other => panic!("{other:?}"),
                }
            };
            pages += 1;
            verf = v;
            for (n, ck) in &entries {
                assert!(
                    seen.insert(n.clone()),
                    "{} listed twice",
                    String::from_utf8_lossy(n)
                );
                cookie = *ck;
            }
            if eof {
                break;
            }
            assert!(!entries.is_empty());
        }
        assert_eq!(seen.len(), 10_002, "plus={plus}");
        assert!(seen.contains(&b"."[..]) && seen.contains(&b".."[..]));
        assert!(pages > 20, "pages of small dircount: {pages}");
    }
    // A wrong cookie verifier is refused; a tiny count is too small.
    match c.nfs(Nfs3Args::Readdir(Readdir3Args {
        dir: big.clone(),
        cookie: 1000,
        cookieverf: 12345,
        count: 4096,
    })) {
        Nfs3Res::Readdir(NfsResult::Err(NfsStat3::BadCookie, _)) => {}
        other => panic!("{other:?}"),
    }
    match c.nfs(Nfs3Args::Readdir(Readdir3Args {
        dir: big,
        cookie: 0,
        cookieverf: 0,
        count: 50,
    })) {
        Nfs3Res::Readdir(NfsResult::Err(NfsStat3::TooSmall, _)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn rpc_level_errors() {
    let fx = start(|_| {});
    let mut c = fx.client();
    let (h, _) = c.call_raw(100099, 1, 0, &[]);
    assert_eq!(h.stat, ReplyStat::ProgUnavail);
    let (h, _) = c.call_raw(PROGRAM, 4, 0, &[]);
    assert_eq!(h.stat, ReplyStat::ProgMismatch { low: 3, high: 3 });
    let (h, _) = c.call_raw(PROGRAM, 3, 22, &[]);
    assert_eq!(h.stat, ReplyStat::ProcUnavail);
    let (h, _) = c.call_raw(PROGRAM, 3, 1, &[0, 0, 0]);
    assert_eq!(h.stat, ReplyStat::GarbageArgs);
    let (h, _) = c.call_raw(PROGRAM, 3, 1, &[0xff; 8]);
    assert_eq!(h.stat, ReplyStat::GarbageArgs);
    c.cred = nfs_proto::rpc::OpaqueAuth {
        flavor: 1,
        body: bytes::Bytes::from_static(&[0, 0, 0, 1]),
    };
    let (h, _) = c.call_raw(PROGRAM, 3, 0, &[]);
    assert_eq!(h.stat, ReplyStat::AuthError(AuthStat::BadCred));
    c.cred = nfs_proto::rpc::OpaqueAuth {
        flavor: 6,
        body: bytes::Bytes::new(),
    };
    let (h, _) = c.call_raw(PROGRAM, 3, 0, &[]);
    assert_eq!(h.stat, ReplyStat::AuthError(AuthStat::BadCred));
    // RPC version 3.
    let mut e = Encoder::new();
    for v in [77u32, 0, 3, PROGRAM, 3, 0, 0, 0, 0, 0] {
        e.u32(v);
    }
    c.s.write_all(&nfs_proto::record::frame(e.as_slice(), 1 << 20))
        .unwrap();
    let (h, _) = c.reply();
    assert_eq!((h.xid, h.stat), (77, ReplyStat::RpcMismatch { low: 2, high: 2 }));
    // A truncated header is dropped; the connection still serves.
    c.s.write_all(&nfs_proto::record::frame(&[0, 0, 0, 9, 0, 0], 1 << 20))
        .unwrap();
    c.cred = sys(0, 0);
    let (h, _) = c.call_raw(PROGRAM, 3, 0, &[]);
    assert_eq!(h.stat, ReplyStat::Success);
    // An oversized record closes the connection.
    c.s.write_all(&nfs_proto::record::record_mark(64 << 20)).unwrap();
    assert!(c.record().is_none(), "connection should be closed");
    // Others are unaffected.
    let mut c2 = fx.client();
    assert_eq!(c2.nfs(Nfs3Args::Null), Nfs3Res::Null);
}

#[test]
fn many_calls_in_flight_on_one_connection() {
    let fx = start(|_| {});
    std::fs::write(fx.origin().join("data"), vec![7u8; 4 << 20]).unwrap();
    let mut c = fx.client();
    let root = c.root("/export");
    let Nfs3Res::Lookup(NfsResult::Ok(l)) = c.nfs(Nfs3Args::Lookup(at(&root, b"data"))) else {
        panic!()
    };
    let mut sent = HashSet::new();
    for i in 0..64u64 {
        let args = if i % 2 == 0 {
            Nfs3Args::Read(Read3Args {
                file: l.object.clone(),
                offset: (i % 4) << 20,
                count: 1 << 20,
            })
        } else {
            Nfs3Args::Getattr(GetAttr3Args { object: root.clone() })
        };
        let mut e = Encoder::new();
        args.encode(&mut e);
        sent.insert((
            c.send(PROGRAM, 3, args.proc_() as u32, e.as_slice()),
            args.proc_(),
        ));
    }
    let mut order = Vec::new();
    for _ in 0..64 {
        let (h, mut d) = c.reply();
        let p = sent.iter().find(|(x, _)| *x == h.xid).unwrap().1;
        match Nfs3Res::decode(p, &mut d).unwrap() {
            Nfs3Res::Read(NfsResult::Ok(r)) => assert!(r.data.as_bytes().iter().all(|&b| b == 7)),
            Nfs3Res::Getattr(NfsResult::Ok(_)) => {}
            other => panic!("{other:?}"),
        }
        order.push(h.xid);
        sent.retain(|(x, _)| *x != h.xid);
    }
    assert!(sent.is_empty());
}

#[test]
fn export_rules() {
    let fx = start(|cfg| {
        let mut squashed = insecure(&["127.0.0.0/8"], Access::Rw, Squash::Root);
        squashed.anonuid = 4242;
        squashed.anongid = 4343;
        cfg.exports = vec![
            ExportConfig {
                path: "/ro".into(),
                subdir: "/".into(),
                rules: vec![insecure(&["*"], Access::Ro, Squash::None)],
            },
            ExportConfig {
                path: "/squash".into(),
                subdir: "/".into(),
                rules: vec![squashed],
            },
            ExportConfig {
                path: "/elsewhere".into(),
                subdir: "/".into(),
                rules: vec![insecure(&["10.0.0.0/8"], Access::Rw, Squash::None)],
            },
            ExportConfig {
                path: "/secure".into(),
                subdir: "/".into(),
                rules: vec![RuleConfig {
                    secure: true,
                    ..RuleConfig::new(&["*"], Access::Rw, Squash::None)
                }],
            },
        ];
    });
    // Before any call, so the engine caches the mode: squashed root may create here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fx.origin(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut c = fx.client();
    assert_eq!(c.mnt("/elsewhere"), MountRes3::Err(MountStat3::Acces));
    assert_eq!(c.mnt("/secure"), MountRes3::Err(MountStat3::Acces));
    assert_eq!(c.mnt("/nope"), MountRes3::Err(MountStat3::NoEnt));
    let ro = c.root("/ro");
    match c.nfs(Nfs3Args::Create(Create3Args {
        where_: at(&ro, b"x"),
        how: CreateHow3::Unchecked(Sattr3::default()),
    })) {
        Nfs3Res::Create(NfsResult::Err(NfsStat3::RoFs, w)) => assert!(w.after.is_some()),
        other => panic!("{other:?}"),
    }
    let Nfs3Res::Access(NfsResult::Ok(a)) = c.nfs(Nfs3Args::Access(Access3Args {
        object: ro.clone(),
        access: 0x3f,
    })) else {
        panic!()
    };
    assert_eq!(a.access & (access::MODIFY | access::EXTEND | access::DELETE), 0);
    let sq = c.root("/squash");
    create(&mut c, &sq, b"owned");
    let md = std::fs::metadata(fx.origin().join("owned")).unwrap();
    assert_eq!((md.uid(), md.gid()), (4242, 4343), "uid 0 is squashed");
    // The same file through the read-only export cannot be written.
    let Nfs3Res::Lookup(NfsResult::Ok(l)) = c.nfs(Nfs3Args::Lookup(at(&ro, b"owned"))) else {
        panic!()
    };
    match c.nfs(Nfs3Args::Write(Write3Args {
        file: l.object,
        offset: 0,
        count: 1,
        stable: StableHow::FileSync,
        data: Opaque::new(&b"x"[..]),
    })) {
        Nfs3Res::Write(NfsResult::Err(NfsStat3::RoFs, _)) => {}
        other => panic!("{other:?}"),
    }
    // A handle moved to an export this client may not use is refused at
    // admission; moved to one it may use, it no longer verifies.
    for (to, refused) in [(2, NfsStat3::Acces), (0, NfsStat3::BadHandle)] {
        let mut h = sq.as_bytes().to_vec();
        h[0] = 0x80 | to;
        match c.nfs(Nfs3Args::Getattr(GetAttr3Args {
            object: Opaque::new(h),
        })) {
            Nfs3Res::Getattr(NfsResult::Err(e, ())) if e == refused => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn commit_verifier_changes_after_restart() {
    let fx = start(|_| {});
    let mut c = fx.client();
    let root = c.root("/export");
    let f = create(&mut c, &root, b"f");
    let commit = |c: &mut Client, f: &NfsFh3| match c.nfs(Nfs3Args::Commit(Commit3Args {
        file: f.clone(),
        offset: 0,
        count: 0,
    })) {
        Nfs3Res::Commit(NfsResult::Ok(ok)) => ok.verf,
        other => panic!("{other:?}"),
    };
    let before = commit(&mut c, &f);
    drop(c);
    let fx = start_in(fx.stop(), |_| {});
    let mut c = fx.client();
    let after = commit(&mut c, &f);
    assert_ne!(before, after, "the write verifier must change at restart");
}

#[test]
fn portmapper_answers_getport_over_tcp_and_udp() {
    use nfs_proto::portmap::{self, Mapping, PmapList};
    use nfs_proto::xdr::Xdr;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let pmap_port = free.local_addr().unwrap().port();
    drop(free);
    let fx = start(|cfg| {
        cfg.portmapper = true;
        cfg.portmapper_port = pmap_port;
    });
    let at = fx.server.portmapper_addr().unwrap();
    assert_eq!(at.port(), pmap_port);
    let ask = |prog, vers, prot| Mapping {
        prog,
        vers,
        prot,
        port: 0,
    };
    let mut c = Client::connect(at);
    let nfs_port = fx.addr().port() as u32;
    for (prog, vers, want) in [
        (PROGRAM, 3, nfs_port),
        (nfs_proto::mount::PROGRAM, 3, nfs_port),
        (nfs_proto::nlm::PROGRAM, 4, nfs_port),
        (PROGRAM, 2, 0),
        (123456, 1, 0),
    ] {
        let (h, d) = c.call_raw(
            portmap::PROGRAM,
            2,
            3,
            &ask(prog, vers, portmap::IPPROTO_TCP).to_bytes(),
        );
        assert_eq!(h.stat, ReplyStat::Success);
        assert_eq!(u32::from_bytes(d.rest()).unwrap(), want, "{prog} v{vers}");
    }
    let (_, d) = c.call_raw(portmap::PROGRAM, 2, 4, &[]);
    assert!(PmapList::from_bytes(d.rest()).unwrap().0.len() >= 4);
    let (h, _) = c.call_raw(portmap::PROGRAM, 3, 3, &[]);
    assert_eq!(h.stat, ReplyStat::ProgMismatch { low: 2, high: 2 });
    // UDP: the same call without a record mark.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let call = nfs_proto::rpc::CallHeader {
        xid: 99,
        prog: portmap::PROGRAM,
        vers: 2,
        proc_: 3,
        cred: nfs_proto::rpc::OpaqueAuth::none(),
        verf: nfs_proto::rpc::OpaqueAuth::none(),
    };
    let msg = nfs_proto::rpc::encode_call(&call, &ask(PROGRAM, 3, portmap::IPPROTO_TCP));
    udp.send_to(&msg, at).unwrap();
    let mut buf = [0u8; 512];
    let n = udp.recv(&mut buf).unwrap();
    let (h, d) = nfs_proto::rpc::decode_reply(bytes::Bytes::copy_from_slice(&buf[..n])).unwrap();
    assert_eq!((h.xid, h.stat), (99, ReplyStat::Success));
    assert_eq!(u32::from_bytes(d.rest()).unwrap(), nfs_port);
    // MOUNT EXPORT lists the export.
    let mut m = fx.client();
    let (_, d) = m.call_raw(nfs_proto::mount::PROGRAM, 3, 5, &[]);
    let ex = nfs_proto::mount::Exports::from_bytes(d.rest()).unwrap();
    assert_eq!(ex.0[0].dir.as_bytes(), b"/export");
}

#[test]
fn a_thousand_connections_and_clients_that_leave_mid_reply() {
    let fx = start(|c| c.limits.max_per_client = 1000);
    std::fs::write(fx.origin().join("big"), vec![1u8; 8 << 20]).unwrap();
    let mut conns: Vec<Client> = (0..1000).map(|_| fx.client()).collect();
    for c in conns.iter_mut() {
        c.send(PROGRAM, 3, 0, &[]);
    }
    for c in conns.iter_mut() {
        assert_eq!(c.reply().0.stat, ReplyStat::Success);
    }
    drop(conns);
    let mut c = fx.client();
    let root = c.root("/export");
    let Nfs3Res::Lookup(NfsResult::Ok(l)) = c.nfs(Nfs3Args::Lookup(at(&root, b"big"))) else {
        panic!()
    };
    for _ in 0..20 {
        let mut quitter = fx.client();
        for i in 0..8u64 {
            let mut e = Encoder::new();
            Nfs3Args::Read(Read3Args {
                file: l.object.clone(),
                offset: i << 20,
                count: 1 << 20,
            })
            .encode(&mut e);
            quitter.send(PROGRAM, 3, 6, e.as_slice());
        }
        drop(quitter);
    }
    // The server is still fine.
    assert!(matches!(
        c.nfs(Nfs3Args::Getattr(GetAttr3Args { object: l.object })),
        Nfs3Res::Getattr(NfsResult::Ok(_))
    ));
}
