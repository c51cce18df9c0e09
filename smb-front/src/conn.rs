//! Connections: framing, the credit window, signing and sealing, compound
//! chains, async (interim) responses, and dispatch to the command modules.
//!
//! Everything of one connection lives on the shard thread that accepted
//! it: its state is a `RefCell` that no borrow holds across an await. The
//! reader admits each frame (decrypts it, charges its credits) in arrival
//! order and runs it as a task; one writer task sends the responses.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use cache_engine::front::framed::{self, Admit, FrameLimits, Front, Outbox};
use cache_engine::front::limits::Idle;
use compio::net::TcpStream;
use smb_proto::compound::{chain, ResponseChain};
use smb_proto::crypto::preauth::PreauthHash;
use smb_proto::crypto::seal::{self, NonceSource};
use smb_proto::crypto::sign;
use smb_proto::crypto::{Cipher, Dialect, SigningAlgorithm};
use smb_proto::error_response::encode_empty_error;
use smb_proto::header::{flags, message_kind, HeaderId, MessageKind};
use smb_proto::transport::{frame_header, FrameReader};
use smb_proto::{Command, FileId, Header, NtStatus, Request};

use crate::fileops::Open;
use crate::session::Session;
use crate::Server;

/// Most credits a client may hold at once.
const MAX_CREDITS: u64 = 8192;
/// Frames in flight per connection before the reader waits.
const MAX_INFLIGHT: usize = 128;
/// Largest frame before a session is logged on: a SESSION_SETUP with the
/// largest security buffer its 16-bit length allows (MS-SMB2 2.2.5), with
/// room to spare; NEGOTIATE is smaller. Nothing larger is legitimate there.
pub(crate) const PRE_AUTH_MAX_FRAME: usize = 64 + 24 + 0xFFFF + 1024;

/// Start accepting on this shard's thread until `stop` closes.
pub fn spawn_acceptor(
    srv: Arc<Server>,
    l: std::net::TcpListener,
    stop: async_channel::Receiver<()>,
    spread: Arc<cache_engine::front::Spread>,
    shard: usize,
) {
    let limits = srv.conns.clone();
    cache_engine::front::spawn_acceptor(
        "smb",
        l,
        stop,
        Some((spread, shard)),
        limits,
        move |stream, peer| serve(srv.clone(), stream, peer, shard),
    );
}

/// What NEGOTIATE settled for the connection.
#[derive(Debug, Clone)]
pub(crate) struct Negotiated {
    pub dialect: Dialect,
    pub cipher: Option<Cipher>,
    pub signing: SigningAlgorithm,
    pub client_guid: [u8; 16],
    pub client_caps: u32,
    pub client_security_mode: u16,
    pub server_security_mode: u16,
    pub server_caps: u32,
    /// The client or the server demands signing.
    pub signing_required: bool,
}

/// The sequence window (MS-SMB2 3.3.1.1): message ids the client may use.
#[derive(Debug)]
struct Credits {
    /// Every id below `low` is used.
    low: u64,
    /// Ids from `high` on are not granted yet.
    high: u64,
    used: BTreeSet<u64>,
}

impl Credits {
    fn admit(&mut self, mid: u64, charge: u64) -> bool {
        let Some(end) = mid.checked_add(charge) else {
            return false;
        };
        if mid < self.low || end > self.high || (mid..end).any(|m| self.used.contains(&m)) {
            return false;
        }
        self.used.extend(mid..end);
        while self.used.remove(&self.low) {
            self.low += 1;
        }
        true
    }

    fn grant(&mut self, requested: u16) -> u16 {
        let outstanding = self.high - self.low - self.used.len() as u64;
        let room = MAX_CREDITS.saturating_sub(outstanding);
        let mut g = u64::from(requested.max(1)).min(room);
        if outstanding == 0 && g == 0 {
            g = 1;
        }
        self.high += g;
        g as u16
    }
}

/// A request that went async and may be cancelled.
struct Pending {
    async_id: u64,
    session: u64,
    cancel: async_channel::Sender<()>,
}

pub(crate) struct ConnState {
    pub neg: Option<Negotiated>,
    /// The connection's pre-auth integrity hash (3.1.1).
    pub preauth: PreauthHash,
    pub sessions: HashMap<u64, Session>,
    pub opens: HashMap<u64, Rc<Open>>,
    credits: Credits,
    pending: HashMap<u64, Pending>,
    /// CANCELs (message id, session) read before their request went async.
    early_cancels: VecDeque<(u64, u64)>,
    next_async: u64,
    nonces: NonceSource,
    /// An SMB1 NEGOTIATE was answered: only SMB2 NEGOTIATE may follow.
    closed: bool,
}

pub(crate) struct Conn {
    pub srv: Arc<Server>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The shard thread the connection lives on.
    pub shard: usize,
    tx: Outbox,
    /// Since when no session of the connection is logged on (None: one is).
    unauth_since: Cell<Option<Instant>>,
    pub st: RefCell<ConnState>,
}

/// Where a response's bytes feed a pre-auth integrity hash.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Preauth {
    Connection,
    Session(u64),
}

/// A command's answer: status, encoded body, and file data to send after
/// the body without copying it.
pub(crate) struct Reply {
    pub status: NtStatus,
    pub body: BytesMut,
    pub data: Vec<Bytes>,
}

impl Reply {
    pub fn ok(body: BytesMut) -> Reply {
        Reply {
            status: NtStatus::SUCCESS,
            body,
            data: Vec::new(),
        }
    }

    pub fn with(status: NtStatus, body: BytesMut) -> Reply {
        Reply {
            status,
            body,
            data: Vec::new(),
        }
    }

    pub fn encode(f: impl FnOnce(&mut BytesMut)) -> Reply {
        let mut b = BytesMut::new();
        f(&mut b);
        Reply::ok(b)
    }

    pub fn error(status: NtStatus) -> Reply {
        let mut b = BytesMut::with_capacity(9);
        encode_empty_error(&mut b);
        Reply::with(status, b)
    }
}

pub(crate) type Result<T, E = NtStatus> = std::result::Result<T, E>;

/// One request being served.
pub(crate) struct Ctx {
    pub conn: Rc<Conn>,
    pub hdr: Header,
    /// The whole request message (for pre-auth hashing).
    pub msg: Bytes,
    pub session_id: u64,
    pub tree_id: u32,
    /// The FileId of the previous CREATE of a related compound.
    pub last_fid: Option<FileId>,
    pub encrypted: bool,
    pub async_id: Option<u64>,
    pub preauth: Option<Preauth>,
    /// Sign this response even if the request was not signed.
    pub sign: bool,
}

impl ConnState {
    /// Grant credits outside a request's response (the SMB1 upgrade).
    pub fn grant_credit(&mut self, requested: u16) -> u16 {
        self.credits.grant(requested)
    }
}

impl Conn {
    /// Queue an unsigned, unsealed frame.
    pub fn send_plain(&self, buf: BytesMut) {
        send_frame(self, buf, Vec::new(), None);
    }

    /// Queue a server-to-client OPLOCK_BREAK notification (MS-SMB2
    /// 3.3.4.6-7): MessageId all ones, signed with `session`'s key when it
    /// is named in the header and signs, sealed when `keys_of` encrypts.
    pub fn send_break(&self, header_session: u64, keys_of: u64, body: &[u8]) {
        let mut h = Header::request(Command::OplockBreak, u64::MAX);
        h.flags |= flags::SERVER_TO_REDIR;
        h.session_id = header_session;
        let (signs, seals) = {
            let st = self.st.borrow();
            let s = st.sessions.get(&keys_of).filter(|s| s.valid());
            (s.is_some_and(|s| s.signed), s.is_some_and(|s| s.encrypt))
        };
        let mut chain = ResponseChain::new();
        chain.push_encoded(&h, body);
        let (mut buf, ranges) = chain.finish();
        if signs && header_session != 0 && !seals {
            if let Some(r) = ranges.first() {
                sign_range(self, header_session, &mut buf[r.clone()]);
            }
        }
        send_frame(self, buf, Vec::new(), seals.then_some(keys_of));
    }

    pub fn neg(&self) -> Option<Negotiated> {
        self.st.borrow().neg.clone()
    }

    fn send(&self, bufs: Vec<Bytes>) {
        self.tx.send(bufs);
    }

    /// Seal `frame` for `session` (None when it has no keys).
    fn seal(&self, session: u64, frame: &[u8]) -> Option<Vec<u8>> {
        let mut st = self.st.borrow_mut();
        let cipher = st.neg.as_ref()?.cipher.unwrap_or(Cipher::Aes128Ccm);
        let key = st.sessions.get(&session)?.keys.as_ref()?.encryption.clone()?;
        seal::encrypt(cipher, &key, &mut st.nonces, session, frame).ok()
    }
}

impl Ctx {
    pub fn srv(&self) -> &Arc<Server> {
        &self.conn.srv
    }

    /// The valid session this request names, with `f` applied to it.
    pub fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> Result<R> {
        let mut st = self.conn.st.borrow_mut();
        match st.sessions.get_mut(&self.session_id) {
            Some(s) if s.valid() => Ok(f(s)),
            _ => Err(NtStatus::USER_SESSION_DELETED),
        }
    }

    /// Resolve a FileId of this session and tree (the previous CREATE's
    /// for the related-compound placeholder).
    pub fn open(&self, fid: FileId) -> Result<Rc<Open>> {
        let fid = if fid == FileId::ANY {
            self.last_fid.ok_or(NtStatus::FILE_CLOSED)?
        } else {
            fid
        };
        let st = self.conn.st.borrow();
        match st.opens.get(&fid.volatile) {
            Some(o)
                if o.fid.persistent == fid.persistent
                    && o.session == self.session_id
                    && o.tree == self.tree_id =>
            {
                Ok(o.clone())
            }
            _ => Err(NtStatus::FILE_CLOSED),
        }
    }

    /// Answer STATUS_PENDING now and finish later; the returned receiver
    /// fires when the client cancels the request.
    pub fn go_async(&mut self) -> async_channel::Receiver<()> {
        let (tx, rx) = async_channel::bounded(1);
        let id = {
            let mut st = self.conn.st.borrow_mut();
            st.next_async += 1;
            let id = st.next_async;
            let early = (self.hdr.message_id, self.session_id);
            if let Some(i) = st.early_cancels.iter().position(|&c| c == early) {
                st.early_cancels.remove(i);
                let _ = tx.try_send(());
            }
            st.pending.insert(
                self.hdr.message_id,
                Pending {
                    async_id: id,
                    session: self.session_id,
                    cancel: tx,
                },
            );
            id
        };
        self.async_id = Some(id);
        let mut chain = ResponseChain::new();
        let h = self.response_header(NtStatus::PENDING);
        let mut body = BytesMut::new();
        encode_empty_error(&mut body);
        chain.push_encoded(&h, &body);
        let (mut buf, ranges) = chain.finish();
        if self.hdr.has(flags::SIGNED) && !self.encrypted {
            sign_range(&self.conn, self.session_id, &mut buf[ranges[0].clone()]);
        }
        send_frame(
            &self.conn,
            buf,
            Vec::new(),
            self.encrypted.then_some(self.session_id),
        );
        rx
    }

    /// The request is no longer cancellable.
    pub fn done_async(&self) {
        self.conn.st.borrow_mut().pending.remove(&self.hdr.message_id);
    }

    fn response_header(&self, status: NtStatus) -> Header {
        let credits = if status == NtStatus::PENDING || self.async_id.is_none() {
            let mut st = self.conn.st.borrow_mut();
            st.credits.grant(self.hdr.credits)
        } else {
            0
        };
        let mut h = self.hdr.response(status, credits);
        h.session_id = self.session_id;
        if let Some(id) = self.async_id {
            h.flags |= flags::ASYNC_COMMAND;
            h.id = HeaderId::Async { async_id: id };
        } else if let HeaderId::Sync { process_id, .. } = self.hdr.id {
            h.id = HeaderId::Sync {
                process_id,
                tree_id: self.tree_id,
            };
        }
        h
    }
}

/// Sign one message in place with its session's key (if it has one).
fn sign_range(conn: &Conn, session: u64, msg: &mut [u8]) {
    let st = conn.st.borrow();
    let Some(neg) = st.neg.as_ref() else { return };
    if let Some(keys) = st.sessions.get(&session).and_then(|s| s.keys.as_ref()) {
        let _ = sign::sign(neg.signing, &keys.signing, msg);
    }
}

/// Frame (and seal, for `seal_for`) a response buffer and queue it.
fn send_frame(conn: &Conn, buf: BytesMut, data: Vec<Bytes>, seal_for: Option<u64>) {
    if let Some(bufs) = frame_out(conn, buf, data, seal_for) {
        conn.send(bufs);
    }
}

/// A response buffer framed (and sealed, for `seal_for`), ready for the
/// writer; `None` when it cannot be sealed.
fn frame_out(conn: &Conn, buf: BytesMut, data: Vec<Bytes>, seal_for: Option<u64>) -> Option<Vec<Bytes>> {
    if let Some(sid) = seal_for {
        let mut plain = buf;
        for d in &data {
            plain.extend_from_slice(d);
        }
        let Some(sealed) = conn.seal(sid, &plain) else {
            tracing::warn!(peer = %conn.peer, "smb: cannot seal a response; dropped");
            return None;
        };
        let mut out = BytesMut::with_capacity(4 + sealed.len());
        out.put_slice(&frame_header(sealed.len()));
        out.put_slice(&sealed);
        return Some(vec![out.freeze()]);
    }
    let len = buf.len() + data.iter().map(|d| d.len()).sum::<usize>();
    let mut head = BytesMut::with_capacity(4);
    head.put_slice(&frame_header(len));
    let mut bufs = Vec::with_capacity(2 + data.len());
    bufs.push(head.freeze());
    bufs.push(buf.freeze());
    bufs.extend(data);
    Some(bufs)
}

/// Serve one connection until the client goes or breaks the protocol.
async fn serve(srv: Arc<Server>, stream: TcpStream, peer: SocketAddr, shard: usize) {
    let local = stream.local_addr().unwrap_or(peer);
    let limits = FrameLimits {
        untrusted: PRE_AUTH_MAX_FRAME,
        trusted: (srv.cfg.max_io as usize + 64 * 1024).min(smb_proto::transport::MAX_FRAME),
        in_flight: MAX_INFLIGHT,
        read_size: 64 << 10,
    };
    let frames = Frames(FrameReader::new(limits.untrusted.min(limits.trusted)));
    let accepted = Instant::now();
    framed::serve(stream, peer, limits, frames, |tx| Conn {
        srv,
        peer,
        local,
        shard,
        tx,
        unauth_since: Cell::new(Some(accepted)),
        st: RefCell::new(ConnState {
            neg: None,
            preauth: PreauthHash::new(),
            sessions: HashMap::new(),
            opens: HashMap::new(),
            credits: Credits {
                low: 0,
                high: 1,
                used: BTreeSet::new(),
            },
            pending: HashMap::new(),
            early_cancels: VecDeque::new(),
            next_async: 0,
            nonces: NonceSource::new(),
            closed: false,
        }),
    })
    .await;
}

impl Front for Conn {
    type Framing = Frames;
    type Admitted = (Bytes, Option<u64>);
    const NAME: &'static str = "smb";
    const IDLE_CLOSE: &'static str = "closing an idle connection, or one that did not log on in time";

    /// Large frames are allowed once some session has logged on.
    fn trusts(&self, _: &[u8]) -> Option<bool> {
        Some(self.st.borrow().sessions.values().any(Session::valid))
    }

    fn admit(&self, frame: Bytes) -> Admit<(Bytes, Option<u64>)> {
        match admit(self, frame) {
            None => Admit::Close,
            Some((plain, _)) if plain.is_empty() => Admit::Done,
            Some(admitted) => Admit::Run(admitted),
        }
    }

    fn run(
        conn: &Rc<Self>,
        (frame, sealed): (Bytes, Option<u64>),
    ) -> impl Future<Output = Option<Vec<Bytes>>> + 'static {
        let conn = conn.clone();
        async move { handle_frame(&conn, frame, sealed).await }
    }

    fn idle(&self, busy: bool, last: Instant) -> Idle {
        idle_deadline(self, busy, last)
    }

    async fn close(conn: Rc<Self>) {
        teardown(&conn).await;
    }
}

/// SMB2 direct-TCP framing, as the connection loop takes it.
pub(crate) struct Frames(FrameReader);

cache_engine::framing_for!(Frames, smb_proto::DecodeError, next_frame);

/// When a silent connection may be closed: one with no logged-on session
/// `logon_timeout` after it was made or its last session ended; one with
/// no open, no request in progress and nothing pending `idle_timeout` after
/// it last sent something.
fn idle_deadline(conn: &Conn, busy: bool, last: Instant) -> Idle {
    let cfg = &conn.srv.cfg;
    let st = conn.st.borrow();
    let unauth_since = &conn.unauth_since;
    if !st.sessions.values().any(Session::valid) {
        let since = unauth_since.get().unwrap_or_else(Instant::now);
        unauth_since.set(Some(since));
        return Idle::CloseAt(since + cfg.logon_timeout);
    }
    unauth_since.set(None);
    if !busy && st.opens.is_empty() && st.pending.is_empty() {
        Idle::CloseAt(last + cfg.idle_timeout)
    } else {
        Idle::AskAt(Instant::now() + cfg.idle_timeout)
    }
}

/// Release everything the connection held: opens (with their share modes,
/// locks and delete-on-close), pending requests.
async fn teardown(conn: &Rc<Conn>) {
    let (opens, pending) = {
        let mut st = conn.st.borrow_mut();
        st.closed = true;
        let opens: Vec<Rc<Open>> = st.opens.drain().map(|(_, o)| o).collect();
        let pending: Vec<Pending> = st.pending.drain().map(|(_, p)| p).collect();
        (opens, pending)
    };
    for p in pending {
        let _ = p.cancel.try_send(());
    }
    for o in opens {
        crate::fileops::release(conn, &o).await;
    }
}

/// Decrypt a sealed frame and charge the credits of each of its messages,
/// in arrival order. `None` drops the connection; an empty frame means
/// the request was answered here (SMB1 NEGOTIATE) or needs no answer.
fn admit(conn: &Conn, frame: Bytes) -> Option<(Bytes, Option<u64>)> {
    let (plain, sealed) = match message_kind(&frame).ok()? {
        MessageKind::Transform => {
            let th = seal::TransformHeader::parse(&frame).ok()?;
            let st = conn.st.borrow();
            let cipher = st.neg.as_ref()?.cipher.unwrap_or(Cipher::Aes128Ccm);
            let key = st
                .sessions
                .get(&th.session_id)?
                .keys
                .as_ref()?
                .decryption
                .clone()?;
            match seal::decrypt(cipher, &key, th.session_id, &frame) {
                Ok(p) => (Bytes::from(p), Some(th.session_id)),
                Err(e) => {
                    tracing::info!(peer = %conn.peer, "smb: undecryptable frame: {e}");
                    return None;
                }
            }
        }
        MessageKind::Smb1 => {
            crate::negotiate::smb1(conn, &frame)?;
            return Some((Bytes::new(), None));
        }
        MessageKind::Smb2 => (frame, None),
        _ => return None,
    };
    let mut st = conn.st.borrow_mut();
    let dialect = st.neg.as_ref().map(|n| n.dialect);
    for m in chain(plain.clone()) {
        let m = m.ok()?;
        if m.header.flags & flags::SERVER_TO_REDIR != 0 {
            return None;
        }
        if m.header.command == Command::Cancel {
            continue;
        }
        let charge = match dialect {
            Some(d) if d >= Dialect::Smb210 => u64::from(m.header.credit_charge.max(1)),
            _ => 1,
        };
        if !st.credits.admit(m.header.message_id, charge) {
            tracing::info!(peer = %conn.peer, mid = m.header.message_id, "smb: message id outside the credit window");
            return None;
        }
    }
    Some((plain, sealed))
}

/// Run every message of a frame; the responses, as one frame.
async fn handle_frame(conn: &Rc<Conn>, frame: Bytes, sealed: Option<u64>) -> Option<Vec<Bytes>> {
    let mut out = ResponseChain::new();
    let mut data_out: Vec<Bytes> = Vec::new();
    let mut signs: Vec<(u64, bool)> = Vec::new();
    let mut hashes: Vec<Option<Preauth>> = Vec::new();
    let (mut session_id, mut tree_id, mut last_fid) = (0u64, 0u32, None::<FileId>);
    let mut create_failed: Option<NtStatus> = None;
    let mut any = false;
    let mut first_cmd = None;
    for (i, m) in chain(frame).enumerate() {
        let Ok(m) = m else { break };
        let hdr = m.header;
        first_cmd.get_or_insert(hdr.command);
        let related = i > 0 && hdr.has(flags::RELATED_OPERATIONS);
        if !related {
            session_id = hdr.session_id;
            tree_id = hdr.tree_id().unwrap_or(0);
            last_fid = None;
        } else {
            if hdr.session_id != u64::MAX {
                session_id = hdr.session_id;
            }
            if let Some(t) = hdr.tree_id().filter(|&t| t != u32::MAX) {
                tree_id = t;
            }
        }
        let mut ctx = Ctx {
            conn: conn.clone(),
            hdr,
            msg: m.bytes.clone(),
            session_id,
            tree_id,
            last_fid,
            encrypted: sealed.is_some(),
            async_id: None,
            preauth: None,
            sign: false,
        };
        if hdr.command == Command::Cancel {
            // CANCEL has no response, but it passes the same signature
            // checks as any request: a forged one must not end another's.
            match check(&ctx, &m.bytes, sealed) {
                Ok(()) if refuse_plain(&ctx).is_none() => cancel(conn, &hdr),
                Ok(()) => tracing::info!(peer = %conn.peer, "smb: unsigned CANCEL ignored"),
                Err(Drop) => {
                    hang_up(conn);
                    return None;
                }
            }
            continue;
        }
        // A related request after a failed CREATE has no FileId to work
        // on: it fails the same way (other failures do not propagate, so
        // a CLOSE after a failed SET_INFO still closes).
        let reply = if let Some(status) = create_failed.filter(|_| related) {
            Reply::error(status)
        } else if (i == 0 && hdr.has(flags::RELATED_OPERATIONS))
            || (related && (session_id == u64::MAX || tree_id == u32::MAX))
            || (hdr.command == Command::ChangeNotify && hdr.next_command != 0)
        {
            // A first request marked related, a related one with nothing
            // valid to inherit, a CHANGE_NOTIFY that is not last.
            Reply::error(NtStatus::INVALID_PARAMETER)
        } else {
            match check(&ctx, &m.bytes, sealed) {
                Ok(()) => match Request::decode(hdr.command, m.body()) {
                    Ok(req) => dispatch(&mut ctx, req).await.unwrap_or_else(Reply::error),
                    Err(e) => {
                        tracing::debug!(peer = %conn.peer, "smb: bad {:?} request: {e}", hdr.command);
                        Reply::error(NtStatus::INVALID_PARAMETER)
                    }
                },
                Err(Drop) => {
                    hang_up(conn);
                    return None;
                }
            }
        };
        if ctx.async_id.is_some() {
            ctx.done_async();
        }
        if reply.status.is_error() {
            tracing::debug!(peer = %conn.peer, mid = hdr.message_id, "smb: {:?} -> {}", hdr.command, reply.status);
        }
        if hdr.command == Command::Create {
            create_failed = reply.status.is_error().then_some(reply.status);
        } else if !related {
            create_failed = None;
        }
        if let Some(fid) = reply_fid(&hdr, &reply) {
            last_fid = Some(fid);
        }
        session_id = ctx.session_id;
        let h = ctx.response_header(reply.status);
        let signed = (hdr.has(flags::SIGNED) || ctx.sign || session_signs(conn, ctx.session_id))
            && sealed.is_none()
            && reply.status != NtStatus::MORE_PROCESSING_REQUIRED;
        signs.push((ctx.session_id, signed));
        hashes.push(ctx.preauth);
        if !reply.data.is_empty() && data_out.is_empty() && i == 0 && hdr.next_command == 0 && !signed {
            out.push_encoded(&h, &reply.body);
            data_out = reply.data;
        } else {
            let mut body = reply.body;
            for d in &reply.data {
                body.extend_from_slice(d);
            }
            out.push_encoded(&h, &body);
        }
        any = true;
    }
    if !any {
        return None;
    }
    let (mut buf, ranges) = out.finish();
    for ((range, (sid, signed)), hash) in ranges.iter().zip(&signs).zip(&hashes) {
        if *signed {
            sign_range(conn, *sid, &mut buf[range.clone()]);
        }
        if let Some(target) = hash {
            let bytes = &buf[range.clone()];
            let mut st = conn.st.borrow_mut();
            match target {
                Preauth::Connection => st.preauth.update(bytes),
                Preauth::Session(id) => {
                    if let Some(s) = st.sessions.get_mut(id) {
                        s.preauth_update(bytes);
                    }
                }
            }
        }
    }
    // The final SESSION_SETUP response is signed, not sealed: the client
    // has its keys only once it has checked it.
    let seal_for = sealed.or_else(|| {
        if first_cmd == Some(Command::SessionSetup) {
            return None;
        }
        let sid = signs.first().map(|s| s.0)?;
        let st = conn.st.borrow();
        st.sessions
            .get(&sid)
            .filter(|s| s.valid() && s.encrypt)
            .map(|_| sid)
    });
    frame_out(conn, buf, data_out, seal_for)
}

/// The FileId a successful CREATE gave out.
fn reply_fid(hdr: &Header, reply: &Reply) -> Option<FileId> {
    if hdr.command != Command::Create || reply.status.is_error() || reply.body.len() < 80 {
        return None;
    }
    let b = &reply.body[64..80];
    Some(FileId {
        persistent: u64::from_le_bytes(b[..8].try_into().ok()?),
        volatile: u64::from_le_bytes(b[8..].try_into().ok()?),
    })
}

fn session_signs(conn: &Conn, sid: u64) -> bool {
    let st = conn.st.borrow();
    st.sessions.get(&sid).is_some_and(|s| s.valid() && s.signed)
}

/// The connection must go.
struct Drop;

/// Close the connection after a bad signature, as Windows does.
fn hang_up(conn: &Conn) {
    conn.st.borrow_mut().closed = true;
    conn.tx.hang_up();
}

/// Signature and encryption checks of one message (MS-SMB2 3.3.5.2.4, 3.3.5.2.9).
fn check(ctx: &Ctx, msg: &Bytes, sealed: Option<u64>) -> std::result::Result<(), Drop> {
    let cmd = ctx.hdr.command;
    if matches!(cmd, Command::Negotiate) {
        return Ok(());
    }
    let st = ctx.conn.st.borrow();
    let Some(neg) = st.neg.as_ref() else {
        return Ok(());
    };
    let Some(s) = st.sessions.get(&ctx.session_id) else {
        return Ok(());
    };
    if sealed.is_some() && sealed != Some(ctx.session_id) && ctx.session_id != 0 {
        return Err(Drop);
    }
    if sealed.is_none() && ctx.hdr.has(flags::SIGNED) {
        if let Some(keys) = s.keys.as_ref() {
            if sign::verify(neg.signing, &keys.signing, msg).is_err() {
                tracing::info!(peer = %ctx.conn.peer, "smb: bad signature on {cmd:?}");
                return Err(Drop);
            }
        }
    }
    Ok(())
}

/// Whether an unsigned or unsealed request must be refused.
pub(crate) fn refuse_plain(ctx: &Ctx) -> Option<NtStatus> {
    let st = ctx.conn.st.borrow();
    let s = st.sessions.get(&ctx.session_id)?;
    if !s.valid() {
        return None;
    }
    if s.signed && !ctx.encrypted && !ctx.hdr.has(flags::SIGNED) {
        return Some(NtStatus::ACCESS_DENIED);
    }
    let tree_encrypts = s.trees.get(&ctx.tree_id).is_some_and(|t| t.encrypt);
    if (s.encrypt || tree_encrypts) && !ctx.encrypted {
        return Some(NtStatus::ACCESS_DENIED);
    }
    None
}

/// CANCEL: fire the pending request's cancel (it answers STATUS_CANCELLED).
fn cancel(conn: &Conn, hdr: &Header) {
    let mut st = conn.st.borrow_mut();
    let found = match hdr.async_id() {
        Some(a) => st.pending.values().find(|p| p.async_id == a),
        None => st.pending.get(&hdr.message_id),
    };
    match found {
        Some(p) if p.session == hdr.session_id => {
            let _ = p.cancel.try_send(());
        }
        Some(_) => {}
        // Its request may still be on its way to going async: kept for it.
        None if hdr.async_id().is_none() => {
            if st.early_cancels.len() == EARLY_CANCELS {
                st.early_cancels.pop_front();
            }
            st.early_cancels.push_back((hdr.message_id, hdr.session_id));
        }
        None => {}
    }
}

/// CANCELs kept for requests not yet async (older ones are for requests
/// that finished without going async).
const EARLY_CANCELS: usize = 16;

async fn dispatch(ctx: &mut Ctx, req: Request) -> Result<Reply> {
    use crate::{dir, fileops, info, ioctl, lock, negotiate, notify, session, tree};
    match &req {
        Request::Negotiate(_) => {}
        _ if ctx.conn.neg().is_none() => return Err(NtStatus::INVALID_PARAMETER),
        Request::SessionSetup(_) | Request::Echo => {}
        _ => {
            if let Some(s) = refuse_plain(ctx) {
                return Err(s);
            }
            ctx.with_session(|_| ())?;
        }
    }
    match req {
        Request::Negotiate(r) => negotiate::negotiate(ctx, r),
        Request::SessionSetup(r) => session::setup(ctx, r).await,
        Request::Logoff => session::logoff(ctx).await,
        Request::Echo => Ok(Reply::encode(smb_proto::simple::encode_empty)),
        Request::TreeConnect(r) => tree::connect(ctx, r),
        Request::TreeDisconnect => tree::disconnect(ctx).await,
        Request::Cancel => Err(NtStatus::INVALID_PARAMETER),
        Request::OplockBreak(r) => {
            tree::check(ctx)?;
            crate::oplock::acknowledge(ctx, r).await
        }
        other => {
            tree::check(ctx)?;
            match other {
                Request::Create(r) => fileops::create(ctx, *r).await,
                Request::Close(r) => fileops::close(ctx, r).await,
                Request::Flush(r) => fileops::flush(ctx, r).await,
                Request::Read(r) => fileops::read(ctx, r).await,
                Request::Write(r) => fileops::write(ctx, r).await,
                Request::Lock(r) => lock::lock(ctx, r).await,
                Request::Ioctl(r) => ioctl::ioctl(ctx, r).await,
                Request::QueryDirectory(r) => dir::query(ctx, r).await,
                Request::ChangeNotify(r) => notify::change_notify(ctx, r).await,
                Request::QueryInfo(r) => info::query(ctx, r).await,
                Request::SetInfo(r) => info::set(ctx, r).await,
                _ => Err(NtStatus::NOT_SUPPORTED),
            }
        }
    }
}
