//! Unstable writes the upstream has not committed yet, for one filer.
//!
//! The upstream's write verifier changes when it restarts, and a restart
//! may lose what it had not committed. Every WRITE and COMMIT reply carries
//! the verifier; each change of it starts a new epoch. A COMMIT of a file
//! whose oldest uncommitted unstable write is of an earlier epoch reports
//! the loss. Nothing is forgotten: once `max` files wait for a COMMIT, writes
//! to other files go out stable and need no record.

use std::collections::HashMap;

use crate::types::FilerHandle;

pub(super) struct Unstable {
    /// The upstream's write verifier as last seen.
    verf: Option<u64>,
    /// Times the verifier changed.
    epoch: u64,
    /// Counts unstable writes, to tell those that raced a COMMIT.
    writes: u64,
    /// Per file waiting for a COMMIT: the epoch of its oldest uncommitted
    /// unstable write, and the number of its last one.
    files: HashMap<FilerHandle, (u64, u64)>,
    max: usize,
}

/// Taken when a COMMIT goes out: what its reply covers.
#[derive(Clone, Copy)]
pub(super) struct CommitStart {
    epoch: u64,
    writes: u64,
}

impl Unstable {
    pub(super) fn new(max: usize) -> Self {
        Unstable {
            verf: None,
            epoch: 0,
            writes: 0,
            files: HashMap::new(),
            max,
        }
    }

    /// Whether a write to `fh` may go out unstable.
    pub(super) fn may_defer(&self, fh: &FilerHandle) -> bool {
        self.files.len() < self.max || self.files.contains_key(fh)
    }

    /// A WRITE or COMMIT reply carried `verf`.
    fn saw(&mut self, verf: u64) {
        if self.verf.is_some_and(|v| v != verf) {
            self.epoch += 1;
        }
        self.verf = Some(verf);
    }

    /// A write to `fh` answered with `verf`, unstable or not.
    pub(super) fn wrote(&mut self, fh: &FilerHandle, verf: u64, unstable: bool) {
        self.saw(verf);
        if unstable {
            self.writes += 1;
            let e = self.files.entry(*fh).or_insert((self.epoch, 0));
            e.1 = self.writes;
        }
    }

    pub(super) fn commit_start(&self) -> CommitStart {
        CommitStart {
            epoch: self.epoch,
            writes: self.writes,
        }
    }

    /// A COMMIT of `fh` sent at `start` answered with `verf`: false when
    /// unstable writes to `fh` may have been lost.
    pub(super) fn committed(&mut self, fh: &FilerHandle, verf: u64, start: CommitStart) -> bool {
        self.saw(verf);
        let Some((oldest, last)) = self.files.get(fh).copied() else {
            return true;
        };
        let kept = oldest == self.epoch;
        if last > start.writes {
            // Writes answered after the COMMIT went out may not be covered:
            // they still wait, as of no earlier than its epoch.
            self.files.insert(*fh, (start.epoch.max(oldest), last));
        } else {
            self.files.remove(fh);
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fh(i: u32) -> FilerHandle {
        FilerHandle::new(&i.to_be_bytes()).unwrap()
    }

    /// A COMMIT with nothing written while it is out.
    fn commit(u: &mut Unstable, fh: &FilerHandle, verf: u64) -> bool {
        let s = u.commit_start();
        u.committed(fh, verf, s)
    }

    #[test]
    fn more_files_than_the_bound_and_a_restart_still_report_the_loss() {
        let mut u = Unstable::new(64 * 1024);
        let n = 64 * 1024 + 10;
        let mut deferred = Vec::new();
        for i in 0..n {
            let unstable = u.may_defer(&fh(i));
            u.wrote(&fh(i), 1, unstable);
            if unstable {
                deferred.push(i);
            }
        }
        assert_eq!(deferred.len(), 64 * 1024, "past the bound writes go out stable");
        // The upstream restarted: another file's write shows the new verifier.
        u.wrote(&fh(n), 2, false);
        for i in [0, 1, 64 * 1024 - 1] {
            assert!(!commit(&mut u, &fh(i), 2), "file {i}");
        }
        // Files written stable, and files committed once, have nothing lost.
        assert!(commit(&mut u, &fh(n - 1), 2));
        assert!(commit(&mut u, &fh(0), 2));
    }

    #[test]
    fn a_restart_seen_only_by_the_commit_reports_the_loss() {
        let mut u = Unstable::new(8);
        u.wrote(&fh(1), 1, true);
        assert!(!commit(&mut u, &fh(1), 2));
        u.wrote(&fh(1), 2, true);
        assert!(commit(&mut u, &fh(1), 2));
    }

    #[test]
    fn a_write_that_raced_the_commit_still_waits() {
        let mut u = Unstable::new(8);
        u.wrote(&fh(1), 1, true);
        let s = u.commit_start();
        u.wrote(&fh(1), 1, true);
        assert!(u.committed(&fh(1), 1, s));
        assert!(u.may_defer(&fh(1)));
        // The upstream restarts before the second write is committed.
        assert!(!commit(&mut u, &fh(1), 2));
        assert!(commit(&mut u, &fh(1), 2));
    }
}
