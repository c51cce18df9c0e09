//! SESSION_SETUP (MS-SMB2 2.2.5, 2.2.6). The security buffer is an opaque
//! SPNEGO/NTLM token: authentication lives elsewhere.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::wire::Reader;

/// Request Flags.
pub const FLAG_BINDING: u8 = 0x01;

/// Response SessionFlags.
pub mod session_flags {
    pub const IS_GUEST: u16 = 0x0001;
    pub const IS_NULL: u16 = 0x0002;
    pub const ENCRYPT_DATA: u16 = 0x0004;
}

/// SESSION_SETUP request (StructureSize 25).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSetupRequest {
    pub flags: u8,
    pub security_mode: u8,
    pub capabilities: u32,
    pub channel: u32,
    pub previous_session_id: u64,
    pub security_buffer: Bytes,
}

impl SessionSetupRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(25, "SESSION_SETUP request")?;
        let flags = r.u8("Flags")?;
        let security_mode = r.u8("SecurityMode")?;
        let capabilities = r.u32("Capabilities")?;
        let channel = r.u32("Channel")?;
        let off = r.u16("SecurityBufferOffset")?;
        let len = r.u16("SecurityBufferLength")?;
        let previous_session_id = r.u64("PreviousSessionId")?;
        Ok(SessionSetupRequest {
            flags,
            security_mode,
            capabilities,
            channel,
            previous_session_id,
            security_buffer: r.region(off.into(), len.into(), "SecurityBuffer")?,
        })
    }

    pub fn is_binding(&self) -> bool {
        self.flags & FLAG_BINDING != 0
    }

    /// Client-side encoding.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(25);
        out.put_u8(self.flags);
        out.put_u8(self.security_mode);
        out.put_u32_le(self.capabilities);
        out.put_u32_le(self.channel);
        out.put_u16_le(64 + 24);
        out.put_u16_le(self.security_buffer.len() as u16);
        out.put_u64_le(self.previous_session_id);
        put_buffer(out, &self.security_buffer);
    }
}

/// The variable part of a body: the bytes, or one zero byte when empty so
/// that the body is as long as StructureSize says.
pub(crate) fn put_buffer(out: &mut BytesMut, b: &[u8]) {
    if b.is_empty() {
        out.put_u8(0);
    } else {
        out.put_slice(b);
    }
}

/// SESSION_SETUP response (StructureSize 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSetupResponse {
    pub session_flags: u16,
    pub security_buffer: Bytes,
}

impl SessionSetupResponse {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(9);
        out.put_u16_le(self.session_flags);
        out.put_u16_le(if self.security_buffer.is_empty() {
            0
        } else {
            64 + 8
        });
        out.put_u16_le(self.security_buffer.len() as u16);
        put_buffer(out, &self.security_buffer);
    }

    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(9, "SESSION_SETUP response")?;
        let session_flags = r.u16("SessionFlags")?;
        let off = r.u16("SecurityBufferOffset")?;
        let len = r.u16("SecurityBufferLength")?;
        Ok(SessionSetupResponse {
            session_flags,
            security_buffer: r.region(off.into(), len.into(), "SecurityBuffer")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_byte_image() {
        let mut b = vec![25, 0, FLAG_BINDING, 2, 1, 0, 0, 0, 0, 0, 0, 0, 88, 0, 3, 0];
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(b"abc");
        let r = SessionSetupRequest::decode(Bytes::from(b.clone())).unwrap();
        assert!(r.is_binding());
        assert_eq!(r.security_mode, 2);
        assert_eq!(r.capabilities, 1);
        assert_eq!(r.previous_session_id, 7);
        assert_eq!(&r.security_buffer[..], b"abc");
        let mut e = BytesMut::new();
        r.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        b[14] = 4; // length past the end
        assert!(SessionSetupRequest::decode(Bytes::from(b.clone())).is_err());
        b[14] = 3;
        b[12] = 10; // offset inside the header
        assert!(SessionSetupRequest::decode(Bytes::from(b)).is_err());
    }

    #[test]
    fn response_byte_image_and_round_trip() {
        let r = SessionSetupResponse {
            session_flags: session_flags::ENCRYPT_DATA,
            security_buffer: Bytes::from_static(b"tok"),
        };
        let mut b = BytesMut::new();
        r.encode(&mut b);
        assert_eq!(&b[..], &[9, 0, 4, 0, 72, 0, 3, 0, b't', b'o', b'k']);
        assert_eq!(SessionSetupResponse::decode(b.freeze()).unwrap(), r);
        let mut b = BytesMut::new();
        SessionSetupResponse {
            session_flags: 0,
            security_buffer: Bytes::new(),
        }
        .encode(&mut b);
        assert_eq!(&b[..], &[9, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
