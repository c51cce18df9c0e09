//! Signing, the checks on what arrives signed or sealed, and the pre-auth
//! integrity hash (MS-SMB2 3.3.5.2.4, 3.3.5.2.9, 3.3.5.5.3): plain state
//! over the connection's sessions, no socket.

use smb_proto::crypto::sign;
use smb_proto::header::flags;
use smb_proto::{Command, Header, NtStatus};

use crate::conn::ConnState;
use crate::context::Preauth;

/// Why a request makes the connection go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Sealed with another session's keys than the one it names.
    OtherSession,
    /// Its signature is wrong.
    Signature,
}

impl ConnState {
    /// Sign one message in place with `session`'s key (if it has one).
    pub fn sign(&self, session: u64, msg: &mut [u8]) {
        let Some(neg) = self.neg.as_ref() else { return };
        if let Some(keys) = self.sessions.get(&session).and_then(|s| s.keys.as_ref()) {
            let _ = sign::sign(neg.signing, &keys.signing, msg);
        }
    }

    /// Whether `session` is logged on and signs all it sends.
    pub fn session_signs(&self, session: u64) -> bool {
        self.sessions.get(&session).is_some_and(|s| s.valid() && s.signed)
    }

    /// Signature and encryption checks of one request `msg` with header
    /// `hdr` in session `session` (`sealed`: the session whose keys
    /// unsealed it).
    pub fn verify(&self, hdr: &Header, session: u64, msg: &[u8], sealed: Option<u64>) -> Result<(), Refused> {
        if matches!(hdr.command, Command::Negotiate) {
            return Ok(());
        }
        let Some(neg) = self.neg.as_ref() else {
            return Ok(());
        };
        let Some(s) = self.sessions.get(&session) else {
            return Ok(());
        };
        if sealed.is_some() && sealed != Some(session) && session != 0 {
            return Err(Refused::OtherSession);
        }
        if sealed.is_none() && hdr.has(flags::SIGNED) {
            if let Some(keys) = s.keys.as_ref() {
                if sign::verify(neg.signing, &keys.signing, msg).is_err() {
                    return Err(Refused::Signature);
                }
            }
        }
        Ok(())
    }

    /// Whether a request that came unsigned or unsealed (`encrypted`:
    /// sealed) must be refused, for its session or its tree.
    pub fn refuses_plain(&self, hdr: &Header, session: u64, tree: u32, encrypted: bool) -> Option<NtStatus> {
        let s = self.sessions.get(&session)?;
        if !s.valid() {
            return None;
        }
        if s.signed && !encrypted && !hdr.has(flags::SIGNED) {
            return Some(NtStatus::ACCESS_DENIED);
        }
        let tree_encrypts = s.trees.get(&tree).is_some_and(|t| t.encrypt);
        if (s.encrypt || tree_encrypts) && !encrypted {
            return Some(NtStatus::ACCESS_DENIED);
        }
        None
    }

    /// Feed a response into the pre-auth integrity hash it belongs to.
    pub fn hash_response(&mut self, target: Preauth, msg: &[u8]) {
        match target {
            Preauth::Connection => self.preauth.update(msg),
            Preauth::Session(id) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.preauth_update(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use smb_proto::crypto::kdf::SessionKeys;
    use smb_proto::crypto::preauth::PreauthHash;
    use smb_proto::crypto::{Dialect, SigningAlgorithm};

    use super::*;
    use crate::conn::Negotiated;
    use crate::session::Session;

    const SID: u64 = 0x11;

    /// A connection that negotiated 3.1.1 with one session logged on.
    fn state(signed: bool, encrypt: bool) -> ConnState {
        let mut st = ConnState::new();
        st.neg = Some(Negotiated {
            dialect: Dialect::Smb311,
            cipher: None,
            signing: SigningAlgorithm::AesCmac,
            client_guid: [0; 16],
            client_caps: 0,
            client_security_mode: 0,
            server_security_mode: 0,
            server_caps: 0,
            signing_required: signed,
        });
        let keys = SessionKeys {
            signing: [7; 16],
            encryption: None,
            decryption: None,
            application: [0; 16],
        };
        st.sessions
            .insert(SID, Session::logged_on_with(keys, signed, encrypt));
        st
    }

    /// A request of `session`, as bytes, and its header.
    fn request(session: u64, signed: bool) -> (Header, Vec<u8>) {
        let mut h = Header::request(Command::Read, 3);
        h.session_id = session;
        if signed {
            h.flags |= flags::SIGNED;
        }
        let mut b = bytes::BytesMut::new();
        h.encode(&mut b);
        b.extend_from_slice(&[0; 16]);
        (h, b.to_vec())
    }

    #[test]
    fn a_signed_request_passes_only_with_a_good_signature() {
        let st = state(true, false);
        let (h, mut msg) = request(SID, true);
        st.sign(SID, &mut msg);
        assert_eq!(st.verify(&h, SID, &msg, None), Ok(()));
        msg[70] ^= 1;
        assert_eq!(st.verify(&h, SID, &msg, None), Err(Refused::Signature));
        // NEGOTIATE is never checked; a sealed request is not checked for a signature.
        let mut neg = h;
        neg.command = Command::Negotiate;
        assert_eq!(st.verify(&neg, SID, &msg, None), Ok(()));
        assert_eq!(st.verify(&h, SID, &msg, Some(SID)), Ok(()));
        // Sealed with another session's keys.
        assert_eq!(
            st.verify(&h, SID, &msg, Some(SID + 1)),
            Err(Refused::OtherSession)
        );
    }

    #[test]
    fn a_session_that_signs_or_seals_refuses_plain_requests() {
        let st = state(true, false);
        assert!(st.session_signs(SID));
        let (unsigned, _) = request(SID, false);
        let (signed, _) = request(SID, true);
        assert_eq!(
            st.refuses_plain(&unsigned, SID, 1, false),
            Some(NtStatus::ACCESS_DENIED)
        );
        assert_eq!(st.refuses_plain(&signed, SID, 1, false), None);
        assert_eq!(st.refuses_plain(&unsigned, SID, 1, true), None);
        // An unknown session is for the command to refuse.
        assert_eq!(st.refuses_plain(&unsigned, SID + 1, 1, false), None);
        let st = state(false, true);
        assert!(!st.session_signs(SID));
        assert_eq!(
            st.refuses_plain(&signed, SID, 1, false),
            Some(NtStatus::ACCESS_DENIED)
        );
        assert_eq!(st.refuses_plain(&unsigned, SID, 1, true), None);
    }

    #[test]
    fn responses_feed_the_hash_they_belong_to() {
        let mut st = state(false, false);
        st.hash_response(Preauth::Connection, b"negotiate response");
        let mut want = PreauthHash::new();
        want.update(b"negotiate response");
        assert_eq!(st.preauth.value(), want.value());
        // A session whose setup is over keeps its value.
        let before = *st.sessions[&SID].preauth_value();
        st.hash_response(Preauth::Session(SID), b"session setup response");
        st.hash_response(Preauth::Session(SID + 1), b"no such session");
        assert_eq!(*st.sessions[&SID].preauth_value(), before);
    }
}
