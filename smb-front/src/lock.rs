//! LOCK: byte-range locks kept on the file's owning shard; unlock,
//! FAIL_IMMEDIATELY, and blocking locks that go async (STATUS_PENDING)
//! until the range frees up or the client cancels.

use smb_proto::io::{lock_flags as lf, LockRequest};
use smb_proto::NtStatus;

use crate::context::{Ctx, Reply, Result};
use crate::state::{on_file, LockRange};

pub(crate) async fn lock(ctx: &mut Ctx, req: LockRequest) -> Result<Reply> {
    let o = ctx.open(req.file_id)?;
    let srv = ctx.srv().clone();
    let first = req.locks.first().ok_or(NtStatus::INVALID_PARAMETER)?;
    let ranges: Vec<LockRange> = req
        .locks
        .iter()
        .map(|l| LockRange {
            key: o.key,
            off: l.offset,
            len: l.length,
            excl: l.flags & lf::EXCLUSIVE_LOCK != 0,
        })
        .collect();
    if first.flags & lf::UNLOCK != 0 {
        // Elements are taken in order: the ones before a bad one stay done.
        let flags: Vec<u32> = req.locks.iter().map(|l| l.flags).collect();
        on_file(&srv, o.fh, move |f| {
            ranges.iter().zip(flags).try_for_each(|(r, fl)| {
                if fl != lf::UNLOCK {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                f.unlock(r)
            })
        })
        .await??;
        return Ok(Reply::encode(smb_proto::simple::encode_empty));
    }
    let kind = lf::SHARED_LOCK | lf::EXCLUSIVE_LOCK;
    let valid =
        |f: u32| f & lf::UNLOCK == 0 && (f & kind == lf::SHARED_LOCK || f & kind == lf::EXCLUSIVE_LOCK);
    if req.locks.iter().any(|l| !valid(l.flags)) {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let immediate = req.locks.iter().all(|l| l.flags & lf::FAIL_IMMEDIATELY != 0);
    if !immediate && req.locks.len() > 1 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut cancel = None;
    loop {
        let (tx, rx) = async_channel::bounded(1);
        let rs = ranges.clone();
        let got = on_file(&srv, o.fh, move |f| {
            let r = f.lock(&rs);
            if r == Err(NtStatus::LOCK_NOT_GRANTED) {
                f.add_waiter(tx);
            }
            r
        })
        .await?;
        match got {
            Ok(()) => return Ok(Reply::encode(smb_proto::simple::encode_empty)),
            Err(NtStatus::LOCK_NOT_GRANTED) if !immediate => {}
            Err(e) => return Err(e),
        }
        let c = cancel.get_or_insert_with(|| ctx.go_async());
        let woke = rx.recv();
        let cancelled = c.recv();
        let closed = o.on_close.recv();
        futures::pin_mut!(woke, cancelled, closed);
        match futures::future::select(woke, futures::future::select(cancelled, closed)).await {
            futures::future::Either::Left(_) => {}
            futures::future::Either::Right((futures::future::Either::Left(_), _)) => {
                return Err(NtStatus::CANCELLED)
            }
            // The handle closed under the pending lock.
            futures::future::Either::Right((futures::future::Either::Right(_), _)) => {
                return Err(NtStatus::RANGE_NOT_LOCKED)
            }
        }
    }
}
