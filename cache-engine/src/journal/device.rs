//! The journal on a real device: a file, a block device or a region of one,
//! opened `O_DIRECT | O_DSYNC` (each write is durable when it completes: the
//! kernel sends it with FUA, or follows it with a cache flush when the
//! device has no FUA), written through compio (io_uring) on the shard's
//! runtime. Replay at open reads with plain blocking reads off the runtime.
//!
//! [`Journal`] belongs to one shard thread (`!Send`). Concurrent
//! [`Journal::append`] calls share device writes: a few groups are in
//! flight at once, and the next one carries every record queued meanwhile.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use futures::channel::oneshot;

use crate::rt::aligned::AlignedBuf;
use crate::rt::io::{spawn_detached, write_all_at};

use super::format::Geometry;
use super::format::{CacheId, Op, Record, PAGE};
use super::log::{Completion, Log, WriteId};
use super::replay::{replay, Corruption, Expect, RegionRead, TornTail};
use super::JournalError;

/// Where a shard's journal lives and whose it is.
#[derive(Clone, Debug)]
pub struct JournalConfig {
    /// A file (created when missing and `create` is set) or a block device.
    pub path: PathBuf,
    /// Start of the region in it (multiple of 4096).
    pub offset: u64,
    /// Bytes of the region (multiple of 4096).
    pub size: u64,
    pub cache_id: CacheId,
    pub shard: u32,
    /// Format the region when it holds no journal. A region holding one is
    /// never formatted over.
    pub create: bool,
}

/// An opened journal and what its replay found.
pub struct Opened {
    pub journal: Journal,
    /// Records not yet written back, in sequence order: the caller writes
    /// them back and confirms each with [`Journal::done`], as for new ones.
    pub records: Vec<Record>,
    pub corruption: Vec<Corruption>,
    pub torn_tail: Option<TornTail>,
    /// The region was formatted by this open.
    pub formatted: bool,
}

/// A shard's journal. See the module documentation.
#[derive(Clone)]
pub struct Journal {
    inner: Rc<Inner>,
}

/// Where an append learns whether its record became durable.
type Ack = oneshot::Sender<Result<(), JournalError>>;

struct Inner {
    file: compio::fs::File,
    base: u64,
    path: PathBuf,
    log: RefCell<Log>,
    /// Appends waiting for their group, in sequence order.
    waiters: RefCell<VecDeque<(u64, Ack)>>,
    pump_queued: Cell<bool>,
    /// Tasks in `sync`.
    idle: RefCell<Vec<Waker>>,
    writes: Cell<usize>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.path)
            .field("offset", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Open the journal in `cfg`'s region: replay it, or format it when it
    /// holds none and `cfg.create` is set. Must run on a compio runtime.
    pub async fn open(cfg: JournalConfig) -> Result<Opened, JournalError> {
        let geo = Geometry {
            region_size: cfg.size,
            cache_id: cfg.cache_id,
            shard: cfg.shard,
        };
        geo.check()?;
        if !cfg.offset.is_multiple_of(PAGE) {
            return Err(JournalError::BadRegion(format!(
                "journal region offset {} in {} is not a multiple of 4096",
                cfg.offset,
                cfg.path.display()
            )));
        }
        let c = cfg.clone();
        let found = compio::runtime::spawn_blocking(move || read_region(&c, geo))
            .await
            .map_err(|e| JournalError::Io(format!("replay thread: {e}")))??;
        let (log, records, corruption, torn_tail, formatted) = match found {
            Some(r) => (r.log, r.records, r.corruption, r.torn_tail, false),
            None => (Log::format(geo)?, Vec::new(), Vec::new(), None, true),
        };
        let file = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC | libc::O_CLOEXEC)
            .open(&cfg.path)
            .await
            .map_err(|e| io_err(&cfg.path, "open", &e))?;
        let journal = Journal {
            inner: Rc::new(Inner {
                file,
                base: cfg.offset,
                path: cfg.path.clone(),
                log: RefCell::new(log),
                waiters: RefCell::new(VecDeque::new()),
                pump_queued: Cell::new(false),
                idle: RefCell::new(Vec::new()),
                writes: Cell::new(0),
            }),
        };
        // The superblock of the new epoch (or of the format) goes first.
        Inner::pump(&journal.inner);
        journal.sync().await?;
        tracing::info!(
            path = %cfg.path.display(),
            offset = cfg.offset,
            size = cfg.size,
            shard = cfg.shard,
            formatted,
            records = records.len(),
            epoch = journal.inner.log.borrow().epoch(),
            "journal opened"
        );
        for c in &corruption {
            tracing::error!(
                path = %cfg.path.display(),
                shard = cfg.shard,
                at = c.at,
                resumed_at = c.resumed_at,
                lost_from = c.lost.start,
                lost_to = c.lost.end,
                "journal damaged in the middle of the log: records lost"
            );
        }
        Ok(Opened {
            journal,
            records,
            corruption,
            torn_tail,
            formatted,
        })
    }

    /// Journal `op`; returns its sequence once it is durable. Appends made
    /// while a group write is in flight go out together in the next one.
    pub async fn append(&self, op: Op) -> Result<u64, JournalError> {
        let (seq, durable) = self.submit(op)?;
        durable.await.map(|()| seq)
    }

    /// Journal `op`: its sequence now (so the caller can act on it in
    /// sequence order before it is durable), and what resolves once it is.
    pub fn submit(
        &self,
        op: Op,
    ) -> Result<
        (
            u64,
            impl std::future::Future<Output = Result<(), JournalError>> + 'static,
        ),
        JournalError,
    > {
        let seq = self.inner.log.borrow_mut().append(op)?;
        let (tx, rx) = oneshot::channel();
        self.inner.waiters.borrow_mut().push_back((seq, tx));
        Inner::schedule_pump(&self.inner);
        Ok((seq, async move {
            match rx.await {
                Ok(res) => res,
                Err(_) => Err(JournalError::Closed),
            }
        }))
    }

    /// Record `seq` was written back: its confirmation rides with the next
    /// write, and its space is reused once older records are confirmed too.
    pub fn done(&self, seq: u64) -> Result<(), JournalError> {
        self.inner.log.borrow_mut().done(seq)?;
        Inner::schedule_pump(&self.inner);
        Ok(())
    }

    /// Wait until everything appended or confirmed so far is on disk (or a
    /// write failed).
    pub async fn sync(&self) -> Result<(), JournalError> {
        Inner::pump(&self.inner);
        poll_fn(|cx| {
            let log = self.inner.log.borrow();
            if let Some(e) = log.failed() {
                return Poll::Ready(Err(e.clone()));
            }
            if self.inner.writes.get() == 0 && !log.has_pending() {
                return Poll::Ready(Ok(()));
            }
            self.inner.idle.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Close cleanly: wait for every write, then record where the log ends,
    /// so the next open reads no further. Appends fail afterwards.
    pub async fn close(self) -> Result<(), JournalError> {
        self.sync().await?;
        let Some(req) = self.inner.log.borrow_mut().close_write() else {
            return Ok(());
        };
        let res = write_all_at(&self.inner.file, Rc::new(req.buf), self.inner.base + req.offset).await;
        let res = res.map_err(|e| io_err(&self.inner.path, "close", &e));
        self.inner.log.borrow_mut().write_done(req.id, Ok(()));
        res
    }

    /// The state machine, for figures (sequence, bytes used, records).
    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.inner.log.borrow())
    }
}

impl Inner {
    /// Run `pump` after the tasks already woken: appenders woken by the
    /// last completion queue their next records first and join the group.
    fn schedule_pump(this: &Rc<Inner>) {
        if this.pump_queued.replace(true) {
            return;
        }
        let inner = Rc::clone(this);
        if !spawn_detached(async move {
            inner.pump_queued.set(false);
            Inner::pump(&inner);
        }) {
            this.pump_queued.set(false);
            Inner::pump(this);
        }
    }

    /// Start every write the log has ready.
    fn pump(this: &Rc<Inner>) {
        loop {
            let Some(req) = this.log.borrow_mut().next_write() else {
                break;
            };
            let (id, at) = (req.id, this.base + req.offset);
            let inner = Rc::clone(this);
            let buf = Rc::new(req.buf);
            this.writes.set(this.writes.get() + 1);
            let task = async move {
                let res = write_all_at(&inner.file, Rc::clone(&buf), at).await;
                if let Ok(buf) = Rc::try_unwrap(buf) {
                    inner.log.borrow_mut().recycle(buf);
                }
                inner.finish(id, res);
            };
            if !spawn_detached(task) {
                this.finish(
                    id,
                    Err(io::Error::other("no compio runtime to write the journal on")),
                );
            }
        }
    }

    fn finish(self: &Rc<Self>, id: WriteId, res: io::Result<()>) {
        self.writes.set(self.writes.get() - 1);
        if let Err(e) = &res {
            tracing::error!(path = %self.path.display(), kind = ?id.kind, %e, "journal write failed; the journal takes no more records until reopened");
        }
        let c: Completion = self.log.borrow_mut().write_done(id, res);
        {
            let mut waiters = self.waiters.borrow_mut();
            while waiters.front().is_some_and(|(s, _)| *s < c.acked.end) {
                if let Some((_, tx)) = waiters.pop_front() {
                    let _ = tx.send(Ok(()));
                }
            }
            // After a failure nothing queued will be written.
            if let Some((_, err)) = &c.failed {
                for (_, tx) in waiters.drain(..) {
                    let _ = tx.send(Err(err.clone()));
                }
            }
        }
        let idle = std::mem::take(&mut *self.idle.borrow_mut());
        idle.into_iter().for_each(Waker::wake);
        Inner::schedule_pump(self);
    }
}

fn io_err(path: &Path, op: &str, e: &io::Error) -> JournalError {
    JournalError::Io(format!("cannot {op} {}: {e}", path.display()))
}

/// Make sure the region exists (creating a file if asked), then replay it.
/// `None`: unformatted and `create` set, so the caller formats. Blocking.
fn read_region(cfg: &JournalConfig, geo: Geometry) -> Result<Option<super::Replayed>, JournalError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let end = cfg.offset + cfg.size;
    match std::fs::metadata(&cfg.path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && cfg.create => create_file(&cfg.path, end)?,
        Err(e) => return Err(io_err(&cfg.path, "inspect", &e)),
        Ok(md) if md.file_type().is_block_device() || md.is_file() => {}
        Ok(_) => {
            return Err(JournalError::BadRegion(format!(
                "journal path {} is neither a regular file nor a block device",
                cfg.path.display()
            )))
        }
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(&cfg.path)
        .map_err(|e| io_err(&cfg.path, "open", &e))?;
    let len = {
        use std::io::Seek;
        (&file)
            .seek(io::SeekFrom::End(0))
            .map_err(|e| io_err(&cfg.path, "size", &e))?
    };
    if len < end {
        return Err(JournalError::BadRegion(format!(
            "{} is {len} bytes, too small for a journal region ending at {end}",
            cfg.path.display()
        )));
    }
    let expect = Expect {
        cache_id: geo.cache_id,
        shard: geo.shard,
        region_size: geo.region_size,
    };
    let mut reader = FileRegion {
        file,
        base: cfg.offset,
    };
    match replay(&mut reader, expect) {
        Err(JournalError::Unformatted) if cfg.create => Ok(None),
        other => other.map(Some),
    }
}

/// A new journal file, its blocks written (zeros) so that a later
/// `O_DSYNC` write changes no file system metadata and needs no journal
/// commit of the file system.
fn create_file(path: &Path, size: u64) -> Result<(), JournalError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io_err(path, "create", &e))?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = size;
    let res = (|| {
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()
    })();
    res.map_err(|e| {
        drop(std::fs::remove_file(path));
        io_err(path, "fill", &e)
    })
}

struct FileRegion {
    file: std::fs::File,
    base: u64,
}

impl RegionRead for FileRegion {
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = AlignedBuf::zeroed(len);
        self.file.read_exact_at(buf.as_mut_slice(), self.base + offset)?;
        Ok(Bytes::from_owner(buf))
    }
}
