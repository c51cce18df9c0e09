//! Random and mutated inputs through every decoder: none may panic. The
//! fuzz target in `fuzz/` goes further; this keeps the suite covering the
//! decoders without libFuzzer.

use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use smb_proto::compound::ResponseChain;
use smb_proto::create::{CreateContext, CreateRequest, Lease};
use smb_proto::decode_all::decode_all;
use smb_proto::header::Smb1Negotiate;
use smb_proto::negotiate::{NegotiateContext, NegotiateRequest};
use smb_proto::transport::frame_header;
use smb_proto::{Command, Header};

/// Real encodings, framed, so mutations reach deep arms.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut neg = BytesMut::new();
    NegotiateRequest {
        security_mode: 1,
        capabilities: 0x7F,
        client_guid: [1; 16],
        client_start_time: 0,
        dialects: vec![0x0202, 0x0311],
        contexts: vec![
            NegotiateContext::PreauthIntegrity {
                hash_algorithms: vec![1],
                salt: Bytes::from_static(&[3; 32]),
            },
            NegotiateContext::Encryption { ciphers: vec![2, 1] },
        ],
    }
    .encode(&mut neg);
    let mut create = BytesMut::new();
    CreateRequest {
        security_flags: 0,
        requested_oplock_level: 0xFF,
        impersonation_level: 2,
        smb_create_flags: 0,
        desired_access: 0x0012_0089,
        file_attributes: 0,
        share_access: 7,
        create_disposition: 1,
        create_options: 0x40,
        name: "a\\b.txt".into(),
        contexts: vec![
            CreateContext::MaximalAccess { timestamp: None },
            CreateContext::RequestLease(Lease {
                key: [9; 16],
                state: 7,
                flags: 0,
                duration: 0,
                v2: Some(([0; 16], 1)),
            }),
        ],
    }
    .encode(&mut create);
    let mut chain = ResponseChain::new();
    chain.push_encoded(&Header::request(Command::Negotiate, 0), &neg);
    chain.push_encoded(&Header::request(Command::Create, 1), &create);
    chain.push_encoded(&Header::request(Command::Echo, 2), &[4, 0, 0, 0]);
    let (frame, _) = chain.finish();
    let mut framed = frame_header(frame.len()).to_vec();
    framed.extend_from_slice(&frame);
    for step in [1u8, 7, 255] {
        let mut s = vec![step];
        s.extend_from_slice(&framed);
        out.push(s);
    }
    let mut smb1 = BytesMut::new();
    Smb1Negotiate {
        dialects: vec!["NT LM 0.12".into(), "SMB 2.???".into()],
    }
    .encode(&mut smb1);
    let mut s = vec![200u8];
    s.extend_from_slice(&frame_header(smb1.len()));
    s.extend_from_slice(&smb1);
    out.push(s);
    out
}

#[test]
fn seeds_decode_and_mutations_never_panic() {
    let seeds = seeds();
    for s in &seeds {
        assert!(decode_all(s) > 0, "seed decoded nothing");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for i in 0..20_000 {
        let mut s = seeds[i % seeds.len()].clone();
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..s.len());
            match rng.random_range(0..4) {
                0 => s[at] = rng.random(),
                1 => s.truncate(at.max(1)),
                2 => s[at] ^= 0x80,
                _ => s.insert(at, rng.random()),
            }
        }
        decode_all(&s);
    }
    for _ in 0..5_000 {
        let len = rng.random_range(0..400);
        let s: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        decode_all(&s);
    }
}
