//! What the `nfs` core filer asks once at start, on a connection of its own:
//! the portmapper for MOUNT's port, MOUNT for the export's root handle, and
//! FSINFO for the transfer sizes.

use super::*;

/// Ask the portmapper at `pm` for the TCP port of MOUNT v3.
pub(super) fn mount_port_of(pm: SocketAddr) -> io::Result<u16> {
    let args = portmap::Mapping {
        prog: mount::PROGRAM,
        vers: mount::VERSION,
        prot: portmap::IPPROTO_TCP,
        port: 0,
    };
    let res = client::blocking_call(
        pm,
        portmap::PROGRAM,
        portmap::VERSION,
        portmap::PmapProc::Getport as u32,
        OpaqueAuth::none(),
        &args.to_bytes(),
        START_TIMEOUT,
    )
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("portmapper at {pm}: {e} (name the port with ?mountport=N)"),
        )
    })?;
    match u32::from_bytes(res) {
        Ok(p) if p > 0 && p <= u16::MAX as u32 => Ok(p as u16),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("portmapper at {pm}: MOUNT v3 over TCP is not registered"),
        )),
    }
}

/// MOUNT v3 MNT: the export's root handle.
pub(super) fn mnt(at: SocketAddr, export: &str) -> io::Result<NfsFh3> {
    let res = client::blocking_call(
        at,
        mount::PROGRAM,
        mount::VERSION,
        MountProc3::Mnt as u32,
        auth_sys(&Credentials::root()),
        &DirPath::new(Bytes::copy_from_slice(export.as_bytes())).to_bytes(),
        START_TIMEOUT,
    )
    .map_err(|e| io::Error::new(e.kind(), format!("MOUNT at {at}: {e}")))?;
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("MOUNT {export} at {at}: {why}"),
        )
    };
    match MountRes3::decode(&mut nfs_proto::Decoder::new(res)).map_err(|e| bad(e.to_string()))? {
        MountRes3::Ok(ok) => {
            let flavors = &ok.auth_flavors.0;
            let sys = nfs_proto::rpc::AuthFlavor::Sys as u32;
            if !flavors.is_empty() && !flavors.contains(&sys) {
                return Err(bad(format!(
                    "the export does not accept AUTH_SYS (flavors {flavors:?})"
                )));
            }
            if ok.fhandle.as_bytes().is_empty() {
                return Err(bad("empty root handle".into()));
            }
            Ok(ok.fhandle)
        }
        MountRes3::Err(s) => Err(bad(format!("refused: {s:?}"))),
    }
}

/// The export's largest READ and WRITE and preferred READDIR sizes.
pub(super) fn fsinfo(addr: SocketAddr, root: &NfsFh3) -> io::Result<(u32, u32, u32)> {
    let res = client::blocking_call(
        addr,
        nfs3::PROGRAM,
        nfs3::VERSION,
        NfsProc3::Fsinfo as u32,
        auth_sys(&Credentials::root()),
        &GetAttr3Args { object: root.clone() }.to_bytes(),
        START_TIMEOUT,
    )
    .map_err(|e| io::Error::new(e.kind(), format!("FSINFO at {addr}: {e}")))?;
    let r = Fsinfo3Res::decode(&mut nfs_proto::Decoder::new(res))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("FSINFO at {addr}: {e}")))?;
    let limit = |v: u32, default: u32| match v {
        0 => default,
        v => v.min(nfs3::MAX_DATA as u32),
    };
    match r {
        NfsResult::Ok(i) => Ok((
            limit(i.rtmax, 1 << 20),
            limit(i.wtmax, 1 << 20),
            limit(i.dtpref, 64 << 10),
        )),
        NfsResult::Err(s, _) => Err(io::Error::other(format!("FSINFO at {addr}: {s:?}"))),
    }
}
