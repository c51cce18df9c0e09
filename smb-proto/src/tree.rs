//! TREE_CONNECT (MS-SMB2 2.2.9, 2.2.10), including the 3.1.1 request
//! extension.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::wire::{check_count, put_utf16, utf16_decode, utf16_len, Reader};

pub mod request_flags {
    pub const CLUSTER_RECONNECT: u16 = 0x0001;
    pub const REDIRECT_TO_OWNER: u16 = 0x0002;
    pub const EXTENSION_PRESENT: u16 = 0x0004;
}

pub mod share_type {
    pub const DISK: u8 = 0x01;
    pub const PIPE: u8 = 0x02;
    pub const PRINT: u8 = 0x03;
}

pub mod share_flags {
    pub const MANUAL_CACHING: u32 = 0x0000_0000;
    pub const AUTO_CACHING: u32 = 0x0000_0010;
    pub const VDO_CACHING: u32 = 0x0000_0020;
    pub const NO_CACHING: u32 = 0x0000_0030;
    pub const DFS: u32 = 0x0000_0001;
    pub const DFS_ROOT: u32 = 0x0000_0002;
    pub const RESTRICT_EXCLUSIVE_OPENS: u32 = 0x0000_0100;
    pub const FORCE_SHARED_DELETE: u32 = 0x0000_0200;
    pub const ALLOW_NAMESPACE_CACHING: u32 = 0x0000_0400;
    pub const ACCESS_BASED_DIRECTORY_ENUM: u32 = 0x0000_0800;
    pub const FORCE_LEVELII_OPLOCK: u32 = 0x0000_1000;
    pub const ENABLE_HASH_V1: u32 = 0x0000_2000;
    pub const ENABLE_HASH_V2: u32 = 0x0000_4000;
    pub const ENCRYPT_DATA: u32 = 0x0000_8000;
    pub const IDENTITY_REMOTING: u32 = 0x0004_0000;
    pub const COMPRESS_DATA: u32 = 0x0010_0000;
}

pub mod share_capabilities {
    pub const DFS: u32 = 0x0000_0008;
    pub const CONTINUOUS_AVAILABILITY: u32 = 0x0000_0010;
    pub const SCALEOUT: u32 = 0x0000_0020;
    pub const CLUSTER: u32 = 0x0000_0040;
    pub const ASYMMETRIC: u32 = 0x0000_0080;
    pub const REDIRECT_TO_OWNER: u32 = 0x0000_0100;
}

/// A tree connect context (kept raw: the only defined one carries a
/// remoted identity, which this server does not use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeConnectContext {
    pub context_type: u16,
    pub data: Bytes,
}

/// TREE_CONNECT request (StructureSize 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeConnectRequest {
    pub flags: u16,
    /// `\\server\share`.
    pub path: String,
    /// Only with EXTENSION_PRESENT.
    pub contexts: Vec<TreeConnectContext>,
}

/// Header (64) + fixed part (8) + extension (16).
const HEADER_RELATIVE_PATH_MIN: u16 = 88;

impl TreeConnectRequest {
    /// With EXTENSION_PRESENT, implementations disagree on what PathOffset
    /// counts from: the extension (the body's Buffer, as ksmbd reads it) or
    /// the header (as ruby_smb builds it). A header-relative offset cannot
    /// be below 88 (header, fixed part and extension), an extension-relative
    /// one normally is 16, so offsets from 88 up are taken as
    /// header-relative. TreeConnectContextOffset counts from the start of
    /// the TREE_CONNECT body.
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(9, "TREE_CONNECT request")?;
        let flags = r.u16("Flags")?;
        let off = r.u16("PathOffset")?;
        let len = r.u16("PathLength")?;
        if flags & request_flags::EXTENSION_PRESENT == 0 {
            let path = utf16_decode(&r.region(off.into(), len.into(), "PathName")?, "PathName")?;
            return Ok(TreeConnectRequest {
                flags,
                path,
                contexts: Vec::new(),
            });
        }
        let ctx_off = r.u32("TreeConnectContextOffset")?;
        let ctx_count = r.u16("TreeConnectContextCount")?;
        r.skip(10, "Reserved")?;
        let path = if off >= HEADER_RELATIVE_PATH_MIN {
            r.region(off.into(), len.into(), "PathName")?
        } else {
            r.from_offset(64 + 8, "tree connect extension")?
                .region(off.into(), len.into(), "PathName")?
        };
        let path = utf16_decode(&path, "PathName")?;
        let mut c = r.from_offset(64 + u64::from(ctx_off), "TreeConnectContextOffset")?;
        check_count(
            usize::from(ctx_count),
            8,
            c.remaining(),
            "TreeConnectContextCount",
        )?;
        let mut contexts = Vec::with_capacity(ctx_count.into());
        for i in 0..ctx_count {
            if i > 0 {
                c.skip(crate::wire::pad(c.pos(), 8), "tree connect context padding")?;
            }
            let context_type = c.u16("ContextType")?;
            let dlen = c.u16("DataLength")?;
            c.skip(4, "Reserved")?;
            contexts.push(TreeConnectContext {
                context_type,
                data: c.bytes(dlen.into(), "tree connect context data")?,
            });
        }
        Ok(TreeConnectRequest {
            flags,
            path,
            contexts,
        })
    }

    /// Client-side encoding (without extension).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(9);
        out.put_u16_le(self.flags & !request_flags::EXTENSION_PRESENT);
        out.put_u16_le(64 + 8);
        out.put_u16_le(utf16_len(&self.path) as u16);
        put_utf16(out, &self.path);
    }
}

/// TREE_CONNECT response (StructureSize 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeConnectResponse {
    pub share_type: u8,
    pub share_flags: u32,
    pub capabilities: u32,
    pub maximal_access: u32,
}

impl TreeConnectResponse {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(16);
        out.put_u8(self.share_type);
        out.put_u8(0);
        out.put_u32_le(self.share_flags);
        out.put_u32_le(self.capabilities);
        out.put_u32_le(self.maximal_access);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_byte_image_and_round_trip() {
        let mut b = vec![9, 0, 0, 0, 72, 0, 6, 0];
        b.extend_from_slice(&[b'\\', 0, b'\\', 0, b's', 0]);
        let r = TreeConnectRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(r.path, "\\\\s");
        let mut e = BytesMut::new();
        r.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        b[6] = 8;
        assert!(TreeConnectRequest::decode(Bytes::from(b)).is_err());
    }

    #[test]
    fn request_with_extension() {
        // Extension at body offset 8: context offset (from the body), count,
        // reserved; path right after at extension offset 16; one context.
        let mut b = vec![9, 0, 4, 0, 16, 0, 4, 0];
        b.extend_from_slice(&32u32.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&[0; 10]);
        b.extend_from_slice(&[b'\\', 0, b'x', 0]);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&[1, 0, 2, 0, 0, 0, 0, 0, 0xAA, 0xBB]);
        let r = TreeConnectRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(r.path, "\\x");
        assert_eq!(
            r.contexts,
            vec![TreeConnectContext {
                context_type: 1,
                data: Bytes::from_static(&[0xAA, 0xBB])
            }]
        );
        // The same path offset counted from the header.
        let mut h = b.clone();
        h[4] = 88;
        assert_eq!(TreeConnectRequest::decode(Bytes::from(h)).unwrap().path, "\\x");
        b[12] = 9; // more contexts than bytes
        assert!(TreeConnectRequest::decode(Bytes::from(b)).is_err());
    }

    #[test]
    fn response_byte_image() {
        let mut b = BytesMut::new();
        TreeConnectResponse {
            share_type: share_type::DISK,
            share_flags: share_flags::ENCRYPT_DATA,
            capabilities: 0,
            maximal_access: 0x001F_01FF,
        }
        .encode(&mut b);
        assert_eq!(
            &b[..],
            &[16, 0, 1, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0xFF, 0x01, 0x1F, 0]
        );
    }
}
