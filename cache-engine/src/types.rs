//! Protocol-neutral types of the engine API: those it shares with the core
//! filers (from [`core_filer::types`]) and those only the engine answers with.

pub use core_filer::types::*;

/// Bits of an access check (the same values as NFSv3 ACCESS3_*).
pub mod access {
    pub const READ: u32 = 0x01;
    pub const LOOKUP: u32 = 0x02;
    pub const MODIFY: u32 = 0x04;
    pub const EXTEND: u32 = 0x08;
    pub const DELETE: u32 = 0x10;
    pub const EXECUTE: u32 = 0x20;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsInfo {
    pub rtmax: u32,
    pub rtpref: u32,
    pub rtmult: u32,
    pub wtmax: u32,
    pub wtpref: u32,
    pub wtmult: u32,
    pub dtpref: u32,
    pub max_file_size: u64,
    pub time_delta: Timespec,
    pub link: bool,
    pub symlink: bool,
    pub homogeneous: bool,
    pub can_set_time: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathConf {
    pub link_max: u32,
    pub name_max: u32,
    pub no_trunc: bool,
    pub chown_restricted: bool,
    pub case_insensitive: bool,
    pub case_preserving: bool,
}
