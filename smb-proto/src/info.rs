//! QUERY_INFO and SET_INFO (MS-SMB2 2.2.37-2.2.40). Responses: QUERY_INFO
//! uses [`crate::dir::encode_output_buffer_response`], SET_INFO
//! [`crate::simple::encode_set_info_response`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::session::put_buffer;
use crate::wire::{FileId, Reader, WriteExt};

pub mod info_type {
    pub const FILE: u8 = 0x01;
    pub const FILESYSTEM: u8 = 0x02;
    pub const SECURITY: u8 = 0x03;
    pub const QUOTA: u8 = 0x04;
}

/// QUERY_INFO Flags (for FileFullEaInformation).
pub mod query_info_flags {
    pub const RESTART_SCAN: u32 = 0x0000_0001;
    pub const RETURN_SINGLE_ENTRY: u32 = 0x0000_0002;
    pub const INDEX_SPECIFIED: u32 = 0x0000_0004;
}

/// QUERY_INFO request (StructureSize 41).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryInfoRequest {
    pub info_type: u8,
    pub file_info_class: u8,
    pub output_buffer_length: u32,
    pub input: Bytes,
    pub additional_information: u32,
    pub flags: u32,
    pub file_id: FileId,
}

impl QueryInfoRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(41, "QUERY_INFO request")?;
        let info_type = r.u8("InfoType")?;
        let file_info_class = r.u8("FileInfoClass")?;
        let output_buffer_length = r.u32("OutputBufferLength")?;
        let in_off = r.u16("InputBufferOffset")?;
        r.skip(2, "Reserved")?;
        let in_len = r.u32("InputBufferLength")?;
        let additional_information = r.u32("AdditionalInformation")?;
        let flags = r.u32("Flags")?;
        let file_id = r.file_id("FileId")?;
        Ok(QueryInfoRequest {
            info_type,
            file_info_class,
            output_buffer_length,
            input: r.region(in_off.into(), in_len.into(), "QUERY_INFO input")?,
            additional_information,
            flags,
            file_id,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(41);
        out.put_u8(self.info_type);
        out.put_u8(self.file_info_class);
        out.put_u32_le(self.output_buffer_length);
        out.put_u16_le(if self.input.is_empty() { 0 } else { 64 + 40 });
        out.put_u16_le(0);
        out.put_u32_le(self.input.len() as u32);
        out.put_u32_le(self.additional_information);
        out.put_u32_le(self.flags);
        out.put_file_id(self.file_id);
        put_buffer(out, &self.input);
    }
}

/// SET_INFO request (StructureSize 33). Decode the buffer with
/// [`crate::fscc::SetFileInfo::decode`], [`crate::fscc::decode_set_fs_info`]
/// or [`crate::security::SecurityDescriptor::decode`] by `info_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfoRequest {
    pub info_type: u8,
    pub file_info_class: u8,
    pub buffer: Bytes,
    pub additional_information: u32,
    pub file_id: FileId,
}

impl SetInfoRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(33, "SET_INFO request")?;
        let info_type = r.u8("InfoType")?;
        let file_info_class = r.u8("FileInfoClass")?;
        let len = r.u32("BufferLength")?;
        let off = r.u16("BufferOffset")?;
        r.skip(2, "Reserved")?;
        let additional_information = r.u32("AdditionalInformation")?;
        let file_id = r.file_id("FileId")?;
        Ok(SetInfoRequest {
            info_type,
            file_info_class,
            buffer: r.region(off.into(), len.into(), "SET_INFO buffer")?,
            additional_information,
            file_id,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(33);
        out.put_u8(self.info_type);
        out.put_u8(self.file_info_class);
        out.put_u32_le(self.buffer.len() as u32);
        out.put_u16_le(64 + 32);
        out.put_u16_le(0);
        out.put_u32_le(self.additional_information);
        out.put_file_id(self.file_id);
        put_buffer(out, &self.buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fscc::{class, SetFileInfo};

    #[test]
    fn query_info_byte_image() {
        let mut b = vec![41, 0, info_type::SECURITY, 0];
        b.extend_from_slice(&4096u32.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&[5; 16]);
        b.push(0);
        let q = QueryInfoRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(q.info_type, info_type::SECURITY);
        assert_eq!(q.output_buffer_length, 4096);
        assert_eq!(q.additional_information, 7);
        assert!(q.input.is_empty());
        let mut e = BytesMut::new();
        q.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        b[8] = 104;
        b[12] = 9;
        assert!(QueryInfoRequest::decode(Bytes::from(b)).is_err());
    }

    #[test]
    fn set_info_byte_image() {
        let mut b = vec![33, 0, info_type::FILE, class::END_OF_FILE];
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&[96, 0, 0, 0]);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&[6; 16]);
        b.extend_from_slice(&1234u64.to_le_bytes());
        let s = SetInfoRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(
            SetFileInfo::decode(s.file_info_class, s.buffer.clone()).unwrap(),
            SetFileInfo::EndOfFile { end_of_file: 1234 }
        );
        let mut e = BytesMut::new();
        s.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        b[4] = 9;
        assert!(SetInfoRequest::decode(Bytes::from(b)).is_err());
    }
}
