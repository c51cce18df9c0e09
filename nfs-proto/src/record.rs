//! RPC record marking over TCP (RFC 5531 section 11): each record is one or
//! more fragments, each behind a four-byte header whose top bit marks the
//! last fragment and whose other 31 bits give the fragment's length.

use bytes::{Buf, Bytes, BytesMut};

const LAST: u32 = 0x8000_0000;

/// The record stream broke a rule; the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// The record would be larger than the configured maximum.
    TooLarge { max: usize },
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::TooLarge { max } => write!(f, "RPC record larger than {max} bytes"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Reassembles records from bytes as they arrive. Sans-IO: the caller reads
/// into [`RecordReader::buffer`] and then takes records out.
#[derive(Debug)]
pub struct RecordReader {
    max: usize,
    buf: BytesMut,
    /// Fragments of the record being assembled (only for multi-fragment records).
    partial: BytesMut,
}

impl RecordReader {
    pub fn new(max_record: usize) -> Self {
        RecordReader {
            max: max_record,
            buf: BytesMut::new(),
            partial: BytesMut::new(),
        }
    }

    /// Bound each record from now on (a client trusted with more, or less).
    pub fn set_max(&mut self, max_record: usize) {
        self.max = max_record;
    }

    /// The record in progress, once its first fragment's header has
    /// arrived: how long it is so far (the fragments taken and the one
    /// arriving) and its first bytes that have arrived.
    pub fn in_progress(&self) -> Option<(usize, &[u8])> {
        let (len, _) = self.header()?;
        let start = if self.partial.is_empty() {
            &self.buf[4..]
        } else {
            &self.partial[..]
        };
        Some((self.partial.len().saturating_add(len), start))
    }

    /// Bytes read from the connection go here.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// How many more bytes the record in progress needs at least (to size reads).
    pub fn wanted(&self) -> usize {
        match self.header() {
            Some((len, _)) => (len + 4).saturating_sub(self.buf.len()).max(1),
            None => 4usize.saturating_sub(self.buf.len()).max(1),
        }
    }

    fn header(&self) -> Option<(usize, bool)> {
        let h = self.buf.get(..4)?;
        let v = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        Some(((v & !LAST) as usize, v & LAST != 0))
    }

    /// The record in progress, when it is a single fragment of at least
    /// `min` bytes that has not all arrived: its length and the part of it
    /// that has, taken out of the buffer. The caller reads the rest itself.
    pub fn take_partial(&mut self, min: usize) -> Result<Option<(usize, BytesMut)>, RecordError> {
        match self.header() {
            Some((len, true)) if self.partial.is_empty() && len >= min && self.buf.len() < 4 + len => {
                if len > self.max {
                    return Err(RecordError::TooLarge { max: self.max });
                }
                self.buf.advance(4);
                Ok(Some((len, self.buf.split())))
            }
            _ => Ok(None),
        }
    }

    /// The next whole record, if one has arrived. A single-fragment record is
    /// a slice of the read buffer (no copy).
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordError> {
        loop {
            let Some((len, last)) = self.header() else {
                return Ok(None);
            };
            if self.partial.len().saturating_add(len) > self.max {
                return Err(RecordError::TooLarge { max: self.max });
            }
            if self.buf.len() < 4 + len {
                return Ok(None);
            }
            self.buf.advance(4);
            let frag = self.buf.split_to(len);
            if !last {
                self.partial.extend_from_slice(&frag);
                continue;
            }
            if self.partial.is_empty() {
                return Ok(Some(frag.freeze()));
            }
            self.partial.extend_from_slice(&frag);
            return Ok(Some(std::mem::take(&mut self.partial).freeze()));
        }
    }
}

/// The record mark for a single-fragment record of `len` bytes.
pub fn record_mark(len: usize) -> [u8; 4] {
    (LAST | (len as u32 & !LAST)).to_be_bytes()
}

/// Frame `payload` as one record, in fragments of at most `max_fragment` bytes.
pub fn frame(payload: &[u8], max_fragment: usize) -> Vec<u8> {
    let max_fragment = max_fragment.clamp(1, (!LAST) as usize);
    let mut out = Vec::with_capacity(payload.len() + 4);
    let mut chunks = payload.chunks(max_fragment).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&record_mark(0));
    }
    while let Some(c) = chunks.next() {
        let mut h = c.len() as u32;
        if chunks.peek().is_none() {
            h |= LAST;
        }
        out.extend_from_slice(&h.to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_single_fragment_record_is_handed_over_with_what_has_arrived() {
        let mut r = RecordReader::new(100);
        r.buffer().extend_from_slice(&record_mark(10));
        r.buffer().extend_from_slice(b"abc");
        assert!(r.take_partial(11).unwrap().is_none());
        let (len, head) = r.take_partial(10).unwrap().unwrap();
        assert_eq!((len, &head[..]), (10, &b"abc"[..]));
        assert!(r.buffer().is_empty());
        // Too large is refused; fragments of a longer record are assembled here.
        r.buffer().extend_from_slice(&record_mark(101));
        assert!(r.take_partial(1).is_err());
        let mut r = RecordReader::new(100);
        r.buffer().extend_from_slice(&frame(&[1u8; 20], 8)[..14]);
        assert!(r.take_partial(1).unwrap().is_none());
    }

    fn feed(r: &mut RecordReader, bytes: &[u8], step: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        for c in bytes.chunks(step) {
            r.buffer().extend_from_slice(c);
            while let Some(rec) = r.next_record().unwrap() {
                out.push(rec);
            }
        }
        out
    }

    #[test]
    fn single_and_multi_fragment_records_in_any_chunking() {
        let a: Vec<u8> = (0..100u8).collect();
        let b: Vec<u8> = (0..37u8).rev().collect();
        let mut stream = frame(&a, 1000);
        stream.extend(frame(&b, 10));
        stream.extend(frame(&[], 10));
        for step in [1, 3, 4, 7, 64, 1000] {
            let mut r = RecordReader::new(1 << 20);
            let got = feed(&mut r, &stream, step);
            assert_eq!(
                got,
                vec![Bytes::from(a.clone()), Bytes::from(b.clone()), Bytes::new()]
            );
        }
    }

    #[test]
    fn a_raised_limit_lets_a_record_through_that_the_first_one_refused() {
        let mut stream = record_mark(1000).to_vec();
        stream.extend_from_slice(b"call");
        let mut r = RecordReader::new(100);
        r.buffer().extend_from_slice(&stream);
        assert_eq!(r.in_progress(), Some((1000, &b"call"[..])));
        assert_eq!(r.next_record(), Err(RecordError::TooLarge { max: 100 }));
        r.set_max(1000);
        assert_eq!(r.next_record(), Ok(None));
        // Fragments count from the record's start.
        let mut r = RecordReader::new(1000);
        r.buffer().extend_from_slice(&frame(&[7u8; 150], 60));
        r.buffer().truncate(4 + 60 + 4 + 10);
        let _ = r.next_record();
        assert_eq!(r.in_progress(), Some((120, &[7u8; 60][..])));
    }

    #[test]
    fn oversized_records_are_refused_before_they_arrive() {
        let mut r = RecordReader::new(100);
        r.buffer().extend_from_slice(&record_mark(101));
        assert_eq!(r.next_record(), Err(RecordError::TooLarge { max: 100 }));
        // Over the limit only once fragments add up.
        let mut r = RecordReader::new(100);
        let stream = frame(&[0u8; 150], 60);
        r.buffer().extend_from_slice(&stream);
        assert_eq!(r.next_record(), Err(RecordError::TooLarge { max: 100 }));
    }

    #[test]
    fn wanted_sizes_reads() {
        let mut r = RecordReader::new(1 << 20);
        assert_eq!(r.wanted(), 4);
        r.buffer().extend_from_slice(&record_mark(1000));
        assert_eq!(r.wanted(), 1000);
    }
}
