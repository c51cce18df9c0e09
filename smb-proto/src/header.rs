//! The 64-byte SMB2 packet header (MS-SMB2 2.2.1), sync and async forms,
//! and recognition of an SMB1 `SMB_COM_NEGOTIATE` for multi-protocol
//! negotiation (MS-SMB2 3.3.5.3).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::status::NtStatus;
use crate::wire::{Reader, HEADER_LEN};

pub const PROTOCOL_ID: [u8; 4] = [0xFE, b'S', b'M', b'B'];
pub const SMB1_PROTOCOL_ID: [u8; 4] = [0xFF, b'S', b'M', b'B'];
/// The transform header of encrypted messages (handled by the crypto layer).
pub const TRANSFORM_PROTOCOL_ID: [u8; 4] = [0xFD, b'S', b'M', b'B'];
/// The compression transform header.
pub const COMPRESSION_PROTOCOL_ID: [u8; 4] = [0xFC, b'S', b'M', b'B'];

/// Header flags (MS-SMB2 2.2.1.2).
pub mod flags {
    pub const SERVER_TO_REDIR: u32 = 0x0000_0001;
    pub const ASYNC_COMMAND: u32 = 0x0000_0002;
    pub const RELATED_OPERATIONS: u32 = 0x0000_0004;
    pub const SIGNED: u32 = 0x0000_0008;
    pub const PRIORITY_MASK: u32 = 0x0000_0070;
    pub const DFS_OPERATIONS: u32 = 0x1000_0000;
    pub const REPLAY_OPERATION: u32 = 0x2000_0000;
}

macro_rules! u16_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident = $v:expr,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($var,)*
            Unknown(u16),
        }

        impl From<u16> for $name {
            fn from(v: u16) -> Self {
                match v {
                    $($v => $name::$var,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for u16 {
            fn from(c: $name) -> u16 {
                match c {
                    $($name::$var => $v,)*
                    $name::Unknown(v) => v,
                }
            }
        }
    };
}

u16_enum! {
    /// SMB2 command codes (MS-SMB2 2.2.1.2).
    Command {
        Negotiate = 0x0000,
        SessionSetup = 0x0001,
        Logoff = 0x0002,
        TreeConnect = 0x0003,
        TreeDisconnect = 0x0004,
        Create = 0x0005,
        Close = 0x0006,
        Flush = 0x0007,
        Read = 0x0008,
        Write = 0x0009,
        Lock = 0x000A,
        Ioctl = 0x000B,
        Cancel = 0x000C,
        Echo = 0x000D,
        QueryDirectory = 0x000E,
        ChangeNotify = 0x000F,
        QueryInfo = 0x0010,
        SetInfo = 0x0011,
        OplockBreak = 0x0012,
    }
}

/// The last eight bytes before SessionId: a tree id (sync) or an async id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderId {
    Sync { process_id: u32, tree_id: u32 },
    Async { async_id: u64 },
}

/// One SMB2 header. `status` carries NTSTATUS in responses; in requests of
/// dialect 3.x the same four bytes are ChannelSequence + Reserved (see
/// [`Header::channel_sequence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub credit_charge: u16,
    pub status: NtStatus,
    pub command: Command,
    /// CreditRequest in requests, CreditResponse in responses.
    pub credits: u16,
    pub flags: u32,
    pub next_command: u32,
    pub message_id: u64,
    pub id: HeaderId,
    pub session_id: u64,
    pub signature: [u8; 16],
}

impl Header {
    /// A sync request header with everything else zero.
    pub fn request(command: Command, message_id: u64) -> Self {
        Header {
            credit_charge: 0,
            status: NtStatus::SUCCESS,
            command,
            credits: 0,
            flags: 0,
            next_command: 0,
            message_id,
            id: HeaderId::Sync {
                process_id: 0,
                tree_id: 0,
            },
            session_id: 0,
            signature: [0; 16],
        }
    }

    /// The response header for this request: same command, ids and credit
    /// charge, SERVER_TO_REDIR set, signature cleared, NextCommand zero.
    pub fn response(&self, status: NtStatus, credits: u16) -> Self {
        Header {
            status,
            credits,
            flags: (self.flags & (flags::ASYNC_COMMAND | flags::RELATED_OPERATIONS | flags::PRIORITY_MASK))
                | flags::SERVER_TO_REDIR,
            next_command: 0,
            signature: [0; 16],
            ..*self
        }
    }

    pub fn channel_sequence(&self) -> u16 {
        self.status.0 as u16
    }

    pub fn tree_id(&self) -> Option<u32> {
        match self.id {
            HeaderId::Sync { tree_id, .. } => Some(tree_id),
            HeaderId::Async { .. } => None,
        }
    }

    pub fn async_id(&self) -> Option<u64> {
        match self.id {
            HeaderId::Async { async_id } => Some(async_id),
            HeaderId::Sync { .. } => None,
        }
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Decode the header at the start of `msg`.
    pub fn decode(msg: &[u8]) -> Result<Header> {
        let head = msg.get(..HEADER_LEN).ok_or(DecodeError::Truncated {
            what: "SMB2 header",
            need: HEADER_LEN,
            have: msg.len(),
        })?;
        let mut r = Reader::new(Bytes::copy_from_slice(head));
        let proto = r.array::<4>("ProtocolId")?;
        if proto != PROTOCOL_ID {
            return Err(DecodeError::ProtocolId(proto));
        }
        r.structure_size(64, "SMB2 header")?;
        let credit_charge = r.u16("CreditCharge")?;
        let status = NtStatus(r.u32("Status")?);
        let command = Command::from(r.u16("Command")?);
        let credits = r.u16("CreditRequest")?;
        let flags = r.u32("Flags")?;
        let next_command = r.u32("NextCommand")?;
        let message_id = r.u64("MessageId")?;
        let id = if flags & flags::ASYNC_COMMAND != 0 {
            HeaderId::Async {
                async_id: r.u64("AsyncId")?,
            }
        } else {
            HeaderId::Sync {
                process_id: r.u32("Reserved")?,
                tree_id: r.u32("TreeId")?,
            }
        };
        Ok(Header {
            credit_charge,
            status,
            command,
            credits,
            flags,
            next_command,
            message_id,
            id,
            session_id: r.u64("SessionId")?,
            signature: r.array("Signature")?,
        })
    }

    /// Append the 64-byte header.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&PROTOCOL_ID);
        out.put_u16_le(64);
        out.put_u16_le(self.credit_charge);
        out.put_u32_le(self.status.0);
        out.put_u16_le(self.command.into());
        out.put_u16_le(self.credits);
        let async_flag = match self.id {
            HeaderId::Async { .. } => flags::ASYNC_COMMAND,
            HeaderId::Sync { .. } => 0,
        };
        out.put_u32_le((self.flags & !flags::ASYNC_COMMAND) | async_flag);
        out.put_u32_le(self.next_command);
        out.put_u64_le(self.message_id);
        match self.id {
            HeaderId::Sync { process_id, tree_id } => {
                out.put_u32_le(process_id);
                out.put_u32_le(tree_id);
            }
            HeaderId::Async { async_id } => out.put_u64_le(async_id),
        }
        out.put_u64_le(self.session_id);
        out.put_slice(&self.signature);
    }
}

/// Byte range of the Signature field within a header.
pub const SIGNATURE_RANGE: std::ops::Range<usize> = 48..64;
/// Byte offset of the Flags field within a header.
pub const FLAGS_OFFSET: usize = 16;
/// Byte offset of the NextCommand field within a header.
pub const NEXT_COMMAND_OFFSET: usize = 20;

/// What kind of message a frame holds, from its first four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Smb2,
    Smb1,
    Transform,
    Compressed,
}

pub fn message_kind(msg: &[u8]) -> Result<MessageKind> {
    let p: [u8; 4] = msg
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::Truncated {
            what: "ProtocolId",
            need: 4,
            have: msg.len(),
        })?;
    match p {
        PROTOCOL_ID => Ok(MessageKind::Smb2),
        SMB1_PROTOCOL_ID => Ok(MessageKind::Smb1),
        TRANSFORM_PROTOCOL_ID => Ok(MessageKind::Transform),
        COMPRESSION_PROTOCOL_ID => Ok(MessageKind::Compressed),
        other => Err(DecodeError::ProtocolId(other)),
    }
}

/// SMB1 command code of SMB_COM_NEGOTIATE.
pub const SMB1_COM_NEGOTIATE: u8 = 0x72;
/// Dialect string asking for SMB 2.0.2 only.
pub const SMB1_DIALECT_2_002: &str = "SMB 2.002";
/// Dialect string asking for SMB 2.1 or later (answered with 0x02FF).
pub const SMB1_DIALECT_2_WILDCARD: &str = "SMB 2.???";

/// The part of an SMB1 negotiate request a server needs: the offered
/// dialect strings (MS-CIFS 2.2.4.52.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smb1Negotiate {
    pub dialects: Vec<String>,
}

impl Smb1Negotiate {
    /// Decode an SMB1 message (starting at 0xFF 'S' 'M' 'B') that must be
    /// SMB_COM_NEGOTIATE.
    pub fn decode(msg: &[u8]) -> Result<Smb1Negotiate> {
        let mut r = Reader::new(Bytes::copy_from_slice(msg));
        let proto = r.array::<4>("SMB1 Protocol")?;
        if proto != SMB1_PROTOCOL_ID {
            return Err(DecodeError::ProtocolId(proto));
        }
        let cmd = r.u8("SMB1 Command")?;
        if cmd != SMB1_COM_NEGOTIATE {
            return Err(DecodeError::InvalidValue {
                what: "SMB1 Command",
                value: u64::from(cmd),
            });
        }
        // Status, Flags, Flags2, PIDHigh, SecurityFeatures, Reserved, TID,
        // PIDLow, UID, MID: 27 bytes.
        r.skip(27, "SMB1 header")?;
        let words = r.u8("WordCount")?;
        r.skip(usize::from(words) * 2, "SMB1 parameter words")?;
        let count = usize::from(r.u16("ByteCount")?);
        let data = r.take(count, "SMB1 dialect bytes")?;
        let mut dialects = Vec::new();
        let mut rest = data;
        while let Some((&fmt, tail)) = rest.split_first() {
            if fmt != 0x02 {
                return Err(DecodeError::InvalidValue {
                    what: "SMB1 BufferFormat",
                    value: u64::from(fmt),
                });
            }
            let nul = tail.iter().position(|&b| b == 0).ok_or(DecodeError::Truncated {
                what: "SMB1 dialect string",
                need: tail.len() + 1,
                have: tail.len(),
            })?;
            dialects.push(String::from_utf8_lossy(&tail[..nul]).into_owned());
            rest = &tail[nul + 1..];
        }
        Ok(Smb1Negotiate { dialects })
    }

    /// Which SMB2 dialect the server answers with: 0x02FF for "SMB 2.???",
    /// 0x0202 for "SMB 2.002" alone, `None` when neither was offered.
    pub fn smb2_dialect(&self) -> Option<u16> {
        if self.dialects.iter().any(|d| d == SMB1_DIALECT_2_WILDCARD) {
            Some(crate::negotiate::dialect::SMB2_WILDCARD)
        } else if self.dialects.iter().any(|d| d == SMB1_DIALECT_2_002) {
            Some(crate::negotiate::dialect::SMB2_0_2)
        } else {
            None
        }
    }

    /// Build an SMB1 negotiate request offering `dialects` (for tests and
    /// clients).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&SMB1_PROTOCOL_ID);
        out.put_u8(SMB1_COM_NEGOTIATE);
        out.put_bytes(0, 4); // Status
        out.put_u8(0x18); // Flags: canonical paths, case insensitive
        out.put_u16_le(0xC853); // Flags2 as Windows sends it
        out.put_bytes(0, 20);
        out.put_u8(0);
        let len: usize = self.dialects.iter().map(|d| d.len() + 2).sum();
        out.put_u16_le(len as u16);
        for d in &self.dialects {
            out.put_u8(2);
            out.put_slice(d.as_bytes());
            out.put_u8(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            credit_charge: 1,
            status: NtStatus(0x0000_0002),
            command: Command::Create,
            credits: 31,
            flags: flags::SIGNED | flags::RELATED_OPERATIONS,
            next_command: 0x98,
            message_id: 0x1122_3344_5566_7788,
            id: HeaderId::Sync {
                process_id: 0xFEFF,
                tree_id: 5,
            },
            session_id: 0xAABB_CCDD_0000_0001,
            signature: [9; 16],
        }
    }

    #[test]
    fn sync_header_byte_image() {
        let mut b = BytesMut::new();
        sample().encode(&mut b);
        let mut want = vec![
            0xFE, b'S', b'M', b'B', 64, 0, 1, 0, 2, 0, 0, 0, 5, 0, 31, 0, 0x0C, 0, 0, 0,
        ];
        want.extend_from_slice(&[0x98, 0, 0, 0]);
        want.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        want.extend_from_slice(&[0xFF, 0xFE, 0, 0, 5, 0, 0, 0]);
        want.extend_from_slice(&0xAABB_CCDD_0000_0001u64.to_le_bytes());
        want.extend_from_slice(&[9; 16]);
        assert_eq!(&b[..], &want[..]);
        let h = Header::decode(&want).unwrap();
        assert_eq!(h, sample());
        assert_eq!(h.channel_sequence(), 2);
        assert_eq!(h.tree_id(), Some(5));
    }

    #[test]
    fn async_header_round_trip_and_response() {
        let mut h = sample();
        h.id = HeaderId::Async { async_id: 77 };
        let mut b = BytesMut::new();
        h.encode(&mut b);
        let d = Header::decode(&b).unwrap();
        assert!(d.has(flags::ASYNC_COMMAND));
        assert_eq!(d.async_id(), Some(77));
        let r = d.response(NtStatus::PENDING, 1);
        assert!(r.has(flags::SERVER_TO_REDIR) && !r.has(flags::SIGNED) && r.has(flags::ASYNC_COMMAND));
        assert_eq!(r.next_command, 0);
        assert_eq!(r.message_id, h.message_id);
    }

    #[test]
    fn bad_headers_are_rejected() {
        let mut b = BytesMut::new();
        sample().encode(&mut b);
        assert!(Header::decode(&b[..63]).is_err());
        let mut bad = b.to_vec();
        bad[0] = 0xFF;
        assert!(matches!(Header::decode(&bad), Err(DecodeError::ProtocolId(_))));
        let mut bad = b.to_vec();
        bad[4] = 65;
        assert!(matches!(
            Header::decode(&bad),
            Err(DecodeError::StructureSize { .. })
        ));
        assert_eq!(Command::from(0x99), Command::Unknown(0x99));
        assert_eq!(u16::from(Command::OplockBreak), 0x12);
    }

    #[test]
    fn smb1_negotiate_dialects() {
        let n = Smb1Negotiate {
            dialects: vec!["NT LM 0.12".into(), "SMB 2.002".into(), "SMB 2.???".into()],
        };
        let mut b = BytesMut::new();
        n.encode(&mut b);
        assert_eq!(b.len(), 32 + 1 + 2 + 12 + 11 + 11);
        assert_eq!(message_kind(&b).unwrap(), MessageKind::Smb1);
        let d = Smb1Negotiate::decode(&b).unwrap();
        assert_eq!(d, n);
        assert_eq!(d.smb2_dialect(), Some(0x02FF));
        let only = Smb1Negotiate {
            dialects: vec!["SMB 2.002".into()],
        };
        assert_eq!(only.smb2_dialect(), Some(0x0202));
        // Unterminated string and a bad buffer format.
        let mut bad = b.to_vec();
        bad.pop();
        assert!(Smb1Negotiate::decode(&bad).is_err());
        let mut bad = b.to_vec();
        bad[35] = 3;
        assert!(Smb1Negotiate::decode(&bad).is_err());
    }
}
