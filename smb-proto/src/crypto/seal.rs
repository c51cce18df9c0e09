//! SMB 3.x encryption: the SMB2 TRANSFORM_HEADER and AES-CCM/GCM sealing
//! (MS-SMB2 2.2.41, 3.1.4.3, 3.3.4.1.4, 3.3.5.2.1.1).
//!
//! Layout of the 52-byte header: ProtocolId 0xFD 'S' 'M' 'B' (4),
//! Signature (16), Nonce (16; 11 bytes used by CCM, 12 by GCM, rest zero),
//! OriginalMessageSize (4), Reserved (2), Flags/EncryptionAlgorithm (2) = 1,
//! SessionId (8). The additional authenticated data is the header from the
//! Nonce to its end (32 bytes); the Signature is the AEAD tag.

use aes::{Aes128, Aes256};
use aes_gcm::aead::consts::{U11, U12, U16};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadCore, AeadInPlace, KeyInit};
use aes_gcm::AesGcm;
use ccm::Ccm;
use rand::RngCore;

use super::kdf::CipherKey;
use super::Cipher;

/// Length of the TRANSFORM_HEADER.
pub const TRANSFORM_HEADER_LEN: usize = 52;
/// Its ProtocolId.
pub const TRANSFORM_PROTOCOL_ID: [u8; 4] = [0xFD, b'S', b'M', b'B'];
/// Flags (3.1.1) / EncryptionAlgorithm (3.0, 3.0.2): always 1 = encrypted.
pub const TRANSFORM_FLAG_ENCRYPTED: u16 = 0x0001;
const AAD_OFFSET: usize = 20;

/// Why a message could not be sealed or unsealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// Shorter than a transform header, or the sizes in it do not match.
    Truncated,
    /// Not a TRANSFORM_HEADER (ProtocolId or Flags).
    Malformed,
    /// The header names another session than the one whose key was given.
    WrongSession,
    /// The key's length does not fit the cipher.
    BadKey,
    /// The authentication tag does not verify.
    BadTag,
    /// The message is too large for the header's 32-bit size field.
    TooLarge,
    /// The session used up its nonces; it must be re-established.
    NoncesExhausted,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Truncated => "truncated transform message",
            Self::Malformed => "not an SMB2 transform header",
            Self::WrongSession => "transform header names another session",
            Self::BadKey => "key length does not fit the cipher",
            Self::BadTag => "message authentication failed",
            Self::TooLarge => "message too large to seal",
            Self::NoncesExhausted => "session nonces exhausted",
        })
    }
}

impl std::error::Error for SealError {}

/// A decoded TRANSFORM_HEADER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformHeader {
    pub signature: [u8; 16],
    pub nonce: [u8; 16],
    pub original_message_size: u32,
    pub flags: u16,
    pub session_id: u64,
}

impl TransformHeader {
    /// Decodes the first 52 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, SealError> {
        let h: &[u8; TRANSFORM_HEADER_LEN] = buf
            .get(..TRANSFORM_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(SealError::Truncated)?;
        if h[..4] != TRANSFORM_PROTOCOL_ID {
            return Err(SealError::Malformed);
        }
        let mut signature = [0; 16];
        signature.copy_from_slice(&h[4..20]);
        let mut nonce = [0; 16];
        nonce.copy_from_slice(&h[20..36]);
        Ok(Self {
            signature,
            nonce,
            original_message_size: u32::from_le_bytes([h[36], h[37], h[38], h[39]]),
            flags: u16::from_le_bytes([h[42], h[43]]),
            session_id: u64::from_le_bytes([h[44], h[45], h[46], h[47], h[48], h[49], h[50], h[51]]),
        })
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; TRANSFORM_HEADER_LEN] {
        let mut h = [0u8; TRANSFORM_HEADER_LEN];
        h[..4].copy_from_slice(&TRANSFORM_PROTOCOL_ID);
        h[4..20].copy_from_slice(&self.signature);
        h[20..36].copy_from_slice(&self.nonce);
        h[36..40].copy_from_slice(&self.original_message_size.to_le_bytes());
        h[42..44].copy_from_slice(&self.flags.to_le_bytes());
        h[44..52].copy_from_slice(&self.session_id.to_le_bytes());
        h
    }
}

/// Hands out the nonces of one session's encryption key.
///
/// A nonce is a 64-bit counter (little-endian) followed by random bits drawn
/// once per source, so no nonce repeats under one key while the source is
/// kept for the session's life (and shared by all its channels, which use
/// the same key).
#[derive(Debug)]
pub struct NonceSource {
    next: u64,
    salt: [u8; 4],
}

impl Default for NonceSource {
    fn default() -> Self {
        Self::new()
    }
}

impl NonceSource {
    /// A source with fresh random bits.
    pub fn new() -> Self {
        let mut salt = [0; 4];
        rand::rng().fill_bytes(&mut salt);
        Self::with_salt(salt)
    }

    /// A source with the given random bits (for tests and replays).
    pub fn with_salt(salt: [u8; 4]) -> Self {
        Self { next: 0, salt }
    }

    /// The next 16-byte Nonce field for `cipher`, unused bytes zero.
    pub fn next(&mut self, cipher: Cipher) -> Result<[u8; 16], SealError> {
        let n = self.next;
        self.next = n.checked_add(1).ok_or(SealError::NoncesExhausted)?;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        nonce[8..12].copy_from_slice(&self.salt);
        nonce[cipher.nonce_len()..].fill(0);
        Ok(nonce)
    }
}

fn aead_in_place<A: AeadInPlace + AeadCore<TagSize = U16> + KeyInit>(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &mut [u8; 16],
    encrypt: bool,
) -> Result<(), SealError> {
    let a = A::new_from_slice(key).map_err(|_| SealError::BadKey)?;
    let nonce = aes_gcm::aead::Nonce::<A>::from_slice(nonce);
    if encrypt {
        let t = a
            .encrypt_in_place_detached(nonce, aad, buf)
            .map_err(|_| SealError::TooLarge)?;
        tag.copy_from_slice(&t);
        Ok(())
    } else {
        a.decrypt_in_place_detached(nonce, aad, buf, GenericArray::from_slice(tag))
            .map_err(|_| SealError::BadTag)
    }
}

fn run(
    cipher: Cipher,
    key: &CipherKey,
    nonce: &[u8; 16],
    aad: &[u8],
    buf: &mut [u8],
    tag: &mut [u8; 16],
    encrypt: bool,
) -> Result<(), SealError> {
    if key.as_bytes().len() != cipher.key_len() {
        return Err(SealError::BadKey);
    }
    let k = key.as_bytes();
    let n = &nonce[..cipher.nonce_len()];
    match cipher {
        Cipher::Aes128Ccm => aead_in_place::<Ccm<Aes128, U16, U11>>(k, n, aad, buf, tag, encrypt),
        Cipher::Aes256Ccm => aead_in_place::<Ccm<Aes256, U16, U11>>(k, n, aad, buf, tag, encrypt),
        Cipher::Aes128Gcm => aead_in_place::<AesGcm<Aes128, U12>>(k, n, aad, buf, tag, encrypt),
        Cipher::Aes256Gcm => aead_in_place::<AesGcm<Aes256, U12>>(k, n, aad, buf, tag, encrypt),
    }
}

/// Seals `msg` (one SMB2 message or a whole compound) with an explicit
/// nonce field: the transform header followed by the ciphertext.
pub fn encrypt_with_nonce(
    cipher: Cipher,
    key: &CipherKey,
    nonce: [u8; 16],
    session_id: u64,
    msg: &[u8],
) -> Result<Vec<u8>, SealError> {
    let size = u32::try_from(msg.len()).map_err(|_| SealError::TooLarge)?;
    let mut header = TransformHeader {
        signature: [0; 16],
        nonce,
        original_message_size: size,
        flags: TRANSFORM_FLAG_ENCRYPTED,
        session_id,
    };
    let mut out = Vec::with_capacity(TRANSFORM_HEADER_LEN + msg.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(msg);
    let (head, body) = out.split_at_mut(TRANSFORM_HEADER_LEN);
    run(
        cipher,
        key,
        &nonce,
        &head[AAD_OFFSET..],
        body,
        &mut header.signature,
        true,
    )?;
    head[4..20].copy_from_slice(&header.signature);
    Ok(out)
}

/// Seals `msg` for the client (server → client), taking the next nonce.
pub fn encrypt(
    cipher: Cipher,
    key: &CipherKey,
    nonces: &mut NonceSource,
    session_id: u64,
    msg: &[u8],
) -> Result<Vec<u8>, SealError> {
    let nonce = nonces.next(cipher)?;
    encrypt_with_nonce(cipher, key, nonce, session_id, msg)
}

/// Checks and opens a sealed message from the client: `buf` is the
/// transform header and exactly OriginalMessageSize bytes of ciphertext.
/// Returns the plaintext SMB2 message(s).
pub fn decrypt(cipher: Cipher, key: &CipherKey, session_id: u64, buf: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut header = TransformHeader::parse(buf)?;
    if header.flags != TRANSFORM_FLAG_ENCRYPTED {
        return Err(SealError::Malformed);
    }
    if header.session_id != session_id {
        return Err(SealError::WrongSession);
    }
    let body = &buf[TRANSFORM_HEADER_LEN..];
    if usize::try_from(header.original_message_size).ok() != Some(body.len()) || body.is_empty() {
        return Err(SealError::Truncated);
    }
    let mut plain = body.to_vec();
    run(
        cipher,
        key,
        &header.nonce,
        &buf[AAD_OFFSET..TRANSFORM_HEADER_LEN],
        &mut plain,
        &mut header.signature,
        false,
    )?;
    Ok(plain)
}
