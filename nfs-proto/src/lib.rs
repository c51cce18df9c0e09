//! Sans-IO codecs for Weir's NFS side: XDR, ONC RPC messages, TCP record
//! marking, and the arguments and results (both directions) of NFSv3,
//! MOUNT v3, portmapper v2, NLM v4 and NSM; and the sans-IO RPC client
//! ([`client`]) that every caller of another RPC server builds on.
//!
//! Shared by the NFS front end (server) and the NFS core filer (client), so
//! each codec exists once. It must do no I/O (the client's only state is
//! its next xid and the reply bytes it was given), and no input may make it
//! panic or allocate more than the input justifies.

pub mod client;
pub mod mount;
pub mod nfs3;
pub mod nlm;
pub mod portmap;
pub mod record;
pub mod rpc;
pub mod xdr;

pub use xdr::{Decoder, Encoder, Opaque, Xdr, XdrError};

/// Decode the arguments of any procedure of the programs in this crate, for
/// fuzzing and tests: `None` when the program, version or procedure is
/// unknown.
pub fn decode_args(prog: u32, vers: u32, proc_: u32, body: bytes::Bytes) -> Option<xdr::Result<()>> {
    use xdr::Xdr as X;
    let mut d = Decoder::new(body);
    let d = &mut d;
    let r = match (prog, vers) {
        (nfs3::PROGRAM, nfs3::VERSION) => {
            nfs3::Nfs3Args::decode(nfs3::NfsProc3::from_u32(proc_)?, d).map(drop)
        }
        (mount::PROGRAM, mount::VERSION) => match mount::MountProc3::from_u32(proc_)? {
            mount::MountProc3::Mnt | mount::MountProc3::Umnt => mount::DirPath::decode(d).map(drop),
            _ => Ok(()),
        },
        (portmap::PROGRAM, portmap::VERSION) => match portmap::PmapProc::from_u32(proc_)? {
            portmap::PmapProc::Set | portmap::PmapProc::Unset | portmap::PmapProc::Getport => {
                portmap::Mapping::decode(d).map(drop)
            }
            _ => Ok(()),
        },
        (nlm::PROGRAM, nlm::VERSION) => {
            use nlm::NlmProc4 as P;
            match P::from_u32(proc_)? {
                P::Null => Ok(()),
                P::Test | P::TestMsg | P::Granted | P::GrantedMsg => nlm::Nlm4TestArgs::decode(d).map(drop),
                P::Lock | P::LockMsg | P::NmLock => nlm::Nlm4LockArgs::decode(d).map(drop),
                P::Cancel | P::CancelMsg => nlm::Nlm4CancArgs::decode(d).map(drop),
                P::Unlock | P::UnlockMsg => nlm::Nlm4UnlockArgs::decode(d).map(drop),
                P::TestRes => nlm::Nlm4TestRes::decode(d).map(drop),
                P::LockRes | P::CancelRes | P::UnlockRes | P::GrantedRes => nlm::Nlm4Res::decode(d).map(drop),
                P::Share | P::Unshare => nlm::Nlm4ShareArgs::decode(d).map(drop),
                P::FreeAll => nlm::Nlm4Notify::decode(d).map(drop),
            }
        }
        (nlm::nsm::PROGRAM, nlm::nsm::VERSION) => {
            use nlm::nsm::SmProc as P;
            match P::from_u32(proc_)? {
                P::Null | P::SimuCrash => Ok(()),
                P::Stat => nlm::nsm::SmName::decode(d).map(drop),
                P::Mon => nlm::nsm::Mon::decode(d).map(drop),
                P::Unmon => nlm::nsm::MonId::decode(d).map(drop),
                P::UnmonAll => nlm::nsm::MyId::decode(d).map(drop),
                P::Notify => nlm::nsm::StatChge::decode(d).map(drop),
            }
        }
        _ => return None,
    };
    Some(r)
}

/// Decode the results of any NFSv3 procedure (for fuzzing the client side).
pub fn decode_nfs3_res(proc_: u32, body: bytes::Bytes) -> Option<xdr::Result<nfs3::Nfs3Res>> {
    let p = nfs3::NfsProc3::from_u32(proc_)?;
    Some(nfs3::Nfs3Res::decode(p, &mut Decoder::new(body)))
}
