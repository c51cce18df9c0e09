//! The `nfs` core filer: an NFSv3 export of an upstream NAS, reached through
//! an RPC client of our own on the shard runtimes.
//!
//! Every [`CoreFiler`] method is one NFSv3 procedure (or a few), sent with
//! the caller's AUTH_SYS identity; the upstream checks permissions and
//! applies its export rules (root squashing included). Upstream handles are
//! mapped into ours by [`handles`], replies are decoded with `nfs-proto`'s
//! codecs and nothing the upstream sends can make us panic: a reply that does
//! not decode is an I/O error. Connections, retries and timeouts live in
//! [`client`]; per-shard state (connections, a copy of the handle map, READDIR
//! cookie verifiers) is kept per thread, so calls take no lock. Unstable
//! writes waiting for a COMMIT are recorded per filer in [`unstable`].

mod client;
mod handles;
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
use self::handles::{Digest, HandleMap, Ours};
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

    /// The listing of `dir` from `cookie`: one READDIR or READDIRPLUS page
    /// with `.`, `..` and names the engine would refuse left out.
    async fn list<P: ListProc>(
        &self,
        l: &Local,
        cred: &Credentials,
        dir: &FilerHandle,
        mut cookie: u64,
        max: usize,
    ) -> Result<(Vec<P::Entry>, bool)> {
        if max == 0 {
            return Err(Error::TooSmall);
        }
        let dir_up = self.upstream(l, dir)?;
        let mut verf = match cookie {
            0 => 0,
            _ => l.cookieverfs.borrow().get(dir).copied().unwrap_or(0),
        };
        let count = max
            .saturating_mul(64)
            .saturating_add(512)
            .clamp(1024, self.inner.dtpref.max(4096) as usize) as u32;
        let mut out = Vec::new();
        loop {
            let args = [P::args(&dir_up, cookie, verf, count)];
            let (r, _) = self
                .call::<NfsResult<P::Page, PostOpAttr>>(l, cred, P::PROC, &args)
                .await?;
            let (entries, new_verf, eof) = P::page(ok(r)?);
            verf = new_verf;
            if verf != 0 {
                remember(&l.cookieverfs, *dir, verf);
            }
            let Some(last) = entries.last().map(|e| P::name_cookie(e).1) else {
                if eof {
                    return Ok((out, true));
                }
                // Nothing and not the end: a server that cannot make progress.
                return Err(Error::Io);
            };
            let n = entries.len();
            for (i, e) in entries.into_iter().enumerate() {
                let (name, _) = P::name_cookie(&e);
                if name == b"." || name == b".." {
                    continue;
                }
                if check_name(name).is_err() {
                    tracing::debug!(
                        "NFS upstream: skipping directory entry {:?}",
                        String::from_utf8_lossy(name)
                    );
                    continue;
                }
                out.push(e);
                if out.len() == max {
                    return Ok((out, eof && i + 1 == n));
                }
            }
            if eof || !out.is_empty() {
                return Ok((out, eof));
            }
            cookie = last;
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

/// READDIR or READDIRPLUS: how to ask for a page and what comes back.
trait ListProc {
    const PROC: NfsProc3;
    type Page: Xdr;
    type Entry;
    fn args(dir: &NfsFh3, cookie: u64, verf: u64, count: u32) -> Bytes;
    /// Entries, cookie verifier, end of directory.
    fn page(p: Self::Page) -> (Vec<Self::Entry>, u64, bool);
    fn name_cookie(e: &Self::Entry) -> (&[u8], u64);
}

struct Plain;
struct Plus;

impl ListProc for Plain {
    const PROC: NfsProc3 = NfsProc3::Readdir;
    type Page = Readdir3Ok;
    type Entry = Entry3;
    fn args(dir: &NfsFh3, cookie: u64, cookieverf: u64, count: u32) -> Bytes {
        let dir = dir.clone();
        Readdir3Args {
            dir,
            cookie,
            cookieverf,
            count,
        }
        .to_bytes()
    }
    fn page(p: Readdir3Ok) -> (Vec<Entry3>, u64, bool) {
        (p.reply.entries, p.cookieverf, p.reply.eof)
    }
    fn name_cookie(e: &Entry3) -> (&[u8], u64) {
        (e.name.as_bytes(), e.cookie)
    }
}

impl ListProc for Plus {
    const PROC: NfsProc3 = NfsProc3::Readdirplus;
    type Page = Readdirplus3Ok;
    type Entry = EntryPlus3;
    fn args(dir: &NfsFh3, cookie: u64, cookieverf: u64, dircount: u32) -> Bytes {
        let dir = dir.clone();
        // Room for the attributes and handles too.
        let maxcount = dircount.saturating_mul(8).min(1 << 20);
        Readdirplus3Args {
            dir,
            cookie,
            cookieverf,
            dircount,
            maxcount,
        }
        .to_bytes()
    }
    fn page(p: Readdirplus3Ok) -> (Vec<EntryPlus3>, u64, bool) {
        (p.reply.entries, p.cookieverf, p.reply.eof)
    }
    fn name_cookie(e: &EntryPlus3) -> (&[u8], u64) {
        (e.name.as_bytes(), e.cookie)
    }
}

fn ok<T, F>(r: NfsResult<T, F>) -> Result<T> {
    match r {
        NfsResult::Ok(v) => Ok(v),
        NfsResult::Err(s, _) => Err(status_error(s)),
    }
}

/// The engine's error for an upstream status, as the local filer maps the
/// matching errno.
fn status_error(s: NfsStat3) -> Error {
    use NfsStat3 as S;
    match s {
        S::Ok => Error::Io,
        S::Perm => Error::Perm,
        S::NoEnt => Error::NoEnt,
        S::Io | S::NxIo | S::NoDev | S::Remote | S::ServerFault => Error::Io,
        S::Acces => Error::Access,
        S::Exist => Error::Exist,
        S::XDev => Error::XDev,
        S::NotDir => Error::NotDir,
        S::IsDir => Error::IsDir,
        S::Inval => Error::Inval,
        S::FBig => Error::FBig,
        S::NoSpc => Error::NoSpc,
        S::RoFs => Error::RoFs,
        S::MLink => Error::MLink,
        S::NameTooLong => Error::NameTooLong,
        S::NotEmpty => Error::NotEmpty,
        S::DQuot => Error::DQuot,
        // The upstream no longer knows a handle it gave us.
        S::Stale | S::BadHandle => Error::Stale,
        S::NotSync => Error::NotSync,
        S::BadCookie => Error::BadCookie,
        S::NotSupp => Error::NotSupp,
        S::TooSmall => Error::TooSmall,
        S::BadType => Error::BadType,
        S::Jukebox => Error::Jukebox,
    }
}

fn timespec(t: NfsTime3) -> Timespec {
    Timespec {
        sec: i64::from(t.seconds),
        nsec: t.nseconds.min(999_999_999),
    }
}

fn attr(a: &Fattr3) -> Attr {
    let ctime = timespec(a.ctime);
    Attr {
        ftype: match a.ftype {
            Ftype3::Reg => FileType::Regular,
            Ftype3::Dir => FileType::Directory,
            Ftype3::Blk => FileType::BlockDev,
            Ftype3::Chr => FileType::CharDev,
            Ftype3::Lnk => FileType::Symlink,
            Ftype3::Sock => FileType::Socket,
            Ftype3::Fifo => FileType::Fifo,
        },
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.used,
        rdev: (a.rdev.specdata1, a.rdev.specdata2),
        fsid: a.fsid,
        fileid: a.fileid,
        atime: timespec(a.atime),
        mtime: timespec(a.mtime),
        ctime,
        btime: None,
        // ctime moves on every data or metadata change (as for the local filer).
        change: (ctime.sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(u64::from(ctime.nsec)),
    }
}

fn wcc(w: &WccData) -> Wcc {
    Wcc {
        before: w.before.map(|b| crate::types::WccAttr {
            size: b.size,
            mtime: timespec(b.mtime),
            ctime: timespec(b.ctime),
        }),
        after: w.after.as_ref().map(attr),
    }
}

fn set_time(t: SetTime) -> Result<SetTime3> {
    Ok(match t {
        SetTime::DontChange => SetTime3::DontChange,
        SetTime::ServerNow => SetTime3::ServerTime,
        SetTime::Client(ts) => SetTime3::ClientTime(NfsTime3 {
            seconds: u32::try_from(ts.sec).map_err(|_| Error::Inval)?,
            nseconds: if ts.nsec < 1_000_000_000 {
                ts.nsec
            } else {
                return Err(Error::Inval);
            },
        }),
    })
}

fn sattr(a: &SetAttr) -> Result<Sattr3> {
    Ok(Sattr3 {
        mode: a.mode.map(|m| m & 0o7777),
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        atime: set_time(a.atime)?,
        mtime: set_time(a.mtime)?,
    })
}

fn stable_how(s: Stability) -> StableHow {
    match s {
        Stability::Unstable => StableHow::Unstable,
        Stability::DataSync => StableHow::DataSync,
        Stability::FileSync => StableHow::FileSync,
    }
}

fn stability(s: StableHow) -> Stability {
    match s {
        StableHow::Unstable => Stability::Unstable,
        StableHow::DataSync => Stability::DataSync,
        StableHow::FileSync => Stability::FileSync,
    }
}

fn dirop(dir: NfsFh3, name: &[u8]) -> DirOpArgs3 {
    DirOpArgs3 {
        dir,
        name: Opaque::new(Bytes::copy_from_slice(name)),
    }
}

#[async_trait(?Send)]
impl CoreFiler for NfsFiler {
    fn name(&self) -> &str {
        "nfs"
    }

    fn root(&self) -> FilerHandle {
        self.inner.root
    }

    async fn getattr(&self, cred: &Credentials, fh: &FilerHandle) -> Result<Attr> {
        let l = self.local();
        let up = self.upstream(&l, fh)?;
        self.getattr_up(&l, cred, &up).await
    }

    async fn lookup(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
    ) -> Result<(FilerHandle, Attr)> {
        check_name(name)?;
        let l = self.local();
        let dir = self.upstream(&l, dir)?;
        let (up, a) = self.lookup_up(&l, cred, dir, name).await?;
        Ok((self.our(&l, &up)?, a))
    }

    async fn lookup_parent(&self, cred: &Credentials, dir: &FilerHandle) -> Result<(FilerHandle, Attr)> {
        let l = self.local();
        let up = self.upstream(&l, dir)?;
        if *dir == self.inner.root {
            // The root is its own parent: ".." never leads out of the export.
            let a = self.getattr_up(&l, cred, &up).await?;
            return Ok((*dir, a));
        }
        let (parent, a) = self.lookup_up(&l, cred, up, b"..").await?;
        Ok((self.our(&l, &parent)?, a))
    }

    async fn read(&self, cred: &Credentials, fh: &FilerHandle, offset: u64, len: u32) -> Result<FilerRead> {
        let l = self.local();
        let file = self.upstream(&l, fh)?;
        let count = len.min(self.inner.rtmax);
        let args = [Read3Args { file, offset, count }.to_bytes()];
        let (r, _) = self.call::<Read3Res>(&l, cred, NfsProc3::Read, &args).await?;
        let r = ok(r)?;
        if r.data.0.len() > count as usize || r.count as usize != r.data.0.len() {
            tracing::warn!(
                "NFS upstream: READ of {count} answered with {} bytes",
                r.data.0.len()
            );
            return Err(Error::Io);
        }
        Ok(FilerRead {
            data: r.data.0,
            eof: r.eof,
        })
    }

    async fn write(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        offset: u64,
        data: Bytes,
        stability_wanted: Stability,
    ) -> Result<FilerWrite> {
        let l = self.local();
        let up = self.upstream(&l, fh)?;
        if u32::try_from(data.len()).is_err() {
            return Err(Error::Inval);
        }
        if offset.checked_add(data.len() as u64).is_none() {
            return Err(Error::FBig);
        }
        let mut how = stable_how(stability_wanted);
        if how == StableHow::Unstable && !self.unstable().may_defer(fh) {
            how = StableHow::FileSync;
        }
        let chunk = self.inner.wtmax.max(1) as usize;
        let mut done = 0usize;
        let mut committed = Stability::FileSync;
        let mut before = None;
        let mut after = None;
        loop {
            let n = (data.len() - done).min(chunk);
            let part = data.slice(done..done + n);
            let w = self
                .write_chunk(&l, cred, &up, offset + done as u64, part, how)
                .await?;
            if w.count as usize > n {
                return Err(Error::Io);
            }
            if before.is_none() {
                before = w.file_wcc.before;
            }
            if w.file_wcc.after.is_some() {
                after = w.file_wcc.after;
            }
            let c = stability(w.committed);
            self.unstable().wrote(fh, w.verf, c == Stability::Unstable);
            committed = committed.min(c);
            done += w.count as usize;
            if done >= data.len() || (w.count as usize) < n {
                break;
            }
        }
        Ok(FilerWrite {
            count: done as u32,
            committed,
            wcc: wcc(&WccData { before, after }),
        })
    }

    async fn commit(&self, cred: &Credentials, fh: &FilerHandle) -> Result<Wcc> {
        let l = self.local();
        let file = self.upstream(&l, fh)?;
        let args = [Commit3Args {
            file,
            offset: 0,
            count: 0,
        }
        .to_bytes()];
        let start = self.unstable().commit_start();
        let (r, _) = self.call::<Commit3Res>(&l, cred, NfsProc3::Commit, &args).await?;
        let c = ok(r)?;
        if !self.unstable().committed(fh, c.verf, start) {
            // The upstream restarted since those writes: they may be lost.
            tracing::warn!("NFS upstream: write verifier changed before COMMIT; unstable writes may be lost");
            return Err(Error::WritesLost);
        }
        Ok(wcc(&c.file_wcc))
    }

    async fn setattr(&self, cred: &Credentials, fh: &FilerHandle, attrs: &SetAttr) -> Result<Wcc> {
        let l = self.local();
        let object = self.upstream(&l, fh)?;
        let args = [SetAttr3Args {
            object: object.clone(),
            new_attributes: sattr(attrs)?,
            guard: None,
        }
        .to_bytes()];
        let (r, _) = self.call::<WccRes>(&l, cred, NfsProc3::Setattr, &args).await?;
        match r {
            NfsResult::Ok(w) => Ok(wcc(&w)),
            // A size for what is not a regular file: some servers (ganesha)
            // say BADTYPE where POSIX, and so the local filer, says EISDIR or EINVAL.
            NfsResult::Err(NfsStat3::BadType, w) if attrs.size.is_some() => {
                let ftype = match w.after {
                    Some(a) => attr(&a).ftype,
                    None => self.getattr_up(&l, cred, &object).await?.ftype,
                };
                Err(if ftype == FileType::Directory {
                    Error::IsDir
                } else {
                    Error::Inval
                })
            }
            NfsResult::Err(s, _) => Err(status_error(s)),
        }
    }

    async fn create(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
        node: &NewNode,
        attrs: &SetAttr,
    ) -> Result<FilerCreated> {
        check_name(name)?;
        let l = self.local();
        let dir_up = self.upstream(&l, dir)?;
        let sa = sattr(attrs)?;
        let where_ = dirop(dir_up.clone(), name);
        let (proc_, args, want) = match node {
            NewNode::File(how) => {
                let how = match how {
                    CreateMode::Unchecked => CreateHow3::Unchecked(sa.clone()),
                    CreateMode::Guarded => CreateHow3::Guarded(sa.clone()),
                    CreateMode::Exclusive(v) => CreateHow3::Exclusive(*v),
                };
                (
                    NfsProc3::Create,
                    Create3Args { where_, how }.to_bytes(),
                    FileType::Regular,
                )
            }
            NewNode::Directory => (
                NfsProc3::Mkdir,
                Mkdir3Args {
                    where_,
                    attributes: sa.clone(),
                }
                .to_bytes(),
                FileType::Directory,
            ),
            NewNode::Symlink(target) => {
                if target.is_empty() || target.contains(&0) {
                    return Err(Error::Inval);
                }
                if target.len() > nfs3::MAX_PATH {
                    return Err(Error::NameTooLong);
                }
                let args = Symlink3Args {
                    where_,
                    attributes: Sattr3 {
                        mode: None,
                        ..sa.clone()
                    },
                    data: Opaque::new(Bytes::copy_from_slice(target)),
                };
                (NfsProc3::Symlink, args.to_bytes(), FileType::Symlink)
            }
            special => {
                let spec = |ma: u32, mi: u32| SpecData3 {
                    specdata1: ma,
                    specdata2: mi,
                };
                let (what, t) = match special {
                    NewNode::Fifo => (MknodData3::Fifo(sa.clone()), FileType::Fifo),
                    NewNode::Socket => (MknodData3::Sock(sa.clone()), FileType::Socket),
                    NewNode::CharDev(ma, mi) => {
                        (MknodData3::Chr(sa.clone(), spec(*ma, *mi)), FileType::CharDev)
                    }
                    NewNode::BlockDev(ma, mi) => {
                        (MknodData3::Blk(sa.clone(), spec(*ma, *mi)), FileType::BlockDev)
                    }
                    _ => return Err(Error::ServerFault),
                };
                (NfsProc3::Mknod, Mknod3Args { where_, what }.to_bytes(), t)
            }
        };
        let (r, retransmitted) = self.call::<Create3Res>(&l, cred, proc_, &[args]).await?;
        let (obj, mut a, dir_wcc) = match r {
            NfsResult::Ok(c) => {
                let (obj, a) = match c.obj {
                    Some(fh) => {
                        let a = self.attr_or_fetch(&l, cred, &fh, c.obj_attributes).await?;
                        (fh, a)
                    }
                    None => self.lookup_up(&l, cred, dir_up, name).await?,
                };
                (obj, a, c.dir_wcc)
            }
            // Our own first transmission may have made it.
            NfsResult::Err(NfsStat3::Exist, dir_wcc)
                if retransmitted && !matches!(node, NewNode::File(CreateMode::Exclusive(_))) =>
            {
                match self
                    .made_by_us(&l, cred, &dir_up, name, |a| a.ftype == want)
                    .await
                {
                    Some((fh, a)) => (fh, a, dir_wcc),
                    None => return Err(Error::Exist),
                }
            }
            NfsResult::Err(s, _) => return Err(status_error(s)),
        };
        if let NewNode::File(CreateMode::Exclusive(_)) = node {
            // The verifier stays in the times (so a repeat of this create still
            // matches, as with the local filer); apply the owner and mode.
            let fix = Sattr3 {
                mode: sa.mode,
                uid: sa.uid,
                gid: sa.gid,
                ..Sattr3::default()
            };
            if fix != Sattr3::default() {
                let args = [SetAttr3Args {
                    object: obj.clone(),
                    new_attributes: fix,
                    guard: None,
                }
                .to_bytes()];
                let (r, _) = self.call::<WccRes>(&l, cred, NfsProc3::Setattr, &args).await?;
                if let Some(after) = ok(r)?.after {
                    a = attr(&after);
                }
            }
        }
        Ok(FilerCreated {
            handle: self.our(&l, &obj)?,
            attr: a,
            dir_wcc: wcc(&dir_wcc),
        })
    }

    async fn readlink(&self, cred: &Credentials, fh: &FilerHandle) -> Result<Vec<u8>> {
        let l = self.local();
        let object = self.upstream(&l, fh)?;
        let args = [GetAttr3Args { object }.to_bytes()];
        let (r, _) = self
            .call::<Readlink3Res>(&l, cred, NfsProc3::Readlink, &args)
            .await?;
        Ok(ok(r)?.data.0.to_vec())
    }

    async fn link(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        dir: &FilerHandle,
        name: &[u8],
    ) -> Result<(Attr, Wcc)> {
        check_name(name)?;
        let l = self.local();
        let file = self.upstream(&l, fh)?;
        let dir_up = self.upstream(&l, dir)?;
        let args = [Link3Args {
            file: file.clone(),
            link: dirop(dir_up.clone(), name),
        }
        .to_bytes()];
        let (r, retransmitted) = self.call::<Link3Res>(&l, cred, NfsProc3::Link, &args).await?;
        match r {
            NfsResult::Ok(w) => {
                let a = self.attr_or_fetch(&l, cred, &file, w.file_attributes).await?;
                Ok((a, wcc(&w.linkdir_wcc)))
            }
            NfsResult::Err(NfsStat3::Exist, w) if retransmitted => {
                let target = self.getattr_up(&l, cred, &file).await?;
                match self
                    .made_by_us(&l, cred, &dir_up, name, |a| a.fileid == target.fileid)
                    .await
                {
                    Some((_, a)) => Ok((a, wcc(&w.linkdir_wcc))),
                    None => Err(Error::Exist),
                }
            }
            // A directory: some servers (ganesha) say BADTYPE where POSIX, and
            // so the local filer, says EEXIST for a taken name, else EPERM.
            NfsResult::Err(NfsStat3::BadType, _) => match self.lookup_up(&l, cred, dir_up, name).await {
                Ok(_) => Err(Error::Exist),
                Err(_) => Err(Error::Perm),
            },
            NfsResult::Err(s, _) => Err(status_error(s)),
        }
    }

    async fn remove(&self, cred: &Credentials, dir: &FilerHandle, name: &[u8], rmdir: bool) -> Result<Wcc> {
        check_name(name)?;
        let l = self.local();
        let args = [dirop(self.upstream(&l, dir)?, name).to_bytes()];
        let p = if rmdir { NfsProc3::Rmdir } else { NfsProc3::Remove };
        let (r, retransmitted) = self.call::<WccRes>(&l, cred, p, &args).await?;
        match r {
            NfsResult::Ok(w) => Ok(wcc(&w)),
            // The first transmission removed it.
            NfsResult::Err(NfsStat3::NoEnt, w) if retransmitted => Ok(wcc(&w)),
            NfsResult::Err(s, _) => Err(status_error(s)),
        }
    }

    async fn rename(
        &self,
        cred: &Credentials,
        from_dir: &FilerHandle,
        from_name: &[u8],
        to_dir: &FilerHandle,
        to_name: &[u8],
    ) -> Result<(Wcc, Wcc)> {
        check_name(from_name)?;
        check_name(to_name)?;
        let l = self.local();
        let to_up = self.upstream(&l, to_dir)?;
        let args = [Rename3Args {
            from: dirop(self.upstream(&l, from_dir)?, from_name),
            to: dirop(to_up.clone(), to_name),
        }
        .to_bytes()];
        let (r, retransmitted) = self.call::<Rename3Res>(&l, cred, NfsProc3::Rename, &args).await?;
        match r {
            NfsResult::Ok(w) => Ok((wcc(&w.fromdir_wcc), wcc(&w.todir_wcc))),
            NfsResult::Err(NfsStat3::NoEnt, w) if retransmitted => {
                // Gone from the old name and present at the new one: our first try did it.
                match self.made_by_us(&l, cred, &to_up, to_name, |_| true).await {
                    Some(_) => Ok((wcc(&w.fromdir_wcc), wcc(&w.todir_wcc))),
                    None => Err(Error::NoEnt),
                }
            }
            NfsResult::Err(s, _) => Err(status_error(s)),
        }
    }

    async fn readdir(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<FilerDirPage> {
        let l = self.local();
        let (entries, eof) = self.list::<Plain>(&l, cred, dir, cookie, max).await?;
        Ok(FilerDirPage {
            entries: entries
                .into_iter()
                .map(|e| FilerDirEntry {
                    name: e.name.0.to_vec(),
                    fileid: e.fileid,
                    cookie: e.cookie,
                    ftype: None,
                })
                .collect(),
            eof,
        })
    }

    async fn readdir_plus(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<(Vec<FilerDirEntryPlus>, bool)> {
        let l = self.local();
        let (entries, eof) = self.list::<Plus>(&l, cred, dir, cookie, max).await?;
        let complete: Vec<&NfsFh3> = entries
            .iter()
            .filter(|e| e.name_attributes.is_some())
            .filter_map(|e| e.name_handle.as_ref())
            .collect();
        let mut mapped = self.ours(&l, &complete)?.into_iter();
        let mut dir_up = None;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let object = match (&e.name_handle, &e.name_attributes) {
                (Some(_), Some(a)) => mapped.next().map(|h| (h, attr(a))),
                _ => {
                    // The server left this one out: look it up.
                    let d = match &dir_up {
                        Some(d) => d,
                        None => dir_up.insert(self.upstream(&l, dir)?),
                    };
                    match self.lookup_up(&l, cred, d.clone(), e.name.as_bytes()).await {
                        Ok((up, a)) => Some((self.our(&l, &up)?, a)),
                        Err(Error::NoEnt) => None,
                        Err(err) => return Err(err),
                    }
                }
            };
            let entry = FilerDirEntry {
                name: e.name.0.to_vec(),
                fileid: e.fileid,
                cookie: e.cookie,
                ftype: object.as_ref().map(|(_, a)| a.ftype),
            };
            out.push(FilerDirEntryPlus { entry, object });
        }
        Ok((out, eof))
    }

    async fn fsstat(&self, cred: &Credentials, fh: &FilerHandle) -> Result<FsStat> {
        let l = self.local();
        let object = self.upstream(&l, fh)?;
        let args = [GetAttr3Args { object }.to_bytes()];
        let (r, _) = self.call::<Fsstat3Res>(&l, cred, NfsProc3::Fsstat, &args).await?;
        let s = ok(r)?;
        Ok(FsStat {
            total_bytes: s.tbytes,
            free_bytes: s.fbytes,
            avail_bytes: s.abytes,
            total_files: s.tfiles,
            free_files: s.ffiles,
            avail_files: s.afiles,
        })
    }
}

/// Ask the portmapper at `pm` for the TCP port of MOUNT v3.
fn mount_port_of(pm: SocketAddr) -> io::Result<u16> {
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
fn mnt(at: SocketAddr, export: &str) -> io::Result<NfsFh3> {
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
fn fsinfo(addr: SocketAddr, root: &NfsFh3) -> io::Result<(u32, u32, u32)> {
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

#[cfg(test)]
mod tests {
    use super::client::tests::{read_record, reply, run, xid_of};
    use super::*;
    use std::net::TcpListener;

    /// A filer over a scripted upstream (no MOUNT, no FSINFO) that `serve`
    /// answers, with its state in `state`.
    fn scripted(
        state: &Path,
        serve: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
    ) -> (NfsFiler, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || serve(&mut l.accept().unwrap().0));
        let handles = HandleMap::open(&state.join("map"), true).unwrap();
        let root = handles.intern(&[b"root"]).unwrap()[0];
        let inner = Inner {
            client: ClientConfig {
                addr,
                connections: 1,
                attempt_timeout: Duration::from_millis(300),
                total_timeout: Duration::from_secs(3),
            },
            root,
            rtmax: 1 << 20,
            wtmax: 1 << 20,
            dtpref: 8192,
            handles,
            unstable: Mutex::new(Unstable::new(UNSTABLE_FILES_MAX)),
        };
        (
            NfsFiler {
                inner: Arc::new(inner),
            },
            t,
        )
    }

    /// The procedure of a call record.
    fn proc_of(rec: &[u8]) -> u32 {
        u32::from_be_bytes([rec[20], rec[21], rec[22], rec[23]])
    }

    fn fattr3(ftype: Ftype3, fileid: u64) -> Fattr3 {
        let t = NfsTime3 {
            seconds: 1,
            nseconds: 2,
        };
        let z = SpecData3 {
            specdata1: 0,
            specdata2: 0,
        };
        Fattr3 {
            ftype,
            mode: 0o755,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 0,
            used: 0,
            rdev: z,
            fsid: 1,
            fileid,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    #[test]
    fn the_mount_port_comes_from_the_portmapper() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let pm = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            for port in [20048u32, 0] {
                let (mut s, _) = l.accept().unwrap();
                let rec = read_record(&mut s).unwrap();
                assert_eq!(proc_of(&rec), portmap::PmapProc::Getport as u32);
                let asked = portmap::Mapping::from_bytes(Bytes::copy_from_slice(&rec[40..])).unwrap();
                assert_eq!(
                    (asked.prog, asked.vers, asked.prot),
                    (mount::PROGRAM, 3, portmap::IPPROTO_TCP)
                );
                reply(&mut s, xid_of(&rec), &port.to_bytes());
            }
        });
        assert_eq!(mount_port_of(pm).unwrap(), 20048);
        let e = mount_port_of(pm).unwrap_err().to_string();
        assert!(e.contains("not registered"), "{e}");
        t.join().unwrap();
    }

    #[test]
    fn a_retransmitted_remove_that_finds_nothing_had_removed_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (f, t) = scripted(tmp.path(), |s| {
            // The first answer is "lost"; the repeat finds the name gone.
            let first = read_record(s).unwrap();
            let again = read_record(s).unwrap();
            assert_eq!(first, again);
            assert_eq!(proc_of(&again), NfsProc3::Remove as u32);
            reply(
                s,
                xid_of(&again),
                &WccRes::Err(NfsStat3::NoEnt, WccData::default()).to_bytes(),
            );
            // Sent once, NOENT is NOENT.
            let once = read_record(s).unwrap();
            reply(
                s,
                xid_of(&once),
                &WccRes::Err(NfsStat3::NoEnt, WccData::default()).to_bytes(),
            );
        });
        run(async {
            let c = Credentials::root();
            f.remove(&c, &f.root(), b"gone", false).await.unwrap();
            assert_eq!(
                f.remove(&c, &f.root(), b"gone", false).await.err(),
                Some(Error::NoEnt)
            );
        });
        t.join().unwrap();
    }

    #[test]
    fn a_retransmitted_mkdir_that_finds_the_name_taken_had_made_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (f, t) = scripted(tmp.path(), |s| {
            let first = read_record(s).unwrap();
            let again = read_record(s).unwrap();
            assert_eq!(first, again);
            assert_eq!(proc_of(&again), NfsProc3::Mkdir as u32);
            reply(
                s,
                xid_of(&again),
                &Create3Res::Err(NfsStat3::Exist, WccData::default()).to_bytes(),
            );
            // Then it looks the name up: a directory, so ours.
            let lookup = read_record(s).unwrap();
            assert_eq!(proc_of(&lookup), NfsProc3::Lookup as u32);
            let found = Lookup3Res::Ok(Lookup3Ok {
                object: Opaque::new(&b"new-dir"[..]),
                obj_attributes: Some(fattr3(Ftype3::Dir, 42)),
                dir_attributes: None,
            });
            reply(s, xid_of(&lookup), &found.to_bytes());
        });
        run(async {
            let c = Credentials::root();
            let made = f
                .create(&c, &f.root(), b"d", &NewNode::Directory, &SetAttr::default())
                .await
                .unwrap();
            assert_eq!(made.attr.fileid, 42);
            assert_eq!(made.handle, handles::inline_handle(b"new-dir").unwrap());
        });
        t.join().unwrap();
    }

    #[test]
    fn a_hostile_upstream_gets_errors_not_panics() {
        let tmp = tempfile::tempdir().unwrap();
        let (f, t) = scripted(tmp.path(), |s| {
            // READ: more data than asked for.
            let rec = read_record(s).unwrap();
            let read = Read3Res::Ok(Read3Ok {
                file_attributes: None,
                count: 8,
                eof: false,
                data: Opaque::new(&b"too much"[..]),
            });
            reply(s, xid_of(&rec), &read.to_bytes());
            // READ: a count that is not the data's length.
            let rec = read_record(s).unwrap();
            let read = Read3Res::Ok(Read3Ok {
                file_attributes: None,
                count: 1,
                eof: true,
                data: Opaque::new(&b"ab"[..]),
            });
            reply(s, xid_of(&rec), &read.to_bytes());
            // LOOKUP: an empty handle.
            let rec = read_record(s).unwrap();
            let found = Lookup3Res::Ok(Lookup3Ok {
                object: Opaque::new(&b""[..]),
                obj_attributes: Some(fattr3(Ftype3::Reg, 7)),
                dir_attributes: None,
            });
            reply(s, xid_of(&rec), &found.to_bytes());
            // GETATTR: truncated attributes, then an unknown status.
            let rec = read_record(s).unwrap();
            reply(s, xid_of(&rec), &[0, 0, 0, 0, 0, 0, 0, 1]);
            let rec = read_record(s).unwrap();
            reply(s, xid_of(&rec), &[0, 0, 0x30, 0x39]);
            // READDIR: names that may not be names are left out, "." and ".." too.
            let rec = read_record(s).unwrap();
            let entry = |name: &[u8], cookie| Entry3 {
                fileid: cookie,
                name: Opaque::new(name.to_vec()),
                cookie,
            };
            let list = Readdir3Res::Ok(Readdir3Ok {
                dir_attributes: None,
                cookieverf: 9,
                reply: DirList3 {
                    entries: vec![
                        entry(b".", 1),
                        entry(b"..", 2),
                        entry(b"a/b", 3),
                        entry(b"nul\0", 4),
                        entry(&[b'n'; 300], 5),
                        entry(b"fine", 6),
                    ],
                    eof: true,
                },
            });
            reply(s, xid_of(&rec), &list.to_bytes());
        });
        run(async {
            let c = Credentials::root();
            let r = f.root();
            assert_eq!(f.read(&c, &r, 0, 4).await.err(), Some(Error::Io));
            assert_eq!(f.read(&c, &r, 0, 4).await.err(), Some(Error::Io));
            assert_eq!(f.lookup(&c, &r, b"x").await.err(), Some(Error::Io));
            assert_eq!(f.getattr(&c, &r).await.err(), Some(Error::Io));
            assert_eq!(f.getattr(&c, &r).await.err(), Some(Error::Io));
            let page = f.readdir(&c, &r, 0, 100).await.unwrap();
            let names: Vec<&[u8]> = page.entries.iter().map(|e| &e.name[..]).collect();
            assert_eq!(names, vec![&b"fine"[..]]);
            assert!(page.eof);
        });
        t.join().unwrap();
    }

    /// The arguments of a call record (past its credentials and verifier).
    fn args_of(rec: &[u8]) -> &[u8] {
        let word = |at: usize| u32::from_be_bytes([rec[at], rec[at + 1], rec[at + 2], rec[at + 3]]) as usize;
        let verf = 32 + word(28).next_multiple_of(4);
        &rec[verf + 8 + word(verf + 4).next_multiple_of(4)..]
    }

    #[test]
    fn past_the_bound_of_files_waiting_a_restart_is_still_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let (f, t) = scripted(tmp.path(), |s| {
            for i in 0..6 {
                let rec = read_record(s).unwrap();
                assert_eq!(proc_of(&rec), NfsProc3::Write as u32);
                let args = Write3Args::from_bytes(Bytes::copy_from_slice(args_of(&rec))).unwrap();
                let want = if i < 4 {
                    StableHow::Unstable
                } else {
                    StableHow::FileSync
                };
                assert_eq!(args.stable, want, "write {i}");
                let w = Write3Res::Ok(Write3Ok {
                    file_wcc: WccData::default(),
                    count: args.count,
                    committed: args.stable,
                    verf: 1,
                });
                reply(s, xid_of(&rec), &w.to_bytes());
            }
            // The upstream restarted: a new verifier.
            for _ in 0..2 {
                let rec = read_record(s).unwrap();
                assert_eq!(proc_of(&rec), NfsProc3::Commit as u32);
                let c = Commit3Res::Ok(Commit3Ok {
                    file_wcc: WccData::default(),
                    verf: 2,
                });
                reply(s, xid_of(&rec), &c.to_bytes());
            }
        });
        *f.unstable() = Unstable::new(4);
        let file = |i: u8| handles::inline_handle(&[b'f', i]).unwrap();
        run(async {
            let c = Credentials::root();
            for i in 0..6 {
                let w = f
                    .write(&c, &file(i), 0, Bytes::from_static(b"x"), Stability::Unstable)
                    .await
                    .unwrap();
                assert_eq!(w.committed == Stability::Unstable, i < 4);
            }
            assert_eq!(f.commit(&c, &file(0)).await.err(), Some(Error::WritesLost));
            f.commit(&c, &file(5)).await.unwrap();
        });
        t.join().unwrap();
    }

    #[test]
    fn every_status_maps_as_the_local_filer_maps_its_errno() {
        use NfsStat3 as S;
        let pairs = [
            (S::Perm, libc::EPERM),
            (S::NoEnt, libc::ENOENT),
            (S::Io, libc::EIO),
            (S::NxIo, libc::ENXIO),
            (S::Acces, libc::EACCES),
            (S::Exist, libc::EEXIST),
            (S::XDev, libc::EXDEV),
            (S::NoDev, libc::ENODEV),
            (S::NotDir, libc::ENOTDIR),
            (S::IsDir, libc::EISDIR),
            (S::Inval, libc::EINVAL),
            (S::FBig, libc::EFBIG),
            (S::NoSpc, libc::ENOSPC),
            (S::RoFs, libc::EROFS),
            (S::MLink, libc::EMLINK),
            (S::NameTooLong, libc::ENAMETOOLONG),
            (S::NotEmpty, libc::ENOTEMPTY),
            (S::DQuot, libc::EDQUOT),
            (S::Stale, libc::ESTALE),
            (S::Remote, libc::EREMOTE),
            (S::NotSupp, libc::EOPNOTSUPP),
        ];
        for (s, errno) in pairs {
            assert_eq!(status_error(s), Error::from_errno(errno), "{s:?}");
        }
        assert_eq!(status_error(S::BadHandle), Error::Stale);
        assert_eq!(status_error(S::Jukebox), Error::Jukebox);
        assert_eq!(status_error(S::BadCookie), Error::BadCookie);
    }

    #[test]
    fn attributes_convert() {
        let a = Fattr3 {
            ftype: Ftype3::Chr,
            mode: 0o104755,
            nlink: 2,
            uid: 1,
            gid: 2,
            size: 3,
            used: 4,
            rdev: SpecData3 {
                specdata1: 5,
                specdata2: 6,
            },
            fsid: 7,
            fileid: 8,
            atime: NfsTime3 {
                seconds: 9,
                nseconds: 10,
            },
            mtime: NfsTime3 {
                seconds: 11,
                nseconds: 12,
            },
            ctime: NfsTime3 {
                seconds: 13,
                nseconds: 14,
            },
        };
        let ours = attr(&a);
        assert_eq!(ours.ftype, FileType::CharDev);
        assert_eq!(ours.mode, 0o4755);
        assert_eq!(ours.rdev, (5, 6));
        assert_eq!(ours.ctime, Timespec { sec: 13, nsec: 14 });
        assert_eq!(ours.change, 13_000_000_014);
        assert_eq!(
            set_time(SetTime::Client(Timespec { sec: -1, nsec: 0 })),
            Err(Error::Inval)
        );
    }
}
