//! Every decoder of the crate on one input, for fuzzing and robustness
//! tests: the first byte picks a chunk size and an info class, the rest is
//! fed through the frame reader, the compound walker, the header and every
//! request decoder, and straight into the context, security descriptor and
//! info-class decoders.

use bytes::Bytes;

use crate::compound::chain;
use crate::create::{context_name, decode_context_chain, CreateContext};
use crate::fscc::{decode_set_fs_info, SetFileInfo};
use crate::header::{message_kind, Command, MessageKind, Smb1Negotiate};
use crate::ioctl::{decode_network_interfaces, CopyChunkRequest, ValidateNegotiateInfoRequest};
use crate::request::Request;
use crate::security::SecurityDescriptor;
use crate::transport::FrameReader;

/// Run every decoder on `data`; returns how many decodes succeeded. Must
/// never panic.
pub fn decode_all(data: &[u8]) -> usize {
    let Some((&sel, rest)) = data.split_first() else {
        return 0;
    };
    let bytes = Bytes::copy_from_slice(rest);
    let mut ok = 0;
    let mut count = |r: bool| ok += usize::from(r);

    let mut reader = FrameReader::new(1 << 16);
    'feed: for chunk in rest.chunks(usize::from(sel).max(1)) {
        reader.buffer().extend_from_slice(chunk);
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= 1 << 16);
                    count(walk_frame(frame) > 0);
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    count(walk_frame(bytes.clone()) > 0);

    for c in 0..=0x13u16 {
        count(Request::decode(Command::from(c), bytes.clone()).is_ok());
    }
    if let Ok(chain) = decode_context_chain(bytes.clone()) {
        for (name, data) in chain {
            count(CreateContext::decode(name, data).is_ok());
        }
    }
    for name in [
        context_name::MXAC,
        context_name::RQLS,
        context_name::DH2Q,
        context_name::DH2C,
        context_name::EXTA,
        context_name::SECD,
        context_name::AAPL,
    ] {
        count(CreateContext::decode(Bytes::from_static(name), bytes.clone()).is_ok());
    }
    count(SecurityDescriptor::decode(bytes.clone()).is_ok());
    count(SetFileInfo::decode(sel, bytes.clone()).is_ok());
    count(decode_set_fs_info(sel, rest).is_ok());
    count(ValidateNegotiateInfoRequest::decode(bytes.clone()).is_ok());
    count(CopyChunkRequest::decode(bytes.clone()).is_ok());
    count(decode_network_interfaces(bytes.clone()).is_ok());
    count(crate::negotiate::NegotiateResponse::decode(bytes.clone()).is_ok());
    count(crate::session::SessionSetupResponse::decode(bytes.clone()).is_ok());
    count(crate::io::ReadResponseHeader::decode(bytes.clone()).is_ok());
    count(crate::create::CreateResponse::decode(bytes.clone()).is_ok());
    count(crate::ioctl::IoctlResponse::decode(bytes.clone()).is_ok());
    count(crate::dir::decode_output_buffer_response(bytes).is_ok());
    ok
}

/// Walk one frame as the server would; returns the messages decoded.
fn walk_frame(frame: Bytes) -> usize {
    match message_kind(&frame) {
        Ok(MessageKind::Smb1) => return usize::from(Smb1Negotiate::decode(&frame).is_ok()),
        Ok(MessageKind::Smb2) => {}
        _ => return 0,
    }
    let mut n = 0;
    for m in chain(frame.clone()) {
        let Ok(m) = m else { break };
        assert!(m.offset + m.bytes.len() <= frame.len());
        if Request::decode(m.header.command, m.body()).is_ok() {
            n += 1;
        }
    }
    n
}
