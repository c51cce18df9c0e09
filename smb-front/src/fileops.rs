//! Opens and their data: CREATE (path walk, dispositions, share modes,
//! create contexts, the oplock/lease decision), CLOSE, FLUSH, READ, WRITE.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use cache_engine::types::{access as eacc, Attr, CreateMode, Credentials, FileType, SetAttr, Stability};
use cache_engine::{FileHandle, ReadReply, WriteReply};
use smb_proto::create::{
    create_action, disposition, options, CreateContext, CreateRequest, CreateResponse, CreateResponseContext,
};
use smb_proto::dir::notify_action;
use smb_proto::dir::notify_filter;
use smb_proto::fscc::attributes as fa;
use smb_proto::io::{
    write_flags, CloseRequest, CloseResponse, FlushRequest, ReadRequest, ReadResponseHeader, WriteRequest,
    WriteResponse, CLOSE_FLAG_POSTQUERY_ATTRIB,
};
use smb_proto::security::access as sa;
use smb_proto::{FileId, NtStatus};

use crate::conn::Conn;
use crate::context::{Ctx, Reply, Result};
use crate::dir::DirCursor;
use crate::errors::EngineResult;
use crate::lease::{Caching, Granted, OpenOutcome, OpenRequest};
use crate::state::{self, on_file};
use crate::{notify, oplock, posix, tree, Server};

/// One open of a file or directory.
pub(crate) struct Open {
    pub fid: FileId,
    /// Server-wide unique: names this open in the per-file state.
    pub key: u64,
    pub session: u64,
    pub tree: u32,
    pub share: usize,
    pub fh: FileHandle,
    pub is_dir: bool,
    pub access: u32,
    pub cred: Credentials,
    /// Share-relative path with backslashes ("" for the share root).
    pub path: RefCell<String>,
    /// The directory that holds it and its name there.
    pub loc: RefCell<(FileHandle, Vec<u8>)>,
    pub write_through: bool,
    pub dir: RefCell<DirCursor>,
    pub read_only_share: bool,
    /// Closed when the open is released: ends its pending requests.
    pub closing: async_channel::Sender<()>,
    pub on_close: async_channel::Receiver<()>,
}

impl Open {
    pub fn require(&self, mask: u32) -> Result<()> {
        if self.access & mask == 0 {
            return Err(NtStatus::ACCESS_DENIED);
        }
        Ok(())
    }

    pub fn name(&self) -> String {
        let p = self.path.borrow();
        p.rsplit('\\').next().unwrap_or("").to_string()
    }
}

/// Walk `comps` from `root` through directories.
pub(crate) async fn walk(
    srv: &Server,
    cred: &Credentials,
    root: FileHandle,
    comps: &[String],
) -> Result<FileHandle> {
    let mut dir = root;
    for c in comps {
        match srv.engine.lookup(cred, &dir, c.as_bytes()).await {
            Ok((fh, attr, _)) if attr.ftype == FileType::Directory => dir = fh,
            Ok(_) | Err(cache_engine::Error::NoEnt | cache_engine::Error::NotDir) => {
                return Err(NtStatus::OBJECT_PATH_NOT_FOUND)
            }
            Err(e) => return Err(crate::errors::status(e)),
        }
    }
    Ok(dir)
}

/// The rights `cred` has on an object.
pub(crate) async fn maximal_access(
    srv: &Server,
    cred: &Credentials,
    fh: &FileHandle,
    ro: bool,
) -> Result<u32> {
    let all = eacc::READ | eacc::LOOKUP | eacc::MODIFY | eacc::EXTEND | eacc::DELETE | eacc::EXECUTE;
    let (granted, attr) = srv.engine.access(cred, fh, all).await.nt()?;
    let m = posix::access_from_engine(granted, cred.uid == 0 || cred.uid == attr.uid);
    Ok(if ro { posix::read_only(m) } else { m })
}

/// Register a new open in its file's state: the oplock or lease it gets
/// (waiting, as an async request, for the breaks it causes) and its share
/// mode.
#[allow(clippy::too_many_arguments)]
async fn admit(
    ctx: &mut Ctx,
    req: &CreateRequest,
    caching: Caching,
    key: u64,
    fh: FileHandle,
    access: u32,
    doc: bool,
    directory: bool,
    loc: &state::Location,
) -> Result<Granted> {
    let srv = ctx.srv().clone();
    if let Caching::Lease(l) = &caching {
        oplock::claim_key(&srv, l.client, l.key, fh)?;
    }
    let asked = OpenRequest {
        open: key,
        caching,
        access,
        share: req.share_access,
        disposition: req.create_disposition,
        directory,
    };
    let mut cancel = None;
    loop {
        let (tx, rx) = async_channel::bounded(1);
        let l = loc.clone();
        let (r, deadline, breaks) = on_file(&srv, fh, move |f| {
            let (outcome, mut breaks) = f.lease(|ls, now| ls.open(&asked, now));
            let r = match outcome {
                OpenOutcome::Granted(g) => match f.register(key, access, asked.share, doc, l) {
                    Ok(()) => Ok(Some(g)),
                    Err(e) => {
                        breaks.extend(f.lease(|ls, _| ls.close(key)).1);
                        Err(e)
                    }
                },
                OpenOutcome::Wait(_) => {
                    f.add_waiter(tx);
                    Ok(None)
                }
                other => Err(other.status().unwrap_or(NtStatus::INVALID_PARAMETER)),
            };
            let unused_key = match (&r, asked.caching) {
                (Err(_), Caching::Lease(l)) => f.lease_unused(l.client, l.key).then_some((l.client, l.key)),
                _ => None,
            };
            (r, f.break_deadline(), (breaks, unused_key))
        })
        .await?;
        let (breaks, unused_key) = breaks;
        oplock::deliver(&srv, breaks);
        if let Some((client, k)) = unused_key {
            oplock::release_key(&srv, client, k);
        }
        if let Some(g) = r? {
            return Ok(g);
        }
        let c = cancel.get_or_insert_with(|| ctx.go_async());
        oplock::wait(rx, deadline, c).await?;
    }
}

pub(crate) async fn create(ctx: &mut Ctx, req: CreateRequest) -> Result<Reply> {
    match open_or_create(ctx, &req).await {
        // A cached name led to a file removed behind the cache's back; the
        // engine has forgotten it, so a second try sees the core filer's tree.
        Err(NtStatus::FILE_DELETED) => open_or_create(ctx, &req).await,
        r => r,
    }
}

async fn open_or_create(ctx: &mut Ctx, req: &CreateRequest) -> Result<Reply> {
    let srv = ctx.srv().clone();
    let t = tree::check(ctx)?;
    let Some(share_idx) = t.share else {
        // IPC$: no named pipes (srvsvc, wkssvc) are served.
        return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
    };
    let share = &srv.shares[share_idx];
    let key = srv.open_key(ctx.conn.shard);
    // Changes this open makes carry its key: they break no caching of its own.
    let cred = ctx.with_session(|s| s.cred.clone())?.with_origin(key);
    if req.create_disposition > disposition::OVERWRITE_IF
        || req.create_options & options::DIRECTORY_FILE != 0
            && req.create_options & options::NON_DIRECTORY_FILE != 0
        || req.impersonation_level > 3
        || req.create_options & 0xFF00_0000 != 0
    {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let want_dir = req.create_options & options::DIRECTORY_FILE != 0;
    let want_file = req.create_options & options::NON_DIRECTORY_FILE != 0;
    let doc = req.create_options & options::DELETE_ON_CLOSE != 0;
    let mut desired = posix::expand_generic(req.desired_access);
    if doc && desired & sa::DELETE == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    if t.read_only && (posix::wants_write(desired) || doc) {
        return Err(NtStatus::ACCESS_DENIED);
    }
    if req.name.starts_with('\\') {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let comps = posix::split_path(&req.name)?;
    let (parent_comps, last) = match comps.split_last() {
        Some((last, rest)) => (rest, Some(last.clone())),
        None => (&comps[..], None),
    };
    let parent = walk(&srv, &cred, share.root, parent_comps).await?;
    let d = req.create_disposition;
    let mut raced = false;
    let (fh, mut attr, action) = loop {
        let existing = match &last {
            None => Some((share.root, srv.engine.getattr(&share.root).await.nt()?)),
            Some(name) => match srv.engine.lookup(&cred, &parent, name.as_bytes()).await {
                Ok((fh, attr, _)) => Some((fh, attr)),
                Err(cache_engine::Error::NoEnt) => None,
                Err(e) => return Err(crate::errors::status(e)),
            },
        };
        match existing {
            Some((fh, attr)) => {
                let is_dir = attr.ftype == FileType::Directory;
                if d == disposition::CREATE {
                    return Err(NtStatus::OBJECT_NAME_COLLISION);
                }
                if want_dir && !is_dir {
                    return Err(NtStatus::NOT_A_DIRECTORY);
                }
                if want_file && is_dir {
                    return Err(NtStatus::FILE_IS_A_DIRECTORY);
                }
                let overwrite = matches!(
                    d,
                    disposition::OVERWRITE | disposition::OVERWRITE_IF | disposition::SUPERSEDE
                );
                if overwrite && is_dir {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                if overwrite && t.read_only {
                    return Err(NtStatus::ACCESS_DENIED);
                }
                let action = match d {
                    disposition::SUPERSEDE => create_action::SUPERSEDED,
                    disposition::OVERWRITE | disposition::OVERWRITE_IF => create_action::OVERWRITTEN,
                    _ => create_action::OPENED,
                };
                break (fh, attr, action);
            }
            None => {
                if matches!(d, disposition::OPEN | disposition::OVERWRITE) {
                    return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
                }
                if t.read_only {
                    return Err(NtStatus::ACCESS_DENIED);
                }
                let Some(name) = &last else {
                    return Err(NtStatus::OBJECT_NAME_INVALID);
                };
                let readonly = req.file_attributes & fa::READONLY != 0;
                if doc && readonly && !want_dir {
                    // Refused before anything is made, as Windows does.
                    return Err(NtStatus::CANNOT_DELETE);
                }
                let set = SetAttr {
                    mode: Some(match (want_dir, readonly) {
                        (true, _) => 0o755,
                        (false, true) => 0o444,
                        (false, false) => 0o644,
                    }),
                    ..SetAttr::default()
                };
                let made = if want_dir {
                    srv.engine.mkdir(&cred, &parent, name.as_bytes(), &set).await
                } else {
                    srv.engine
                        .create(&cred, &parent, name.as_bytes(), CreateMode::Guarded, &set)
                        .await
                };
                let made = match made {
                    // Another open made the name first: open what it made.
                    Err(cache_engine::Error::Exist) if d != disposition::CREATE && !raced => {
                        raced = true;
                        continue;
                    }
                    Err(cache_engine::Error::Exist) => return Err(NtStatus::OBJECT_NAME_COLLISION),
                    other => other.nt()?,
                };
                let filter = if want_dir {
                    notify_filter::DIR_NAME
                } else {
                    notify_filter::FILE_NAME
                };
                notify::changed(&srv, parent, filter, notify_action::ADDED, name);
                break (made.handle, made.attr, create_action::CREATED);
            }
        }
    };
    let is_dir = attr.ftype == FileType::Directory;
    let maximal = maximal_access(&srv, &cred, &fh, t.read_only).await?;
    // The READONLY attribute (no owner write bit) refuses data writes to
    // everyone, root included, as on Windows.
    let maximal = if !is_dir && attr.mode & 0o200 == 0 {
        maximal & !posix::DATA_WRITE
    } else {
        maximal
    };
    if desired & sa::MAXIMUM_ALLOWED != 0 {
        desired = (desired & !sa::MAXIMUM_ALLOWED) | maximal;
    }
    if !is_dir
        && attr.mode & 0o200 == 0
        && action != create_action::CREATED
        && desired & posix::DATA_WRITE != 0
    {
        return Err(NtStatus::ACCESS_DENIED);
    }
    let free = sa::SYNCHRONIZE
        | sa::READ_CONTROL
        | sa::FILE_READ_ATTRIBUTES
        | sa::DELETE
        | sa::ACCESS_SYSTEM_SECURITY;
    if action != create_action::CREATED && desired & !free & !maximal != 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    if doc && attr.ftype != FileType::Directory && attr.mode & 0o200 == 0 {
        return Err(NtStatus::CANNOT_DELETE);
    }
    if doc && last.is_none() {
        return Err(NtStatus::ACCESS_DENIED);
    }
    let loc = (parent, last.clone().unwrap_or_default().into_bytes());
    oplock::register(&ctx.conn, key, ctx.session_id);
    let caching = oplock::caching(&ctx.conn, req);
    let granted = match admit(ctx, req, caching, key, fh, desired, doc, is_dir, &loc).await {
        Ok(g) => g,
        Err(e) => {
            oplock::unregister(&srv, key);
            return Err(e);
        }
    };
    if matches!(action, create_action::OVERWRITTEN | create_action::SUPERSEDED) {
        let set = SetAttr {
            size: Some(0),
            ..SetAttr::default()
        };
        match srv.engine.setattr(&cred, &fh, &set, None).await {
            Ok(w) => attr = w.after.unwrap_or(attr),
            Err(e) => {
                let (_, breaks) = on_file(&srv, fh, move |f| {
                    f.unregister(key);
                    f.lease(|ls, _| ls.close(key))
                })
                .await?;
                oplock::deliver(&srv, breaks);
                oplock::unregister(&srv, key);
                return Err(crate::errors::status(e));
            }
        }
    }
    let (oplock, lease) = oplock::granted(granted, &caching);
    let mut contexts = Vec::new();
    for c in &req.contexts {
        match c {
            CreateContext::MaximalAccess { .. } => contexts.push(CreateResponseContext::MaximalAccess {
                query_status: 0,
                maximal_access: maximal,
            }),
            CreateContext::QueryOnDiskId => contexts.push(CreateResponseContext::OnDiskId {
                disk_file_id: attr.fileid,
                volume_id: attr.fsid,
            }),
            _ => {}
        }
    }
    contexts.extend(lease);
    let fid = FileId {
        persistent: key,
        volatile: key,
    };
    let name = last.clone().unwrap_or_default();
    let (closing, on_close) = async_channel::bounded(1);
    let open = Rc::new(Open {
        fid,
        key,
        session: ctx.session_id,
        tree: ctx.tree_id,
        share: share_idx,
        fh,
        is_dir,
        access: desired,
        cred,
        path: RefCell::new(comps.join("\\")),
        loc: RefCell::new(loc),
        write_through: req.create_options & options::WRITE_THROUGH != 0,
        dir: RefCell::new(DirCursor::default()),
        read_only_share: t.read_only,
        closing,
        on_close,
    });
    ctx.conn.st.borrow_mut().opens.insert(key, open);
    let mut b = BytesMut::new();
    CreateResponse {
        oplock_level: oplock,
        flags: 0,
        create_action: action,
        times: posix::times(&attr),
        allocation_size: posix::allocation(&attr),
        end_of_file: posix::end_of_file(&attr),
        file_attributes: posix::attributes(&attr, &name),
        file_id: fid,
        contexts,
    }
    .encode(&mut b);
    Ok(Reply::ok(b))
}

/// Let go of an open: start committing its unstable writes, drop its share mode,
/// locks and watchers, and delete the file if it was the last open of a
/// file with a delete pending.
pub(crate) async fn release(conn: &Conn, o: &Open) {
    let srv = &conn.srv;
    o.closing.close();
    let key = o.key;
    let r = on_file(srv, o.fh, move |f| {
        let loc = f.unregister(key);
        (loc, f.lease(|ls, _| ls.close(key)), std::mem::take(&mut f.dirty))
    })
    .await;
    oplock::unregister(srv, key);
    let Ok((loc, (lease, breaks), dirty)) = r else {
        return;
    };
    if dirty {
        // Flush behind: the close does not wait for stable storage (FLUSH
        // and write-through do), as with Windows and Samba. A failure
        // leaves the file dirty for the FLUSH of another open to report.
        let (s, cred, fh) = (srv.clone(), o.cred.clone(), o.fh);
        compio::runtime::spawn(async move {
            match s.engine.commit(&cred, &fh).await {
                Ok(_) | Err(cache_engine::Error::Stale) => {}
                Err(e) => {
                    tracing::warn!("smb: flush after close failed: {e}");
                    let _ = on_file(&s, fh, |f| f.dirty = true).await;
                }
            }
        })
        .detach();
    }
    oplock::deliver(srv, breaks);
    if let Some((client, k)) = lease {
        oplock::release_key(srv, client, k);
    }
    let Some((dir, name)) = loc else {
        return;
    };
    if name.is_empty() {
        return;
    }
    let r = if o.is_dir {
        srv.engine.rmdir(&o.cred, &dir, &name).await
    } else {
        srv.engine.remove(&o.cred, &dir, &name).await
    };
    match r {
        Ok(_) => {
            let filter = if o.is_dir {
                notify_filter::DIR_NAME
            } else {
                notify_filter::FILE_NAME
            };
            notify::changed(
                srv,
                dir,
                filter,
                notify_action::REMOVED,
                &String::from_utf8_lossy(&name),
            );
        }
        Err(e) => tracing::info!(
            "smb: delete on close of {:?} failed: {e}",
            String::from_utf8_lossy(&name)
        ),
    }
}

/// Take every open `pick` selects out of the table and release it
/// (LOGOFF, TREE_DISCONNECT).
pub(crate) async fn close_where(conn: &Rc<Conn>, pick: impl Fn(&Open) -> bool) {
    let opens: Vec<Rc<Open>> = {
        let mut st = conn.st.borrow_mut();
        let keys: Vec<u64> = st.opens.values().filter(|o| pick(o)).map(|o| o.key).collect();
        keys.iter().filter_map(|k| st.opens.remove(k)).collect()
    };
    for o in opens {
        release(conn, &o).await;
    }
}

/// Close the open `fid` names: take it out of the table, then release it.
pub(crate) async fn close(ctx: &mut Ctx, req: CloseRequest) -> Result<Reply> {
    let o = ctx.open(req.file_id)?;
    ctx.conn.st.borrow_mut().opens.remove(&o.key);
    let post = req.flags & CLOSE_FLAG_POSTQUERY_ATTRIB != 0;
    release(&ctx.conn, &o).await;
    let attr = if post {
        ctx.srv().engine.getattr(&o.fh).await.ok()
    } else {
        None
    };
    let mut b = BytesMut::new();
    match attr {
        Some(a) => CloseResponse {
            flags: CLOSE_FLAG_POSTQUERY_ATTRIB,
            times: posix::times(&a),
            allocation_size: posix::allocation(&a),
            end_of_file: posix::end_of_file(&a),
            file_attributes: posix::attributes(&a, &o.name()),
        },
        None => CloseResponse {
            flags: 0,
            times: Default::default(),
            allocation_size: 0,
            end_of_file: 0,
            file_attributes: 0,
        },
    }
    .encode(&mut b);
    Ok(Reply::ok(b))
}

pub(crate) async fn flush(ctx: &mut Ctx, req: FlushRequest) -> Result<Reply> {
    let o = ctx.open(req.file_id)?;
    o.require(sa::FILE_WRITE_DATA | sa::FILE_APPEND_DATA)?;
    let srv = ctx.srv().clone();
    let (s, cred, fh) = (srv.clone(), o.cred.clone(), o.fh);
    // The file's dirty flag lives on its owning shard, shared by all its
    // opens: a FLUSH through any of them commits the writes of all.
    srv.engine
        .run_on(srv.engine.owner(&fh), move || async move {
            if !state::on_file_here(&s, fh, |f| std::mem::take(&mut f.dirty)).unwrap_or(false) {
                return Ok(());
            }
            match s.engine.commit(&cred, &fh).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    // Still dirty: a retried FLUSH commits again.
                    state::on_file_here(&s, fh, |f| f.dirty = true);
                    Err(crate::errors::status(e))
                }
            }
        })
        .await
        .nt()??;
    Ok(Reply::encode(smb_proto::simple::encode_empty))
}

/// Check a READ/WRITE length against the negotiated maximum and the
/// credits charged (MS-SMB2 3.3.5.2.5).
fn check_io_size(ctx: &Ctx, len: u32) -> Result<()> {
    if len > ctx.srv().cfg.max_io.max(65536) {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let multi = ctx
        .conn
        .neg()
        .is_some_and(|n| n.dialect >= smb_proto::crypto::Dialect::Smb210);
    if multi && len > 0 {
        let need = (len - 1) / 65536 + 1;
        if u32::from(ctx.hdr.credit_charge.max(1)) < need {
            return Err(NtStatus::INVALID_PARAMETER);
        }
    }
    Ok(())
}

pub(crate) async fn read(ctx: &mut Ctx, req: ReadRequest) -> Result<Reply> {
    let o = ctx.open(req.file_id)?;
    if o.is_dir {
        return Err(NtStatus::INVALID_DEVICE_REQUEST);
    }
    o.require(sa::FILE_READ_DATA | sa::FILE_EXECUTE)?;
    check_io_size(ctx, req.length)?;
    if req.offset.saturating_add(req.length.into()) > i64::MAX as u64 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let r = read_data(ctx.srv(), &o, req.offset, req.length).await?;
    let n = r.len();
    if (n == 0 && req.length > 0) || (n as u64) < u64::from(req.minimum_count) {
        return Err(NtStatus::END_OF_FILE);
    }
    let mut b = BytesMut::with_capacity(16);
    ReadResponseHeader {
        data_length: n as u32,
        data_remaining: 0,
        flags: 0,
    }
    .encode(&mut b);
    Ok(Reply {
        status: NtStatus::SUCCESS,
        body: b,
        data: r.data,
    })
}

/// Read through open `o` past the byte-range locks of other opens (READ,
/// and the source of a server-side copy).
pub(crate) async fn read_data(srv: &Server, o: &Open, off: u64, len: u32) -> Result<ReadReply> {
    let (eng, cred, fh, key, id) = (srv.engine.clone(), o.cred.clone(), o.fh, o.key, srv.id);
    // The lock check runs on the owning shard inside the same hop as the read.
    srv.engine
        .run_on(srv.engine.owner(&fh), move || async move {
            if !state::io_allowed_here(id, &fh, key, off, len.into(), false) {
                return Err(NtStatus::FILE_LOCK_CONFLICT);
            }
            eng.read(&cred, &fh, off, len).await.nt()
        })
        .await
        .nt()?
}

pub(crate) async fn write(ctx: &mut Ctx, req: WriteRequest) -> Result<Reply> {
    let o = ctx.open(req.file_id)?;
    if o.is_dir {
        return Err(NtStatus::INVALID_DEVICE_REQUEST);
    }
    o.require(sa::FILE_WRITE_DATA | sa::FILE_APPEND_DATA)?;
    if o.read_only_share {
        return Err(NtStatus::ACCESS_DENIED);
    }
    let len = u32::try_from(req.data.len()).map_err(|_| NtStatus::INVALID_PARAMETER)?;
    check_io_size(ctx, len)?;
    let srv = ctx.srv().clone();
    let offset = if req.offset == u64::MAX {
        // Append (FILE_APPEND_DATA writes at end of file).
        srv.engine.getattr(&o.fh).await.nt()?.size
    } else {
        req.offset
    };
    let stable = o.write_through || req.flags & write_flags::WRITE_THROUGH != 0;
    let how = if stable {
        Stability::FileSync
    } else {
        Stability::Unstable
    };
    let r = write_data(ctx, &o, offset, req.data, how).await?;
    let mut b = BytesMut::new();
    WriteResponse {
        count: r.count,
        remaining: 0,
    }
    .encode(&mut b);
    Ok(Reply::ok(b))
}

/// Write through open `o` as WRITE does (a server-side copy too): one
/// visit to the owning shard breaks other opens' caching, checks byte-range
/// locks, writes and marks the file dirty when the write is unstable; a
/// break that needs acknowledging holds the write (as an async request)
/// and it goes again.
pub(crate) async fn write_data(
    ctx: &mut Ctx,
    o: &Open,
    offset: u64,
    data: Bytes,
    how: Stability,
) -> Result<WriteReply> {
    let srv = ctx.srv().clone();
    let (fh, key) = (o.fh, o.key);
    let len = data.len() as u64;
    if offset.checked_add(len).is_none_or(|end| end > i64::MAX as u64) {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut cancel = None;
    loop {
        let (s, cred, data) = (srv.clone(), o.cred.clone(), data.clone());
        let (step, breaks) = srv
            .engine
            .run_on(srv.engine.owner(&fh), move || async move {
                let (hold, breaks) = oplock::change_step_here(&s, fh, key);
                if let Some(hold) = hold {
                    return Ok((Err(hold), breaks));
                }
                if !state::io_allowed_here(s.id, &fh, key, offset, len, true) {
                    return Err(NtStatus::FILE_LOCK_CONFLICT);
                }
                // The open was granted write access: a READONLY set since keeps it.
                let r = s.engine.write_opened(&cred, &fh, offset, data, how).await.nt()?;
                if r.committed == Stability::Unstable {
                    state::on_file_here(&s, fh, |f| f.dirty = true);
                }
                Ok((Ok(r), breaks))
            })
            .await
            .nt()??;
        oplock::deliver(&srv, breaks);
        match step {
            Ok(r) => return Ok(r),
            Err((rx, deadline)) => {
                let c = cancel.get_or_insert_with(|| ctx.go_async());
                oplock::wait(rx, deadline, c).await?;
            }
        }
    }
}

/// Attributes of an open's object.
pub(crate) async fn attr_of(srv: &Server, o: &Open) -> Result<Attr> {
    srv.engine.getattr(&o.fh).await.nt()
}
