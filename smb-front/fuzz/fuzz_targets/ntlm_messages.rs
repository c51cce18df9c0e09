//! Arbitrary bytes through the NTLM NEGOTIATE and AUTHENTICATE parsers,
//! bare and behind a valid signature and message type: they never panic,
//! and every field an AUTHENTICATE decodes to lies inside the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb_front::auth::ntlm;

fn within(msg: &[u8], field: &[u8]) -> bool {
    field.is_empty()
        || msg.as_ptr_range().start <= field.as_ptr() && field.as_ptr_range().end <= msg.as_ptr_range().end
}

fn check(msg: &[u8]) {
    let _ = ntlm::parse_negotiate(msg);
    if let Ok(a) = ntlm::parse_authenticate(msg) {
        for f in [a.lm_response, a.nt_response, a.encrypted_session_key] {
            assert!(within(msg, f));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    for kind in [1u32, 3] {
        let mut m = ntlm::SIGNATURE.to_vec();
        m.extend_from_slice(&kind.to_le_bytes());
        m.extend_from_slice(data);
        check(&m);
    }
});
