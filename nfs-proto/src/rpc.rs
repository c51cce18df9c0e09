//! ONC RPC version 2 messages (RFC 5531): calls, replies, and the AUTH_NONE
//! and AUTH_SYS credentials.

use bytes::Bytes;

use crate::xdr::{Decoder, Encoder, List, Opaque, Result, Xdr, XdrError};
use crate::{xdr_enum, xdr_struct};

pub const RPC_VERSION: u32 = 2;
/// Largest body of a credential or verifier.
pub const MAX_AUTH_BYTES: usize = 400;
/// Longest AUTH_SYS machine name.
pub const MAX_MACHINE_NAME: usize = 255;
/// Most supplementary groups AUTH_SYS carries.
pub const MAX_AUTH_SYS_GIDS: usize = 16;

xdr_enum! {
    pub enum AuthFlavor {
        None = 0,
        Sys = 1,
        Short = 2,
        Dh = 3,
        RpcSecGss = 6,
    }
}

xdr_enum! {
    pub enum AcceptStat {
        Success = 0,
        ProgUnavail = 1,
        ProgMismatch = 2,
        ProcUnavail = 3,
        GarbageArgs = 4,
        SystemErr = 5,
    }
}

xdr_enum! {
    pub enum AuthStat {
        Ok = 0,
        BadCred = 1,
        RejectedCred = 2,
        BadVerf = 3,
        RejectedVerf = 4,
        TooWeak = 5,
        InvalidResp = 6,
        Failed = 7,
    }
}

/// A credential or verifier: flavor and opaque body. Unknown flavors are
/// kept as numbers so the server can refuse them properly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpaqueAuth {
    pub flavor: u32,
    pub body: Bytes,
}

impl OpaqueAuth {
    pub fn none() -> Self {
        OpaqueAuth::default()
    }

    pub fn sys(p: &AuthSysParams) -> Self {
        OpaqueAuth {
            flavor: AuthFlavor::Sys as u32,
            body: p.to_bytes(),
        }
    }
}

impl Xdr for OpaqueAuth {
    fn encode(&self, e: &mut Encoder) {
        e.u32(self.flavor);
        e.opaque(&self.body);
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(OpaqueAuth {
            flavor: d.u32()?,
            body: d.opaque(MAX_AUTH_BYTES)?,
        })
    }
}

xdr_struct! {
    /// AUTH_SYS credentials (RFC 5531 appendix A).
    pub struct AuthSysParams {
        pub stamp: u32,
        pub machine_name: Opaque<MAX_MACHINE_NAME>,
        pub uid: u32,
        pub gid: u32,
        pub gids: List<u32, MAX_AUTH_SYS_GIDS>,
    }
}

/// The header of a call; the procedure's arguments follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHeader {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub cred: OpaqueAuth,
    pub verf: OpaqueAuth,
}

impl Xdr for CallHeader {
    fn encode(&self, e: &mut Encoder) {
        e.u32(self.xid);
        e.u32(0); // CALL
        e.u32(RPC_VERSION);
        e.u32(self.prog);
        e.u32(self.vers);
        e.u32(self.proc_);
        self.cred.encode(e);
        self.verf.encode(e);
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        match decode_call(d) {
            Ok(h) => Ok(h),
            Err(CallError::Xdr(e)) => Err(e),
            Err(_) => Err(XdrError::BadValue),
        }
    }
}

/// Why a record is not a call the server can answer normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// Not even a transaction id, or not a call, or a broken header: drop it.
    Xdr(XdrError),
    /// A reply arrived where calls are expected: ignore it.
    NotACall { xid: u32 },
    /// The RPC version is not 2: answer MSG_DENIED / RPC_MISMATCH.
    RpcMismatch { xid: u32 },
}

impl From<XdrError> for CallError {
    fn from(e: XdrError) -> Self {
        CallError::Xdr(e)
    }
}

/// Decode a call header, leaving `d` at the arguments.
pub fn decode_call(d: &mut Decoder) -> std::result::Result<CallHeader, CallError> {
    let xid = d.u32()?;
    if d.u32()? != 0 {
        return Err(CallError::NotACall { xid });
    }
    if d.u32()? != RPC_VERSION {
        return Err(CallError::RpcMismatch { xid });
    }
    Ok(CallHeader {
        xid,
        prog: d.u32()?,
        vers: d.u32()?,
        proc_: d.u32()?,
        cred: OpaqueAuth::decode(d)?,
        verf: OpaqueAuth::decode(d)?,
    })
}

/// What a server says about a call (the reply body before any results).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyStat {
    /// MSG_ACCEPTED with SUCCESS: results follow.
    Success,
    ProgUnavail,
    ProgMismatch {
        low: u32,
        high: u32,
    },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
    /// MSG_DENIED / RPC_MISMATCH.
    RpcMismatch {
        low: u32,
        high: u32,
    },
    /// MSG_DENIED / AUTH_ERROR.
    AuthError(AuthStat),
}

/// The header of a reply; for `Success` the results follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: u32,
    pub verf: OpaqueAuth,
    pub stat: ReplyStat,
}

impl ReplyHeader {
    /// An accepted reply with an AUTH_NONE verifier.
    pub fn new(xid: u32, stat: ReplyStat) -> Self {
        ReplyHeader {
            xid,
            verf: OpaqueAuth::none(),
            stat,
        }
    }
}

impl Xdr for ReplyHeader {
    fn encode(&self, e: &mut Encoder) {
        e.u32(self.xid);
        e.u32(1); // REPLY
        let accepted = |e: &mut Encoder, s: AcceptStat| {
            e.u32(0); // MSG_ACCEPTED
            self.verf.encode(e);
            e.u32(s as u32);
        };
        match &self.stat {
            ReplyStat::Success => accepted(e, AcceptStat::Success),
            ReplyStat::ProgUnavail => accepted(e, AcceptStat::ProgUnavail),
            ReplyStat::ProgMismatch { low, high } => {
                accepted(e, AcceptStat::ProgMismatch);
                e.u32(*low);
                e.u32(*high);
            }
            ReplyStat::ProcUnavail => accepted(e, AcceptStat::ProcUnavail),
            ReplyStat::GarbageArgs => accepted(e, AcceptStat::GarbageArgs),
            ReplyStat::SystemErr => accepted(e, AcceptStat::SystemErr),
            ReplyStat::RpcMismatch { low, high } => {
                e.u32(1); // MSG_DENIED
                e.u32(0); // RPC_MISMATCH
                e.u32(*low);
                e.u32(*high);
            }
            ReplyStat::AuthError(s) => {
                e.u32(1); // MSG_DENIED
                e.u32(1); // AUTH_ERROR
                s.encode(e);
            }
        }
    }

    fn decode(d: &mut Decoder) -> Result<Self> {
        let xid = d.u32()?;
        if d.u32()? != 1 {
            return Err(XdrError::BadValue);
        }
        match d.u32()? {
            0 => {
                let verf = OpaqueAuth::decode(d)?;
                let stat = match AcceptStat::decode(d)? {
                    AcceptStat::Success => ReplyStat::Success,
                    AcceptStat::ProgUnavail => ReplyStat::ProgUnavail,
                    AcceptStat::ProgMismatch => ReplyStat::ProgMismatch {
                        low: d.u32()?,
                        high: d.u32()?,
                    },
                    AcceptStat::ProcUnavail => ReplyStat::ProcUnavail,
                    AcceptStat::GarbageArgs => ReplyStat::GarbageArgs,
                    AcceptStat::SystemErr => ReplyStat::SystemErr,
                };
                Ok(ReplyHeader { xid, verf, stat })
            }
            1 => {
                let stat = match d.u32()? {
                    0 => ReplyStat::RpcMismatch {
                        low: d.u32()?,
                        high: d.u32()?,
                    },
                    1 => ReplyStat::AuthError(AuthStat::decode(d)?),
                    _ => return Err(XdrError::BadValue),
                };
                Ok(ReplyHeader {
                    xid,
                    verf: OpaqueAuth::none(),
                    stat,
                })
            }
            _ => Err(XdrError::BadValue),
        }
    }
}

/// Encode a whole call: header then arguments.
pub fn encode_call<A: Xdr>(h: &CallHeader, args: &A) -> Bytes {
    let mut e = Encoder::with_capacity(128);
    h.encode(&mut e);
    args.encode(&mut e);
    e.into_bytes()
}

/// Encode a whole successful reply: header then results.
pub fn encode_reply<R: Xdr>(xid: u32, res: &R) -> Bytes {
    let mut e = Encoder::with_capacity(128);
    ReplyHeader::new(xid, ReplyStat::Success).encode(&mut e);
    res.encode(&mut e);
    e.into_bytes()
}

/// Split a reply record into its header and a decoder at the results.
pub fn decode_reply(record: Bytes) -> Result<(ReplyHeader, Decoder)> {
    let mut d = Decoder::new(record);
    let h = ReplyHeader::decode(&mut d)?;
    Ok((h, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::tests::round_trip;

    fn sys() -> AuthSysParams {
        AuthSysParams {
            stamp: 9,
            machine_name: Opaque::new(&b"client7"[..]),
            uid: 1000,
            gid: 100,
            gids: List((0..16).collect()),
        }
    }

    #[test]
    fn calls_and_auth_round_trip() {
        round_trip(&sys());
        round_trip(&CallHeader {
            xid: 1,
            prog: 100003,
            vers: 3,
            proc_: 4,
            cred: OpaqueAuth::sys(&sys()),
            verf: OpaqueAuth::none(),
        });
        for f in AuthFlavor::ALL {
            round_trip(f);
        }
        round_trip(&OpaqueAuth {
            flavor: 77,
            body: Bytes::from_static(b"xyz"),
        });
    }

    #[test]
    fn replies_round_trip() {
        for stat in [
            ReplyStat::Success,
            ReplyStat::ProgUnavail,
            ReplyStat::ProgMismatch { low: 3, high: 3 },
            ReplyStat::ProcUnavail,
            ReplyStat::GarbageArgs,
            ReplyStat::SystemErr,
            ReplyStat::RpcMismatch { low: 2, high: 2 },
            ReplyStat::AuthError(AuthStat::TooWeak),
        ] {
            round_trip(&ReplyHeader::new(5, stat));
        }
    }

    #[test]
    fn auth_sys_limits() {
        let mut p = sys();
        p.gids = List((0..17).collect());
        assert_eq!(AuthSysParams::from_bytes(p.to_bytes()), Err(XdrError::TooLong));
        let mut p = sys();
        p.machine_name = Opaque::new(vec![b'a'; 256]);
        assert_eq!(AuthSysParams::from_bytes(p.to_bytes()), Err(XdrError::TooLong));
    }

    #[test]
    fn call_errors() {
        let mut e = Encoder::new();
        e.u32(7);
        e.u32(0);
        e.u32(3);
        let mut d = Decoder::new(e.into_bytes());
        assert_eq!(decode_call(&mut d), Err(CallError::RpcMismatch { xid: 7 }));
        let mut d = Decoder::new(encode_reply(9, &1u32));
        assert_eq!(decode_call(&mut d), Err(CallError::NotACall { xid: 9 }));
        let mut d = Decoder::new(Bytes::from_static(&[1, 2]));
        assert_eq!(decode_call(&mut d), Err(CallError::Xdr(XdrError::Truncated)));
    }
}
