//! Reclaim: the ring moves on to its oldest segment, whose blocks are
//! dropped from the index except those hit since they were written, which
//! are copied into the new open segment from a background read of it.

use super::*;

impl Device {
    /// Open the next segment of the ring, reclaiming it. False when it cannot
    /// be used yet (still being written, too many writes in flight) or every
    /// segment is bad.
    pub(super) fn open_next(&self, log: &mut Log) -> bool {
        if log.open.is_some() {
            return true;
        }
        if log.writing >= MAX_WRITES_IN_FLIGHT {
            return false;
        }
        let Some(cand) = log.next_usable(log.head) else {
            return false;
        };
        if !matches!(log.segs[cand as usize].state, SegState::Free | SegState::Sealed) {
            return false;
        }
        let old_seq = log.segs[cand as usize].seq;
        let prefetched = match log.prefetch.take() {
            Some(p) if p.seg == cand && p.seq == old_seq => p.buf,
            // A read still in flight (or of another segment) is abandoned: its
            // task sees the prefetch gone and drops the data.
            _ => None,
        };
        let mut buf = log.take_buf(self.segment_size as usize);
        let old_keys = std::mem::take(&mut log.segs[cand as usize].keys);
        let mut keys = Vec::with_capacity(old_keys.len());
        // Keep room for at least one full block after the reinserted ones.
        let budget = (self.seg_pages() / 2).min(self.seg_pages() - pages_of(self.block_size as usize)) * PAGE;
        let (mut evicted, mut reinserted) = (0u64, 0u64);
        for key in old_keys {
            let mut e = match log.index.entry(key) {
                MapEntry::Occupied(o) if o.get().seg == cand => o.remove(),
                _ => continue,
            };
            let bytes = e.crcs.len() * PAGE;
            let src_range = e.page as usize * PAGE..e.page as usize * PAGE + bytes;
            let src = match &prefetched {
                Some(p) if e.hit && buf.len() + bytes <= budget => p.as_slice().get(src_range),
                _ => None,
            };
            let Some(src) = src else {
                evicted += 1;
                continue;
            };
            if src
                .chunks(PAGE)
                .zip(e.crcs.iter())
                .any(|(p, &c)| crate::crc32c(p) != c)
            {
                self.c.checksum_failures.add(1);
                tracing::warn!(path = %self.path.display(), ?key, "NVMe cache block failed its checksum during reclaim; dropped");
                continue;
            }
            let page = buf.len() / PAGE;
            if !buf.extend_from_slice(src) {
                evicted += 1;
                continue;
            }
            e.seg = cand;
            e.page = page as u32;
            e.hit = false;
            log.index.insert(key, e);
            keys.push(key);
            reinserted += 1;
        }
        if let Some(p) = prefetched {
            log.put_buf(p);
        }
        let seq = log.next_seq;
        log.next_seq += 1;
        let m = &mut log.segs[cand as usize];
        m.seq = seq;
        m.state = SegState::Open;
        m.used_pages = 0;
        m.keys = keys;
        m.hits = 0;
        log.open = Some(OpenSeg { seg: cand, buf });
        log.head = cand;
        self.c.evicted.add(evicted);
        self.c.reinserted.add(reinserted);
        if evicted + reinserted > 0 {
            tracing::debug!(segment = cand, evicted, reinserted, "NVMe segment reclaimed");
        }
        true
    }

    /// Start reading the segment the ring will reclaim next, so that its hit
    /// blocks can be reinserted without waiting when the time comes. One
    /// with no hit blocks is not read: reclaiming it evicts them all.
    pub(super) fn maybe_prefetch(&self, log: &mut Log, jobs: &mut Jobs) {
        if log.prefetch.is_some() {
            return;
        }
        let Some(open) = log.open.as_ref().map(|o| o.seg) else {
            return;
        };
        let Some(next) = log.next_usable(open) else {
            return;
        };
        let m = &log.segs[next as usize];
        if next == open || !matches!(m.state, SegState::Sealed) || m.used_pages == 0 || m.hits == 0 {
            return;
        }
        let live = m
            .keys
            .iter()
            .any(|k| log.index.get(k).is_some_and(|e| e.seg == next));
        if !live {
            // All stale: forget them so the next insert does not scan again.
            log.segs[next as usize].keys.clear();
            return;
        }
        let (seq, pages) = (m.seq, m.used_pages);
        log.prefetch = Some(Prefetch {
            seg: next,
            seq,
            buf: None,
            done: false,
        });
        jobs.prefetch = Some((next, seq, pages));
        self.c.reclaim_reads.add(1);
    }

    pub(super) fn finish_prefetch(&self, seg: u32, seq: u64, res: io::Result<AlignedBuf>) {
        let mut log = self.log.borrow_mut();
        let wanted = log
            .prefetch
            .as_ref()
            .is_some_and(|p| p.seg == seg && p.seq == seq && !p.done);
        match res {
            Ok(buf) if wanted => {
                if let Some(p) = log.prefetch.as_mut() {
                    p.buf = Some(buf);
                    p.done = true;
                }
            }
            Ok(buf) => log.put_buf(buf),
            Err(err) => {
                if wanted {
                    if let Some(p) = log.prefetch.as_mut() {
                        p.done = true;
                    }
                }
                self.c.read_errors.add(1);
                tracing::warn!(
                    path = %self.path.display(),
                    segment = seg,
                    %err,
                    "NVMe cache reclaim read failed; its blocks will not be reinserted"
                );
            }
        }
        let waiters = std::mem::take(&mut log.waiters);
        drop(log);
        waiters.into_iter().for_each(Waker::wake);
    }
}
