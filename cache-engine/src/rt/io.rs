//! Aligned direct I/O on a compio file, shared by the NVMe tier and the
//! journal: whole reads and writes that continue after short transfers, and
//! spawning a background task on the current runtime.

use std::future::{poll_fn, Future};
use std::io;
use std::rc::Rc;
use std::task::Poll;

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncReadAt, AsyncWriteAt};

use super::aligned::{AlignedBuf, ALIGN};

/// Spawn a background task on the current compio runtime; false if there is
/// none.
pub fn spawn_detached<F: Future<Output = ()> + 'static>(task: F) -> bool {
    compio::runtime::Runtime::try_with_current(|rt| rt.spawn(task).detach()).is_ok()
}

/// Read exactly `len` bytes (a multiple of 4096) at `pos` into `buf`, whose
/// capacity must be at least `len`. Continues after short reads.
pub async fn read_exact_at(
    file: &compio::fs::File,
    buf: AlignedBuf,
    pos: u64,
    len: usize,
) -> io::Result<AlignedBuf> {
    let mut buf = buf;
    buf.clear();
    if buf.capacity() < len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "read buffer too small",
        ));
    }
    while buf.len() < len {
        let done = buf.len();
        // Poll for the completion instead of sleeping on it: a wake-up per
        // read costs more than the read on a virtual disk.
        let _polling = super::poll::ReadInFlight::start();
        let BufResult(res, slice) = submit_now(file.read_at(buf.slice(done..len), pos + done as u64)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "cache file ended early",
                ))
            }
            Ok(_) if !buf.len().is_multiple_of(ALIGN) && buf.len() < len => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unaligned short read",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// Await an I/O op whose request goes to the kernel at once, not with the
/// runtime's next batch. Reads arrive a few at a time; left to the batch,
/// they complete together and go out together, and the device queue swings
/// between full and empty instead of staying full.
pub async fn submit_now<F: Future>(op: F) -> F::Output {
    let mut op = std::pin::pin!(op);
    if let Poll::Ready(out) = poll_fn(|cx| Poll::Ready(op.as_mut().poll(cx))).await {
        return out;
    }
    compio::runtime::Runtime::with_current(|rt| super::poll::poll_now(rt, &rt.waker()));
    op.await
}

/// Write all of `buf` at `pos`. Continues after short writes.
pub async fn write_all_at(file: &compio::fs::File, buf: Rc<AlignedBuf>, pos: u64) -> io::Result<()> {
    let total = buf.len();
    // O_DIRECT: a misaligned write would fail on some devices and not others.
    assert!(
        pos.is_multiple_of(ALIGN as u64) && total.is_multiple_of(ALIGN),
        "unaligned device write at {pos} of {total} bytes"
    );
    let mut buf = buf;
    let mut done = 0usize;
    let mut f = file;
    while done < total {
        let BufResult(res, slice) = f.write_at(buf.slice(done..), pos + done as u64).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "device accepted no bytes",
                ))
            }
            Ok(n) => {
                done += n;
                if done < total && !done.is_multiple_of(ALIGN) {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "unaligned short write"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
