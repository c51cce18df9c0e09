//! CREATE (MS-SMB2 2.2.13, 2.2.14) and create contexts (2.2.13.2,
//! 2.2.14.2), plus the CreateOptions / ShareAccess / CreateDisposition /
//! ImpersonationLevel constants.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::fscc::{decode_full_ea_list, encode_full_ea_list, FullEa, Times};
use crate::security::SecurityDescriptor;
use crate::session::put_buffer;
use crate::wire::{
    body_offset, next_chain_entry, put_utf16, utf16_decode, utf16_len, FileId, Reader, WriteExt,
};

pub mod oplock_level {
    pub const NONE: u8 = 0x00;
    pub const II: u8 = 0x01;
    pub const EXCLUSIVE: u8 = 0x08;
    pub const BATCH: u8 = 0x09;
    pub const LEASE: u8 = 0xFF;
}

pub mod impersonation {
    pub const ANONYMOUS: u32 = 0;
    pub const IDENTIFICATION: u32 = 1;
    pub const IMPERSONATION: u32 = 2;
    pub const DELEGATE: u32 = 3;
}

pub mod share_access {
    pub const READ: u32 = 0x0000_0001;
    pub const WRITE: u32 = 0x0000_0002;
    pub const DELETE: u32 = 0x0000_0004;
}

pub mod disposition {
    pub const SUPERSEDE: u32 = 0;
    pub const OPEN: u32 = 1;
    pub const CREATE: u32 = 2;
    pub const OPEN_IF: u32 = 3;
    pub const OVERWRITE: u32 = 4;
    pub const OVERWRITE_IF: u32 = 5;
}

pub mod options {
    pub const DIRECTORY_FILE: u32 = 0x0000_0001;
    pub const WRITE_THROUGH: u32 = 0x0000_0002;
    pub const SEQUENTIAL_ONLY: u32 = 0x0000_0004;
    pub const NO_INTERMEDIATE_BUFFERING: u32 = 0x0000_0008;
    pub const SYNCHRONOUS_IO_ALERT: u32 = 0x0000_0010;
    pub const SYNCHRONOUS_IO_NONALERT: u32 = 0x0000_0020;
    pub const NON_DIRECTORY_FILE: u32 = 0x0000_0040;
    pub const COMPLETE_IF_OPLOCKED: u32 = 0x0000_0100;
    pub const NO_EA_KNOWLEDGE: u32 = 0x0000_0200;
    pub const RANDOM_ACCESS: u32 = 0x0000_0800;
    pub const DELETE_ON_CLOSE: u32 = 0x0000_1000;
    pub const OPEN_BY_FILE_ID: u32 = 0x0000_2000;
    pub const OPEN_FOR_BACKUP_INTENT: u32 = 0x0000_4000;
    pub const NO_COMPRESSION: u32 = 0x0000_8000;
    pub const OPEN_REMOTE_INSTANCE: u32 = 0x0000_0400;
    pub const OPEN_REQUIRING_OPLOCK: u32 = 0x0001_0000;
    pub const DISALLOW_EXCLUSIVE: u32 = 0x0002_0000;
    pub const RESERVE_OPFILTER: u32 = 0x0010_0000;
    pub const OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    pub const OPEN_NO_RECALL: u32 = 0x0040_0000;
    pub const OPEN_FOR_FREE_SPACE_QUERY: u32 = 0x0080_0000;
}

pub mod create_action {
    pub const SUPERSEDED: u32 = 0;
    pub const OPENED: u32 = 1;
    pub const CREATED: u32 = 2;
    pub const OVERWRITTEN: u32 = 3;
}

/// Response Flags.
pub const RESPONSE_FLAG_REPARSEPOINT: u8 = 0x01;

/// Lease state bits and flags (MS-SMB2 2.2.13.2.8).
pub mod lease {
    pub const NONE: u32 = 0x00;
    pub const READ_CACHING: u32 = 0x01;
    pub const HANDLE_CACHING: u32 = 0x02;
    pub const WRITE_CACHING: u32 = 0x04;
    pub const FLAG_BREAK_IN_PROGRESS: u32 = 0x02;
    pub const FLAG_PARENT_LEASE_KEY_SET: u32 = 0x04;
}

/// DH2Q / DH2C flags.
pub const DH2_FLAG_PERSISTENT: u32 = 0x0000_0002;

/// A lease (RqLs request or response), version 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub key: [u8; 16],
    pub state: u32,
    pub flags: u32,
    pub duration: u64,
    /// Version 2 only: `(parent_lease_key, epoch)`.
    pub v2: Option<([u8; 16], u16)>,
}

impl Lease {
    fn decode(data: Bytes) -> Result<Lease> {
        let v2 = match data.len() {
            32 => false,
            52 => true,
            n => {
                return Err(DecodeError::InvalidValue {
                    what: "RqLs length",
                    value: n as u64,
                })
            }
        };
        let mut r = Reader::new(data);
        let key = r.array("LeaseKey")?;
        let state = r.u32("LeaseState")?;
        let flags = r.u32("LeaseFlags")?;
        let duration = r.u64("LeaseDuration")?;
        let v2 = if v2 {
            let parent = r.array("ParentLeaseKey")?;
            Some((parent, r.u16("Epoch")?))
        } else {
            None
        };
        Ok(Lease {
            key,
            state,
            flags,
            duration,
            v2,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.key);
        out.put_u32_le(self.state);
        out.put_u32_le(self.flags);
        out.put_u64_le(self.duration);
        if let Some((parent, epoch)) = self.v2 {
            out.put_slice(&parent);
            out.put_u16_le(epoch);
            out.put_u16_le(0);
        }
    }
}

/// Request create contexts, decoded by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateContext {
    /// MxAc: the client wants the maximal access; optional timestamp.
    MaximalAccess {
        timestamp: Option<u64>,
    },
    /// QFid: return the on-disk file id.
    QueryOnDiskId,
    /// RqLs, version by length.
    RequestLease(Lease),
    /// DHnQ.
    DurableRequest,
    /// DH2Q.
    DurableRequestV2 {
        timeout: u32,
        flags: u32,
        create_guid: [u8; 16],
    },
    /// DHnC.
    DurableReconnect {
        file_id: FileId,
    },
    /// DH2C.
    DurableReconnectV2 {
        file_id: FileId,
        create_guid: [u8; 16],
        flags: u32,
    },
    /// TWrp.
    TimewarpToken {
        timestamp: u64,
    },
    /// AlSi.
    AllocationSize(u64),
    /// ExtA.
    ExtendedAttributes(Vec<FullEa>),
    /// SecD.
    SecurityDescriptor(SecurityDescriptor),
    /// AAPL: Apple's extension; the server-query header when long enough.
    Aapl {
        command_code: u32,
        request_bitmap: u64,
        client_capabilities: u64,
        data: Bytes,
    },
    Unknown {
        name: Bytes,
        data: Bytes,
    },
}

pub mod context_name {
    pub const MXAC: &[u8] = b"MxAc";
    pub const QFID: &[u8] = b"QFid";
    pub const RQLS: &[u8] = b"RqLs";
    pub const DHNQ: &[u8] = b"DHnQ";
    pub const DH2Q: &[u8] = b"DH2Q";
    pub const DHNC: &[u8] = b"DHnC";
    pub const DH2C: &[u8] = b"DH2C";
    pub const TWRP: &[u8] = b"TWrp";
    pub const ALSI: &[u8] = b"AlSi";
    pub const EXTA: &[u8] = b"ExtA";
    pub const SECD: &[u8] = b"SecD";
    pub const AAPL: &[u8] = b"AAPL";
}

fn exact(data: &Bytes, len: usize, what: &'static str) -> Result<Reader> {
    if data.len() < len {
        return Err(DecodeError::Truncated {
            what,
            need: len,
            have: data.len(),
        });
    }
    Ok(Reader::new(data.clone()))
}

impl CreateContext {
    /// Decode one context's data by its name.
    pub fn decode(name: Bytes, data: Bytes) -> Result<CreateContext> {
        use context_name as n;
        Ok(match &name[..] {
            n::MXAC => CreateContext::MaximalAccess {
                timestamp: if data.is_empty() {
                    None
                } else {
                    Some(exact(&data, 8, "MxAc")?.u64("Timestamp")?)
                },
            },
            n::QFID => CreateContext::QueryOnDiskId,
            n::RQLS => CreateContext::RequestLease(Lease::decode(data)?),
            n::DHNQ => {
                exact(&data, 16, "DHnQ")?;
                CreateContext::DurableRequest
            }
            n::DH2Q => {
                let mut r = exact(&data, 32, "DH2Q")?;
                let timeout = r.u32("Timeout")?;
                let flags = r.u32("Flags")?;
                r.skip(8, "Reserved")?;
                CreateContext::DurableRequestV2 {
                    timeout,
                    flags,
                    create_guid: r.array("CreateGuid")?,
                }
            }
            n::DHNC => CreateContext::DurableReconnect {
                file_id: exact(&data, 16, "DHnC")?.file_id("FileId")?,
            },
            n::DH2C => {
                let mut r = exact(&data, 36, "DH2C")?;
                CreateContext::DurableReconnectV2 {
                    file_id: r.file_id("FileId")?,
                    create_guid: r.array("CreateGuid")?,
                    flags: r.u32("Flags")?,
                }
            }
            n::TWRP => CreateContext::TimewarpToken {
                timestamp: exact(&data, 8, "TWrp")?.u64("Timestamp")?,
            },
            n::ALSI => CreateContext::AllocationSize(exact(&data, 8, "AlSi")?.u64("AllocationSize")?),
            n::EXTA => CreateContext::ExtendedAttributes(decode_full_ea_list(data)?),
            n::SECD => CreateContext::SecurityDescriptor(SecurityDescriptor::decode(data)?),
            n::AAPL => {
                let mut r = exact(&data, 24, "AAPL")?;
                let command_code = r.u32("CommandCode")?;
                r.skip(4, "Reserved")?;
                CreateContext::Aapl {
                    command_code,
                    request_bitmap: r.u64("RequestBitmap")?,
                    client_capabilities: r.u64("ClientCapabilities")?,
                    data,
                }
            }
            _ => CreateContext::Unknown { name, data },
        })
    }

    /// Client-side encoding: (name, data).
    pub fn encode(&self) -> (Bytes, Bytes) {
        use context_name as n;
        let mut d = BytesMut::new();
        let name = match self {
            CreateContext::MaximalAccess { timestamp } => {
                if let Some(t) = timestamp {
                    d.put_u64_le(*t);
                }
                n::MXAC
            }
            CreateContext::QueryOnDiskId => n::QFID,
            CreateContext::RequestLease(l) => {
                l.encode(&mut d);
                n::RQLS
            }
            CreateContext::DurableRequest => {
                d.put_bytes(0, 16);
                n::DHNQ
            }
            CreateContext::DurableRequestV2 {
                timeout,
                flags,
                create_guid,
            } => {
                d.put_u32_le(*timeout);
                d.put_u32_le(*flags);
                d.put_u64_le(0);
                d.put_slice(create_guid);
                n::DH2Q
            }
            CreateContext::DurableReconnect { file_id } => {
                d.put_file_id(*file_id);
                n::DHNC
            }
            CreateContext::DurableReconnectV2 {
                file_id,
                create_guid,
                flags,
            } => {
                d.put_file_id(*file_id);
                d.put_slice(create_guid);
                d.put_u32_le(*flags);
                n::DH2C
            }
            CreateContext::TimewarpToken { timestamp: v } => {
                d.put_u64_le(*v);
                n::TWRP
            }
            CreateContext::AllocationSize(v) => {
                d.put_u64_le(*v);
                n::ALSI
            }
            CreateContext::ExtendedAttributes(eas) => {
                encode_full_ea_list(eas, &mut d);
                n::EXTA
            }
            CreateContext::SecurityDescriptor(sd) => {
                d.put_slice(&sd.to_bytes());
                n::SECD
            }
            CreateContext::Aapl { data, .. } => {
                d.put_slice(data);
                n::AAPL
            }
            CreateContext::Unknown { name, data } => return (name.clone(), data.clone()),
        };
        (Bytes::from_static(name), d.freeze())
    }
}

/// Walk a create context chain: (name, data) pairs, bounds checked.
pub fn decode_context_chain(buf: Bytes) -> Result<Vec<(Bytes, Bytes)>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let r0 = Reader::new(buf.slice(pos..));
        let mut r = r0.clone();
        let next = r.u32("create context Next")? as usize;
        let name_off = r.u16("NameOffset")?;
        let name_len = r.u16("NameLength")?;
        r.skip(2, "Reserved")?;
        let data_off = r.u16("DataOffset")?;
        let data_len = r.u32("DataLength")?;
        let name = r0.region(name_off.into(), name_len.into(), "create context name")?;
        let data = r0.region(data_off.into(), data_len.into(), "create context data")?;
        out.push((name, data));
        if next == 0 {
            break;
        }
        if next % 8 != 0 || next < 16 {
            return Err(DecodeError::Misaligned {
                what: "create context Next",
                offset: next as u64,
                align: 8,
            });
        }
        pos = pos
            .checked_add(next)
            .filter(|&p| p < buf.len())
            .ok_or(DecodeError::OutOfBounds {
                what: "create context Next",
                offset: next as u64,
                len: 16,
                size: buf.len(),
            })?;
    }
    Ok(out)
}

/// Append a create context chain; each context 8-byte aligned, names at
/// offset 16, data 8-byte aligned after the name.
pub fn encode_context_chain(contexts: &[(Bytes, Bytes)], out: &mut BytesMut) {
    let mut last: Option<usize> = None;
    for (name, data) in contexts {
        next_chain_entry(out, &mut last, 8);
        let start = out.len();
        out.put_u32_le(0);
        out.put_u16_le(16);
        out.put_u16_le(name.len() as u16);
        out.put_u16_le(0);
        out.put_u16_le(0);
        out.put_u32_le(data.len() as u32);
        out.put_slice(name);
        if !data.is_empty() {
            out.pad_to(start, 8);
            let off = (out.len() - start) as u16;
            out.patch_u16(start + 10, off);
            out.put_slice(data);
        }
    }
}

/// CREATE request (StructureSize 57).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub security_flags: u8,
    pub requested_oplock_level: u8,
    pub impersonation_level: u32,
    pub smb_create_flags: u64,
    pub desired_access: u32,
    pub file_attributes: u32,
    pub share_access: u32,
    pub create_disposition: u32,
    pub create_options: u32,
    /// Relative to the share root, `\`-separated, no leading `\`.
    pub name: String,
    pub contexts: Vec<CreateContext>,
}

impl CreateRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(57, "CREATE request")?;
        let security_flags = r.u8("SecurityFlags")?;
        let requested_oplock_level = r.u8("RequestedOplockLevel")?;
        let impersonation_level = r.u32("ImpersonationLevel")?;
        let smb_create_flags = r.u64("SmbCreateFlags")?;
        r.skip(8, "Reserved")?;
        let desired_access = r.u32("DesiredAccess")?;
        let file_attributes = r.u32("FileAttributes")?;
        let share_access = r.u32("ShareAccess")?;
        let create_disposition = r.u32("CreateDisposition")?;
        let create_options = r.u32("CreateOptions")?;
        let name_off = r.u16("NameOffset")?;
        let name_len = r.u16("NameLength")?;
        let ctx_off = r.u32("CreateContextsOffset")?;
        let ctx_len = r.u32("CreateContextsLength")?;
        let name = utf16_decode(&r.region(name_off.into(), name_len.into(), "Name")?, "Name")?;
        let chain = r.region(ctx_off.into(), ctx_len.into(), "CreateContexts")?;
        let contexts = decode_context_chain(chain)?
            .into_iter()
            .map(|(n, d)| CreateContext::decode(n, d))
            .collect::<Result<_>>()?;
        Ok(CreateRequest {
            security_flags,
            requested_oplock_level,
            impersonation_level,
            smb_create_flags,
            desired_access,
            file_attributes,
            share_access,
            create_disposition,
            create_options,
            name,
            contexts,
        })
    }

    /// Client-side encoding.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u16_le(57);
        out.put_u8(self.security_flags);
        out.put_u8(self.requested_oplock_level);
        out.put_u32_le(self.impersonation_level);
        out.put_u64_le(self.smb_create_flags);
        out.put_u64_le(0);
        out.put_u32_le(self.desired_access);
        out.put_u32_le(self.file_attributes);
        out.put_u32_le(self.share_access);
        out.put_u32_le(self.create_disposition);
        out.put_u32_le(self.create_options);
        out.put_u16_le(64 + 56);
        out.put_u16_le(utf16_len(&self.name) as u16);
        let ctx_at = out.len();
        out.put_u64_le(0);
        put_utf16(out, &self.name);
        if self.contexts.is_empty() {
            if self.name.is_empty() {
                out.put_u8(0);
            }
            return;
        }
        out.pad_to(start, 8);
        let off = body_offset(out, start) as u32;
        let chain_start = out.len();
        let encoded: Vec<_> = self.contexts.iter().map(CreateContext::encode).collect();
        encode_context_chain(&encoded, out);
        out.patch_u32(ctx_at, off);
        out.patch_u32(ctx_at + 4, (out.len() - chain_start) as u32);
    }
}

/// Response create contexts this server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateResponseContext {
    /// MxAc response.
    MaximalAccess {
        query_status: u32,
        maximal_access: u32,
    },
    /// QFid response.
    OnDiskId {
        disk_file_id: u64,
        volume_id: u64,
    },
    /// RqLs response (v1 or v2 like the request).
    Lease(Lease),
    /// DHnQ response.
    Durable,
    /// DH2Q response.
    DurableV2 {
        timeout: u32,
        flags: u32,
    },
    Other {
        name: Bytes,
        data: Bytes,
    },
}

impl CreateResponseContext {
    /// Client-side decoding of one response context.
    pub fn decode(name: Bytes, data: Bytes) -> Result<Self> {
        use context_name as n;
        Ok(match &name[..] {
            n::MXAC => {
                let mut r = exact(&data, 8, "MxAc response")?;
                CreateResponseContext::MaximalAccess {
                    query_status: r.u32("QueryStatus")?,
                    maximal_access: r.u32("MaximalAccess")?,
                }
            }
            n::QFID => {
                let mut r = exact(&data, 32, "QFid response")?;
                CreateResponseContext::OnDiskId {
                    disk_file_id: r.u64("DiskFileId")?,
                    volume_id: r.u64("VolumeId")?,
                }
            }
            n::RQLS => CreateResponseContext::Lease(Lease::decode(data)?),
            n::DHNQ => {
                exact(&data, 8, "DHnQ response")?;
                CreateResponseContext::Durable
            }
            n::DH2Q => {
                let mut r = exact(&data, 8, "DH2Q response")?;
                CreateResponseContext::DurableV2 {
                    timeout: r.u32("Timeout")?,
                    flags: r.u32("Flags")?,
                }
            }
            _ => CreateResponseContext::Other { name, data },
        })
    }

    pub fn encode(&self) -> (Bytes, Bytes) {
        use context_name as n;
        let mut d = BytesMut::new();
        let name = match self {
            CreateResponseContext::MaximalAccess {
                query_status,
                maximal_access,
            } => {
                d.put_u32_le(*query_status);
                d.put_u32_le(*maximal_access);
                n::MXAC
            }
            CreateResponseContext::OnDiskId {
                disk_file_id,
                volume_id,
            } => {
                d.put_u64_le(*disk_file_id);
                d.put_u64_le(*volume_id);
                d.put_bytes(0, 16);
                n::QFID
            }
            CreateResponseContext::Lease(l) => {
                l.encode(&mut d);
                n::RQLS
            }
            CreateResponseContext::Durable => {
                d.put_bytes(0, 8);
                n::DHNQ
            }
            CreateResponseContext::DurableV2 { timeout, flags } => {
                d.put_u32_le(*timeout);
                d.put_u32_le(*flags);
                n::DH2Q
            }
            CreateResponseContext::Other { name, data } => return (name.clone(), data.clone()),
        };
        (Bytes::from_static(name), d.freeze())
    }
}

/// CREATE response (StructureSize 89).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateResponse {
    pub oplock_level: u8,
    pub flags: u8,
    pub create_action: u32,
    pub times: Times,
    pub allocation_size: u64,
    pub end_of_file: u64,
    pub file_attributes: u32,
    pub file_id: FileId,
    pub contexts: Vec<CreateResponseContext>,
}

impl CreateResponse {
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u16_le(89);
        out.put_u8(self.oplock_level);
        out.put_u8(self.flags);
        out.put_u32_le(self.create_action);
        out.put_u64_le(self.times.creation);
        out.put_u64_le(self.times.last_access);
        out.put_u64_le(self.times.last_write);
        out.put_u64_le(self.times.change);
        out.put_u64_le(self.allocation_size);
        out.put_u64_le(self.end_of_file);
        out.put_u32_le(self.file_attributes);
        out.put_u32_le(0);
        out.put_file_id(self.file_id);
        let ctx_at = out.len();
        out.put_u64_le(0);
        if self.contexts.is_empty() {
            put_buffer(out, &[]);
            return;
        }
        let off = body_offset(out, start) as u32;
        let chain_start = out.len();
        let encoded: Vec<_> = self.contexts.iter().map(CreateResponseContext::encode).collect();
        encode_context_chain(&encoded, out);
        out.patch_u32(ctx_at, off);
        out.patch_u32(ctx_at + 4, (out.len() - chain_start) as u32);
    }

    /// Client-side decoding.
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(89, "CREATE response")?;
        let oplock_level = r.u8("OplockLevel")?;
        let flags = r.u8("Flags")?;
        let create_action = r.u32("CreateAction")?;
        let times = Times {
            creation: r.u64("CreationTime")?,
            last_access: r.u64("LastAccessTime")?,
            last_write: r.u64("LastWriteTime")?,
            change: r.u64("ChangeTime")?,
        };
        let allocation_size = r.u64("AllocationSize")?;
        let end_of_file = r.u64("EndofFile")?;
        let file_attributes = r.u32("FileAttributes")?;
        r.skip(4, "Reserved2")?;
        let file_id = r.file_id("FileId")?;
        let off = r.u32("CreateContextsOffset")?;
        let len = r.u32("CreateContextsLength")?;
        let contexts = decode_context_chain(r.region(off.into(), len.into(), "CreateContexts")?)?
            .into_iter()
            .map(|(n, d)| CreateResponseContext::decode(n, d))
            .collect::<Result<_>>()?;
        Ok(CreateResponse {
            oplock_level,
            flags,
            create_action,
            times,
            allocation_size,
            end_of_file,
            file_attributes,
            file_id,
            contexts,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::security::{access, Acl, Sid};

    pub(crate) fn sample() -> CreateRequest {
        CreateRequest {
            security_flags: 0,
            requested_oplock_level: oplock_level::LEASE,
            impersonation_level: impersonation::IMPERSONATION,
            smb_create_flags: 0,
            desired_access: access::GENERIC_READ | access::SYNCHRONIZE,
            file_attributes: 0,
            share_access: share_access::READ | share_access::WRITE,
            create_disposition: disposition::OPEN_IF,
            create_options: options::NON_DIRECTORY_FILE,
            name: "dir\\file.txt".into(),
            contexts: vec![
                CreateContext::MaximalAccess { timestamp: None },
                CreateContext::QueryOnDiskId,
                CreateContext::RequestLease(Lease {
                    key: [3; 16],
                    state: lease::READ_CACHING | lease::HANDLE_CACHING,
                    flags: lease::FLAG_PARENT_LEASE_KEY_SET,
                    duration: 0,
                    v2: Some(([4; 16], 7)),
                }),
                CreateContext::DurableRequestV2 {
                    timeout: 0,
                    flags: DH2_FLAG_PERSISTENT,
                    create_guid: [5; 16],
                },
                CreateContext::DurableReconnect {
                    file_id: FileId {
                        persistent: 1,
                        volatile: 2,
                    },
                },
                CreateContext::DurableReconnectV2 {
                    file_id: FileId::ANY,
                    create_guid: [6; 16],
                    flags: 0,
                },
                CreateContext::DurableRequest,
                CreateContext::TimewarpToken { timestamp: 99 },
                CreateContext::AllocationSize(1 << 20),
                CreateContext::ExtendedAttributes(vec![FullEa {
                    flags: 0,
                    name: Bytes::from_static(b"K"),
                    value: Bytes::from_static(b"V"),
                }]),
                CreateContext::SecurityDescriptor(SecurityDescriptor {
                    control: 0,
                    owner: Some(Sid::everyone()),
                    group: None,
                    dacl: Some(Acl::new(vec![])),
                }),
                CreateContext::Aapl {
                    command_code: 1,
                    request_bitmap: 7,
                    client_capabilities: 3,
                    data: Bytes::from_static(&[
                        1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,
                    ]),
                },
                CreateContext::Unknown {
                    name: Bytes::from_static(b"ZZZZ"),
                    data: Bytes::from_static(b"raw"),
                },
            ],
        }
    }

    #[test]
    fn request_byte_image() {
        // Name "a" at 0x78, one MxAc context with no data at 0x80.
        let mut b = vec![57, 0, 0, 0, 2, 0, 0, 0];
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&0x0012_0089u32.to_le_bytes());
        b.extend_from_slice(&0x80u32.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0x40u32.to_le_bytes());
        b.extend_from_slice(&[0x78, 0, 2, 0]);
        b.extend_from_slice(&0x80u32.to_le_bytes());
        b.extend_from_slice(&20u32.to_le_bytes());
        b.extend_from_slice(&[b'a', 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0, 0, 0, 0, 16, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(b"MxAc");
        let r = CreateRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(r.name, "a");
        assert_eq!(r.desired_access, 0x0012_0089);
        assert_eq!(r.file_attributes, 0x80);
        assert_eq!(r.share_access, 7);
        assert_eq!(r.create_disposition, disposition::OPEN);
        assert_eq!(r.create_options, options::NON_DIRECTORY_FILE);
        assert_eq!(r.impersonation_level, 2);
        assert_eq!(r.contexts, vec![CreateContext::MaximalAccess { timestamp: None }]);
        b[48] = 0x7F; // CreateContextsLength past the end
        assert!(CreateRequest::decode(Bytes::from(b)).is_err());
    }

    #[test]
    fn request_round_trip_with_every_context() {
        let mut b = BytesMut::new();
        sample().encode(&mut b);
        assert_eq!(CreateRequest::decode(b.freeze()).unwrap(), sample());
    }

    #[test]
    fn hostile_context_chains() {
        let mut b = BytesMut::new();
        let ctxs = vec![
            (Bytes::from_static(b"MxAc"), Bytes::new()),
            (Bytes::from_static(b"QFid"), Bytes::new()),
        ];
        encode_context_chain(&ctxs, &mut b);
        let good = b.to_vec();
        assert_eq!(decode_context_chain(Bytes::from(good.clone())).unwrap(), ctxs);
        for (at, v) in [(0usize, 4u32), (0, 0x1000), (0, 8), (4, 0x00FF_0010)] {
            let mut bad = good.clone();
            bad[at..at + 4].copy_from_slice(&v.to_le_bytes());
            assert!(decode_context_chain(Bytes::from(bad)).is_err(), "{at} {v}");
        }
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes()); // DataLength
        assert!(decode_context_chain(Bytes::from(bad)).is_err());
        assert!(CreateContext::decode(Bytes::from_static(b"RqLs"), Bytes::from_static(&[0; 40])).is_err());
        assert!(CreateContext::decode(Bytes::from_static(b"DH2Q"), Bytes::from_static(&[0; 31])).is_err());
    }

    #[test]
    fn response_byte_image() {
        let resp = CreateResponse {
            oplock_level: oplock_level::LEASE,
            flags: 0,
            create_action: create_action::CREATED,
            times: Times {
                creation: 1,
                last_access: 2,
                last_write: 3,
                change: 4,
            },
            allocation_size: 4096,
            end_of_file: 5,
            file_attributes: 0x20,
            file_id: FileId {
                persistent: 0x11,
                volatile: 0x22,
            },
            contexts: vec![
                CreateResponseContext::MaximalAccess {
                    query_status: 0,
                    maximal_access: access::FILE_ALL_ACCESS,
                },
                CreateResponseContext::Lease(Lease {
                    key: [1; 16],
                    state: 7,
                    flags: 0,
                    duration: 0,
                    v2: None,
                }),
                CreateResponseContext::OnDiskId {
                    disk_file_id: 9,
                    volume_id: 1,
                },
                CreateResponseContext::DurableV2 {
                    timeout: 60000,
                    flags: 0,
                },
                CreateResponseContext::Durable,
                CreateResponseContext::Lease(Lease {
                    key: [2; 16],
                    state: 3,
                    flags: 0,
                    duration: 0,
                    v2: Some(([5; 16], 9)),
                }),
            ],
        };
        let mut b = BytesMut::new();
        resp.encode(&mut b);
        assert_eq!(&b[0..4], &[89, 0, 0xFF, 0]);
        assert_eq!(&b[4..8], &[2, 0, 0, 0]);
        assert_eq!(u64::from_le_bytes(b[40..48].try_into().unwrap()), 4096);
        assert_eq!(u64::from_le_bytes(b[64..72].try_into().unwrap()), 0x11);
        assert_eq!(u32::from_le_bytes(b[80..84].try_into().unwrap()), 152);
        let chain = Bytes::copy_from_slice(&b[88..]);
        assert_eq!(
            u32::from_le_bytes(b[84..88].try_into().unwrap()) as usize,
            chain.len()
        );
        let ctx = decode_context_chain(chain).unwrap();
        assert_eq!(&ctx[0].0[..], b"MxAc");
        assert_eq!(&ctx[0].1[..], &[0, 0, 0, 0, 0xFF, 0x01, 0x1F, 0]);
        assert_eq!(ctx[1].1.len(), 32);
        assert_eq!(ctx[2].1.len(), 32);
        assert_eq!(&ctx[3].1[..], &[0x60, 0xEA, 0, 0, 0, 0, 0, 0]);
        assert_eq!(CreateResponse::decode(b.freeze()).unwrap(), resp);
        let mut b = BytesMut::new();
        let bare = CreateResponse {
            contexts: vec![],
            ..resp
        };
        bare.encode(&mut b);
        assert_eq!(b.len(), 89);
        assert_eq!(CreateResponse::decode(b.freeze()).unwrap(), bare);
    }
}
