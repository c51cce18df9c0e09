//! SMB2/3 packet crypto (MS-SMB2 3.1.4): key derivation, signing, sealing
//! (the TRANSFORM_HEADER) and the SMB 3.1.1 pre-auth integrity hash.
//!
//! Everything here works on byte slices handed in by the caller; no
//! function keeps connection state except the explicit [`seal::NonceSource`]
//! and [`preauth::PreauthHash`] values the caller owns.

pub mod kdf;
pub mod preauth;
pub mod seal;
pub mod sign;

/// The SMB2 dialects the crypto distinguishes (MS-SMB2 2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dialect {
    Smb202,
    Smb210,
    Smb300,
    Smb302,
    Smb311,
}

impl Dialect {
    /// The dialect for its wire revision number, if it is one we know.
    pub fn from_revision(rev: u16) -> Option<Self> {
        Some(match rev {
            0x0202 => Self::Smb202,
            0x0210 => Self::Smb210,
            0x0300 => Self::Smb300,
            0x0302 => Self::Smb302,
            0x0311 => Self::Smb311,
            _ => return None,
        })
    }

    /// The wire revision number.
    pub fn revision(self) -> u16 {
        match self {
            Self::Smb202 => 0x0202,
            Self::Smb210 => 0x0210,
            Self::Smb300 => 0x0300,
            Self::Smb302 => 0x0302,
            Self::Smb311 => 0x0311,
        }
    }

    /// Whether the dialect belongs to the SMB 3.x family (KDF-derived keys).
    pub fn is_smb3(self) -> bool {
        self >= Self::Smb300
    }
}

/// The encryption algorithms of SMB2_ENCRYPTION_CAPABILITIES (MS-SMB2 2.2.3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    Aes128Ccm,
    Aes128Gcm,
    Aes256Ccm,
    Aes256Gcm,
}

impl Cipher {
    /// The cipher for its wire id, if it is one we know.
    pub fn from_id(id: u16) -> Option<Self> {
        Some(match id {
            1 => Self::Aes128Ccm,
            2 => Self::Aes128Gcm,
            3 => Self::Aes256Ccm,
            4 => Self::Aes256Gcm,
            _ => return None,
        })
    }

    /// The wire id.
    pub fn id(self) -> u16 {
        match self {
            Self::Aes128Ccm => 1,
            Self::Aes128Gcm => 2,
            Self::Aes256Ccm => 3,
            Self::Aes256Gcm => 4,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Ccm | Self::Aes128Gcm => 16,
            Self::Aes256Ccm | Self::Aes256Gcm => 32,
        }
    }

    /// Nonce bytes actually used out of the 16-byte Nonce field.
    pub fn nonce_len(self) -> usize {
        match self {
            Self::Aes128Ccm | Self::Aes256Ccm => 11,
            Self::Aes128Gcm | Self::Aes256Gcm => 12,
        }
    }
}

/// The signing algorithms (MS-SMB2 2.2.3.1.7; HMAC-SHA256 is implied for 2.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    HmacSha256,
    AesCmac,
    AesGmac,
}

impl SigningAlgorithm {
    /// The algorithm for its SIGNING_CAPABILITIES id, if known.
    pub fn from_id(id: u16) -> Option<Self> {
        Some(match id {
            0 => Self::HmacSha256,
            1 => Self::AesCmac,
            2 => Self::AesGmac,
            _ => return None,
        })
    }

    /// The SIGNING_CAPABILITIES id.
    pub fn id(self) -> u16 {
        match self {
            Self::HmacSha256 => 0,
            Self::AesCmac => 1,
            Self::AesGmac => 2,
        }
    }

    /// The algorithm a dialect uses when SIGNING_CAPABILITIES did not pick one.
    pub fn default_for(dialect: Dialect) -> Self {
        if dialect.is_smb3() {
            Self::AesCmac
        } else {
            Self::HmacSha256
        }
    }
}
