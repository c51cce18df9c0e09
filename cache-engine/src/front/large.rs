//! Large messages (WRITE payloads): each is read straight into a buffer of
//! its own, with no copy out of a shared read buffer, and the buffer goes
//! back to a pool when the last `Bytes` of it drops, wherever that is (for
//! a write, when the RAM tier drops the blocks it kept as slices of it). A
//! fresh buffer is backed by huge pages: a page fault per 2 MiB, not per
//! 4 KiB, each zeroing the page it maps.
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::AsyncRead;

use super::limits::{read_or_idle, Idle};
use crate::rt::aligned::AlignedBuf;
use crate::rt::msgbuf::{self, pop};

pub use crate::rt::msgbuf::MIN;

/// A message's buffer starts this large (or as large as what has arrived)
/// and grows as its bytes arrive, so a length header alone costs little.
const FIRST: usize = 64 << 10;
/// Each growth makes a fresh buffer this many times larger.
const GROWTH: usize = 4;

/// Receive buffers of messages still arriving, in all connections: at most
/// `BUDGET` bytes; a message that would need more waits up to `BUDGET_WAIT`
/// for room, then its connection is closed.
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static BUDGET_WAIT_MS: AtomicUsize = AtomicUsize::new(10_000);
static HELD: AtomicUsize = AtomicUsize::new(0);
static BUDGET_WARNED: super::limits::Throttled = super::limits::Throttled::new();

/// Bound the memory of large messages still arriving, in all connections
/// of all front ends, to `bytes`; one that would exceed it waits up to
/// `wait` for room, then its connection is closed.
pub fn set_receive_budget(bytes: usize, wait: std::time::Duration) {
    BUDGET.store(bytes, Ordering::Relaxed);
    BUDGET_WAIT_MS.store(
        wait.as_millis().try_into().unwrap_or(usize::MAX),
        Ordering::Relaxed,
    );
}

/// Bytes of receive buffer charged to the budget now.
pub fn receive_buffers_held() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// The budget one message's buffers hold; given back when dropped.
struct Charge(usize);

impl Charge {
    /// Hold `to` bytes in all, waiting for room in the budget.
    async fn hold(&mut self, to: usize) -> std::io::Result<()> {
        let more = to.saturating_sub(self.0);
        let step = std::time::Duration::from_millis(10);
        let mut waited = 0;
        loop {
            let held = HELD.fetch_add(more, Ordering::Relaxed);
            if held.saturating_add(more) <= BUDGET.load(Ordering::Relaxed) {
                self.0 += more;
                return Ok(());
            }
            HELD.fetch_sub(more, Ordering::Relaxed);
            if waited >= BUDGET_WAIT_MS.load(Ordering::Relaxed) {
                metrics::counter!("weir_receive_budget_refused_total").increment(1);
                if BUDGET_WARNED.now() {
                    tracing::warn!(
                        "a message found no room in the receive buffer budget ({} bytes held); its connection is closed",
                        held
                    );
                }
                return Err(std::io::ErrorKind::OutOfMemory.into());
            }
            compio::time::sleep(step).await;
            waited += step.as_millis() as usize;
        }
    }

    fn release(&mut self, bytes: usize) {
        let b = bytes.min(self.0);
        self.0 -= b;
        HELD.fetch_sub(b, Ordering::Relaxed);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// The next buffer of a message of `len` bytes that has outgrown `buf`:
/// a pooled one that takes all of it (memory the process holds already),
/// else a fresh one `GROWTH` times larger. What arrived is copied over.
async fn grow(buf: AlignedBuf, len: usize, charge: &mut Charge) -> std::io::Result<AlignedBuf> {
    let mut next = match pop() {
        Some(b) if b.capacity() >= len => {
            charge.hold(charge.0 + b.capacity()).await?;
            b
        }
        _ => {
            let cap = crate::rt::aligned::align_up(len.min(buf.capacity().saturating_mul(GROWTH)));
            charge.hold(charge.0 + cap).await?;
            AlignedBuf::with_capacity(cap)
        }
    };
    next.extend_from_slice(buf.as_slice());
    charge.release(buf.capacity());
    Ok(next)
}

/// Read the rest of a `len`-byte message of which `head` has arrived. A
/// connection that ends first is an `UnexpectedEof` error; one that `idle`
/// says has been silent too long, `TimedOut`; one whose message finds no
/// room in the receive budget, `OutOfMemory`.
pub async fn read_rest(
    rd: &mut impl AsyncRead,
    head: &[u8],
    len: usize,
    mut idle: impl FnMut() -> Idle,
) -> std::io::Result<Bytes> {
    let head = &head[..head.len().min(len)];
    let first = crate::rt::aligned::align_up(len.min(FIRST.max(head.len())));
    let mut charge = Charge(0);
    charge.hold(first).await?;
    let mut buf = AlignedBuf::with_capacity(first);
    buf.extend_from_slice(head);
    while buf.len() < len {
        if buf.remaining() == 0 {
            buf = grow(buf, len, &mut charge).await?;
        }
        let at = buf.len();
        // The slice ends at the message: the next one stays in the socket.
        let end = len.min(buf.capacity());
        let Some(BufResult(res, slice)) = read_or_idle(rd.read(buf.slice(at..end)), &mut idle).await else {
            return Err(std::io::ErrorKind::TimedOut.into());
        };
        buf = slice.into_inner();
        match res {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(msgbuf::into_bytes(buf))
}

/// What a connection's read loop does when its framer holds no whole
/// message, given the framer's `take_partial(MIN)`: `Ok(Some(msg))`, a
/// large message read here (run it before reading more); `Ok(None)`,
/// read more into the framer's buffer; `Err(())`, close the connection.
pub async fn read_taken<E>(
    rd: &mut impl AsyncRead,
    taken: Result<Option<(usize, bytes::BytesMut)>, E>,
    idle: impl FnMut() -> Idle,
) -> Result<Option<Bytes>, ()> {
    match taken {
        Ok(None) => Ok(None),
        Ok(Some((len, head))) => read_rest(rd, &head, len, idle).await.map(Some).map_err(drop),
        Err(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_message_buffer_grows_with_what_arrives_within_the_budget() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            set_receive_budget(1 << 20, Duration::ZERO);
            let far = || Idle::CloseAt(Instant::now() + Duration::from_secs(3600));
            // 8 MiB announced, 100 KiB sent: no more than a few times what
            // arrived is held, well inside the budget, until the stream ends.
            let data = vec![1u8; 100 << 10];
            let e = read_rest(&mut &data[..], b"head", 8 << 20, far)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
            assert_eq!(receive_buffers_held(), 0);
            // A message that arrives whole comes out whole.
            let data: Vec<u8> = (0..700 << 10).map(|i| (i % 251) as u8).collect();
            let msg = read_rest(&mut &data[4..], &data[..4], data.len(), far)
                .await
                .unwrap();
            assert_eq!(&msg[..], &data[..]);
            assert_eq!(receive_buffers_held(), 0);
            // One that outgrows the budget closes its connection.
            let data = vec![1u8; 2 << 20];
            let e = read_rest(&mut &data[..], b"", 2 << 20, far).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::OutOfMemory);
            assert_eq!(receive_buffers_held(), 0);
            // A silent one goes when `idle` says so.
            let e = read_rest(&mut Silent, b"head", 1 << 20, || Idle::CloseAt(Instant::now()))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            assert_eq!(receive_buffers_held(), 0);
        });
    }

    /// A peer that sends nothing more.
    struct Silent;

    impl AsyncRead for Silent {
        async fn read<B: compio::buf::IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
            futures::future::pending::<()>().await;
            BufResult(Ok(0), buf)
        }
    }
}
