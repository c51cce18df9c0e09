//! State the opens of one file share, kept on the file's owning shard in a
//! thread-local table (no global lock): share modes, delete-on-close,
//! where the file is (for the delete), byte-range locks and their waiters,
//! and change-notify watchers of a directory. Every access goes through
//! [`on_file`], which runs on the owner.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use cache_engine::FileHandle;
use smb_proto::create::share_access;
use smb_proto::dir::FileNotify;
use smb_proto::security::access as sa;
use smb_proto::NtStatus;

use crate::lease::{Actions, Break, FileLeases};
use crate::posix::{DATA_READ, DATA_WRITE};
use crate::Server;

thread_local! {
    static FILES: RefCell<HashMap<(u64, FileHandle), FileState>> = RefCell::new(HashMap::new());
}

/// Where a file sits: its directory and name (for delete-on-close).
pub(crate) type Location = (FileHandle, Vec<u8>);

#[derive(Default)]
pub(crate) struct FileState {
    opens: Vec<OpenEntry>,
    pub delete_pending: bool,
    /// The name to remove when the last open closes (with hard links, the
    /// one the delete was asked through, not the others').
    doomed: Option<Location>,
    locks: Vec<LockRange>,
    waiters: Vec<async_channel::Sender<()>>,
    watchers: Vec<Watcher>,
    leases: FileLeases,
    /// Unstable writes through any open of the file not committed yet.
    pub dirty: bool,
}

struct OpenEntry {
    key: u64,
    access: u32,
    share: u32,
    delete_on_close: bool,
    loc: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockRange {
    pub key: u64,
    pub off: u64,
    pub len: u64,
    pub excl: bool,
}

impl LockRange {
    /// Whether two ranges touch, as Windows counts it: a zero-length range
    /// overlaps a range it falls strictly inside of.
    fn overlaps(&self, o: &LockRange) -> bool {
        let (a0, a1) = (u128::from(self.off), u128::from(self.off) + u128::from(self.len));
        let (b0, b1) = (u128::from(o.off), u128::from(o.off) + u128::from(o.len));
        (self.len != 0 && a0 == b0 && a1 == b1) || !(a0 >= b1 || b0 >= a1)
    }

    /// Whether `new` may not be granted beside `self`: shared locks stack,
    /// and an open may put a shared lock over its own exclusive one.
    fn blocks(&self, new: &LockRange) -> bool {
        if !self.excl && !new.excl {
            return false;
        }
        if self.key == new.key && !new.excl {
            return false;
        }
        self.overlaps(new)
    }
}

/// One pending CHANGE_NOTIFY on a directory.
pub(crate) struct Watcher {
    pub key: u64,
    pub id: u64,
    pub filter: u32,
    /// The changes, or the status that ends the request without any.
    pub tx: async_channel::Sender<Result<Vec<FileNotify>, NtStatus>>,
}

impl FileState {
    fn idle(&self) -> bool {
        self.opens.is_empty()
            && self.locks.is_empty()
            && self.watchers.is_empty()
            && self.waiters.is_empty()
            && self.leases.is_idle()
    }

    /// Run an oplock/lease event, after ending the breaks that are overdue;
    /// waiters wake when breaks end. The result and the notifications to send.
    pub fn lease<T>(&mut self, f: impl FnOnce(&mut FileLeases, Instant) -> Actions<T>) -> (T, Vec<Break>) {
        let now = Instant::now();
        let overdue = self.leases.timeout(now);
        let a = f(&mut self.leases, now);
        if !overdue.resolved.is_empty() || !a.resolved.is_empty() {
            self.wake();
        }
        let mut breaks = overdue.breaks;
        breaks.extend(a.breaks);
        (a.result, breaks)
    }

    /// Whether no open of the file holds lease `key` of `client`.
    pub fn lease_unused(&self, client: [u8; 16], key: [u8; 16]) -> bool {
        self.leases.lease_state(client, key).is_none()
    }

    /// When the first pending break times out.
    pub fn break_deadline(&self) -> Option<Instant> {
        self.leases.next_deadline()
    }

    /// Add an open, or refuse it for a share-mode conflict or a pending delete.
    pub fn register(
        &mut self,
        key: u64,
        access: u32,
        share: u32,
        delete_on_close: bool,
        loc: Location,
    ) -> Result<(), NtStatus> {
        // Only the name being deleted refuses opens; other hard links of
        // the file stay usable.
        if self.delete_pending && self.doomed.as_ref() == Some(&loc) {
            return Err(NtStatus::DELETE_PENDING);
        }
        let uses = |a: u32| (a & DATA_READ != 0, a & DATA_WRITE != 0, a & sa::DELETE != 0);
        let (r, w, d) = uses(access);
        // Opens that touch neither data nor the name (attributes only)
        // take no part in share modes.
        let checked = r || w || d;
        for o in self.opens.iter().filter(|_| checked) {
            let (or, ow, od) = uses(o.access);
            if !(or || ow || od) {
                continue;
            }
            let denied_by_them = (r && o.share & share_access::READ == 0)
                || (w && o.share & share_access::WRITE == 0)
                || (d && o.share & share_access::DELETE == 0);
            let denied_by_us = (or && share & share_access::READ == 0)
                || (ow && share & share_access::WRITE == 0)
                || (od && share & share_access::DELETE == 0);
            if denied_by_them || denied_by_us {
                return Err(NtStatus::SHARING_VIOLATION);
            }
        }
        self.opens.push(OpenEntry {
            key,
            access,
            share,
            delete_on_close,
            loc,
        });
        Ok(())
    }

    /// Remove an open with its locks and watchers; the location to delete
    /// when it was the last open of a file with a delete pending.
    pub fn unregister(&mut self, key: u64) -> Option<Location> {
        if let Some(i) = self.opens.iter().position(|o| o.key == key) {
            let o = self.opens.swap_remove(i);
            if o.delete_on_close {
                self.delete_pending = true;
                self.doomed = Some(o.loc);
            }
        }
        let before = self.locks.len();
        self.locks.retain(|l| l.key != key);
        if self.locks.len() != before {
            self.wake();
        }
        self.watchers.retain(|w| w.key != key);
        // The doomed name goes when its own last open closes, as on
        // Windows: opens through other hard links do not hold it.
        let held = match &self.doomed {
            Some(d) => self.opens.iter().any(|o| &o.loc == d),
            None => !self.opens.is_empty(),
        };
        if self.delete_pending {
            self.removed();
        }
        if self.delete_pending && !held {
            self.delete_pending = false;
            return self.doomed.take();
        }
        None
    }

    /// FileDispositionInformation through open `key`: its name goes when
    /// the file's last open closes.
    pub fn set_delete_pending(&mut self, key: u64, on: bool) {
        self.delete_pending = on;
        self.doomed = if on {
            self.opens.iter().find(|o| o.key == key).map(|o| o.loc.clone())
        } else {
            None
        };
    }

    /// Open `key` renamed the file to `loc`.
    pub fn relocate(&mut self, key: u64, loc: Location) {
        if let Some(o) = self.opens.iter_mut().find(|o| o.key == key) {
            o.loc = loc;
        }
    }

    pub fn open_count(&self) -> usize {
        self.opens.len()
    }

    /// Take all `ranges` or none; `Err` names a conflict.
    pub fn lock(&mut self, ranges: &[LockRange]) -> Result<(), NtStatus> {
        for (i, r) in ranges.iter().enumerate() {
            if r.len > 0 && r.off.checked_add(r.len - 1).is_none() {
                return Err(NtStatus(0xC000_01A1)); // INVALID_LOCK_RANGE
            }
            let clash = |o: &LockRange| o.blocks(r);
            if self.locks.iter().any(clash) || ranges[..i].iter().any(clash) {
                return Err(NtStatus::LOCK_NOT_GRANTED);
            }
        }
        self.locks.extend_from_slice(ranges);
        Ok(())
    }

    /// Release exactly the range `r` held by its open.
    pub fn unlock(&mut self, r: &LockRange) -> Result<(), NtStatus> {
        let i = self
            .locks
            .iter()
            .position(|l| l.key == r.key && l.off == r.off && l.len == r.len)
            .ok_or(NtStatus::RANGE_NOT_LOCKED)?;
        self.locks.remove(i);
        self.wake();
        Ok(())
    }

    pub fn add_waiter(&mut self, tx: async_channel::Sender<()>) {
        self.waiters.push(tx);
    }

    fn wake(&mut self) {
        for w in self.waiters.drain(..) {
            let _ = w.try_send(());
        }
    }

    /// The directory is going (or gone): its pending CHANGE_NOTIFYs end
    /// now, as on Windows, rather than wait on a name that is no more.
    pub fn removed(&mut self) {
        for w in self.watchers.drain(..) {
            let _ = w.tx.try_send(Err(NtStatus::DELETE_PENDING));
        }
    }

    pub fn watch(&mut self, w: Watcher) {
        self.watchers.push(w);
    }

    pub fn unwatch(&mut self, id: u64) {
        self.watchers.retain(|w| w.id != id);
    }

    /// Deliver changes to the watchers whose filter they match (each
    /// watcher answers one CHANGE_NOTIFY and goes).
    pub fn changed(&mut self, filter: u32, changes: &[FileNotify]) {
        self.watchers.retain(|w| {
            if w.filter & filter == 0 {
                return true;
            }
            let _ = w.tx.try_send(Ok(changes.to_vec()));
            false
        });
    }
}

/// Whether `key`'s open may read (or write) `len` bytes at `off` past the
/// byte-range locks of other opens. Runs on the owning shard itself (from
/// inside the engine call that does the I/O), so it costs no extra hop.
pub(crate) fn io_allowed_here(
    server: u64,
    fh: &FileHandle,
    key: u64,
    off: u64,
    len: u64,
    write: bool,
) -> bool {
    if len == 0 {
        return true;
    }
    FILES.with(|t| {
        let t = t.borrow();
        let Some(f) = t.get(&(server, *fh)) else {
            return true;
        };
        let r = LockRange {
            key,
            off,
            len,
            excl: write,
        };
        // Exclusive locks of other opens stop reads and writes; shared
        // locks stop writes, even the holder's.
        !f.locks
            .iter()
            .any(|l| l.overlaps(&r) && ((l.excl && l.key != key) || (write && !l.excl)))
    })
}

/// Run `f` on the state of `fh`, on the shard that owns it.
pub(crate) async fn on_file<R, F>(srv: &Server, fh: FileHandle, f: F) -> Result<R, NtStatus>
where
    R: Send + 'static,
    F: FnOnce(&mut FileState) -> R + Send + 'static,
{
    let id = srv.id;
    srv.engine
        .run_on(srv.engine.owner(&fh), move || async move {
            FILES.with(|t| {
                let mut t = t.borrow_mut();
                let e = t.entry((id, fh)).or_default();
                let r = f(e);
                if e.idle() && !e.delete_pending {
                    t.remove(&(id, fh));
                }
                r
            })
        })
        .await
        .map_err(crate::errors::status)
}

/// Run `f` on `fh`'s state, called on the thread of its owning shard:
/// `None` (and `f` not called) when the file has no state here.
pub(crate) fn on_file_here<R>(
    srv: &Server,
    fh: FileHandle,
    f: impl FnOnce(&mut FileState) -> R,
) -> Option<R> {
    FILES.with(|t| {
        let mut t = t.try_borrow_mut().ok()?;
        let e = t.get_mut(&(srv.id, fh))?;
        let r = f(e);
        if e.idle() && !e.delete_pending {
            t.remove(&(srv.id, fh));
        }
        Some(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fh() -> FileHandle {
        FileHandle::from_bytes(&[1; 20]).unwrap()
    }

    #[test]
    fn share_modes() {
        let mut s = FileState::default();
        let all = share_access::READ | share_access::WRITE | share_access::DELETE;
        s.register(
            1,
            sa::FILE_READ_DATA,
            share_access::READ,
            false,
            (fh(), b"a".to_vec()),
        )
        .unwrap();
        assert_eq!(
            s.register(2, sa::FILE_WRITE_DATA, all, false, (fh(), b"a".to_vec())),
            Err(NtStatus::SHARING_VIOLATION)
        );
        s.register(3, sa::FILE_READ_ATTRIBUTES, 0, false, (fh(), b"a".to_vec()))
            .unwrap();
        assert_eq!(s.unregister(1), None);
        s.register(
            2,
            sa::FILE_WRITE_DATA | sa::DELETE,
            all,
            true,
            (fh(), b"a".to_vec()),
        )
        .unwrap();
        assert_eq!(s.unregister(2), None);
        assert_eq!(
            s.register(4, sa::FILE_READ_DATA, all, false, (fh(), b"a".to_vec())),
            Err(NtStatus::DELETE_PENDING)
        );
        assert_eq!(s.unregister(3), Some((fh(), b"a".to_vec())));
    }

    #[test]
    fn delete_on_close_removes_the_name_it_was_asked_through() {
        // Two hard links of one file: deleting `b` leaves `a` usable, and
        // `b` goes when its own last open closes, while `a` is still open.
        let mut s = FileState::default();
        let all = share_access::READ | share_access::WRITE | share_access::DELETE;
        let (a, b) = ((fh(), b"a".to_vec()), (fh(), b"b".to_vec()));
        s.register(1, sa::FILE_READ_DATA, all, false, a.clone()).unwrap();
        s.register(2, sa::DELETE, all, true, b.clone()).unwrap();
        s.register(3, sa::FILE_READ_DATA, all, false, b.clone()).unwrap();
        assert_eq!(s.unregister(2), None);
        assert_eq!(
            s.register(4, sa::FILE_READ_DATA, all, false, b.clone()),
            Err(NtStatus::DELETE_PENDING)
        );
        s.register(5, sa::FILE_READ_DATA, all, false, a.clone()).unwrap();
        assert_eq!(s.unregister(3), Some(b.clone()));
        assert_eq!(s.unregister(5), None);
        // FileDispositionInformation names the open's own link too.
        s.register(6, sa::DELETE, all, false, b).unwrap();
        s.set_delete_pending(1, true);
        assert_eq!(s.unregister(1), Some(a));
        assert_eq!(s.unregister(6), None);
    }

    #[test]
    fn locks() {
        let mut s = FileState::default();
        let r = |key, off, len, excl| LockRange { key, off, len, excl };
        s.lock(&[r(1, 0, 10, false)]).unwrap();
        s.lock(&[r(2, 5, 10, false)]).unwrap();
        assert_eq!(s.lock(&[r(3, 9, 1, true)]), Err(NtStatus::LOCK_NOT_GRANTED));
        s.lock(&[r(3, 20, 1, true)]).unwrap();
        assert_eq!(s.unlock(&r(1, 0, 9, false)), Err(NtStatus::RANGE_NOT_LOCKED));
        s.unlock(&r(1, 0, 10, false)).unwrap();
        assert_eq!(s.unregister(2), None);
        s.lock(&[r(4, 0, 20, true)]).unwrap();
        // Stacking: a shared lock over the open's own exclusive lock.
        s.lock(&[r(4, 5, 5, false)]).unwrap();
        assert_eq!(s.lock(&[r(6, 10, 0, true)]), Err(NtStatus::LOCK_NOT_GRANTED));
        s.lock(&[r(6, 0, 0, true)]).unwrap();
        assert_eq!(s.lock(&[r(5, u64::MAX, 2, true)]), Err(NtStatus(0xC000_01A1)));
    }
}
