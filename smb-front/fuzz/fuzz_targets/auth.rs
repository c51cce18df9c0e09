//! Arbitrary bytes through the SMB authentication decoders and the
//! acceptor in each of its waiting states, plus the transform-header
//! unsealing path: none may panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use smb_front::auth::ntlm::{self, ServerNames};
use smb_front::auth::spnego;
use smb_front::auth::users::UserDb;
use smb_front::auth::{Acceptor, Step};
use smb_proto::crypto::kdf::CipherKey;
use smb_proto::crypto::{seal, Cipher};

fn users() -> Arc<UserDb> {
    static DB: OnceLock<Arc<UserDb>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = UserDb::new();
        db.insert_password("user", "Password", 1000, 1000);
        Arc::new(db)
    })
    .clone()
}

fn acceptor() -> Acceptor {
    let names = ServerNames::standalone("weir1.example.com", "WORKGROUP");
    Acceptor::with_challenge(users(), names, [1, 2, 3, 4, 5, 6, 7, 8], 0x01dc_0000_0000_0000)
}

fn negotiate() -> Vec<u8> {
    let mut m = ntlm::SIGNATURE.to_vec();
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&0xe208_8237u32.to_le_bytes());
    m
}

fuzz_target!(|data: &[u8]| {
    let _ = spnego::parse_client_token(data);
    let _ = ntlm::parse_negotiate(data);
    let _ = ntlm::parse_authenticate(data);

    let _ = acceptor().step(data);

    // Raw NTLM, challenged.
    let mut raw = acceptor();
    assert!(matches!(raw.step(&negotiate()), Step::Continue(_)));
    let _ = raw.step(data);

    // SPNEGO, challenged.
    let mut sp = acceptor();
    let init = spnego::neg_token_init(&[spnego::OID_NTLMSSP], Some(&negotiate()), None);
    assert!(matches!(sp.step(&init), Step::Continue(_)));
    let _ = sp.step(data);

    // SPNEGO, waiting for the mechanism's first token.
    let mut wait = acceptor();
    let init = spnego::neg_token_init(&[spnego::OID_KRB5, spnego::OID_NTLMSSP], None, None);
    assert!(matches!(wait.step(&init), Step::Continue(_)));
    let _ = wait.step(data);

    // The same bytes as an AUTHENTICATE inside a NegTokenResp.
    let mut sp = acceptor();
    let init = spnego::neg_token_init(&[spnego::OID_NTLMSSP], Some(&negotiate()), None);
    let _ = sp.step(&init);
    let wrapped = spnego::neg_token_resp(&spnego::NegTokenResp {
        response_token: Some(data),
        mech_list_mic: Some(data.get(..16).unwrap_or(data)),
        ..Default::default()
    });
    let _ = sp.step(&wrapped);

    let key = CipherKey::new(&[7; 16]).expect("16-byte key");
    for cipher in [Cipher::Aes128Ccm, Cipher::Aes128Gcm] {
        let _ = seal::decrypt(cipher, &key, 0x11, data);
    }
});
