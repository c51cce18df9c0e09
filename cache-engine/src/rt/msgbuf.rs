//! The pool of message buffers: large messages (WRITE payloads) are read
//! each into an aligned buffer of its own, which goes back here when the
//! last `Bytes` of it drops, wherever that is (for a write, when the RAM
//! tier drops the blocks it kept as slices of it). A reused buffer spares
//! the kernel's zeroing of fresh pages.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;

use super::aligned::AlignedBuf;

/// Messages from this size on are each read into a buffer of their own,
/// which comes from this pool and goes back to it.
pub const MIN: usize = 128 << 10;
/// Buffers kept for reuse, shared by all shards: at most this many, of
/// at most `POOL_LIMIT` bytes in all.
const POOLED: usize = 1024;

static POOL: LazyLock<ArrayQueue<AlignedBuf>> = LazyLock::new(|| ArrayQueue::new(POOLED));
static POOL_BYTES: AtomicUsize = AtomicUsize::new(0);
/// The pool may always hold this much: eight 8 MiB SMB writes.
pub(crate) const MIN_POOL: usize = 64 << 20;
static POOL_LIMIT: AtomicUsize = AtomicUsize::new(MIN_POOL);

/// Keep up to `bytes` of buffers for reuse (the engine sets an eighth of
/// its RAM tier, at least `MIN_POOL`). A buffer the RAM tier held (a
/// written block) is free again once the tier drops it; reused, it
/// spares the next large message the kernel's zeroing of fresh pages,
/// which would otherwise take about a fifth of the server's time for
/// 8 MiB writes.
pub(crate) fn set_pool_limit(bytes: usize) {
    POOL_LIMIT.store(bytes, Ordering::Relaxed);
}

#[cfg(test)]
fn pooled_bytes() -> usize {
    POOL_BYTES.load(Ordering::Relaxed)
}

thread_local! {
    /// The buffers this thread let go of last, reused first: a buffer
    /// just written out is likely still in the CPU's cache, one from
    /// the back of the shared queue is not (which made receiving into it
    /// and writing it out again cost about a third more).
    static HOT: RefCell<Hot> = const { RefCell::new(Hot(Vec::new())) };
}

struct Hot(Vec<AlignedBuf>);

impl Drop for Hot {
    /// A thread that ends takes its buffers with it: uncount them.
    fn drop(&mut self) {
        let bytes: usize = self.0.iter().map(AlignedBuf::capacity).sum();
        POOL_BYTES.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Buffers each thread keeps in `HOT`; older ones go to the shared queue.
const HOT_PER_THREAD: usize = 4;

pub(crate) fn pop() -> Option<AlignedBuf> {
    let hot = HOT.try_with(|h| h.borrow_mut().0.pop()).ok().flatten();
    let b = hot.or_else(|| POOL.pop())?;
    POOL_BYTES.fetch_sub(b.capacity(), Ordering::Relaxed);
    Some(b)
}

pub(crate) fn push(mut b: AlignedBuf) {
    let cap = b.capacity();
    let held = POOL_BYTES.fetch_add(cap, Ordering::Relaxed) + cap;
    if held > POOL_LIMIT.load(Ordering::Relaxed) {
        POOL_BYTES.fetch_sub(cap, Ordering::Relaxed);
        return;
    }
    b.clear();
    // To the shared queue: the oldest of this thread's, or this one if
    // the thread is ending.
    let mut spare = Some(b);
    let _ = HOT.try_with(|h| {
        let h = &mut h.borrow_mut().0;
        h.extend(spare.take());
        if h.len() > HOT_PER_THREAD {
            spare = Some(h.remove(0));
        }
    });
    if let Some(older) = spare {
        let cap = older.capacity();
        if POOL.push(older).is_err() {
            POOL_BYTES.fetch_sub(cap, Ordering::Relaxed);
        }
    }
}

/// Fill the pool, from a thread of its own, with up to `count` buffers of
/// `cap` bytes whose pages are touched now: under write-behind each large
/// write holds its buffer until written back, so a burst takes fresh
/// memory, and faulting it in (zeroing) would cost more than the journal.
pub(crate) fn prefill(count: usize, cap: usize) {
    let fill = move || {
        for _ in 0..count {
            let mut b = AlignedBuf::with_capacity(cap);
            b.extend_zeroed(b.capacity());
            b.clear();
            let held = POOL_BYTES.fetch_add(b.capacity(), Ordering::Relaxed) + b.capacity();
            if held > POOL_LIMIT.load(Ordering::Relaxed) || POOL.push(b).is_err() {
                POOL_BYTES.fetch_sub(cap, Ordering::Relaxed);
                return;
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("weir-prefill".into())
        .spawn(fill)
    {
        tracing::warn!("message buffers not prefilled: {e}");
    }
}

struct Recycled(Option<AlignedBuf>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |b| b.as_slice())
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            push(b);
        }
    }
}

/// `b` as `Bytes` that give it back to the pool when the last of them drops.
pub(crate) fn into_bytes(b: AlignedBuf) -> Bytes {
    Bytes::from_owner(Recycled(Some(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_buffer_pool_keeps_no_more_than_its_limit_newest_first() {
        let pop_all = || {
            std::iter::from_fn(pop)
                .map(|b| (b.capacity() >> 20, b.len()))
                .collect::<Vec<_>>()
        };
        set_pool_limit(3 << 20);
        for mib in 1..=5 {
            push(AlignedBuf::with_capacity(mib << 20));
        }
        assert_eq!(pooled_bytes(), 3 << 20);
        assert_eq!(pop_all(), [(2, 0), (1, 0)]);
        assert_eq!(pooled_bytes(), 0);
        // A thread keeps the last few it let go of; older ones wait in the
        // shared queue, oldest first.
        set_pool_limit(64 << 20);
        for mib in 1..=6 {
            push(AlignedBuf::with_capacity(mib << 20));
        }
        let order: Vec<usize> = pop_all().into_iter().map(|(mib, _)| mib).collect();
        assert_eq!(order, [6, 5, 4, 3, 1, 2]);
        assert_eq!(pooled_bytes(), 0);
        // What a thread held when it ended no longer counts.
        std::thread::spawn(|| push(AlignedBuf::with_capacity(1 << 20)))
            .join()
            .unwrap();
        assert_eq!(pooled_bytes(), 0);
    }
}
