//! The server's error paths and cross-connection state, driven by a small
//! blocking client built from smb-proto's client-side encoders and an
//! NTLMv2 client made of smb-front's NTLM primitives.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cache_engine::types::{Credentials, Stability};
use common::client::*;
use common::*;
use smb_proto::create::{disposition, oplock_level, options, share_access, CreateRequest, CreateResponse};
use smb_proto::dir::ChangeNotifyRequest;
use smb_proto::header::{flags, HeaderId};
use smb_proto::io::{CloseRequest, LockElement, LockRequest, ReadRequest};
use smb_proto::negotiate::NegotiateResponse;
use smb_proto::oplock::{BreakAcknowledgment, OplockBreak};
use smb_proto::security::access;
use smb_proto::session::SessionSetupRequest;
use smb_proto::tree::TreeConnectRequest;
use smb_proto::{Command, FileId, NtStatus};

#[test]
fn malformed_and_unknown_ids() {
    let fx = start(|_| {});
    let mut c = Client::login(&fx);
    // A truncated body: INVALID_PARAMETER, and the connection lives on.
    let h = c.header(Command::Create);
    c.send_with(h, |b| b.extend_from_slice(&[57, 0, 0]));
    assert_eq!(c.recv().unwrap().h.status, NtStatus::INVALID_PARAMETER);
    // Unknown tree, unknown session, unknown FileId.
    let tree = c.tree;
    c.tree = 999;
    assert_eq!(
        c.create("a", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap_err(),
        NtStatus::NETWORK_NAME_DELETED
    );
    c.tree = tree;
    let session = c.session;
    c.session = 0x1234_5678;
    assert_eq!(
        c.create("a", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap_err(),
        NtStatus::USER_SESSION_DELETED
    );
    c.session = session;
    let r = c.call(Command::Read, |b| {
        ReadRequest {
            padding: 0x50,
            flags: 0,
            length: 10,
            offset: 0,
            file_id: FileId {
                persistent: 77,
                volatile: 77,
            },
            minimum_count: 0,
            channel: 0,
            remaining_bytes: 0,
            channel_info: Bytes::new(),
        }
        .encode(b)
    });
    assert_eq!(r.h.status, NtStatus::FILE_CLOSED);
    // Names: `..`, streams, forbidden characters.
    for (name, status) in [
        ("a\\..\\b", NtStatus::OBJECT_PATH_SYNTAX_BAD),
        ("a:stream", NtStatus::OBJECT_NAME_INVALID),
        ("a|b", NtStatus::OBJECT_NAME_INVALID),
        ("\\lead", NtStatus::INVALID_PARAMETER),
        ("nodir\\x", NtStatus::OBJECT_PATH_NOT_FOUND),
    ] {
        assert_eq!(
            c.create(name, RW, ALL_SHARE, disposition::OPEN_IF, 0)
                .unwrap_err(),
            status,
            "{name}"
        );
    }
    // A message id already used: the connection is dropped.
    let mut h = c.header(Command::Echo);
    h.message_id = 1;
    c.send_with(h, smb_proto::simple::encode_empty);
    assert!(
        c.recv().is_none(),
        "a replayed message id must drop the connection"
    );
}

#[test]
fn message_ids_outside_the_window_and_oversized_frames_drop() {
    let fx = start(|_| {});
    let mut c = Client::login(&fx);
    let mut h = c.header(Command::Echo);
    h.message_id = 1_000_000;
    c.send_with(h, smb_proto::simple::encode_empty);
    assert!(c.recv().is_none());
    let mut c = Client::connect(&fx);
    c.s.write_all(&[0, 0xFF, 0xFF, 0xFF]).unwrap();
    c.s.write_all(&[0; 1024]).unwrap();
    assert!(c.recv().is_none());
    // Requests before NEGOTIATE, and garbage instead of an SMB2 header.
    let mut c = Client::connect(&fx);
    c.send_raw(b"\xfeSMBthis is not a header");
    assert!(c.recv().is_none());
    let mut c = Client::connect(&fx);
    let r = c.call(Command::TreeConnect, |b| {
        TreeConnectRequest {
            flags: 0,
            path: "\\\\x\\export".into(),
            contexts: Vec::new(),
        }
        .encode(b)
    });
    assert_eq!(r.h.status, NtStatus::INVALID_PARAMETER);
}

#[test]
fn signing_wrong_password_and_bad_signatures() {
    let fx = start(|_| {});
    let mut c = Client::connect(&fx);
    c.negotiate();
    assert_eq!(c.logon(USER, "not it", true), NtStatus::LOGON_FAILURE);
    let mut c = Client::connect(&fx);
    c.negotiate();
    assert_eq!(c.logon(USER, PASS, true), NtStatus::SUCCESS);
    // Signed requests work and the answers are signed with the session key.
    assert_eq!(c.tree_connect("export"), NtStatus::SUCCESS);
    let id = c
        .create("signed.txt", RW, ALL_SHARE, disposition::OPEN_IF, 0)
        .unwrap();
    // An unsigned request on a signing session is refused.
    let key = c.key.take();
    assert_eq!(
        c.create("x", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap_err(),
        NtStatus::ACCESS_DENIED
    );
    c.key = key;
    let r = close(&mut c, id);
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    assert!(r.h.flags & flags::SIGNED != 0);
    // A wrong signature drops the connection.
    c.key = Some([0x55; 16]);
    let h = c.header(Command::Echo);
    c.send_with(h, smb_proto::simple::encode_empty);
    assert!(c.recv().is_none());
    assert!(fx.origin().join("signed.txt").exists());
}

#[test]
fn file_ids_belong_to_their_session() {
    let fx = start(|_| {});
    let mut c = Client::login(&fx);
    let id = c.create("mine", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    let (s1, t1) = (c.session, c.tree);
    // A second session on the same connection cannot use it.
    c.session = 0;
    c.tree = 0;
    assert_eq!(c.logon(USER, PASS, false), NtStatus::SUCCESS);
    assert_eq!(c.tree_connect("export"), NtStatus::SUCCESS);
    let r = close(&mut c, id);
    assert_eq!(r.h.status, NtStatus::FILE_CLOSED);
    (c.session, c.tree) = (s1, t1);
    let r = close(&mut c, id);
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    let r = close(&mut c, id);
    assert_eq!(r.h.status, NtStatus::FILE_CLOSED);
}

#[test]
fn share_modes_and_delete_on_close_across_connections() {
    let fx = start(|_| {});
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    let id = a
        .create("f", RW, share_access::READ, disposition::OPEN_IF, 0)
        .unwrap();
    assert_eq!(
        b.create("f", RW, ALL_SHARE, disposition::OPEN, 0).unwrap_err(),
        NtStatus::SHARING_VIOLATION
    );
    let r = b.create(
        "f",
        access::FILE_READ_DATA,
        share_access::READ,
        disposition::OPEN,
        0,
    );
    assert_eq!(
        r.unwrap_err(),
        NtStatus::SHARING_VIOLATION,
        "a holds write access"
    );
    let r = b
        .create("f", access::FILE_READ_DATA, ALL_SHARE, disposition::OPEN, 0)
        .unwrap();
    b.call(Command::Close, |x| {
        CloseRequest { flags: 0, file_id: r }.encode(x)
    });
    close(&mut a, id);
    let doc = access::DELETE | access::FILE_READ_DATA;
    let first = b
        .create("f", doc, ALL_SHARE, disposition::OPEN, options::DELETE_ON_CLOSE)
        .unwrap();
    let second = a
        .create("f", access::FILE_READ_DATA, ALL_SHARE, disposition::OPEN, 0)
        .unwrap();
    let r = close(&mut b, first);
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    assert!(fx.origin().join("f").exists(), "another open is left");
    assert_eq!(
        b.create("f", access::FILE_READ_DATA, ALL_SHARE, disposition::OPEN, 0)
            .unwrap_err(),
        NtStatus::DELETE_PENDING
    );
    close(&mut a, second);
    assert!(!fx.origin().join("f").exists());
}

#[test]
fn a_new_read_only_file_with_delete_on_close_is_refused_before_it_exists() {
    let fx = start(|_| {});
    let mut c = Client::login(&fx);
    let r = c.call(Command::Create, |b| {
        CreateRequest {
            desired_access: access::DELETE | RW,
            share_access: ALL_SHARE,
            create_disposition: disposition::CREATE,
            create_options: options::NON_DIRECTORY_FILE | options::DELETE_ON_CLOSE,
            file_attributes: smb_proto::fscc::attributes::READONLY,
            ..create_body("ro", 0, None)
        }
        .encode(b)
    });
    assert_eq!(r.h.status, NtStatus::CANNOT_DELETE);
    assert!(!fx.origin().join("ro").exists());
}

#[test]
fn blocking_lock_goes_async_and_cancels() {
    let fx = start(|_| {});
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    let fa = a.create("l", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    let fb = b.create("l", RW, ALL_SHARE, disposition::OPEN, 0).unwrap();
    let lock = |fid, flags| {
        move |x: &mut BytesMut| {
            LockRequest {
                lock_sequence: 0,
                file_id: fid,
                locks: vec![LockElement {
                    offset: 0,
                    length: 10,
                    flags,
                }],
            }
            .encode(x)
        }
    };
    let r = a.call(Command::Lock, lock(fa, smb_proto::io::lock_flags::EXCLUSIVE_LOCK));
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    let r = b.call(Command::Lock, lock(fb, smb_proto::io::lock_flags::EXCLUSIVE_LOCK));
    assert_eq!(r.h.status, NtStatus::PENDING);
    let async_id = r.h.async_id().expect("an async id");
    // CANCEL carries the async id; the lock answers CANCELLED.
    let mut h = b.header(Command::Cancel);
    b.mid -= 1;
    h.message_id = r.h.message_id;
    h.flags |= flags::ASYNC_COMMAND;
    h.id = HeaderId::Async { async_id };
    b.send_with(h, smb_proto::simple::encode_empty);
    let r = b.recv().unwrap();
    assert_eq!(r.h.status, NtStatus::CANCELLED);
    // Blocking again, then the holder unlocks: granted.
    let r = b.call(Command::Lock, lock(fb, smb_proto::io::lock_flags::EXCLUSIVE_LOCK));
    assert_eq!(r.h.status, NtStatus::PENDING);
    let r = a.call(Command::Lock, lock(fa, smb_proto::io::lock_flags::UNLOCK));
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    let r = b.recv().unwrap();
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    assert_eq!(r.h.command, Command::Lock);
}

fn watch(c: &mut Client, dir: FileId) -> Resp {
    c.call(Command::ChangeNotify, |x| names_of(dir).encode(x))
}

/// CHANGE_NOTIFY for file names in `dir`.
fn names_of(dir: FileId) -> ChangeNotifyRequest {
    ChangeNotifyRequest {
        flags: 0,
        output_buffer_length: 4096,
        file_id: dir,
        completion_filter: smb_proto::dir::notify_filter::FILE_NAME,
    }
}

#[test]
fn a_cancel_read_before_its_request_went_async_still_cancels_it() {
    let fx = start(|_| {});
    let mut c = Client::login(&fx);
    let cred = Credentials::root();
    for shard in 0..fx.engine.shard_count() {
        // A directory that `shard` owns.
        let name = (0..)
            .map(|i| format!("s{shard}-{i}"))
            .find(|name| {
                std::fs::create_dir(fx.origin().join(name)).unwrap();
                futures::executor::block_on(async {
                    let root = fx.engine.root();
                    let (fh, _, _) = fx.engine.lookup(&cred, &root, name.as_bytes()).await.unwrap();
                    fx.engine.owner(&fh) == shard
                })
            })
            .unwrap();
        let dir = c
            .create(
                &name,
                access::FILE_LIST_DIRECTORY,
                ALL_SHARE,
                disposition::OPEN,
                options::DIRECTORY_FILE,
            )
            .unwrap();
        // The owning shard is held busy, so that a CHANGE_NOTIFY served from
        // another shard is still on its way there when its CANCEL is read.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let (busy, is_busy) = std::sync::mpsc::channel::<()>();
        let engine = fx.engine.clone();
        let holder = std::thread::spawn(move || {
            futures::executor::block_on(engine.run_on(shard, move || async move {
                busy.send(()).unwrap();
                let _ = held.recv();
            }))
            .unwrap();
        });
        is_busy.recv().unwrap();
        let notify = c.header(Command::ChangeNotify);
        c.send_with(notify, |x| names_of(dir).encode(x));
        let mut cancel = c.header(Command::Cancel);
        c.mid -= 1;
        cancel.message_id = notify.message_id;
        c.send_with(cancel, smb_proto::simple::encode_empty);
        // Let the server read the CANCEL before the shard is free again.
        std::thread::sleep(Duration::from_millis(200));
        hold.send(()).unwrap();
        holder.join().unwrap();
        let r = loop {
            let r = c.recv().expect("an answer to the cancelled request");
            if r.h.status != NtStatus::PENDING {
                break r;
            }
        };
        assert_eq!(
            (r.h.message_id, r.h.status),
            (notify.message_id, NtStatus::CANCELLED),
            "shard {shard}"
        );
        close(&mut c, dir);
    }
}

#[test]
fn change_notify_sees_a_create_from_another_connection() {
    let fx = start(|_| {});
    std::fs::create_dir(fx.origin().join("watched")).unwrap();
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    let dir = a
        .create(
            "watched",
            access::FILE_LIST_DIRECTORY,
            ALL_SHARE,
            disposition::OPEN,
            options::DIRECTORY_FILE,
        )
        .unwrap();
    let r = watch(&mut a, dir);
    assert_eq!(r.h.status, NtStatus::PENDING);
    b.create("watched\\new.txt", RW, ALL_SHARE, disposition::CREATE, 0)
        .unwrap();
    let r = a.recv().unwrap();
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    // FILE_ACTION_ADDED
    assert_eq!(notify_changes(&r), [(1, "new.txt".to_string())]);
    // A pending notify ends with NOTIFY_CLEANUP when its directory closes.
    let r = watch(&mut a, dir);
    assert_eq!(r.h.status, NtStatus::PENDING);
    let h = a.header(Command::Close);
    a.send_with(h, |x| {
        CloseRequest {
            flags: 0,
            file_id: dir,
        }
        .encode(x)
    });
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = a.recv().unwrap();
        seen.push((r.h.command, r.h.status));
    }
    seen.sort_by_key(|(c, _)| u16::from(*c));
    assert!(
        seen.contains(&(Command::ChangeNotify, NtStatus::NOTIFY_CLEANUP)),
        "{seen:?}"
    );
    assert!(seen.contains(&(Command::Close, NtStatus::SUCCESS)), "{seen:?}");
}

#[test]
fn mangled_requests_never_take_the_server_down() {
    use rand::{Rng, SeedableRng};
    let fx = start(|_| {});
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Valid requests of every kind, then the same with bytes flipped, cut
    // short or lengthened: each gets an answer or a dropped connection.
    let mut samples: Vec<Vec<u8>> = Vec::new();
    let mut c = Client::login(&fx);
    let mut capture = |c: &mut Client, cmd: Command, body: &dyn Fn(&mut BytesMut)| {
        let h = c.header(cmd);
        let mut m = BytesMut::new();
        h.encode(&mut m);
        body(&mut m);
        samples.push(m.to_vec());
    };
    let fid = c.create("fz", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    capture(&mut c, Command::Create, &|b| create_body("fz", 0, None).encode(b));
    capture(&mut c, Command::Read, &|b| {
        ReadRequest {
            padding: 0x50,
            flags: 0,
            length: 100,
            offset: 0,
            file_id: fid,
            minimum_count: 0,
            channel: 0,
            remaining_bytes: 0,
            channel_info: Bytes::new(),
        }
        .encode(b)
    });
    capture(&mut c, Command::Lock, &|b| {
        LockRequest {
            lock_sequence: 0,
            file_id: fid,
            locks: vec![LockElement {
                offset: 0,
                length: 1,
                flags: smb_proto::io::lock_flags::SHARED_LOCK | smb_proto::io::lock_flags::FAIL_IMMEDIATELY,
            }],
        }
        .encode(b)
    });
    capture(&mut c, Command::TreeConnect, &|b| {
        TreeConnectRequest {
            flags: 0,
            path: "\\\\h\\export".into(),
            contexts: Vec::new(),
        }
        .encode(b)
    });
    for round in 0..300 {
        let mut m = samples[round % samples.len()].clone();
        match rng.random_range(0..3) {
            0 => {
                for _ in 0..rng.random_range(1..6) {
                    let i = rng.random_range(0..m.len());
                    m[i] = rng.random();
                }
            }
            1 => m.truncate(rng.random_range(0..m.len())),
            _ => m.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        }
        // Keep the message id in the window so the body is what is tested.
        if m.len() >= 32 {
            m[24..32].copy_from_slice(&c.mid.to_le_bytes());
            c.mid += 1;
        }
        c.send_raw(&m);
        if c.recv().is_none() {
            c = Client::login(&fx);
        }
    }
    // Still serving.
    let mut c = Client::login(&fx);
    c.create("after", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    assert!(fx.origin().join("after").exists());
}

#[test]
fn smb1_negotiate_upgrades_to_smb2() {
    let fx = start(|_| {});
    let mut c = Client::connect(&fx);
    let mut m = BytesMut::new();
    smb_proto::header::Smb1Negotiate {
        dialects: vec!["NT LM 0.12".into(), "SMB 2.002".into(), "SMB 2.???".into()],
    }
    .encode(&mut m);
    c.send_raw(&m);
    let r = c.recv().unwrap();
    assert_eq!(r.h.command, Command::Negotiate);
    assert_eq!(
        NegotiateResponse::decode(r.body).unwrap().dialect_revision,
        0x02FF
    );
    c.mid = 1;
    assert_eq!(c.negotiate().dialect_revision, 0x0302);
    assert_eq!(c.logon(USER, PASS, false), NtStatus::SUCCESS);
    assert_eq!(
        c.tree_connect("EXPORT"),
        NtStatus::SUCCESS,
        "share names ignore case"
    );
    assert_eq!(c.tree_connect("nope"), NtStatus::BAD_NETWORK_NAME);
    // Reauthentication keeps the session and its trees.
    let (sid, tid) = (c.session, c.tree);
    assert_eq!(c.logon(USER, PASS, false), NtStatus::SUCCESS);
    assert_eq!(c.session, sid);
    c.tree = tid;
    c.create("still", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    // LOGOFF ends it.
    let r = c.call(Command::Logoff, smb_proto::simple::encode_empty);
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    assert_eq!(
        c.create("gone", RW, ALL_SHARE, disposition::OPEN_IF, 0)
            .unwrap_err(),
        NtStatus::USER_SESSION_DELETED
    );
}

#[test]
fn server_side_copy_and_validate_negotiate() {
    use smb_proto::ioctl::{fsctl, CopyChunk, CopyChunkRequest, ValidateNegotiateInfoRequest};
    let fx = start(|_| {});
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(fx.origin().join("src"), &data).unwrap();
    let mut c = Client::login(&fx);
    let src = c
        .create("src", access::FILE_READ_DATA, ALL_SHARE, disposition::OPEN, 0)
        .unwrap();
    let dst = c.create("dst", RW, ALL_SHARE, disposition::CREATE, 0).unwrap();
    let (status, key) = c.ioctl(fsctl::SRV_REQUEST_RESUME_KEY, src, Bytes::new());
    assert_eq!(status, NtStatus::SUCCESS);
    let source_key: [u8; 24] = key.unwrap()[..24].try_into().unwrap();
    let mut input = BytesMut::new();
    CopyChunkRequest {
        source_key,
        chunks: vec![
            CopyChunk {
                source_offset: 0,
                target_offset: 0,
                length: 200_000,
            },
            CopyChunk {
                source_offset: 200_000,
                target_offset: 200_000,
                length: 100_000,
            },
        ],
    }
    .encode(&mut input);
    let (status, out) = c.ioctl(fsctl::SRV_COPYCHUNK_WRITE, dst, input.freeze());
    assert_eq!(status, NtStatus::SUCCESS);
    let out = out.unwrap();
    assert_eq!(u32::from_le_bytes(out[8..12].try_into().unwrap()), 300_000);
    close(&mut c, dst);
    assert!(std::fs::read(fx.origin().join("dst")).unwrap() == data);
    // A resume key nobody gave out.
    let mut input = BytesMut::new();
    CopyChunkRequest {
        source_key: [9; 24],
        chunks: vec![CopyChunk {
            source_offset: 0,
            target_offset: 0,
            length: 1,
        }],
    }
    .encode(&mut input);
    let (status, _) = c.ioctl(fsctl::SRV_COPYCHUNK_WRITE, src, input.freeze());
    assert_eq!(status, NtStatus::OBJECT_NAME_NOT_FOUND);
    // VALIDATE_NEGOTIATE_INFO: what this client negotiated, and a lie.
    let guid = c.guid;
    let validate = |dialects: Vec<u16>| {
        let mut b = BytesMut::new();
        ValidateNegotiateInfoRequest {
            capabilities: 0,
            guid,
            security_mode: 1,
            dialects,
        }
        .encode(&mut b);
        b.freeze()
    };
    let (status, _) = c.ioctl(
        fsctl::VALIDATE_NEGOTIATE_INFO,
        FileId {
            persistent: u64::MAX,
            volatile: u64::MAX,
        },
        validate(vec![0x0202, 0x0210, 0x0300, 0x0302]),
    );
    assert_eq!(status, NtStatus::SUCCESS);
    let (status, _) = c.ioctl(
        fsctl::VALIDATE_NEGOTIATE_INFO,
        FileId::ANY,
        validate(vec![0x0202]),
    );
    assert_eq!(status, NtStatus::ACCESS_DENIED);
    let (status, _) = c.ioctl(0x0009_0000, src, Bytes::new());
    assert_eq!(status, NtStatus::INVALID_DEVICE_REQUEST);
}

#[test]
fn lease_rwh_breaks_to_rh_for_a_second_open_and_read_for_a_write() {
    let fx = start(|_| {});
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    let key = [0x11; 16];
    let (_, level, state) = granted_lease(create_cached(
        &mut a,
        "leased",
        oplock_level::LEASE,
        Some((key, RWH)),
    ));
    assert_eq!((level, state), (oplock_level::LEASE, Some(RWH)));

    // A second client's open waits (STATUS_PENDING) for the break to RH.
    let h = b.header(Command::Create);
    b.send_with(h, |x| create_body("leased", 0, None).encode(x));
    let pending = b.recv().unwrap();
    assert_eq!(pending.h.status, NtStatus::PENDING);
    let n = a.recv().unwrap();
    assert_eq!(lease_break(&n), (key, RWH, RH, true));
    let r = ack_lease(&mut a, key, RH);
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    let BreakAcknowledgment::Lease(ack) = BreakAcknowledgment::decode(r.body).unwrap() else {
        panic!("a lease break response")
    };
    assert_eq!((ack.lease_key, ack.lease_state), (key, RH));
    let done = b.recv().unwrap();
    assert_eq!(done.h.command, Command::Create);
    assert_eq!(done.h.status, NtStatus::SUCCESS);
    let fb = CreateResponse::decode(done.body).unwrap().file_id;

    // A write through the other open takes R (and H) away; no ack needed.
    let w = write_at(&mut b, fb, b"hello");
    assert_eq!(w.h.status, NtStatus::SUCCESS);
    let n = a.recv().unwrap();
    let (k, from, to, _) = lease_break(&n);
    assert_eq!((k, from, to), (key, RH, 0));
}

#[test]
fn batch_oplock_breaks_to_level_ii_on_a_second_open() {
    let fx = start(|_| {});
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    let (fa, level, _) = granted_lease(create_cached(&mut a, "batch", oplock_level::BATCH, None));
    assert_eq!(level, oplock_level::BATCH);
    let h = b.header(Command::Create);
    b.send_with(h, |x| create_body("batch", oplock_level::II, None).encode(x));
    assert_eq!(b.recv().unwrap().h.status, NtStatus::PENDING);
    let n = a.recv().unwrap();
    assert_eq!(n.h.command, Command::OplockBreak);
    assert_eq!(n.h.message_id, u64::MAX);
    assert_eq!(n.h.session_id, a.session);
    let BreakAcknowledgment::Oplock(brk) = BreakAcknowledgment::decode(n.body).unwrap() else {
        panic!("an oplock break")
    };
    assert_eq!((brk.oplock_level, brk.file_id), (oplock_level::II, fa));
    let r = a.call(Command::OplockBreak, |x| {
        OplockBreak {
            oplock_level: oplock_level::II,
            file_id: fa,
        }
        .encode(x)
    });
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    let done = b.recv().unwrap();
    assert_eq!(done.h.status, NtStatus::SUCCESS);
    assert_eq!(
        CreateResponse::decode(done.body).unwrap().oplock_level,
        oplock_level::II
    );
}

// The engine calls below stand for NFS: their changes have origin 0.

#[test]
fn an_engine_write_from_another_front_end_breaks_a_lease() {
    let fx = start(|_| {});
    let key = [0x22; 16];
    let mut a = leased_client(&fx, "shared", key, RWH);
    let cred = Credentials::root();
    futures::executor::block_on(async {
        let root = fx.engine.root();
        let (fh, _, _) = fx.engine.lookup(&cred, &root, b"shared").await.unwrap();
        fx.engine
            .write(&cred, &fh, 0, Bytes::from_static(b"nfs"), Stability::FileSync)
            .await
            .unwrap();
    });
    ack_next_break(&mut a, key, RWH, 0);
}

#[test]
fn a_directory_gets_no_lease() {
    // DIRECTORY_LEASING is not announced: a listing is never cached, so
    // entries changed by any front end need no break.
    let fx = start(|_| {});
    std::fs::create_dir(fx.origin().join("listed")).unwrap();
    let mut a = Client::login(&fx);
    let (_, _, got) = granted_lease(create_cached(
        &mut a,
        "listed",
        oplock_level::LEASE,
        Some(([0x33; 16], RH)),
    ));
    assert_eq!(got, Some(0));
}

#[test]
fn an_engine_rename_over_a_leased_file_breaks_its_handle_caching() {
    let fx = start(|_| {});
    std::fs::write(fx.origin().join("src"), b"new").unwrap();
    let key = [0x44; 16];
    let mut a = leased_client(&fx, "target", key, RH);
    // The rename deletes the leased file's name.
    let cred = Credentials::root();
    futures::executor::block_on(async {
        let root = fx.engine.root();
        fx.engine
            .rename(&cred, &root, b"src", &root, b"target")
            .await
            .unwrap();
    });
    ack_next_break(&mut a, key, RH, 1);
}

/// The server closed the connection with nothing more to say (a read
/// timing out is no close).
fn closed(s: &mut TcpStream) -> bool {
    s.read(&mut [0u8; 1])
        .map_or_else(|e| e.kind() == std::io::ErrorKind::ConnectionReset, |n| n == 0)
}

/// SESSION_SETUP round 1 (an NTLM NEGOTIATE) of a new session: its status.
fn setup_round_one(c: &mut Client) -> NtStatus {
    c.session = 0;
    let mut token = b"NTLMSSP\0".to_vec();
    token.extend_from_slice(&1u32.to_le_bytes());
    token.extend_from_slice(&0xA208_8215u32.to_le_bytes());
    token.extend_from_slice(&[0; 16]);
    let r = c.call(Command::SessionSetup, |b| {
        SessionSetupRequest {
            flags: 0,
            security_mode: 1,
            capabilities: 0,
            channel: 0,
            previous_session_id: 0,
            security_buffer: Bytes::from(token),
        }
        .encode(b)
    });
    r.h.status
}

/// Send an ECHO padded out to `len` bytes: answered once it has all arrived.
fn send_padded_echo(c: &mut Client, len: usize) {
    let h = c.header(Command::Echo);
    c.send_with(h, |b| {
        smb_proto::simple::encode_empty(b);
        b.resize(len, 0);
    });
}

#[test]
fn frames_stay_small_until_a_session_logs_on() {
    let fx = start(|_| {});
    let mut c = Client::connect(&fx);
    c.negotiate();
    // 100 KiB: within max_io, but larger than NEGOTIATE or SESSION_SETUP can be.
    send_padded_echo(&mut c, 100 << 10);
    assert!(closed(&mut c.s));
    let mut c = Client::login(&fx);
    send_padded_echo(&mut c, 100 << 10);
    assert!(c.recv().is_some());
}

#[test]
fn a_connection_that_does_not_log_on_in_time_or_sits_idle_is_closed() {
    let fx = start(|c| {
        c.logon_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_millis(300);
    });
    let mut c = Client::connect(&fx);
    c.negotiate();
    assert!(closed(&mut c.s), "closed without a logon");
    // Logged on with no open file: closed once silent.
    let mut idle = Client::login(&fx);
    assert!(closed(&mut idle.s), "closed when idle");
    // One holding an open is kept however long it is silent.
    let mut c = Client::login(&fx);
    let id = c
        .create("kept.txt", RW, ALL_SHARE, disposition::OPEN_IF, 0)
        .unwrap();
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(close(&mut c, id).h.status, NtStatus::SUCCESS);
}

#[test]
fn the_logon_timeout_starts_again_when_the_last_session_logs_off() {
    let fx = start(|c| c.logon_timeout = Duration::from_millis(300));
    let mut c = Client::login(&fx);
    std::thread::sleep(Duration::from_millis(600));
    let r = c.call(Command::Logoff, smb_proto::simple::encode_empty);
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    // Long past the first timeout, a new logon on the same connection.
    c.key = None;
    c.tree = 0;
    assert_eq!(setup_round_one(&mut c), NtStatus::MORE_PROCESSING_REQUIRED);
}

#[test]
fn sessions_in_setup_are_bounded_per_connection_and_per_address() {
    let fx = start(|c| {
        c.logons.per_connection = 2;
        c.logons.per_client = 3;
    });
    let mut a = Client::connect(&fx);
    a.negotiate();
    assert_eq!(setup_round_one(&mut a), NtStatus::MORE_PROCESSING_REQUIRED);
    assert_eq!(setup_round_one(&mut a), NtStatus::MORE_PROCESSING_REQUIRED);
    assert_eq!(setup_round_one(&mut a), NtStatus::REQUEST_NOT_ACCEPTED);
    let mut b = Client::connect(&fx);
    b.negotiate();
    assert_eq!(setup_round_one(&mut b), NtStatus::MORE_PROCESSING_REQUIRED);
    assert_eq!(setup_round_one(&mut b), NtStatus::REQUEST_NOT_ACCEPTED);
    // The logons of a connection that goes end with it.
    drop(a);
    let freed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        setup_round_one(&mut b) == NtStatus::MORE_PROCESSING_REQUIRED
    });
    assert!(freed, "the logons of a closed connection still count");
}

#[test]
fn an_address_that_fails_to_log_on_too_often_is_locked_out() {
    let fx = start(|c| {
        c.logons.lockout_after = 2;
        c.logons.lockout_for = Duration::from_secs(3600);
    });
    for _ in 0..2 {
        let mut c = Client::connect(&fx);
        c.negotiate();
        assert_eq!(c.logon(USER, "not it", false), NtStatus::LOGON_FAILURE);
    }
    // Now even the right password is refused, at the first round.
    let mut c = Client::connect(&fx);
    c.negotiate();
    assert_eq!(setup_round_one(&mut c), NtStatus::LOGON_FAILURE);
}
