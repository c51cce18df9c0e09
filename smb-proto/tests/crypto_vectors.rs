//! Known-answer tests for smb-proto's crypto. The golden values come from
//! smbprotocol (an independent SMB client) through
//! `tests/vectors/smbprotocol_golden.py`; K300_SIGN is also the SMB 3.0
//! signing key of Microsoft's published key-derivation example (session key
//! 7CD451825D0450D235424E44BA6E78CC).

use smb_proto::crypto::kdf::{CipherKey, SessionKeys};
use smb_proto::crypto::preauth::PreauthHash;
use smb_proto::crypto::seal::{self, SealError, TransformHeader};
use smb_proto::crypto::sign::{self, SignError};
use smb_proto::crypto::{Cipher, Dialect, SigningAlgorithm};

const PREAUTH_CONN: &str = "dc8231cb8a10470f77862a1b6f5821ff273b0adbe2c48b10402cab29bbf551099e9dc2be59518777025d729af4828539a87f6f9f91f04536696b2d142e86c822";
const PREAUTH_SESSION: &str = "9ab247937c14d1aecbbc2cc2e7a8a346b1894170e90002f8af72e96092b825ac37e7227c6e01d29f3d35e3d877a74b6ec9ed9362b0543ac1baa8a1655948e9dd";
const K300_SIGN: &str = "0b7e9c5cac36c0f6ea9ab275298cedce";
const K300_APP: &str = "bb23a4575aa26c721af525af15a87b4f";
const K300_C2S: &str = "fad27796665b313ebb578f388632b4f7";
const K300_S2C: &str = "b0f0427f7ceb416d1d9dcc0cd4f99447";
const K311_SIGN: &str = "822bc7f2fe18d38225e45c2f68579be4";
const K311_APP: &str = "ff116ec2b61b3a4ea4713d97d4d78a9d";
const K311_C2S: &str = "5358bce5b56bffea0292ab442a2e0ab6";
const K311_S2C: &str = "f4962876004c8e698f08f3a2ef7a1dd8";
const K311_256_C2S: &str = "1d0d92354dfef498faa0412875731063368c3ccccc1d25edf752f9358726b25d";
const K311_256_S2C: &str = "23f12353be6ac8b64bf571fb5b0abb15a53f17915856b6852a037c55d9f5e9cf";
const MSG_HMAC: &str = "fe534d4240000000000000000800010009000000000000000500000000000000000000000700000011000000001000000000000000000000000000000000000009000000480000007369676e656420626f6479206279746573";
const SIG_HMAC: &str = "fb5fd55c7035e3aec1ec8c771651d24e";
const MSG_CMAC: &str = "fe534d4240000000000000000800010008000000000000000600000000000000000000000700000011000000001000000000000000000000000000000000000009000000480000007369676e656420626f6479206279746573";
const SIG_CMAC: &str = "5519d28c2dd73751effcb404bbdd08b5";
const MSG_GMAC_REQ: &str = "fe534d4240000000000000000800010008000000000000000700000000000000000000000700000011000000001000000000000000000000000000000000000009000000480000007369676e656420626f6479206279746573";
const SIG_GMAC_REQ: &str = "2beb2c849fb515b506d79e600d0e3cd7";
const MSG_GMAC_RESP: &str = "fe534d4240000000000000000800010009000000000000000700000000000000000000000700000011000000001000000000000000000000000000000000000009000000480000007369676e656420626f6479206279746573";
const SIG_GMAC_RESP: &str = "528dbab886a943713cd63a5182191fbe";
const MSG_GMAC_CANCEL: &str = "fe534d4240000000000000000c00010008000000000000000800000000000000000000000700000011000000001000000000000000000000000000000000000009000000480000007369676e656420626f6479206279746573";
const SIG_GMAC_CANCEL: &str = "953cb9d937868e45370bbd0bfdc2db23";
const SEAL_PLAIN: &str = "fe534d424000000000000000080001000100000000000000090000000000000000000000070000001100000000100000000000000000000000000000000000007365616c6564207061796c6f61642c206c6f6e676572207468616e206f6e652041455320626c6f636b2e";
const SEALED_CCM128: &str = "fd534d42542cb0a03c59eaea42bbbc3ffcfd9166a1a2a3a4a5a6a7a8a9aaab00000000006a000000000001001100000000100000b1390b6d3ebd52b42449db123550bf3339f2316df29f81862764cf428873726227ea01531b09542aef4145495f6bfefeba0bcdc637984054798f9bc188a10144de6068ff6df63fd1b2b49249c0348e13b9ae966e91e0832f9a47484efb25d11f3e5ce1c88c9abf9f2947";
const SEALED_GCM128: &str = "fd534d42aee538f30d09a56752b3f901cb98f6e6a1a2a3a4a5a6a7a8a9aaabac000000006a000000000001001100000000100000a0fa98eedc3f8e28b20e6caf9c6b1fb13e01755f5ca207f5166d387908b2f80d0a8d65fd1e4b8f1f4a31ac4d4777314281d9c5585c1a9d90321713d576627160693ecdca3ca5d61d4e449fa229f7d9c619e30e22db709cf27322447da15356cb3808bdad147bc52baede";
const SEALED_CCM256: &str = "fd534d42f7b1f490df037e1ec51fdf39f2cc3ccca1a2a3a4a5a6a7a8a9aaab00000000006a000000000001001100000000100000e7012b42b4bee2185f673bb397d8e53f61b9760acdf21ff1b6b2facf4ce576be53c9660f49c72cf5efdf8c5791bbf85432d51e9ea4a06a746b7ed4ec70d6d6cc9f65623cbe3956f939ffb3b1d6c919fdaea3be0613e547679f025de452f6410cb4b4e55a64c1e2fcdfcd";
const SEALED_GCM256: &str = "fd534d42e8268aa0b9917f293aaeca4b9eb81f41a1a2a3a4a5a6a7a8a9aaabac000000006a000000000001001100000000100000d8bcca2db4553e6f8e7eb2705cc2cd7363972a2f77455487eb9f3750641867d61384a6fbe47148efc373f7f7df7754f1b43082af686beae8379e4574e236794d8040102862c9172aaebda70d8ef62698be794fb041ab6fe874cc9ba18ba1656a74c248128c441206bec8";

const SESSION_KEY: &str = "7cd451825d0450d235424e44ba6e78cc";
const FULL_KEY_32: &str = "7cd451825d0450d235424e44ba6e78cc0123456789abcdeffedcba9876543210";
const SESSION_ID: u64 = 0x0000_1000_0000_0011;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn h16(s: &str) -> [u8; 16] {
    h(s).try_into().unwrap()
}

fn session_preauth() -> PreauthHash {
    let mut conn = PreauthHash::new();
    conn.update(&(0u8..120).collect::<Vec<_>>());
    conn.update(&(100u8..250).collect::<Vec<_>>());
    assert_eq!(hex::encode(conn.value()), PREAUTH_CONN);
    let mut session = conn.fork();
    session.update(&[0x11; 90]);
    session.update(&[0x22; 200]);
    session.update(&[0x33; 300]);
    // The connection's value is untouched by the session's messages.
    assert_eq!(hex::encode(conn.value()), PREAUTH_CONN);
    session
}

#[test]
fn preauth_chain_matches_smbprotocol() {
    assert_eq!(hex::encode(session_preauth().value()), PREAUTH_SESSION);
}

#[test]
fn smb2_keys_are_the_session_key() {
    let keys = SessionKeys::derive(Dialect::Smb210, None, &h(SESSION_KEY), &[0; 64]);
    assert_eq!(keys.signing, h16(SESSION_KEY));
    assert!(keys.encryption.is_none() && keys.decryption.is_none());
}

#[test]
fn smb30_keys_match_smbprotocol() {
    for dialect in [Dialect::Smb300, Dialect::Smb302] {
        let keys = SessionKeys::derive(dialect, None, &h(SESSION_KEY), &[0; 64]);
        assert_eq!(hex::encode(keys.signing), K300_SIGN);
        assert_eq!(hex::encode(keys.application), K300_APP);
        // The server decrypts what the client encrypted ("ServerIn ") and
        // encrypts with "ServerOut".
        assert_eq!(hex::encode(keys.decryption.unwrap().as_bytes()), K300_C2S);
        assert_eq!(hex::encode(keys.encryption.unwrap().as_bytes()), K300_S2C);
    }
}

#[test]
fn smb311_keys_match_smbprotocol() {
    let pre = session_preauth();
    // AES-256 sealing keys come from the full session key with L = 256;
    // signing and application keys always from its first 16 bytes.
    let cases = [
        (Cipher::Aes128Ccm, SESSION_KEY, K311_C2S, K311_S2C),
        (Cipher::Aes128Gcm, SESSION_KEY, K311_C2S, K311_S2C),
        (Cipher::Aes256Ccm, FULL_KEY_32, K311_256_C2S, K311_256_S2C),
        (Cipher::Aes256Gcm, FULL_KEY_32, K311_256_C2S, K311_256_S2C),
    ];
    for (cipher, key, c2s, s2c) in cases {
        let keys = SessionKeys::derive(Dialect::Smb311, Some(cipher), &h(key), pre.value());
        assert_eq!(hex::encode(keys.signing), K311_SIGN);
        assert_eq!(hex::encode(keys.application), K311_APP);
        assert_eq!(hex::encode(keys.decryption.unwrap().as_bytes()), c2s);
        assert_eq!(hex::encode(keys.encryption.unwrap().as_bytes()), s2c);
    }
}

#[test]
fn signatures_match_smbprotocol() {
    let key = h16("000102030405060708090a0b0c0d0e0f");
    let cases = [
        (SigningAlgorithm::HmacSha256, MSG_HMAC, SIG_HMAC),
        (SigningAlgorithm::AesCmac, MSG_CMAC, SIG_CMAC),
        (SigningAlgorithm::AesGmac, MSG_GMAC_REQ, SIG_GMAC_REQ),
        (SigningAlgorithm::AesGmac, MSG_GMAC_RESP, SIG_GMAC_RESP),
        (SigningAlgorithm::AesGmac, MSG_GMAC_CANCEL, SIG_GMAC_CANCEL),
    ];
    for (algo, msg, sig) in cases {
        let mut m = h(msg);
        sign::sign(algo, &key, &mut m).unwrap();
        assert_eq!(hex::encode(&m[48..64]), sig, "{algo:?}");
        sign::verify(algo, &key, &m).unwrap();
        // Any flipped bit, in the header or the body, fails verification.
        for i in [0x0c, 0x18, 0x30, 0x3f, m.len() - 1] {
            let mut bad = m.clone();
            bad[i] ^= 0x01;
            assert!(sign::verify(algo, &key, &bad).is_err(), "{algo:?} byte {i}");
        }
        let mut other_key = key;
        other_key[0] ^= 1;
        assert_eq!(sign::verify(algo, &other_key, &m), Err(SignError::BadSignature));
    }
}

#[test]
fn sealing_matches_smbprotocol() {
    let plain = h(SEAL_PLAIN);
    let nonce = h16("a1a2a3a4a5a6a7a8a9aaabacadaeafb0");
    let key128 = CipherKey::new(&h("00112233445566778899aabbccddeeff")).unwrap();
    let key256 = CipherKey::new(&(0u8..32).collect::<Vec<_>>()).unwrap();
    let cases = [
        (Cipher::Aes128Ccm, &key128, SEALED_CCM128),
        (Cipher::Aes128Gcm, &key128, SEALED_GCM128),
        (Cipher::Aes256Ccm, &key256, SEALED_CCM256),
        (Cipher::Aes256Gcm, &key256, SEALED_GCM256),
    ];
    for (cipher, key, golden) in cases {
        // smbprotocol zeroes the unused nonce bytes as we do.
        let mut n = nonce;
        n[cipher.nonce_len()..].fill(0);
        let sealed = seal::encrypt_with_nonce(cipher, key, n, SESSION_ID, &plain).unwrap();
        assert_eq!(hex::encode(&sealed), golden, "{cipher:?}");
        let opened = seal::decrypt(cipher, key, SESSION_ID, &h(golden)).unwrap();
        assert_eq!(opened, plain);
        let hdr = TransformHeader::parse(&sealed).unwrap();
        assert_eq!(hdr.session_id, SESSION_ID);
        assert_eq!(hdr.original_message_size as usize, plain.len());
    }
}

#[test]
fn decrypt_rejects_tampering_and_garbage() {
    let key = CipherKey::new(&[7; 16]).unwrap();
    let plain = h(SEAL_PLAIN);
    for cipher in [Cipher::Aes128Ccm, Cipher::Aes128Gcm] {
        let mut nonces = seal::NonceSource::with_salt([1, 2, 3, 4]);
        let sealed = seal::encrypt(cipher, &key, &mut nonces, SESSION_ID, &plain).unwrap();
        // Every byte of the header from the signature on, and the body, is
        // covered by the tag.
        for i in 4..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(seal::decrypt(cipher, &key, SESSION_ID, &bad).is_err(), "byte {i}");
        }
        assert_eq!(
            seal::decrypt(cipher, &key, SESSION_ID + 1, &sealed),
            Err(SealError::WrongSession)
        );
        for len in 0..sealed.len() {
            assert!(seal::decrypt(cipher, &key, SESSION_ID, &sealed[..len]).is_err());
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(
            seal::decrypt(cipher, &key, SESSION_ID, &longer),
            Err(SealError::Truncated)
        );
        let other = CipherKey::new(&[8; 16]).unwrap();
        assert_eq!(
            seal::decrypt(cipher, &other, SESSION_ID, &sealed),
            Err(SealError::BadTag)
        );
        let wide = CipherKey::new(&[7; 32]).unwrap();
        assert_eq!(
            seal::decrypt(cipher, &wide, SESSION_ID, &sealed),
            Err(SealError::BadKey)
        );
    }
}

#[test]
fn nonces_never_repeat() {
    let mut src = seal::NonceSource::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let n = src.next(Cipher::Aes128Ccm).unwrap();
        assert_eq!(&n[11..], &[0; 5]);
        assert!(seen.insert(n));
    }
    let mut src = seal::NonceSource::with_salt([9; 4]);
    let a = src.next(Cipher::Aes128Gcm).unwrap();
    let b = src.next(Cipher::Aes128Gcm).unwrap();
    assert_ne!(a, b);
    assert_eq!(&a[8..12], &[9; 4]);
    assert_eq!(&a[12..], &[0; 4]);
}

#[test]
fn sign_rejects_non_smb2() {
    let key = [0; 16];
    assert_eq!(
        sign::verify(SigningAlgorithm::AesCmac, &key, &[0xfe, b'S', b'M', b'B']),
        Err(SignError::Malformed)
    );
    let mut unsigned = h(MSG_CMAC);
    unsigned[16] &= !0x08;
    assert_eq!(
        sign::verify(SigningAlgorithm::AesCmac, &key, &unsigned),
        Err(SignError::NotSigned)
    );
    let mut not_smb = h(MSG_CMAC);
    not_smb[0] = 0xff;
    assert_eq!(
        sign::sign(SigningAlgorithm::AesCmac, &key, &mut not_smb),
        Err(SignError::Malformed)
    );
}
