//! Session-setup authentication: an SPNEGO acceptor with NTLMv2 as its
//! mechanism (MS-SPNG, RFC 4178, MS-NLMP), and the local user database.
//!
//! Sans-IO: the SMB layer feeds each SESSION_SETUP security buffer to
//! [`Acceptor::step`] and sends back what it returns. Further mechanisms
//! (Kerberos) join as variants of the private `Mechanism` enum behind the
//! same state machine.

pub mod ntlm;
pub mod spnego;
pub mod throttle;
pub mod users;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;

use ntlm::{NtlmOutcome, NtlmServer, ServerNames, SessionSecurity};
use spnego::{ClientToken, NegState, NegTokenResp, OID_NTLMSSP};
use users::{User, UserDb};

/// Why a logon failed. Reported to the caller for logging and throttling;
/// the client only ever learns "logon failure".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// A token could not be decoded.
    Malformed(&'static str),
    /// A token arrived in a state that does not expect it.
    UnexpectedToken,
    /// The client offered no mechanism this server accepts.
    NoCommonMechanism,
    UnknownUser(String),
    WrongPassword(String),
    /// An NTLMv1 or LM-only response.
    NtlmV1Refused,
    /// MsvAvFlags announces a MIC but the AUTHENTICATE message has none.
    MicMissing,
    BadMic,
    /// SPNEGO needed a mechListMIC (the client's first mechanism was not
    /// the one used) and the client sent none.
    MechListMicMissing,
    BadMechListMic,
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed token: {what}"),
            Self::UnexpectedToken => f.write_str("unexpected token"),
            Self::NoCommonMechanism => f.write_str("no common authentication mechanism"),
            Self::UnknownUser(u) => write!(f, "unknown user {u:?}"),
            Self::WrongPassword(u) => write!(f, "wrong password for {u:?}"),
            Self::NtlmV1Refused => f.write_str("NTLMv1/LM response refused"),
            Self::MicMissing => f.write_str("NTLM MIC announced but missing"),
            Self::BadMic => f.write_str("NTLM MIC does not verify"),
            Self::MechListMicMissing => f.write_str("SPNEGO mechListMIC missing"),
            Self::BadMechListMic => f.write_str("SPNEGO mechListMIC does not verify"),
        }
    }
}

impl std::error::Error for AuthFailure {}

/// Who logged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    User {
        user: User,
        /// The domain the client named.
        domain: String,
        /// The client's workstation name.
        workstation: String,
    },
    /// No user, no credentials: the caller maps it to guest or refuses it.
    Anonymous,
}

/// What one [`Acceptor::step`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send `out_token` (STATUS_MORE_PROCESSING_REQUIRED) and wait for the
    /// client's next token.
    Continue(Vec<u8>),
    /// Authenticated. `session_key` is what SMB derives its keys from
    /// (empty for an anonymous logon); `out_token` goes in the final
    /// SESSION_SETUP response (may be empty).
    Done {
        identity: Identity,
        session_key: Vec<u8>,
        out_token: Vec<u8>,
    },
    /// The logon failed; the exchange is over.
    Failed(AuthFailure),
}

/// An authentication mechanism behind SPNEGO.
#[derive(Debug)]
enum Mechanism {
    Ntlm(NtlmServer),
}

#[derive(Debug)]
enum State {
    Start,
    /// SPNEGO chose a mechanism; the client has not sent its first token
    /// for it yet.
    SpnegoAwaitMechToken(Negotiated),
    SpnegoAwaitFinal(Negotiated),
    /// Raw NTLMSSP without SPNEGO framing.
    RawAwaitFinal(Mechanism),
    Finished,
}

/// What SPNEGO settled on.
#[derive(Debug)]
struct Negotiated {
    mech: Mechanism,
    /// The client's MechTypeList as received: what mechListMIC covers.
    mech_types_der: Vec<u8>,
    /// Whether the mechanism is the client's first choice.
    preferred: bool,
}

impl Negotiated {
    /// Handles the client's first token for the mechanism (or its absence):
    /// an accept-incomplete answer, naming the mechanism on the first round.
    fn mech_token(self, token: Option<&[u8]>, first: bool) -> Result<(State, Step), AuthFailure> {
        let Negotiated {
            mech: Mechanism::Ntlm(mut ntlm),
            mech_types_der,
            preferred,
        } = self;
        let challenge = token.map(|t| ntlm.challenge(t)).transpose()?;
        let out = spnego::neg_token_resp(&NegTokenResp {
            neg_state: Some(NegState::AcceptIncomplete),
            supported_mech: first.then_some(OID_NTLMSSP),
            response_token: challenge.as_deref(),
            mech_list_mic: None,
        });
        let next = Negotiated {
            mech: Mechanism::Ntlm(ntlm),
            mech_types_der,
            preferred,
        };
        let state = if challenge.is_some() {
            State::SpnegoAwaitFinal(next)
        } else {
            State::SpnegoAwaitMechToken(next)
        };
        Ok((state, Step::Continue(out)))
    }
}

/// The server side of one SESSION_SETUP authentication exchange.
#[derive(Debug)]
pub struct Acceptor {
    users: Arc<UserDb>,
    names: ServerNames,
    server_challenge: [u8; 8],
    timestamp: u64,
    state: State,
    ntlm_security: Option<SessionSecurity>,
}

/// Seconds between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// The current time as a FILETIME (100 ns units since 1601).
pub fn filetime_now() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs() + FILETIME_UNIX_OFFSET) * 10_000_000 + u64::from(d.subsec_nanos() / 100)
}

impl Acceptor {
    /// An acceptor with a fresh random server challenge.
    pub fn new(users: Arc<UserDb>, names: ServerNames) -> Self {
        let mut challenge = [0u8; 8];
        rand::rng().fill_bytes(&mut challenge);
        Self::with_challenge(users, names, challenge, filetime_now())
    }

    /// An acceptor with a given challenge and FILETIME, for replaying
    /// recorded exchanges in tests.
    pub fn with_challenge(
        users: Arc<UserDb>,
        names: ServerNames,
        server_challenge: [u8; 8],
        timestamp: u64,
    ) -> Self {
        Self {
            users,
            names,
            server_challenge,
            timestamp,
            state: State::Start,
            ntlm_security: None,
        }
    }

    /// The security buffer of the server's NEGOTIATE response.
    pub fn neg_token_init2() -> Vec<u8> {
        spnego::neg_token_init2(&[OID_NTLMSSP])
    }

    /// The NTLM signing/sealing state after a successful NTLM logon.
    pub fn ntlm_security(&self) -> Option<&SessionSecurity> {
        self.ntlm_security.as_ref()
    }

    fn ntlm(&self) -> NtlmServer {
        NtlmServer::new(self.names.clone(), self.server_challenge, self.timestamp)
    }

    /// Feeds the client's next security buffer.
    pub fn step(&mut self, token: &[u8]) -> Step {
        let state = std::mem::replace(&mut self.state, State::Finished);
        match self.advance(state, token) {
            Ok((next, step)) => {
                self.state = next;
                step
            }
            Err(e) => Step::Failed(e),
        }
    }

    fn advance(&mut self, state: State, token: &[u8]) -> Result<(State, Step), AuthFailure> {
        match state {
            State::Start if token.starts_with(ntlm::SIGNATURE) => {
                let mut ntlm = self.ntlm();
                let challenge = ntlm.challenge(token)?;
                Ok((
                    State::RawAwaitFinal(Mechanism::Ntlm(ntlm)),
                    Step::Continue(challenge),
                ))
            }
            State::Start => {
                let ClientToken::Init(init) = spnego::parse_client_token(token)? else {
                    return Err(AuthFailure::UnexpectedToken);
                };
                let preferred = match init.mech_types.iter().position(|m| *m == OID_NTLMSSP) {
                    Some(i) => i == 0,
                    None => return Err(AuthFailure::NoCommonMechanism),
                };
                let spnego = Negotiated {
                    mech: Mechanism::Ntlm(self.ntlm()),
                    mech_types_der: init.mech_types_der.to_vec(),
                    preferred,
                };
                // An optimistic token counts only if it is for our mechanism.
                spnego.mech_token(init.mech_token.filter(|_| preferred), true)
            }
            State::SpnegoAwaitMechToken(spnego) => {
                let resp = expect_resp(token)?;
                let t = resp.response_token.ok_or(AuthFailure::UnexpectedToken)?;
                spnego.mech_token(Some(t), false)
            }
            State::SpnegoAwaitFinal(Negotiated {
                mech: Mechanism::Ntlm(mut ntlm),
                mech_types_der,
                preferred,
            }) => {
                let resp = expect_resp(token)?;
                let t = resp.response_token.ok_or(AuthFailure::UnexpectedToken)?;
                let Finished {
                    identity,
                    session_key,
                    security,
                    mic_verified,
                } = self.finish_ntlm(&mut ntlm, t)?;
                let mut server_mic = None;
                if let Some(mut sec) = security {
                    let signs = sec.flags & ntlm::flags::SIGN != 0;
                    match resp.mech_list_mic {
                        Some(mic) => {
                            if !sec.verify(&mech_types_der, mic) {
                                return Err(AuthFailure::BadMechListMic);
                            }
                            server_mic = Some(sec.sign(&mech_types_der));
                        }
                        // RFC 4178 5: needed when the mechanism used was not
                        // the client's first choice and it can sign. As in
                        // Samba, a client that sent an NTLM MIC must also
                        // protect the mechanism list.
                        None if mic_verified || (!preferred && signs) => {
                            return Err(AuthFailure::MechListMicMissing)
                        }
                        None => {}
                    }
                    self.ntlm_security = Some(sec);
                }
                let out_token = spnego::neg_token_resp(&NegTokenResp {
                    neg_state: Some(NegState::AcceptCompleted),
                    supported_mech: None,
                    response_token: None,
                    mech_list_mic: server_mic.as_ref().map(|m| &m[..]),
                });
                Ok((
                    State::Finished,
                    Step::Done {
                        identity,
                        session_key,
                        out_token,
                    },
                ))
            }
            State::RawAwaitFinal(Mechanism::Ntlm(mut ntlm)) => {
                let Finished {
                    identity,
                    session_key,
                    security,
                    ..
                } = self.finish_ntlm(&mut ntlm, token)?;
                self.ntlm_security = security;
                Ok((
                    State::Finished,
                    Step::Done {
                        identity,
                        session_key,
                        out_token: Vec::new(),
                    },
                ))
            }
            State::Finished => Err(AuthFailure::UnexpectedToken),
        }
    }

    fn finish_ntlm(&self, ntlm: &mut NtlmServer, token: &[u8]) -> Result<Finished, AuthFailure> {
        Ok(match ntlm.authenticate(token, &self.users)? {
            NtlmOutcome::User {
                user,
                domain,
                workstation,
                session_key,
                security,
                mic_verified,
            } => Finished {
                identity: Identity::User {
                    user,
                    domain,
                    workstation,
                },
                session_key: session_key.to_vec(),
                security: Some(*security),
                mic_verified,
            },
            NtlmOutcome::Anonymous => Finished {
                identity: Identity::Anonymous,
                session_key: Vec::new(),
                security: None,
                mic_verified: false,
            },
        })
    }
}

/// The result of a mechanism's last step.
struct Finished {
    identity: Identity,
    session_key: Vec<u8>,
    security: Option<SessionSecurity>,
    /// The mechanism's own message integrity check was present and good.
    mic_verified: bool,
}

fn expect_resp(token: &[u8]) -> Result<NegTokenResp<'_>, AuthFailure> {
    match spnego::parse_client_token(token)? {
        ClientToken::Resp(r) if r.neg_state != Some(NegState::Reject) => Ok(r),
        _ => Err(AuthFailure::UnexpectedToken),
    }
}
