//! The one error type of every decoder in this crate.

/// Why bytes from the wire could not be decoded. `what` names the field or
/// structure, for logs. A server answers most of these with
/// STATUS_INVALID_PARAMETER and drops the connection on framing errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what}: truncated ({need} bytes needed, {have} present)")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{what}: StructureSize {got}, expected {expected}")]
    StructureSize {
        what: &'static str,
        expected: u16,
        got: u16,
    },
    #[error("{what}: offset {offset} length {len} lies outside the {size}-byte message")]
    OutOfBounds {
        what: &'static str,
        offset: u64,
        len: u64,
        size: usize,
    },
    #[error("{what}: offset {offset} is not aligned to {align}")]
    Misaligned {
        what: &'static str,
        offset: u64,
        align: u64,
    },
    #[error("bad protocol id {0:02x?}")]
    ProtocolId([u8; 4]),
    #[error("{what}: invalid value {value:#x}")]
    InvalidValue { what: &'static str, value: u64 },
    #[error("{what}: invalid UTF-16 (odd length or unpaired surrogate)")]
    Utf16 { what: &'static str },
    #[error("{what}: {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what}: class {class} is not supported")]
    Unsupported { what: &'static str, class: u32 },
}

pub type Result<T, E = DecodeError> = std::result::Result<T, E>;
