//! The server's error paths and cross-connection state, driven by a small
//! blocking client built from smb-proto's client-side encoders and an
//! NTLMv2 client made of smb-front's NTLM primitives.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cache_engine::types::{Credentials, Stability};
use common::*;
use smb_front::auth::ntlm::{nt_proof_str, ntowfv2, session_base_key};
use smb_proto::create::{
    disposition, oplock_level, options, share_access, CreateContext, CreateRequest, CreateResponse,
    CreateResponseContext, Lease,
};
use smb_proto::crypto::kdf::SessionKeys;
use smb_proto::crypto::{sign, Dialect, SigningAlgorithm};
use smb_proto::dir::{decode_output_buffer_response, ChangeNotifyRequest};
use smb_proto::header::{flags, HeaderId};
use smb_proto::io::{CloseRequest, LockElement, LockRequest, ReadRequest, WriteRequest};
use smb_proto::negotiate::{NegotiateRequest, NegotiateResponse};
use smb_proto::oplock::{BreakAcknowledgment, LeaseBreakAck, OplockBreak};
use smb_proto::security::access;
use smb_proto::session::{SessionSetupRequest, SessionSetupResponse};
use smb_proto::transport::frame_header;
use smb_proto::tree::TreeConnectRequest;
use smb_proto::{Command, FileId, Header, NtStatus};

struct Client {
    s: TcpStream,
    guid: [u8; 16],
    mid: u64,
    session: u64,
    tree: u32,
    key: Option<[u8; 16]>,
}

struct Resp {
    h: Header,
    body: Bytes,
}

impl Client {
    fn connect(fx: &Fixture) -> Client {
        let s = TcpStream::connect(fx.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
        Client {
            s,
            guid: [NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed); 16],
            mid: 0,
            session: 0,
            tree: 0,
            key: None,
        }
    }

    fn header(&mut self, cmd: Command) -> Header {
        let mut h = Header::request(cmd, self.mid);
        self.mid += 1;
        h.credits = 64;
        h.credit_charge = 1;
        h.session_id = self.session;
        h.id = HeaderId::Sync {
            process_id: 0,
            tree_id: self.tree,
        };
        h
    }

    fn send_raw(&mut self, msg: &[u8]) {
        let mut f = frame_header(msg.len()).to_vec();
        f.extend_from_slice(msg);
        self.s.write_all(&f).unwrap();
    }

    fn send_with(&mut self, h: Header, body: impl FnOnce(&mut BytesMut)) {
        let mut m = BytesMut::new();
        h.encode(&mut m);
        body(&mut m);
        if let Some(k) = self.key {
            sign::sign(SigningAlgorithm::AesCmac, &k, &mut m).unwrap();
        }
        self.send_raw(&m);
    }

    /// The next frame, or `None` when the server closed the connection.
    fn recv(&mut self) -> Option<Resp> {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).ok()?;
        let n = u32::from_be_bytes(len) as usize;
        let mut buf = vec![0u8; n];
        self.s.read_exact(&mut buf).ok()?;
        let h = Header::decode(&buf).unwrap();
        Some(Resp {
            h,
            body: Bytes::from(buf).slice(64..),
        })
    }

    fn call(&mut self, cmd: Command, body: impl FnOnce(&mut BytesMut)) -> Resp {
        let h = self.header(cmd);
        self.send_with(h, body);
        self.recv().expect("a response")
    }

    fn negotiate(&mut self) -> NegotiateResponse {
        let client_guid = self.guid;
        let r = self.call(Command::Negotiate, |b| {
            NegotiateRequest {
                security_mode: 1,
                capabilities: 0,
                client_guid,
                client_start_time: 0,
                dialects: vec![0x0202, 0x0210, 0x0300, 0x0302],
                contexts: Vec::new(),
            }
            .encode(b)
        });
        assert_eq!(r.h.status, NtStatus::SUCCESS);
        NegotiateResponse::decode(r.body).unwrap()
    }

    /// NTLMv2 logon (raw NTLMSSP tokens); keeps the signing key when `signed`.
    fn logon(&mut self, user: &str, pass: &str, signed: bool) -> NtStatus {
        let negotiate = {
            let mut m = b"NTLMSSP\0".to_vec();
            m.extend_from_slice(&1u32.to_le_bytes());
            m.extend_from_slice(&0xA208_8215u32.to_le_bytes());
            m.extend_from_slice(&[0; 16]);
            m
        };
        let setup = |token: Vec<u8>| {
            move |b: &mut BytesMut| {
                SessionSetupRequest {
                    flags: 0,
                    security_mode: if signed { 2 } else { 1 },
                    capabilities: 0,
                    channel: 0,
                    previous_session_id: 0,
                    security_buffer: Bytes::from(token),
                }
                .encode(b)
            }
        };
        let r = self.call(Command::SessionSetup, setup(negotiate));
        assert_eq!(r.h.status, NtStatus::MORE_PROCESSING_REQUIRED);
        self.session = r.h.session_id;
        let challenge = SessionSetupResponse::decode(r.body).unwrap().security_buffer;
        let server_challenge: [u8; 8] = challenge[24..32].try_into().unwrap();
        let ti_len = u16::from_le_bytes([challenge[40], challenge[41]]) as usize;
        let ti_off = u32::from_le_bytes(challenge[44..48].try_into().unwrap()) as usize;
        let target_info = &challenge[ti_off..ti_off + ti_len];
        let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
        blob.extend_from_slice(&0x01dc_0000_0000_0000u64.to_le_bytes());
        blob.extend_from_slice(&[9; 8]);
        blob.extend_from_slice(&[0; 4]);
        blob.extend_from_slice(target_info);
        blob.extend_from_slice(&[0; 4]);
        let hash = smb_front::auth::users::nt_hash(pass);
        let ntowf = ntowfv2(&hash, user, "");
        let proof = nt_proof_str(&ntowf, &server_challenge, &blob);
        let mut nt = proof.to_vec();
        nt.extend_from_slice(&blob);
        let utf16 = |s: &str| s.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
        let fields: [Vec<u8>; 6] = [vec![0; 24], nt, Vec::new(), utf16(user), utf16("WS"), Vec::new()];
        let mut m = b"NTLMSSP\0".to_vec();
        m.extend_from_slice(&3u32.to_le_bytes());
        let mut off = 64u32;
        for f in &fields {
            m.extend_from_slice(&(f.len() as u16).to_le_bytes());
            m.extend_from_slice(&(f.len() as u16).to_le_bytes());
            m.extend_from_slice(&off.to_le_bytes());
            off += f.len() as u32;
        }
        m.extend_from_slice(&0xA208_8215u32.to_le_bytes());
        for f in &fields {
            m.extend_from_slice(f);
        }
        let r = self.call(Command::SessionSetup, setup(m));
        if r.h.status == NtStatus::SUCCESS && signed {
            let base = session_base_key(&ntowf, &proof);
            let keys = SessionKeys::derive(Dialect::Smb302, None, &base, &[0; 64]);
            self.key = Some(keys.signing);
        }
        r.h.status
    }

    fn tree_connect(&mut self, share: &str) -> NtStatus {
        let r = self.call(Command::TreeConnect, |b| {
            TreeConnectRequest {
                flags: 0,
                path: format!("\\\\127.0.0.1\\{share}"),
                contexts: Vec::new(),
            }
            .encode(b)
        });
        if r.h.status == NtStatus::SUCCESS {
            self.tree = r.h.tree_id().unwrap();
        }
        r.h.status
    }

    fn login(fx: &Fixture) -> Client {
        let mut c = Client::connect(fx);
        c.negotiate();
        assert_eq!(c.logon(USER, PASS, false), NtStatus::SUCCESS);
        assert_eq!(c.tree_connect("export"), NtStatus::SUCCESS);
        c
    }

    fn create_req(&mut self, name: &str, access: u32, share: u32, disp: u32, opts: u32) -> Resp {
        self.call(Command::Create, |b| {
            CreateRequest {
                desired_access: access,
                share_access: share,
                create_disposition: disp,
                create_options: opts,
                ..create_body(name, 0, None)
            }
            .encode(b)
        })
    }

    fn create(
        &mut self,
        name: &str,
        access: u32,
        share: u32,
        disp: u32,
        opts: u32,
    ) -> Result<FileId, NtStatus> {
        let r = self.create_req(name, access, share, disp, opts);
        if r.h.status != NtStatus::SUCCESS {
            return Err(r.h.status);
        }
        Ok(CreateResponse::decode(r.body).unwrap().file_id)
    }
}

fn close(c: &mut Client, file_id: FileId) -> Resp {
    c.call(Command::Close, |b| CloseRequest { flags: 0, file_id }.encode(b))
}

const ALL_SHARE: u32 = share_access::READ | share_access::WRITE | share_access::DELETE;
const RW: u32 = access::FILE_READ_DATA | access::FILE_WRITE_DATA;

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
    let list = decode_output_buffer_response(r.body).unwrap();
    let name: Vec<u16> = list[12..]
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(String::from_utf16(&name).unwrap(), "new.txt");
    assert_eq!(
        u32::from_le_bytes(list[4..8].try_into().unwrap()),
        1,
        "FILE_ACTION_ADDED"
    );
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
    use smb_proto::ioctl::{
        fsctl, CopyChunk, CopyChunkRequest, IoctlRequest, IoctlResponse, ValidateNegotiateInfoRequest,
        IOCTL_IS_FSCTL,
    };
    let fx = start(|_| {});
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(fx.origin().join("src"), &data).unwrap();
    let mut c = Client::login(&fx);
    let ioctl = |c: &mut Client, ctl_code, file_id, input: Bytes| {
        let r = c.call(Command::Ioctl, |b| {
            IoctlRequest {
                ctl_code,
                file_id,
                input,
                max_input_response: 0,
                output: Bytes::new(),
                max_output_response: 65536,
                flags: IOCTL_IS_FSCTL,
            }
            .encode(b)
        });
        let status = r.h.status;
        (status, IoctlResponse::decode(r.body).ok().map(|x| x.output))
    };
    let src = c
        .create("src", access::FILE_READ_DATA, ALL_SHARE, disposition::OPEN, 0)
        .unwrap();
    let dst = c.create("dst", RW, ALL_SHARE, disposition::CREATE, 0).unwrap();
    let (status, key) = ioctl(&mut c, fsctl::SRV_REQUEST_RESUME_KEY, src, Bytes::new());
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
    let (status, out) = ioctl(&mut c, fsctl::SRV_COPYCHUNK_WRITE, dst, input.freeze());
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
    let (status, _) = ioctl(&mut c, fsctl::SRV_COPYCHUNK_WRITE, src, input.freeze());
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
    let (status, _) = ioctl(
        &mut c,
        fsctl::VALIDATE_NEGOTIATE_INFO,
        FileId {
            persistent: u64::MAX,
            volatile: u64::MAX,
        },
        validate(vec![0x0202, 0x0210, 0x0300, 0x0302]),
    );
    assert_eq!(status, NtStatus::SUCCESS);
    let (status, _) = ioctl(
        &mut c,
        fsctl::VALIDATE_NEGOTIATE_INFO,
        FileId::ANY,
        validate(vec![0x0202]),
    );
    assert_eq!(status, NtStatus::ACCESS_DENIED);
    let (status, _) = ioctl(&mut c, 0x0009_0000, src, Bytes::new());
    assert_eq!(status, NtStatus::INVALID_DEVICE_REQUEST);
}

/// CREATE asking for an oplock level or (with `lease`) a lease of that key
/// and state; answers the response.
fn create_cached(c: &mut Client, name: &str, oplock: u8, lease: Option<([u8; 16], u32)>) -> Resp {
    let h = c.header(Command::Create);
    c.send_with(h, |b| create_body(name, oplock, lease).encode(b));
    c.recv().expect("a response")
}

fn create_body(name: &str, oplock: u8, lease: Option<([u8; 16], u32)>) -> CreateRequest {
    CreateRequest {
        security_flags: 0,
        requested_oplock_level: oplock,
        impersonation_level: 2,
        smb_create_flags: 0,
        desired_access: RW,
        file_attributes: 0,
        share_access: ALL_SHARE,
        create_disposition: disposition::OPEN_IF,
        create_options: 0,
        name: name.into(),
        contexts: lease
            .map(|(key, state)| {
                CreateContext::RequestLease(Lease {
                    key,
                    state,
                    flags: 0,
                    duration: 0,
                    v2: None,
                })
            })
            .into_iter()
            .collect(),
    }
}

/// The lease a CREATE response grants.
fn granted_lease(r: Resp) -> (FileId, u8, Option<u32>) {
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    let c = CreateResponse::decode(r.body).unwrap();
    let state = c.contexts.iter().find_map(|x| match x {
        CreateResponseContext::Lease(l) => Some(l.state),
        _ => None,
    });
    (c.file_id, c.oplock_level, state)
}

/// A lease break notification: (key, current, new, ack required).
fn lease_break(r: &Resp) -> ([u8; 16], u32, u32, bool) {
    assert_eq!(r.h.command, Command::OplockBreak);
    assert_eq!(r.h.message_id, u64::MAX);
    assert_eq!(r.body.len(), 44, "a lease break notification");
    let u32_at = |i: usize| u32::from_le_bytes(r.body[i..i + 4].try_into().unwrap());
    (
        r.body[8..24].try_into().unwrap(),
        u32_at(24),
        u32_at(28),
        u32_at(4) & 1 != 0,
    )
}

fn ack_lease(c: &mut Client, key: [u8; 16], state: u32) -> Resp {
    c.call(Command::OplockBreak, |b| {
        LeaseBreakAck {
            flags: 0,
            lease_key: key,
            lease_state: state,
            lease_duration: 0,
        }
        .encode(b)
    })
}

fn write_at(c: &mut Client, file_id: FileId, data: &'static [u8]) -> Resp {
    let h = c.header(Command::Write);
    c.send_with(h, |b| {
        WriteRequest {
            offset: 0,
            file_id,
            channel: 0,
            remaining_bytes: 0,
            flags: 0,
            channel_info: Bytes::new(),
            data: Bytes::from_static(data),
        }
        .encode(b)
    });
    c.recv().expect("a response")
}

const RWH: u32 = 7;
const RH: u32 = 1 | 2;

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

/// A client of `fx` holding a lease of `key` with `state` on `name`.
fn leased_client(fx: &Fixture, name: &str, key: [u8; 16], state: u32) -> Client {
    let mut a = Client::login(fx);
    let (_, _, got) = granted_lease(create_cached(
        &mut a,
        name,
        oplock_level::LEASE,
        Some((key, state)),
    ));
    assert_eq!(got, Some(state));
    a
}

/// The next message `a` gets is a break of lease `key` from `from` to `to`
/// that needs an acknowledgment; acknowledge it.
fn ack_next_break(a: &mut Client, key: [u8; 16], from: u32, to: u32) {
    let n = a.recv().unwrap();
    assert_eq!(lease_break(&n), (key, from, to, true));
    assert_eq!(ack_lease(a, key, to).h.status, NtStatus::SUCCESS);
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
