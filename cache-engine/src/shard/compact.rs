//! Journal compaction. The journal reuses space only behind its oldest
//! record still needed; a file written over and over while write-back
//! cannot run (the core filer unreachable, or the file never quiet) keeps
//! old records alive and fills it with what later writes replaced. Once the
//! journal is half full and a quarter of it holds only such replaced bytes,
//! the file holding the oldest record is journaled again as few records
//! (its cut, its dirty extents, its size and times), and once those are
//! durable its old records are confirmed, so the log moves on. Only
//! replaced bytes make it run: compacting a file renumbers its records, so
//! a write-back batch out at the time retires none of them and its data
//! goes again; run while all bytes are live (a full dirty quota), it would
//! undo every batch. One compaction at a time per shard.

use std::rc::Rc;

use super::behind::{encode, journal_error, Change, Head};
use super::Shard;
use crate::Result;

impl Shard {
    /// Start compacting if the journal is half full: the file holding the
    /// oldest record, then the next, until it is not (or no progress).
    pub(crate) fn maybe_compact(self: &Rc<Self>) {
        let Some(b) = &self.behind else { return };
        if b.compacting.get() || self.compaction_target().is_none() {
            return;
        }
        b.compacting.set(true);
        let s = Rc::clone(self);
        compio::runtime::spawn(async move {
            let mut last = None;
            while let Some((key, oldest)) = s.compaction_target() {
                // The same record still oldest: this file cannot be compacted now.
                if last == Some(oldest) {
                    break;
                }
                last = Some(oldest);
                if let Err(e) = s.compact(key).await {
                    if !s.stopping.get() {
                        tracing::warn!(shard = s.id, "journal compaction: {e}");
                    }
                    break;
                }
            }
            if let Some(b) = &s.behind {
                b.compacting.set(false);
                b.progress.notify(usize::MAX);
            }
        })
        .detach();
    }

    /// The file holding the oldest record, and that record, when the
    /// journal needs compacting.
    fn compaction_target(&self) -> Option<(u64, u64)> {
        let b = self.behind.as_ref()?;
        let oldest = b
            .journal
            .with_log(|l| l.oldest_undone())
            .filter(|_| b.needs_compaction())?;
        let files = b.files.borrow();
        let (key, _) = files.iter().find(|(_, e)| e.file.oldest_seq() == Some(oldest))?;
        Some((*key, oldest))
    }

    async fn compact(&self, key: u64) -> Result<()> {
        let Some(b) = &self.behind else { return Ok(()) };
        let (c, r, head, placement, owner) = {
            let mut files = b.files.borrow_mut();
            let Some(e) = files.get_mut(&key) else {
                return Ok(());
            };
            // Appends not yet durable are older than what this journals, so
            // durable before it, and a batch out may finish or fail either
            // way: neither need be waited for (the batch stands for nothing
            // the new records do not say again). No batch is taken while
            // this runs.
            e.compacting = true;
            let head = Head {
                filer_handle: e.r.filer_handle,
                cred: e.cred.clone(),
                time: e.mtime,
                atime: e.atime,
            };
            (e.file.compacted(), e.r, head, e.placement.clone(), e.owner)
        };
        let mut writes = Vec::new();
        let mut attrs = Vec::new();
        let mut durable = Vec::new();
        let mut changes: Vec<(Change, bool)> = Vec::new();
        changes.extend(c.cut.map(|cut| (Change::SetSize(cut), false)));
        for (offset, data, _) in &c.extents {
            let change = Change::Write {
                offset: *offset,
                data: data.clone(),
            };
            changes.push((change, true));
        }
        changes.push((Change::SetSize(c.size), false));
        changes.push((Change::SetTimes, false));
        match placement {
            Some(p) => changes.push((Change::Create(p, owner), false)),
            None if !owner.is_empty() => changes.push((Change::SetOwner(owner), false)),
            None => {}
        }
        let mut failed = None;
        for (change, is_write) in changes {
            match b.journal.submit(encode(&r, &head, &change)) {
                Ok((seq, f)) => {
                    if is_write { &mut writes } else { &mut attrs }.push(seq);
                    durable.push(f);
                }
                Err(e) => {
                    failed = Some(journal_error(e));
                    break;
                }
            }
        }
        let mut all_durable = true;
        for f in durable {
            all_durable &= f.await.is_ok();
        }
        let mut files = b.files.borrow_mut();
        let e = files.get_mut(&key).filter(|e| e.r.filer_handle == r.filer_handle);
        let done = match (e, failed, all_durable) {
            (Some(e), None, true) => {
                e.compacting = false;
                e.file.rebase(&c, &writes, &attrs)
            }
            // Not all of it made it: the old records stand, the new are spare.
            (e, failed, _) => {
                if let Some(e) = e {
                    e.compacting = false;
                }
                drop(files);
                if all_durable {
                    for s in writes.iter().chain(&attrs) {
                        let _ = b.journal.done(*s);
                    }
                }
                return failed.map_or(Ok(()), Err);
            }
        };
        drop(files);
        for s in done {
            let _ = b.journal.done(s);
        }
        self.stats.journal_compactions.increment(1);
        b.progress.notify(usize::MAX);
        Ok(())
    }
}
