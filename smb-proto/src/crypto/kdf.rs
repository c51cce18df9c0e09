//! SP800-108 counter-mode KDF with HMAC-SHA256 (MS-SMB2 3.1.4.2) and the
//! per-session key set of MS-SMB2 3.3.5.5.3.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Cipher, Dialect};

type HmacSha256 = Hmac<Sha256>;

/// Derives `out.len()` bytes (16 or 32: L = 128 or 256) from `key` with
/// SP800-108 section 5.1: r = 32, PRF = HMAC-SHA256,
/// input = i (BE32) ‖ label ‖ 0x00 ‖ context ‖ L (BE32).
///
/// `label` and `context` are passed as MS-SMB2 writes them, with their own
/// trailing NUL; the 0x00 separator is added here.
pub fn kdf(key: &[u8], label: &[u8], context: &[u8], out: &mut [u8]) {
    let bits = (out.len() as u32).wrapping_mul(8);
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&(i as u32 + 1).to_be_bytes());
        mac.update(label);
        mac.update(&[0]);
        mac.update(context);
        mac.update(&bits.to_be_bytes());
        let block = mac.finalize().into_bytes();
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// 16-byte KDF output (L = 128).
pub fn kdf128(key: &[u8], label: &[u8], context: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    kdf(key, label, context, &mut out);
    out
}

/// A cipher key: 16 bytes for AES-128, 32 for AES-256.
#[derive(Clone, PartialEq, Eq)]
pub struct CipherKey {
    bytes: [u8; 32],
    len: usize,
}

impl CipherKey {
    /// A key from raw bytes; `None` unless 16 or 32 bytes long.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 16 && bytes.len() != 32 {
            return None;
        }
        let mut k = [0; 32];
        k[..bytes.len()].copy_from_slice(bytes);
        Some(Self {
            bytes: k,
            len: bytes.len(),
        })
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Debug for CipherKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CipherKey({} bytes)", self.len)
    }
}

/// The keys of one authenticated session, seen from the server.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Signs and verifies messages (for 2.x: the session key itself).
    pub signing: [u8; 16],
    /// Server → client sealing; `None` before SMB 3.0.
    pub encryption: Option<CipherKey>,
    /// Client → server unsealing; `None` before SMB 3.0.
    pub decryption: Option<CipherKey>,
    /// Handed to applications above SMB (e.g. RPC over named pipes).
    pub application: [u8; 16],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys").finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Derives a session's keys (MS-SMB2 3.3.5.5.3).
    ///
    /// `full_session_key` is the key the authentication mechanism produced
    /// (16 bytes for NTLM, possibly 32 for Kerberos). Session.SessionKey is
    /// its first 16 bytes, zero-padded; it keys signing, the application key
    /// and AES-128 sealing. With an AES-256 cipher the sealing keys are
    /// derived from the full key instead, with L = 256. `cipher` is ignored
    /// before 3.1.1 (3.0/3.0.2 only know AES-128-CCM/GCM, both 128-bit).
    /// `preauth_hash` is the session's pre-auth integrity hash (3.1.1 only).
    pub fn derive(
        dialect: Dialect,
        cipher: Option<Cipher>,
        full_session_key: &[u8],
        preauth_hash: &[u8; 64],
    ) -> Self {
        let mut session_key = [0u8; 16];
        let n = full_session_key.len().min(16);
        session_key[..n].copy_from_slice(&full_session_key[..n]);
        match dialect {
            Dialect::Smb202 | Dialect::Smb210 => Self {
                signing: session_key,
                encryption: None,
                decryption: None,
                application: session_key,
            },
            Dialect::Smb300 | Dialect::Smb302 => {
                let enc = kdf128(&session_key, b"SMB2AESCCM\0", b"ServerOut\0");
                let dec = kdf128(&session_key, b"SMB2AESCCM\0", b"ServerIn \0");
                Self {
                    signing: kdf128(&session_key, b"SMB2AESCMAC\0", b"SmbSign\0"),
                    encryption: CipherKey::new(&enc),
                    decryption: CipherKey::new(&dec),
                    application: kdf128(&session_key, b"SMB2APP\0", b"SmbRpc\0"),
                }
            }
            Dialect::Smb311 => {
                let wide = matches!(cipher, Some(Cipher::Aes256Ccm | Cipher::Aes256Gcm));
                let (cipher_kdk, len): (&[u8], usize) = if wide {
                    (full_session_key, 32)
                } else {
                    (&session_key, 16)
                };
                let mut enc = [0u8; 32];
                let mut dec = [0u8; 32];
                kdf(cipher_kdk, b"SMBS2CCipherKey\0", preauth_hash, &mut enc[..len]);
                kdf(cipher_kdk, b"SMBC2SCipherKey\0", preauth_hash, &mut dec[..len]);
                Self {
                    signing: kdf128(&session_key, b"SMBSigningKey\0", preauth_hash),
                    encryption: CipherKey::new(&enc[..len]),
                    decryption: CipherKey::new(&dec[..len]),
                    application: kdf128(&session_key, b"SMBAppKey\0", preauth_hash),
                }
            }
        }
    }
}
