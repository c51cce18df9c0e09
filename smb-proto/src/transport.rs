//! Direct TCP transport (MS-SMB2 2.1): each message is preceded by a zero
//! byte and a 24-bit big-endian length.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::DecodeError;

/// Largest length the 24-bit field can carry.
pub const MAX_FRAME: usize = 0x00FF_FFFF;

/// The four-byte header for a message of `len` bytes (`len` is clamped to
/// [`MAX_FRAME`]; callers never build larger messages).
pub fn frame_header(len: usize) -> [u8; 4] {
    let l = len.min(MAX_FRAME) as u32;
    let b = l.to_be_bytes();
    [0, b[1], b[2], b[3]]
}

/// Reassembles frames from bytes as they arrive. Sans-IO: the caller
/// appends to [`FrameReader::buffer`] and takes frames out.
#[derive(Debug)]
pub struct FrameReader {
    max: usize,
    buf: BytesMut,
}

impl FrameReader {
    /// `max_frame` bounds each message (without the 4-byte header).
    pub fn new(max_frame: usize) -> Self {
        FrameReader {
            max: max_frame.min(MAX_FRAME),
            buf: BytesMut::new(),
        }
    }

    /// Bound each message from now on (a client trusted with more, or less).
    pub fn set_max(&mut self, max_frame: usize) {
        self.max = max_frame.min(MAX_FRAME);
    }

    /// Bytes read from the connection go here.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// How many more bytes the frame in progress needs at least.
    pub fn wanted(&self) -> usize {
        match self.header() {
            Ok(Some(len)) => (len + 4).saturating_sub(self.buf.len()).max(1),
            _ => 4usize.saturating_sub(self.buf.len()).max(1),
        }
    }

    fn header(&self) -> Result<Option<usize>, DecodeError> {
        let Some(h) = self.buf.get(..4) else {
            return Ok(None);
        };
        if h[0] != 0 {
            return Err(DecodeError::InvalidValue {
                what: "transport header zero byte",
                value: u64::from(h[0]),
            });
        }
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        if len > self.max {
            return Err(DecodeError::TooLarge {
                what: "transport frame",
                len,
                max: self.max,
            });
        }
        Ok(Some(len))
    }

    /// The message in progress, once its header has arrived (and is
    /// valid): its length and its first bytes that have arrived.
    pub fn in_progress(&self) -> Option<(usize, &[u8])> {
        let len = self.header().ok()??;
        Some((len, &self.buf[4..]))
    }

    /// The message in progress, when its length is known to be at least
    /// `min` and it has not all arrived: its length and the part of it that
    /// has, taken out of the buffer. The caller reads the rest itself.
    pub fn take_partial(&mut self, min: usize) -> Result<Option<(usize, BytesMut)>, DecodeError> {
        match self.header()? {
            Some(len) if len >= min && self.buf.len() < 4 + len => {
                self.buf.advance(4);
                Ok(Some((len, self.buf.split())))
            }
            _ => Ok(None),
        }
    }

    /// The next whole message, as a slice of the read buffer (no copy). An
    /// error means the stream is unusable and the connection must close.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, DecodeError> {
        let Some(len) = self.header()? else {
            return Ok(None);
        };
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_limit_lets_a_frame_through_that_the_first_one_refused() {
        let mut r = FrameReader::new(100);
        r.buffer().extend_from_slice(&frame_header(1000));
        assert!(matches!(r.next_frame(), Err(DecodeError::TooLarge { .. })));
        r.set_max(1000);
        assert_eq!(r.next_frame().unwrap(), None);
    }

    #[test]
    fn frames_come_out_whole_in_any_chunking() {
        let mut stream = Vec::new();
        for m in [&b"hello"[..], b"", &[7u8; 300][..]] {
            stream.extend_from_slice(&frame_header(m.len()));
            stream.extend_from_slice(m);
        }
        for step in [1, 2, 5, 64, 1000] {
            let mut r = FrameReader::new(1 << 20);
            let mut got = Vec::new();
            for c in stream.chunks(step) {
                r.buffer().extend_from_slice(c);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got.len(), 3);
            assert_eq!(&got[0][..], b"hello");
            assert!(got[1].is_empty());
            assert_eq!(got[2].len(), 300);
        }
    }

    #[test]
    fn a_large_message_in_progress_is_handed_over_with_what_has_arrived() {
        let mut r = FrameReader::new(1 << 20);
        r.buffer().extend_from_slice(&frame_header(10));
        r.buffer().extend_from_slice(b"abc");
        assert!(r.take_partial(11).unwrap().is_none());
        let (len, head) = r.take_partial(10).unwrap().unwrap();
        assert_eq!((len, &head[..]), (10, &b"abc"[..]));
        assert!(r.buffer().is_empty());
        // A whole message is for next_frame.
        r.buffer().extend_from_slice(&frame_header(2));
        r.buffer().extend_from_slice(b"hi");
        assert!(r.take_partial(1).unwrap().is_none());
        assert_eq!(&r.next_frame().unwrap().unwrap()[..], b"hi");
    }

    #[test]
    fn header_layout_and_oversize_and_bad_first_byte() {
        assert_eq!(frame_header(0x012345), [0, 0x01, 0x23, 0x45]);
        let mut r = FrameReader::new(100);
        r.buffer().extend_from_slice(&[0, 0, 0, 101]);
        assert!(matches!(
            r.next_frame(),
            Err(DecodeError::TooLarge { len: 101, .. })
        ));
        let mut r = FrameReader::new(100);
        r.buffer().extend_from_slice(&[0, 0, 0]);
        assert_eq!(r.wanted(), 1);
        assert!(r.next_frame().unwrap().is_none());
        r.buffer().extend_from_slice(&[10]);
        assert_eq!(r.wanted(), 10);
        let mut r = FrameReader::new(100);
        r.buffer().extend_from_slice(&[0xfe, 0, 0, 1]);
        assert!(r.next_frame().is_err());
    }
}
