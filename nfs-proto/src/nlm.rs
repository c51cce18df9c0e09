//! NLM version 4 (X/Open "Protocols for Interworking: XNFS", chapter 14):
//! program 100021; and the NSM status monitor (program 100024) it relies on.

use crate::xdr::{Opaque, Xdr};
use crate::{xdr_enum, xdr_struct};

pub const PROGRAM: u32 = 100021;
pub const VERSION: u32 = 4;
pub const LM_MAXSTRLEN: usize = 1024;
pub const MAXNETOBJ_SZ: usize = 1024;

pub type NetObj = Opaque<MAXNETOBJ_SZ>;
pub type CallerName = Opaque<LM_MAXSTRLEN>;

xdr_enum! {
    pub enum NlmProc4 {
        Null = 0,
        Test = 1,
        Lock = 2,
        Cancel = 3,
        Unlock = 4,
        Granted = 5,
        TestMsg = 6,
        LockMsg = 7,
        CancelMsg = 8,
        UnlockMsg = 9,
        GrantedMsg = 10,
        TestRes = 11,
        LockRes = 12,
        CancelRes = 13,
        UnlockRes = 14,
        GrantedRes = 15,
        Share = 20,
        Unshare = 21,
        NmLock = 22,
        FreeAll = 23,
    }
}

xdr_enum! {
    pub enum Nlm4Stat {
        Granted = 0,
        Denied = 1,
        DeniedNoLocks = 2,
        Blocked = 3,
        DeniedGracePeriod = 4,
        Deadlck = 5,
        RoFs = 6,
        StaleFh = 7,
        FBig = 8,
        Failed = 9,
    }
}

xdr_struct! {
    pub struct Nlm4Holder {
        pub exclusive: bool,
        pub svid: i32,
        pub oh: NetObj,
        pub l_offset: u64,
        pub l_len: u64,
    }
}

xdr_struct! {
    pub struct Nlm4Lock {
        pub caller_name: CallerName,
        pub fh: NetObj,
        pub oh: NetObj,
        pub svid: i32,
        pub l_offset: u64,
        pub l_len: u64,
    }
}

/// nlm4_testrply: DENIED carries the conflicting holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nlm4TestReply {
    Denied(Nlm4Holder),
    Other(Nlm4Stat),
}

impl Xdr for Nlm4TestReply {
    fn encode(&self, e: &mut crate::xdr::Encoder) {
        match self {
            Nlm4TestReply::Denied(h) => {
                Nlm4Stat::Denied.encode(e);
                h.encode(e);
            }
            Nlm4TestReply::Other(s) => s.encode(e),
        }
    }
    fn decode(d: &mut crate::xdr::Decoder) -> crate::xdr::Result<Self> {
        match Nlm4Stat::decode(d)? {
            Nlm4Stat::Denied => Ok(Nlm4TestReply::Denied(Nlm4Holder::decode(d)?)),
            s => Ok(Nlm4TestReply::Other(s)),
        }
    }
}

xdr_struct! {
    pub struct Nlm4TestRes {
        pub cookie: NetObj,
        pub stat: Nlm4TestReply,
    }
}

xdr_struct! {
    pub struct Nlm4Res {
        pub cookie: NetObj,
        pub stat: Nlm4Stat,
    }
}

xdr_struct! {
    /// Arguments of TEST, TEST_MSG, GRANTED and GRANTED_MSG.
    pub struct Nlm4TestArgs {
        pub cookie: NetObj,
        pub exclusive: bool,
        pub alock: Nlm4Lock,
    }
}

xdr_struct! {
    /// Arguments of LOCK, LOCK_MSG and NM_LOCK.
    pub struct Nlm4LockArgs {
        pub cookie: NetObj,
        pub block: bool,
        pub exclusive: bool,
        pub alock: Nlm4Lock,
        pub reclaim: bool,
        pub state: i32,
    }
}

xdr_struct! {
    pub struct Nlm4CancArgs {
        pub cookie: NetObj,
        pub block: bool,
        pub exclusive: bool,
        pub alock: Nlm4Lock,
    }
}

xdr_struct! {
    pub struct Nlm4UnlockArgs {
        pub cookie: NetObj,
        pub alock: Nlm4Lock,
    }
}

xdr_enum! {
    pub enum Fsh4Mode {
        DenyNone = 0,
        DenyRead = 1,
        DenyWrite = 2,
        DenyReadWrite = 3,
    }
}

xdr_enum! {
    pub enum Fsh4Access {
        None = 0,
        Read = 1,
        Write = 2,
        ReadWrite = 3,
    }
}

xdr_struct! {
    pub struct Nlm4Share {
        pub caller_name: CallerName,
        pub fh: NetObj,
        pub oh: NetObj,
        pub mode: Fsh4Mode,
        pub access: Fsh4Access,
    }
}

xdr_struct! {
    pub struct Nlm4ShareArgs {
        pub cookie: NetObj,
        pub share: Nlm4Share,
        pub reclaim: bool,
    }
}

xdr_struct! {
    pub struct Nlm4ShareRes {
        pub cookie: NetObj,
        pub stat: Nlm4Stat,
        pub sequence: i32,
    }
}

xdr_struct! {
    /// Arguments of FREE_ALL: a client rebooted.
    pub struct Nlm4Notify {
        pub name: CallerName,
        pub state: i32,
    }
}

/// NSM, the network status monitor (statd).
pub mod nsm {
    use super::*;

    pub const PROGRAM: u32 = 100024;
    pub const VERSION: u32 = 1;
    pub const SM_MAXSTRLEN: usize = 1024;
    pub type SmName = Opaque<SM_MAXSTRLEN>;

    xdr_enum! {
        pub enum SmProc {
            Null = 0,
            Stat = 1,
            Mon = 2,
            Unmon = 3,
            UnmonAll = 4,
            SimuCrash = 5,
            Notify = 6,
        }
    }

    xdr_enum! {
        pub enum SmRes {
            Success = 0,
            Failure = 1,
        }
    }

    xdr_struct! {
        pub struct MyId {
            pub my_name: SmName,
            pub my_prog: i32,
            pub my_vers: i32,
            pub my_proc: i32,
        }
    }

    xdr_struct! {
        pub struct MonId {
            pub mon_name: SmName,
            pub my_id: MyId,
        }
    }

    xdr_struct! {
        pub struct Mon {
            pub mon_id: MonId,
            pub priv_: [u8; 16],
        }
    }

    xdr_struct! {
        pub struct SmStatRes {
            pub res_stat: SmRes,
            pub state: i32,
        }
    }

    xdr_struct! {
        /// SM_NOTIFY arguments: `mon_name` restarted and is now in `state`.
        pub struct StatChge {
            pub mon_name: SmName,
            pub state: i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nsm::*;
    use super::*;
    use crate::xdr::tests::round_trip;

    fn lock() -> Nlm4Lock {
        Nlm4Lock {
            caller_name: Opaque::new(&b"client1"[..]),
            fh: Opaque::new(vec![9u8; 30]),
            oh: Opaque::new(&b"owner-77"[..]),
            svid: 1234,
            l_offset: 100,
            l_len: 0,
        }
    }

    #[test]
    fn nlm_types_round_trip() {
        let cookie = NetObj::new(&b"\x00\x01\x02"[..]);
        round_trip(&Nlm4TestArgs {
            cookie: cookie.clone(),
            exclusive: true,
            alock: lock(),
        });
        round_trip(&Nlm4LockArgs {
            cookie: cookie.clone(),
            block: true,
            exclusive: false,
            alock: lock(),
            reclaim: false,
            state: 3,
        });
        round_trip(&Nlm4CancArgs {
            cookie: cookie.clone(),
            block: true,
            exclusive: true,
            alock: lock(),
        });
        round_trip(&Nlm4UnlockArgs {
            cookie: cookie.clone(),
            alock: lock(),
        });
        round_trip(&Nlm4TestRes {
            cookie: cookie.clone(),
            stat: Nlm4TestReply::Denied(Nlm4Holder {
                exclusive: true,
                svid: 9,
                oh: Opaque::new(&b"o"[..]),
                l_offset: 0,
                l_len: 10,
            }),
        });
        round_trip(&Nlm4TestRes {
            cookie: cookie.clone(),
            stat: Nlm4TestReply::Other(Nlm4Stat::Granted),
        });
        for s in Nlm4Stat::ALL {
            round_trip(&Nlm4Res {
                cookie: cookie.clone(),
                stat: *s,
            });
        }
        round_trip(&Nlm4ShareArgs {
            cookie: cookie.clone(),
            share: Nlm4Share {
                caller_name: Opaque::new(&b"c"[..]),
                fh: Opaque::new(vec![1u8; 8]),
                oh: Opaque::new(&b"o"[..]),
                mode: Fsh4Mode::DenyWrite,
                access: Fsh4Access::Read,
            },
            reclaim: false,
        });
        round_trip(&Nlm4ShareRes {
            cookie,
            stat: Nlm4Stat::Granted,
            sequence: 0,
        });
        round_trip(&Nlm4Notify {
            name: Opaque::new(&b"client1"[..]),
            state: 5,
        });
        for p in NlmProc4::ALL {
            round_trip(p);
        }
    }

    #[test]
    fn nsm_types_round_trip() {
        let my_id = MyId {
            my_name: Opaque::new(&b"server"[..]),
            my_prog: 100021,
            my_vers: 4,
            my_proc: 16,
        };
        round_trip(&Mon {
            mon_id: MonId {
                mon_name: Opaque::new(&b"client"[..]),
                my_id,
            },
            priv_: [3; 16],
        });
        round_trip(&SmStatRes {
            res_stat: SmRes::Success,
            state: 3,
        });
        round_trip(&StatChge {
            mon_name: Opaque::new(&b"client"[..]),
            state: 7,
        });
        for p in SmProc::ALL {
            round_trip(p);
        }
    }
}
