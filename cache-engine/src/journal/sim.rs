//! A journal region in memory, for tests and the crash simulation: writes
//! land whole, not at all, or torn at 512-byte sector granularity.

use std::io;

use bytes::Bytes;

use super::log::{Completion, Log, WriteReq};
use super::replay::RegionRead;

/// Sector: the unit a torn write is made of.
pub const SECTOR: usize = 512;

/// A region of zeros that writes are applied to.
#[derive(Clone, Debug)]
pub struct MemRegion {
    pub bytes: Vec<u8>,
}

impl MemRegion {
    pub fn new(size: u64) -> Self {
        MemRegion {
            bytes: vec![0; size as usize],
        }
    }

    /// A write that completed.
    pub fn apply(&mut self, req: &WriteReq) {
        self.apply_sectors(req, |_| true);
    }

    /// A write torn by a crash: only the sectors `keep` says were written.
    pub fn apply_sectors(&mut self, req: &WriteReq, mut keep: impl FnMut(usize) -> bool) {
        let at = req.offset as usize;
        for (i, s) in req.buf.as_slice().chunks(SECTOR).enumerate() {
            if keep(i) {
                let o = at + i * SECTOR;
                self.bytes[o..o + s.len()].copy_from_slice(s);
            }
        }
    }

    /// Make every write `log` has ready, whole, until it has none; the
    /// completions in order.
    pub fn drive(&mut self, log: &mut Log) -> Vec<Completion> {
        let mut out = Vec::new();
        while let Some(req) = log.next_write() {
            self.apply(&req);
            out.push(log.write_done(req.id, Ok(())));
        }
        out
    }
}

impl RegionRead for MemRegion {
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Bytes> {
        let at = offset as usize;
        self.bytes
            .get(at..at + len)
            .map(Bytes::copy_from_slice)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the region"))
    }
}
