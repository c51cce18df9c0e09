//! QUERY_DIRECTORY and CHANGE_NOTIFY (MS-SMB2 2.2.33-2.2.36), the
//! FILE_NOTIFY_INFORMATION list, and the StructureSize 9 "output buffer"
//! response shared with QUERY_INFO.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::session::put_buffer;
use crate::wire::{next_chain_entry, put_utf16, utf16_decode, utf16_len, FileId, Reader, WriteExt};

pub mod query_flags {
    pub const RESTART_SCANS: u8 = 0x01;
    pub const RETURN_SINGLE_ENTRY: u8 = 0x02;
    pub const INDEX_SPECIFIED: u8 = 0x04;
    pub const REOPEN: u8 = 0x10;
}

/// QUERY_DIRECTORY request (StructureSize 33).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryDirectoryRequest {
    pub file_information_class: u8,
    pub flags: u8,
    pub file_index: u32,
    pub file_id: FileId,
    /// Search pattern, e.g. `*`.
    pub pattern: String,
    pub output_buffer_length: u32,
}

impl QueryDirectoryRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(33, "QUERY_DIRECTORY request")?;
        let file_information_class = r.u8("FileInformationClass")?;
        let flags = r.u8("Flags")?;
        let file_index = r.u32("FileIndex")?;
        let file_id = r.file_id("FileId")?;
        let off = r.u16("FileNameOffset")?;
        let len = r.u16("FileNameLength")?;
        let output_buffer_length = r.u32("OutputBufferLength")?;
        let pattern = utf16_decode(&r.region(off.into(), len.into(), "FileName")?, "FileName")?;
        Ok(QueryDirectoryRequest {
            file_information_class,
            flags,
            file_index,
            file_id,
            pattern,
            output_buffer_length,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(33);
        out.put_u8(self.file_information_class);
        out.put_u8(self.flags);
        out.put_u32_le(self.file_index);
        out.put_file_id(self.file_id);
        out.put_u16_le(if self.pattern.is_empty() { 0 } else { 64 + 32 });
        out.put_u16_le(utf16_len(&self.pattern) as u16);
        out.put_u32_le(self.output_buffer_length);
        if self.pattern.is_empty() {
            out.put_u8(0);
        } else {
            put_utf16(out, &self.pattern);
        }
    }
}

/// The response of QUERY_DIRECTORY, CHANGE_NOTIFY and QUERY_INFO
/// (StructureSize 9): an output buffer at offset 72.
pub fn encode_output_buffer_response(data: &[u8], out: &mut BytesMut) {
    out.put_u16_le(9);
    out.put_u16_le(if data.is_empty() { 0 } else { 64 + 8 });
    out.put_u32_le(data.len() as u32);
    put_buffer(out, data);
}

/// Client-side decoding of that response.
pub fn decode_output_buffer_response(body: Bytes) -> Result<Bytes> {
    let mut r = Reader::body(body);
    r.structure_size(9, "output buffer response")?;
    let off = r.u16("OutputBufferOffset")?;
    let len = r.u32("OutputBufferLength")?;
    r.region(off.into(), len.into(), "OutputBuffer")
}

pub const CHANGE_NOTIFY_WATCH_TREE: u16 = 0x0001;

/// CompletionFilter bits.
pub mod notify_filter {
    pub const FILE_NAME: u32 = 0x0000_0001;
    pub const DIR_NAME: u32 = 0x0000_0002;
    pub const ATTRIBUTES: u32 = 0x0000_0004;
    pub const SIZE: u32 = 0x0000_0008;
    pub const LAST_WRITE: u32 = 0x0000_0010;
    pub const LAST_ACCESS: u32 = 0x0000_0020;
    pub const CREATION: u32 = 0x0000_0040;
    pub const EA: u32 = 0x0000_0080;
    pub const SECURITY: u32 = 0x0000_0100;
    pub const STREAM_NAME: u32 = 0x0000_0200;
    pub const STREAM_SIZE: u32 = 0x0000_0400;
    pub const STREAM_WRITE: u32 = 0x0000_0800;
}

/// FILE_NOTIFY_INFORMATION Action values.
pub mod notify_action {
    pub const ADDED: u32 = 1;
    pub const REMOVED: u32 = 2;
    pub const MODIFIED: u32 = 3;
    pub const RENAMED_OLD_NAME: u32 = 4;
    pub const RENAMED_NEW_NAME: u32 = 5;
    pub const ADDED_STREAM: u32 = 6;
    pub const REMOVED_STREAM: u32 = 7;
    pub const MODIFIED_STREAM: u32 = 8;
}

/// CHANGE_NOTIFY request (StructureSize 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeNotifyRequest {
    pub flags: u16,
    pub output_buffer_length: u32,
    pub file_id: FileId,
    pub completion_filter: u32,
}

impl ChangeNotifyRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(32, "CHANGE_NOTIFY request")?;
        let flags = r.u16("Flags")?;
        let output_buffer_length = r.u32("OutputBufferLength")?;
        let file_id = r.file_id("FileId")?;
        Ok(ChangeNotifyRequest {
            flags,
            output_buffer_length,
            file_id,
            completion_filter: r.u32("CompletionFilter")?,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(32);
        out.put_u16_le(self.flags);
        out.put_u32_le(self.output_buffer_length);
        out.put_file_id(self.file_id);
        out.put_u32_le(self.completion_filter);
        out.put_u32_le(0);
    }

    pub fn watch_tree(&self) -> bool {
        self.flags & CHANGE_NOTIFY_WATCH_TREE != 0
    }
}

/// One change for the CHANGE_NOTIFY response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNotify {
    pub action: u32,
    /// Relative to the watched directory.
    pub name: String,
}

/// Encode FILE_NOTIFY_INFORMATION entries (4-byte aligned, chained).
pub fn encode_notify_list(changes: &[FileNotify], out: &mut BytesMut) {
    let mut last: Option<usize> = None;
    for c in changes {
        next_chain_entry(out, &mut last, 4);
        out.put_u32_le(0);
        out.put_u32_le(c.action);
        out.put_u32_le(utf16_len(&c.name) as u32);
        put_utf16(out, &c.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_directory_byte_image() {
        let mut b = vec![33, 0, 37, query_flags::RESTART_SCANS, 0, 0, 0, 0];
        b.extend_from_slice(&[0xAA; 16]);
        b.extend_from_slice(&[96, 0, 2, 0]);
        b.extend_from_slice(&65536u32.to_le_bytes());
        b.extend_from_slice(&[b'*', 0]);
        let q = QueryDirectoryRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(q.file_information_class, 37);
        assert_eq!(q.flags, 1);
        assert_eq!(q.pattern, "*");
        assert_eq!(q.output_buffer_length, 65536);
        let mut e = BytesMut::new();
        q.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        b[26] = 4;
        assert!(QueryDirectoryRequest::decode(Bytes::from(b.clone())).is_err());
        b[26] = 2;
        b[33] = 0xD8; // unpaired surrogate
        assert!(QueryDirectoryRequest::decode(Bytes::from(b)).is_err());
    }

    #[test]
    fn output_buffer_response() {
        let mut b = BytesMut::new();
        encode_output_buffer_response(b"abc", &mut b);
        assert_eq!(&b[..], &[9, 0, 72, 0, 3, 0, 0, 0, b'a', b'b', b'c']);
        assert_eq!(&decode_output_buffer_response(b.freeze()).unwrap()[..], b"abc");
        let mut b = BytesMut::new();
        encode_output_buffer_response(b"", &mut b);
        assert_eq!(&b[..], &[9, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn change_notify_and_notify_list() {
        let mut b = vec![32, 0, 1, 0, 0, 0x10, 0, 0];
        b.extend_from_slice(&[1; 16]);
        b.extend_from_slice(&(notify_filter::FILE_NAME | notify_filter::DIR_NAME).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        let c = ChangeNotifyRequest::decode(Bytes::from(b.clone())).unwrap();
        assert!(c.watch_tree());
        assert_eq!(c.output_buffer_length, 0x1000);
        assert_eq!(c.completion_filter, 3);
        let mut e = BytesMut::new();
        c.encode(&mut e);
        assert_eq!(&e[..], &b[..]);

        let mut e = BytesMut::new();
        encode_notify_list(
            &[
                FileNotify {
                    action: notify_action::RENAMED_OLD_NAME,
                    name: "a".into(),
                },
                FileNotify {
                    action: notify_action::RENAMED_NEW_NAME,
                    name: "bc".into(),
                },
            ],
            &mut e,
        );
        assert_eq!(&e[..16], &[16, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, b'a', 0, 0, 0]);
        assert_eq!(&e[16..], &[0, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, b'b', 0, b'c', 0]);
    }
}
