//! Against a byte-vector model of the core filer's copy: every block the
//! rewrite keeps holds exactly the new bytes, every cached block it leaves
//! alone still does, and with the old file wholly cached nothing of the new
//! one (within the hole bound) is left for the core filer to be asked.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const BS: u64 = 16;

/// Writes ascending and not overlapping, as a batch has them.
fn writes() -> impl Strategy<Value = Vec<(u64, u64)>> {
    proptest::collection::vec((0u64..40, 1u64..40), 0..6).prop_map(|gaps| {
        let mut at = 0;
        gaps.into_iter()
            .map(|(gap, len)| {
                let w = (at + gap, len);
                at += gap + len;
                w
            })
            .collect()
    })
}

/// Old size, cut, writes (offset, length), what decides the final size,
/// the old blocks cached.
type Case = (u64, Option<u64>, Vec<(u64, u64)>, u64, BTreeSet<u64>);

fn case() -> impl Strategy<Value = Case> {
    (
        0u64..120,
        proptest::option::of(0u64..150),
        writes(),
        0u64..250,
        proptest::collection::btree_set(0u64..16, 0..16),
    )
}

fn check(old_size: u64, cut: Option<u64>, ws: &[(u64, u64)], extra: u64, cached: &BTreeSet<u64>) {
    let old: Vec<u8> = (0..old_size).map(|i| (i % 251) as u8 + 1).collect();
    let mut new = old.clone();
    if let Some(c) = cut {
        new.resize(c as usize, 0);
    }
    let writes: Vec<(u64, Bytes)> = ws
        .iter()
        .enumerate()
        .map(|(n, &(off, len))| (off, Bytes::from(vec![n as u8 + 100; len as usize])))
        .collect();
    for (off, d) in &writes {
        let end = *off as usize + d.len();
        if new.len() < end {
            new.resize(end, 0);
        }
        new[*off as usize..end].copy_from_slice(d);
    }
    // The final size: at least what the writes made, as a batch's is.
    let end_size = new.len() as u64 + extra % 3 * (extra % 70);
    new.resize(end_size as usize, 0);
    let block_of = |v: &[u8], b: u64| -> Bytes {
        let s = ((b * BS) as usize).min(v.len());
        let e = (((b + 1) * BS) as usize).min(v.len());
        Bytes::copy_from_slice(&v[s..e])
    };
    let got = rewritten(BS, old_size, cut, &writes, end_size, |b| {
        cached
            .contains(&b)
            .then(|| block_of(&old, b))
            .filter(|d| !d.is_empty())
    });
    let named: BTreeSet<u64> = got.iter().map(|(b, _)| *b).collect();
    assert_eq!(named.len(), got.len(), "a block named twice: {got:?}");
    for (b, k) in &got {
        if let Some(d) = k {
            assert_eq!(d, &block_of(&new, *b), "block {b} kept with the wrong bytes");
        }
    }
    for b in cached
        .iter()
        .filter(|b| !named.contains(b) && **b * BS < old_size)
    {
        assert_eq!(
            block_of(&old, *b),
            block_of(&new, *b),
            "block {b} left cached but changed"
        );
    }
    let all_cached = (0..old_size.div_ceil(BS)).all(|b| cached.contains(&b));
    let holes = (end_size.div_ceil(BS)).saturating_sub(old_size.div_ceil(BS));
    if all_cached && holes < HOLE_BLOCKS_MAX {
        for b in 0..end_size.div_ceil(BS) {
            let known =
                got.iter().any(|(g, k)| *g == b && k.is_some()) || (!named.contains(&b) && b * BS < old_size);
            assert!(known, "block {b} of the new file is not cached: {got:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_cache_follows_the_core_filers_copy((old, cut, ws, extra, cached) in case()) {
        check(old, cut, &ws, extra, &cached);
    }
}

#[test]
fn a_cut_then_a_write_in_the_same_block_keeps_zeros_between() {
    check(40, Some(20), &[(36, 2)], 0, &(0..3).collect());
}
