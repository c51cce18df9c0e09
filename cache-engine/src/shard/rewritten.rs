//! Which cached blocks of a file a write-back batch leaves, and with what
//! bytes: the core filer's copy went from `old_size` bytes through a cut, the
//! batch's writes and a final size, and the cache follows it block by block,
//! so that what was written back stays readable while the core filer is away.
//! Pure: the caller says what the cache held before.

use std::collections::BTreeMap;

use bytes::Bytes;

/// Hole blocks (past what the file held, never written) cached as zeros at
/// most: a larger hole is read from the core filer when asked for.
pub(super) const HOLE_BLOCKS_MAX: u64 = 256;

static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// A block's bytes up to the file's size, when known.
type Known = Option<Bytes>;

/// The batch's effect on the cache: `(block, Some(bytes))` to cache,
/// `(block, None)` to drop. Blocks not named are as they were.
///
/// `cached(block)` is the cached block as the core filer had it before, all
/// `min(bs, old_size - start)` bytes of it, or `None`.
pub(super) fn rewritten(
    bs: u64,
    old_size: u64,
    cut: Option<u64>,
    writes: &[(u64, Bytes)],
    end_size: u64,
    cached: impl Fn(u64) -> Option<Bytes>,
) -> Vec<(u64, Known)> {
    debug_assert!(bs > 0 && writes.windows(2).all(|w| w[0].0 + w[0].1.len() as u64 <= w[1].0));
    // Below `low`, bytes are the old ones; past it, zeros until written.
    let low = cut.map_or(old_size, |c| c.min(old_size));
    let mut size = cut.unwrap_or(old_size);
    let mut blocks: BTreeMap<u64, Known> = BTreeMap::new();
    let base = |block: u64, size: u64| -> Known {
        let start = block * bs;
        let len = (size.saturating_sub(start)).min(bs) as usize;
        let keep = (low.saturating_sub(start)).min(bs) as usize;
        let old = if keep == 0 { Bytes::new() } else { cached(block)? };
        Some(extend(old.slice(..keep.min(old.len())), len))
    };
    // The cut drops whole blocks past it and shortens the one it falls in.
    if let Some(c) = cut.filter(|&c| c < old_size) {
        for block in c / bs..=(old_size - 1) / bs {
            blocks.insert(
                block,
                if block * bs >= c {
                    Some(Bytes::new())
                } else {
                    base(block, c)
                },
            );
        }
    }
    // The old last block grows (zeros) if the file does.
    if !old_size.is_multiple_of(bs) && low == old_size {
        let last = old_size / bs;
        blocks.entry(last).or_insert_with(|| base(last, old_size));
    }
    for (off, data) in writes.iter().filter(|(_, d)| !d.is_empty()) {
        let end = off + data.len() as u64;
        for block in off / bs..=(end - 1) / bs {
            let start = block * bs;
            let (from, to) = (off.max(&start) - start, end.min(start + bs) - start);
            let piece = data.slice((start + from - off) as usize..(start + to - off) as usize);
            let cur = blocks.remove(&block).unwrap_or_else(|| base(block, size));
            let next = match cur {
                Some(b) => Some(overlay(b, from as usize, &piece)),
                // Unknown old bytes: only a write of the whole block knows it.
                None if from == 0 && to == bs => Some(own(piece, data.len())),
                None => None,
            };
            blocks.insert(block, next);
        }
        size = size.max(end);
    }
    // The final size: blocks past it go, the last one is cut or grows.
    for (block, known) in blocks.iter_mut() {
        let len = (end_size.saturating_sub(block * bs)).min(bs) as usize;
        if let Some(b) = known.take() {
            *known = Some(if b.len() >= len {
                b.slice(..len)
            } else {
                extend(b, len)
            });
        }
    }
    // Holes the batch made (past `low`, below the end, not written) read as
    // zeros: cached as such, within a bound.
    if bs as usize <= ZEROS.len() && end_size > low {
        let first = low.div_ceil(bs);
        let last = (end_size - 1) / bs;
        if last >= first && last - first < HOLE_BLOCKS_MAX {
            for block in first..=last {
                let len = (end_size - block * bs).min(bs) as usize;
                blocks
                    .entry(block)
                    .or_insert(Some(Bytes::from_static(&ZEROS[..len])));
            }
        }
    }
    blocks
        .into_iter()
        .map(|(b, k)| (b, k.filter(|d| !d.is_empty())))
        .collect()
}

/// `b` with zeros after it up to `len` bytes.
fn extend(b: Bytes, len: usize) -> Bytes {
    if b.len() >= len {
        return b;
    }
    if b.is_empty() && len <= ZEROS.len() {
        return Bytes::from_static(&ZEROS[..len]);
    }
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&b);
    v.resize(len, 0);
    v.into()
}

/// `b` with `piece` written at `from` (growing it with zeros as needed).
fn overlay(b: Bytes, from: usize, piece: &Bytes) -> Bytes {
    if from == 0 && piece.len() >= b.len() {
        return Bytes::copy_from_slice(piece);
    }
    let mut v = Vec::with_capacity(b.len().max(from + piece.len()));
    v.extend_from_slice(&b);
    v.resize(v.len().max(from + piece.len()), 0);
    v[from..from + piece.len()].copy_from_slice(piece);
    v.into()
}

/// A whole-block piece of a write of `write_len` bytes, to keep: a smaller
/// write is a slice of its connection's receive buffer, which a kept slice
/// would hold whole, so it is copied.
fn own(piece: Bytes, write_len: usize) -> Bytes {
    if write_len >= crate::rt::msgbuf::MIN {
        piece
    } else {
        Bytes::copy_from_slice(&piece)
    }
}

#[cfg(test)]
mod tests;
