//! The index and the segments: where each block lives, looking a block up
//! for a read (from a buffer in memory, or planning a disk read and
//! checking what it brought), and appending a block to the open segment.

use super::*;

/// Set a block's hit bit; its first hit since it was written counts for its
/// segment.
pub(super) fn mark_hit(e: &mut Entry, segs: &mut [SegMeta]) {
    if !std::mem::replace(&mut e.hit, true) {
        if let Some(m) = segs.get_mut(e.seg as usize) {
            m.hits += 1;
        }
    }
}

impl Device {
    pub(super) fn seg_offset(&self, seg: u32) -> u64 {
        SUPERBLOCK_LEN + u64::from(seg) * u64::from(self.segment_size)
    }

    pub(super) fn seg_pages(&self) -> usize {
        self.segment_size as usize / PAGE
    }

    /// Look the block up. `Ok` when answered without disk I/O (miss, or hit
    /// in a buffer); `Err(plan)` when the pages must be read from disk.
    pub(super) fn plan_read(
        &self,
        key: BlockKey,
        gen: u32,
        offset: u32,
        len: u32,
    ) -> Result<Option<Bytes>, DiskRead> {
        let mut log = self.log.borrow_mut();
        let Log {
            index, segs, open, ..
        } = &mut *log;
        let Some(e) = index.get_mut(&key) else {
            self.c.misses.add(1);
            return Ok(None);
        };
        if e.gen != gen {
            index.remove(&key);
            self.c.misses.add(1);
            return Ok(None);
        }
        let stored = e.len as usize;
        let start = (offset as usize).min(stored);
        let end = (offset as usize).saturating_add(len as usize).min(stored);
        let base = e.page as usize * PAGE;
        let mem: Option<&[u8]> = match segs.get(e.seg as usize).map(|s| &s.state) {
            Some(SegState::Open) => open.as_ref().filter(|o| o.seg == e.seg).map(|o| o.buf.as_slice()),
            Some(SegState::Writing(buf)) => Some(buf.as_slice()),
            Some(SegState::Sealed) => {
                if start == end {
                    Some(&[])
                } else {
                    let first = start / PAGE;
                    let last = pages_of(end);
                    if let Some(crcs) = e.crcs.get(first..last) {
                        let crcs = crcs.into();
                        mark_hit(e, segs);
                        return Err(DiskRead {
                            seg: e.seg,
                            seq: segs[e.seg as usize].seq,
                            page: e.page,
                            file_off: self.seg_offset(e.seg) + (base + first * PAGE) as u64,
                            bytes: (last - first) * PAGE,
                            skip: start - first * PAGE,
                            take: end - start,
                            crcs,
                        });
                    }
                    None
                }
            }
            _ => None,
        };
        let data = mem.and_then(|m| {
            if start == end {
                Some(&[][..])
            } else {
                m.get(base + start..base + end)
            }
        });
        match data {
            Some(d) => {
                let out = Bytes::copy_from_slice(d);
                mark_hit(e, segs);
                self.c.hits.add(1);
                self.c.hit_bytes.add(out.len() as u64);
                Ok(Some(out))
            }
            None => {
                // The entry points nowhere valid; never serve it.
                tracing::error!(path = %self.path.display(), ?key, "NVMe index entry without data; dropped");
                index.remove(&key);
                self.c.misses.add(1);
                Ok(None)
            }
        }
    }

    /// Check what a disk read returned (`res`: the planned pages) and cut the
    /// requested bytes out of it.
    pub(super) fn finish_read(
        &self,
        key: BlockKey,
        plan: DiskRead,
        res: io::Result<Bytes>,
    ) -> io::Result<Option<Bytes>> {
        let mut log = self.log.borrow_mut();
        let same_entry = |log: &Log| {
            log.index
                .get(&key)
                .is_some_and(|e| e.seg == plan.seg && e.page == plan.page)
        };
        let buf = match res {
            Ok(buf) => buf,
            Err(err) => {
                if same_entry(&log) {
                    log.index.remove(&key);
                }
                self.c.read_errors.add(1);
                self.c.misses.add(1);
                tracing::warn!(path = %self.path.display(), offset = plan.file_off, %err, "NVMe cache read failed");
                return Err(err);
            }
        };
        // Reused since the read was planned: the pages may hold another block.
        let seg_ok = log
            .segs
            .get(plan.seg as usize)
            .is_some_and(|s| s.seq == plan.seq && matches!(s.state, SegState::Sealed));
        if !seg_ok {
            self.c.misses.add(1);
            return Ok(None);
        }
        let good = buf.len() == plan.bytes
            && buf
                .chunks(PAGE)
                .zip(&plan.crcs)
                .all(|(p, &c)| crate::crc32c(p) == c);
        if !good {
            if same_entry(&log) {
                log.index.remove(&key);
            }
            self.c.checksum_failures.add(1);
            self.c.misses.add(1);
            tracing::warn!(
                path = %self.path.display(),
                offset = plan.file_off,
                ?key,
                "NVMe cache block failed its checksum; dropped"
            );
            return Ok(None);
        }
        drop(log);
        self.c.hits.add(1);
        self.c.hit_bytes.add(plan.take as u64);
        // `Bytes::slice` by path: the `IoBuf::slice` in scope would shadow it.
        Ok(Some(Bytes::slice(&buf, plan.skip..plan.skip + plan.take)))
    }

    pub(super) fn insert(&self, key: BlockKey, gen: u32, data: &[u8]) -> Jobs {
        let mut jobs = Jobs::default();
        let mut log = self.log.borrow_mut();
        log.index.remove(&key);
        if data.is_empty() || data.len() > self.block_size as usize {
            return jobs;
        }
        let need = align_up(data.len());
        if log.open.as_ref().is_none_or(|o| o.buf.remaining() < need) {
            log.seal(&mut jobs);
            if !self.open_next(&mut log) {
                self.c.dropped_inserts.add(1);
                return jobs;
            }
        }
        let Log {
            index, segs, open, ..
        } = &mut *log;
        let Some(open) = open.as_mut() else {
            return jobs;
        };
        let page = open.buf.len() / PAGE;
        if !(open.buf.extend_from_slice(data) && open.buf.extend_zeroed(need - data.len())) {
            // Cannot happen (room was checked); decline rather than corrupt.
            open.buf.truncate(page * PAGE);
            self.c.dropped_inserts.add(1);
            return jobs;
        }
        let crcs = page_crcs(&open.buf.as_slice()[page * PAGE..]);
        index.insert(
            key,
            Entry {
                seg: open.seg,
                page: page as u32,
                len: data.len() as u32,
                gen,
                hit: false,
                crcs,
            },
        );
        if let Some(m) = segs.get_mut(open.seg as usize) {
            m.keys.push(key);
        }
        self.c.inserts.add(1);
        self.maybe_prefetch(&mut log, &mut jobs);
        jobs
    }
}

impl Log {
    /// The first segment after `from` in ring order that is not bad.
    pub(super) fn next_usable(&self, from: u32) -> Option<u32> {
        let n = self.segs.len();
        (1..=n)
            .map(|i| ((from as usize + i) % n) as u32)
            .find(|&s| !matches!(self.segs[s as usize].state, SegState::Bad))
    }

    /// Hand the open segment to a write job (nothing to do if it is empty).
    pub(super) fn seal(&mut self, jobs: &mut Jobs) {
        let Some(open) = self.open.take() else {
            return;
        };
        if open.buf.is_empty() {
            self.open = Some(open);
            return;
        }
        let buf = Rc::new(open.buf);
        if let Some(m) = self.segs.get_mut(open.seg as usize) {
            m.used_pages = (buf.len() / PAGE) as u32;
            m.state = SegState::Writing(Rc::clone(&buf));
            self.writing += 1;
            jobs.writes.push((open.seg, m.seq, buf));
        }
    }

    pub(super) fn take_buf(&mut self, cap: usize) -> AlignedBuf {
        match self.pool.pop() {
            Some(mut b) if b.capacity() >= cap => {
                b.clear();
                b
            }
            _ => AlignedBuf::with_capacity(cap),
        }
    }

    pub(super) fn put_buf(&mut self, mut b: AlignedBuf) {
        if self.pool.len() < MAX_POOLED_BUFFERS {
            b.clear();
            self.pool.push(b);
        }
    }
}
