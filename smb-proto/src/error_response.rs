//! The SMB2 ERROR response (MS-SMB2 2.2.2).

use bytes::{BufMut, BytesMut};

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
    }
}
