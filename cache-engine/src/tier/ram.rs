//! RAM tier: S3-FIFO (Yang et al., SOSP '23), sized in bytes.
//!
//! A small FIFO takes new entries; those hit while there move to the main
//! FIFO, the rest leave a key in the ghost queue so that a quick return goes
//! straight to main. Main evicts like CLOCK with a 2-bit frequency. This keeps
//! one-pass scans (which client page caches make common) from flushing the
//! working set, and a hit costs a counter bump, no list surgery.

use std::collections::VecDeque;
use std::hash::Hash;

/// Values report their size in bytes.
pub trait Weigh {
    fn weight(&self) -> usize;
}

const FREQ_MAX: u8 = 3;

struct Slot<K, V> {
    key: K,
    value: V,
    freq: u8,
    in_main: bool,
    /// Tags queue records so that a reused slot is not mistaken for its predecessor.
    stamp: u64,
}

pub struct S3Fifo<K, V> {
    capacity: usize,
    small_target: usize,
    slots: Vec<Option<Slot<K, V>>>,
    free: Vec<usize>,
    index: crate::rt::FastMap<K, usize>,
    small: VecDeque<(usize, u64)>,
    main: VecDeque<(usize, u64)>,
    stamp: u64,
    small_weight: usize,
    main_weight: usize,
    ghost: crate::rt::FastMap<K, u64>,
    ghost_order: VecDeque<(K, u64)>,
    ghost_seq: u64,
}

impl<K: Hash + Eq + Clone, V: Weigh> S3Fifo<K, V> {
    pub fn new(capacity: usize) -> Self {
        S3Fifo {
            capacity,
            small_target: capacity / 10,
            slots: Vec::new(),
            free: Vec::new(),
            index: Default::default(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            stamp: 0,
            small_weight: 0,
            main_weight: 0,
            ghost: Default::default(),
            ghost_order: VecDeque::new(),
            ghost_seq: 0,
        }
    }

    pub fn weight(&self) -> usize {
        self.small_weight + self.main_weight
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Look up and count a hit.
    pub fn get(&mut self, key: &K) -> Option<&mut V> {
        let idx = *self.index.get(key)?;
        let slot = self.slots[idx].as_mut()?;
        slot.freq = (slot.freq + 1).min(FREQ_MAX);
        Some(&mut slot.value)
    }

    /// Look up without counting a hit.
    pub fn peek(&self, key: &K) -> Option<&V> {
        let idx = *self.index.get(key)?;
        self.slots[idx].as_ref().map(|s| &s.value)
    }

    /// Insert or replace; entries pushed out are appended to `evicted`.
    /// A value larger than the whole cache is not kept.
    pub fn insert(&mut self, key: K, value: V, evicted: &mut Vec<(K, V)>) {
        if let Some(old) = self.remove(&key) {
            evicted.push((key.clone(), old));
        }
        let w = value.weight();
        if w > self.capacity {
            evicted.push((key, value));
            return;
        }
        while self.weight() + w > self.capacity {
            if !self.evict_one(evicted) {
                break;
            }
        }
        let to_main = self.ghost.remove(&key).is_some();
        self.stamp += 1;
        let stamp = self.stamp;
        let slot = Slot {
            key: key.clone(),
            value,
            freq: 0,
            in_main: to_main,
            stamp,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.index.insert(key, idx);
        if to_main {
            self.main.push_back((idx, stamp));
            self.main_weight += w;
        } else {
            self.small.push_back((idx, stamp));
            self.small_weight += w;
        }
        debug_assert!(self.weight() <= self.capacity, "RAM tier over its capacity");
        self.compact();
    }

    /// Removals leave records in the queues; drop them once they dominate.
    fn compact(&mut self) {
        let limit = 2 * self.index.len() + 64;
        if self.small.len() + self.main.len() > limit {
            let slots = &self.slots;
            let live = |&(i, stamp): &(usize, u64), main: bool| matches!(&slots[i], Some(s) if s.stamp == stamp && s.in_main == main);
            self.small.retain(|r| live(r, false));
            self.main.retain(|r| live(r, true));
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let idx = self.index.remove(key)?;
        let slot = self.slots[idx].take()?;
        // The queue keeps the stale index; it is skipped when popped.
        if slot.in_main {
            self.main_weight -= slot.value.weight();
        } else {
            self.small_weight -= slot.value.weight();
        }
        self.free.push(idx);
        Some(slot.value)
    }

    fn evict_one(&mut self, evicted: &mut Vec<(K, V)>) -> bool {
        if (self.small_weight > self.small_target || self.main_weight == 0) && self.evict_small(evicted) {
            return true;
        }
        self.evict_main(evicted) || self.evict_small(evicted)
    }

    fn evict_small(&mut self, evicted: &mut Vec<(K, V)>) -> bool {
        while let Some((idx, stamp)) = self.small.pop_front() {
            let Some(slot) = self.slots[idx].as_mut() else {
                continue;
            };
            if slot.in_main || slot.stamp != stamp {
                continue;
            }
            let w = slot.value.weight();
            self.small_weight -= w;
            if slot.freq > 0 {
                slot.freq = 0;
                slot.in_main = true;
                self.main_weight += w;
                self.main.push_back((idx, stamp));
                continue;
            }
            let Some(slot) = self.slots[idx].take() else {
                continue;
            };
            self.index.remove(&slot.key);
            self.free.push(idx);
            self.remember(slot.key.clone());
            evicted.push((slot.key, slot.value));
            return true;
        }
        false
    }

    fn evict_main(&mut self, evicted: &mut Vec<(K, V)>) -> bool {
        while let Some((idx, stamp)) = self.main.pop_front() {
            let Some(slot) = self.slots[idx].as_mut() else {
                continue;
            };
            if !slot.in_main || slot.stamp != stamp {
                continue;
            }
            if slot.freq > 0 {
                slot.freq -= 1;
                self.main.push_back((idx, stamp));
                continue;
            }
            let Some(slot) = self.slots[idx].take() else {
                continue;
            };
            self.main_weight -= slot.value.weight();
            self.index.remove(&slot.key);
            self.free.push(idx);
            evicted.push((slot.key, slot.value));
            return true;
        }
        false
    }

    /// Ghost entries are bounded by the number of live entries.
    fn remember(&mut self, key: K) {
        self.ghost_seq += 1;
        self.ghost.insert(key.clone(), self.ghost_seq);
        self.ghost_order.push_back((key, self.ghost_seq));
        let limit = self.index.len().max(16);
        while self.ghost.len() > limit {
            let Some((k, seq)) = self.ghost_order.pop_front() else {
                break;
            };
            if self.ghost.get(&k) == Some(&seq) {
                self.ghost.remove(&k);
            }
        }
        // Drop queue records of keys that left the ghost another way.
        while self.ghost_order.len() > 2 * limit {
            let Some((k, seq)) = self.ghost_order.pop_front() else {
                break;
            };
            if self.ghost.get(&k) == Some(&seq) {
                self.ghost.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for u32 {
        fn weight(&self) -> usize {
            *self as usize
        }
    }

    fn fill(c: &mut S3Fifo<u64, u32>, keys: impl Iterator<Item = u64>) -> Vec<(u64, u32)> {
        let mut ev = Vec::new();
        for k in keys {
            if c.get(&k).is_none() {
                c.insert(k, 10, &mut ev);
            }
        }
        ev
    }

    #[test]
    fn stays_within_capacity() {
        let mut c = S3Fifo::new(1000);
        fill(&mut c, 0..10_000);
        assert!(c.weight() <= 1000);
        assert_eq!(c.len(), 100);
    }

    #[test]
    fn oversized_value_is_refused() {
        let mut c: S3Fifo<u64, u32> = S3Fifo::new(100);
        let mut ev = Vec::new();
        c.insert(1, 101, &mut ev);
        assert!(c.peek(&1).is_none());
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn replace_and_remove_keep_weights() {
        let mut c: S3Fifo<u64, u32> = S3Fifo::new(100);
        let mut ev = Vec::new();
        c.insert(1, 10, &mut ev);
        c.insert(1, 20, &mut ev);
        assert_eq!(c.weight(), 20);
        assert_eq!(c.remove(&1), Some(20));
        assert_eq!(c.weight(), 0);
        assert!(c.is_empty());
    }

    #[test]
    fn scan_does_not_flush_hot_set() {
        let mut c = S3Fifo::new(1000);
        // A hot set of 50 entries, touched repeatedly.
        for _ in 0..4 {
            fill(&mut c, 0..50);
        }
        // A one-pass scan of 10x the cache.
        fill(&mut c, 1_000..2_000);
        let hot = (0..50).filter(|k| c.peek(k).is_some()).count();
        assert!(hot >= 45, "only {hot} of 50 hot entries survived the scan");
    }

    #[test]
    fn ghost_hit_goes_to_main() {
        let mut c = S3Fifo::new(100);
        fill(&mut c, 0..10);
        // Push key 0 out of small into the ghost queue.
        fill(&mut c, 10..11);
        assert!(c.peek(&0).is_none());
        let mut ev = Vec::new();
        c.insert(0, 10, &mut ev);
        let idx = c.index[&0];
        assert!(c.slots[idx].as_ref().unwrap().in_main);
    }

    #[test]
    fn removals_do_not_grow_queues() {
        let mut c: S3Fifo<u64, u32> = S3Fifo::new(1 << 30);
        let mut ev = Vec::new();
        for k in 0..100_000 {
            c.insert(k, 10, &mut ev);
            c.remove(&k);
        }
        assert!(c.small.len() + c.main.len() <= 64 + 2);
    }

    #[test]
    fn ghost_is_bounded() {
        let mut c = S3Fifo::new(100);
        fill(&mut c, 0..100_000);
        assert!(c.ghost.len() <= 16.max(c.len()));
        assert!(c.ghost_order.len() <= 2 * 16.max(c.len()) + 1);
    }
}
