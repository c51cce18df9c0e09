//! One frame's requests, in order: the signature and encryption checks,
//! the compound chain, dispatch to the command modules, and the responses
//! signed, hashed into the pre-auth integrity value and framed as one.

use std::rc::Rc;

use bytes::Bytes;
use smb_proto::compound::{chain, ResponseChain};
use smb_proto::header::flags;
use smb_proto::{Command, FileId, Header, NtStatus, Request};

use crate::compound::Compound;
use crate::conn::{frame_out, hang_up, sign_range, Conn};
use crate::context::{Ctx, Preauth, Reply, Result};
use crate::signing::Refused;

/// Run every message of a frame; the responses, as one frame.
pub(crate) async fn handle_frame(conn: &Rc<Conn>, frame: Bytes, sealed: Option<u64>) -> Option<Vec<Bytes>> {
    let mut out = ResponseChain::new();
    let mut data_out: Vec<Bytes> = Vec::new();
    let mut signs: Vec<(u64, bool)> = Vec::new();
    let mut hashes: Vec<Option<Preauth>> = Vec::new();
    let mut compound = Compound::default();
    let mut any = false;
    let mut first_cmd = None;
    for (i, m) in chain(frame).enumerate() {
        let Ok(m) = m else { break };
        let hdr = m.header;
        first_cmd.get_or_insert(hdr.command);
        let member = compound.next(&hdr);
        let mut ctx = Ctx {
            conn: conn.clone(),
            hdr,
            msg: m.bytes.clone(),
            session_id: member.session_id,
            tree_id: member.tree_id,
            last_fid: member.last_fid,
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
        let reply = if let Some(status) = member.refused {
            Reply::error(status)
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
        compound.answered(
            &hdr,
            &member,
            reply.status,
            reply_fid(&hdr, &reply),
            ctx.session_id,
        );
        let h = ctx.response_header(reply.status);
        let signed = (hdr.has(flags::SIGNED) || ctx.sign || conn.st.borrow().session_signs(ctx.session_id))
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
            conn.st.borrow_mut().hash_response(*target, &buf[range.clone()]);
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

/// The connection must go.
struct Drop;

/// Signature and encryption checks of one message (MS-SMB2 3.3.5.2.4, 3.3.5.2.9).
fn check(ctx: &Ctx, msg: &Bytes, sealed: Option<u64>) -> std::result::Result<(), Drop> {
    let checked = ctx.conn.st.borrow().verify(&ctx.hdr, ctx.session_id, msg, sealed);
    match checked {
        Ok(()) => Ok(()),
        Err(Refused::OtherSession) => Err(Drop),
        Err(Refused::Signature) => {
            tracing::info!(peer = %ctx.conn.peer, "smb: bad signature on {:?}", ctx.hdr.command);
            Err(Drop)
        }
    }
}

/// Whether an unsigned or unsealed request must be refused.
pub(crate) fn refuse_plain(ctx: &Ctx) -> Option<NtStatus> {
    let st = ctx.conn.st.borrow();
    st.refuses_plain(&ctx.hdr, ctx.session_id, ctx.tree_id, ctx.encrypted)
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
