//! The SMB 3.1.1 pre-auth integrity hash (MS-SMB2 3.2.5.2, 3.3.5.4,
//! 3.3.5.5): H(i) = SHA-512(H(i-1) ‖ message), starting from 64 zero bytes.
//!
//! The connection hashes its NEGOTIATE request and response; each session
//! starts from the connection's value and adds its SESSION_SETUP requests
//! and responses, except the final response that carries STATUS_SUCCESS.
//! The session's value is the context of its key derivation.

use sha2::{Digest, Sha512};

/// One running pre-auth integrity hash value.
#[derive(Clone, PartialEq, Eq)]
pub struct PreauthHash([u8; 64]);

impl Default for PreauthHash {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PreauthHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreauthHash(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl PreauthHash {
    /// The initial value: 64 zero bytes.
    pub fn new() -> Self {
        Self([0; 64])
    }

    /// Folds one whole SMB2 message (header included, as sent on the wire
    /// without the transport framing) into the hash.
    pub fn update(&mut self, message: &[u8]) {
        let mut h = Sha512::new();
        h.update(self.0);
        h.update(message);
        self.0.copy_from_slice(&h.finalize());
    }

    /// A session's starting value: a copy of the connection's hash after
    /// NEGOTIATE.
    pub fn fork(&self) -> Self {
        self.clone()
    }

    /// The current value.
    pub fn value(&self) -> &[u8; 64] {
        &self.0
    }
}
