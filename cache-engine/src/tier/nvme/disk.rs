//! Disk I/O: segment writes and reclaim reads as background tasks, made of
//! the aligned reads and writes of `rt::io`.

pub(super) use crate::rt::io::{read_exact_at, spawn_detached, write_all_at};

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
