//! What every front end needs from the engine to serve: listeners that
//! every shard accepts on (`SO_REUSEPORT`), and the directory a configured
//! path (an export, a share) names.

use std::net::{SocketAddr, TcpListener};

use crate::types::{Credentials, FileType};
use crate::{Engine, Error, FileHandle, Result};

/// A TCP listener with SO_REUSEPORT, so every shard can accept on the port.
pub fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // "[::]" serves IPv4 clients too.
        let _ = s.set_only_v6(false);
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// One listener per shard on `addr` (a free port when it is 0), and the
/// address they share. A port another program holds is an error, not
/// shared: it is probed without SO_REUSEPORT first.
pub fn listeners_for_shards(
    addr: SocketAddr,
    shards: usize,
) -> std::result::Result<(SocketAddr, Vec<TcpListener>), (SocketAddr, std::io::Error)> {
    if addr.port() != 0 {
        drop(TcpListener::bind(addr).map_err(|e| (addr, e))?);
    }
    let first = reuseport_listener(addr).map_err(|e| (addr, e))?;
    let bound = first.local_addr().map_err(|e| (addr, e))?;
    let mut all = vec![first];
    for _ in 1..shards {
        all.push(reuseport_listener(bound).map_err(|e| (bound, e))?);
    }
    Ok((bound, all))
}

impl Engine {
    /// The handle of the directory `/a/b` names under the core filer's root.
    pub async fn resolve_dir(&self, path: &str) -> Result<FileHandle> {
        let mut fh = self.root();
        let root = Credentials::root();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            let (h, attr, _) = self.lookup(&root, &fh, c.as_bytes()).await?;
            if attr.ftype != FileType::Directory {
                return Err(Error::NotDir);
            }
            fh = h;
        }
        Ok(fh)
    }
}
