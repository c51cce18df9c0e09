//! MOUNT version 3 (RFC 1813 appendix I): program 100005.

use crate::nfs3::NfsFh3;
use crate::xdr::{decode_linked, encode_linked, Decoder, Encoder, List, Opaque, Result, Xdr};
use crate::{xdr_enum, xdr_struct};

pub const PROGRAM: u32 = 100005;
pub const VERSION: u32 = 3;
pub const MNTPATHLEN: usize = 1024;
pub const MNTNAMLEN: usize = 255;

pub type DirPath = Opaque<MNTPATHLEN>;
pub type Name = Opaque<MNTNAMLEN>;

xdr_enum! {
    pub enum MountProc3 {
        Null = 0,
        Mnt = 1,
        Dump = 2,
        Umnt = 3,
        Umntall = 4,
        Export = 5,
    }
}

xdr_enum! {
    pub enum MountStat3 {
        Ok = 0,
        Perm = 1,
        NoEnt = 2,
        Io = 5,
        Acces = 13,
        NotDir = 20,
        Inval = 22,
        NameTooLong = 63,
        NotSupp = 10004,
        ServerFault = 10006,
    }
}

xdr_struct! {
    pub struct MountOk {
        pub fhandle: NfsFh3,
        pub auth_flavors: List<u32, 64>,
    }
}

/// mountres3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRes3 {
    Ok(MountOk),
    Err(MountStat3),
}

impl Xdr for MountRes3 {
    fn encode(&self, e: &mut Encoder) {
        match self {
            MountRes3::Ok(ok) => {
                e.u32(0);
                ok.encode(e);
            }
            MountRes3::Err(s) => s.encode(e),
        }
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        match MountStat3::decode(d)? {
            MountStat3::Ok => Ok(MountRes3::Ok(MountOk::decode(d)?)),
            s => Ok(MountRes3::Err(s)),
        }
    }
}

xdr_struct! {
    /// One entry of the DUMP reply (mountbody without its `next` pointer).
    pub struct MountBody {
        pub hostname: Name,
        pub directory: DirPath,
    }
}

/// mountlist: the DUMP reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountList(pub Vec<MountBody>);

impl Xdr for MountList {
    fn encode(&self, e: &mut Encoder) {
        encode_linked(e, &self.0)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(MountList(decode_linked(d, usize::MAX)?))
    }
}

/// groups: the clients an export is offered to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Groups(pub Vec<Name>);

impl Xdr for Groups {
    fn encode(&self, e: &mut Encoder) {
        encode_linked(e, &self.0)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(Groups(decode_linked(d, usize::MAX)?))
    }
}

xdr_struct! {
    pub struct ExportNode {
        pub dir: DirPath,
        pub groups: Groups,
    }
}

/// exports: the EXPORT reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exports(pub Vec<ExportNode>);

impl Xdr for Exports {
    fn encode(&self, e: &mut Encoder) {
        encode_linked(e, &self.0)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(Exports(decode_linked(d, usize::MAX)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::tests::round_trip;

    #[test]
    fn mount_types_round_trip() {
        round_trip(&DirPath::new(&b"/export"[..]));
        round_trip(&MountRes3::Ok(MountOk {
            fhandle: Opaque::new(vec![1u8; 30]),
            auth_flavors: List(vec![1]),
        }));
        for s in MountStat3::ALL.iter().skip(1) {
            round_trip(&MountRes3::Err(*s));
        }
        round_trip(&MountList(vec![MountBody {
            hostname: Opaque::new(&b"10.0.0.1"[..]),
            directory: Opaque::new(&b"/export"[..]),
        }]));
        round_trip(&MountList::default());
        round_trip(&Exports(vec![
            ExportNode {
                dir: Opaque::new(&b"/export"[..]),
                groups: Groups(vec![Opaque::new(&b"*"[..])]),
            },
            ExportNode {
                dir: Opaque::new(&b"/b"[..]),
                groups: Groups::default(),
            },
        ]));
        for p in MountProc3::ALL {
            round_trip(p);
        }
    }
}
