//! Portmapper version 2 (RFC 1833 section 3): program 100000, on port 111.

use crate::xdr::{decode_linked, encode_linked, Decoder, Encoder, Result, Xdr};
use crate::{xdr_enum, xdr_struct};

pub const PROGRAM: u32 = 100000;
pub const VERSION: u32 = 2;
pub const PORT: u16 = 111;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;

xdr_enum! {
    pub enum PmapProc {
        Null = 0,
        Set = 1,
        Unset = 2,
        Getport = 3,
        Dump = 4,
        Callit = 5,
    }
}

xdr_struct! {
    /// Arguments of SET, UNSET and GETPORT; one entry of DUMP.
    pub struct Mapping {
        pub prog: u32,
        pub vers: u32,
        pub prot: u32,
        pub port: u32,
    }
}

/// pmaplist: the DUMP reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PmapList(pub Vec<Mapping>);

impl Xdr for PmapList {
    fn encode(&self, e: &mut Encoder) {
        encode_linked(e, &self.0)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(PmapList(decode_linked(d, usize::MAX)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::tests::round_trip;

    #[test]
    fn portmap_types_round_trip() {
        let m = Mapping {
            prog: 100003,
            vers: 3,
            prot: IPPROTO_TCP,
            port: 2049,
        };
        round_trip(&m);
        round_trip(&PmapList(vec![m.clone(), m]));
        round_trip(&PmapList::default());
        for p in PmapProc::ALL {
            round_trip(p);
        }
    }
}
