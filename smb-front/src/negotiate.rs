//! NEGOTIATE: the SMB1 multi-protocol upgrade, dialect and capability
//! choice, negotiate contexts (pre-auth integrity, cipher, signing
//! algorithm), and FSCTL_VALIDATE_NEGOTIATE_INFO's answer.

use bytes::{Bytes, BytesMut};
use smb_proto::compound::ResponseChain;
use smb_proto::crypto::preauth::PreauthHash;
use smb_proto::crypto::{Cipher, Dialect, SigningAlgorithm};
use smb_proto::header::{flags, Smb1Negotiate};
use smb_proto::negotiate::{
    capabilities as caps, dialect, security_mode, NegotiateContext, NegotiateRequest, NegotiateResponse,
    HASH_SHA512,
};
use smb_proto::{Command, Header, NtStatus};

use crate::auth::{filetime_now, Acceptor};
use crate::config::Encryption;
use crate::conn::{Conn, Negotiated};
use crate::context::{Ctx, Preauth, Reply, Result};

/// Dialects served, best first.
const DIALECTS: [u16; 5] = [
    dialect::SMB3_1_1,
    dialect::SMB3_0_2,
    dialect::SMB3_0,
    dialect::SMB2_1,
    dialect::SMB2_0_2,
];

fn response(conn: &Conn, dialect_revision: u16, contexts: Vec<NegotiateContext>) -> NegotiateResponse {
    let srv = &conn.srv;
    let mut mode = security_mode::SIGNING_ENABLED;
    if srv.signing_required() {
        mode |= security_mode::SIGNING_REQUIRED;
    }
    let mut capabilities = 0;
    let max = if dialect_revision == dialect::SMB2_0_2 {
        65536
    } else {
        capabilities |= caps::LARGE_MTU | caps::LEASING;
        srv.cfg.max_io.max(65536)
    };
    if matches!(dialect_revision, dialect::SMB3_0 | dialect::SMB3_0_2)
        && srv.cfg.encryption != Encryption::Off
    {
        capabilities |= caps::ENCRYPTION;
    }
    NegotiateResponse {
        security_mode: mode,
        dialect_revision,
        server_guid: srv.guid,
        capabilities,
        max_transact_size: max,
        max_read_size: max,
        max_write_size: max,
        system_time: filetime_now(),
        server_start_time: 0,
        security_buffer: Bytes::from(Acceptor::neg_token_init2()),
        contexts,
    }
}

/// An SMB1 NEGOTIATE that offers SMB2: answered with an SMB2 NEGOTIATE
/// response naming 0x02FF (the client then negotiates again in SMB2) or
/// 2.0.2. `None` drops the connection.
pub(crate) fn smb1(conn: &Conn, frame: &[u8]) -> Option<()> {
    let req = Smb1Negotiate::decode(frame).ok()?;
    let rev = req.smb2_dialect()?;
    {
        let mut st = conn.st.borrow_mut();
        if st.neg.is_some() {
            return None;
        }
        if rev == dialect::SMB2_0_2 {
            st.neg = Some(settle(
                conn,
                Dialect::Smb202,
                None,
                SigningAlgorithm::HmacSha256,
                None,
                0,
                0,
            ));
        }
    }
    let resp = response(conn, rev, Vec::new());
    let mut h = Header::request(Command::Negotiate, 0);
    h.flags = flags::SERVER_TO_REDIR;
    h.credits = conn.st.borrow_mut().grant_credit(1);
    let mut chain = ResponseChain::new();
    chain.push(&h, |out| resp.encode(out));
    let (buf, _) = chain.finish();
    conn.send_plain(buf);
    Some(())
}

fn settle(
    conn: &Conn,
    d: Dialect,
    cipher: Option<Cipher>,
    signing: SigningAlgorithm,
    req: Option<&NegotiateRequest>,
    server_security_mode: u16,
    server_caps: u32,
) -> Negotiated {
    let client_mode = req.map_or(0, |r| r.security_mode);
    Negotiated {
        dialect: d,
        cipher,
        signing,
        client_guid: req.map_or([0; 16], |r| r.client_guid),
        client_caps: req.map_or(0, |r| r.capabilities),
        client_security_mode: client_mode,
        server_security_mode,
        server_caps,
        signing_required: conn.srv.signing_required() || client_mode & security_mode::SIGNING_REQUIRED != 0,
    }
}

pub(crate) fn negotiate(ctx: &mut Ctx, req: NegotiateRequest) -> Result<Reply> {
    let conn = ctx.conn.clone();
    if conn.neg().is_some() {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let Some(&rev) = DIALECTS.iter().find(|d| req.dialects.contains(d)) else {
        return Err(NtStatus::NOT_SUPPORTED);
    };
    let d = Dialect::from_revision(rev).ok_or(NtStatus::NOT_SUPPORTED)?;
    let mut contexts = Vec::new();
    let mut cipher = d.is_smb3().then_some(Cipher::Aes128Ccm);
    let mut signing = SigningAlgorithm::default_for(d);
    if d == Dialect::Smb311 {
        let mut preauth_ok = false;
        cipher = None;
        for c in &req.contexts {
            match c {
                NegotiateContext::PreauthIntegrity { hash_algorithms, .. } => {
                    preauth_ok = hash_algorithms.contains(&HASH_SHA512);
                }
                NegotiateContext::Encryption { ciphers } if conn.srv.cfg.encryption != Encryption::Off => {
                    // The client lists its preference first.
                    cipher = ciphers.iter().find_map(|&id| Cipher::from_id(id));
                    contexts.push(NegotiateContext::Encryption {
                        ciphers: vec![cipher.map_or(0, |c| c.id())],
                    });
                }
                NegotiateContext::Signing { algorithms } => {
                    signing = [
                        SigningAlgorithm::AesGmac,
                        SigningAlgorithm::AesCmac,
                        SigningAlgorithm::HmacSha256,
                    ]
                    .into_iter()
                    .find(|a| algorithms.contains(&a.id()))
                    .unwrap_or(SigningAlgorithm::AesCmac);
                    contexts.push(NegotiateContext::Signing {
                        algorithms: vec![signing.id()],
                    });
                }
                _ => {}
            }
        }
        if !preauth_ok {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let mut salt = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
        contexts.insert(
            0,
            NegotiateContext::PreauthIntegrity {
                hash_algorithms: vec![HASH_SHA512],
                salt: Bytes::copy_from_slice(&salt),
            },
        );
        let mut st = conn.st.borrow_mut();
        st.preauth = PreauthHash::new();
        st.preauth.update(&ctx.msg);
        ctx.preauth = Some(Preauth::Connection);
    }
    let resp = response(&conn, rev, contexts);
    conn.st.borrow_mut().neg = Some(settle(
        &conn,
        d,
        cipher,
        signing,
        Some(&req),
        resp.security_mode,
        resp.capabilities,
    ));
    let mut b = BytesMut::new();
    resp.encode(&mut b);
    Ok(Reply::ok(b))
}
