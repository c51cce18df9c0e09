//! Connections: the engine's framed connection loop over SMB2 direct-TCP
//! framing, each frame admitted (decrypted, its credits charged) in
//! arrival order and run as a task (see `dispatch`); the connection's
//! state (sessions, opens, requests gone async); signing and sealing of
//! what is sent.
//!
//! Everything of one connection lives on the shard thread that accepted
//! it: its state is a `RefCell` that no borrow holds across an await.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
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
use smb_proto::crypto::{Cipher, Dialect, SigningAlgorithm};
use smb_proto::header::{flags, message_kind, MessageKind};
use smb_proto::transport::{frame_header, FrameReader};
use smb_proto::{Command, Header};

use crate::credits::{charge, Credits};
use crate::fileops::Open;
use crate::session::Session;
use crate::Server;

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

/// A request that went async and may be cancelled.
pub(crate) struct Pending {
    pub async_id: u64,
    pub session: u64,
    pub cancel: async_channel::Sender<()>,
}

pub(crate) struct ConnState {
    pub neg: Option<Negotiated>,
    /// The connection's pre-auth integrity hash (3.1.1).
    pub preauth: PreauthHash,
    pub sessions: HashMap<u64, Session>,
    pub opens: HashMap<u64, Rc<Open>>,
    pub credits: Credits,
    pub pending: HashMap<u64, Pending>,
    /// CANCELs (message id, session) read before their request went async.
    pub early_cancels: VecDeque<(u64, u64)>,
    pub next_async: u64,
    pub nonces: NonceSource,
    /// An SMB1 NEGOTIATE was answered: only SMB2 NEGOTIATE may follow.
    pub closed: bool,
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

impl ConnState {
    /// A new connection's: nothing negotiated yet.
    pub fn new() -> ConnState {
        ConnState {
            neg: None,
            preauth: PreauthHash::new(),
            sessions: HashMap::new(),
            opens: HashMap::new(),
            credits: Credits::new(),
            pending: HashMap::new(),
            early_cancels: VecDeque::new(),
            next_async: 0,
            nonces: NonceSource::new(),
            closed: false,
        }
    }

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

/// Sign one message in place with its session's key (if it has one).
pub(crate) fn sign_range(conn: &Conn, session: u64, msg: &mut [u8]) {
    conn.st.borrow().sign(session, msg);
}

/// Frame (and seal, for `seal_for`) a response buffer and queue it.
pub(crate) fn send_frame(conn: &Conn, buf: BytesMut, data: Vec<Bytes>, seal_for: Option<u64>) {
    if let Some(bufs) = frame_out(conn, buf, data, seal_for) {
        conn.send(bufs);
    }
}

/// A response buffer framed (and sealed, for `seal_for`), ready for the
/// writer; `None` when it cannot be sealed.
pub(crate) fn frame_out(
    conn: &Conn,
    buf: BytesMut,
    data: Vec<Bytes>,
    seal_for: Option<u64>,
) -> Option<Vec<Bytes>> {
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
        st: RefCell::new(ConnState::new()),
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
        async move { crate::dispatch::handle_frame(&conn, frame, sealed).await }
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
        let charge = charge(dialect, m.header.credit_charge);
        if !st.credits.admit(m.header.message_id, charge) {
            tracing::info!(peer = %conn.peer, mid = m.header.message_id, "smb: message id outside the credit window");
            return None;
        }
    }
    Some((plain, sealed))
}

/// Close the connection after a bad signature, as Windows does.
pub(crate) fn hang_up(conn: &Conn) {
    conn.st.borrow_mut().closed = true;
    conn.tx.hang_up();
}
