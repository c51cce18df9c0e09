//! Bodies with nothing but StructureSize and a reserved field: LOGOFF,
//! TREE_DISCONNECT, ECHO, CANCEL requests and the matching responses, plus
//! the FLUSH, LOCK and SET_INFO responses (MS-SMB2 2.2.7, 2.2.8, 2.2.11,
//! 2.2.12, 2.2.16, 2.2.27, 2.2.28, 2.2.30, 2.2.35, 2.2.40).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::wire::Reader;

/// Decode a 4-byte body (StructureSize 4 + Reserved).
pub fn decode_empty(body: Bytes, what: &'static str) -> Result<()> {
    Reader::body(body).structure_size(4, what)
}

/// Encode a 4-byte body (StructureSize 4 + Reserved).
pub fn encode_empty(out: &mut BytesMut) {
    out.put_u16_le(4);
    out.put_u16_le(0);
}

/// The SET_INFO response: StructureSize 2 and nothing else.
pub fn encode_set_info_response(out: &mut BytesMut) {
    out.put_u16_le(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bodies() {
        let mut b = BytesMut::new();
        encode_empty(&mut b);
        assert_eq!(&b[..], &[4, 0, 0, 0]);
        decode_empty(b.freeze(), "ECHO").unwrap();
        assert!(decode_empty(Bytes::from_static(&[4, 0]), "ECHO").is_err());
        assert!(decode_empty(Bytes::from_static(&[6, 0, 0, 0]), "ECHO").is_err());
        let mut b = BytesMut::new();
        encode_set_info_response(&mut b);
        assert_eq!(&b[..], &[2, 0]);
    }
}
