//! Signing and verifying one SMB2 message (MS-SMB2 3.1.4.1, 3.1.5.1).
//!
//! A message here is one PDU: the 64-byte SMB2 header and its body (for a
//! compound, each element with its padding, as NextCommand delimits it).
//! The signature is computed with the 16-byte Signature field zeroed.

use aes::Aes128;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{AesGcm, KeyInit as _, Nonce};
use cmac::Cmac;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::SigningAlgorithm;

/// Length of the SMB2 sync/async header.
pub const HEADER_LEN: usize = 64;
/// Offset and length of the Signature field in the header.
pub const SIGNATURE_OFFSET: usize = 48;
pub const SIGNATURE_LEN: usize = 16;
/// SMB2_FLAGS_SERVER_TO_REDIR.
pub const FLAG_RESPONSE: u32 = 0x0000_0001;
/// SMB2_FLAGS_SIGNED.
pub const FLAG_SIGNED: u32 = 0x0000_0008;
/// SMB2 CANCEL command code.
pub const COMMAND_CANCEL: u16 = 0x000C;

const PROTOCOL_ID: [u8; 4] = [0xFE, b'S', b'M', b'B'];

/// Why a message could not be signed or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignError {
    /// Shorter than an SMB2 header, or not an SMB2 header.
    Malformed,
    /// The SIGNED flag is not set.
    NotSigned,
    /// The signature does not match.
    BadSignature,
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "not an SMB2 message",
            Self::NotSigned => "message is not signed",
            Self::BadSignature => "bad signature",
        })
    }
}

impl std::error::Error for SignError {}

fn check_header(msg: &[u8]) -> Result<(), SignError> {
    if msg.len() < HEADER_LEN || msg[..4] != PROTOCOL_ID {
        return Err(SignError::Malformed);
    }
    Ok(())
}

fn flags(msg: &[u8]) -> u32 {
    u32::from_le_bytes([msg[16], msg[17], msg[18], msg[19]])
}

/// The AES-GMAC nonce (MS-SMB2 3.1.4.1): MessageId, then a 32-bit word whose
/// bit 0 marks a server-to-client message and bit 1 a CANCEL request.
fn gmac_nonce(msg: &[u8]) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&msg[24..32]);
    let command = u16::from_le_bytes([msg[12], msg[13]]);
    let mut info = 0u32;
    if flags(msg) & FLAG_RESPONSE != 0 {
        info |= 1;
    }
    if command == COMMAND_CANCEL {
        info |= 2;
    }
    nonce[8..].copy_from_slice(&info.to_le_bytes());
    nonce
}

/// Computes the signature of `msg` as if its Signature field were zero.
fn compute(algo: SigningAlgorithm, key: &[u8; 16], msg: &[u8]) -> [u8; 16] {
    let (head, rest) = msg.split_at(SIGNATURE_OFFSET);
    let tail = &rest[SIGNATURE_LEN..];
    let mut out = [0u8; 16];
    match algo {
        SigningAlgorithm::HmacSha256 => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(head);
            mac.update(&[0; SIGNATURE_LEN]);
            mac.update(tail);
            out.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        }
        SigningAlgorithm::AesCmac => {
            let mut mac = <Cmac<Aes128> as Mac>::new_from_slice(key).expect("16-byte key");
            mac.update(head);
            mac.update(&[0; SIGNATURE_LEN]);
            mac.update(tail);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        SigningAlgorithm::AesGmac => {
            // GMAC is GCM over an empty plaintext with the message as AAD.
            let mut aad = msg.to_vec();
            aad[SIGNATURE_OFFSET..HEADER_LEN].fill(0);
            let gcm = AesGcm::<Aes128, aes_gcm::aead::consts::U12>::new(key.into());
            let nonce = gmac_nonce(msg);
            let tag = gcm
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut [])
                .expect("empty plaintext is within GCM limits");
            out.copy_from_slice(&tag);
        }
    }
    out
}

/// Sets the SIGNED flag of `msg` and writes its signature.
pub fn sign(algo: SigningAlgorithm, key: &[u8; 16], msg: &mut [u8]) -> Result<(), SignError> {
    check_header(msg)?;
    let f = flags(msg) | FLAG_SIGNED;
    msg[16..20].copy_from_slice(&f.to_le_bytes());
    let sig = compute(algo, key, msg);
    msg[SIGNATURE_OFFSET..HEADER_LEN].copy_from_slice(&sig);
    Ok(())
}

/// Checks the signature of a message whose SIGNED flag is set, in constant
/// time.
pub fn verify(algo: SigningAlgorithm, key: &[u8; 16], msg: &[u8]) -> Result<(), SignError> {
    check_header(msg)?;
    if flags(msg) & FLAG_SIGNED == 0 {
        return Err(SignError::NotSigned);
    }
    let expected = compute(algo, key, msg);
    if bool::from(expected.ct_eq(&msg[SIGNATURE_OFFSET..HEADER_LEN])) {
        Ok(())
    } else {
        Err(SignError::BadSignature)
    }
}
