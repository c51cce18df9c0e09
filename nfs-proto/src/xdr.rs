//! XDR (RFC 4506): a bounded decoder over one received record and an encoder
//! into a growable buffer.
//!
//! Every variable-length item is checked against both its own maximum and the
//! bytes actually left before anything is allocated for it, so a claimed
//! length can never make the decoder allocate or read more than it was given.

use bytes::{BufMut, Bytes, BytesMut};

/// Why a message could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdrError {
    /// The input ended inside an item.
    Truncated,
    /// A length is larger than the item's maximum.
    TooLong,
    /// A discriminant (enum, union arm or bool) has no meaning.
    BadValue,
    /// Bytes were left over after the last item.
    Trailing,
}

impl std::fmt::Display for XdrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdrError::Truncated => "truncated XDR input",
            XdrError::TooLong => "XDR item longer than its maximum",
            XdrError::BadValue => "invalid XDR discriminant",
            XdrError::Trailing => "trailing bytes after XDR message",
        })
    }
}

impl std::error::Error for XdrError {}

pub type Result<T, E = XdrError> = std::result::Result<T, E>;

/// Padding needed after `len` bytes to reach a multiple of four.
pub const fn pad(len: usize) -> usize {
    (4 - (len & 3)) & 3
}

/// Reads XDR items from one message. Opaque data comes out as slices of the
/// input (no copy).
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: Bytes,
    pos: usize,
}

impl Decoder {
    pub fn new(buf: Bytes) -> Self {
        Decoder { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Everything not read yet, without consuming it.
    pub fn rest(&self) -> Bytes {
        self.buf.slice(self.pos.min(self.buf.len())..)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(XdrError::Trailing)
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if n > self.remaining() {
            return Err(XdrError::Truncated);
        }
        let s = self.buf.get(self.pos..self.pos + n).ok_or(XdrError::Truncated)?;
        self.pos += n;
        Ok(s)
    }

    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(((self.u32()? as u64) << 32) | self.u32()? as u64)
    }

    pub fn bool(&mut self) -> Result<bool> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(XdrError::BadValue),
        }
    }

    /// Fixed-length opaque data of `n` bytes (plus padding).
    pub fn fixed(&mut self, n: usize) -> Result<Bytes> {
        let total = n.checked_add(pad(n)).ok_or(XdrError::TooLong)?;
        if total > self.remaining() {
            return Err(XdrError::Truncated);
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += total;
        Ok(out)
    }

    /// Variable-length opaque data of at most `max` bytes.
    pub fn opaque(&mut self, max: usize) -> Result<Bytes> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(XdrError::TooLong);
        }
        self.fixed(len)
    }

    /// The element count of a variable-length array of at most `max`
    /// elements, each taking at least `min_size` bytes on the wire: checked
    /// against the input left, so callers may reserve that many.
    pub fn count(&mut self, max: usize, min_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(XdrError::TooLong);
        }
        if n.saturating_mul(min_size.max(1)) > self.remaining() {
            return Err(XdrError::Truncated);
        }
        Ok(n)
    }
}

/// Writes XDR items into a buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: BytesMut,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Encoder {
            buf: BytesMut::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.u32(v as u32);
    }

    /// Fixed-length opaque data, padded.
    pub fn fixed(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
        self.buf.put_bytes(0, pad(b.len()));
    }

    /// Variable-length opaque data: length, bytes, padding.
    pub fn opaque(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.fixed(b);
    }

    /// Overwrite a u32 written earlier at byte `at` (for lengths known late).
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(s) = self.buf.get_mut(at..at + 4) {
            s.copy_from_slice(&v.to_be_bytes());
        }
    }

    pub fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }

    pub fn into_inner(self) -> BytesMut {
        self.buf
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
}

/// A type with an XDR encoding.
pub trait Xdr: Sized {
    fn encode(&self, e: &mut Encoder);
    fn decode(d: &mut Decoder) -> Result<Self>;

    /// Encode into a fresh buffer.
    fn to_bytes(&self) -> Bytes {
        let mut e = Encoder::new();
        self.encode(&mut e);
        e.into_bytes()
    }

    /// Decode a whole message: trailing bytes are an error.
    fn from_bytes(b: Bytes) -> Result<Self> {
        let mut d = Decoder::new(b);
        let v = Self::decode(&mut d)?;
        d.finish()?;
        Ok(v)
    }
}

impl Xdr for u32 {
    fn encode(&self, e: &mut Encoder) {
        e.u32(*self)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        d.u32()
    }
}

impl Xdr for i32 {
    fn encode(&self, e: &mut Encoder) {
        e.u32(*self as u32)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(d.u32()? as i32)
    }
}

impl Xdr for u64 {
    fn encode(&self, e: &mut Encoder) {
        e.u64(*self)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        d.u64()
    }
}

impl Xdr for bool {
    fn encode(&self, e: &mut Encoder) {
        e.bool(*self)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        d.bool()
    }
}

impl Xdr for () {
    fn encode(&self, _: &mut Encoder) {}
    fn decode(_: &mut Decoder) -> Result<Self> {
        Ok(())
    }
}

/// XDR optional data (`*T`, or a `bool`-switched union with one arm).
impl<T: Xdr> Xdr for Option<T> {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Some(v) => {
                e.bool(true);
                v.encode(e);
            }
            None => e.bool(false),
        }
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        if d.bool()? {
            Ok(Some(T::decode(d)?))
        } else {
            Ok(None)
        }
    }
}

/// Fixed-size opaque data (`opaque x[N]`).
impl<const N: usize> Xdr for [u8; N] {
    fn encode(&self, e: &mut Encoder) {
        e.fixed(self)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        let b = d.fixed(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&b);
        Ok(out)
    }
}

/// Variable-length opaque data or string of at most `MAX` bytes, kept as a
/// slice of the received message.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Opaque<const MAX: usize>(pub Bytes);

impl<const MAX: usize> Opaque<MAX> {
    pub fn new(b: impl Into<Bytes>) -> Self {
        Opaque(b.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> std::fmt::Debug for Opaque<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) if self.0.len() <= 64 => write!(f, "{s:?}"),
            _ => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}

impl<const MAX: usize> Xdr for Opaque<MAX> {
    fn encode(&self, e: &mut Encoder) {
        e.opaque(&self.0)
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(Opaque(d.opaque(MAX)?))
    }
}

/// A variable-length array of at most `MAX` elements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List<T, const MAX: usize>(pub Vec<T>);

impl<T: Xdr, const MAX: usize> Xdr for List<T, MAX> {
    fn encode(&self, e: &mut Encoder) {
        e.u32(self.0.len() as u32);
        for v in &self.0 {
            v.encode(e);
        }
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        // Every XDR item takes at least four bytes.
        let n = d.count(MAX, 4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(T::decode(d)?);
        }
        Ok(List(out))
    }
}

/// Encode an XDR linked list (`*entry` with a `next` pointer in each entry):
/// each element preceded by TRUE, the end marked by FALSE.
pub fn encode_linked<T: Xdr>(e: &mut Encoder, items: &[T]) {
    for it in items {
        e.bool(true);
        it.encode(e);
    }
    e.bool(false);
}

/// Decode an XDR linked list of at most `max` elements.
pub fn decode_linked<T: Xdr>(d: &mut Decoder, max: usize) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while d.bool()? {
        if out.len() >= max {
            return Err(XdrError::TooLong);
        }
        out.push(T::decode(d)?);
    }
    Ok(out)
}

/// A struct whose XDR encoding is its fields in order.
#[macro_export]
macro_rules! xdr_struct {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident : $t:ty ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name { $( $(#[$fm])* pub $f: $t ),* }

        impl $crate::xdr::Xdr for $name {
            #[allow(unused_variables)]
            fn encode(&self, e: &mut $crate::xdr::Encoder) {
                $( $crate::xdr::Xdr::encode(&self.$f, e); )*
            }
            #[allow(unused_variables)]
            fn decode(d: &mut $crate::xdr::Decoder) -> $crate::xdr::Result<Self> {
                Ok($name { $( $f: <$t as $crate::xdr::Xdr>::decode(d)? ),* })
            }
        }
    };
}

/// An enum of named u32 values; unknown values do not decode.
#[macro_export]
macro_rules! xdr_enum {
    ($(#[$m:meta])* pub enum $name:ident { $( $(#[$vm:meta])* $v:ident = $n:expr ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name { $( $(#[$vm])* $v = $n ),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            pub fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $( $n => Some($name::$v), )*
                    _ => None,
                }
            }
        }

        impl $crate::xdr::Xdr for $name {
            fn encode(&self, e: &mut $crate::xdr::Encoder) {
                e.u32(*self as u32)
            }
            fn decode(d: &mut $crate::xdr::Decoder) -> $crate::xdr::Result<Self> {
                $name::from_u32(d.u32()?).ok_or($crate::xdr::XdrError::BadValue)
            }
        }
    };
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encode, decode, compare; then check that every proper prefix fails.
    pub fn round_trip<T: Xdr + PartialEq + std::fmt::Debug>(v: &T) {
        let b = v.to_bytes();
        assert_eq!(b.len() % 4, 0, "{v:?}: not a multiple of four");
        let back = T::from_bytes(b.clone()).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(&back, v);
        for cut in 0..b.len() {
            let r = T::from_bytes(b.slice(..cut));
            assert!(r.is_err(), "{v:?} decoded from {cut} of {} bytes", b.len());
        }
        let mut long = b.to_vec();
        long.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(T::from_bytes(long.into()), Err(XdrError::Trailing));
    }

    #[test]
    fn scalars_and_padding() {
        round_trip(&7u32);
        round_trip(&-7i32);
        round_trip(&u64::MAX);
        round_trip(&true);
        round_trip(&Some(5u32));
        round_trip(&None::<u32>);
        round_trip(&[1u8, 2, 3, 4, 5, 6, 7, 8]);
        round_trip(&Opaque::<8>::new(&b"abc"[..]));
        round_trip(&List::<u32, 3>(vec![1, 2, 3]));
        assert_eq!(Opaque::<8>::new(&b"abcde"[..]).to_bytes().len(), 12);
        assert_eq!(pad(0), 0);
        assert_eq!(pad(5), 3);
    }

    #[test]
    fn lengths_are_bounded() {
        let too_long = Opaque::<16>::new(vec![0u8; 17]).to_bytes();
        assert_eq!(Opaque::<16>::from_bytes(too_long), Err(XdrError::TooLong));
        // A huge claimed length with no data fails without allocating.
        let claim = Bytes::from_static(&[0xff, 0xff, 0xff, 0xf0]);
        assert_eq!(
            Opaque::<{ usize::MAX }>::from_bytes(claim.clone()),
            Err(XdrError::Truncated)
        );
        assert_eq!(
            List::<u32, { usize::MAX }>::from_bytes(claim),
            Err(XdrError::Truncated)
        );
        assert_eq!(
            bool::from_bytes(Bytes::from_static(&[0, 0, 0, 2])),
            Err(XdrError::BadValue)
        );
        let four = List::<u32, 3>(vec![1, 2, 3, 4]).to_bytes();
        assert_eq!(List::<u32, 3>::from_bytes(four), Err(XdrError::TooLong));
    }

    #[test]
    fn linked_lists() {
        let mut e = Encoder::new();
        encode_linked(&mut e, &[1u32, 2, 3]);
        let mut d = Decoder::new(e.into_bytes());
        assert_eq!(decode_linked::<u32>(&mut d, 10).unwrap(), vec![1, 2, 3]);
        let mut e = Encoder::new();
        encode_linked(&mut e, &[1u32, 2, 3]);
        let mut d = Decoder::new(e.into_bytes());
        assert_eq!(decode_linked::<u32>(&mut d, 2), Err(XdrError::TooLong));
    }
}
