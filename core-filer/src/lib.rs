//! Weir's core filers: the only way the cache engine touches a back end.
//!
//! A core filer does what it is asked without caching: the engine caches, and
//! checks access against the attributes it holds before it calls in. A core
//! filer acts with the caller's [`Credentials`] too, so that its back end
//! checks again against the real rights (`local`: the kernel, see
//! [`identity`]; `nfs`: the NAS). Every name it receives has passed
//! [`types::check_name`]; a core filer checks again and never lets a
//! call reach outside its root.
//!
//! This crate holds the [`CoreFiler`] trait, its types and errors, the
//! [`contract`] every back end keeps (feature `contract`), and the back ends,
//! each behind a cargo feature: `local` (a directory on this machine) and
//! `nfs` (an NFSv3 server). It must not cache, and it knows nothing of the
//! engine above it.

#[cfg(feature = "contract")]
pub mod contract;
pub mod counting;
pub mod error;
pub mod identity;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "nfs")]
pub mod nfs;
#[cfg(feature = "nfs3")]
pub mod nfs3;
pub mod types;

pub use error::{Error, Result};

use async_trait::async_trait;
use bytes::Bytes;

use crate::types::*;

/// Result of a read: the bytes (short at end of file) and whether the read reached EOF.
#[derive(Debug, Clone)]
pub struct FilerRead {
    pub data: Bytes,
    pub eof: bool,
}

/// Result of a write: bytes written, how durable they are, attributes around it.
#[derive(Debug, Clone, Copy)]
pub struct FilerWrite {
    pub count: u32,
    pub committed: Stability,
    pub wcc: BeforeAfter,
}

/// A new object and the change to its parent directory.
#[derive(Debug, Clone, Copy)]
pub struct FilerCreated {
    pub handle: FilerHandle,
    pub attr: Attr,
    pub dir_wcc: BeforeAfter,
}

/// A directory entry with the handle and attributes of what it names.
#[derive(Debug, Clone)]
pub struct FilerDirEntryPlus {
    pub entry: FilerDirEntry,
    /// `None` when the entry vanished between listing and lookup.
    pub object: Option<(FilerHandle, Attr)>,
}

/// A back end: a local directory, an NFS server, an object store bucket.
///
/// Futures are not `Send`: calls run on the shard thread that owns the file.
#[async_trait(?Send)]
pub trait CoreFiler: Send + Sync + 'static {
    /// Short name for logs and metric labels.
    fn name(&self) -> &str;

    /// Handle of the root directory.
    fn root(&self) -> FilerHandle;

    /// Whether what was just written is where this back end's next read
    /// finds it at memory speed (a local directory: the host's page cache).
    /// The engine then keeps no copy of written data in its RAM tier; a
    /// copy there would hold a fresh buffer per write to save one cheap read.
    fn caches_writes(&self) -> bool {
        false
    }

    async fn getattr(&self, cred: &Credentials, fh: &FilerHandle) -> Result<Attr>;

    /// Find `name` in `dir`. Does not follow a symlink that `name` is.
    async fn lookup(&self, cred: &Credentials, dir: &FilerHandle, name: &[u8])
        -> Result<(FilerHandle, Attr)>;

    /// The parent of directory `dir`; the root is its own parent.
    async fn lookup_parent(&self, cred: &Credentials, dir: &FilerHandle) -> Result<(FilerHandle, Attr)>;

    async fn read(&self, cred: &Credentials, fh: &FilerHandle, offset: u64, len: u32) -> Result<FilerRead>;

    async fn write(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<FilerWrite>;

    /// A write through an open that was granted write access when it was
    /// made: a later change of mode (or of the SMB READONLY attribute) does
    /// not take that access back, as on Windows and POSIX alike. Back ends
    /// that cannot tell check as [`CoreFiler::write`] does.
    async fn write_opened(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<FilerWrite> {
        self.write(cred, fh, offset, data, stability).await
    }

    /// Make earlier unstable writes to the file durable.
    async fn commit(&self, cred: &Credentials, fh: &FilerHandle) -> Result<BeforeAfter>;

    /// Change attributes. Ownership given in `attrs` is applied as is.
    async fn setattr(&self, cred: &Credentials, fh: &FilerHandle, attrs: &SetAttr) -> Result<BeforeAfter>;

    /// Make a file, directory, symlink or special node. `attrs` carries the
    /// mode and the owner (uid, gid) the new object gets.
    async fn create(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
        node: &NewNode,
        attrs: &SetAttr,
    ) -> Result<FilerCreated>;

    async fn readlink(&self, cred: &Credentials, fh: &FilerHandle) -> Result<Vec<u8>>;

    /// Hard link `fh` as `name` in `dir`; returns the file's new attributes.
    async fn link(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        dir: &FilerHandle,
        name: &[u8],
    ) -> Result<(Attr, BeforeAfter)>;

    /// Remove a non-directory (`rmdir == false`) or an empty directory.
    async fn remove(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
        rmdir: bool,
    ) -> Result<BeforeAfter>;

    /// Rename; replaces a compatible target as POSIX rename does.
    async fn rename(
        &self,
        cred: &Credentials,
        from_dir: &FilerHandle,
        from_name: &[u8],
        to_dir: &FilerHandle,
        to_name: &[u8],
    ) -> Result<(BeforeAfter, BeforeAfter)>;

    /// List `dir` from `cookie` (0: from the start), at most `max` entries.
    async fn readdir(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<FilerDirPage>;

    /// As `readdir`, with each entry's handle and attributes.
    async fn readdir_plus(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<(Vec<FilerDirEntryPlus>, bool)> {
        let page = self.readdir(cred, dir, cookie, max).await?;
        let mut out = Vec::with_capacity(page.entries.len());
        for entry in page.entries {
            let object = match self.lookup(cred, dir, &entry.name).await {
                Ok(found) => Some(found),
                Err(crate::Error::NoEnt) => None,
                Err(e) => return Err(e),
            };
            out.push(FilerDirEntryPlus { entry, object });
        }
        Ok((out, page.eof))
    }

    async fn fsstat(&self, cred: &Credentials, fh: &FilerHandle) -> Result<FsStat>;
}

/// CRC-32C (Castagnoli) of `data`, as stored beside every cached page and in
/// the `nfs` filer's handle map. crc-fast folds with carry-less multiplies: a
/// 4 KiB page costs a third of what the plain SSE4.2 instruction loop does.
pub fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

#[cfg(test)]
mod crc_tests {
    #[test]
    fn crc32c_is_castagnoli() {
        // The standard check value of CRC-32C.
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(super::crc32c(b""), 0);
    }
}
