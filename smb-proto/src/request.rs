//! Decode any request body by its header's command.

use bytes::Bytes;

use crate::create::CreateRequest;
use crate::dir::{ChangeNotifyRequest, QueryDirectoryRequest};
use crate::error::{DecodeError, Result};
use crate::header::Command;
use crate::info::{QueryInfoRequest, SetInfoRequest};
use crate::io::{CloseRequest, FlushRequest, LockRequest, ReadRequest, WriteRequest};
use crate::ioctl::IoctlRequest;
use crate::negotiate::NegotiateRequest;
use crate::oplock::BreakAcknowledgment;
use crate::session::SessionSetupRequest;
use crate::simple::decode_empty;
use crate::tree::TreeConnectRequest;

/// Every request a client can send, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Negotiate(NegotiateRequest),
    SessionSetup(SessionSetupRequest),
    Logoff,
    TreeConnect(TreeConnectRequest),
    TreeDisconnect,
    Create(Box<CreateRequest>),
    Close(CloseRequest),
    Flush(FlushRequest),
    Read(ReadRequest),
    Write(WriteRequest),
    Lock(LockRequest),
    Ioctl(IoctlRequest),
    Cancel,
    Echo,
    QueryDirectory(QueryDirectoryRequest),
    ChangeNotify(ChangeNotifyRequest),
    QueryInfo(QueryInfoRequest),
    SetInfo(SetInfoRequest),
    OplockBreak(BreakAcknowledgment),
}

impl Request {
    /// Decode `body` (the bytes after the 64-byte header) as a request of
    /// `command`.
    pub fn decode(command: Command, body: Bytes) -> Result<Request> {
        Ok(match command {
            Command::Negotiate => Request::Negotiate(NegotiateRequest::decode(body)?),
            Command::SessionSetup => Request::SessionSetup(SessionSetupRequest::decode(body)?),
            Command::Logoff => decode_empty(body, "LOGOFF request").map(|_| Request::Logoff)?,
            Command::TreeConnect => Request::TreeConnect(TreeConnectRequest::decode(body)?),
            Command::TreeDisconnect => {
                decode_empty(body, "TREE_DISCONNECT request").map(|_| Request::TreeDisconnect)?
            }
            Command::Create => Request::Create(Box::new(CreateRequest::decode(body)?)),
            Command::Close => Request::Close(CloseRequest::decode(body)?),
            Command::Flush => Request::Flush(FlushRequest::decode(body)?),
            Command::Read => Request::Read(ReadRequest::decode(body)?),
            Command::Write => Request::Write(WriteRequest::decode(body)?),
            Command::Lock => Request::Lock(LockRequest::decode(body)?),
            Command::Ioctl => Request::Ioctl(IoctlRequest::decode(body)?),
            Command::Cancel => decode_empty(body, "CANCEL request").map(|_| Request::Cancel)?,
            Command::Echo => decode_empty(body, "ECHO request").map(|_| Request::Echo)?,
            Command::QueryDirectory => Request::QueryDirectory(QueryDirectoryRequest::decode(body)?),
            Command::ChangeNotify => Request::ChangeNotify(ChangeNotifyRequest::decode(body)?),
            Command::QueryInfo => Request::QueryInfo(QueryInfoRequest::decode(body)?),
            Command::SetInfo => Request::SetInfo(SetInfoRequest::decode(body)?),
            Command::OplockBreak => Request::OplockBreak(BreakAcknowledgment::decode(body)?),
            Command::Unknown(c) => {
                return Err(DecodeError::InvalidValue {
                    what: "Command",
                    value: c.into(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compound::chain;
    use crate::header::Header;
    use bytes::BytesMut;

    #[test]
    fn dispatch_through_a_compound() {
        // CREATE + READ + CLOSE, as clients compound them.
        let mut frame = BytesMut::new();
        let create = crate::create::tests::sample();
        let read = ReadRequest {
            padding: 0x50,
            flags: 0,
            length: 4096,
            offset: 0,
            file_id: crate::wire::FileId::ANY,
            minimum_count: 0,
            channel: 0,
            remaining_bytes: 0,
            channel_info: Bytes::new(),
        };
        let close = CloseRequest {
            flags: 0,
            file_id: crate::wire::FileId::ANY,
        };
        let mut bodies: Vec<(Command, BytesMut)> = Vec::new();
        let mut b = BytesMut::new();
        create.encode(&mut b);
        bodies.push((Command::Create, b));
        let mut b = BytesMut::new();
        read.encode(&mut b);
        bodies.push((Command::Read, b));
        let mut b = BytesMut::new();
        close.encode(&mut b);
        bodies.push((Command::Close, b));
        let n = bodies.len();
        for (i, (cmd, body)) in bodies.into_iter().enumerate() {
            let start = frame.len();
            let mut h = Header::request(cmd, i as u64);
            let len = 64 + body.len();
            if i + 1 < n {
                h.next_command = len.next_multiple_of(8) as u32;
            }
            h.encode(&mut frame);
            frame.extend_from_slice(&body);
            if i + 1 < n {
                frame.resize(start + len.next_multiple_of(8), 0);
            }
        }
        let got: Vec<Request> = chain(frame.freeze())
            .map(|m| {
                let m = m.unwrap();
                Request::decode(m.header.command, m.body()).unwrap()
            })
            .collect();
        assert_eq!(
            got,
            vec![
                Request::Create(Box::new(create)),
                Request::Read(read),
                Request::Close(close)
            ]
        );
        assert!(Request::decode(Command::Unknown(0x55), Bytes::new()).is_err());
        assert_eq!(
            Request::decode(Command::Echo, Bytes::from_static(&[4, 0, 0, 0])).unwrap(),
            Request::Echo
        );
    }
}
