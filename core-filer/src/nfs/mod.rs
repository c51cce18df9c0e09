//! The `nfs` core filer: an NFSv3 export of an upstream NAS, reached through
//! `nfs-proto`'s sans-IO RPC client over connections of each shard runtime.
//!
//! Every [`CoreFiler`] method is one NFSv3 procedure (or a few), sent with
//! the caller's AUTH_SYS identity; the upstream checks permissions and
//! applies its export rules (root squashing included). Upstream handles are
//! mapped into ours by [`handles`], replies are decoded with `nfs-proto`'s
//! codecs and nothing the upstream sends can make us panic: a reply that does
//! not decode is an I/O error. Connections, retries and timeouts live in
//! [`client`] (opening a socket from a reserved port in [`connect`]); per-shard state (connections, a copy of the handle map, READDIR
//! cookie verifiers) is kept per thread, so calls take no lock. Unstable
//! writes waiting for a COMMIT are recorded per filer in [`unstable`].
//! The methods themselves are in [`procs`], the conversions between NFSv3's
//! types and ours in [`crate::nfs3`] (shared with the NFS front end), paged listings in [`listing`], and what is
//! asked once at start (portmapper, MOUNT, FSINFO) in [`startup`].

mod client;
mod connect;
mod convert;
mod handles;
mod listing;
mod procs;
mod startup;
#[cfg(test)]
mod tests;
mod unstable;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use nfs_proto::mount::{self, DirPath, MountProc3, MountRes3};
use nfs_proto::nfs3::{self, *};
use nfs_proto::rpc::{AuthSysParams, OpaqueAuth, MAX_AUTH_SYS_GIDS};
use nfs_proto::xdr::{List, Opaque};
use nfs_proto::{portmap, Encoder, Xdr};

use self::client::{ClientConfig, Pool};
use self::convert::*;
use self::handles::{Digest, HandleMap, Ours};
use self::startup::{fsinfo, mnt, mount_port_of};
use self::unstable::Unstable;
use crate::types::*;
use crate::{CoreFiler, FilerCreated, FilerDirEntryPlus, FilerRead, FilerWrite};
use crate::{Error, Result};

/// Where the upstream export is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsConfig {
    pub host: String,
    /// NFS port (2049 by default).
    pub port: u16,
    /// Export path, as the upstream's MOUNT service knows it.
    pub export: String,
    /// MOUNT service port; `None` asks the portmapper on `host:111`.
    pub mount_port: Option<u16>,
    /// TCP connections per shard.
    pub connections: usize,
    /// Longest one call may take, retries included.
    pub timeout: Duration,
    /// Wait for one transmission's answer before sending it again.
    pub attempt_timeout: Duration,
    /// Carry short upstream handles inline (tests turn this off to send every
    /// handle through the persistent map).
    pub inline_handles: bool,
}

impl NfsConfig {
    pub const DEFAULT_CONNECTIONS: usize = 2;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);

    pub fn new(host: impl Into<String>, port: u16, export: impl Into<String>) -> Self {
        NfsConfig {
            host: host.into(),
            port,
            export: export.into(),
            mount_port: None,
            connections: Self::DEFAULT_CONNECTIONS,
            timeout: Self::DEFAULT_TIMEOUT,
            attempt_timeout: Duration::from_secs(10),
            inline_handles: true,
        }
    }
}

/// An NFSv3 export as a core filer.
pub struct NfsFiler {
    inner: Arc<Inner>,
}

struct Inner {
    client: ClientConfig,
    root: FilerHandle,
    rtmax: u32,
    wtmax: u32,
    dtpref: u32,
    handles: HandleMap,
    /// Unstable writes not committed yet, for every shard.
    unstable: Mutex<Unstable>,
}

/// What one shard thread keeps for one filer.
struct Local {
    pool: Rc<Pool>,
    /// Digests this shard has resolved (a lock-free copy of the map's part it uses).
    digests: RefCell<HashMap<Digest, Bytes>>,
    /// The AUTH_SYS credential of the last caller, encoded.
    cred: RefCell<Option<(Credentials, OpaqueAuth)>>,
    /// READDIR cookie verifier per directory, for listings that resume.
    cookieverfs: RefCell<HashMap<FilerHandle, u64>>,
}

/// Bound on the per-shard maps above; past it they start over.
const LOCAL_MAP_MAX: usize = 64 * 1024;
/// Files with unstable writes waiting for a COMMIT; writes to more go stable.
const UNSTABLE_FILES_MAX: usize = 64 * 1024;
/// AUTH_SYS machine name.
const MACHINE_NAME: &[u8] = b"weir";
/// Bound on the calls made at start (portmapper, MOUNT, FSINFO).
const START_TIMEOUT: Duration = Duration::from_secs(15);
static ZEROS: [u8; 4] = [0; 4];

thread_local! {
    static LOCAL: RefCell<Vec<(Weak<Inner>, Rc<Local>)>> = const { RefCell::new(Vec::new()) };
}

impl NfsFiler {
    /// Mount `cfg.export` and open the handle map in `state_dir`. Blocking:
    /// call before the engine starts.
    pub fn connect(cfg: &NfsConfig, state_dir: &Path) -> io::Result<NfsFiler> {
        let addr = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}: no address", cfg.host)))?;
        let mount_port = match cfg.mount_port {
            Some(p) => p,
            None => mount_port_of(SocketAddr::new(addr.ip(), portmap::PORT))?,
        };
        let root_up = mnt(SocketAddr::new(addr.ip(), mount_port), &cfg.export)?;
        let (rtmax, wtmax, dtpref) = fsinfo(addr, &root_up)?;
        let id = blake3::hash(format!("{}:{}{}", cfg.host, cfg.port, cfg.export).as_bytes());
        let hex: String = id.as_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect();
        let handles = HandleMap::open(
            &state_dir.join(format!("nfs-handles-{hex}.map")),
            cfg.inline_handles,
        )?;
        let root = handles
            .intern(&[root_up.as_bytes()])
            .map_err(|e| io::Error::other(format!("recording the root handle: {e}")))?[0];
        tracing::info!(
            "nfs core filer {}:{}{} mounted (rtmax {rtmax}, wtmax {wtmax})",
            cfg.host,
            cfg.port,
            cfg.export
        );
        Ok(NfsFiler {
            inner: Arc::new(Inner {
                client: ClientConfig {
                    addr,
                    connections: cfg.connections.max(1),
                    attempt_timeout: cfg.attempt_timeout,
                    total_timeout: cfg.timeout,
                },
                root,
                rtmax,
                wtmax,
                dtpref,
                handles,
                unstable: Mutex::new(Unstable::new(UNSTABLE_FILES_MAX)),
            }),
        })
    }

    /// The filer's record of unstable writes (held only between awaits).
    fn unstable(&self) -> std::sync::MutexGuard<'_, Unstable> {
        self.inner
            .unstable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This thread's state for this filer.
    fn local(&self) -> Rc<Local> {
        LOCAL.with(|all| {
            let mut all = all.borrow_mut();
            let me = Arc::as_ptr(&self.inner);
            if let Some((_, l)) = all.iter().find(|(w, _)| w.as_ptr() == me && w.strong_count() > 0) {
                return l.clone();
            }
            all.retain(|(w, _)| w.strong_count() > 0);
            let l = Rc::new(Local {
                pool: Pool::new(self.inner.client.clone()),
                digests: RefCell::default(),
                cred: RefCell::default(),
                cookieverfs: RefCell::default(),
            });
            all.push((Arc::downgrade(&self.inner), l.clone()));
            l
        })
    }

    /// The upstream handle behind one of ours.
    fn upstream(&self, l: &Local, fh: &FilerHandle) -> Result<NfsFh3> {
        match handles::parse(fh)? {
            Ours::Inline(b) => Ok(Opaque::new(Bytes::copy_from_slice(b))),
            Ours::Digest(d) => {
                if let Some(b) = l.digests.borrow().get(&d) {
                    return Ok(Opaque(b.clone()));
                }
                let b = self.inner.handles.get(&d).ok_or(Error::Stale)?;
                remember(&l.digests, d, b.clone());
                Ok(Opaque(b))
            }
        }
    }

    /// Our handles for upstream ones.
    fn ours(&self, l: &Local, ups: &[&NfsFh3]) -> Result<Vec<FilerHandle>> {
        let map = &self.inner.handles;
        let mut out = Vec::with_capacity(ups.len());
        let mut todo = Vec::new();
        for (i, up) in ups.iter().enumerate() {
            let b = up.as_bytes();
            if b.is_empty() {
                return Err(Error::Io);
            }
            if map.inline() && b.len() <= handles::INLINE_MAX {
                out.push(handles::inline_handle(b)?);
                continue;
            }
            let d = handles::digest(b);
            if !l.digests.borrow().contains_key(&d) {
                todo.push(i);
            }
            out.push(handles::digest_handle(&d));
        }
        if !todo.is_empty() {
            let raw: Vec<&[u8]> = todo.iter().map(|&i| ups[i].as_bytes()).collect();
            map.intern(&raw)?;
            for &i in &todo {
                // A copy: a slice would keep the whole reply record alive.
                let up = Bytes::copy_from_slice(ups[i].as_bytes());
                remember(&l.digests, handles::digest(&up), up);
            }
        }
        Ok(out)
    }

    fn our(&self, l: &Local, up: &NfsFh3) -> Result<FilerHandle> {
        Ok(self.ours(l, &[up])?[0])
    }

    /// One NFSv3 call; the results decoded as `R`, and whether the call
    /// went out more than once.
    async fn call<R: Xdr>(
        &self,
        l: &Local,
        cred: &Credentials,
        p: NfsProc3,
        args: &[Bytes],
    ) -> Result<(R, bool)> {
        let auth = l.auth(cred);
        let reply = l
            .pool
            .call(nfs3::PROGRAM, nfs3::VERSION, p as u32, &auth, args)
            .await?;
        let mut d = reply.results;
        match R::decode(&mut d) {
            Ok(r) => Ok((r, reply.retransmitted)),
            Err(e) => {
                tracing::warn!("NFS upstream: undecodable {p:?} reply: {e}");
                Err(Error::Io)
            }
        }
    }

    async fn getattr_up(&self, l: &Local, cred: &Credentials, fh: &NfsFh3) -> Result<Attr> {
        let args = [GetAttr3Args { object: fh.clone() }.to_bytes()];
        let (r, _) = self
            .call::<GetAttr3Res>(l, cred, NfsProc3::Getattr, &args)
            .await?;
        Ok(attr(&ok(r)?))
    }

    /// Post-op attributes, fetched when the upstream left them out.
    async fn attr_or_fetch(&self, l: &Local, cred: &Credentials, fh: &NfsFh3, a: PostOpAttr) -> Result<Attr> {
        match a {
            Some(a) => Ok(attr(&a)),
            None => self.getattr_up(l, cred, fh).await,
        }
    }

    async fn lookup_up(
        &self,
        l: &Local,
        cred: &Credentials,
        dir: NfsFh3,
        name: &[u8],
    ) -> Result<(NfsFh3, Attr)> {
        let args = [DirOpArgs3 {
            dir,
            name: Opaque::new(Bytes::copy_from_slice(name)),
        }
        .to_bytes()];
        let (r, _) = self.call::<Lookup3Res>(l, cred, NfsProc3::Lookup, &args).await?;
        let found = ok(r)?;
        let a = self
            .attr_or_fetch(l, cred, &found.object, found.obj_attributes)
            .await?;
        Ok((found.object, a))
    }

    /// After a retransmitted call that changes a name failed with `err`:
    /// whether `name` in `dir` now is what the first transmission made.
    async fn made_by_us(
        &self,
        l: &Local,
        cred: &Credentials,
        dir: &NfsFh3,
        name: &[u8],
        is_ours: impl Fn(&Attr) -> bool,
    ) -> Option<(NfsFh3, Attr)> {
        match self.lookup_up(l, cred, dir.clone(), name).await {
            Ok((fh, a)) if is_ours(&a) => Some((fh, a)),
            _ => None,
        }
    }

    async fn write_chunk(
        &self,
        l: &Local,
        cred: &Credentials,
        fh: &NfsFh3,
        offset: u64,
        data: Bytes,
        stable: StableHow,
    ) -> Result<Write3Ok> {
        let mut e = Encoder::with_capacity(96);
        fh.encode(&mut e);
        e.u64(offset);
        e.u32(data.len() as u32);
        stable.encode(&mut e);
        e.u32(data.len() as u32);
        let pad = nfs_proto::xdr::pad(data.len());
        let args = [e.into_bytes(), data, Bytes::from_static(&ZEROS[..pad])];
        let (r, _) = self.call::<Write3Res>(l, cred, NfsProc3::Write, &args).await?;
        ok(r)
    }
}

impl Local {
    fn auth(&self, cred: &Credentials) -> OpaqueAuth {
        let mut last = self.cred.borrow_mut();
        if let Some((c, a)) = &*last {
            if c == cred {
                return a.clone();
            }
        }
        let a = auth_sys(cred);
        *last = Some((cred.clone(), a.clone()));
        a
    }
}

/// Insert into a per-shard map, starting it over when it grew too big.
fn remember<K: std::hash::Hash + Eq, V>(m: &RefCell<HashMap<K, V>>, k: K, v: V) {
    let mut m = m.borrow_mut();
    if m.len() >= LOCAL_MAP_MAX {
        m.clear();
    }
    m.insert(k, v);
}

fn auth_sys(cred: &Credentials) -> OpaqueAuth {
    OpaqueAuth::sys(&AuthSysParams {
        stamp: 0,
        machine_name: Opaque::new(Bytes::from_static(MACHINE_NAME)),
        uid: cred.uid,
        gid: cred.gid,
        gids: List(cred.gids.iter().take(MAX_AUTH_SYS_GIDS).copied().collect()),
    })
}
