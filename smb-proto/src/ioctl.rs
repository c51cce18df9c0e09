//! IOCTL (MS-SMB2 2.2.31, 2.2.32) and the FSCTL payloads a file server
//! answers itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::session::put_buffer;
use crate::wire::{check_count, FileId, Reader, WriteExt};

/// FSCTL / IOCTL codes (MS-SMB2 2.2.31, MS-FSCC 2.3).
pub mod fsctl {
    pub const DFS_GET_REFERRALS: u32 = 0x0006_0194;
    pub const DFS_GET_REFERRALS_EX: u32 = 0x0006_01B0;
    pub const PIPE_PEEK: u32 = 0x0011_400C;
    pub const PIPE_WAIT: u32 = 0x0011_0018;
    pub const PIPE_TRANSCEIVE: u32 = 0x0011_C017;
    pub const SRV_COPYCHUNK: u32 = 0x0014_40F2;
    pub const SRV_COPYCHUNK_WRITE: u32 = 0x0014_80F2;
    pub const SRV_ENUMERATE_SNAPSHOTS: u32 = 0x0014_4064;
    pub const SRV_REQUEST_RESUME_KEY: u32 = 0x0014_0078;
    pub const SRV_READ_HASH: u32 = 0x0014_41BB;
    pub const LMR_REQUEST_RESILIENCY: u32 = 0x0014_01D4;
    pub const QUERY_NETWORK_INTERFACE_INFO: u32 = 0x0014_01FC;
    pub const VALIDATE_NEGOTIATE_INFO: u32 = 0x0014_0204;
    pub const GET_REPARSE_POINT: u32 = 0x0009_00A8;
    pub const SET_REPARSE_POINT: u32 = 0x0009_00A4;
    pub const GET_OBJECT_ID: u32 = 0x0009_009C;
    pub const CREATE_OR_GET_OBJECT_ID: u32 = 0x0009_00C0;
    pub const SET_SPARSE: u32 = 0x0009_00C4;
    pub const SET_ZERO_DATA: u32 = 0x0009_80C8;
    pub const QUERY_ALLOCATED_RANGES: u32 = 0x0009_40CF;
    pub const GET_COMPRESSION: u32 = 0x0009_003C;
    pub const SET_COMPRESSION: u32 = 0x0009_C040;
    pub const FILE_LEVEL_TRIM: u32 = 0x0009_8208;
    pub const GET_INTEGRITY_INFORMATION: u32 = 0x0009_027C;
    pub const DUPLICATE_EXTENTS_TO_FILE: u32 = 0x0009_8344;
    pub const QUERY_FILE_REGIONS: u32 = 0x0009_0284;
}

/// IOCTL Flags: the request is an FSCTL.
pub const IOCTL_IS_FSCTL: u32 = 0x0000_0001;

/// IOCTL request (StructureSize 57).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoctlRequest {
    pub ctl_code: u32,
    pub file_id: FileId,
    pub input: Bytes,
    pub max_input_response: u32,
    /// Output buffer sent by the client (rarely used).
    pub output: Bytes,
    pub max_output_response: u32,
    pub flags: u32,
}

impl IoctlRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(57, "IOCTL request")?;
        r.skip(2, "Reserved")?;
        let ctl_code = r.u32("CtlCode")?;
        let file_id = r.file_id("FileId")?;
        let in_off = r.u32("InputOffset")?;
        let in_len = r.u32("InputCount")?;
        let max_input_response = r.u32("MaxInputResponse")?;
        let out_off = r.u32("OutputOffset")?;
        let out_len = r.u32("OutputCount")?;
        let max_output_response = r.u32("MaxOutputResponse")?;
        let flags = r.u32("Flags")?;
        Ok(IoctlRequest {
            ctl_code,
            file_id,
            input: r.region(in_off.into(), in_len.into(), "IOCTL input")?,
            max_input_response,
            output: r.region(out_off.into(), out_len.into(), "IOCTL output")?,
            max_output_response,
            flags,
        })
    }

    /// Client-side encoding (input at 0x78, output after it).
    pub fn encode(&self, out: &mut BytesMut) {
        let in_off = 64 + 56u32;
        out.put_u16_le(57);
        out.put_u16_le(0);
        out.put_u32_le(self.ctl_code);
        out.put_file_id(self.file_id);
        out.put_u32_le(if self.input.is_empty() { 0 } else { in_off });
        out.put_u32_le(self.input.len() as u32);
        out.put_u32_le(self.max_input_response);
        let out_off = in_off + self.input.len() as u32;
        out.put_u32_le(if self.output.is_empty() { 0 } else { out_off });
        out.put_u32_le(self.output.len() as u32);
        out.put_u32_le(self.max_output_response);
        out.put_u32_le(self.flags);
        out.put_u32_le(0);
        out.put_slice(&self.input);
        out.put_slice(&self.output);
        if self.input.is_empty() && self.output.is_empty() {
            out.put_u8(0);
        }
    }
}

/// IOCTL response (StructureSize 49). Input is normally echoed empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoctlResponse {
    pub ctl_code: u32,
    pub file_id: FileId,
    pub input: Bytes,
    pub output: Bytes,
}

impl IoctlResponse {
    pub fn encode(&self, out: &mut BytesMut) {
        let in_off = 64 + 48u32;
        let out_off = in_off + self.input.len().next_multiple_of(8) as u32;
        out.put_u16_le(49);
        out.put_u16_le(0);
        out.put_u32_le(self.ctl_code);
        out.put_file_id(self.file_id);
        out.put_u32_le(in_off);
        out.put_u32_le(self.input.len() as u32);
        out.put_u32_le(out_off);
        out.put_u32_le(self.output.len() as u32);
        out.put_u32_le(0);
        out.put_u32_le(0);
        let start = out.len();
        out.put_slice(&self.input);
        if !self.output.is_empty() {
            out.pad_to(start, 8);
        }
        put_buffer(out, &self.output);
    }

    /// Client-side decoding.
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(49, "IOCTL response")?;
        r.skip(2, "Reserved")?;
        let ctl_code = r.u32("CtlCode")?;
        let file_id = r.file_id("FileId")?;
        let in_off = r.u32("InputOffset")?;
        let in_len = r.u32("InputCount")?;
        let out_off = r.u32("OutputOffset")?;
        let out_len = r.u32("OutputCount")?;
        Ok(IoctlResponse {
            ctl_code,
            file_id,
            input: r.region(in_off.into(), in_len.into(), "IOCTL input")?,
            output: r.region(out_off.into(), out_len.into(), "IOCTL output")?,
        })
    }
}

/// VALIDATE_NEGOTIATE_INFO request (MS-SMB2 2.2.31.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateNegotiateInfoRequest {
    pub capabilities: u32,
    pub guid: [u8; 16],
    pub security_mode: u16,
    pub dialects: Vec<u16>,
}

impl ValidateNegotiateInfoRequest {
    pub fn decode(input: Bytes) -> Result<Self> {
        let mut r = Reader::new(input);
        let capabilities = r.u32("Capabilities")?;
        let guid = r.array("Guid")?;
        let security_mode = r.u16("SecurityMode")?;
        let n = usize::from(r.u16("DialectCount")?);
        check_count(n, 2, r.remaining(), "Dialects")?;
        let dialects = (0..n).map(|_| r.u16("Dialects")).collect::<Result<_>>()?;
        Ok(ValidateNegotiateInfoRequest {
            capabilities,
            guid,
            security_mode,
            dialects,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.capabilities);
        out.put_slice(&self.guid);
        out.put_u16_le(self.security_mode);
        out.put_u16_le(self.dialects.len() as u16);
        for &d in &self.dialects {
            out.put_u16_le(d);
        }
    }
}

/// VALIDATE_NEGOTIATE_INFO response (MS-SMB2 2.2.32.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidateNegotiateInfoResponse {
    pub capabilities: u32,
    pub guid: [u8; 16],
    pub security_mode: u16,
    pub dialect: u16,
}

impl ValidateNegotiateInfoResponse {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.capabilities);
        out.put_slice(&self.guid);
        out.put_u16_le(self.security_mode);
        out.put_u16_le(self.dialect);
    }
}

/// NETWORK_INTERFACE_INFO Capability bits.
pub mod if_capability {
    pub const RSS: u32 = 0x0000_0001;
    pub const RDMA: u32 = 0x0000_0002;
}

/// One entry of the QUERY_NETWORK_INTERFACE_INFO response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkInterface {
    pub if_index: u32,
    pub capability: u32,
    /// Bits per second.
    pub link_speed: u64,
    pub address: IpAddr,
}

const AF_INET: u16 = 0x0002;
const AF_INET6: u16 = 0x0017;

/// Encode a NETWORK_INTERFACE_INFO list (152 bytes each, chained).
pub fn encode_network_interfaces(ifs: &[NetworkInterface], out: &mut BytesMut) {
    for (i, nic) in ifs.iter().enumerate() {
        let start = out.len();
        out.put_u32_le(if i + 1 < ifs.len() { 152 } else { 0 });
        out.put_u32_le(nic.if_index);
        out.put_u32_le(nic.capability);
        out.put_u32_le(0);
        out.put_u64_le(nic.link_speed);
        match nic.address {
            IpAddr::V4(a) => {
                out.put_u16_le(AF_INET);
                out.put_u16(0); // port
                out.put_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.put_u16_le(AF_INET6);
                out.put_u16(0); // port
                out.put_u32(0); // flow info
                out.put_slice(&a.octets());
                out.put_u32_le(0); // scope id
            }
        }
        out.put_bytes(0, 152 - (out.len() - start));
    }
}

/// Decode a NETWORK_INTERFACE_INFO list (client side, tests).
pub fn decode_network_interfaces(buf: Bytes) -> Result<Vec<NetworkInterface>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let mut r = Reader::new(buf.slice(pos..));
        let next = r.u32("Next")? as usize;
        let if_index = r.u32("IfIndex")?;
        let capability = r.u32("Capability")?;
        r.skip(4, "Reserved")?;
        let link_speed = r.u64("LinkSpeed")?;
        let family = r.u16("Family")?;
        r.skip(2, "Port")?;
        let address = match family {
            AF_INET => IpAddr::V4(Ipv4Addr::from(r.array::<4>("IPv4Address")?)),
            AF_INET6 => {
                r.skip(4, "FlowInfo")?;
                IpAddr::V6(Ipv6Addr::from(r.array::<16>("IPv6Address")?))
            }
            f => {
                return Err(DecodeError::InvalidValue {
                    what: "sockaddr family",
                    value: f.into(),
                })
            }
        };
        out.push(NetworkInterface {
            if_index,
            capability,
            link_speed,
            address,
        });
        if next == 0 {
            break;
        }
        if next < 152 {
            return Err(DecodeError::InvalidValue {
                what: "NETWORK_INTERFACE_INFO Next",
                value: next as u64,
            });
        }
        pos = pos.saturating_add(next);
    }
    Ok(out)
}

/// SRV_REQUEST_RESUME_KEY response: a 24-byte key, ContextLength 0, and
/// four bytes of (empty) context as Windows sends.
pub fn encode_resume_key(key: &[u8; 24], out: &mut BytesMut) {
    out.put_slice(key);
    out.put_u32_le(0);
    out.put_u32_le(0);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyChunk {
    pub source_offset: u64,
    pub target_offset: u64,
    pub length: u32,
}

/// SRV_COPYCHUNK_COPY (FSCTL_SRV_COPYCHUNK and _WRITE input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyChunkRequest {
    pub source_key: [u8; 24],
    pub chunks: Vec<CopyChunk>,
}

impl CopyChunkRequest {
    pub fn decode(input: Bytes) -> Result<Self> {
        let mut r = Reader::new(input);
        let source_key = r.array("SourceKey")?;
        let n = r.u32("ChunkCount")? as usize;
        r.skip(4, "Reserved")?;
        check_count(n, 24, r.remaining(), "Chunks")?;
        let mut chunks = Vec::with_capacity(n);
        for _ in 0..n {
            let source_offset = r.u64("SourceOffset")?;
            let target_offset = r.u64("TargetOffset")?;
            let length = r.u32("Length")?;
            r.skip(4, "Reserved")?;
            chunks.push(CopyChunk {
                source_offset,
                target_offset,
                length,
            });
        }
        Ok(CopyChunkRequest { source_key, chunks })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.source_key);
        out.put_u32_le(self.chunks.len() as u32);
        out.put_u32_le(0);
        for c in &self.chunks {
            out.put_u64_le(c.source_offset);
            out.put_u64_le(c.target_offset);
            out.put_u32_le(c.length);
            out.put_u32_le(0);
        }
    }
}

/// SRV_COPYCHUNK_RESPONSE. On STATUS_INVALID_PARAMETER the fields carry
/// the server's limits instead (MS-SMB2 3.3.5.15.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyChunkResponse {
    pub chunks_written: u32,
    pub chunk_bytes_written: u32,
    pub total_bytes_written: u32,
}

impl CopyChunkResponse {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.chunks_written);
        out.put_u32_le(self.chunk_bytes_written);
        out.put_u32_le(self.total_bytes_written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_byte_image_and_round_trip() {
        let mut b = vec![57, 0, 0, 0];
        b.extend_from_slice(&fsctl::VALIDATE_NEGOTIATE_INFO.to_le_bytes());
        b.extend_from_slice(&[0xFF; 16]);
        b.extend_from_slice(&120u32.to_le_bytes());
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&24u32.to_le_bytes());
        b.extend_from_slice(&IOCTL_IS_FSCTL.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(b"abcd");
        let r = IoctlRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(r.ctl_code, fsctl::VALIDATE_NEGOTIATE_INFO);
        assert_eq!(r.file_id, FileId::ANY);
        assert_eq!(&r.input[..], b"abcd");
        assert_eq!(r.max_output_response, 24);
        let mut e = BytesMut::new();
        r.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        b[28] = 5;
        assert!(IoctlRequest::decode(Bytes::from(b)).is_err());
    }

    #[test]
    fn response_layout() {
        let resp = IoctlResponse {
            ctl_code: fsctl::SRV_REQUEST_RESUME_KEY,
            file_id: FileId {
                persistent: 1,
                volatile: 2,
            },
            input: Bytes::new(),
            output: Bytes::from_static(&[7; 32]),
        };
        let mut b = BytesMut::new();
        resp.encode(&mut b);
        assert_eq!(&b[0..2], &[49, 0]);
        assert_eq!(&b[24..28], &[112, 0, 0, 0]);
        assert_eq!(&b[32..36], &[112, 0, 0, 0]);
        assert_eq!(&b[36..40], &[32, 0, 0, 0]);
        assert_eq!(b.len(), 48 + 32);
        assert_eq!(IoctlResponse::decode(b.freeze()).unwrap(), resp);
    }

    #[test]
    fn payloads() {
        let v = ValidateNegotiateInfoRequest {
            capabilities: 0x7F,
            guid: [1; 16],
            security_mode: 1,
            dialects: vec![0x0202, 0x0300],
        };
        let mut b = BytesMut::new();
        v.encode(&mut b);
        assert_eq!(b.len(), 28);
        assert_eq!(ValidateNegotiateInfoRequest::decode(b.freeze()).unwrap(), v);
        assert!(ValidateNegotiateInfoRequest::decode(Bytes::from_static(&[0; 23])).is_err());
        let mut b = BytesMut::new();
        ValidateNegotiateInfoResponse {
            capabilities: 1,
            guid: [2; 16],
            security_mode: 1,
            dialect: 0x0302,
        }
        .encode(&mut b);
        assert_eq!(b.len(), 24);
        assert_eq!(&b[22..24], &[2, 3]);

        let ifs = vec![
            NetworkInterface {
                if_index: 1,
                capability: if_capability::RSS,
                link_speed: 10_000_000_000,
                address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            },
            NetworkInterface {
                if_index: 2,
                capability: 0,
                link_speed: 1,
                address: IpAddr::V6(Ipv6Addr::LOCALHOST),
            },
        ];
        let mut b = BytesMut::new();
        encode_network_interfaces(&ifs, &mut b);
        assert_eq!(b.len(), 304);
        assert_eq!(&b[24..32], &[2, 0, 0, 0, 127, 0, 0, 1]);
        assert_eq!(decode_network_interfaces(b.freeze()).unwrap(), ifs);

        let mut b = BytesMut::new();
        encode_resume_key(&[9; 24], &mut b);
        assert_eq!(b.len(), 32);

        let cc = CopyChunkRequest {
            source_key: [3; 24],
            chunks: vec![
                CopyChunk {
                    source_offset: 0,
                    target_offset: 4096,
                    length: 1 << 20,
                };
                3
            ],
        };
        let mut b = BytesMut::new();
        cc.encode(&mut b);
        assert_eq!(b.len(), 32 + 72);
        assert_eq!(CopyChunkRequest::decode(b.clone().freeze()).unwrap(), cc);
        let mut bad = b.to_vec();
        bad[24] = 200;
        assert!(CopyChunkRequest::decode(Bytes::from(bad)).is_err());
        let mut b = BytesMut::new();
        CopyChunkResponse {
            chunks_written: 256,
            chunk_bytes_written: 1 << 20,
            total_bytes_written: 16 << 20,
        }
        .encode(&mut b);
        assert_eq!(&b[..4], &[0, 1, 0, 0]);
    }
}
