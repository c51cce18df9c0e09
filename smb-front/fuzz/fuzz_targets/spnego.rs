//! Arbitrary bytes through the SPNEGO token parser, bare and inside the
//! framings a client sends (GSS-API NegTokenInit, `[1]` NegTokenResp): it
//! never panics, and what it decodes encodes back to the same token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb_front::auth::spnego::{self, ClientToken};

/// `tag`, a DER length, then `content`.
fn framed(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    spnego::tlv(&mut v, tag, content);
    v
}

fn round_trip(token: &[u8]) {
    match spnego::parse_client_token(token) {
        Ok(ClientToken::Init(init)) => {
            let again = spnego::neg_token_init(&init.mech_types, init.mech_token, init.mech_list_mic);
            match spnego::parse_client_token(&again) {
                Ok(ClientToken::Init(back)) => {
                    assert_eq!(back.mech_types, init.mech_types);
                    assert_eq!(back.mech_token, init.mech_token);
                    assert_eq!(back.mech_list_mic, init.mech_list_mic);
                }
                other => panic!("a NegTokenInit re-encoded reads back as {other:?}"),
            }
        }
        Ok(ClientToken::Resp(resp)) => {
            let again = spnego::neg_token_resp(&resp);
            assert_eq!(spnego::parse_neg_token_resp(&again).as_ref(), Ok(&resp));
        }
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip(data);
    // A NegTokenResp body, and a NegTokenInit body with and without the
    // GSS-API header, so that the fuzzer starts past the outer layers.
    round_trip(&framed(0xa1, data));
    let init = framed(0xa0, data);
    round_trip(&init);
    let mut app = framed(0x06, spnego::OID_SPNEGO);
    app.extend_from_slice(&init);
    round_trip(&framed(0x60, &app));
});
