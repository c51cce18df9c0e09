//! Exchanges recorded between pyspnego's NTLM/SPNEGO client and our
//! acceptor (tests/vectors/pyspnego_golden.py), replayed here: pyspnego's
//! session key must come out, and every tampering must fail.

use std::sync::Arc;

use smb_front::auth::ntlm::ServerNames;
use smb_front::auth::spnego::{self, ClientToken, NegState, NegTokenResp};
use smb_front::auth::users::UserDb;
use smb_front::auth::{Acceptor, AuthFailure, Identity, Step};

const RAW_NEGOTIATE: &str =
    "4e544c4d5353500001000000378208e200000000280000000000000028000000000c04000000000f";
const RAW_CHALLENGE: &str = "4e544c4d53535000020000000a000a003800000035828ae21122334455667788000000000000000070007000420000000a007c4f0000000f570045004900520031000200120057004f0052004b00470052004f005500500001000a00570045004900520031000400120077006f0072006b00670072006f007500700003002200770065006900720031002e006500780061006d0070006c0065002e0063006f006d0007000800000000005a5adc0100000000";
const RAW_AUTHENTICATE: &str = "4e544c4d53535000030000001800180058000000c000c0007000000012001200300100000c000c0042010000040004004e010000100010005201000035828ae2000c04000000000f75f79479f2b28dec8696fc6fbe625fa4000000000000000000000000000000000000000000000000c978e7690aa29ebe36583ba2b4b358b50101000000000000000000005a5adc01e890343c6efb22e2000000000200120057004f0052004b00470052004f005500500001000a00570045004900520031000400120077006f0072006b00670072006f007500700003002200770065006900720031002e006500780061006d0070006c0065002e0063006f006d0007000800000000005a5adc010900140068006f00730074002f00770065006900720031000600040002000000000000000000000057004f0052004b00470052004f0055005000720065006e0064006500720056004d00e3d256f3ca200f3206c99f6d1008f814";
const RAW_SESSION_KEY: &str = "1ef80fbdae9449ba41b9cfd6184a329a";
const SPNEGO_INIT: &str = "604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa22a04284e544c4d5353500001000000378208e200000000280000000000000028000000000c04000000000f";
const SPNEGO_CHALLENGE: &str = "a181ce3081cba0030a0101a10c060a2b06010401823702020aa281b50481b24e544c4d53535000020000000a000a003800000035828ae21122334455667788000000000000000070007000420000000a007c4f0000000f570045004900520031000200120057004f0052004b00470052004f005500500001000a00570045004900520031000400120077006f0072006b00670072006f007500700003002200770065006900720031002e006500780061006d0070006c0065002e0063006f006d0007000800000000005a5adc0100000000";
const SPNEGO_AUTHENTICATE: &str = "a182018730820183a0030a0101a2820166048201624e544c4d53535000030000001800180058000000c000c0007000000012001200300100000c000c0042010000040004004e010000100010005201000035828ae2000c04000000000f9d6d1f237b256e14195bd21d937db017000000000000000000000000000000000000000000000000798bf33cc6ea229a32e78270dee1301f0101000000000000000000005a5adc014cc7cd0623fb7c41000000000200120057004f0052004b00470052004f005500500001000a00570045004900520031000400120077006f0072006b00670072006f007500700003002200770065006900720031002e006500780061006d0070006c0065002e0063006f006d0007000800000000005a5adc010900140068006f00730074002f00770065006900720031000600040002000000000000000000000057004f0052004b00470052004f0055005000720065006e0064006500720056004d00bf6fbdf65385072b5f6c9f26b9e01a9aa312041001000000063992d0b62f1be700000000";
const SPNEGO_FINAL: &str = "a11b3019a0030a0100a3120410010000005f930f3214aa339800000000";
const SPNEGO_SESSION_KEY: &str = "efd978b2b95c7fce73f17acc54e75382";
const WRONG_NEGOTIATE: &str =
    "4e544c4d5353500001000000378208e200000000280000000000000028000000000c04000000000f";
const WRONG_AUTHENTICATE: &str = "4e544c4d53535000030000001800180058000000c000c0007000000012001200300100000c000c0042010000040004004e010000100010005201000035828ae2000c04000000000f513a949f3fbb1c7b588f949d86780b7600000000000000000000000000000000000000000000000097cc3c541dcf6ed094c5c59b3c195a3e0101000000000000000000005a5adc01c9a91bd6b631174f000000000200120057004f0052004b00470052004f005500500001000a00570045004900520031000400120077006f0072006b00670072006f007500700003002200770065006900720031002e006500780061006d0070006c0065002e0063006f006d0007000800000000005a5adc010900140068006f00730074002f00770065006900720031000600040002000000000000000000000057004f0052004b00470052004f0055005000720065006e0064006500720056004d0012d5c3cef30103396a9e12bec21cf387";

const CHALLENGE: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
const TIMESTAMP: u64 = 0x01dc_5a5a_0000_0000;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn users(name: &str, password: &str) -> Arc<UserDb> {
    let mut db = UserDb::new();
    db.insert_password(name, password, 1000, 100);
    Arc::new(db)
}

fn acceptor(db: Arc<UserDb>) -> Acceptor {
    let names = ServerNames::standalone("weir1.example.com", "WORKGROUP");
    Acceptor::with_challenge(db, names, CHALLENGE, TIMESTAMP)
}

/// Runs NEGOTIATE then `auth` through a fresh raw-NTLM acceptor.
fn raw(db: Arc<UserDb>, negotiate: &str, auth: &[u8]) -> Step {
    let mut a = acceptor(db);
    match a.step(&h(negotiate)) {
        Step::Continue(c) => assert_eq!(hex::encode(c), RAW_CHALLENGE),
        other => panic!("{other:?}"),
    }
    a.step(auth)
}

fn failure(step: Step) -> AuthFailure {
    match step {
        Step::Failed(f) => f,
        other => panic!("expected failure, got {other:?}"),
    }
}

fn le16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// The AUTHENTICATE message without its 16-byte MIC field: payload moved
/// down, every offset adjusted.
fn without_mic_field(auth: &[u8]) -> Vec<u8> {
    let mut m = auth[..72].to_vec();
    m.extend_from_slice(&auth[88..]);
    for field in (12..60).step_by(8) {
        let off = le32(&m, field + 4);
        m[field + 4..field + 8].copy_from_slice(&((off - 16) as u32).to_le_bytes());
    }
    m
}

/// Offset in the AUTHENTICATE message of the MsvAvFlags value in the
/// NTLMv2 response's AV pairs.
fn av_flags_offset(auth: &[u8]) -> usize {
    let nt = le32(auth, 24);
    let nt_len = le16(auth, 20);
    let mut at = nt + 16 + 28;
    while at < nt + nt_len {
        let id = le16(auth, at);
        let len = le16(auth, at + 2);
        if id == 6 {
            return at + 4;
        }
        assert_ne!(id, 0, "no MsvAvFlags");
        at += 4 + len;
    }
    panic!("no MsvAvFlags");
}

#[test]
fn raw_ntlm_right_password_gives_pyspnego_session_key() {
    // The user database is case-insensitive; the client sent "render".
    match raw(
        users("Render", "S3cret-pass"),
        RAW_NEGOTIATE,
        &h(RAW_AUTHENTICATE),
    ) {
        Step::Done {
            identity,
            session_key,
            out_token,
        } => {
            assert_eq!(hex::encode(session_key), RAW_SESSION_KEY);
            assert!(out_token.is_empty());
            match identity {
                Identity::User { user, domain, .. } => {
                    assert_eq!(user.name, "Render");
                    assert_eq!(user.uid, 1000);
                    assert_eq!(domain, "WORKGROUP");
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn raw_ntlm_wrong_password_or_user_fails() {
    let db = users("render", "S3cret-pass");
    assert_eq!(
        failure(raw(db.clone(), WRONG_NEGOTIATE, &h(WRONG_AUTHENTICATE))),
        AuthFailure::WrongPassword("render".into())
    );
    assert_eq!(
        failure(raw(users("render", "other"), RAW_NEGOTIATE, &h(RAW_AUTHENTICATE))),
        AuthFailure::WrongPassword("render".into())
    );
    assert_eq!(
        failure(raw(
            users("someone", "S3cret-pass"),
            RAW_NEGOTIATE,
            &h(RAW_AUTHENTICATE)
        )),
        AuthFailure::UnknownUser("render".into())
    );
}

#[test]
fn tampered_mic_fails() {
    let db = users("render", "S3cret-pass");
    let auth = h(RAW_AUTHENTICATE);
    let mut bad = auth.clone();
    bad[80] ^= 0x01;
    assert_eq!(failure(raw(db.clone(), RAW_NEGOTIATE, &bad)), AuthFailure::BadMic);
    // Any other byte of the message changed: the MIC (or the NTProofStr)
    // no longer matches.
    let mut bad = auth.clone();
    let ws = le32(&auth, 48);
    bad[ws] ^= 0x01;
    assert!(matches!(raw(db.clone(), RAW_NEGOTIATE, &bad), Step::Failed(_)));
}

#[test]
fn mic_zeroed_or_removed_while_announced_fails() {
    let db = users("render", "S3cret-pass");
    let auth = h(RAW_AUTHENTICATE);
    let mut zeroed = auth.clone();
    zeroed[72..88].fill(0);
    assert_eq!(
        failure(raw(db.clone(), RAW_NEGOTIATE, &zeroed)),
        AuthFailure::MicMissing
    );
    assert_eq!(
        failure(raw(db.clone(), RAW_NEGOTIATE, &without_mic_field(&auth))),
        AuthFailure::MicMissing
    );
}

#[test]
fn mic_removed_and_flag_cleared_breaks_the_proof() {
    let db = users("render", "S3cret-pass");
    let mut auth = h(RAW_AUTHENTICATE);
    let at = av_flags_offset(&auth);
    assert_ne!(auth[at] & 0x02, 0, "pyspnego announced its MIC");
    auth[at] &= !0x02;
    // The AV pairs are inside the blob the NTProofStr covers.
    assert_eq!(
        failure(raw(db.clone(), RAW_NEGOTIATE, &without_mic_field(&auth))),
        AuthFailure::WrongPassword("render".into())
    );
    assert_eq!(
        failure(raw(db, RAW_NEGOTIATE, &auth)),
        AuthFailure::WrongPassword("render".into())
    );
}

#[test]
fn spnego_round_gives_pyspnego_session_key_and_mech_list_mic() {
    let mut a = acceptor(users("render", "S3cret-pass"));
    match a.step(&h(SPNEGO_INIT)) {
        Step::Continue(c) => assert_eq!(hex::encode(c), SPNEGO_CHALLENGE),
        other => panic!("{other:?}"),
    }
    match a.step(&h(SPNEGO_AUTHENTICATE)) {
        Step::Done {
            session_key,
            out_token,
            ..
        } => {
            assert_eq!(hex::encode(session_key), SPNEGO_SESSION_KEY);
            // pyspnego verified this token's mechListMIC when recorded.
            assert_eq!(hex::encode(&out_token), SPNEGO_FINAL);
            let resp = spnego::parse_neg_token_resp(&out_token).unwrap();
            assert_eq!(resp.neg_state, Some(NegState::AcceptCompleted));
        }
        other => panic!("{other:?}"),
    }
    assert!(a.ntlm_security().is_some());
    assert_eq!(
        failure(a.step(&h(SPNEGO_AUTHENTICATE))),
        AuthFailure::UnexpectedToken
    );
}

/// The final SPNEGO token with its mechListMIC replaced.
fn with_mech_list_mic(mic: Option<&[u8]>) -> Vec<u8> {
    let t = h(SPNEGO_AUTHENTICATE);
    let ClientToken::Resp(resp) = spnego::parse_client_token(&t).unwrap() else {
        panic!("not a NegTokenResp")
    };
    assert!(resp.mech_list_mic.is_some());
    spnego::neg_token_resp(&NegTokenResp {
        mech_list_mic: mic,
        ..resp
    })
}

fn spnego_final(token: &[u8]) -> Step {
    let mut a = acceptor(users("render", "S3cret-pass"));
    assert!(matches!(a.step(&h(SPNEGO_INIT)), Step::Continue(_)));
    a.step(token)
}

#[test]
fn spnego_bad_or_missing_mech_list_mic_fails() {
    assert_eq!(
        failure(spnego_final(&with_mech_list_mic(Some(&[1; 16])))),
        AuthFailure::BadMechListMic
    );
    // The client sent an NTLM MIC, so it must protect the mechanism list.
    assert_eq!(
        failure(spnego_final(&with_mech_list_mic(None))),
        AuthFailure::MechListMicMissing
    );
    // Re-encoding with the same MIC is accepted: the MIC covers the
    // mechanism list, not the token's encoding.
    let t = h(SPNEGO_AUTHENTICATE);
    let ClientToken::Resp(resp) = spnego::parse_client_token(&t).unwrap() else {
        panic!()
    };
    let mic = resp.mech_list_mic.unwrap().to_vec();
    assert!(matches!(
        spnego_final(&with_mech_list_mic(Some(&mic))),
        Step::Done { .. }
    ));
}

#[test]
fn spnego_wrong_password_fails() {
    let mut a = acceptor(users("render", "not-it"));
    assert!(matches!(a.step(&h(SPNEGO_INIT)), Step::Continue(_)));
    assert_eq!(
        failure(a.step(&h(SPNEGO_AUTHENTICATE))),
        AuthFailure::WrongPassword("render".into())
    );
}

#[test]
fn spnego_without_ntlm_or_with_other_first_mech() {
    let mut a = acceptor(users("render", "S3cret-pass"));
    let krb_only = spnego::neg_token_init(&[spnego::OID_KRB5], Some(b"ticket"), None);
    assert_eq!(failure(a.step(&krb_only)), AuthFailure::NoCommonMechanism);

    // Kerberos first with an optimistic Kerberos token: we pick NTLM and ask
    // for its first token; NTLM then needs a mechListMIC.
    let mut a = acceptor(users("render", "S3cret-pass"));
    let init = spnego::neg_token_init(&[spnego::OID_MS_KRB5, spnego::OID_NTLMSSP], Some(b"ticket"), None);
    let Step::Continue(out) = a.step(&init) else {
        panic!()
    };
    let resp = spnego::parse_neg_token_resp(&out).unwrap();
    assert_eq!(resp.neg_state, Some(NegState::AcceptIncomplete));
    assert_eq!(resp.supported_mech, Some(spnego::OID_NTLMSSP));
    assert_eq!(resp.response_token, None);
    let neg = spnego::neg_token_resp(&NegTokenResp {
        response_token: Some(&h(RAW_NEGOTIATE)),
        ..Default::default()
    });
    let Step::Continue(out) = a.step(&neg) else {
        panic!()
    };
    let resp = spnego::parse_neg_token_resp(&out).unwrap();
    assert_eq!(
        resp.response_token.map(hex::encode).as_deref(),
        Some(RAW_CHALLENGE)
    );
    // The raw exchange's AUTHENTICATE, without mechListMIC.
    let auth = spnego::neg_token_resp(&NegTokenResp {
        response_token: Some(&h(RAW_AUTHENTICATE)),
        ..Default::default()
    });
    assert_eq!(failure(a.step(&auth)), AuthFailure::MechListMicMissing);
}

#[test]
fn garbage_never_panics() {
    let db = users("render", "S3cret-pass");
    let tokens = [
        h(RAW_NEGOTIATE),
        h(RAW_AUTHENTICATE),
        h(SPNEGO_INIT),
        h(SPNEGO_AUTHENTICATE),
    ];
    for t in &tokens {
        for len in 0..t.len() {
            let mut a = acceptor(db.clone());
            let _ = a.step(&t[..len]);
            let mut a = acceptor(db.clone());
            let _ = a.step(&h(SPNEGO_INIT));
            assert!(matches!(a.step(&t[..len]), Step::Failed(_)));
        }
    }
}

#[test]
fn anonymous_logon_is_reported_not_decided() {
    // An AUTHENTICATE with empty user, domain and responses.
    let mut anon = b"NTLMSSP\0".to_vec();
    anon.extend_from_slice(&3u32.to_le_bytes());
    for _ in 0..6 {
        anon.extend_from_slice(&[0, 0, 0, 0, 72, 0, 0, 0]);
    }
    anon.extend_from_slice(&0x0000_0801u32.to_le_bytes());
    anon.extend_from_slice(&[0; 8]);
    let mut a = acceptor(users("render", "S3cret-pass"));
    assert!(matches!(a.step(&h(SPNEGO_INIT)), Step::Continue(_)));
    let t = spnego::neg_token_resp(&NegTokenResp {
        response_token: Some(&anon),
        ..Default::default()
    });
    match a.step(&t) {
        Step::Done {
            identity,
            session_key,
            out_token,
        } => {
            assert_eq!(identity, Identity::Anonymous);
            assert!(session_key.is_empty());
            let resp = spnego::parse_neg_token_resp(&out_token).unwrap();
            assert_eq!(resp.neg_state, Some(NegState::AcceptCompleted));
            assert_eq!(resp.mech_list_mic, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(a.ntlm_security().is_none());
}
