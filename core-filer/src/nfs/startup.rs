//! What the `nfs` core filer asks once at start, on a connection of its own:
//! the portmapper for MOUNT's port, MOUNT for the export's root handle, and
//! FSINFO for the transfer sizes.

use super::*;

/// Ask the portmapper at `pm` for the TCP port of MOUNT v3.
pub(super) fn mount_port_of(pm: SocketAddr) -> io::Result<u16> {
    let res = client::blocking_call(pm, START_TIMEOUT, |c| c.getport(mount::PROGRAM, mount::VERSION))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("portmapper at {pm}: {e} (name the port with ?mountport=N)"),
            )
        })?;
    nfs_proto::client::port(res).map_err(|_| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("portmapper at {pm}: MOUNT v3 over TCP is not registered"),
        )
    })
}

/// MOUNT v3 MNT: the export's root handle.
pub(super) fn mnt(at: SocketAddr, export: &str) -> io::Result<NfsFh3> {
    let args = DirPath::new(Bytes::copy_from_slice(export.as_bytes())).to_bytes();
    let mnt = MountProc3::Mnt as u32;
    let mut res = as_root(at, mount::PROGRAM, mount::VERSION, mnt, args)
        .map_err(|e| io::Error::new(e.kind(), format!("MOUNT at {at}: {e}")))?;
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("MOUNT {export} at {at}: {why}"),
        )
    };
    match MountRes3::decode(&mut res).map_err(|e| bad(e.to_string()))? {
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
    let args = GetAttr3Args { object: root.clone() }.to_bytes();
    let fsinfo = NfsProc3::Fsinfo as u32;
    let mut res = as_root(addr, nfs3::PROGRAM, nfs3::VERSION, fsinfo, args)
        .map_err(|e| io::Error::new(e.kind(), format!("FSINFO at {addr}: {e}")))?;
    let r = Fsinfo3Res::decode(&mut res)
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

/// One call at start, as root over AUTH_SYS; its results.
fn as_root(at: SocketAddr, prog: u32, vers: u32, proc_: u32, args: Bytes) -> io::Result<nfs_proto::Decoder> {
    let cred = auth_sys(&Credentials::root());
    client::blocking_call(at, START_TIMEOUT, |c| c.call(prog, vers, proc_, &cred, &[args]))
}
