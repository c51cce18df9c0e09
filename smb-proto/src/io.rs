//! CLOSE, FLUSH, READ, WRITE and LOCK (MS-SMB2 2.2.15-2.2.26).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::fscc::Times;
use crate::wire::{check_count, FileId, Reader, WriteExt};

/// CLOSE Flags.
pub const CLOSE_FLAG_POSTQUERY_ATTRIB: u16 = 0x0001;

/// CLOSE request (StructureSize 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseRequest {
    pub flags: u16,
    pub file_id: FileId,
}

impl CloseRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(24, "CLOSE request")?;
        let flags = r.u16("Flags")?;
        r.skip(4, "Reserved")?;
        Ok(CloseRequest {
            flags,
            file_id: r.file_id("FileId")?,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(24);
        out.put_u16_le(self.flags);
        out.put_u32_le(0);
        out.put_file_id(self.file_id);
    }
}

/// CLOSE response (StructureSize 60). With POSTQUERY_ATTRIB unset the
/// attributes are all zero ([`CloseResponse::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CloseResponse {
    pub flags: u16,
    pub times: Times,
    pub allocation_size: u64,
    pub end_of_file: u64,
    pub file_attributes: u32,
}

impl CloseResponse {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(60);
        out.put_u16_le(self.flags);
        out.put_u32_le(0);
        out.put_u64_le(self.times.creation);
        out.put_u64_le(self.times.last_access);
        out.put_u64_le(self.times.last_write);
        out.put_u64_le(self.times.change);
        out.put_u64_le(self.allocation_size);
        out.put_u64_le(self.end_of_file);
        out.put_u32_le(self.file_attributes);
    }
}

/// FLUSH request (StructureSize 24); the response is an empty body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushRequest {
    pub file_id: FileId,
}

impl FlushRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(24, "FLUSH request")?;
        r.skip(6, "Reserved")?;
        Ok(FlushRequest {
            file_id: r.file_id("FileId")?,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(24);
        out.put_bytes(0, 6);
        out.put_file_id(self.file_id);
    }
}

/// READ request Flags.
pub mod read_flags {
    pub const UNBUFFERED: u8 = 0x01;
    pub const REQUEST_COMPRESSED: u8 = 0x02;
}

/// Channel values of READ/WRITE.
pub mod channel {
    pub const NONE: u32 = 0;
    pub const RDMA_V1: u32 = 1;
    pub const RDMA_V1_INVALIDATE: u32 = 2;
    pub const RDMA_TRANSFORM: u32 = 3;
}

/// READ request (StructureSize 49).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub padding: u8,
    pub flags: u8,
    pub length: u32,
    pub offset: u64,
    pub file_id: FileId,
    pub minimum_count: u32,
    pub channel: u32,
    pub remaining_bytes: u32,
    pub channel_info: Bytes,
}

impl ReadRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(49, "READ request")?;
        let padding = r.u8("Padding")?;
        let flags = r.u8("Flags")?;
        let length = r.u32("Length")?;
        let offset = r.u64("Offset")?;
        let file_id = r.file_id("FileId")?;
        let minimum_count = r.u32("MinimumCount")?;
        let channel = r.u32("Channel")?;
        let remaining_bytes = r.u32("RemainingBytes")?;
        let ci_off = r.u16("ReadChannelInfoOffset")?;
        let ci_len = r.u16("ReadChannelInfoLength")?;
        Ok(ReadRequest {
            padding,
            flags,
            length,
            offset,
            file_id,
            minimum_count,
            channel,
            remaining_bytes,
            channel_info: r.region(ci_off.into(), ci_len.into(), "ReadChannelInfo")?,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(49);
        out.put_u8(self.padding);
        out.put_u8(self.flags);
        out.put_u32_le(self.length);
        out.put_u64_le(self.offset);
        out.put_file_id(self.file_id);
        out.put_u32_le(self.minimum_count);
        out.put_u32_le(self.channel);
        out.put_u32_le(self.remaining_bytes);
        out.put_u16_le(if self.channel_info.is_empty() { 0 } else { 64 + 48 });
        out.put_u16_le(self.channel_info.len() as u16);
        crate::session::put_buffer(out, &self.channel_info);
    }
}

/// DataOffset of a READ response: header (64) + fixed part (16).
pub const READ_RESPONSE_DATA_OFFSET: u8 = 80;

/// READ response (StructureSize 17), fixed part only, so the server can
/// send the file data from its own buffers right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadResponseHeader {
    pub data_length: u32,
    pub data_remaining: u32,
    pub flags: u32,
}

impl ReadResponseHeader {
    /// The 16 fixed bytes; the data follows at wire offset
    /// [`READ_RESPONSE_DATA_OFFSET`].
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(17);
        out.put_u8(READ_RESPONSE_DATA_OFFSET);
        out.put_u8(0);
        out.put_u32_le(self.data_length);
        out.put_u32_le(self.data_remaining);
        out.put_u32_le(self.flags);
    }

    /// Fixed part plus `data` in one buffer (for compounds and small reads).
    pub fn encode_with(&self, data: &[u8], out: &mut BytesMut) {
        ReadResponseHeader {
            data_length: data.len() as u32,
            ..*self
        }
        .encode(out);
        crate::session::put_buffer(out, data);
    }

    /// Client-side decoding: the header and the data slice.
    pub fn decode(body: Bytes) -> Result<(Self, Bytes)> {
        let mut r = Reader::body(body);
        r.structure_size(17, "READ response")?;
        let off = r.u8("DataOffset")?;
        r.skip(1, "Reserved")?;
        let data_length = r.u32("DataLength")?;
        let h = ReadResponseHeader {
            data_length,
            data_remaining: r.u32("DataRemaining")?,
            flags: r.u32("Flags")?,
        };
        Ok((h, r.region(off.into(), data_length.into(), "read data")?))
    }
}

/// WRITE Flags.
pub mod write_flags {
    pub const WRITE_THROUGH: u32 = 0x0000_0001;
    pub const WRITE_UNBUFFERED: u32 = 0x0000_0002;
}

/// WRITE request (StructureSize 49). `data` is a slice of the received
/// frame: no copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRequest {
    pub offset: u64,
    pub file_id: FileId,
    pub channel: u32,
    pub remaining_bytes: u32,
    pub flags: u32,
    pub channel_info: Bytes,
    pub data: Bytes,
}

impl WriteRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(49, "WRITE request")?;
        let data_off = r.u16("DataOffset")?;
        let length = r.u32("Length")?;
        let offset = r.u64("Offset")?;
        let file_id = r.file_id("FileId")?;
        let channel = r.u32("Channel")?;
        let remaining_bytes = r.u32("RemainingBytes")?;
        let ci_off = r.u16("WriteChannelInfoOffset")?;
        let ci_len = r.u16("WriteChannelInfoLength")?;
        let flags = r.u32("Flags")?;
        Ok(WriteRequest {
            offset,
            file_id,
            channel,
            remaining_bytes,
            flags,
            channel_info: r.region(ci_off.into(), ci_len.into(), "WriteChannelInfo")?,
            data: r.region(data_off.into(), length.into(), "write data")?,
        })
    }

    /// Client-side encoding (data at offset 0x70).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(49);
        out.put_u16_le(64 + 48);
        out.put_u32_le(self.data.len() as u32);
        out.put_u64_le(self.offset);
        out.put_file_id(self.file_id);
        out.put_u32_le(self.channel);
        out.put_u32_le(self.remaining_bytes);
        let ci_off = if self.channel_info.is_empty() {
            0
        } else {
            64 + 48 + self.data.len() as u16
        };
        out.put_u16_le(ci_off);
        out.put_u16_le(self.channel_info.len() as u16);
        out.put_u32_le(self.flags);
        crate::session::put_buffer(out, &self.data);
        out.put_slice(&self.channel_info);
    }
}

/// WRITE response (StructureSize 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteResponse {
    pub count: u32,
    pub remaining: u32,
}

impl WriteResponse {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(17);
        out.put_u16_le(0);
        out.put_u32_le(self.count);
        out.put_u32_le(self.remaining);
        out.put_u16_le(0);
        out.put_u16_le(0);
    }
}

/// LOCK element flags.
pub mod lock_flags {
    pub const SHARED_LOCK: u32 = 0x0000_0001;
    pub const EXCLUSIVE_LOCK: u32 = 0x0000_0002;
    pub const UNLOCK: u32 = 0x0000_0004;
    pub const FAIL_IMMEDIATELY: u32 = 0x0000_0010;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockElement {
    pub offset: u64,
    pub length: u64,
    pub flags: u32,
}

/// LOCK request (StructureSize 48); the response is an empty body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// LockSequenceNumber (low 4 bits) and LockSequenceIndex (upper 28).
    pub lock_sequence: u32,
    pub file_id: FileId,
    pub locks: Vec<LockElement>,
}

impl LockRequest {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        r.structure_size(48, "LOCK request")?;
        let count = usize::from(r.u16("LockCount")?);
        if count == 0 {
            return Err(DecodeError::InvalidValue {
                what: "LockCount",
                value: 0,
            });
        }
        let lock_sequence = r.u32("LockSequence")?;
        let file_id = r.file_id("FileId")?;
        check_count(count, 24, r.remaining(), "Locks")?;
        let mut locks = Vec::with_capacity(count);
        for _ in 0..count {
            let offset = r.u64("Lock Offset")?;
            let length = r.u64("Lock Length")?;
            let flags = r.u32("Lock Flags")?;
            r.skip(4, "Lock Reserved")?;
            locks.push(LockElement {
                offset,
                length,
                flags,
            });
        }
        Ok(LockRequest {
            lock_sequence,
            file_id,
            locks,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(48);
        out.put_u16_le(self.locks.len() as u16);
        out.put_u32_le(self.lock_sequence);
        out.put_file_id(self.file_id);
        for l in &self.locks {
            out.put_u64_le(l.offset);
            out.put_u64_le(l.length);
            out.put_u32_le(l.flags);
            out.put_u32_le(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FID: FileId = FileId {
        persistent: 0x0102,
        volatile: 0x0304,
    };

    fn fid_bytes() -> Vec<u8> {
        let mut v = 0x0102u64.to_le_bytes().to_vec();
        v.extend_from_slice(&0x0304u64.to_le_bytes());
        v
    }

    #[test]
    fn close_and_flush_byte_images() {
        let mut b = vec![24, 0, 1, 0, 0, 0, 0, 0];
        b.extend(fid_bytes());
        let c = CloseRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(c.flags, CLOSE_FLAG_POSTQUERY_ATTRIB);
        assert_eq!(c.file_id, FID);
        let mut e = BytesMut::new();
        c.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        b[2] = 0;
        let f = FlushRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(f.file_id, FID);
        assert!(FlushRequest::decode(Bytes::copy_from_slice(&b[..23])).is_err());
        let mut e = BytesMut::new();
        CloseResponse {
            end_of_file: 9,
            ..Default::default()
        }
        .encode(&mut e);
        assert_eq!(e.len(), 60);
        assert_eq!(&e[0..2], &[60, 0]);
        assert_eq!(e[48], 9);
    }

    #[test]
    fn read_request_byte_image_and_response() {
        let mut b = vec![49, 0, 0x50, 0];
        b.extend_from_slice(&65536u32.to_le_bytes());
        b.extend_from_slice(&4096u64.to_le_bytes());
        b.extend(fid_bytes());
        b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.len(), 49);
        let r = ReadRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(
            (r.length, r.offset, r.file_id, r.minimum_count),
            (65536, 4096, FID, 1)
        );
        assert_eq!(r.padding, 0x50);
        let mut e = BytesMut::new();
        r.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        // Channel info pointing past the end.
        b[44] = 0x70;
        b[46] = 8;
        assert!(ReadRequest::decode(Bytes::from(b)).is_err());

        let mut e = BytesMut::new();
        let h = ReadResponseHeader {
            data_length: 3,
            data_remaining: 0,
            flags: 0,
        };
        h.encode(&mut e);
        assert_eq!(&e[..], &[17, 0, 80, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut e = BytesMut::new();
        h.encode_with(b"xyz", &mut e);
        let (d, data) = ReadResponseHeader::decode(e.freeze()).unwrap();
        assert_eq!(d, h);
        assert_eq!(&data[..], b"xyz");
    }

    #[test]
    fn write_request_borrows_data() {
        let mut b = vec![49, 0, 0x70, 0];
        b.extend_from_slice(&5u32.to_le_bytes());
        b.extend_from_slice(&10u64.to_le_bytes());
        b.extend(fid_bytes());
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&write_flags::WRITE_THROUGH.to_le_bytes());
        b.extend_from_slice(b"hello");
        let body = Bytes::from(b.clone());
        let w = WriteRequest::decode(body.clone()).unwrap();
        assert_eq!(&w.data[..], b"hello");
        assert_eq!(w.data.as_ptr(), body[48..].as_ptr());
        assert_eq!((w.offset, w.file_id, w.flags), (10, FID, 1));
        let mut e = BytesMut::new();
        w.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        b[4] = 6;
        assert!(WriteRequest::decode(Bytes::from(b.clone())).is_err());
        b[4] = 5;
        b[2] = 0x10; // data inside the header
        assert!(WriteRequest::decode(Bytes::from(b)).is_err());
        let mut e = BytesMut::new();
        WriteResponse {
            count: 5,
            remaining: 0,
        }
        .encode(&mut e);
        assert_eq!(&e[..], &[17, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn lock_request_byte_image() {
        let mut b = vec![48, 0, 2, 0, 0x21, 0, 0, 0];
        b.extend(fid_bytes());
        for (o, f) in [
            (0u64, lock_flags::EXCLUSIVE_LOCK | lock_flags::FAIL_IMMEDIATELY),
            (100, lock_flags::UNLOCK),
        ] {
            b.extend_from_slice(&o.to_le_bytes());
            b.extend_from_slice(&10u64.to_le_bytes());
            b.extend_from_slice(&f.to_le_bytes());
            b.extend_from_slice(&[0; 4]);
        }
        let l = LockRequest::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(l.locks.len(), 2);
        assert_eq!(l.locks[0].flags, 0x12);
        assert_eq!(l.locks[1].offset, 100);
        assert_eq!(l.lock_sequence, 0x21);
        let mut e = BytesMut::new();
        l.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        b[2] = 3;
        assert!(LockRequest::decode(Bytes::from(b.clone())).is_err());
        b[2] = 0;
        assert!(LockRequest::decode(Bytes::from(b)).is_err());
    }
}
