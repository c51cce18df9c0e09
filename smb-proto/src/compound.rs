//! Compounded messages (MS-SMB2 3.2.4.1.4, 3.3.5.2.7): several SMB2
//! messages in one transport frame, each header's NextCommand giving the
//! 8-byte aligned offset of the next.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::header::{Header, NEXT_COMMAND_OFFSET};
use crate::wire::{pad, WriteExt, HEADER_LEN};

/// One message of a chain: its header, the whole message (header, body and
/// any padding up to the next one) and the body alone.
#[derive(Debug, Clone)]
pub struct Message {
    pub header: Header,
    pub bytes: Bytes,
    /// Where `bytes` starts in the frame.
    pub offset: usize,
}

impl Message {
    /// The body after the 64-byte header.
    pub fn body(&self) -> Bytes {
        self.bytes.slice(HEADER_LEN.min(self.bytes.len())..)
    }
}

/// Iterates the messages of one frame. After the first error it yields
/// nothing more: a broken chain cannot be resynchronised.
#[derive(Debug, Clone)]
pub struct Chain {
    frame: Bytes,
    pos: Option<usize>,
}

/// Walk the compounded messages of `frame`.
pub fn chain(frame: Bytes) -> Chain {
    Chain { frame, pos: Some(0) }
}

impl Chain {
    fn step(&mut self, pos: usize) -> Result<Message> {
        let rest = self.frame.get(pos..).unwrap_or_default();
        let header = Header::decode(rest)?;
        let next = header.next_command as usize;
        let end = if next == 0 {
            self.pos = None;
            self.frame.len()
        } else {
            let bad = |what| DecodeError::OutOfBounds {
                what,
                offset: next as u64,
                len: 0,
                size: rest.len(),
            };
            if next % 8 != 0 {
                return Err(DecodeError::Misaligned {
                    what: "NextCommand",
                    offset: next as u64,
                    align: 8,
                });
            }
            if next < HEADER_LEN {
                return Err(bad("NextCommand shorter than a header"));
            }
            // The next message must hold at least a header.
            let end = pos.checked_add(next).ok_or(bad("NextCommand"))?;
            if end.checked_add(HEADER_LEN).is_none_or(|e| e > self.frame.len()) {
                return Err(bad("NextCommand past the frame"));
            }
            self.pos = Some(end);
            end
        };
        Ok(Message {
            header,
            bytes: self.frame.slice(pos..end),
            offset: pos,
        })
    }
}

impl Iterator for Chain {
    type Item = Result<Message>;

    fn next(&mut self) -> Option<Self::Item> {
        let pos = self.pos?;
        let r = self.step(pos);
        if r.is_err() {
            self.pos = None;
        }
        Some(r)
    }
}

/// Builds one frame's worth of responses: each new message starts on an
/// 8-byte boundary and the previous header's NextCommand points to it.
#[derive(Debug, Default)]
pub struct ResponseChain {
    buf: BytesMut,
    starts: Vec<usize>,
}

impl ResponseChain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append one response; `body` writes the body after the header (its
    /// wire offsets count from the header, as every encoder in this crate
    /// assumes). NextCommand in `header` is ignored and filled in here.
    pub fn push(&mut self, header: &Header, body: impl FnOnce(&mut BytesMut)) {
        if let Some(&prev) = self.starts.last() {
            self.buf.pad_to(prev, 8);
            let next = (self.buf.len() - prev) as u32;
            self.buf.patch_u32(prev + NEXT_COMMAND_OFFSET, next);
        }
        self.starts.push(self.buf.len());
        let h = Header {
            next_command: 0,
            ..*header
        };
        h.encode(&mut self.buf);
        body(&mut self.buf);
    }

    /// Append a response whose body is already encoded.
    pub fn push_encoded(&mut self, header: &Header, body: &[u8]) {
        self.push(header, |out| out.put_slice(body));
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The frame and each message's byte range in it (padding included,
    /// as it is signed with the message it follows).
    pub fn finish(self) -> (BytesMut, Vec<Range<usize>>) {
        let mut ranges = Vec::with_capacity(self.starts.len());
        for (i, &s) in self.starts.iter().enumerate() {
            let end = self.starts.get(i + 1).copied().unwrap_or(self.buf.len());
            ranges.push(s..end);
        }
        (self.buf, ranges)
    }
}

/// Padding after a message of `len` bytes when another follows.
pub fn padding(len: usize) -> usize {
    pad(len, 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{flags, Command};
    use crate::status::NtStatus;

    fn build(bodies: &[&[u8]]) -> (BytesMut, Vec<Range<usize>>) {
        let mut c = ResponseChain::new();
        for (i, b) in bodies.iter().enumerate() {
            let mut h = Header::request(Command::Echo, i as u64).response(NtStatus::SUCCESS, 1);
            if i > 0 {
                h.flags |= flags::RELATED_OPERATIONS;
            }
            c.push_encoded(&h, b);
        }
        c.finish()
    }

    #[test]
    fn chains_are_padded_and_linked_and_walk_back() {
        let (frame, ranges) = build(&[&[4, 0, 0, 0], &[1, 2, 3, 4, 5, 6, 7, 8, 9], &[4, 0, 0, 0]]);
        assert_eq!(ranges, vec![0..72, 72..152, 152..220]);
        let h0 = Header::decode(&frame).unwrap();
        assert_eq!(h0.next_command, 72);
        let msgs: Vec<_> = chain(frame.freeze()).collect::<Result<_>>().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1].offset, 72);
        assert_eq!(&msgs[1].body()[..9], &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(msgs[1].header.message_id, 1);
        assert_eq!(msgs[2].header.next_command, 0);
        assert_eq!(msgs[2].body().len(), 4);
    }

    #[test]
    fn hostile_next_command_values_are_errors() {
        let (frame, _) = build(&[&[4, 0, 0, 0], &[4, 0, 0, 0]]);
        for bad in [0x44u32, 8, 0x48 + 8, u32::MAX - 7, 0x7FFF_FFF8] {
            let mut f = frame.to_vec();
            f[NEXT_COMMAND_OFFSET..NEXT_COMMAND_OFFSET + 4].copy_from_slice(&bad.to_le_bytes());
            let out: Vec<_> = chain(Bytes::from(f)).collect();
            assert!(out.iter().any(|m| m.is_err()), "NextCommand {bad:#x} accepted");
            assert!(out.len() <= 2);
        }
        assert!(chain(Bytes::from_static(&[0xFE, b'S'])).next().unwrap().is_err());
    }
}
