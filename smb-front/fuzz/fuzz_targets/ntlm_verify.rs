//! AUTHENTICATE messages built from fuzzer input around an NTLMv2 response
//! that is right (or, by one flipped byte, wrong) for a fixed user database:
//! flags, names, AV pairs, session key and MIC vary. The check never panics,
//! never accepts a wrong proof, and accepts a right one unless the message
//! is malformed or its MIC is wrong.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use smb_front::auth::ntlm::{self, NtlmOutcome, NtlmServer, ServerNames};
use smb_front::auth::users::UserDb;
use smb_front::auth::AuthFailure;

const CHALLENGE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const PASSWORD: &str = "Password";

fn users() -> &'static UserDb {
    static DB: OnceLock<UserDb> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = UserDb::new();
        db.insert_password("user", PASSWORD, 1000, 1000);
        db
    })
}

/// Takes fields off the fuzzer's bytes, then zeros once they run out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn byte(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u32(&mut self) -> u32 {
        let mut b = [0; 4];
        let got = self.bytes(4);
        b[..got.len()].copy_from_slice(got);
        u32::from_le_bytes(b)
    }
    /// A field whose length is the next byte.
    fn field(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte());
        self.bytes(n)
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// An AUTHENTICATE_MESSAGE with Version and MIC and the payload fields in order.
fn authenticate(flags: u32, mic: &[u8], fields: [&[u8]; 6]) -> Vec<u8> {
    const HEADER: usize = 88;
    let mut m = ntlm::SIGNATURE.to_vec();
    m.extend_from_slice(&3u32.to_le_bytes());
    let mut payload = Vec::new();
    for f in fields {
        let len = f.len() as u16;
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&((HEADER + payload.len()) as u32).to_le_bytes());
        payload.extend_from_slice(f);
    }
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&[10, 0, 0x7c, 0x4f, 0, 0, 0, 15]);
    let mut mic16 = [0u8; 16];
    mic16[..mic.len().min(16)].copy_from_slice(&mic[..mic.len().min(16)]);
    m.extend_from_slice(&mic16);
    m.extend_from_slice(&payload);
    m
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let choice = input.byte();
    let flags = input.u32();
    let unicode = flags & ntlm::flags::UNICODE != 0;
    let user = ["user", "USER", "User", "nobody"][usize::from(choice & 3)];
    // OEM strings are read as Latin-1: keep those to ASCII so they read back.
    let raw_domain = input.field();
    let domain = if unicode {
        String::from_utf8_lossy(raw_domain).into_owned()
    } else {
        raw_domain.iter().map(|&b| char::from(b & 0x7f)).collect()
    };
    let workstation = input.field();
    // The NTLMv2 blob: its 28-byte header, then AV pairs, well formed with
    // MsvAvFlags when asked, raw otherwise.
    let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
    blob.extend_from_slice(&[0; 8]);
    blob.extend_from_slice(&[0xaa; 8]);
    blob.extend_from_slice(&[0; 4]);
    let av_flags = input.u32();
    if choice & 4 != 0 {
        blob.extend_from_slice(&[6, 0, 4, 0]);
        blob.extend_from_slice(&av_flags.to_le_bytes());
        blob.extend_from_slice(&[0, 0, 0, 0]);
    }
    blob.extend_from_slice(input.field());
    let owf = ntlm::ntowfv2(&smb_front::auth::users::nt_hash(PASSWORD), user, &domain);
    let mut proof = ntlm::nt_proof_str(&owf, &CHALLENGE, &blob);
    let wrong = choice & 8 != 0;
    if wrong {
        proof[usize::from(input.byte() & 15)] ^= 1 << (input.byte() & 7);
    }
    let mut nt_response = proof.to_vec();
    nt_response.extend_from_slice(&blob);
    let session_key = input.field();
    let mic = input.bytes(16);
    let lm = input.field();
    let enc = |s: &str| if unicode { utf16(s) } else { s.as_bytes().to_vec() };
    let msg = authenticate(
        flags,
        mic,
        [
            lm,
            &nt_response,
            &enc(&domain),
            &enc(user),
            workstation,
            session_key,
        ],
    );

    let mut server = NtlmServer::new(
        ServerNames::standalone("weir1.example.com", "WORKGROUP"),
        CHALLENGE,
        0x01dc_0000_0000_0000,
    );
    let mut negotiate = ntlm::SIGNATURE.to_vec();
    negotiate.extend_from_slice(&1u32.to_le_bytes());
    negotiate.extend_from_slice(&input.u32().to_le_bytes());
    server.challenge(&negotiate).expect("a NEGOTIATE message");
    match server.authenticate(&msg, users()) {
        Ok(NtlmOutcome::User { mut security, .. }) => {
            assert!(!wrong && user != "nobody", "accepted a wrong proof");
            let rest = input.bytes(usize::MAX);
            let sig = security.sign(rest);
            let _ = security.verify(rest, &sig);
        }
        Ok(NtlmOutcome::Anonymous) => panic!("an NTLMv2 response taken as anonymous"),
        Err(AuthFailure::WrongPassword(_)) => assert!(wrong, "refused the right proof"),
        Err(AuthFailure::UnknownUser(_)) => assert_eq!(user, "nobody"),
        Err(AuthFailure::Malformed(_) | AuthFailure::MicMissing | AuthFailure::BadMic) => {}
        Err(e) => panic!("unexpected refusal: {e}"),
    }
});
