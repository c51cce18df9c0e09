//! SESSION_SETUP (driving the SPNEGO/NTLM acceptor, pre-auth integrity,
//! key derivation, guest mapping, logon throttling), reauthentication and
//! LOGOFF.

use std::collections::HashMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use cache_engine::types::Credentials;
use smb_proto::crypto::kdf::SessionKeys;
use smb_proto::crypto::preauth::PreauthHash;
use smb_proto::crypto::Dialect;
use smb_proto::negotiate::security_mode;
use smb_proto::session::{session_flags, SessionSetupRequest, SessionSetupResponse};
use smb_proto::NtStatus;

use crate::auth::throttle::{LogonAttempt, NotNow};
use crate::auth::users::User;
use crate::auth::{Acceptor, AuthFailure, Identity, Step};
use crate::config::Encryption;
use crate::context::{Ctx, Preauth, Reply, Result};
use crate::tree::Tree;

pub(crate) struct Session {
    /// Logged on (a reauthentication in progress leaves it valid).
    logged_on: bool,
    acceptor: Option<Acceptor>,
    /// Counts the logon in progress against the client's limits.
    attempt: Option<LogonAttempt>,
    preauth: PreauthHash,
    pub user: String,
    pub cred: Credentials,
    pub guest: bool,
    pub keys: Option<SessionKeys>,
    /// Every request and response of the session is signed.
    pub signed: bool,
    /// Every request and response of the session is sealed.
    pub encrypt: bool,
    pub trees: HashMap<u32, Tree>,
    pub next_tree: u32,
}

impl Session {
    /// A session whose setup begins, its pre-auth hash forked from the
    /// connection's.
    fn new(preauth: PreauthHash) -> Session {
        Session {
            logged_on: false,
            acceptor: None,
            attempt: None,
            preauth,
            user: String::new(),
            cred: Credentials::root(),
            guest: false,
            keys: None,
            signed: false,
            encrypt: false,
            trees: HashMap::new(),
            next_tree: 1,
        }
    }

    /// A session logged on with `keys`, as a setup leaves it.
    #[cfg(test)]
    pub fn logged_on_with(keys: SessionKeys, signed: bool, encrypt: bool) -> Session {
        Session {
            logged_on: true,
            keys: Some(keys),
            signed,
            encrypt,
            ..Session::new(PreauthHash::new())
        }
    }

    #[cfg(test)]
    pub fn preauth_value(&self) -> &[u8; 64] {
        self.preauth.value()
    }

    pub fn valid(&self) -> bool {
        self.logged_on
    }

    pub fn preauth_update(&mut self, msg: &[u8]) {
        if self.acceptor.is_some() {
            self.preauth.update(msg);
        }
    }
}

fn anonymous_user(user: &User) -> (String, Credentials) {
    (
        user.name.clone(),
        Credentials {
            uid: user.uid,
            gid: user.gid,
            gids: user.groups.clone(),
            ..Default::default()
        },
    )
}

pub(crate) async fn setup(ctx: &mut Ctx, req: SessionSetupRequest) -> Result<Reply> {
    let conn = ctx.conn.clone();
    let srv = conn.srv.clone();
    let neg = conn.neg().ok_or(NtStatus::INVALID_PARAMETER)?;
    if req.is_binding() {
        return Err(NtStatus::REQUEST_NOT_ACCEPTED);
    }
    if srv.cfg.encryption == Encryption::Required && (!neg.dialect.is_smb3() || neg.cipher.is_none()) {
        return Err(NtStatus::ACCESS_DENIED);
    }
    let ip = conn.peer.ip();
    let sid = if ctx.hdr.session_id == 0 {
        let id = srv.unique();
        let mut st = conn.st.borrow_mut();
        let in_setup = st.sessions.values().filter(|s| s.acceptor.is_some()).count();
        if in_setup >= srv.cfg.logons.per_connection {
            tracing::info!(peer = %conn.peer, "smb: too many sessions in setup on one connection");
            return Err(NtStatus::REQUEST_NOT_ACCEPTED);
        }
        let preauth = st.preauth.fork();
        st.sessions.insert(id, Session::new(preauth));
        id
    } else {
        ctx.hdr.session_id
    };
    ctx.session_id = sid;
    let token = {
        let mut st = conn.st.borrow_mut();
        let fresh = st.preauth.fork();
        let s = st.sessions.get_mut(&sid).ok_or(NtStatus::USER_SESSION_DELETED)?;
        if s.acceptor.is_none() {
            match LogonAttempt::begin(&srv.throttle, ip, Instant::now()) {
                Ok(a) => s.attempt = Some(a),
                Err(why) => {
                    if !s.logged_on {
                        st.sessions.remove(&sid);
                    }
                    return Err(refuse_logon(&conn.peer, why));
                }
            }
            s.acceptor = Some(Acceptor::new(srv.users.clone(), srv.names.clone()));
            if s.logged_on {
                s.preauth = fresh;
            }
        }
        if neg.dialect == Dialect::Smb311 {
            s.preauth.update(&ctx.msg);
        }
        req.security_buffer.clone()
    };
    let wait = {
        let mut t = srv.throttle.lock().unwrap_or_else(|e| e.into_inner());
        if t.locked_out(ip, Instant::now()) {
            drop(t);
            end_logon(&conn, sid);
            return Err(refuse_logon(&conn.peer, NotNow::LockedOut));
        }
        t.delay(ip, Instant::now())
    };
    if !wait.is_zero() {
        compio::time::sleep(wait).await;
    }
    let step = {
        let mut st = conn.st.borrow_mut();
        let s = st.sessions.get_mut(&sid).ok_or(NtStatus::USER_SESSION_DELETED)?;
        match s.acceptor.as_mut() {
            Some(a) => a.step(&token),
            None => Step::Failed(AuthFailure::UnexpectedToken),
        }
    };
    let (identity, key, out_token) = match step {
        Step::Continue(out) => {
            if neg.dialect == Dialect::Smb311 {
                ctx.preauth = Some(Preauth::Session(sid));
            }
            let mut b = BytesMut::new();
            SessionSetupResponse {
                session_flags: 0,
                security_buffer: Bytes::from(out),
            }
            .encode(&mut b);
            return Ok(Reply::with(NtStatus::MORE_PROCESSING_REQUIRED, b));
        }
        Step::Done {
            identity,
            session_key,
            out_token,
        } => (Some(identity), session_key, out_token),
        Step::Failed(AuthFailure::UnknownUser(u)) if srv.users.guest().is_some() => {
            tracing::info!(peer = %conn.peer, "smb: unknown user {u:?} logged on as guest");
            (None, Vec::new(), Vec::new())
        }
        Step::Failed(why) => {
            tracing::warn!(peer = %conn.peer, "smb: logon failed: {why}");
            let locked = srv
                .throttle
                .lock()
                .map(|mut t| t.record_failure(ip, Instant::now()))
                .unwrap_or(false);
            if locked {
                let l = srv.cfg.logons;
                tracing::warn!(peer = %conn.peer, "smb: {} failed logons in a row: the address is locked out for {:?}", l.lockout_after, l.lockout_for);
            }
            end_logon(&conn, sid);
            return Err(NtStatus::LOGON_FAILURE);
        }
    };
    let (user, cred, guest) = match identity {
        Some(Identity::User { user, .. }) => {
            let (n, c) = anonymous_user(&user);
            (n, c, false)
        }
        _ => match srv.users.guest() {
            Some(g) => {
                let (n, c) = anonymous_user(g);
                (n, c, true)
            }
            None => {
                tracing::warn!(peer = %conn.peer, "smb: anonymous logon refused (no guest account)");
                conn.st.borrow_mut().sessions.remove(&sid);
                return Err(NtStatus::LOGON_FAILURE);
            }
        },
    };
    // A guest or anonymous session has no key to sign or seal with: when
    // the server demands either, it is refused (Samba refuses it under
    // required encryption; a signing-required Windows client refuses it).
    if (guest || key.is_empty()) && (srv.signing_required() || srv.cfg.encryption == Encryption::Required) {
        tracing::warn!(peer = %conn.peer, "smb: guest logon refused: signing or encryption is required");
        end_logon(&ctx.conn, sid);
        return Err(NtStatus::ACCESS_DENIED);
    }
    if let Ok(mut t) = srv.throttle.lock() {
        t.record_success(ip);
    }
    let mut flags = 0;
    {
        let mut st = conn.st.borrow_mut();
        let s = st.sessions.get_mut(&sid).ok_or(NtStatus::USER_SESSION_DELETED)?;
        if s.logged_on && s.user != user {
            // A reauthentication must not change who the session is.
            s.acceptor = None;
            s.attempt = None;
            return Err(NtStatus::ACCESS_DENIED);
        }
        s.acceptor = None;
        s.attempt = None;
        s.user = user;
        s.cred = cred;
        s.guest = guest;
        s.logged_on = true;
        if guest || key.is_empty() {
            flags |= session_flags::IS_GUEST;
            s.keys = None;
            s.signed = false;
        } else {
            s.keys = Some(SessionKeys::derive(
                neg.dialect,
                neg.cipher,
                &key,
                s.preauth.value(),
            ));
            s.signed =
                neg.signing_required || u16::from(req.security_mode) & security_mode::SIGNING_REQUIRED != 0;
            s.encrypt = srv.cfg.encryption == Encryption::Required && neg.dialect.is_smb3();
            if s.encrypt {
                flags |= session_flags::ENCRYPT_DATA;
            }
            ctx.sign = s.signed || neg.dialect == Dialect::Smb311;
        }
    }
    let mut b = BytesMut::new();
    SessionSetupResponse {
        session_flags: flags,
        security_buffer: Bytes::from(out_token),
    }
    .encode(&mut b);
    Ok(Reply::ok(b))
}

/// A logon that failed or was refused: a session that was not logged on
/// goes, one that was (a reauthentication) stays as it was.
fn end_logon(conn: &crate::conn::Conn, sid: u64) {
    let mut st = conn.st.borrow_mut();
    if st.sessions.get(&sid).is_some_and(|s| !s.logged_on) {
        st.sessions.remove(&sid);
    } else if let Some(s) = st.sessions.get_mut(&sid) {
        s.acceptor = None;
        s.attempt = None;
    }
}

/// Log a logon refused before it started; the status the client gets.
fn refuse_logon(peer: &std::net::SocketAddr, why: NotNow) -> NtStatus {
    match why {
        NotNow::LockedOut => {
            tracing::info!(%peer, "smb: logon refused: the address is locked out after failed logons");
            NtStatus::LOGON_FAILURE
        }
        NotNow::Busy => {
            tracing::info!(%peer, "smb: logon refused: too many logons in progress");
            NtStatus::REQUEST_NOT_ACCEPTED
        }
    }
}

pub(crate) async fn logoff(ctx: &mut Ctx) -> Result<Reply> {
    let sid = ctx.session_id;
    crate::fileops::close_where(&ctx.conn, |o| o.session == sid).await;
    // The response is still signed with the session's key: the session
    // stops serving now and is dropped once the response is out.
    ctx.sign = ctx.with_session(|s| {
        s.logged_on = false;
        s.signed
    })?;
    let conn = ctx.conn.clone();
    compio::runtime::spawn(async move {
        conn.st.borrow_mut().sessions.remove(&sid);
    })
    .detach();
    Ok(Reply::encode(smb_proto::simple::encode_empty))
}
