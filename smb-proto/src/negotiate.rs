//! SMB2 NEGOTIATE (MS-SMB2 2.2.3, 2.2.4) and its negotiate contexts.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::wire::{body_offset, check_count, put_utf16, utf16_decode, Reader, WriteExt};

pub mod dialect {
    pub const SMB2_0_2: u16 = 0x0202;
    pub const SMB2_1: u16 = 0x0210;
    pub const SMB3_0: u16 = 0x0300;
    pub const SMB3_0_2: u16 = 0x0302;
    pub const SMB3_1_1: u16 = 0x0311;
    /// "SMB 2.???": answered to a multi-protocol negotiate.
    pub const SMB2_WILDCARD: u16 = 0x02FF;
}

pub mod security_mode {
    pub const SIGNING_ENABLED: u16 = 0x0001;
    pub const SIGNING_REQUIRED: u16 = 0x0002;
}

pub mod capabilities {
    pub const DFS: u32 = 0x0000_0001;
    pub const LEASING: u32 = 0x0000_0002;
    pub const LARGE_MTU: u32 = 0x0000_0004;
    pub const MULTI_CHANNEL: u32 = 0x0000_0008;
    pub const PERSISTENT_HANDLES: u32 = 0x0000_0010;
    pub const DIRECTORY_LEASING: u32 = 0x0000_0020;
    pub const ENCRYPTION: u32 = 0x0000_0040;
    pub const NOTIFICATIONS: u32 = 0x0000_0080;
}

/// Negotiate context types (MS-SMB2 2.2.3.1).
pub mod context_type {
    pub const PREAUTH_INTEGRITY_CAPABILITIES: u16 = 0x0001;
    pub const ENCRYPTION_CAPABILITIES: u16 = 0x0002;
    pub const COMPRESSION_CAPABILITIES: u16 = 0x0003;
    pub const NETNAME_NEGOTIATE_CONTEXT_ID: u16 = 0x0005;
    pub const TRANSPORT_CAPABILITIES: u16 = 0x0006;
    pub const RDMA_TRANSFORM_CAPABILITIES: u16 = 0x0007;
    pub const SIGNING_CAPABILITIES: u16 = 0x0008;
}

pub const HASH_SHA512: u16 = 0x0001;

pub mod cipher {
    pub const AES_128_CCM: u16 = 0x0001;
    pub const AES_128_GCM: u16 = 0x0002;
    pub const AES_256_CCM: u16 = 0x0003;
    pub const AES_256_GCM: u16 = 0x0004;
}

pub mod signing_algorithm {
    pub const HMAC_SHA256: u16 = 0x0000;
    pub const AES_CMAC: u16 = 0x0001;
    pub const AES_GMAC: u16 = 0x0002;
}

/// One negotiate context, typed where this crate knows the type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiateContext {
    PreauthIntegrity { hash_algorithms: Vec<u16>, salt: Bytes },
    Encryption { ciphers: Vec<u16> },
    Compression { flags: u32, algorithms: Vec<u16> },
    NetName(String),
    Transport { flags: u32 },
    RdmaTransform { transform_ids: Vec<u16> },
    Signing { algorithms: Vec<u16> },
    Unknown { context_type: u16, data: Bytes },
}

fn u16_list(r: &mut Reader, n: usize, what: &'static str) -> Result<Vec<u16>> {
    check_count(n, 2, r.remaining(), what)?;
    (0..n).map(|_| r.u16(what)).collect()
}

fn put_u16_list(out: &mut BytesMut, l: &[u16]) {
    for &v in l {
        out.put_u16_le(v);
    }
}

impl NegotiateContext {
    pub fn context_type(&self) -> u16 {
        use context_type as t;
        match self {
            NegotiateContext::PreauthIntegrity { .. } => t::PREAUTH_INTEGRITY_CAPABILITIES,
            NegotiateContext::Encryption { .. } => t::ENCRYPTION_CAPABILITIES,
            NegotiateContext::Compression { .. } => t::COMPRESSION_CAPABILITIES,
            NegotiateContext::NetName(_) => t::NETNAME_NEGOTIATE_CONTEXT_ID,
            NegotiateContext::Transport { .. } => t::TRANSPORT_CAPABILITIES,
            NegotiateContext::RdmaTransform { .. } => t::RDMA_TRANSFORM_CAPABILITIES,
            NegotiateContext::Signing { .. } => t::SIGNING_CAPABILITIES,
            NegotiateContext::Unknown { context_type, .. } => *context_type,
        }
    }

    fn decode_data(ty: u16, data: Bytes) -> Result<Self> {
        use context_type as t;
        let mut r = Reader::new(data.clone());
        Ok(match ty {
            t::PREAUTH_INTEGRITY_CAPABILITIES => {
                let n = usize::from(r.u16("HashAlgorithmCount")?);
                let salt_len = usize::from(r.u16("SaltLength")?);
                let hash_algorithms = u16_list(&mut r, n, "HashAlgorithms")?;
                NegotiateContext::PreauthIntegrity {
                    hash_algorithms,
                    salt: r.bytes(salt_len, "Salt")?,
                }
            }
            t::ENCRYPTION_CAPABILITIES => {
                let n = usize::from(r.u16("CipherCount")?);
                NegotiateContext::Encryption {
                    ciphers: u16_list(&mut r, n, "Ciphers")?,
                }
            }
            t::COMPRESSION_CAPABILITIES => {
                let n = usize::from(r.u16("CompressionAlgorithmCount")?);
                r.skip(2, "Padding")?;
                let flags = r.u32("Flags")?;
                NegotiateContext::Compression {
                    flags,
                    algorithms: u16_list(&mut r, n, "CompressionAlgorithms")?,
                }
            }
            t::NETNAME_NEGOTIATE_CONTEXT_ID => NegotiateContext::NetName(utf16_decode(&data, "NetName")?),
            t::TRANSPORT_CAPABILITIES => NegotiateContext::Transport {
                flags: r.u32("TransportFlags")?,
            },
            t::RDMA_TRANSFORM_CAPABILITIES => {
                let n = usize::from(r.u16("TransformCount")?);
                r.skip(6, "Reserved")?;
                NegotiateContext::RdmaTransform {
                    transform_ids: u16_list(&mut r, n, "RDMATransformIds")?,
                }
            }
            t::SIGNING_CAPABILITIES => {
                let n = usize::from(r.u16("SigningAlgorithmCount")?);
                NegotiateContext::Signing {
                    algorithms: u16_list(&mut r, n, "SigningAlgorithms")?,
                }
            }
            other => NegotiateContext::Unknown {
                context_type: other,
                data,
            },
        })
    }

    fn encode_data(&self, out: &mut BytesMut) {
        match self {
            NegotiateContext::PreauthIntegrity {
                hash_algorithms,
                salt,
            } => {
                out.put_u16_le(hash_algorithms.len() as u16);
                out.put_u16_le(salt.len() as u16);
                put_u16_list(out, hash_algorithms);
                out.put_slice(salt);
            }
            NegotiateContext::Encryption { ciphers: l } | NegotiateContext::Signing { algorithms: l } => {
                out.put_u16_le(l.len() as u16);
                put_u16_list(out, l);
            }
            NegotiateContext::Compression { flags, algorithms } => {
                out.put_u16_le(algorithms.len() as u16);
                out.put_u16_le(0);
                out.put_u32_le(*flags);
                put_u16_list(out, algorithms);
            }
            NegotiateContext::NetName(n) => put_utf16(out, n),
            NegotiateContext::Transport { flags } => out.put_u32_le(*flags),
            NegotiateContext::RdmaTransform { transform_ids } => {
                out.put_u16_le(transform_ids.len() as u16);
                out.put_bytes(0, 6);
                put_u16_list(out, transform_ids);
            }
            NegotiateContext::Unknown { data, .. } => out.put_slice(data),
        }
    }
}

/// Decode `count` contexts starting at wire offset `offset` of `r`'s body.
/// Each after the first starts 8-byte aligned (relative to the first).
fn decode_contexts(r: &Reader, offset: u32, count: u16) -> Result<Vec<NegotiateContext>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if offset % 8 != 0 {
        return Err(DecodeError::Misaligned {
            what: "NegotiateContextOffset",
            offset: u64::from(offset),
            align: 8,
        });
    }
    let mut c = r.from_offset(u64::from(offset), "NegotiateContextOffset")?;
    check_count(usize::from(count), 8, c.remaining(), "NegotiateContextCount")?;
    let mut out = Vec::with_capacity(usize::from(count));
    for i in 0..count {
        if i > 0 {
            let p = crate::wire::pad(c.pos(), 8);
            c.skip(p, "negotiate context padding")?;
        }
        let ty = c.u16("ContextType")?;
        let len = usize::from(c.u16("DataLength")?);
        c.skip(4, "Reserved")?;
        let data = c.bytes(len, "negotiate context data")?;
        out.push(NegotiateContext::decode_data(ty, data)?);
    }
    Ok(out)
}

/// Append contexts (the caller has already aligned to 8).
fn encode_contexts(out: &mut BytesMut, contexts: &[NegotiateContext]) {
    let start = out.len();
    for (i, c) in contexts.iter().enumerate() {
        if i > 0 {
            out.pad_to(start, 8);
        }
        out.put_u16_le(c.context_type());
        let len_at = out.len();
        out.put_u16_le(0);
        out.put_u32_le(0);
        let data_start = out.len();
        c.encode_data(out);
        let len = (out.len() - data_start) as u16;
        out.patch_u16(len_at, len);
    }
}

/// NEGOTIATE request (StructureSize 36).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateRequest {
    pub security_mode: u16,
    pub capabilities: u32,
    pub client_guid: [u8; 16],
    /// ClientStartTime when no 3.1.1 dialect is offered (otherwise the
    /// context offset/count occupy these bytes and this is zero).
    pub client_start_time: u64,
    pub dialects: Vec<u16>,
    pub contexts: Vec<NegotiateContext>,
}

impl NegotiateRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(36, "NEGOTIATE request")?;
        let count = usize::from(r.u16("DialectCount")?);
        let security_mode = r.u16("SecurityMode")?;
        r.skip(2, "Reserved")?;
        let capabilities = r.u32("Capabilities")?;
        let client_guid = r.array("ClientGuid")?;
        // NegotiateContextOffset/Count/Reserved2 with 3.1.1, else ClientStartTime.
        let union = r.u64("ClientStartTime")?;
        let dialects = u16_list(&mut r, count, "Dialects")?;
        let has_311 = dialects.contains(&dialect::SMB3_1_1);
        let (client_start_time, contexts) = if has_311 {
            (0, decode_contexts(&r, union as u32, (union >> 32) as u16)?)
        } else {
            (union, Vec::new())
        };
        Ok(NegotiateRequest {
            security_mode,
            capabilities,
            client_guid,
            client_start_time,
            dialects,
            contexts,
        })
    }

    /// Client-side encoding.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u16_le(36);
        out.put_u16_le(self.dialects.len() as u16);
        out.put_u16_le(self.security_mode);
        out.put_u16_le(0);
        out.put_u32_le(self.capabilities);
        out.put_slice(&self.client_guid);
        let ctx_at = out.len();
        out.put_u64_le(self.client_start_time);
        put_u16_list(out, &self.dialects);
        if !self.contexts.is_empty() {
            out.pad_to(start, 8);
            let off = body_offset(out, start) as u32;
            out.patch_u32(ctx_at, off);
            out.patch_u32(ctx_at + 4, self.contexts.len() as u32);
            encode_contexts(out, &self.contexts);
        }
    }
}

/// NEGOTIATE response (StructureSize 65).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateResponse {
    pub security_mode: u16,
    pub dialect_revision: u16,
    pub server_guid: [u8; 16],
    pub capabilities: u32,
    pub max_transact_size: u32,
    pub max_read_size: u32,
    pub max_write_size: u32,
    pub system_time: u64,
    pub server_start_time: u64,
    pub security_buffer: Bytes,
    /// Sent only with dialect 3.1.1.
    pub contexts: Vec<NegotiateContext>,
}

impl NegotiateResponse {
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u16_le(65);
        out.put_u16_le(self.security_mode);
        out.put_u16_le(self.dialect_revision);
        out.put_u16_le(self.contexts.len() as u16);
        out.put_slice(&self.server_guid);
        out.put_u32_le(self.capabilities);
        out.put_u32_le(self.max_transact_size);
        out.put_u32_le(self.max_read_size);
        out.put_u32_le(self.max_write_size);
        out.put_u64_le(self.system_time);
        out.put_u64_le(self.server_start_time);
        out.put_u16_le(if self.security_buffer.is_empty() { 0 } else { 128 });
        out.put_u16_le(self.security_buffer.len() as u16);
        let ctx_at = out.len();
        out.put_u32_le(0);
        out.put_slice(&self.security_buffer);
        if self.contexts.is_empty() {
            if self.security_buffer.is_empty() {
                out.put_u8(0);
            }
        } else {
            out.pad_to(start, 8);
            let off = body_offset(out, start) as u32;
            out.patch_u32(ctx_at, off);
            encode_contexts(out, &self.contexts);
        }
    }

    /// Client-side decoding (tests, fuzzing).
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(65, "NEGOTIATE response")?;
        let security_mode = r.u16("SecurityMode")?;
        let dialect_revision = r.u16("DialectRevision")?;
        let ctx_count = r.u16("NegotiateContextCount")?;
        let server_guid = r.array("ServerGuid")?;
        let capabilities = r.u32("Capabilities")?;
        let max_transact_size = r.u32("MaxTransactSize")?;
        let max_read_size = r.u32("MaxReadSize")?;
        let max_write_size = r.u32("MaxWriteSize")?;
        let system_time = r.u64("SystemTime")?;
        let server_start_time = r.u64("ServerStartTime")?;
        let sb_off = r.u16("SecurityBufferOffset")?;
        let sb_len = r.u16("SecurityBufferLength")?;
        let ctx_off = r.u32("NegotiateContextOffset")?;
        let security_buffer = r.region(sb_off.into(), sb_len.into(), "SecurityBuffer")?;
        let contexts = if dialect_revision == dialect::SMB3_1_1 {
            decode_contexts(&r, ctx_off, ctx_count)?
        } else {
            Vec::new()
        };
        Ok(NegotiateResponse {
            security_mode,
            dialect_revision,
            server_guid,
            capabilities,
            max_transact_size,
            max_read_size,
            max_write_size,
            system_time,
            server_start_time,
            security_buffer,
            contexts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> NegotiateRequest {
        NegotiateRequest {
            security_mode: security_mode::SIGNING_ENABLED,
            capabilities: capabilities::LEASING | capabilities::ENCRYPTION,
            client_guid: [0xAB; 16],
            client_start_time: 0,
            dialects: vec![0x0202, 0x0210, 0x0300, 0x0302, 0x0311],
            contexts: vec![
                NegotiateContext::PreauthIntegrity {
                    hash_algorithms: vec![HASH_SHA512],
                    salt: Bytes::from_static(&[5; 32]),
                },
                NegotiateContext::Encryption {
                    ciphers: vec![cipher::AES_128_GCM, cipher::AES_128_CCM],
                },
                NegotiateContext::Compression {
                    flags: 0,
                    algorithms: vec![1, 2],
                },
                NegotiateContext::NetName("server".into()),
                NegotiateContext::Transport { flags: 1 },
                NegotiateContext::RdmaTransform {
                    transform_ids: vec![1],
                },
                NegotiateContext::Signing {
                    algorithms: vec![signing_algorithm::AES_GMAC, signing_algorithm::AES_CMAC],
                },
                NegotiateContext::Unknown {
                    context_type: 0x99,
                    data: Bytes::from_static(b"xyz"),
                },
            ],
        }
    }

    #[test]
    fn request_byte_image() {
        // StructureSize 36, two dialects, no 3.1.1: the union is ClientStartTime.
        let mut b = vec![36, 0, 2, 0, 1, 0, 0, 0, 0x7f, 0, 0, 0];
        b.extend_from_slice(&[0x11; 16]);
        b.extend_from_slice(&0x0807_0605_0403_0201u64.to_le_bytes());
        b.extend_from_slice(&[0x02, 0x02, 0x10, 0x02]);
        let r = NegotiateRequest::decode(Bytes::from(b)).unwrap();
        assert_eq!(r.dialects, vec![0x0202, 0x0210]);
        assert_eq!(r.capabilities, 0x7f);
        assert_eq!(r.security_mode, 1);
        assert_eq!(r.client_guid, [0x11; 16]);
        assert!(r.contexts.is_empty());
        assert_eq!(r.client_start_time, 0x0807_0605_0403_0201);
    }

    #[test]
    fn request_with_contexts_round_trips() {
        let mut b = BytesMut::new();
        request().encode(&mut b);
        // Contexts start after 36 + 10 bytes, padded to 8 from the header.
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 64 + 48);
        assert_eq!(NegotiateRequest::decode(b.freeze()).unwrap(), request());
    }

    #[test]
    fn hostile_requests_are_errors() {
        let mut b = BytesMut::new();
        request().encode(&mut b);
        let good = b.to_vec();
        let mut bad = good.clone();
        bad[28..32].copy_from_slice(&0xFFFF_FFF8u32.to_le_bytes());
        assert!(NegotiateRequest::decode(Bytes::from(bad)).is_err());
        let mut bad = good.clone();
        bad[2] = 0xFF; // DialectCount beyond the buffer
        assert!(NegotiateRequest::decode(Bytes::from(bad)).is_err());
        let mut bad = good.clone();
        bad[32] = 200; // context count
        assert!(NegotiateRequest::decode(Bytes::from(bad)).is_err());
        for n in 0..good.len() {
            assert!(NegotiateRequest::decode(Bytes::copy_from_slice(&good[..n])).is_err());
        }
    }

    #[test]
    fn response_byte_image_and_round_trip() {
        let resp = NegotiateResponse {
            security_mode: 1,
            dialect_revision: dialect::SMB3_1_1,
            server_guid: [2; 16],
            capabilities: capabilities::LARGE_MTU,
            max_transact_size: 1 << 20,
            max_read_size: 1 << 20,
            max_write_size: 1 << 20,
            system_time: 3,
            server_start_time: 0,
            security_buffer: Bytes::from_static(&[0x60, 0x01, 0x02]),
            contexts: vec![NegotiateContext::PreauthIntegrity {
                hash_algorithms: vec![1],
                salt: Bytes::from_static(&[9; 32]),
            }],
        };
        let mut b = BytesMut::new();
        resp.encode(&mut b);
        assert_eq!(&b[0..2], &[65, 0]);
        assert_eq!(&b[4..6], &[0x11, 0x03]);
        assert_eq!(&b[6..8], &[1, 0]);
        assert_eq!(&b[56..58], &[128, 0]); // buffer right after the 64-byte fixed part
        assert_eq!(&b[58..60], &[3, 0]);
        assert_eq!(u32::from_le_bytes(b[60..64].try_into().unwrap()), 136);
        assert_eq!(&b[72..76], &[1, 0, 38, 0]);
        assert_eq!(NegotiateResponse::decode(b.freeze()).unwrap(), resp);
        let plain = NegotiateResponse {
            dialect_revision: dialect::SMB2_WILDCARD,
            security_buffer: Bytes::new(),
            contexts: vec![],
            ..resp
        };
        let mut b = BytesMut::new();
        plain.encode(&mut b);
        assert_eq!(b.len(), 65);
    }
}
