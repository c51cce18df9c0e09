//! What every command handler is given and gives back: one request being
//! served (its header, session, tree, and the connection it came on) and
//! the command's reply; going async (an interim response now, the final
//! one later) is a step of the request too.

use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use smb_proto::compound::ResponseChain;
use smb_proto::error_response::encode_empty_error;
use smb_proto::header::{flags, HeaderId};
use smb_proto::{FileId, Header, NtStatus};

use crate::conn::{send_frame, sign_range, Conn, Pending};
use crate::fileops::Open;
use crate::session::Session;
use crate::Server;

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

    pub fn response_header(&self, status: NtStatus) -> Header {
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
