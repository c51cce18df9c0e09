//! The data path of a shard: reads served from RAM, NVMe or one shared core
//! filer read per missing range, read-ahead, and write-through writes whose bytes stay cached.

use std::rc::Rc;

use bytes::Bytes;
use futures::future::{FutureExt, LocalBoxFuture, Shared as SharedFuture};
use smallvec::SmallVec;

use super::rewritten::rewritten;
use super::{file_key, RamBlock, Readahead, Shard, Snapshot};
use crate::handle::Resolved;
use crate::perm;
use crate::tier::nvme::BlockKey;
use crate::types::*;
use crate::{Error, Result};

/// Result of a fetch of consecutive blocks, shared by everyone waiting on it.
type Fetch = SharedFuture<LocalBoxFuture<'static, Result<Rc<Vec<Bytes>>>>>;

/// A block being fetched: which fetch, and where in it the block is.
pub(crate) struct Inflight {
    id: u64,
    gen: u32,
    epoch: u64,
    fetch: Fetch,
    index: usize,
}

/// A write or setattr in flight to the core filer, changing blocks
/// `first..=last`. The core filer may apply overlapping ones in either order,
/// so none of them leaves its bytes in the cache.
pub(crate) struct Changing {
    id: u64,
    first: u64,
    last: u64,
    /// Another change of the same blocks was in flight meanwhile.
    overlapped: bool,
    /// Another change of the file was in flight meanwhile.
    crowded: bool,
}

/// One registered change; unregisters when it ends or is abandoned.
struct ChangeGuard<'a> {
    shard: &'a Shard,
    file: u64,
    id: u64,
}

impl ChangeGuard<'_> {
    /// Unregister the change: (overlapped, crowded) as in [`Changing`].
    fn end(self) -> (bool, bool) {
        let out = self.unregister();
        std::mem::forget(self);
        out.map_or((true, true), |c| (c.overlapped, c.crowded))
    }

    fn unregister(&self) -> Option<Changing> {
        let mut changing = self.shard.changing.borrow_mut();
        let list = changing.get_mut(&self.file)?;
        let at = list.iter().position(|c| c.id == self.id)?;
        let c = list.swap_remove(at);
        if list.is_empty() {
            changing.remove(&self.file);
        }
        Some(c)
    }
}

/// A change abandoned before it ended (its caller went away).
impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Largest single core filer read; longer ranges go as several reads in flight.
const MAX_FETCH: u64 = 1 << 20;
const RA_START: u64 = 128 << 10;

#[derive(Debug, Clone)]
pub struct ReadReply {
    /// The bytes read, as the cache holds them (one piece per block touched).
    pub data: Vec<Bytes>,
    pub eof: bool,
    pub attr: Attr,
}

impl ReadReply {
    pub fn len(&self) -> usize {
        self.data.iter().map(|b| b.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes as one buffer (copies when more than one block was read).
    pub fn to_bytes(&self) -> Bytes {
        match self.data.as_slice() {
            [one] => one.clone(),
            parts => {
                let mut v = Vec::with_capacity(self.len());
                for p in parts {
                    v.extend_from_slice(p);
                }
                v.into()
            }
        }
    }
}

/// What a prefetch found: bytes the cache already held, and bytes it had to
/// wait for from the core filer (fetched now, or already on their way).
#[derive(Debug, Clone, Copy)]
pub struct Prefetched {
    pub cached: u64,
    pub fetched: u64,
    pub attr: Attr,
}

/// Bytes `from..to` of a block, or as many of them as it holds.
fn cut(block: Bytes, from: u64, to: u64) -> Bytes {
    let len = block.len() as u64;
    block.slice(from.min(len) as usize..to.min(len) as usize)
}

/// Where one block of a read comes from.
enum Source {
    /// A whole cached block.
    Ready(Bytes),
    /// Exactly the requested bytes of the block.
    Cut(Bytes),
    Nvme,
    Wait(Fetch, usize),
}

impl Shard {
    fn bs(&self) -> u64 {
        self.cfg().block_size as u64
    }

    /// A RAM hit for `key` holding at least `need` bytes of generation `gen`.
    fn ram_get(&self, key: BlockKey, gen: u32, need: usize) -> Option<Bytes> {
        let mut ram = self.ram.borrow_mut();
        let hit = match ram.get(&key) {
            Some(b) if b.gen == gen && b.data.len() >= need => {
                if b.prefetched {
                    b.prefetched = false;
                    self.stats.readahead_used_bytes.increment(b.data.len() as u64);
                }
                Some(b.data.clone())
            }
            Some(_) => None,
            None => return None,
        };
        if hit.is_none() {
            ram.remove(&key);
        }
        hit
    }

    fn ram_insert(&self, key: BlockKey, block: RamBlock) {
        let mut evicted = Vec::new();
        {
            let mut ram = self.ram.borrow_mut();
            // An older copy is replaced, never spilled.
            ram.remove(&key);
            ram.insert(key, block, &mut evicted);
        }
        for (key, b) in evicted {
            self.stats.ram_evictions.increment(1);
            if b.prefetched {
                self.stats.readahead_wasted_bytes.increment(b.data.len() as u64);
            }
            if let (true, Some(nvme)) = (b.spill, &self.nvme) {
                let current = self
                    .files
                    .borrow()
                    .peek(&key.file)
                    .is_some_and(|st| st.gen == b.gen);
                if current {
                    nvme.insert(key, b.gen, &b.data);
                }
            }
        }
    }

    /// Drop cached blocks `first..=last` of a file from both tiers.
    fn drop_blocks(&self, file: u64, first: u64, last: u64) {
        let mut ram = self.ram.borrow_mut();
        let mut inflight = self.inflight.borrow_mut();
        for block in first..=last {
            let key = BlockKey { file, block };
            ram.remove(&key);
            inflight.remove(&key);
            if let Some(nvme) = &self.nvme {
                nvme.remove(key);
            }
        }
    }

    /// Start one core filer read for blocks `first..first+count`, shared by
    /// every reader of those blocks until it completes.
    fn fetch(
        self: &Rc<Self>,
        r: &Resolved,
        cred: &Credentials,
        snap: Snapshot,
        first: u64,
        count: u64,
        prefetch: bool,
    ) -> Fetch {
        let id = self.next_id();
        let bs = self.bs();
        let file = file_key(r);
        let shard = self.clone();
        let (r, cred) = (*r, cred.clone());
        let fut = async move {
            let filer = shard.filer(&r)?.clone();
            let len = (count * bs).min(u32::MAX as u64) as u32;
            let got = shard
                .filer_call(filer.read(&cred, &r.filer_handle, first * bs, len))
                .await;
            // Whatever the outcome, this fetch no longer answers for its blocks.
            {
                let mut inflight = shard.inflight.borrow_mut();
                for b in first..first + count {
                    let key = BlockKey { file, block: b };
                    if inflight.get(&key).is_some_and(|i| i.id == id) {
                        inflight.remove(&key);
                    }
                }
            }
            let got = got?;
            shard.stats.filer_reads.increment(1);
            shard.stats.filer_read_bytes.increment(got.data.len() as u64);
            let mut blocks = Vec::with_capacity(count as usize);
            for i in 0..count {
                let start = ((i * bs) as usize).min(got.data.len());
                let end = (((i + 1) * bs) as usize).min(got.data.len());
                blocks.push(got.data.slice(start..end));
            }
            // Fill the cache only if nothing changed the file meanwhile.
            let current = shard.files.borrow_mut().get(&file).map(|s| (s.gen, s.epoch));
            if current == Some((snap.gen, snap.epoch)) {
                for (i, data) in blocks.iter().enumerate() {
                    if data.is_empty() {
                        continue;
                    }
                    let key = BlockKey {
                        file,
                        block: first + i as u64,
                    };
                    if let Some(nvme) = &shard.nvme {
                        nvme.insert(key, snap.gen, data);
                    }
                    shard.ram_insert(
                        key,
                        RamBlock {
                            data: data.clone(),
                            gen: snap.gen,
                            prefetched: prefetch,
                            spill: false,
                        },
                    );
                }
            }
            Ok(Rc::new(blocks))
        }
        .boxed_local()
        .shared();
        {
            let mut inflight = self.inflight.borrow_mut();
            for i in 0..count {
                let key = BlockKey {
                    file,
                    block: first + i,
                };
                inflight.insert(
                    key,
                    Inflight {
                        id,
                        gen: snap.gen,
                        epoch: snap.epoch,
                        fetch: fut.clone(),
                        index: i as usize,
                    },
                );
            }
        }
        // Runs to completion even if every reader goes away (read-ahead has none).
        let driver = fut.clone();
        compio::runtime::spawn(async move {
            let _ = driver.await;
        })
        .detach();
        fut
    }

    /// The state of a regular file the caller may read.
    async fn readable(&self, r: &Resolved, cred: &Credentials) -> Result<Snapshot> {
        let snap = self.state(r, cred).await?;
        match snap.attr.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(Error::IsDir),
            _ => return Err(Error::Inval),
        }
        perm::require_read(cred, &self.presented(r, snap.attr))?;
        Ok(snap)
    }

    /// One core filer read per run of consecutive `missing` blocks (at most
    /// `MAX_FETCH` each): (first block, blocks, fetch).
    fn fetch_missing(
        self: &Rc<Self>,
        r: &Resolved,
        cred: &Credentials,
        snap: Snapshot,
        missing: &[u64],
    ) -> Vec<(u64, u64, Fetch)> {
        let bs = self.bs();
        let mut out = Vec::new();
        let mut i = 0;
        while i < missing.len() {
            let first = missing[i];
            let mut n = 1;
            while i + (n as usize) < missing.len()
                && missing[i + n as usize] == first + n
                && n * bs < MAX_FETCH
            {
                n += 1;
            }
            out.push((first, n, self.fetch(r, cred, snap, first, n, false)));
            i += n as usize;
        }
        out
    }

    pub(crate) async fn read(
        self: &Rc<Self>,
        r: &Resolved,
        cred: &Credentials,
        offset: u64,
        count: u32,
    ) -> Result<ReadReply> {
        let snap = self.readable(r, cred).await?;
        if self.is_dirty(r) {
            return self.read_dirty(r, cred, snap, offset, count).await;
        }
        self.read_cached(r, cred, snap, offset, count).await
    }

    /// A read of what the cache and the core filer hold of the file.
    pub(super) async fn read_cached(
        self: &Rc<Self>,
        r: &Resolved,
        cred: &Credentials,
        snap: Snapshot,
        offset: u64,
        count: u32,
    ) -> Result<ReadReply> {
        let attr = snap.attr;
        let size = attr.size;
        if count == 0 || offset >= size {
            return Ok(ReadReply {
                data: Vec::new(),
                eof: offset >= size,
                attr,
            });
        }
        let end = offset.saturating_add(count as u64).min(size);
        let bs = self.bs();
        let file = file_key(r);
        let (b0, b1) = (offset / bs, (end - 1) / bs);

        // Most reads span a block or two: keep their bookkeeping off the heap.
        let mut sources: SmallVec<[Source; 4]> = SmallVec::with_capacity((b1 - b0 + 1) as usize);
        let mut missing: SmallVec<[u64; 4]> = SmallVec::new();
        for block in b0..=b1 {
            let key = BlockKey { file, block };
            let need = (size - block * bs).min(bs) as usize;
            if let Some(data) = self.ram_get(key, snap.gen, need) {
                self.stats.ram_hits.increment(1);
                self.stats.ram_hit_bytes.increment(need as u64);
                sources.push(Source::Ready(data));
                continue;
            }
            self.stats.ram_misses.increment(1);
            self.stats.ram_miss_bytes.increment(need as u64);
            if self.nvme.as_ref().is_some_and(|n| n.contains(key, snap.gen)) {
                sources.push(Source::Nvme);
                continue;
            }
            let joined = self.inflight.borrow().get(&key).and_then(|i| {
                (i.gen == snap.gen && i.epoch == snap.epoch).then(|| (i.fetch.clone(), i.index))
            });
            match joined {
                Some((fetch, index)) => {
                    self.stats.coalesced_misses.increment(1);
                    sources.push(Source::Wait(fetch, index));
                }
                None => {
                    self.stats.nvme_miss_bytes.increment(need as u64);
                    missing.push(block);
                    sources.push(Source::Nvme); // placeholder, replaced below
                }
            }
        }
        for (first, n, fetch) in self.fetch_missing(r, cred, snap, &missing) {
            for k in 0..n {
                sources[(first + k - b0) as usize] = Source::Wait(fetch.clone(), k as usize);
            }
        }
        self.readahead(r, cred, snap, offset, end);

        // The requested bytes of block `block`, relative to the block.
        let range = |block: u64| {
            let start = block * bs;
            (offset.max(start) - start, end.min(start + bs) - start)
        };
        // Blocks on NVMe are read together: neighbours on disk share one I/O.
        if let Some(nvme) = &self.nvme {
            let on_nvme: SmallVec<[usize; 4]> = (0..sources.len())
                .filter(|&i| matches!(sources[i], Source::Nvme))
                .collect();
            if !on_nvme.is_empty() {
                let reqs: SmallVec<[_; 4]> = on_nvme
                    .iter()
                    .map(|&i| {
                        let block = b0 + i as u64;
                        let (from, to) = range(block);
                        (
                            BlockKey { file, block },
                            snap.gen,
                            from as u32,
                            (to - from) as u32,
                        )
                    })
                    .collect();
                let got = nvme.read_many(&reqs).await;
                for (&i, res) in on_nvme.iter().zip(got) {
                    let block = b0 + i as u64;
                    let (from, to) = range(block);
                    sources[i] = match res {
                        Ok(Some(d)) if d.len() as u64 == to - from => Source::Cut(d),
                        // Gone, failed its checksum, or unreadable: fetch it again.
                        _ => Source::Wait(self.fetch(r, cred, snap, block, 1, false), 0),
                    };
                }
            }
        }
        // Fetches run as tasks of their own: awaiting them in turn loses nothing.
        let mut data = Vec::with_capacity(sources.len());
        let mut got = offset;
        for (i, src) in sources.into_iter().enumerate() {
            let (from, to) = range(b0 + i as u64);
            let p = match src {
                Source::Cut(d) => d,
                Source::Ready(d) => cut(d, from, to),
                Source::Wait(fetch, idx) => cut(fetch.await?.get(idx).cloned().unwrap_or_default(), from, to),
                Source::Nvme => return Err(Error::ServerFault),
            };
            let short = (p.len() as u64) < (end.min((got / bs + 1) * bs) - got);
            got += p.len() as u64;
            data.push(p);
            // A block shorter than expected: the file shrank behind the cache.
            if short {
                break;
            }
        }
        Ok(ReadReply {
            data,
            eof: got >= size,
            attr,
        })
    }

    /// Bring `offset..offset+len` of a file into the cache as a read would
    /// (the same fetches, joined with any in flight, filling both tiers),
    /// without touching read-ahead or handing bytes back.
    pub(crate) async fn prefetch(
        self: &Rc<Self>,
        r: &Resolved,
        cred: &Credentials,
        offset: u64,
        len: u64,
    ) -> Result<Prefetched> {
        let snap = self.readable(r, cred).await?;
        let attr = snap.attr;
        let end = offset.saturating_add(len).min(attr.size);
        let mut out = Prefetched {
            cached: 0,
            fetched: 0,
            attr,
        };
        if offset >= end {
            return Ok(out);
        }
        let bs = self.bs();
        let file = file_key(r);
        let mut waits: Vec<Fetch> = Vec::new();
        let mut missing: Vec<u64> = Vec::new();
        for block in offset / bs..=(end - 1) / bs {
            let key = BlockKey { file, block };
            let need = (attr.size - block * bs).min(bs) as usize;
            let span = end.min((block + 1) * bs) - offset.max(block * bs);
            let in_ram = self
                .ram
                .borrow()
                .peek(&key)
                .is_some_and(|b| b.gen == snap.gen && b.data.len() >= need);
            if in_ram || self.nvme.as_ref().is_some_and(|n| n.contains(key, snap.gen)) {
                out.cached += span;
                continue;
            }
            out.fetched += span;
            let joined = self
                .inflight
                .borrow()
                .get(&key)
                .and_then(|i| (i.gen == snap.gen && i.epoch == snap.epoch).then(|| i.fetch.clone()));
            match joined {
                Some(fetch) => {
                    self.stats.coalesced_misses.increment(1);
                    waits.push(fetch);
                }
                None => {
                    self.stats.nvme_miss_bytes.increment(need as u64);
                    missing.push(block);
                }
            }
        }
        waits.extend(
            self.fetch_missing(r, cred, snap, &missing)
                .into_iter()
                .map(|(_, _, f)| f),
        );
        for w in futures::future::join_all(waits).await {
            w?;
        }
        Ok(out)
    }

    /// Grow the read-ahead window on sequential access and keep several
    /// ranges ahead of the reader in flight.
    fn readahead(self: &Rc<Self>, r: &Resolved, cred: &Credentials, snap: Snapshot, offset: u64, end: u64) {
        let key = file_key(r);
        let bs = self.bs();
        let max = self.cfg().readahead_max as u64;
        let (from, to) = {
            let mut files = self.files.borrow_mut();
            let Some(st) = files.get_mut(&key) else { return };
            let ra = &mut st.ra;
            let sequential = offset == ra.next || (offset < ra.next && end > ra.next);
            if !sequential && offset != 0 {
                *ra = Readahead {
                    next: end,
                    ..Default::default()
                };
                return;
            }
            ra.window = (ra.window * 2).clamp(RA_START, max.max(RA_START));
            ra.next = end;
            let to = end.saturating_add(ra.window).min(snap.attr.size);
            // Top up only when less than half a window is ahead of the reader,
            // so read-ahead goes out in large ranges, not one block per read.
            if ra.issued_to > end && ra.issued_to - end >= ra.window / 2 {
                return;
            }
            let from = ra.issued_to.max(end);
            if from >= to || max == 0 {
                return;
            }
            ra.issued_to = to;
            (from / bs, (to - 1) / bs)
        };
        let mut block = from;
        while block <= to {
            let key = BlockKey { file: key, block };
            let cached = self.ram.borrow().peek(&key).is_some_and(|b| b.gen == snap.gen)
                || self.nvme.as_ref().is_some_and(|n| n.contains(key, snap.gen))
                || self.inflight.borrow().contains_key(&key);
            if cached {
                block += 1;
                continue;
            }
            let n = (to - block + 1).min(MAX_FETCH / bs).max(1);
            // The fetch runs by itself; nobody waits for read-ahead.
            drop(self.fetch(r, cred, snap, block, n, true));
            block += n;
        }
    }

    /// A write as `cred`; `opened`: through an open the front end granted
    /// write access when it was made, which the mode now does not take back.
    pub(crate) async fn write(
        &self,
        r: &Resolved,
        cred: &Credentials,
        offset: u64,
        data: Bytes,
        stability: Stability,
        opened: bool,
    ) -> Result<(u32, Stability, BeforeAfter)> {
        let snap = self.state(r, cred).await?;
        match snap.attr.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(Error::IsDir),
            _ => return Err(Error::Inval),
        }
        if !opened {
            perm::require_write(cred, &self.presented(r, snap.attr))?;
        }
        if self.writes_behind(r) {
            return self.write_behind(r, cred, &snap, offset, data).await;
        }
        let len = data.len() as u64;
        let end = offset.checked_add(len).ok_or(Error::FBig)?;
        let bs = self.bs();
        let change = self.begin_change(file_key(r), offset / bs, (end.max(offset + 1) - 1) / bs);
        let filer = self.filer(r)?.clone();
        let fh = &r.filer_handle;
        let w = if opened {
            self.filer_call(filer.write_opened(cred, fh, offset, data.clone(), stability))
                .await?
        } else {
            self.filer_call(filer.write(cred, fh, offset, data.clone(), stability))
                .await?
        };
        let (overlapped, crowded) = change.end();
        self.stats.filer_writes.increment(1);
        self.stats.filer_write_bytes.increment(w.count as u64);
        // With no change of ours in flight beside this one, the file as the
        // core filer found it is the file as cached, unless someone changed
        // it behind the cache.
        let behind = !crowded
            && w.wcc
                .before
                .is_some_and(|b| b.size != snap.attr.size || b.mtime != snap.attr.mtime);
        if behind {
            self.refresh(r, None, true);
        }
        // Kept unless the core filer itself holds what was written where
        // the next read finds it at memory speed.
        let written = match w.wcc.after {
            Some(after) if !overlapped && !behind && w.count > 0 && !filer.caches_writes() => {
                let count = (w.count as usize).min(data.len());
                self.written_blocks(file_key(r), snap.gen, offset, &data.slice(..count), after.size)
            }
            _ => Vec::new(),
        };
        self.after_data_change(r, offset, len.max(1), w.wcc.after);
        self.keep_written(file_key(r), snap.gen, written);
        let before = w.wcc.before.or(Some(AttrStamp::from(&snap.attr)));
        Ok((
            w.count,
            w.committed,
            BeforeAfter {
                before,
                after: w.wcc.after,
            },
        ))
    }

    /// Register a change of blocks `first..=last` (none if `first > last`)
    /// about to go to the core filer.
    fn begin_change(&self, file: u64, first: u64, last: u64) -> ChangeGuard<'_> {
        let id = self.next_id();
        let mut changing = self.changing.borrow_mut();
        let list = changing.entry(file).or_default();
        let crowded = !list.is_empty();
        let mut overlapped = false;
        for c in list.iter_mut() {
            c.crowded = true;
            if c.first <= last && first <= c.last {
                c.overlapped = true;
                overlapped = true;
            }
        }
        list.push(Changing {
            id,
            first,
            last,
            overlapped,
            crowded,
        });
        ChangeGuard {
            shard: self,
            file,
            id,
        }
    }

    /// The blocks a write of `data` at `offset` leaves, as the cache should
    /// hold them (see [`rewritten`]); nothing if the file is not as the
    /// write found it.
    fn written_blocks(
        &self,
        file: u64,
        gen: u32,
        offset: u64,
        data: &Bytes,
        new_size: u64,
    ) -> Vec<(u64, Bytes)> {
        let old_size = match self.files.borrow().peek(&file) {
            Some(st) if st.gen == gen => st.attr.size,
            _ => return Vec::new(),
        };
        if new_size != old_size.max(offset + data.len() as u64) {
            return Vec::new();
        }
        self.rewritten_blocks(file, gen, old_size, None, &[(offset, data.clone())], new_size)
            .into_iter()
            .filter_map(|(b, k)| Some((b, k?)))
            .collect()
    }

    /// [`rewritten`] over the blocks RAM holds of `file` as generation `gen`.
    fn rewritten_blocks(
        &self,
        file: u64,
        gen: u32,
        old_size: u64,
        cut: Option<u64>,
        writes: &[(u64, Bytes)],
        end_size: u64,
    ) -> Vec<(u64, Option<Bytes>)> {
        let bs = self.bs();
        let ram = self.ram.borrow();
        rewritten(bs, old_size, cut, writes, end_size, |block| {
            let need = old_size.saturating_sub(block * bs).min(bs) as usize;
            ram.peek(&BlockKey { file, block })
                .filter(|b| b.gen == gen && b.data.len() >= need)
                .map(|b| b.data.slice(..need))
        })
    }

    /// Cache what a write left in RAM; NVMe gets it only when RAM evicts it,
    /// so a write costs no NVMe write while RAM holds what was written.
    fn keep_written(&self, file: u64, gen: u32, blocks: Vec<(u64, Bytes)>) {
        for (block, data) in blocks {
            self.stats.written_kept_bytes.increment(data.len() as u64);
            self.ram_insert(
                BlockKey { file, block },
                RamBlock {
                    data,
                    gen,
                    prefetched: false,
                    spill: true,
                },
            );
        }
    }

    /// After a write-back batch reached the core filer: the blocks it
    /// changed are cached as the core filer now has them where their old
    /// bytes were cached (so data written back stays readable while the
    /// core filer is away), else dropped, and fetches that began before
    /// fill nothing.
    pub(super) fn after_writeback(
        &self,
        r: &Resolved,
        cut: Option<u64>,
        writes: &[(u64, Bytes)],
        end_size: u64,
        after: Option<Attr>,
    ) {
        let key = file_key(r);
        let bs = self.bs();
        let (gen, old_size) = {
            let mut files = self.files.borrow_mut();
            match files.get_mut(&key) {
                Some(st) if st.filer_handle == r.filer_handle => {
                    st.epoch += 1;
                    (st.gen, st.attr.size)
                }
                _ => {
                    drop(files);
                    self.refresh(r, after, true);
                    return;
                }
            }
        };
        if end_size < old_size {
            self.drop_blocks(key, end_size.div_ceil(bs), (old_size - 1) / bs);
        }
        let mut keep = Vec::new();
        for (block, known) in self.rewritten_blocks(key, gen, old_size, cut, writes, end_size) {
            self.drop_blocks(key, block, block);
            keep.extend(known.map(|d| (block, d)));
        }
        self.keep_written(key, gen, keep);
        match after {
            Some(a) => {
                self.install(r, a, true);
            }
            None => self.expire(r),
        }
    }

    /// After the engine changed bytes `offset..offset+len`: drop the blocks
    /// they touch (and, past EOF, the old last block), and stop fetches that
    /// began before from filling the cache.
    fn after_data_change(&self, r: &Resolved, offset: u64, len: u64, after: Option<Attr>) {
        let key = file_key(r);
        let bs = self.bs();
        let old_size = {
            let mut files = self.files.borrow_mut();
            files.get_mut(&key).map(|st| {
                st.epoch += 1;
                st.attr.size
            })
        };
        let first = offset.min(old_size.unwrap_or(offset)) / bs;
        let last = (offset + len - 1) / bs;
        self.drop_blocks(key, first.min(last), last);
        match after {
            Some(a) => {
                self.install(r, a, true);
            }
            None => self.expire(r),
        }
    }

    pub(crate) async fn commit(&self, r: &Resolved, cred: &Credentials) -> Result<BeforeAfter> {
        let snap = self.state(r, cred).await?;
        if self.writes_behind(r) {
            // Every write was durable in the journal before it was answered.
            let stamp = AttrStamp::from(&self.presented(r, snap.attr));
            return Ok(BeforeAfter {
                before: Some(stamp),
                after: Some(self.presented(r, snap.attr)),
            });
        }
        let filer = self.filer(r)?.clone();
        let mut wcc = match self.filer_call(filer.commit(cred, &r.filer_handle)).await {
            // The core filer lost unstable writes the cache may hold.
            Err(Error::WritesLost) => {
                self.refresh(r, None, true);
                return Err(Error::WritesLost);
            }
            other => other?,
        };
        wcc.before = wcc.before.or(Some(AttrStamp::from(&snap.attr)));
        if let Some(a) = wcc.after {
            self.install(r, a, true);
        }
        Ok(wcc)
    }

    pub(crate) async fn setattr(
        &self,
        r: &Resolved,
        cred: &Credentials,
        set: &SetAttr,
        guard: Option<Timespec>,
    ) -> Result<BeforeAfter> {
        let snap = self.state(r, cred).await?;
        if guard.is_some_and(|ctime| ctime != snap.attr.ctime) {
            return Err(Error::GuardMismatch);
        }
        let set = perm::check_setattr(cred, &self.presented(r, snap.attr), set)?;
        // A file's changes are journaled, and those of an object made from
        // the pool and not yet in place, whose mode and owner are.
        if self.writes_behind(r) && (snap.attr.ftype == FileType::Regular || self.is_dirty(r)) {
            return self.setattr_behind(r, cred, &snap, &set).await;
        }
        let bs = self.bs();
        // Other attributes change no blocks, but do change what a write finds.
        let _change = match set.size {
            Some(size) => self.begin_change(file_key(r), size.min(snap.attr.size) / bs, u64::MAX),
            None => self.begin_change(file_key(r), u64::MAX, 0),
        };
        let filer = self.filer(r)?.clone();
        let mut wcc = self
            .filer_call(filer.setattr(cred, &r.filer_handle, &set))
            .await?;
        wcc.before = wcc.before.or(Some(AttrStamp::from(&snap.attr)));
        match set.size {
            Some(size) => {
                // Blocks past the new end, and the one it falls in, are stale.
                let key = file_key(r);
                if let Some(st) = self.files.borrow_mut().get_mut(&key) {
                    st.epoch += 1;
                }
                let old = snap.attr.size.max(size);
                self.drop_blocks(key, size / bs, old / bs);
                match wcc.after {
                    Some(a) => {
                        self.install(r, a, true);
                    }
                    None => self.expire(r),
                }
            }
            None => match wcc.after {
                Some(a) => {
                    self.install(r, a, true);
                }
                None => self.expire(r),
            },
        }
        Ok(wcc)
    }
}
