//! MS-FSCC information classes: directory enumeration entries, file and
//! filesystem query results, set-info inputs, extended attributes, file
//! attributes and FILETIME conversion.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::wire::{check_count, next_chain_entry, pad, put_utf16, utf16_len, Reader};

/// File attributes (MS-FSCC 2.6).
pub mod attributes {
    pub const READONLY: u32 = 0x0000_0001;
    pub const HIDDEN: u32 = 0x0000_0002;
    pub const SYSTEM: u32 = 0x0000_0004;
    pub const DIRECTORY: u32 = 0x0000_0010;
    pub const ARCHIVE: u32 = 0x0000_0020;
    pub const NORMAL: u32 = 0x0000_0080;
    pub const TEMPORARY: u32 = 0x0000_0100;
    pub const SPARSE_FILE: u32 = 0x0000_0200;
    pub const REPARSE_POINT: u32 = 0x0000_0400;
    pub const COMPRESSED: u32 = 0x0000_0800;
    pub const OFFLINE: u32 = 0x0000_1000;
    pub const NOT_CONTENT_INDEXED: u32 = 0x0000_2000;
    pub const ENCRYPTED: u32 = 0x0000_4000;
    pub const INTEGRITY_STREAM: u32 = 0x0000_8000;
    pub const NO_SCRUB_DATA: u32 = 0x0002_0000;
}

/// File information classes (MS-FSCC 2.4).
pub mod class {
    pub const DIRECTORY: u8 = 1;
    pub const FULL_DIRECTORY: u8 = 2;
    pub const BOTH_DIRECTORY: u8 = 3;
    pub const BASIC: u8 = 4;
    pub const STANDARD: u8 = 5;
    pub const INTERNAL: u8 = 6;
    pub const EA: u8 = 7;
    pub const ACCESS: u8 = 8;
    pub const RENAME: u8 = 10;
    pub const LINK: u8 = 11;
    pub const NAMES: u8 = 12;
    pub const DISPOSITION: u8 = 13;
    pub const POSITION: u8 = 14;
    pub const FULL_EA: u8 = 15;
    pub const MODE: u8 = 16;
    pub const ALIGNMENT: u8 = 17;
    pub const ALL: u8 = 18;
    pub const ALLOCATION: u8 = 19;
    pub const END_OF_FILE: u8 = 20;
    pub const ALTERNATE_NAME: u8 = 21;
    pub const STREAM: u8 = 22;
    pub const COMPRESSION: u8 = 28;
    pub const NETWORK_OPEN: u8 = 34;
    pub const ATTRIBUTE_TAG: u8 = 35;
    pub const ID_BOTH_DIRECTORY: u8 = 37;
    pub const ID_FULL_DIRECTORY: u8 = 38;
    pub const NORMALIZED_NAME: u8 = 48;
    pub const ID_EXTD_DIRECTORY: u8 = 60;
    pub const DISPOSITION_EX: u8 = 64;
}

/// Filesystem information classes (MS-FSCC 2.5).
pub mod fs_class {
    pub const VOLUME: u8 = 1;
    pub const LABEL: u8 = 2;
    pub const SIZE: u8 = 3;
    pub const DEVICE: u8 = 4;
    pub const ATTRIBUTE: u8 = 5;
    pub const CONTROL: u8 = 6;
    pub const FULL_SIZE: u8 = 7;
    pub const OBJECT_ID: u8 = 8;
    pub const SECTOR_SIZE: u8 = 11;
}

/// 100 ns intervals between 1601-01-01 and 1970-01-01.
const EPOCH_DIFF: u64 = 116_444_736_000_000_000;

/// FILETIME from Unix seconds + nanoseconds (clamped to FILETIME's range;
/// 0 means "no time" on the wire, so the earliest time maps to 1).
pub fn filetime_from_unix(secs: i64, nanos: u32) -> u64 {
    let ticks = i128::from(secs) * 10_000_000 + i128::from(nanos / 100) + i128::from(EPOCH_DIFF);
    ticks.clamp(1, i128::from(i64::MAX)) as u64
}

/// Unix seconds + nanoseconds from a FILETIME.
pub fn filetime_to_unix(ft: u64) -> (i64, u32) {
    let rel = i128::from(ft) - i128::from(EPOCH_DIFF);
    let secs = rel.div_euclid(10_000_000);
    let nanos = (rel.rem_euclid(10_000_000) * 100) as u32;
    (secs as i64, nanos)
}

/// The four times every file carries, as FILETIME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Times {
    pub creation: u64,
    pub last_access: u64,
    pub last_write: u64,
    pub change: u64,
}

impl Times {
    fn put(&self, out: &mut BytesMut) {
        out.put_u64_le(self.creation);
        out.put_u64_le(self.last_access);
        out.put_u64_le(self.last_write);
        out.put_u64_le(self.change);
    }

    fn read(r: &mut Reader) -> Result<Times> {
        Ok(Times {
            creation: r.u64("CreationTime")?,
            last_access: r.u64("LastAccessTime")?,
            last_write: r.u64("LastWriteTime")?,
            change: r.u64("ChangeTime")?,
        })
    }
}

/// One directory entry, from which every enumeration class is encoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirEntry {
    pub name: String,
    pub file_index: u32,
    pub times: Times,
    pub end_of_file: u64,
    pub allocation_size: u64,
    pub attributes: u32,
    pub file_id: u64,
    pub ea_size: u32,
    /// 8.3 name, at most 12 characters (24 bytes); longer ones are cut.
    pub short_name: String,
    pub reparse_tag: u32,
}

/// Fixed size of one entry of `class` before FileName, or `None` when the
/// class is not a directory enumeration class.
pub fn dir_entry_fixed_len(class: u8) -> Option<usize> {
    Some(match class {
        class::DIRECTORY => 64,
        class::FULL_DIRECTORY => 68,
        class::BOTH_DIRECTORY => 94,
        class::NAMES => 12,
        class::ID_BOTH_DIRECTORY => 104,
        class::ID_FULL_DIRECTORY => 80,
        class::ID_EXTD_DIRECTORY => 88,
        _ => return None,
    })
}

fn put_short_name(out: &mut BytesMut, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(12).collect();
    out.put_u8((units.len() * 2) as u8);
    out.put_u8(0);
    for &u in &units {
        out.put_u16_le(u);
    }
    out.put_bytes(0, 24 - units.len() * 2);
}

fn encode_dir_entry(class: u8, e: &DirEntry, out: &mut BytesMut) {
    out.put_u32_le(0); // NextEntryOffset, patched when another follows
    out.put_u32_le(e.file_index);
    let name_len = utf16_len(&e.name) as u32;
    if class == class::NAMES {
        out.put_u32_le(name_len);
    } else {
        e.times.put(out);
        out.put_u64_le(e.end_of_file);
        out.put_u64_le(e.allocation_size);
        out.put_u32_le(e.attributes);
        out.put_u32_le(name_len);
        match class {
            class::FULL_DIRECTORY => out.put_u32_le(e.ea_size),
            class::BOTH_DIRECTORY => {
                out.put_u32_le(e.ea_size);
                put_short_name(out, &e.short_name);
            }
            class::ID_BOTH_DIRECTORY => {
                out.put_u32_le(e.ea_size);
                put_short_name(out, &e.short_name);
                out.put_u16_le(0);
                out.put_u64_le(e.file_id);
            }
            class::ID_FULL_DIRECTORY => {
                out.put_u32_le(e.ea_size);
                out.put_u32_le(0);
                out.put_u64_le(e.file_id);
            }
            class::ID_EXTD_DIRECTORY => {
                out.put_u32_le(e.ea_size);
                out.put_u32_le(e.reparse_tag);
                out.put_u64_le(e.file_id);
                out.put_u64_le(0);
            }
            _ => {}
        }
    }
    put_utf16(out, &e.name);
}

/// Builds a QUERY_DIRECTORY output buffer: entries chained by
/// NextEntryOffset, each 8-byte aligned, never past the client's
/// OutputBufferLength.
#[derive(Debug)]
pub struct DirectoryWriter {
    class: u8,
    limit: usize,
    buf: BytesMut,
    last: Option<usize>,
    count: usize,
}

impl DirectoryWriter {
    /// `None` when `class` is not an enumeration class (the server answers
    /// STATUS_INVALID_INFO_CLASS).
    pub fn new(class: u8, output_buffer_length: u32) -> Option<Self> {
        dir_entry_fixed_len(class)?;
        Some(DirectoryWriter {
            class,
            limit: output_buffer_length as usize,
            buf: BytesMut::new(),
            last: None,
            count: 0,
        })
    }

    /// Bytes `e` would add, padding before it included.
    pub fn entry_len(&self, e: &DirEntry) -> usize {
        let fixed = dir_entry_fixed_len(self.class).unwrap_or(0);
        let padding = if self.last.is_some() {
            pad(self.buf.len(), 8)
        } else {
            0
        };
        padding + fixed + utf16_len(&e.name)
    }

    /// Would `e` still fit in OutputBufferLength?
    pub fn fits(&self, e: &DirEntry) -> bool {
        self.buf.len() + self.entry_len(e) <= self.limit
    }

    /// Append `e` if it fits; `false` (and nothing written) otherwise.
    pub fn push(&mut self, e: &DirEntry) -> bool {
        if !self.fits(e) {
            return false;
        }
        next_chain_entry(&mut self.buf, &mut self.last, 8);
        encode_dir_entry(self.class, e, &mut self.buf);
        self.count += 1;
        true
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// FILE_NAME_INFORMATION body (AlternateName, NormalizedName, the tail of
/// All).
fn put_name_info(out: &mut BytesMut, name: &str) {
    out.put_u32_le(utf16_len(name) as u32);
    put_utf16(out, name);
}

/// One stream of FileStreamInformation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// e.g. `::$DATA`.
    pub name: String,
    pub size: u64,
    pub allocation_size: u64,
}

/// FileBasicInformation (also the set-info input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BasicInfo {
    pub times: Times,
    pub attributes: u32,
}

/// FileStandardInformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StandardInfo {
    pub allocation_size: u64,
    pub end_of_file: u64,
    pub number_of_links: u32,
    pub delete_pending: bool,
    pub directory: bool,
}

/// The results of QUERY_INFO for files (InfoType FILE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileInfo {
    Basic(BasicInfo),
    Standard(StandardInfo),
    Internal {
        index_number: u64,
    },
    Ea {
        ea_size: u32,
    },
    Access {
        access_flags: u32,
    },
    Position {
        current_byte_offset: u64,
    },
    Mode {
        mode: u32,
    },
    Alignment {
        alignment_requirement: u32,
    },
    All {
        basic: BasicInfo,
        standard: StandardInfo,
        index_number: u64,
        ea_size: u32,
        access_flags: u32,
        current_byte_offset: u64,
        mode: u32,
        alignment_requirement: u32,
        name: String,
    },
    AlternateName(String),
    Stream(Vec<StreamEntry>),
    Compression {
        compressed_file_size: u64,
        compression_format: u16,
        compression_unit_shift: u8,
        chunk_shift: u8,
        cluster_shift: u8,
    },
    NetworkOpen {
        times: Times,
        allocation_size: u64,
        end_of_file: u64,
        attributes: u32,
    },
    AttributeTag {
        attributes: u32,
        reparse_tag: u32,
    },
    NormalizedName(String),
}

fn put_basic(out: &mut BytesMut, b: &BasicInfo) {
    b.times.put(out);
    out.put_u32_le(b.attributes);
    out.put_u32_le(0);
}

fn put_standard(out: &mut BytesMut, s: &StandardInfo) {
    out.put_u64_le(s.allocation_size);
    out.put_u64_le(s.end_of_file);
    out.put_u32_le(s.number_of_links);
    out.put_u8(s.delete_pending as u8);
    out.put_u8(s.directory as u8);
    out.put_u16_le(0);
}

impl FileInfo {
    /// Size of the part before any variable-length name or list: a client
    /// buffer smaller than this gets STATUS_INFO_LENGTH_MISMATCH.
    pub fn fixed_len(&self) -> usize {
        match self {
            FileInfo::Basic(_) => 40,
            FileInfo::Standard(_) => 24,
            FileInfo::Internal { .. } | FileInfo::Position { .. } => 8,
            FileInfo::Ea { .. }
            | FileInfo::Access { .. }
            | FileInfo::Mode { .. }
            | FileInfo::Alignment { .. } => 4,
            FileInfo::All { .. } => 100,
            FileInfo::AlternateName(_) | FileInfo::NormalizedName(_) => 4,
            FileInfo::Stream(_) => 24,
            FileInfo::Compression { .. } => 16,
            FileInfo::NetworkOpen { .. } => 56,
            FileInfo::AttributeTag { .. } => 8,
        }
    }

    pub fn class(&self) -> u8 {
        match self {
            FileInfo::Basic(_) => class::BASIC,
            FileInfo::Standard(_) => class::STANDARD,
            FileInfo::Internal { .. } => class::INTERNAL,
            FileInfo::Ea { .. } => class::EA,
            FileInfo::Access { .. } => class::ACCESS,
            FileInfo::Position { .. } => class::POSITION,
            FileInfo::Mode { .. } => class::MODE,
            FileInfo::Alignment { .. } => class::ALIGNMENT,
            FileInfo::All { .. } => class::ALL,
            FileInfo::AlternateName(_) => class::ALTERNATE_NAME,
            FileInfo::Stream(_) => class::STREAM,
            FileInfo::Compression { .. } => class::COMPRESSION,
            FileInfo::NetworkOpen { .. } => class::NETWORK_OPEN,
            FileInfo::AttributeTag { .. } => class::ATTRIBUTE_TAG,
            FileInfo::NormalizedName(_) => class::NORMALIZED_NAME,
        }
    }

    /// Encode the full structure. The server compares the length with
    /// OutputBufferLength and answers BUFFER_OVERFLOW (truncated) or
    /// INFO_LENGTH_MISMATCH as MS-SMB2 3.3.5.20.1 says.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            FileInfo::Basic(b) => put_basic(out, b),
            FileInfo::Standard(s) => put_standard(out, s),
            FileInfo::Internal { index_number } => out.put_u64_le(*index_number),
            FileInfo::Ea { ea_size: v }
            | FileInfo::Access { access_flags: v }
            | FileInfo::Mode { mode: v }
            | FileInfo::Alignment {
                alignment_requirement: v,
            } => out.put_u32_le(*v),
            FileInfo::Position { current_byte_offset } => out.put_u64_le(*current_byte_offset),
            FileInfo::All {
                basic,
                standard,
                index_number,
                ea_size,
                access_flags,
                current_byte_offset,
                mode,
                alignment_requirement,
                name,
            } => {
                put_basic(out, basic);
                put_standard(out, standard);
                out.put_u64_le(*index_number);
                out.put_u32_le(*ea_size);
                out.put_u32_le(*access_flags);
                out.put_u64_le(*current_byte_offset);
                out.put_u32_le(*mode);
                out.put_u32_le(*alignment_requirement);
                put_name_info(out, name);
            }
            FileInfo::AlternateName(n) | FileInfo::NormalizedName(n) => put_name_info(out, n),
            FileInfo::Stream(streams) => {
                let mut last: Option<usize> = None;
                for s in streams {
                    next_chain_entry(out, &mut last, 8);
                    out.put_u32_le(0);
                    out.put_u32_le(utf16_len(&s.name) as u32);
                    out.put_u64_le(s.size);
                    out.put_u64_le(s.allocation_size);
                    put_utf16(out, &s.name);
                }
            }
            FileInfo::Compression {
                compressed_file_size,
                compression_format,
                compression_unit_shift,
                chunk_shift,
                cluster_shift,
            } => {
                out.put_u64_le(*compressed_file_size);
                out.put_u16_le(*compression_format);
                out.put_u8(*compression_unit_shift);
                out.put_u8(*chunk_shift);
                out.put_u8(*cluster_shift);
                out.put_bytes(0, 3);
            }
            FileInfo::NetworkOpen {
                times,
                allocation_size,
                end_of_file,
                attributes,
            } => {
                times.put(out);
                out.put_u64_le(*allocation_size);
                out.put_u64_le(*end_of_file);
                out.put_u32_le(*attributes);
                out.put_u32_le(0);
            }
            FileInfo::AttributeTag {
                attributes,
                reparse_tag,
            } => {
                out.put_u32_le(*attributes);
                out.put_u32_le(*reparse_tag);
            }
        }
    }
}

/// Device types (MS-FSCC 2.5.10).
pub const FILE_DEVICE_DISK: u32 = 0x0000_0007;

/// Filesystem attribute bits (MS-FSCC 2.5.1).
pub mod fs_attributes {
    pub const CASE_SENSITIVE_SEARCH: u32 = 0x0000_0001;
    pub const CASE_PRESERVED_NAMES: u32 = 0x0000_0002;
    pub const UNICODE_ON_DISK: u32 = 0x0000_0004;
    pub const PERSISTENT_ACLS: u32 = 0x0000_0008;
    pub const SUPPORTS_SPARSE_FILES: u32 = 0x0000_0040;
    pub const SUPPORTS_REPARSE_POINTS: u32 = 0x0000_0080;
    pub const SUPPORTS_OBJECT_IDS: u32 = 0x0001_0000;
    pub const NAMED_STREAMS: u32 = 0x0004_0000;
    pub const SUPPORTS_HARD_LINKS: u32 = 0x0040_0000;
    pub const SUPPORTS_EXTENDED_ATTRIBUTES: u32 = 0x0080_0000;
}

/// The results of QUERY_INFO for filesystems (InfoType FILESYSTEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsInfo {
    Volume {
        creation_time: u64,
        serial_number: u32,
        supports_objects: bool,
        label: String,
    },
    Size {
        total_allocation_units: u64,
        available_allocation_units: u64,
        sectors_per_allocation_unit: u32,
        bytes_per_sector: u32,
    },
    Device {
        device_type: u32,
        characteristics: u32,
    },
    Attribute {
        attributes: u32,
        max_component_name_length: u32,
        name: String,
    },
    FullSize {
        total_allocation_units: u64,
        caller_available_allocation_units: u64,
        actual_available_allocation_units: u64,
        sectors_per_allocation_unit: u32,
        bytes_per_sector: u32,
    },
    ObjectId {
        object_id: [u8; 16],
        extended_info: [u8; 48],
    },
    SectorSize {
        logical_bytes_per_sector: u32,
        physical_bytes_per_sector_for_atomicity: u32,
        physical_bytes_per_sector_for_performance: u32,
        effective_physical_bytes_per_sector_for_atomicity: u32,
        flags: u32,
        byte_offset_for_sector_alignment: u32,
        byte_offset_for_partition_alignment: u32,
    },
}

impl FsInfo {
    /// Size of the part before the label or name (see
    /// [`FileInfo::fixed_len`]).
    pub fn fixed_len(&self) -> usize {
        match self {
            FsInfo::Volume { .. } => 18,
            FsInfo::Size { .. } => 24,
            FsInfo::Device { .. } => 8,
            FsInfo::Attribute { .. } => 12,
            FsInfo::FullSize { .. } => 32,
            FsInfo::ObjectId { .. } => 64,
            FsInfo::SectorSize { .. } => 28,
        }
    }

    pub fn class(&self) -> u8 {
        match self {
            FsInfo::Volume { .. } => fs_class::VOLUME,
            FsInfo::Size { .. } => fs_class::SIZE,
            FsInfo::Device { .. } => fs_class::DEVICE,
            FsInfo::Attribute { .. } => fs_class::ATTRIBUTE,
            FsInfo::FullSize { .. } => fs_class::FULL_SIZE,
            FsInfo::ObjectId { .. } => fs_class::OBJECT_ID,
            FsInfo::SectorSize { .. } => fs_class::SECTOR_SIZE,
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            FsInfo::Volume {
                creation_time,
                serial_number,
                supports_objects,
                label,
            } => {
                out.put_u64_le(*creation_time);
                out.put_u32_le(*serial_number);
                out.put_u32_le(utf16_len(label) as u32);
                out.put_u8(*supports_objects as u8);
                out.put_u8(0);
                put_utf16(out, label);
            }
            FsInfo::Size {
                total_allocation_units,
                available_allocation_units,
                sectors_per_allocation_unit,
                bytes_per_sector,
            } => {
                out.put_u64_le(*total_allocation_units);
                out.put_u64_le(*available_allocation_units);
                out.put_u32_le(*sectors_per_allocation_unit);
                out.put_u32_le(*bytes_per_sector);
            }
            FsInfo::Device {
                device_type,
                characteristics,
            } => {
                out.put_u32_le(*device_type);
                out.put_u32_le(*characteristics);
            }
            FsInfo::Attribute {
                attributes,
                max_component_name_length,
                name,
            } => {
                out.put_u32_le(*attributes);
                out.put_u32_le(*max_component_name_length);
                put_name_info(out, name);
            }
            FsInfo::FullSize {
                total_allocation_units,
                caller_available_allocation_units,
                actual_available_allocation_units,
                sectors_per_allocation_unit,
                bytes_per_sector,
            } => {
                out.put_u64_le(*total_allocation_units);
                out.put_u64_le(*caller_available_allocation_units);
                out.put_u64_le(*actual_available_allocation_units);
                out.put_u32_le(*sectors_per_allocation_unit);
                out.put_u32_le(*bytes_per_sector);
            }
            FsInfo::ObjectId {
                object_id,
                extended_info,
            } => {
                out.put_slice(object_id);
                out.put_slice(extended_info);
            }
            FsInfo::SectorSize {
                logical_bytes_per_sector,
                physical_bytes_per_sector_for_atomicity,
                physical_bytes_per_sector_for_performance,
                effective_physical_bytes_per_sector_for_atomicity,
                flags,
                byte_offset_for_sector_alignment,
                byte_offset_for_partition_alignment,
            } => {
                for v in [
                    logical_bytes_per_sector,
                    physical_bytes_per_sector_for_atomicity,
                    physical_bytes_per_sector_for_performance,
                    effective_physical_bytes_per_sector_for_atomicity,
                    flags,
                    byte_offset_for_sector_alignment,
                    byte_offset_for_partition_alignment,
                ] {
                    out.put_u32_le(*v);
                }
            }
        }
    }
}

/// How an encoded info result meets the client's OutputBufferLength
/// (MS-SMB2 3.3.5.20.1, 3.3.5.20.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Everything fits: STATUS_SUCCESS.
    Whole(Bytes),
    /// Cut to OutputBufferLength: STATUS_BUFFER_OVERFLOW with these bytes.
    Truncated(Bytes),
    /// Not even the fixed part fits: STATUS_INFO_LENGTH_MISMATCH, no data.
    TooSmall,
}

/// Fit `encoded` (whose fixed part is `fixed_len` bytes) into
/// `output_buffer_length`.
pub fn fit_output(encoded: Bytes, fixed_len: usize, output_buffer_length: u32) -> Fit {
    let max = output_buffer_length as usize;
    if encoded.len() <= max {
        Fit::Whole(encoded)
    } else if max < fixed_len {
        Fit::TooSmall
    } else {
        Fit::Truncated(encoded.slice(..max))
    }
}

/// One extended attribute (FILE_FULL_EA_INFORMATION, MS-FSCC 2.4.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullEa {
    pub flags: u8,
    /// ASCII name (without the terminating NUL).
    pub name: Bytes,
    pub value: Bytes,
}

/// Decode a FILE_FULL_EA_INFORMATION chain.
pub fn decode_full_ea_list(buf: Bytes) -> Result<Vec<FullEa>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        let mut r = Reader::new(buf.slice(pos.min(buf.len())..));
        let next = r.u32("EA NextEntryOffset")? as usize;
        let flags = r.u8("EA Flags")?;
        let name_len = usize::from(r.u8("EaNameLength")?);
        let value_len = usize::from(r.u16("EaValueLength")?);
        let name = r.bytes(name_len, "EaName")?;
        if r.u8("EaName terminator")? != 0 {
            return Err(DecodeError::InvalidValue {
                what: "EaName terminator",
                value: 1,
            });
        }
        let value = r.bytes(value_len, "EaValue")?;
        out.push(FullEa { flags, name, value });
        if next == 0 {
            return Ok(out);
        }
        if next < r.pos() || next % 4 != 0 {
            return Err(DecodeError::InvalidValue {
                what: "EA NextEntryOffset",
                value: next as u64,
            });
        }
        pos = pos
            .checked_add(next)
            .filter(|&p| p < buf.len())
            .ok_or(DecodeError::OutOfBounds {
                what: "EA NextEntryOffset",
                offset: next as u64,
                len: 0,
                size: buf.len(),
            })?;
    }
}

/// Encode a FILE_FULL_EA_INFORMATION chain (entries 4-byte aligned).
pub fn encode_full_ea_list(eas: &[FullEa], out: &mut BytesMut) {
    let mut last: Option<usize> = None;
    for ea in eas {
        next_chain_entry(out, &mut last, 4);
        out.put_u32_le(0);
        out.put_u8(ea.flags);
        out.put_u8(ea.name.len().min(255) as u8);
        out.put_u16_le(ea.value.len().min(0xFFFF) as u16);
        out.put_slice(&ea.name[..ea.name.len().min(255)]);
        out.put_u8(0);
        out.put_slice(&ea.value[..ea.value.len().min(0xFFFF)]);
    }
}

/// The input of SET_INFO for files (InfoType FILE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetFileInfo {
    Basic(BasicInfo),
    Rename(RenameInfo),
    Link(RenameInfo),
    Disposition { delete_pending: bool },
    Position { current_byte_offset: u64 },
    Mode { mode: u32 },
    Allocation { allocation_size: u64 },
    EndOfFile { end_of_file: u64 },
    DispositionEx { flags: u32 },
    FullEa(Vec<FullEa>),
}

/// FileRenameInformation / FileLinkInformation (SMB2 layout, MS-FSCC
/// 2.4.42.2 and 2.4.27).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameInfo {
    pub replace_if_exists: bool,
    /// Zero for SMB2: the name is relative to the share root.
    pub root_directory: u64,
    pub name: String,
}

/// FileDispositionInformationEx flags (MS-FSCC 2.4.12).
pub mod disposition_ex {
    pub const DELETE: u32 = 0x0000_0001;
    pub const POSIX_SEMANTICS: u32 = 0x0000_0002;
    pub const FORCE_IMAGE_SECTION_CHECK: u32 = 0x0000_0004;
    pub const ON_CLOSE: u32 = 0x0000_0008;
    pub const IGNORE_READONLY_ATTRIBUTE: u32 = 0x0000_0010;
}

impl SetFileInfo {
    /// Decode the SET_INFO buffer for `class`. Unknown or unsupported
    /// classes are [`DecodeError::Unsupported`] (STATUS_INVALID_INFO_CLASS or
    /// NOT_SUPPORTED); a short buffer is INFO_LENGTH_MISMATCH.
    pub fn decode(class: u8, buf: Bytes) -> Result<SetFileInfo> {
        let mut r = Reader::new(buf.clone());
        Ok(match class {
            class::BASIC => {
                let times = Times::read(&mut r)?;
                SetFileInfo::Basic(BasicInfo {
                    times,
                    attributes: r.u32("FileAttributes")?,
                })
            }
            class::RENAME | class::LINK => {
                let replace_if_exists = r.u8("ReplaceIfExists")? != 0;
                r.skip(7, "Reserved")?;
                let root_directory = r.u64("RootDirectory")?;
                let len = r.u32("FileNameLength")? as usize;
                let info = RenameInfo {
                    replace_if_exists,
                    root_directory,
                    name: r.utf16(len, "FileName")?,
                };
                if class == class::RENAME {
                    SetFileInfo::Rename(info)
                } else {
                    SetFileInfo::Link(info)
                }
            }
            class::DISPOSITION => SetFileInfo::Disposition {
                delete_pending: r.u8("DeletePending")? != 0,
            },
            class::POSITION => SetFileInfo::Position {
                current_byte_offset: r.u64("CurrentByteOffset")?,
            },
            class::MODE => SetFileInfo::Mode { mode: r.u32("Mode")? },
            class::ALLOCATION => SetFileInfo::Allocation {
                allocation_size: r.u64("AllocationSize")?,
            },
            class::END_OF_FILE => SetFileInfo::EndOfFile {
                end_of_file: r.u64("EndOfFile")?,
            },
            class::DISPOSITION_EX => SetFileInfo::DispositionEx {
                flags: r.u32("Flags")?,
            },
            class::FULL_EA => SetFileInfo::FullEa(decode_full_ea_list(buf)?),
            other => {
                return Err(DecodeError::Unsupported {
                    what: "SET_INFO file information class",
                    class: other.into(),
                })
            }
        })
    }

    /// Client-side encoding (tests, fuzz seeds).
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            SetFileInfo::Basic(b) => put_basic(out, b),
            SetFileInfo::Rename(info) | SetFileInfo::Link(info) => {
                out.put_u8(info.replace_if_exists as u8);
                out.put_bytes(0, 7);
                out.put_u64_le(info.root_directory);
                put_name_info(out, &info.name);
            }
            SetFileInfo::Disposition { delete_pending } => out.put_u8(*delete_pending as u8),
            SetFileInfo::Position {
                current_byte_offset: v,
            }
            | SetFileInfo::Allocation { allocation_size: v }
            | SetFileInfo::EndOfFile { end_of_file: v } => out.put_u64_le(*v),
            SetFileInfo::Mode { mode: v } | SetFileInfo::DispositionEx { flags: v } => out.put_u32_le(*v),
            SetFileInfo::FullEa(eas) => encode_full_ea_list(eas, out),
        }
    }

    pub fn class(&self) -> u8 {
        match self {
            SetFileInfo::Basic(_) => class::BASIC,
            SetFileInfo::Rename(_) => class::RENAME,
            SetFileInfo::Link(_) => class::LINK,
            SetFileInfo::Disposition { .. } => class::DISPOSITION,
            SetFileInfo::Position { .. } => class::POSITION,
            SetFileInfo::Mode { .. } => class::MODE,
            SetFileInfo::Allocation { .. } => class::ALLOCATION,
            SetFileInfo::EndOfFile { .. } => class::END_OF_FILE,
            SetFileInfo::DispositionEx { .. } => class::DISPOSITION_EX,
            SetFileInfo::FullEa(_) => class::FULL_EA,
        }
    }
}

/// Decode a SET_INFO buffer of InfoType FILESYSTEM: this server changes no
/// filesystem settings, so every class (FsControl, FsObjectId, ...) is
/// rejected after a length sanity check.
pub fn decode_set_fs_info(class: u8, buf: &[u8]) -> Result<()> {
    let need = match class {
        fs_class::CONTROL => 48,
        fs_class::OBJECT_ID => 64,
        _ => 0,
    };
    check_count(need, 1, buf.len(), "filesystem information")?;
    Err(DecodeError::Unsupported {
        what: "SET_INFO filesystem information class",
        class: class.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> DirEntry {
        DirEntry {
            name: name.into(),
            file_index: 0,
            times: Times {
                creation: 1,
                last_access: 2,
                last_write: 3,
                change: 4,
            },
            end_of_file: 10,
            allocation_size: 4096,
            attributes: attributes::ARCHIVE,
            file_id: 0x77,
            ea_size: 0,
            short_name: "A~1.TXT".into(),
            reparse_tag: 0,
        }
    }

    #[test]
    fn filetime_conversion() {
        assert_eq!(filetime_from_unix(0, 0), EPOCH_DIFF);
        assert_eq!(filetime_to_unix(EPOCH_DIFF + 15), (0, 1500));
        assert_eq!(
            filetime_to_unix(filetime_from_unix(1_700_000_000, 123_456_700)),
            (1_700_000_000, 123_456_700)
        );
        assert_eq!(filetime_to_unix(EPOCH_DIFF - 5), (-1, 999_999_500));
        assert_eq!(filetime_from_unix(i64::MIN, 0), 1);
        assert_eq!(filetime_from_unix(i64::MAX, 0), i64::MAX as u64);
    }

    #[test]
    fn directory_entries_have_the_spec_layouts() {
        for (c, fixed) in [
            (1u8, 64usize),
            (2, 68),
            (3, 94),
            (12, 12),
            (37, 104),
            (38, 80),
            (60, 88),
        ] {
            let mut w = DirectoryWriter::new(c, 65536).unwrap();
            assert!(w.push(&entry("ab")));
            assert!(w.push(&entry("c")));
            let b = w.finish();
            let first = fixed + 4;
            let second = first + pad(first, 8);
            assert_eq!(
                u32::from_le_bytes(b[0..4].try_into().unwrap()) as usize,
                second,
                "class {c}"
            );
            assert_eq!(b.len(), second + fixed + 2, "class {c}");
            assert_eq!(&b[fixed..fixed + 4], &[b'a', 0, b'b', 0]);
            let name_len_at = if c == 12 { 8 } else { 60 };
            assert_eq!(b[name_len_at], 4);
            assert_eq!(&b[second..second + 4], &[0, 0, 0, 0]);
        }
        let mut w = DirectoryWriter::new(class::ID_BOTH_DIRECTORY, 65536).unwrap();
        w.push(&entry("x"));
        let b = w.finish();
        assert_eq!(b[68], 14); // ShortNameLength
        assert_eq!(&b[70..72], &[b'A', 0]);
        assert_eq!(u64::from_le_bytes(b[96..104].try_into().unwrap()), 0x77);
        assert!(DirectoryWriter::new(class::BASIC, 100).is_none());
    }

    #[test]
    fn directory_writer_respects_output_buffer_length() {
        let mut w = DirectoryWriter::new(class::NAMES, 33).unwrap();
        assert!(w.push(&entry("ab")));
        assert!(w.fits(&entry("cd")));
        assert!(!w.fits(&entry("cde")));
        assert!(w.push(&entry("cd")));
        assert!(!w.push(&entry("")));
        assert_eq!(w.count(), 2);
        assert_eq!(w.finish().len(), 32);
    }

    #[test]
    fn query_classes_sizes_and_bytes() {
        let sizes: [(FileInfo, usize); 8] = [
            (FileInfo::Basic(BasicInfo::default()), 40),
            (FileInfo::Standard(StandardInfo::default()), 24),
            (FileInfo::Internal { index_number: 9 }, 8),
            (FileInfo::Ea { ea_size: 0 }, 4),
            (
                FileInfo::NetworkOpen {
                    times: Times::default(),
                    allocation_size: 0,
                    end_of_file: 0,
                    attributes: 0,
                },
                56,
            ),
            (
                FileInfo::Compression {
                    compressed_file_size: 0,
                    compression_format: 0,
                    compression_unit_shift: 0,
                    chunk_shift: 0,
                    cluster_shift: 0,
                },
                16,
            ),
            (FileInfo::AlternateName("AB".into()), 8),
            (
                FileInfo::AttributeTag {
                    attributes: 0,
                    reparse_tag: 0,
                },
                8,
            ),
        ];
        for (info, len) in sizes {
            let mut b = BytesMut::new();
            info.encode(&mut b);
            assert_eq!(b.len(), len, "{info:?}");
            assert!(info.fixed_len() <= len, "{info:?}");
        }
        let all = FileInfo::All {
            basic: BasicInfo::default(),
            standard: StandardInfo {
                end_of_file: 5,
                number_of_links: 1,
                directory: true,
                ..Default::default()
            },
            index_number: 1,
            ea_size: 0,
            access_flags: 0x1F01FF,
            current_byte_offset: 0,
            mode: 0,
            alignment_requirement: 0,
            name: "\\f".into(),
        };
        let mut b = BytesMut::new();
        all.encode(&mut b);
        assert_eq!(b.len(), 100 + 4);
        assert_eq!(b[40 + 8], 5);
        assert_eq!(b[40 + 21], 1); // Directory
        assert_eq!(&b[96..100], &[4, 0, 0, 0]);
        let streams = FileInfo::Stream(vec![
            StreamEntry {
                name: "::$DATA".into(),
                size: 3,
                allocation_size: 4096,
            },
            StreamEntry {
                name: ":s:$DATA".into(),
                size: 0,
                allocation_size: 0,
            },
        ]);
        let mut b = BytesMut::new();
        streams.encode(&mut b);
        assert_eq!(&b[0..8], &[40, 0, 0, 0, 14, 0, 0, 0]);
        assert_eq!(b.len(), 40 + 24 + 16);
    }

    #[test]
    fn output_buffer_fitting() {
        let info = FileInfo::AlternateName("LONGNAME".into());
        let mut b = BytesMut::new();
        info.encode(&mut b);
        let b = b.freeze();
        assert_eq!(
            fit_output(b.clone(), info.fixed_len(), 100),
            Fit::Whole(b.clone())
        );
        assert_eq!(
            fit_output(b.clone(), info.fixed_len(), 6),
            Fit::Truncated(b.slice(..6))
        );
        assert_eq!(fit_output(b, info.fixed_len(), 3), Fit::TooSmall);
        let mut e = BytesMut::new();
        FileInfo::Basic(BasicInfo::default()).encode(&mut e);
        assert_eq!(e.len(), FileInfo::Basic(BasicInfo::default()).fixed_len());
    }

    #[test]
    fn fs_classes_sizes() {
        let cases: [(FsInfo, usize); 7] = [
            (
                FsInfo::Volume {
                    creation_time: 0,
                    serial_number: 1,
                    supports_objects: false,
                    label: "v".into(),
                },
                20,
            ),
            (
                FsInfo::Size {
                    total_allocation_units: 1,
                    available_allocation_units: 1,
                    sectors_per_allocation_unit: 8,
                    bytes_per_sector: 512,
                },
                24,
            ),
            (
                FsInfo::Device {
                    device_type: FILE_DEVICE_DISK,
                    characteristics: 0,
                },
                8,
            ),
            (
                FsInfo::Attribute {
                    attributes: 0,
                    max_component_name_length: 255,
                    name: "NTFS".into(),
                },
                20,
            ),
            (
                FsInfo::FullSize {
                    total_allocation_units: 1,
                    caller_available_allocation_units: 1,
                    actual_available_allocation_units: 1,
                    sectors_per_allocation_unit: 8,
                    bytes_per_sector: 512,
                },
                32,
            ),
            (
                FsInfo::ObjectId {
                    object_id: [0; 16],
                    extended_info: [0; 48],
                },
                64,
            ),
            (
                FsInfo::SectorSize {
                    logical_bytes_per_sector: 512,
                    physical_bytes_per_sector_for_atomicity: 4096,
                    physical_bytes_per_sector_for_performance: 4096,
                    effective_physical_bytes_per_sector_for_atomicity: 4096,
                    flags: 0,
                    byte_offset_for_sector_alignment: 0,
                    byte_offset_for_partition_alignment: 0,
                },
                28,
            ),
        ];
        for (info, len) in cases {
            let mut b = BytesMut::new();
            info.encode(&mut b);
            assert_eq!(b.len(), len, "{info:?}");
            assert!(info.fixed_len() <= len, "{info:?}");
        }
    }

    #[test]
    fn set_classes_decode_from_byte_images() {
        // FileRenameInformation (SMB2 layout): replace, 7 reserved, root, len, name.
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&[b'a', 0, b'b', 0]);
        assert_eq!(
            SetFileInfo::decode(class::RENAME, Bytes::from(b.clone())).unwrap(),
            SetFileInfo::Rename(RenameInfo {
                replace_if_exists: true,
                root_directory: 0,
                name: "ab".into()
            })
        );
        b[16] = 6;
        assert!(SetFileInfo::decode(class::RENAME, Bytes::from(b)).is_err());
        assert_eq!(
            SetFileInfo::decode(class::DISPOSITION, Bytes::from_static(&[1])).unwrap(),
            SetFileInfo::Disposition { delete_pending: true }
        );
        assert!(SetFileInfo::decode(class::END_OF_FILE, Bytes::from_static(&[1, 2, 3])).is_err());
        assert!(matches!(
            SetFileInfo::decode(class::STREAM, Bytes::new()),
            Err(DecodeError::Unsupported { .. })
        ));
        assert!(decode_set_fs_info(fs_class::CONTROL, &[0; 48]).is_err());
    }

    #[test]
    fn set_classes_round_trip() {
        let cases = vec![
            SetFileInfo::Basic(BasicInfo {
                times: Times {
                    creation: 1,
                    last_access: u64::MAX,
                    last_write: 0,
                    change: 4,
                },
                attributes: attributes::HIDDEN,
            }),
            SetFileInfo::Link(RenameInfo {
                replace_if_exists: false,
                root_directory: 0,
                name: "x\\y".into(),
            }),
            SetFileInfo::Position {
                current_byte_offset: 5,
            },
            SetFileInfo::Mode { mode: 2 },
            SetFileInfo::Allocation {
                allocation_size: 8192,
            },
            SetFileInfo::EndOfFile { end_of_file: 1 },
            SetFileInfo::DispositionEx {
                flags: disposition_ex::DELETE | disposition_ex::POSIX_SEMANTICS,
            },
            SetFileInfo::FullEa(vec![
                FullEa {
                    flags: 0,
                    name: Bytes::from_static(b"USER.A"),
                    value: Bytes::from_static(b"1"),
                },
                FullEa {
                    flags: 0x80,
                    name: Bytes::from_static(b"B"),
                    value: Bytes::new(),
                },
            ]),
        ];
        for c in cases {
            let mut b = BytesMut::new();
            c.encode(&mut b);
            assert_eq!(SetFileInfo::decode(c.class(), b.freeze()).unwrap(), c);
        }
    }

    #[test]
    fn hostile_ea_lists() {
        let eas = vec![
            FullEa {
                flags: 0,
                name: Bytes::from_static(b"A"),
                value: Bytes::from_static(b"xy"),
            };
            2
        ];
        let mut b = BytesMut::new();
        encode_full_ea_list(&eas, &mut b);
        assert_eq!(&b[0..4], &[12, 0, 0, 0]);
        let good = b.to_vec();
        for bad_next in [1u32, 4, 0x1000, u32::MAX] {
            let mut bad = good.clone();
            bad[0..4].copy_from_slice(&bad_next.to_le_bytes());
            assert!(decode_full_ea_list(Bytes::from(bad)).is_err(), "{bad_next}");
        }
        for n in 0..good.len() {
            assert!(decode_full_ea_list(Bytes::copy_from_slice(&good[..n])).is_err());
        }
    }
}
