//! A small blocking SMB2 client built from smb-proto's client-side
//! encoders and an NTLMv2 client made of smb-front's NTLM primitives.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use smb_front::auth::ntlm::{nt_proof_str, ntowfv2, session_base_key};
use smb_proto::create::{
    disposition, oplock_level, share_access, CreateContext, CreateRequest, CreateResponse,
    CreateResponseContext, Lease,
};
use smb_proto::crypto::kdf::SessionKeys;
use smb_proto::crypto::{sign, Dialect, SigningAlgorithm};
use smb_proto::dir::decode_output_buffer_response;
use smb_proto::header::HeaderId;
use smb_proto::io::{CloseRequest, FlushRequest, WriteRequest};
use smb_proto::ioctl::{IoctlRequest, IoctlResponse, IOCTL_IS_FSCTL};
use smb_proto::negotiate::{NegotiateRequest, NegotiateResponse};
use smb_proto::oplock::LeaseBreakAck;
use smb_proto::security::access;
use smb_proto::session::{SessionSetupRequest, SessionSetupResponse};
use smb_proto::transport::frame_header;
use smb_proto::tree::TreeConnectRequest;
use smb_proto::{Command, FileId, Header, NtStatus};

use super::{Fixture, PASS, USER};

pub struct Client {
    pub s: TcpStream,
    pub guid: [u8; 16],
    pub mid: u64,
    pub session: u64,
    pub tree: u32,
    pub key: Option<[u8; 16]>,
}

pub struct Resp {
    pub h: Header,
    pub body: Bytes,
}

impl Client {
    pub fn connect(fx: &Fixture) -> Client {
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

    pub fn header(&mut self, cmd: Command) -> Header {
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

    pub fn send_raw(&mut self, msg: &[u8]) {
        let mut f = frame_header(msg.len()).to_vec();
        f.extend_from_slice(msg);
        self.s.write_all(&f).unwrap();
    }

    pub fn send_with(&mut self, h: Header, body: impl FnOnce(&mut BytesMut)) {
        let mut m = BytesMut::new();
        h.encode(&mut m);
        body(&mut m);
        if let Some(k) = self.key {
            sign::sign(SigningAlgorithm::AesCmac, &k, &mut m).unwrap();
        }
        self.send_raw(&m);
    }

    /// The next frame, or `None` when the server closed the connection.
    pub fn recv(&mut self) -> Option<Resp> {
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

    pub fn call(&mut self, cmd: Command, body: impl FnOnce(&mut BytesMut)) -> Resp {
        let h = self.header(cmd);
        self.send_with(h, body);
        self.recv().expect("a response")
    }

    pub fn negotiate(&mut self) -> NegotiateResponse {
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
    pub fn logon(&mut self, user: &str, pass: &str, signed: bool) -> NtStatus {
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

    /// An FSCTL: its status and output.
    pub fn ioctl(&mut self, ctl_code: u32, file_id: FileId, input: Bytes) -> (NtStatus, Option<Bytes>) {
        let r = self.call(Command::Ioctl, |b| {
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
    }

    /// FLUSH of an open: its status.
    pub fn flush(&mut self, file_id: FileId) -> NtStatus {
        self.call(Command::Flush, |b| FlushRequest { file_id }.encode(b))
            .h
            .status
    }

    pub fn tree_connect(&mut self, share: &str) -> NtStatus {
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

    pub fn login(fx: &Fixture) -> Client {
        let mut c = Client::connect(fx);
        c.negotiate();
        assert_eq!(c.logon(USER, PASS, false), NtStatus::SUCCESS);
        assert_eq!(c.tree_connect("export"), NtStatus::SUCCESS);
        c
    }

    pub fn create_req(&mut self, name: &str, access: u32, share: u32, disp: u32, opts: u32) -> Resp {
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

    pub fn create(
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

pub fn close(c: &mut Client, file_id: FileId) -> Resp {
    c.call(Command::Close, |b| CloseRequest { flags: 0, file_id }.encode(b))
}

pub const ALL_SHARE: u32 = share_access::READ | share_access::WRITE | share_access::DELETE;
pub const RW: u32 = access::FILE_READ_DATA | access::FILE_WRITE_DATA;
/// CREATE asking for an oplock level or (with `lease`) a lease of that key
/// and state; answers the response.
pub fn create_cached(c: &mut Client, name: &str, oplock: u8, lease: Option<([u8; 16], u32)>) -> Resp {
    let h = c.header(Command::Create);
    c.send_with(h, |b| create_body(name, oplock, lease).encode(b));
    c.recv().expect("a response")
}

pub fn create_body(name: &str, oplock: u8, lease: Option<([u8; 16], u32)>) -> CreateRequest {
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
pub fn granted_lease(r: Resp) -> (FileId, u8, Option<u32>) {
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    let c = CreateResponse::decode(r.body).unwrap();
    let state = c.contexts.iter().find_map(|x| match x {
        CreateResponseContext::Lease(l) => Some(l.state),
        _ => None,
    });
    (c.file_id, c.oplock_level, state)
}

/// A lease break notification: (key, current, new, ack required).
pub fn lease_break(r: &Resp) -> ([u8; 16], u32, u32, bool) {
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

pub fn ack_lease(c: &mut Client, key: [u8; 16], state: u32) -> Resp {
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

pub fn write_at(c: &mut Client, file_id: FileId, data: &'static [u8]) -> Resp {
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

pub const RWH: u32 = 7;
pub const RH: u32 = 1 | 2;
/// A client of `fx` holding a lease of `key` with `state` on `name`.
pub fn leased_client(fx: &Fixture, name: &str, key: [u8; 16], state: u32) -> Client {
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
pub fn ack_next_break(a: &mut Client, key: [u8; 16], from: u32, to: u32) {
    let n = a.recv().unwrap();
    assert_eq!(lease_break(&n), (key, from, to, true));
    assert_eq!(ack_lease(a, key, to).h.status, NtStatus::SUCCESS);
}

/// The (action, name) of each FILE_NOTIFY_INFORMATION in a CHANGE_NOTIFY response.
pub fn notify_changes(r: &Resp) -> Vec<(u32, String)> {
    let list = decode_output_buffer_response(r.body.clone()).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let u32_at = |i: usize| u32::from_le_bytes(list[i..i + 4].try_into().unwrap());
        let (next, action, len) = (u32_at(at) as usize, u32_at(at + 4), u32_at(at + 8) as usize);
        let name: Vec<u16> = list[at + 12..at + 12 + len]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        out.push((action, String::from_utf16(&name).unwrap()));
        if next == 0 {
            return out;
        }
        at += next;
    }
}
