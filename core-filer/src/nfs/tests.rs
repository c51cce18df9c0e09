//! Tests of the `nfs` core filer against scripted upstreams: the portmapper,
//! retransmissions, hostile replies, the unstable-write bound, conversions.

use super::client::tests::{read_record, reply, run, xid_of};
use super::*;
use std::net::TcpListener;

/// A filer over a scripted upstream (no MOUNT, no FSINFO) that `serve`
/// answers, with its state in `state`.
fn scripted(
    state: &Path,
    serve: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
) -> (NfsFiler, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || serve(&mut l.accept().unwrap().0));
    let handles = HandleMap::open(&state.join("map"), true).unwrap();
    let root = handles.intern(&[b"root"]).unwrap()[0];
    let inner = Inner {
        client: ClientConfig {
            addr,
            connections: 1,
            attempt_timeout: Duration::from_millis(300),
            total_timeout: Duration::from_secs(3),
        },
        root,
        rtmax: 1 << 20,
        wtmax: 1 << 20,
        dtpref: 8192,
        handles,
        unstable: Mutex::new(Unstable::new(UNSTABLE_FILES_MAX)),
    };
    (
        NfsFiler {
            inner: Arc::new(inner),
        },
        t,
    )
}

/// The procedure of a call record.
fn proc_of(rec: &[u8]) -> u32 {
    u32::from_be_bytes([rec[20], rec[21], rec[22], rec[23]])
}

fn fattr3(ftype: Ftype3, fileid: u64) -> Fattr3 {
    let t = NfsTime3 {
        seconds: 1,
        nseconds: 2,
    };
    let z = SpecData3 {
        specdata1: 0,
        specdata2: 0,
    };
    Fattr3 {
        ftype,
        mode: 0o755,
        nlink: 1,
        uid: 0,
        gid: 0,
        size: 0,
        used: 0,
        rdev: z,
        fsid: 1,
        fileid,
        atime: t,
        mtime: t,
        ctime: t,
    }
}

#[test]
fn the_mount_port_comes_from_the_portmapper() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let pm = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        for port in [20048u32, 0] {
            let (mut s, _) = l.accept().unwrap();
            let rec = read_record(&mut s).unwrap();
            assert_eq!(proc_of(&rec), portmap::PmapProc::Getport as u32);
            let asked = portmap::Mapping::from_bytes(Bytes::copy_from_slice(&rec[40..])).unwrap();
            assert_eq!(
                (asked.prog, asked.vers, asked.prot),
                (mount::PROGRAM, 3, portmap::IPPROTO_TCP)
            );
            reply(&mut s, xid_of(&rec), &port.to_bytes());
        }
    });
    assert_eq!(mount_port_of(pm).unwrap(), 20048);
    let e = mount_port_of(pm).unwrap_err().to_string();
    assert!(e.contains("not registered"), "{e}");
    t.join().unwrap();
}

#[test]
fn a_retransmitted_remove_that_finds_nothing_had_removed_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (f, t) = scripted(tmp.path(), |s| {
        // The first answer is "lost"; the repeat finds the name gone.
        let first = read_record(s).unwrap();
        let again = read_record(s).unwrap();
        assert_eq!(first, again);
        assert_eq!(proc_of(&again), NfsProc3::Remove as u32);
        reply(
            s,
            xid_of(&again),
            &WccRes::Err(NfsStat3::NoEnt, WccData::default()).to_bytes(),
        );
        // Sent once, NOENT is NOENT.
        let once = read_record(s).unwrap();
        reply(
            s,
            xid_of(&once),
            &WccRes::Err(NfsStat3::NoEnt, WccData::default()).to_bytes(),
        );
    });
    run(async {
        let c = Credentials::root();
        f.remove(&c, &f.root(), b"gone", false).await.unwrap();
        assert_eq!(
            f.remove(&c, &f.root(), b"gone", false).await.err(),
            Some(Error::NoEnt)
        );
    });
    t.join().unwrap();
}

#[test]
fn a_retransmitted_mkdir_that_finds_the_name_taken_had_made_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (f, t) = scripted(tmp.path(), |s| {
        let first = read_record(s).unwrap();
        let again = read_record(s).unwrap();
        assert_eq!(first, again);
        assert_eq!(proc_of(&again), NfsProc3::Mkdir as u32);
        reply(
            s,
            xid_of(&again),
            &Create3Res::Err(NfsStat3::Exist, WccData::default()).to_bytes(),
        );
        // Then it looks the name up: a directory, so ours.
        let lookup = read_record(s).unwrap();
        assert_eq!(proc_of(&lookup), NfsProc3::Lookup as u32);
        let found = Lookup3Res::Ok(Lookup3Ok {
            object: Opaque::new(&b"new-dir"[..]),
            obj_attributes: Some(fattr3(Ftype3::Dir, 42)),
            dir_attributes: None,
        });
        reply(s, xid_of(&lookup), &found.to_bytes());
    });
    run(async {
        let c = Credentials::root();
        let made = f
            .create(&c, &f.root(), b"d", &NewNode::Directory, &SetAttr::default())
            .await
            .unwrap();
        assert_eq!(made.attr.fileid, 42);
        assert_eq!(made.handle, handles::inline_handle(b"new-dir").unwrap());
    });
    t.join().unwrap();
}

#[test]
fn a_hostile_upstream_gets_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let (f, t) = scripted(tmp.path(), |s| {
        // READ: more data than asked for.
        let rec = read_record(s).unwrap();
        let read = Read3Res::Ok(Read3Ok {
            file_attributes: None,
            count: 8,
            eof: false,
            data: Opaque::new(&b"too much"[..]),
        });
        reply(s, xid_of(&rec), &read.to_bytes());
        // READ: a count that is not the data's length.
        let rec = read_record(s).unwrap();
        let read = Read3Res::Ok(Read3Ok {
            file_attributes: None,
            count: 1,
            eof: true,
            data: Opaque::new(&b"ab"[..]),
        });
        reply(s, xid_of(&rec), &read.to_bytes());
        // LOOKUP: an empty handle.
        let rec = read_record(s).unwrap();
        let found = Lookup3Res::Ok(Lookup3Ok {
            object: Opaque::new(&b""[..]),
            obj_attributes: Some(fattr3(Ftype3::Reg, 7)),
            dir_attributes: None,
        });
        reply(s, xid_of(&rec), &found.to_bytes());
        // GETATTR: truncated attributes, then an unknown status.
        let rec = read_record(s).unwrap();
        reply(s, xid_of(&rec), &[0, 0, 0, 0, 0, 0, 0, 1]);
        let rec = read_record(s).unwrap();
        reply(s, xid_of(&rec), &[0, 0, 0x30, 0x39]);
        // READDIR: names that may not be names are left out, "." and ".." too.
        let rec = read_record(s).unwrap();
        let entry = |name: &[u8], cookie| Entry3 {
            fileid: cookie,
            name: Opaque::new(name.to_vec()),
            cookie,
        };
        let list = Readdir3Res::Ok(Readdir3Ok {
            dir_attributes: None,
            cookieverf: 9,
            reply: DirList3 {
                entries: vec![
                    entry(b".", 1),
                    entry(b"..", 2),
                    entry(b"a/b", 3),
                    entry(b"nul\0", 4),
                    entry(&[b'n'; 300], 5),
                    entry(b"fine", 6),
                ],
                eof: true,
            },
        });
        reply(s, xid_of(&rec), &list.to_bytes());
    });
    run(async {
        let c = Credentials::root();
        let r = f.root();
        assert_eq!(f.read(&c, &r, 0, 4).await.err(), Some(Error::Io));
        assert_eq!(f.read(&c, &r, 0, 4).await.err(), Some(Error::Io));
        assert_eq!(f.lookup(&c, &r, b"x").await.err(), Some(Error::Io));
        assert_eq!(f.getattr(&c, &r).await.err(), Some(Error::Io));
        assert_eq!(f.getattr(&c, &r).await.err(), Some(Error::Io));
        let page = f.readdir(&c, &r, 0, 100).await.unwrap();
        let names: Vec<&[u8]> = page.entries.iter().map(|e| &e.name[..]).collect();
        assert_eq!(names, vec![&b"fine"[..]]);
        assert!(page.eof);
    });
    t.join().unwrap();
}

/// The arguments of a call record (past its credentials and verifier).
fn args_of(rec: &[u8]) -> &[u8] {
    let word = |at: usize| u32::from_be_bytes([rec[at], rec[at + 1], rec[at + 2], rec[at + 3]]) as usize;
    let verf = 32 + word(28).next_multiple_of(4);
    &rec[verf + 8 + word(verf + 4).next_multiple_of(4)..]
}

#[test]
fn past_the_bound_of_files_waiting_a_restart_is_still_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (f, t) = scripted(tmp.path(), |s| {
        for i in 0..6 {
            let rec = read_record(s).unwrap();
            assert_eq!(proc_of(&rec), NfsProc3::Write as u32);
            let args = Write3Args::from_bytes(Bytes::copy_from_slice(args_of(&rec))).unwrap();
            let want = if i < 4 {
                StableHow::Unstable
            } else {
                StableHow::FileSync
            };
            assert_eq!(args.stable, want, "write {i}");
            let w = Write3Res::Ok(Write3Ok {
                file_wcc: WccData::default(),
                count: args.count,
                committed: args.stable,
                verf: 1,
            });
            reply(s, xid_of(&rec), &w.to_bytes());
        }
        // The upstream restarted: a new verifier.
        for _ in 0..2 {
            let rec = read_record(s).unwrap();
            assert_eq!(proc_of(&rec), NfsProc3::Commit as u32);
            let c = Commit3Res::Ok(Commit3Ok {
                file_wcc: WccData::default(),
                verf: 2,
            });
            reply(s, xid_of(&rec), &c.to_bytes());
        }
    });
    *f.unstable() = Unstable::new(4);
    let file = |i: u8| handles::inline_handle(&[b'f', i]).unwrap();
    run(async {
        let c = Credentials::root();
        for i in 0..6 {
            let w = f
                .write(&c, &file(i), 0, Bytes::from_static(b"x"), Stability::Unstable)
                .await
                .unwrap();
            assert_eq!(w.committed == Stability::Unstable, i < 4);
        }
        assert_eq!(f.commit(&c, &file(0)).await.err(), Some(Error::WritesLost));
        f.commit(&c, &file(5)).await.unwrap();
    });
    t.join().unwrap();
}

#[test]
fn every_status_maps_as_the_local_filer_maps_its_errno() {
    use NfsStat3 as S;
    let pairs = [
        (S::Perm, libc::EPERM),
        (S::NoEnt, libc::ENOENT),
        (S::Io, libc::EIO),
        (S::NxIo, libc::ENXIO),
        (S::Acces, libc::EACCES),
        (S::Exist, libc::EEXIST),
        (S::XDev, libc::EXDEV),
        (S::NoDev, libc::ENODEV),
        (S::NotDir, libc::ENOTDIR),
        (S::IsDir, libc::EISDIR),
        (S::Inval, libc::EINVAL),
        (S::FBig, libc::EFBIG),
        (S::NoSpc, libc::ENOSPC),
        (S::RoFs, libc::EROFS),
        (S::MLink, libc::EMLINK),
        (S::NameTooLong, libc::ENAMETOOLONG),
        (S::NotEmpty, libc::ENOTEMPTY),
        (S::DQuot, libc::EDQUOT),
        (S::Stale, libc::ESTALE),
        (S::Remote, libc::EREMOTE),
        (S::NotSupp, libc::EOPNOTSUPP),
    ];
    for (s, errno) in pairs {
        assert_eq!(crate::nfs3::error(s), Error::from_errno(errno), "{s:?}");
    }
    assert_eq!(crate::nfs3::error(S::BadHandle), Error::Stale);
    assert_eq!(crate::nfs3::error(S::Jukebox), Error::Unavailable);
    assert_eq!(crate::nfs3::error(S::BadCookie), Error::BadCookie);
}

#[test]
fn attributes_convert() {
    let a = Fattr3 {
        ftype: Ftype3::Chr,
        mode: 0o104755,
        nlink: 2,
        uid: 1,
        gid: 2,
        size: 3,
        used: 4,
        rdev: SpecData3 {
            specdata1: 5,
            specdata2: 6,
        },
        fsid: 7,
        fileid: 8,
        atime: NfsTime3 {
            seconds: 9,
            nseconds: 10,
        },
        mtime: NfsTime3 {
            seconds: 11,
            nseconds: 12,
        },
        ctime: NfsTime3 {
            seconds: 13,
            nseconds: 14,
        },
    };
    let ours = attr(&a);
    assert_eq!(ours.ftype, FileType::CharDev);
    assert_eq!(ours.mode, 0o4755);
    assert_eq!(ours.rdev, (5, 6));
    assert_eq!(ours.ctime, Timespec { sec: 13, nsec: 14 });
    assert_eq!(ours.change, 13_000_000_014);
    assert_eq!(
        crate::nfs3::set_time3(SetTime::Client(Timespec { sec: -1, nsec: 0 })),
        Err(Error::Inval)
    );
}
