//! A heap buffer aligned to 4 KiB, for `O_DIRECT` I/O through compio, and
//! for large network messages.
//!
//! `O_DIRECT` needs the memory address, the file offset and the length of every
//! transfer aligned to the device's logical block size; 4096 covers every
//! NVMe and SATA device we run on. `Vec<u8>` gives no alignment guarantee, so
//! this type allocates with an explicit [`Layout`]. Buffers of [`HUGE`] bytes
//! or more are aligned to it and asked to be backed by transparent huge pages:
//! fresh memory then costs one page fault per 2 MiB instead of one per 4 KiB.

use std::alloc::{self, Layout};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use compio::buf::{IoBuf, IoBufMut, SetLen};

/// Alignment of every buffer, file offset and length in direct I/O.
pub const ALIGN: usize = 4096;

/// A transparent huge page on x86-64 and arm64 (4 KiB base pages).
pub const HUGE: usize = 2 << 20;

/// Round `n` up to the next multiple of [`ALIGN`].
pub const fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// A fixed-capacity byte buffer whose start is 4096-aligned and whose capacity
/// is a multiple of 4096. `len` counts the initialized bytes; the rest of the
/// capacity is uninitialized until written (by [`AlignedBuf::extend_from_slice`],
/// [`AlignedBuf::extend_zeroed`] or a read op).
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
}

// SAFETY: the buffer exclusively owns its allocation (like `Vec<u8>`); nothing
// in it is tied to a thread, so moving it to or sharing it with another thread
// is as safe as it is for `Vec<u8>`. `bytes::Bytes::from_owner` needs `Send`.
unsafe impl Send for AlignedBuf {}
// SAFETY: `&AlignedBuf` only gives out `&[u8]` of initialized bytes.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// An empty buffer able to hold `cap` bytes, rounded up to a multiple of
    /// 4096 (at least 4096). Aborts like `Vec` if memory is exhausted.
    pub fn with_capacity(cap: usize) -> Self {
        let cap = align_up(cap.max(1));
        let layout = Self::layout(cap);
        // SAFETY: `layout` has a non-zero size (cap >= 4096).
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        if cap >= HUGE {
            // SAFETY: the range lies inside the allocation just made. The
            // advice only changes how the kernel backs the pages; when it is
            // refused (no THP), the memory is plain pages as before.
            unsafe { libc::madvise(raw.cast(), cap / HUGE * HUGE, libc::MADV_HUGEPAGE) };
        }
        AlignedBuf { ptr, cap, len: 0 }
    }

    /// A buffer of `len` zero bytes (capacity rounded up to 4096).
    pub fn zeroed(len: usize) -> Self {
        let cap = align_up(len.max(1));
        let layout = Self::layout(cap);
        // SAFETY: `layout` has a non-zero size (cap >= 4096).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        AlignedBuf { ptr, cap, len }
    }

    fn layout(cap: usize) -> Layout {
        // A capacity that overflows isize is a caller bug far beyond any cache
        // size; treat it like an allocation failure rather than panicking.
        let align = if cap >= HUGE { HUGE } else { ALIGN };
        match Layout::from_size_align(cap, align) {
            Ok(l) => l,
            Err(_) => alloc::handle_alloc_error(Layout::new::<[u8; ALIGN]>()),
        }
    }

    /// Initialized bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes that can still be appended.
    pub fn remaining(&self) -> usize {
        self.cap - self.len
    }

    /// Forget the contents (keeps the allocation, for reuse).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Shorten to `len` bytes (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `cap >= len` bytes and the first `len`
        // bytes are initialized (the invariant of this type).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Append `src`; returns false (and appends nothing) if it does not fit.
    pub fn extend_from_slice(&mut self, src: &[u8]) -> bool {
        if src.len() > self.remaining() {
            return false;
        }
        // SAFETY: the destination range [len, len + src.len()) lies inside the
        // allocation (checked above) and cannot overlap `src`, which is borrowed
        // immutably while `self` is borrowed mutably.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(self.len), src.len());
        }
        self.len += src.len();
        true
    }

    /// Append `n` zero bytes; returns false (and appends nothing) if they do
    /// not fit.
    pub fn extend_zeroed(&mut self, n: usize) -> bool {
        if n > self.remaining() {
            return false;
        }
        // SAFETY: [len, len + n) lies inside the allocation (checked above).
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(self.len), 0, n) };
        self.len += n;
        true
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated in `with_capacity`/`zeroed` with exactly
        // this layout (same `cap`, same alignment) and is freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.cap)) };
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl IoBuf for AlignedBuf {
    fn as_init(&self) -> &[u8] {
        self.as_slice()
    }
}

impl SetLen for AlignedBuf {
    /// # Safety
    /// The first `len` bytes must be initialized (compio calls this with the
    /// byte count the kernel reported for a read into this buffer).
    unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.cap);
        self.len = len.min(self.cap);
    }
}

impl IoBufMut for AlignedBuf {
    fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `ptr` is valid for `cap` bytes; `MaybeUninit<u8>` has the
        // layout of `u8` and may hold uninitialized memory; `&mut self` makes
        // the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<MaybeUninit<u8>>(), self.cap) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_sized() {
        let mut b = AlignedBuf::with_capacity(5000);
        assert_eq!(b.capacity(), 8192);
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert!(b.is_empty());
        assert!(b.extend_from_slice(b"hello"));
        assert!(b.extend_zeroed(3));
        assert_eq!(b.as_slice(), b"hello\0\0\0");
        assert!(!b.extend_zeroed(8192));
        b.truncate(2);
        assert_eq!(b.as_slice(), b"he");
        b.clear();
        assert_eq!(b.len(), 0);
        let mut h = AlignedBuf::with_capacity(HUGE + 1);
        assert_eq!(h.capacity(), HUGE + ALIGN);
        assert_eq!(h.as_slice().as_ptr() as usize % HUGE, 0);
        assert!(h.extend_zeroed(HUGE + 1));
        assert!(h.as_slice().iter().all(|&b| b == 0));
        let z = AlignedBuf::zeroed(10);
        assert_eq!(z.as_slice(), &[0u8; 10]);
        assert_eq!(z.capacity(), 4096);
    }

    #[test]
    fn bytes_from_owner_keeps_alignment() {
        let mut b = AlignedBuf::with_capacity(4096);
        assert!(b.extend_from_slice(&[7u8; 4096]));
        let ptr = b.as_slice().as_ptr();
        let bytes = bytes::Bytes::from_owner(b).slice(10..20);
        assert_eq!(&bytes[..], &[7u8; 10]);
        // No copy was made: the slice points into the original allocation.
        assert_eq!(bytes.as_ptr(), ptr.wrapping_add(10));
    }
}
