//! NFSv3 procedures on the engine.

use std::sync::Arc;

use bytes::Bytes;
use cache_engine::types::{CreateMode, Credentials, NewNode, SetAttr};
use cache_engine::{Error, FileHandle};
use core_filer::nfs3::{fattr, set_attr, stability, stable_how, status, time, timespec, wcc_data};
use nfs_proto::nfs3::*;
use nfs_proto::rpc::ReplyStat;
use nfs_proto::{Decoder, Opaque};

use crate::context::{Body, Ctx};
use crate::exports::{self, Rule};
use crate::Server;

/// Largest READ and WRITE (FSINFO rtmax/wtmax).
pub const MAX_IO: u32 = 1 << 20;
/// Largest READDIR/READDIRPLUS reply built, whatever the client asks.
const MAX_DIR_REPLY: usize = 1 << 20;

/// A name a client may create or look up: no '/' and no NUL.
fn check_name(name: &[u8]) -> Result<(), NfsStat3> {
    if name.is_empty() || name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(NfsStat3::Inval);
    }
    if name.len() > cache_engine::types::NAME_MAX {
        return Err(NfsStat3::NameTooLong);
    }
    Ok(())
}

/// A file handle a call names, with the caller's rights on its export.
pub(crate) struct Target {
    /// The handle as the client sent it, tagged with `export`; the engine
    /// verifies it, tag and all, on the call that uses it.
    pub fh: FileHandle,
    pub export: usize,
    pub cred: Credentials,
    pub rw: bool,
}

impl Server {
    /// The rule that admits `ctx`'s caller to export `i`, after the
    /// secure-port check.
    pub(crate) fn admit(&self, ctx: &Ctx, i: usize) -> Option<&Rule> {
        let rule = self.exports.get(i)?.rule_for(ctx.peer)?;
        if rule.cfg.secure && ctx.peer.port() >= 1024 {
            return None;
        }
        Some(rule)
    }

    /// Whether some export admits `ctx`'s caller.
    pub(crate) fn admits_anyone_at(&self, ctx: &Ctx) -> bool {
        (0..self.exports.len()).any(|i| self.admit(ctx, i).is_some())
    }

    /// The caller's identity under `rule`.
    pub(crate) fn credentials(&self, ctx: &Ctx, rule: &Rule) -> Credentials {
        match &ctx.sys {
            Some(p) => {
                let gids = if self.cfg.manage_gids {
                    exports::local_groups(p.uid, p.gid).unwrap_or_else(|| p.gids.0.clone())
                } else {
                    p.gids.0.clone()
                };
                exports::squash(&rule.cfg, p.uid, p.gid, gids)
            }
            None => Credentials {
                uid: rule.cfg.anonuid,
                gid: rule.cfg.anongid,
                gids: Vec::new(),
                origin: 0,
            },
        }
    }

    /// Open a wire handle for `ctx`'s caller.
    pub(crate) fn target(&self, ctx: &Ctx, wire: &NfsFh3) -> Result<Target, NfsStat3> {
        self.target_of(ctx, wire.as_bytes())
    }

    /// [`Server::target`] for handle bytes from any program (NLM too).
    pub(crate) fn target_of(&self, ctx: &Ctx, wire: &[u8]) -> Result<Target, NfsStat3> {
        let fh = FileHandle::from_bytes(wire).map_err(status)?;
        let export = exports::export_of(self.exports.len(), &fh).map_err(status)?;
        let rule = self.admit(ctx, export).ok_or(NfsStat3::Acces)?;
        Ok(Target {
            fh,
            export,
            cred: self.credentials(ctx, rule),
            rw: exports::writable(&rule.cfg),
        })
    }

    /// `fh` for the client, in `t`'s export; None only if the engine did
    /// not sign `fh`, which it always does.
    fn wire(&self, t: &Target, fh: &FileHandle) -> Option<NfsFh3> {
        exports::wire_handle(&self.engine, t.export, fh).ok().map(Opaque)
    }

    fn is_export_root(&self, t: &Target) -> bool {
        self.exports
            .get(t.export)
            .is_some_and(|e| e.root.same_object(&t.fh))
    }

    async fn post_attr(&self, fh: &FileHandle) -> PostOpAttr {
        self.engine.getattr(fh).await.ok().map(|a| fattr(&a))
    }

    async fn post_wcc(&self, fh: &FileHandle) -> WccData {
        WccData {
            before: None,
            after: self.post_attr(fh).await,
        }
    }
}

type NfsRes<T, F> = NfsResult<T, F>;

fn writable(t: &Target) -> Result<(), NfsStat3> {
    if t.rw {
        Ok(())
    } else {
        Err(NfsStat3::RoFs)
    }
}

pub(crate) async fn call(
    srv: &Arc<Server>,
    ctx: &Ctx,
    proc_: u32,
    mut d: Decoder,
) -> Result<Body, ReplyStat> {
    let p = NfsProc3::from_u32(proc_).ok_or(ReplyStat::ProcUnavail)?;
    let args = Nfs3Args::decode(p, &mut d).map_err(|_| ReplyStat::GarbageArgs)?;
    let s = &**srv;
    let b = ctx.body();
    Ok(match args {
        Nfs3Args::Null => b,
        Nfs3Args::Getattr(a) => b.put(&getattr(s, ctx, &a.object).await),
        Nfs3Args::Setattr(a) => b.put(&setattr(s, ctx, a).await),
        Nfs3Args::Lookup(a) => b.put(&lookup(s, ctx, a).await),
        Nfs3Args::Access(a) => b.put(&access(s, ctx, a).await),
        Nfs3Args::Readlink(a) => b.put(&readlink(s, ctx, &a.object).await),
        Nfs3Args::Read(a) => read(s, ctx, a, b).await,
        Nfs3Args::Write(a) => b.put(&write(s, ctx, a).await),
        Nfs3Args::Create(a) => {
            let (mode, set) = match &a.how {
                CreateHow3::Unchecked(s) => (CreateMode::Unchecked, set_attr(s)),
                CreateHow3::Guarded(s) => (CreateMode::Guarded, set_attr(s)),
                CreateHow3::Exclusive(v) => (CreateMode::Exclusive(*v), SetAttr::default()),
            };
            b.put(&make(s, ctx, a.where_, NewNode::File(mode), set).await)
        }
        Nfs3Args::Mkdir(a) => {
            b.put(&make(s, ctx, a.where_, NewNode::Directory, set_attr(&a.attributes)).await)
        }
        Nfs3Args::Symlink(a) => {
            let node = NewNode::Symlink(a.data.as_bytes().to_vec());
            b.put(&make(s, ctx, a.where_, node, set_attr(&a.attributes)).await)
        }
        Nfs3Args::Mknod(a) => {
            let (node, set) = match &a.what {
                MknodData3::Chr(s, r) => (NewNode::CharDev(r.specdata1, r.specdata2), set_attr(s)),
                MknodData3::Blk(s, r) => (NewNode::BlockDev(r.specdata1, r.specdata2), set_attr(s)),
                MknodData3::Sock(s) => (NewNode::Socket, set_attr(s)),
                MknodData3::Fifo(s) => (NewNode::Fifo, set_attr(s)),
                MknodData3::Other(_) => {
                    let dir_wcc = match s.target(ctx, &a.where_.dir) {
                        Ok(t) => s.post_wcc(&t.fh).await,
                        Err(_) => WccData::default(),
                    };
                    return Ok(b.put(&Create3Res::Err(NfsStat3::BadType, dir_wcc)));
                }
            };
            b.put(&make(s, ctx, a.where_, node, set).await)
        }
        Nfs3Args::Remove(a) => b.put(&remove(s, ctx, a, false).await),
        Nfs3Args::Rmdir(a) => b.put(&remove(s, ctx, a, true).await),
        Nfs3Args::Rename(a) => b.put(&rename(s, ctx, a).await),
        Nfs3Args::Link(a) => b.put(&link(s, ctx, a).await),
        Nfs3Args::Readdir(a) => {
            let r = readdir(s, ctx, &a.dir, a.cookie, a.cookieverf, a.count as usize, false).await;
            b.put(&match r {
                Ok((dir_attributes, cookieverf, entries, eof)) => NfsRes::Ok(Readdir3Ok {
                    dir_attributes,
                    cookieverf,
                    reply: DirList3 {
                        entries: entries
                            .into_iter()
                            .map(|e| Entry3 {
                                fileid: e.fileid,
                                name: e.name,
                                cookie: e.cookie,
                            })
                            .collect(),
                        eof,
                    },
                }),
                Err((st, attr)) => NfsRes::Err(st, attr),
            })
        }
        Nfs3Args::Readdirplus(a) => {
            let max = a.maxcount as usize;
            let r = readdir(s, ctx, &a.dir, a.cookie, a.cookieverf, max, true).await;
            b.put(&match r {
                Ok((dir_attributes, cookieverf, entries, eof)) => NfsRes::Ok(Readdirplus3Ok {
                    dir_attributes,
                    cookieverf,
                    reply: DirListPlus3 { entries, eof },
                }),
                Err((st, attr)) => NfsRes::Err(st, attr),
            })
        }
        Nfs3Args::Fsstat(a) => b.put(&fsstat(s, ctx, &a.object).await),
        Nfs3Args::Fsinfo(a) => b.put(&fsinfo(s, ctx, &a.object).await),
        Nfs3Args::Pathconf(a) => b.put(&pathconf(s, ctx, &a.object).await),
        Nfs3Args::Commit(a) => b.put(&commit(s, ctx, &a.file).await),
    })
}

async fn getattr(s: &Server, ctx: &Ctx, fh: &NfsFh3) -> GetAttr3Res {
    let t = match s.target(ctx, fh) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, ()),
    };
    match s.engine.getattr(&t.fh).await {
        Ok(a) => NfsRes::Ok(fattr(&a)),
        Err(e) => NfsRes::Err(status(e), ()),
    }
}

async fn setattr(s: &Server, ctx: &Ctx, a: SetAttr3Args) -> WccRes {
    let t = match s.target(ctx, &a.object) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, WccData::default()),
    };
    if let Err(e) = writable(&t) {
        return NfsRes::Err(e, s.post_wcc(&t.fh).await);
    }
    let guard = a.guard.map(timespec);
    match s
        .engine
        .setattr(&t.cred, &t.fh, &set_attr(&a.new_attributes), guard)
        .await
    {
        Ok(w) => NfsRes::Ok(wcc_data(&w)),
        Err(e) => NfsRes::Err(status(e), s.post_wcc(&t.fh).await),
    }
}

async fn lookup(s: &Server, ctx: &Ctx, a: DirOpArgs3) -> Lookup3Res {
    let t = match s.target(ctx, &a.dir) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, None),
    };
    let name = a.name.as_bytes();
    if let Err(e) = check_name(name) {
        return NfsRes::Err(e, s.post_attr(&t.fh).await);
    }
    // ".." of an export's root is the root itself: clients never climb out.
    let name: &[u8] = if name == b".." && s.is_export_root(&t) {
        b"."
    } else {
        name
    };
    match s.engine.lookup(&t.cred, &t.fh, name).await {
        Ok((fh, attr, dir)) => NfsRes::Ok(Lookup3Ok {
            object: match s.wire(&t, &fh) {
                Some(w) => w,
                None => return NfsRes::Err(NfsStat3::ServerFault, Some(fattr(&dir))),
            },
            obj_attributes: Some(fattr(&attr)),
            dir_attributes: Some(fattr(&dir)),
        }),
        Err(e) => NfsRes::Err(status(e), s.post_attr(&t.fh).await),
    }
}

async fn access(s: &Server, ctx: &Ctx, a: Access3Args) -> Access3Res {
    let t = match s.target(ctx, &a.object) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, None),
    };
    match s.engine.access(&t.cred, &t.fh, a.access).await {
        Ok((mut bits, attr)) => {
            if !t.rw {
                bits &= !(access::MODIFY | access::EXTEND | access::DELETE);
            }
            NfsRes::Ok(Access3Ok {
                obj_attributes: Some(fattr(&attr)),
                access: bits,
            })
        }
        Err(e) => NfsRes::Err(status(e), s.post_attr(&t.fh).await),
    }
}

async fn readlink(s: &Server, ctx: &Ctx, fh: &NfsFh3) -> Readlink3Res {
    let t = match s.target(ctx, fh) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, None),
    };
    match s.engine.readlink(&t.cred, &t.fh).await {
        Ok((target, attr)) => NfsRes::Ok(Readlink3Ok {
            symlink_attributes: Some(fattr(&attr)),
            data: Opaque::new(target),
        }),
        Err(e) => NfsRes::Err(status(e), s.post_attr(&t.fh).await),
    }
}

async fn read(s: &Server, ctx: &Ctx, a: Read3Args, mut b: Body) -> Body {
    let t = match s.target(ctx, &a.file) {
        Ok(t) => t,
        Err(e) => return b.put(&Read3Res::Err(e, None)),
    };
    match s.engine.read(&t.cred, &t.fh, a.offset, a.count.min(MAX_IO)).await {
        Ok(r) => {
            let len = r.len();
            encode_read_ok_head(&mut b.enc, &Some(fattr(&r.attr)), r.eof, len as u32);
            b.push_data(r.data);
            b
        }
        Err(e) => {
            let attr = s.post_attr(&t.fh).await;
            b.put(&Read3Res::Err(status(e), attr))
        }
    }
}

async fn write(s: &Server, ctx: &Ctx, a: Write3Args) -> Write3Res {
    let t = match s.target(ctx, &a.file) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, WccData::default()),
    };
    if let Err(e) = writable(&t) {
        return NfsRes::Err(e, s.post_wcc(&t.fh).await);
    }
    let data: Bytes = a.data.0;
    if (a.count as usize) > data.len() || data.len() > MAX_IO as usize {
        return NfsRes::Err(NfsStat3::Inval, s.post_wcc(&t.fh).await);
    }
    let data = data.slice(..a.count as usize);
    let stability = stability(a.stable);
    match s.engine.write(&t.cred, &t.fh, a.offset, data, stability).await {
        Ok(w) => NfsRes::Ok(Write3Ok {
            file_wcc: wcc_data(&w.wcc),
            count: w.count,
            committed: stable_how(w.committed),
            verf: w.verifier,
        }),
        Err(e) => NfsRes::Err(status(e), s.post_wcc(&t.fh).await),
    }
}

/// CREATE, MKDIR, SYMLINK and MKNOD.
async fn make(s: &Server, ctx: &Ctx, at: DirOpArgs3, node: NewNode, set: SetAttr) -> Create3Res {
    let t = match s.target(ctx, &at.dir) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, WccData::default()),
    };
    let name = at.name.as_bytes();
    if let Err(e) = writable(&t).and_then(|()| check_name(name)) {
        return NfsRes::Err(e, s.post_wcc(&t.fh).await);
    }
    let e = &s.engine;
    let made = match node {
        NewNode::File(mode) => e.create(&t.cred, &t.fh, name, mode, &set).await,
        NewNode::Directory => e.mkdir(&t.cred, &t.fh, name, &set).await,
        NewNode::Symlink(target) => e.symlink(&t.cred, &t.fh, name, &target, &set).await,
        other => e.mknod(&t.cred, &t.fh, name, other, &set).await,
    };
    match made {
        Ok(c) => NfsRes::Ok(Create3Ok {
            obj: s.wire(&t, &c.handle),
            obj_attributes: Some(fattr(&c.attr)),
            dir_wcc: wcc_data(&c.dir_wcc),
        }),
        Err(err) => NfsRes::Err(status(err), s.post_wcc(&t.fh).await),
    }
}

async fn remove(s: &Server, ctx: &Ctx, a: DirOpArgs3, rmdir: bool) -> WccRes {
    let t = match s.target(ctx, &a.dir) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, WccData::default()),
    };
    let name = a.name.as_bytes();
    if let Err(e) = writable(&t).and_then(|()| check_name(name)) {
        return NfsRes::Err(e, s.post_wcc(&t.fh).await);
    }
    let r = if rmdir {
        s.engine.rmdir(&t.cred, &t.fh, name).await
    } else {
        s.engine.remove(&t.cred, &t.fh, name).await
    };
    match r {
        Ok(w) => NfsRes::Ok(wcc_data(&w)),
        Err(e) => NfsRes::Err(status(e), s.post_wcc(&t.fh).await),
    }
}

async fn rename(s: &Server, ctx: &Ctx, a: Rename3Args) -> Rename3Res {
    let empty = || Rename3Wcc {
        fromdir_wcc: WccData::default(),
        todir_wcc: WccData::default(),
    };
    let (from, to) = match (s.target(ctx, &a.from.dir), s.target(ctx, &a.to.dir)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return NfsRes::Err(e, empty()),
    };
    let (fname, tname) = (a.from.name.as_bytes(), a.to.name.as_bytes());
    let checked = writable(&from)
        .and_then(|()| writable(&to))
        .and_then(|()| check_name(fname))
        .and_then(|()| check_name(tname));
    let r = match checked {
        Ok(()) => s
            .engine
            .rename(&from.cred, &from.fh, fname, &to.fh, tname)
            .await
            .map_err(status),
        Err(e) => Err(e),
    };
    match r {
        Ok(r) => NfsRes::Ok(Rename3Wcc {
            fromdir_wcc: wcc_data(&r.from_wcc),
            todir_wcc: wcc_data(&r.to_wcc),
        }),
        Err(e) => NfsRes::Err(
            e,
            Rename3Wcc {
                fromdir_wcc: s.post_wcc(&from.fh).await,
                todir_wcc: s.post_wcc(&to.fh).await,
            },
        ),
    }
}

async fn link(s: &Server, ctx: &Ctx, a: Link3Args) -> Link3Res {
    let empty = || Link3Wcc {
        file_attributes: None,
        linkdir_wcc: WccData::default(),
    };
    let (file, dir) = match (s.target(ctx, &a.file), s.target(ctx, &a.link.dir)) {
        (Ok(f), Ok(d)) => (f, d),
        (Err(e), _) | (_, Err(e)) => return NfsRes::Err(e, empty()),
    };
    let name = a.link.name.as_bytes();
    let r = match writable(&dir).and_then(|()| check_name(name)) {
        Ok(()) => s
            .engine
            .link(&dir.cred, &file.fh, &dir.fh, name)
            .await
            .map_err(status),
        Err(e) => Err(e),
    };
    match r {
        Ok((attr, w)) => NfsRes::Ok(Link3Wcc {
            file_attributes: Some(fattr(&attr)),
            linkdir_wcc: wcc_data(&w),
        }),
        Err(e) => NfsRes::Err(
            e,
            Link3Wcc {
                file_attributes: s.post_attr(&file.fh).await,
                linkdir_wcc: s.post_wcc(&dir.fh).await,
            },
        ),
    }
}

/// Wire cookies: 1 and 2 resume after "." and "..", which the front end
/// lists itself; the engine's cookie `c` is `c + 3` on the wire, so the two
/// never collide (as ganesha reserves its first cookies).
const DOT_COOKIE: u64 = 1;
const DOTDOT_COOKIE: u64 = 2;
const COOKIE_BASE: u64 = 3;

type Listed = (PostOpAttr, Verf3, Vec<EntryPlus3>, bool);

/// READDIR and READDIRPLUS (`plus`): entries that fit `maxcount` bytes.
/// READDIRPLUS's `dircount` is no limit, as with Linux's nfsd and
/// nfs-ganesha: it exists to spare the server listing more than the client
/// wants, and listings here are cached and filled a page at a time anyway,
/// so a full reply only saves the client round trips (Linux asks for a
/// `dircount` of an eighth of `maxcount`, which would cap a reply at a few
/// hundred small entries).
async fn readdir(
    s: &Server,
    ctx: &Ctx,
    dir: &NfsFh3,
    cookie: u64,
    verf: Verf3,
    maxcount: usize,
    plus: bool,
) -> Result<Listed, (NfsStat3, PostOpAttr)> {
    let t = s.target(ctx, dir).map_err(|e| (e, None))?;
    let fail = |e: Error| async move { (status(e), s.post_attr(&t.fh).await) };
    // status, dir attributes, verifier, end of list, eof
    let overhead = 4 + 4 + FATTR3_SIZE + 8 + 4 + 4;
    let limit = maxcount.min(MAX_DIR_REPLY);
    if limit <= overhead {
        return Err((NfsStat3::TooSmall, s.post_attr(&t.fh).await));
    }
    let mut budget = limit - overhead;
    let fh_len = t.fh.as_bytes().len() + 1;
    let size_of = |name_len: usize| {
        if plus {
            entryplus3_size(name_len, fh_len)
        } else {
            entry3_size(name_len)
        }
    };
    let (engine_cookie, engine_verf) = if cookie >= COOKIE_BASE {
        (cookie - COOKIE_BASE, verf)
    } else {
        (0, 0)
    };
    let want = (budget / size_of(1)).clamp(1, 4096);
    // Given the client's handle, the engine tags the entries' handles with its export.
    let listing = if plus {
        s.engine
            .readdir_plus(&t.cred, &t.fh, engine_cookie, engine_verf, want)
            .await
    } else {
        s.engine
            .readdir(&t.cred, &t.fh, engine_cookie, engine_verf, want)
            .await
    };
    let listing = match listing {
        Ok(l) => l,
        Err(e) => return Err(fail(e).await),
    };
    let mut out: Vec<EntryPlus3> = Vec::new();
    let mut complete = true;
    let mut fits = |name_len: usize| {
        let size = size_of(name_len);
        if size <= budget {
            budget -= size;
            true
        } else {
            false
        }
    };
    if cookie < DOTDOT_COOKIE {
        let dot_attr = listing.dir_attr;
        let mut dots = Vec::new();
        if cookie == 0 {
            dots.push((&b"."[..], DOT_COOKIE, t.fh, dot_attr));
        }
        let parent = if s.is_export_root(&t) {
            (t.fh, dot_attr)
        } else {
            match s.engine.lookup(&t.cred, &t.fh, b"..").await {
                Ok((fh, attr, _)) => (fh, attr),
                Err(e) => return Err(fail(e).await),
            }
        };
        dots.push((&b".."[..], DOTDOT_COOKIE, parent.0, parent.1));
        for (name, c, fh, attr) in dots {
            if !fits(name.len()) {
                complete = false;
                break;
            }
            out.push(EntryPlus3 {
                fileid: attr.fileid,
                name: Opaque::new(Bytes::from_static(name)),
                cookie: c,
                name_attributes: plus.then(|| fattr(&attr)),
                name_handle: if plus { s.wire(&t, &fh) } else { None },
            });
        }
    }
    if complete {
        for e in &listing.entries {
            let Some(c) = e.cookie.checked_add(COOKIE_BASE) else {
                return Err((NfsStat3::ServerFault, Some(fattr(&listing.dir_attr))));
            };
            if !fits(e.name.len()) {
                complete = false;
                break;
            }
            let (attrs, handle) = match (&e.object, plus) {
                (Some((fh, a)), true) => (
                    Some(fattr(a)),
                    Some(Opaque(Bytes::copy_from_slice(fh.as_bytes()))),
                ),
                _ => (None, None),
            };
            out.push(EntryPlus3 {
                fileid: e.fileid,
                name: Opaque::new(e.name.clone()),
                cookie: c,
                name_attributes: attrs,
                name_handle: handle,
            });
        }
    }
    if out.is_empty() && !complete {
        return Err((NfsStat3::TooSmall, Some(fattr(&listing.dir_attr))));
    }
    Ok((
        Some(fattr(&listing.dir_attr)),
        listing.verifier,
        out,
        complete && listing.eof,
    ))
}

async fn fsstat(s: &Server, ctx: &Ctx, fh: &NfsFh3) -> Fsstat3Res {
    let t = match s.target(ctx, fh) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, None),
    };
    match s.engine.fsstat(&t.cred, &t.fh).await {
        Ok((f, attr)) => NfsRes::Ok(Fsstat3Ok {
            obj_attributes: Some(fattr(&attr)),
            tbytes: f.total_bytes,
            fbytes: f.free_bytes,
            abytes: f.avail_bytes,
            tfiles: f.total_files,
            ffiles: f.free_files,
            afiles: f.avail_files,
            invarsec: 0,
        }),
        Err(e) => NfsRes::Err(status(e), s.post_attr(&t.fh).await),
    }
}

async fn fsinfo(s: &Server, ctx: &Ctx, fh: &NfsFh3) -> Fsinfo3Res {
    let t = match s.target(ctx, fh) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, None),
    };
    match s.engine.fsinfo(&t.fh).await {
        Ok((f, attr)) => {
            let mut properties = 0;
            for (on, bit) in [
                (f.link, fsf::LINK),
                (f.symlink, fsf::SYMLINK),
                (f.homogeneous, fsf::HOMOGENEOUS),
                (f.can_set_time, fsf::CANSETTIME),
            ] {
                if on {
                    properties |= bit;
                }
            }
            NfsRes::Ok(Fsinfo3Ok {
                obj_attributes: Some(fattr(&attr)),
                rtmax: f.rtmax.min(MAX_IO),
                rtpref: f.rtpref.min(MAX_IO),
                rtmult: f.rtmult,
                wtmax: f.wtmax.min(MAX_IO),
                wtpref: f.wtpref.min(MAX_IO),
                wtmult: f.wtmult,
                dtpref: f.dtpref,
                maxfilesize: f.max_file_size,
                time_delta: time(f.time_delta),
                properties,
            })
        }
        Err(e) => NfsRes::Err(status(e), s.post_attr(&t.fh).await),
    }
}

async fn pathconf(s: &Server, ctx: &Ctx, fh: &NfsFh3) -> Pathconf3Res {
    let t = match s.target(ctx, fh) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, None),
    };
    match s.engine.pathconf(&t.fh).await {
        Ok((p, attr)) => NfsRes::Ok(Pathconf3Ok {
            obj_attributes: Some(fattr(&attr)),
            linkmax: p.link_max,
            name_max: p.name_max,
            no_trunc: p.no_trunc,
            chown_restricted: p.chown_restricted,
            case_insensitive: p.case_insensitive,
            case_preserving: p.case_preserving,
        }),
        Err(e) => NfsRes::Err(status(e), s.post_attr(&t.fh).await),
    }
}

async fn commit(s: &Server, ctx: &Ctx, fh: &NfsFh3) -> Commit3Res {
    let t = match s.target(ctx, fh) {
        Ok(t) => t,
        Err(e) => return NfsRes::Err(e, WccData::default()),
    };
    match s.engine.commit(&t.cred, &t.fh).await {
        Ok((w, verf)) => NfsRes::Ok(Commit3Ok {
            file_wcc: wcc_data(&w),
            verf,
        }),
        // The engine's verifier changed with the loss: the client sees a
        // verifier other than its writes' and sends them again.
        Err(Error::WritesLost) => NfsRes::Ok(Commit3Ok {
            file_wcc: s.post_wcc(&t.fh).await,
            verf: s.engine.write_verifier(),
        }),
        Err(e) => NfsRes::Err(status(e), s.post_wcc(&t.fh).await),
    }
}
