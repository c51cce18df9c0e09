//! The SMB2 ERROR response (MS-SMB2 2.2.2) and its error contexts
//! (2.2.2.1, SMB 3.1.1).

use bytes::{BufMut, BytesMut};

use crate::wire::pad;

/// ErrorId of an error context.
pub mod error_id {
    pub const DEFAULT: u32 = 0x0000_0000;
    pub const SHARE_REDIRECT: u32 = 0x7265_6452;
}

/// Encode an error body: StructureSize 9, ErrorContextCount, ByteCount and
/// ErrorData (one zero byte when empty, as the spec requires).
pub fn encode_error(error_context_count: u8, error_data: &[u8], out: &mut BytesMut) {
    out.put_u16_le(9);
    out.put_u8(error_context_count);
    out.put_u8(0);
    out.put_u32_le(error_data.len() as u32);
    crate::session::put_buffer(out, error_data);
}

/// The common case: no contexts, no data.
pub fn encode_empty_error(out: &mut BytesMut) {
    encode_error(0, &[], out);
}

/// STATUS_BUFFER_TOO_SMALL carries the size the client should ask for
/// (MS-SMB2 3.3.5.20.1, 3.3.5.15).
pub fn encode_buffer_too_small(required: u32, out: &mut BytesMut) {
    encode_error(0, &required.to_le_bytes(), out);
}

/// An error body whose ErrorData is a list of SMB2 ERROR Context
/// structures (dialect 3.1.1), each 8-byte aligned.
pub fn encode_error_contexts(contexts: &[(u32, &[u8])], out: &mut BytesMut) {
    let mut data = BytesMut::new();
    for (i, (id, body)) in contexts.iter().enumerate() {
        if i > 0 {
            // Aligned, not chained by offset: padding only.
            data.put_bytes(0, pad(data.len(), 8));
        }
        data.put_u32_le(body.len() as u32);
        data.put_u32_le(*id);
        data.put_slice(body);
    }
    encode_error(contexts.len().min(255) as u8, &data, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let mut b = BytesMut::new();
        encode_empty_error(&mut b);
        assert_eq!(&b[..], &[9, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut b = BytesMut::new();
        encode_error(1, &[1, 2, 3, 4], &mut b);
        assert_eq!(&b[..], &[9, 0, 1, 0, 4, 0, 0, 0, 1, 2, 3, 4]);
        let mut b = BytesMut::new();
        encode_buffer_too_small(200, &mut b);
        assert_eq!(&b[4..], &[4, 0, 0, 0, 200, 0, 0, 0]);
    }

    #[test]
    fn error_context_list() {
        let mut b = BytesMut::new();
        encode_error_contexts(
            &[
                (error_id::DEFAULT, &[1, 2, 3][..]),
                (error_id::SHARE_REDIRECT, &[9][..]),
            ],
            &mut b,
        );
        assert_eq!(b[2], 2);
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 16 + 9);
        assert_eq!(&b[8..19], &[3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(&b[24..32], &[1, 0, 0, 0, 0x52, 0x64, 0x65, 0x72]);
        assert_eq!(b[32], 9);
    }
}
