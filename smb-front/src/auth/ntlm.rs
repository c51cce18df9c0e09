//! Server side of NTLMSSP with NTLMv2 only (MS-NLMP): parse NEGOTIATE, build
//! CHALLENGE, check AUTHENTICATE, and derive the keys that follow.
//!
//! NTLMv1 and LM responses are refused. The session key handed to SMB is
//! the ExportedSessionKey; the signing/sealing keys are kept for SPNEGO's
//! mechListMIC.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rc4::{KeyInit, Rc4, StreamCipher};
use subtle::ConstantTimeEq;

use super::users::{User, UserDb};
use super::AuthFailure;

type HmacMd5 = Hmac<Md5>;
type Rc4_128 = Rc4<rc4::consts::U16>;

pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// NTLMSSP negotiate flags (MS-NLMP 2.2.2.5).
pub mod flags {
    pub const UNICODE: u32 = 0x0000_0001;
    pub const OEM: u32 = 0x0000_0002;
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    pub const SIGN: u32 = 0x0000_0010;
    pub const SEAL: u32 = 0x0000_0020;
    pub const LM_KEY: u32 = 0x0000_0080;
    pub const NTLM: u32 = 0x0000_0200;
    pub const ANONYMOUS: u32 = 0x0000_0800;
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
    pub const TARGET_TYPE_SERVER: u32 = 0x0002_0000;
    pub const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
    pub const TARGET_INFO: u32 = 0x0080_0000;
    pub const VERSION: u32 = 0x0200_0000;
    pub const N128: u32 = 0x2000_0000;
    pub const KEY_EXCH: u32 = 0x4000_0000;
    pub const N56: u32 = 0x8000_0000;
}

/// AV pair ids (MS-NLMP 2.2.2.1).
mod av {
    pub const EOL: u16 = 0;
    pub const NB_COMPUTER_NAME: u16 = 1;
    pub const NB_DOMAIN_NAME: u16 = 2;
    pub const DNS_COMPUTER_NAME: u16 = 3;
    pub const DNS_DOMAIN_NAME: u16 = 4;
    pub const FLAGS: u16 = 6;
    pub const TIMESTAMP: u16 = 7;
    /// MsvAvFlags bit: the AUTHENTICATE message carries a MIC.
    pub const FLAG_MIC_PRESENT: u32 = 0x0000_0002;
}

/// The names the server announces in its CHALLENGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNames {
    pub nb_domain: String,
    pub nb_computer: String,
    pub dns_domain: String,
    pub dns_computer: String,
}

impl ServerNames {
    /// Names for a stand-alone server `host` in workgroup `workgroup`.
    pub fn standalone(host: &str, workgroup: &str) -> Self {
        let nb = |s: &str| s.split('.').next().unwrap_or(s).to_uppercase();
        Self {
            nb_domain: nb(workgroup),
            nb_computer: nb(host),
            dns_domain: workgroup.to_lowercase(),
            dns_computer: host.to_lowercase(),
        }
    }
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Windows upper-cases per UTF-16 unit without expanding ('ß' stays 'ß').
fn upcase(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <HmacMd5 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// NTOWFv2 = HMAC-MD5(NT hash, UTF-16LE(UPPER(user) ‖ domain)).
pub fn ntowfv2(nt_hash: &[u8; 16], user: &str, domain: &str) -> [u8; 16] {
    let mut who = upcase(user);
    who.push_str(domain);
    hmac_md5(nt_hash, &[&utf16le(&who)])
}

/// NTProofStr = HMAC-MD5(NTOWFv2, ServerChallenge ‖ blob).
pub fn nt_proof_str(ntowf: &[u8; 16], server_challenge: &[u8; 8], blob: &[u8]) -> [u8; 16] {
    hmac_md5(ntowf, &[server_challenge, blob])
}

/// SessionBaseKey = HMAC-MD5(NTOWFv2, NTProofStr); for NTLMv2 it is also
/// the KeyExchangeKey.
pub fn session_base_key(ntowf: &[u8; 16], proof: &[u8; 16]) -> [u8; 16] {
    hmac_md5(ntowf, &[proof])
}

/// RC4 with a 16-byte key over `data`, in place.
fn rc4(key: &[u8; 16], data: &mut [u8]) {
    Rc4_128::new(key.into()).apply_keystream(data);
}

/// The 8-byte NTLMSSP Version field the server sends: 10.0.20348, NTLM
/// revision 15.
const SERVER_VERSION: [u8; 8] = [10, 0, 0x7c, 0x4f, 0, 0, 0, 15];

/// Reads a NEGOTIATE_MESSAGE and returns its flags.
pub fn parse_negotiate(msg: &[u8]) -> Result<u32, AuthFailure> {
    if msg.get(..8) != Some(SIGNATURE) || le32(msg, 8) != Some(1) {
        return Err(AuthFailure::Malformed("not an NTLM NEGOTIATE message"));
    }
    le32(msg, 12).ok_or(AuthFailure::Malformed("truncated NTLM NEGOTIATE"))
}

/// The flags the server answers with: what it always sets, plus those of
/// the client's requests it supports.
pub fn challenge_flags(client: u32) -> u32 {
    use flags::*;
    let echoed = client
        & (UNICODE
            | REQUEST_TARGET
            | SIGN
            | SEAL
            | ALWAYS_SIGN
            | EXTENDED_SESSIONSECURITY
            | VERSION
            | N128
            | N56
            | KEY_EXCH);
    let charset = if client & UNICODE != 0 { 0 } else { OEM };
    echoed | charset | NTLM | TARGET_INFO | TARGET_TYPE_SERVER
}

fn put_av(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

/// Builds a CHALLENGE_MESSAGE. `timestamp` is a FILETIME (100 ns since
/// 1601) for MsvAvTimestamp.
pub fn build_challenge(
    negotiated: u32,
    names: &ServerNames,
    server_challenge: &[u8; 8],
    timestamp: u64,
) -> Vec<u8> {
    let unicode = negotiated & flags::UNICODE != 0;
    let target_name = if unicode {
        utf16le(&names.nb_computer)
    } else {
        names.nb_computer.as_bytes().to_vec()
    };
    let mut info = Vec::new();
    put_av(&mut info, av::NB_DOMAIN_NAME, &utf16le(&names.nb_domain));
    put_av(&mut info, av::NB_COMPUTER_NAME, &utf16le(&names.nb_computer));
    put_av(&mut info, av::DNS_DOMAIN_NAME, &utf16le(&names.dns_domain));
    put_av(&mut info, av::DNS_COMPUTER_NAME, &utf16le(&names.dns_computer));
    put_av(&mut info, av::TIMESTAMP, &timestamp.to_le_bytes());
    put_av(&mut info, av::EOL, &[]);

    const HEADER: usize = 56;
    let mut m = Vec::with_capacity(HEADER + target_name.len() + info.len());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&2u32.to_le_bytes());
    let name_len = target_name.len() as u16;
    m.extend_from_slice(&name_len.to_le_bytes());
    m.extend_from_slice(&name_len.to_le_bytes());
    m.extend_from_slice(&(HEADER as u32).to_le_bytes());
    m.extend_from_slice(&negotiated.to_le_bytes());
    m.extend_from_slice(server_challenge);
    m.extend_from_slice(&[0; 8]);
    let info_len = info.len() as u16;
    m.extend_from_slice(&info_len.to_le_bytes());
    m.extend_from_slice(&info_len.to_le_bytes());
    m.extend_from_slice(&((HEADER + target_name.len()) as u32).to_le_bytes());
    m.extend_from_slice(&SERVER_VERSION);
    m.extend_from_slice(&target_name);
    m.extend_from_slice(&info);
    m
}

/// Offset and length of the MIC in an AUTHENTICATE_MESSAGE (after Version).
const MIC_OFFSET: usize = 72;
const MIC_END: usize = MIC_OFFSET + 16;

/// A decoded AUTHENTICATE_MESSAGE; byte fields borrow from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate<'a> {
    pub lm_response: &'a [u8],
    pub nt_response: &'a [u8],
    pub domain: String,
    pub user: String,
    pub workstation: String,
    pub encrypted_session_key: &'a [u8],
    pub flags: u32,
    /// The MIC field, when the payload leaves room for one.
    pub mic: Option<[u8; 16]>,
}

/// Reads one payload field descriptor (Len, MaxLen, Offset) at `at`.
fn field<'a>(msg: &'a [u8], at: usize, lowest: &mut usize) -> Result<&'a [u8], AuthFailure> {
    let bad = AuthFailure::Malformed("NTLM AUTHENTICATE field out of bounds");
    let len = usize::from(le16(msg, at).ok_or(bad.clone())?);
    let off = le32(msg, at + 4).ok_or(bad.clone())? as usize;
    if len == 0 {
        return Ok(&[]);
    }
    let end = off.checked_add(len).ok_or(bad.clone())?;
    *lowest = (*lowest).min(off);
    msg.get(off..end).ok_or(bad)
}

fn decode_string(bytes: &[u8], unicode: bool) -> Result<String, AuthFailure> {
    if unicode {
        if bytes.len() % 2 != 0 {
            return Err(AuthFailure::Malformed("odd-length UTF-16 string"));
        }
        let units = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| AuthFailure::Malformed("invalid UTF-16 string"))
    } else {
        // OEM code page: treated as Latin-1, which covers ASCII names.
        Ok(bytes.iter().map(|&b| char::from(b)).collect())
    }
}

/// Decodes an AUTHENTICATE_MESSAGE, checking every payload field's bounds.
pub fn parse_authenticate(msg: &[u8]) -> Result<Authenticate<'_>, AuthFailure> {
    if msg.get(..8) != Some(SIGNATURE) || le32(msg, 8) != Some(3) {
        return Err(AuthFailure::Malformed("not an NTLM AUTHENTICATE message"));
    }
    if msg.len() < 64 {
        return Err(AuthFailure::Malformed("truncated NTLM AUTHENTICATE"));
    }
    let mut lowest = msg.len();
    let lm_response = field(msg, 12, &mut lowest)?;
    let nt_response = field(msg, 20, &mut lowest)?;
    let domain = field(msg, 28, &mut lowest)?;
    let user = field(msg, 36, &mut lowest)?;
    let workstation = field(msg, 44, &mut lowest)?;
    let encrypted_session_key = field(msg, 52, &mut lowest)?;
    let flags = le32(msg, 60).ok_or(AuthFailure::Malformed("truncated NTLM AUTHENTICATE"))?;
    if lowest < 64 {
        return Err(AuthFailure::Malformed("NTLM payload overlaps the header"));
    }
    let mic = if lowest >= MIC_END {
        let mut m = [0u8; 16];
        m.copy_from_slice(&msg[MIC_OFFSET..MIC_END]);
        Some(m)
    } else {
        None
    };
    let unicode = flags & flags::UNICODE != 0;
    Ok(Authenticate {
        lm_response,
        nt_response,
        domain: decode_string(domain, unicode)?,
        user: decode_string(user, unicode)?,
        workstation: decode_string(workstation, unicode)?,
        encrypted_session_key,
        flags,
        mic,
    })
}

/// The MsvAvFlags value among the AV pairs of an NTLMv2 blob (0 if absent).
fn blob_av_flags(blob: &[u8]) -> Result<u32, AuthFailure> {
    let bad = AuthFailure::Malformed("malformed AV pairs in NTLMv2 response");
    // RespType, HiRespType, Reserved1/2, TimeStamp, ChallengeFromClient,
    // Reserved3: 28 bytes before the AV pairs.
    let mut at = 28usize;
    let mut flags = 0u32;
    loop {
        let id = le16(blob, at).ok_or(bad.clone())?;
        let len = usize::from(le16(blob, at + 2).ok_or(bad.clone())?);
        let value = blob.get(at + 4..at + 4 + len).ok_or(bad.clone())?;
        match id {
            av::EOL => return Ok(flags),
            av::FLAGS => flags = le32(value, 0).ok_or(bad.clone())?,
            _ => {}
        }
        at += 4 + len;
    }
}

/// NTLM session security (MS-NLMP 3.4) with extended session security:
/// the keys and the per-direction RC4 state and sequence numbers. Used for
/// SPNEGO's mechListMIC. The pre-ESS (CRC32) signature scheme is not
/// implemented, so a client without EXTENDED_SESSIONSECURITY that sends a
/// mechListMIC fails it.
pub struct SessionSecurity {
    pub flags: u32,
    pub client_signing_key: [u8; 16],
    pub server_signing_key: [u8; 16],
    pub client_sealing_key: [u8; 16],
    pub server_sealing_key: [u8; 16],
    client_seal: Rc4_128,
    server_seal: Rc4_128,
    client_seq: u32,
    server_seq: u32,
}

impl std::fmt::Debug for SessionSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSecurity")
            .field("flags", &format_args!("{:#010x}", self.flags))
            .finish_non_exhaustive()
    }
}

const C2S_SIGN: &[u8] = b"session key to client-to-server signing key magic constant\0";
const S2C_SIGN: &[u8] = b"session key to server-to-client signing key magic constant\0";
const C2S_SEAL: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const S2C_SEAL: &[u8] = b"session key to server-to-client sealing key magic constant\0";

impl SessionSecurity {
    /// Derives SIGNKEY and SEALKEY for both directions (MS-NLMP 3.4.5.2/3).
    pub fn new(exported_session_key: &[u8; 16], flags: u32) -> Self {
        let seal_base: &[u8] = if flags & flags::N128 != 0 {
            exported_session_key
        } else if flags & flags::N56 != 0 {
            &exported_session_key[..7]
        } else {
            &exported_session_key[..5]
        };
        let client_sealing_key = md5(&[seal_base, C2S_SEAL]);
        let server_sealing_key = md5(&[seal_base, S2C_SEAL]);
        Self {
            flags,
            client_signing_key: md5(&[exported_session_key, C2S_SIGN]),
            server_signing_key: md5(&[exported_session_key, S2C_SIGN]),
            client_sealing_key,
            server_sealing_key,
            client_seal: Rc4_128::new((&client_sealing_key).into()),
            server_seal: Rc4_128::new((&server_sealing_key).into()),
            client_seq: 0,
            server_seq: 0,
        }
    }

    fn mac(key: &[u8; 16], seal: &mut Rc4_128, key_exch: bool, seq: u32, msg: &[u8]) -> [u8; 16] {
        let digest = hmac_md5(key, &[&seq.to_le_bytes(), msg]);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&digest[..8]);
        if key_exch {
            seal.apply_keystream(&mut checksum);
        }
        let mut sig = [0u8; 16];
        sig[..4].copy_from_slice(&1u32.to_le_bytes());
        sig[4..12].copy_from_slice(&checksum);
        sig[12..].copy_from_slice(&seq.to_le_bytes());
        sig
    }

    /// The NTLMSSP_MESSAGE_SIGNATURE of an outgoing (server) message.
    pub fn sign(&mut self, msg: &[u8]) -> [u8; 16] {
        let kx = self.flags & flags::KEY_EXCH != 0;
        let seq = self.server_seq;
        self.server_seq = seq.wrapping_add(1);
        Self::mac(&self.server_signing_key, &mut self.server_seal, kx, seq, msg)
    }

    /// Checks the signature of an incoming (client) message, in constant time.
    pub fn verify(&mut self, msg: &[u8], signature: &[u8]) -> bool {
        let kx = self.flags & flags::KEY_EXCH != 0;
        let seq = self.client_seq;
        self.client_seq = seq.wrapping_add(1);
        let expected = Self::mac(&self.client_signing_key, &mut self.client_seal, kx, seq, msg);
        bool::from(expected.ct_eq(signature))
    }
}

/// A successful NTLM logon.
#[derive(Debug)]
pub enum NtlmOutcome {
    User {
        user: User,
        /// The domain name the client sent.
        domain: String,
        workstation: String,
        /// ExportedSessionKey: the key SMB derives its keys from.
        session_key: [u8; 16],
        security: Box<SessionSecurity>,
        /// Whether the AUTHENTICATE message carried a verified MIC.
        mic_verified: bool,
    },
    /// An anonymous logon (empty user and responses): the caller decides.
    Anonymous,
}

#[derive(Debug)]
enum State {
    AwaitNegotiate,
    AwaitAuthenticate { negotiate: Vec<u8>, challenge: Vec<u8> },
    Finished,
}

/// One NTLM server exchange: NEGOTIATE in, CHALLENGE out, AUTHENTICATE in.
#[derive(Debug)]
pub struct NtlmServer {
    names: ServerNames,
    server_challenge: [u8; 8],
    timestamp: u64,
    state: State,
}

impl NtlmServer {
    /// A server that will answer with `server_challenge` (8 random bytes;
    /// never reuse one) and the FILETIME `timestamp`.
    pub fn new(names: ServerNames, server_challenge: [u8; 8], timestamp: u64) -> Self {
        Self {
            names,
            server_challenge,
            timestamp,
            state: State::AwaitNegotiate,
        }
    }

    /// Takes the client's NEGOTIATE_MESSAGE and returns the CHALLENGE_MESSAGE.
    pub fn challenge(&mut self, negotiate: &[u8]) -> Result<Vec<u8>, AuthFailure> {
        if !matches!(self.state, State::AwaitNegotiate) {
            return Err(AuthFailure::UnexpectedToken);
        }
        let client_flags = parse_negotiate(negotiate)?;
        let challenge = build_challenge(
            challenge_flags(client_flags),
            &self.names,
            &self.server_challenge,
            self.timestamp,
        );
        self.state = State::AwaitAuthenticate {
            negotiate: negotiate.to_vec(),
            challenge: challenge.clone(),
        };
        Ok(challenge)
    }

    /// The CHALLENGE_MESSAGE sent, once [`challenge`](Self::challenge) ran.
    pub fn challenge_message(&self) -> Option<&[u8]> {
        match &self.state {
            State::AwaitAuthenticate { challenge, .. } => Some(challenge),
            _ => None,
        }
    }

    /// Checks the client's AUTHENTICATE_MESSAGE against `users`.
    pub fn authenticate(&mut self, msg: &[u8], users: &UserDb) -> Result<NtlmOutcome, AuthFailure> {
        let (negotiate, challenge) = match std::mem::replace(&mut self.state, State::Finished) {
            State::AwaitAuthenticate { negotiate, challenge } => (negotiate, challenge),
            _ => return Err(AuthFailure::UnexpectedToken),
        };
        let auth = parse_authenticate(msg)?;
        let challenge_flags = le32(&challenge, 20).unwrap_or(0);
        let negotiated = auth.flags & challenge_flags;

        let lm_empty = auth.lm_response.is_empty() || auth.lm_response == [0];
        if auth.nt_response.is_empty()
            && lm_empty
            && (auth.user.is_empty() || auth.flags & flags::ANONYMOUS != 0)
        {
            return Ok(NtlmOutcome::Anonymous);
        }
        if auth.nt_response.len() == 24 || auth.nt_response.is_empty() {
            return Err(AuthFailure::NtlmV1Refused);
        }
        if auth.nt_response.len() < 16 + 28 {
            return Err(AuthFailure::Malformed("NTLMv2 response too short"));
        }
        let (proof, blob) = auth.nt_response.split_at(16);
        let av_flags = blob_av_flags(blob)?;

        let user = users
            .get(&auth.user)
            .ok_or(AuthFailure::UnknownUser(auth.user.clone()))?;

        // As Samba does: the domain the client sent, its upper case, then
        // none; and the server's own domain name.
        let upper = upcase(&auth.domain);
        let mut domains: Vec<&str> = vec![&auth.domain, &upper, "", &self.names.nb_domain];
        domains.dedup();
        let mut matched = None;
        for d in domains {
            let owf = ntowfv2(&user.nt_hash, &auth.user, d);
            let expected = nt_proof_str(&owf, &self.server_challenge, blob);
            if bool::from(expected.ct_eq(proof)) {
                matched = Some((owf, expected));
                break;
            }
        }
        let (owf, proof) = matched.ok_or(AuthFailure::WrongPassword(auth.user.clone()))?;

        let key_exchange_key = session_base_key(&owf, &proof);
        let session_key = if negotiated & flags::KEY_EXCH != 0 {
            let mut k: [u8; 16] = auth
                .encrypted_session_key
                .try_into()
                .map_err(|_| AuthFailure::Malformed("EncryptedRandomSessionKey is not 16 bytes"))?;
            rc4(&key_exchange_key, &mut k);
            k
        } else {
            key_exchange_key
        };

        let mic_required = av_flags & av::FLAG_MIC_PRESENT != 0;
        let mic_verified = match auth.mic {
            Some(mic) if mic_required => {
                if mic == [0; 16] {
                    return Err(AuthFailure::MicMissing);
                }
                let mut zeroed = msg.to_vec();
                zeroed[MIC_OFFSET..MIC_END].fill(0);
                let expected = hmac_md5(&session_key, &[&negotiate, &challenge, &zeroed]);
                if !bool::from(expected.ct_eq(&mic)) {
                    return Err(AuthFailure::BadMic);
                }
                true
            }
            None if mic_required => return Err(AuthFailure::MicMissing),
            _ => false,
        };

        Ok(NtlmOutcome::User {
            user: user.clone(),
            domain: auth.domain,
            workstation: auth.workstation,
            session_key,
            security: Box::new(SessionSecurity::new(&session_key, negotiated)),
            mic_verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::users::nt_hash;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    fn h16(s: &str) -> [u8; 16] {
        h(s).try_into().unwrap()
    }

    // MS-NLMP 4.2.4: user "User", domain "Domain", password "Password",
    // server challenge 0123456789abcdef, client challenge aa…, time 0,
    // random session key 55….
    const CHALLENGE_4_2_4: &str = "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef\
        00000000000000002400240044000000060070170000000f5300650072007600\
        6500720002000c0044006f006d00610069006e0001000c005300650072007600\
        6500720000000000";
    const AUTHENTICATE_4_2_4: &str = "4e544c4d535350000300000018001800\
        6c00000054005400840000000c000c00 48000000080008005400000010001000\
        5c00000010001000d8000000358288e2 0501280a0000000f44006f006d006100\
        69006e00550073006500720043004f00 4d005000550054004500520086c35097\
        ac9cec102554764a57cccc19aaaaaaaa aaaaaaaa68cd0ab851e51c96aabc927b\
        ebef6a1c010100000000000000000000 00000000aaaaaaaaaaaaaaaa00000000\
        02000c0044006f006d00610069006e00 01000c00530065007200760065007200\
        0000000000000000c5dad2544fc97990 94ce1ce90bc9d03e";

    #[test]
    fn ms_nlmp_4_2_4_primitives() {
        let owf = ntowfv2(&nt_hash("Password"), "User", "Domain");
        assert_eq!(owf, h16("0c868a403bfd7a93a3001ef22ef02e3f"));
        let auth_bytes = h(AUTHENTICATE_4_2_4);
        let auth = parse_authenticate(&auth_bytes).unwrap();
        assert_eq!(auth.user, "User");
        assert_eq!(auth.domain, "Domain");
        assert_eq!(auth.workstation, "COMPUTER");
        assert_eq!(auth.mic, None);
        let (proof, blob) = auth.nt_response.split_at(16);
        let server_challenge = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        let p = nt_proof_str(&owf, &server_challenge, blob);
        assert_eq!(p, h16("68cd0ab851e51c96aabc927bebef6a1c"));
        assert_eq!(proof, p);
        let base = session_base_key(&owf, &p);
        assert_eq!(base, h16("8de40ccadbc14a82f15cb0ad0de95ca3"));
        let mut k: [u8; 16] = auth.encrypted_session_key.try_into().unwrap();
        assert_eq!(k, h16("c5dad2544fc9799094ce1ce90bc9d03e"));
        rc4(&base, &mut k);
        assert_eq!(k, [0x55; 16]);
        let sec = SessionSecurity::new(&k, auth.flags);
        assert_eq!(sec.client_signing_key, h16("4788dc861b4782f35d43fd98fe1a2d39"));
        assert_eq!(sec.client_sealing_key, h16("59f600973cc4960a25480a7c196e4c58"));
    }

    /// Runs the 4.2.4 AUTHENTICATE through the server with the 4.2.4
    /// CHALLENGE's challenge.
    fn server_4_2_4(users: &UserDb, auth: &[u8]) -> Result<NtlmOutcome, AuthFailure> {
        let names = ServerNames {
            nb_domain: "Domain".into(),
            nb_computer: "Server".into(),
            dns_domain: String::new(),
            dns_computer: String::new(),
        };
        let mut s = NtlmServer::new(names, [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef], 0);
        // The NEGOTIATE carries the 4.2.4 challenge flags.
        let mut neg = SIGNATURE.to_vec();
        neg.extend_from_slice(&1u32.to_le_bytes());
        neg.extend_from_slice(&h(CHALLENGE_4_2_4)[20..24]);
        s.challenge(&neg).unwrap();
        s.authenticate(auth, users)
    }

    #[test]
    fn ms_nlmp_4_2_4_logon() {
        let mut users = UserDb::new();
        users.insert_password("user", "Password", 1000, 1000);
        match server_4_2_4(&users, &h(AUTHENTICATE_4_2_4)).unwrap() {
            NtlmOutcome::User {
                user,
                domain,
                session_key,
                mic_verified,
                ..
            } => {
                assert_eq!(user.uid, 1000);
                assert_eq!(domain, "Domain");
                assert_eq!(session_key, [0x55; 16]);
                assert!(!mic_verified);
            }
            other => panic!("{other:?}"),
        }
        let mut wrong = UserDb::new();
        wrong.insert_password("User", "password", 1000, 1000);
        assert!(matches!(
            server_4_2_4(&wrong, &h(AUTHENTICATE_4_2_4)),
            Err(AuthFailure::WrongPassword(_))
        ));
        assert!(matches!(
            server_4_2_4(&UserDb::new(), &h(AUTHENTICATE_4_2_4)),
            Err(AuthFailure::UnknownUser(_))
        ));
    }

    #[test]
    fn truncations_and_bad_offsets_are_errors() {
        let mut users = UserDb::new();
        users.insert_password("User", "Password", 1, 1);
        let full = h(AUTHENTICATE_4_2_4);
        for len in 0..full.len() {
            assert!(server_4_2_4(&users, &full[..len]).is_err());
        }
        for at in (12..60).step_by(2) {
            for v in [0xffu8, 0x7f, 0x40] {
                let mut m = full.clone();
                m[at] = v;
                m[at + 1] = v;
                // Must not panic; may fail or (for unused fields) succeed.
                let _ = server_4_2_4(&users, &m);
            }
        }
    }

    #[test]
    fn ntlmv1_is_refused() {
        let mut users = UserDb::new();
        users.insert_password("User", "Password", 1, 1);
        let mut m = h(AUTHENTICATE_4_2_4);
        // NtChallengeResponse length 24 (an NTLMv1 response).
        m[20] = 24;
        m[22] = 24;
        assert_eq!(server_4_2_4(&users, &m).unwrap_err(), AuthFailure::NtlmV1Refused);
    }

    #[test]
    fn anonymous_is_its_own_outcome() {
        let mut m = SIGNATURE.to_vec();
        m.extend_from_slice(&3u32.to_le_bytes());
        // Six empty fields pointing at the end of the 72-byte header.
        for _ in 0..6 {
            m.extend_from_slice(&[0, 0, 0, 0, 72, 0, 0, 0]);
        }
        m.extend_from_slice(&(flags::UNICODE | flags::ANONYMOUS).to_le_bytes());
        m.extend_from_slice(&SERVER_VERSION);
        assert!(matches!(
            server_4_2_4(&UserDb::new(), &m).unwrap(),
            NtlmOutcome::Anonymous
        ));
    }

    #[test]
    fn challenge_echoes_flags_and_carries_names() {
        use flags::*;
        let client = UNICODE
            | REQUEST_TARGET
            | SIGN
            | SEAL
            | ALWAYS_SIGN
            | NTLM
            | EXTENDED_SESSIONSECURITY
            | VERSION
            | N128
            | N56
            | KEY_EXCH
            | LM_KEY;
        let f = challenge_flags(client);
        assert_eq!(f & LM_KEY, 0);
        assert_eq!(f & OEM, 0);
        assert_ne!(f & TARGET_TYPE_SERVER, 0);
        assert_ne!(f & KEY_EXCH, 0);
        assert_eq!(challenge_flags(OEM) & (UNICODE | OEM), OEM);
        let names = ServerNames::standalone("weir1.example.com", "WORKGROUP");
        let c = build_challenge(f, &names, &[9; 8], 0x01d0_0000_0000_0000);
        assert_eq!(&c[..8], SIGNATURE);
        assert_eq!(le32(&c, 20), Some(f));
        assert_eq!(&c[24..32], &[9; 8]);
        let info_len = usize::from(le16(&c, 40).unwrap());
        let info_off = le32(&c, 44).unwrap() as usize;
        assert_eq!(info_off + info_len, c.len());
        let mut blob = vec![0u8; 28];
        blob.extend_from_slice(&c[info_off..]);
        assert_eq!(blob_av_flags(&blob), Ok(0));
        assert!(c.windows(10).any(|w| w == utf16le("WEIR1").as_slice()));
    }
}
