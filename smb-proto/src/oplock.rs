//! OPLOCK_BREAK (MS-SMB2 2.2.23-2.2.25): oplock and lease break
//! notifications, acknowledgments and responses.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::wire::{FileId, Reader, WriteExt};

/// Lease break notification Flags.
pub const LEASE_BREAK_ACK_REQUIRED: u32 = 0x0000_0001;

/// Oplock break notification, acknowledgment and response share one layout
/// (StructureSize 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OplockBreak {
    pub oplock_level: u8,
    pub file_id: FileId,
}

impl OplockBreak {
    fn decode_from(r: &mut Reader) -> Result<Self> {
        let oplock_level = r.u8("OplockLevel")?;
        r.skip(5, "Reserved")?;
        Ok(OplockBreak {
            oplock_level,
            file_id: r.file_id("FileId")?,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(24);
        out.put_u8(self.oplock_level);
        out.put_bytes(0, 5);
        out.put_file_id(self.file_id);
    }
}

/// Lease break notification (server to client, StructureSize 44).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseBreakNotification {
    /// Lease v2 epoch (zero for v1 leases).
    pub new_epoch: u16,
    pub flags: u32,
    pub lease_key: [u8; 16],
    pub current_lease_state: u32,
    pub new_lease_state: u32,
}

impl LeaseBreakNotification {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(44);
        out.put_u16_le(self.new_epoch);
        out.put_u32_le(self.flags);
        out.put_slice(&self.lease_key);
        out.put_u32_le(self.current_lease_state);
        out.put_u32_le(self.new_lease_state);
        out.put_bytes(0, 12); // BreakReason, AccessMaskHint, ShareMaskHint
    }
}

/// Lease break acknowledgment and response (StructureSize 36).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseBreakAck {
    pub flags: u32,
    pub lease_key: [u8; 16],
    pub lease_state: u32,
    pub lease_duration: u64,
}

impl LeaseBreakAck {
    fn decode_from(r: &mut Reader) -> Result<Self> {
        r.skip(2, "Reserved")?;
        Ok(LeaseBreakAck {
            flags: r.u32("Flags")?,
            lease_key: r.array("LeaseKey")?,
            lease_state: r.u32("LeaseState")?,
            lease_duration: r.u64("LeaseDuration")?,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(36);
        out.put_u16_le(0);
        out.put_u32_le(self.flags);
        out.put_slice(&self.lease_key);
        out.put_u32_le(self.lease_state);
        out.put_u64_le(self.lease_duration);
    }
}

/// An OPLOCK_BREAK request from the client: which kind, by StructureSize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakAcknowledgment {
    Oplock(OplockBreak),
    Lease(LeaseBreakAck),
}

impl BreakAcknowledgment {
    pub fn decode(body: Bytes) -> Result<Self> {
        let mut r = Reader::body(body);
        let size = r.u16("StructureSize")?;
        let fixed = match size {
            24 | 36 => usize::from(size),
            got => {
                return Err(DecodeError::StructureSize {
                    what: "OPLOCK_BREAK acknowledgment",
                    expected: 24,
                    got,
                })
            }
        };
        crate::wire::check_count(fixed, 1, r.buf().len(), "OPLOCK_BREAK acknowledgment")?;
        if size == 24 {
            OplockBreak::decode_from(&mut r).map(BreakAcknowledgment::Oplock)
        } else {
            LeaseBreakAck::decode_from(&mut r).map(BreakAcknowledgment::Lease)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oplock_ack_byte_image_and_round_trip() {
        let mut b = vec![24, 0, 1, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[7; 16]);
        let a = BreakAcknowledgment::decode(Bytes::from(b.clone())).unwrap();
        let BreakAcknowledgment::Oplock(o) = a else {
            panic!("not an oplock ack: {a:?}")
        };
        assert_eq!(o.oplock_level, 1);
        let mut e = BytesMut::new();
        o.encode(&mut e);
        assert_eq!(&e[..], &b[..]);
        assert!(BreakAcknowledgment::decode(Bytes::copy_from_slice(&b[..20])).is_err());
    }

    #[test]
    fn lease_ack_and_notification() {
        let ack = LeaseBreakAck {
            flags: 0,
            lease_key: [4; 16],
            lease_state: 1,
            lease_duration: 0,
        };
        let mut e = BytesMut::new();
        ack.encode(&mut e);
        assert_eq!(e.len(), 36);
        assert_eq!(
            BreakAcknowledgment::decode(e.freeze()).unwrap(),
            BreakAcknowledgment::Lease(ack)
        );
        assert!(BreakAcknowledgment::decode(Bytes::from_static(&[30, 0, 0, 0])).is_err());
        let mut e = BytesMut::new();
        LeaseBreakNotification {
            new_epoch: 3,
            flags: LEASE_BREAK_ACK_REQUIRED,
            lease_key: [1; 16],
            current_lease_state: 7,
            new_lease_state: 1,
        }
        .encode(&mut e);
        assert_eq!(e.len(), 44);
        assert_eq!(&e[0..8], &[44, 0, 3, 0, 1, 0, 0, 0]);
        assert_eq!(&e[24..32], &[7, 0, 0, 0, 1, 0, 0, 0]);
    }
}
