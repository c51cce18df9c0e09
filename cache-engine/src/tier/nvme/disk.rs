//! Disk I/O: segment writes and reclaim reads as background tasks, and the
//! aligned reads and writes they and the store's reads are made of.

use super::*;

impl Device {
    pub(super) fn spawn_jobs(this: &Rc<Device>, jobs: Jobs) {
        for (seg, seq, buf) in jobs.writes {
            let sh = Rc::clone(this);
            let task = async move {
                let off = sh.seg_offset(seg);
                #[cfg(test)]
                let res = if sh.fail_next_write.replace(false) {
                    Err(io::Error::from_raw_os_error(libc::EIO))
                } else {
                    write_all_at(&sh.file, Rc::clone(&buf), off).await
                };
                #[cfg(not(test))]
                let res = write_all_at(&sh.file, Rc::clone(&buf), off).await;
                sh.finish_write(seg, seq, res, buf);
            };
            if !spawn_detached(task) {
                this.finish_write(
                    seg,
                    seq,
                    Err(io::Error::other("no compio runtime to write on")),
                    Rc::new(AlignedBuf::with_capacity(PAGE)),
                );
            }
        }
        if let Some((seg, seq, pages)) = jobs.prefetch {
            let sh = Rc::clone(this);
            let task = async move {
                let bytes = pages as usize * PAGE;
                let buf = sh.log.borrow_mut().take_buf(sh.segment_size as usize);
                let res = read_exact_at(&sh.file, buf, sh.seg_offset(seg), bytes).await;
                sh.finish_prefetch(seg, seq, res);
            };
            if !spawn_detached(task) {
                this.log.borrow_mut().prefetch = None;
            }
        }
    }

    pub(super) fn finish_write(&self, seg: u32, seq: u64, res: io::Result<()>, buf: Rc<AlignedBuf>) {
        let mut log = self.log.borrow_mut();
        log.writing = log.writing.saturating_sub(1);
        let current = log
            .segs
            .get(seg as usize)
            .is_some_and(|m| m.seq == seq && matches!(m.state, SegState::Writing(_)));
        if current {
            match res {
                Ok(()) => {
                    log.segs[seg as usize].state = SegState::Sealed;
                    self.c.segments_written.add(1);
                }
                Err(err) => {
                    let keys = std::mem::take(&mut log.segs[seg as usize].keys);
                    log.segs[seg as usize].state = SegState::Bad;
                    let mut dropped = 0;
                    for k in keys {
                        if log.index.get(&k).is_some_and(|e| e.seg == seg) {
                            log.index.remove(&k);
                            dropped += 1;
                        }
                    }
                    self.c.write_errors.add(1);
                    tracing::error!(
                        path = %self.path.display(),
                        segment = seg,
                        offset = self.seg_offset(seg),
                        dropped_blocks = dropped,
                        %err,
                        "NVMe cache segment write failed; segment taken out of service"
                    );
                    if log.write_error.is_none() {
                        log.write_error = Some(err);
                    }
                }
            }
        }
        // The segment no longer references the buffer: recycle it.
        if let Ok(b) = Rc::try_unwrap(buf) {
            log.put_buf(b);
        }
        let waiters = std::mem::take(&mut log.waiters);
        drop(log);
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// Spawn a background task on the current compio runtime; false if there is
/// none.
pub(super) fn spawn_detached<F: Future<Output = ()> + 'static>(task: F) -> bool {
    compio::runtime::Runtime::try_with_current(|rt| rt.spawn(task).detach()).is_ok()
}

/// Read exactly `len` bytes (a multiple of 4096) at `pos` into `buf`, whose
/// capacity must be at least `len`. Continues after short reads.
pub(super) async fn read_exact_at(
    file: &compio::fs::File,
    buf: AlignedBuf,
    pos: u64,
    len: usize,
) -> io::Result<AlignedBuf> {
    let mut buf = buf;
    buf.clear();
    if buf.capacity() < len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "read buffer too small",
        ));
    }
    while buf.len() < len {
        let done = buf.len();
        // Poll for the completion instead of sleeping on it: a wake-up per
        // read costs more than the read on a virtual disk.
        let _polling = crate::rt::poll::ReadInFlight::start();
        let BufResult(res, slice) = submit_now(file.read_at(buf.slice(done..len), pos + done as u64)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "cache file ended early",
                ))
            }
            Ok(_) if !is_aligned(buf.len()) && buf.len() < len => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unaligned short read",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// Await an I/O op whose request goes to the kernel at once, not with the
/// runtime's next batch. Reads arrive a few at a time; left to the batch,
/// they complete together and go out together, and the device queue swings
/// between full and empty instead of staying full.
pub(super) async fn submit_now<F: Future>(op: F) -> F::Output {
    let mut op = std::pin::pin!(op);
    if let Poll::Ready(out) = poll_fn(|cx| Poll::Ready(op.as_mut().poll(cx))).await {
        return out;
    }
    compio::runtime::Runtime::with_current(|rt| crate::rt::poll::poll_now(rt, &rt.waker()));
    op.await
}

/// Write all of `buf` at `pos`. Continues after short writes.
pub(super) async fn write_all_at(file: &compio::fs::File, buf: Rc<AlignedBuf>, pos: u64) -> io::Result<()> {
    let total = buf.len();
    // O_DIRECT: a misaligned write would fail on some devices and not others.
    assert!(
        pos.is_multiple_of(crate::rt::aligned::ALIGN as u64)
            && total.is_multiple_of(crate::rt::aligned::ALIGN),
        "unaligned device write at {pos} of {total} bytes"
    );
    let mut buf = buf;
    let mut done = 0usize;
    let mut f = file;
    while done < total {
        let BufResult(res, slice) = f.write_at(buf.slice(done..), pos + done as u64).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "device accepted no bytes",
                ))
            }
            Ok(n) => {
                done += n;
                if done < total && !is_aligned(done) {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "unaligned short write"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
