//! Operations on a file's attributes and data: getattr and setattr,
//! access, read, prefetch, write and commit, and what the file system
//! reports about itself.

use bytes::Bytes;

use super::{Engine, WriteReply};
use crate::change::ChangeKind;
use crate::handle::FileHandle;
use crate::shard::{Prefetched, ReadReply};
use crate::stats::Op;
use crate::types::*;
use crate::{Error, Result};

impl Engine {
    pub async fn getattr(&self, fh: &FileHandle) -> Result<Attr> {
        self.timed(Op::Getattr, async {
            let r = self.resolve(fh)?;
            self.attr_on(r, &Credentials::root(), None).await
        })
        .await
    }

    pub async fn setattr(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        set: &SetAttr,
        guard: Option<Timespec>,
    ) -> Result<BeforeAfter> {
        self.timed(Op::Setattr, async {
            let (r, set) = (self.resolve(fh)?, *set);
            self.on_owner(r, cred, move |s, r, c| async move {
                let wcc = s.setattr(&r, &c, &set, guard).await?;
                if set != SetAttr::default() {
                    s.notify(c.origin, || ChangeKind::SetAttr {
                        file: s.handle(&r),
                        set,
                    });
                }
                Ok(wcc)
            })
            .await
        })
        .await
    }

    /// Which of the ACCESS bits in `mask` the caller has.
    pub async fn access(&self, cred: &Credentials, fh: &FileHandle, mask: u32) -> Result<(u32, Attr)> {
        self.timed(Op::Access, async {
            let r = self.resolve(fh)?;
            self.on_owner(
                r,
                cred,
                move |s, r, c| async move { s.access(&r, &c, mask).await },
            )
            .await
        })
        .await
    }

    pub async fn read(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        count: u32,
    ) -> Result<ReadReply> {
        self.timed(Op::Read, async {
            let r = self.resolve(fh)?;
            let reply = self
                .on_owner(r, cred, move |s, r, c| async move {
                    s.read(&r, &c, offset, count).await
                })
                .await?;
            // Front ends size their reply buffers by `count`.
            assert!(reply.len() <= count as usize, "read gave more than asked for");
            Ok(reply)
        })
        .await
    }

    /// Bring bytes `offset..offset+len` of a file into the cache exactly as
    /// a read would, without returning them (cache pre-warming). Says how
    /// much was cached already and how much came from the core filer.
    pub async fn prefetch(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        len: u64,
    ) -> Result<Prefetched> {
        let r = self.resolve(fh)?;
        self.on_owner(r, cred, move |s, r, c| async move {
            s.prefetch(&r, &c, offset, len).await
        })
        .await
    }

    /// Write as `cred`: with write permission, or as the file's owner
    /// (knfsd's owner override: a file created read-only stays writable to
    /// the owner, e.g. through the NFS create that made it).
    pub async fn write(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<WriteReply> {
        self.write_as(cred, fh, offset, data, stability, false).await
    }

    /// Write through an open that the front end granted write access when
    /// it was made (an SMB handle): a later change of the mode or of the
    /// READONLY attribute does not take that access back.
    pub async fn write_opened(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<WriteReply> {
        self.write_as(cred, fh, offset, data, stability, true).await
    }

    pub(super) async fn write_as(
        &self,
        cred: &Credentials,
        fh: &FileHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
        opened: bool,
    ) -> Result<WriteReply> {
        self.timed(Op::Write, async {
            let r = self.resolve(fh)?;
            let (count, committed, wcc) = self
                .on_owner(r, cred, move |s, r, c| async move {
                    let out = s.write(&r, &c, offset, data, stability, opened).await?;
                    s.notify(c.origin, || ChangeKind::Write {
                        file: s.handle(&r),
                        offset,
                        len: u64::from(out.0),
                    });
                    Ok(out)
                })
                .await?;
            Ok(WriteReply {
                count,
                committed,
                verifier: self.write_verifier(),
                wcc,
            })
        })
        .await
    }

    /// Make the file's unstable writes durable; returns the write verifier.
    /// `WritesLost` when the core filer lost unstable writes: the verifier
    /// has changed by then, so an NFS client that sees it resends, and a
    /// front end without verifiers reports the loss.
    pub async fn commit(&self, cred: &Credentials, fh: &FileHandle) -> Result<(BeforeAfter, u64)> {
        self.timed(Op::Commit, async {
            let r = self.resolve(fh)?;
            match self
                .on_owner(r, cred, move |s, r, c| async move { s.commit(&r, &c).await })
                .await
            {
                Ok(wcc) => Ok((wcc, self.write_verifier())),
                // A verifier no client has seen makes every client resend
                // its uncommitted writes, which the core filer may have lost.
                Err(Error::WritesLost) => {
                    let v = &self.running.shared.write_verifier;
                    v.fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed);
                    Err(Error::WritesLost)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    pub async fn fsstat(&self, cred: &Credentials, fh: &FileHandle) -> Result<(FsStat, Attr)> {
        self.timed(Op::Fsstat, async {
            let r = self.resolve(fh)?;
            self.on_owner(r, cred, move |s, r, c| async move { s.fsstat(&r, &c).await })
                .await
        })
        .await
    }

    pub async fn fsinfo(&self, fh: &FileHandle) -> Result<(FsInfo, Attr)> {
        let attr = self.getattr(fh).await?;
        let max = 1 << 20;
        Ok((
            FsInfo {
                rtmax: max,
                rtpref: max,
                rtmult: 4096,
                wtmax: max,
                wtpref: max,
                wtmult: 4096,
                dtpref: 64 << 10,
                max_file_size: i64::MAX as u64,
                time_delta: Timespec { sec: 0, nsec: 1 },
                link: true,
                symlink: true,
                homogeneous: true,
                can_set_time: true,
            },
            attr,
        ))
    }

    pub async fn pathconf(&self, fh: &FileHandle) -> Result<(PathConf, Attr)> {
        let attr = self.getattr(fh).await?;
        Ok((
            PathConf {
                link_max: 65_000,
                name_max: NAME_MAX as u32,
                no_trunc: true,
                chown_restricted: true,
                case_insensitive: false,
                case_preserving: true,
            },
            attr,
        ))
    }
}
