//! Change notifications: front ends subscribe to hear about every change any
//! front end makes through the engine (SMB lease breaks, CHANGE_NOTIFY).
//!
//! Subscribers are called on the shard thread that made the change, right
//! after it succeeded, so they must not block: they only queue work. The
//! subscriber list is copied into each shard when it changes, so the hot
//! path never takes a lock; with no subscriber it costs one atomic load and
//! one branch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::handle::FileHandle;
use crate::types::{FileType, SetAttr};

/// A change callback; see [`crate::Engine::subscribe`].
pub type Subscriber = Arc<dyn Fn(&Change) + Send + Sync>;

/// One change the engine made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// [`crate::types::Credentials::origin`] of the caller that made it.
    pub origin: u64,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// Bytes `offset..offset+len` of `file` were written.
    Write { file: FileHandle, offset: u64, len: u64 },
    /// Attributes of `file` were set (`set.size` is a truncation or extension).
    SetAttr { file: FileHandle, set: SetAttr },
    /// `name` was created in `dir`.
    Created {
        dir: FileHandle,
        name: Vec<u8>,
        object: FileHandle,
        ftype: FileType,
    },
    /// `name` was removed from `dir`; `object` is what it named.
    Removed {
        dir: FileHandle,
        name: Vec<u8>,
        object: FileHandle,
    },
    /// `from_dir/from_name` became `to_dir/to_name`; `object` is what moved
    /// and `replaced` what the target named before, if anything.
    Renamed {
        from_dir: FileHandle,
        from_name: Vec<u8>,
        to_dir: FileHandle,
        to_name: Vec<u8>,
        object: FileHandle,
        replaced: Option<FileHandle>,
    },
    /// `object` got a new name `name` in `dir` (a hard link).
    Linked {
        dir: FileHandle,
        name: Vec<u8>,
        object: FileHandle,
    },
    /// Revalidation found the contents of `object` changed on the core
    /// filer itself, not through the engine (its size or mtime moved; for a
    /// directory, its entries). Seen when the file is next used after its
    /// verify period, not when it happened; origin zero.
    Behind { object: FileHandle, ftype: FileType },
}

impl ChangeKind {
    /// The shard whose thread reports this change is the owner of this handle:
    /// the file for data, attribute and behind-the-cache changes, the
    /// (source) directory for namespace changes.
    pub fn reported_by(&self) -> &FileHandle {
        match self {
            ChangeKind::Write { file, .. } | ChangeKind::SetAttr { file, .. } => file,
            ChangeKind::Behind { object, .. } => object,
            ChangeKind::Created { dir, .. }
            | ChangeKind::Removed { dir, .. }
            | ChangeKind::Linked { dir, .. } => dir,
            ChangeKind::Renamed { from_dir, .. } => from_dir,
        }
    }
}

/// The subscriber list all shards share.
#[derive(Default)]
pub(crate) struct ChangeHub {
    /// Bumped on every subscription; zero while nobody ever subscribed.
    version: AtomicU64,
    subs: Mutex<Arc<[Subscriber]>>,
}

impl ChangeHub {
    pub(crate) fn new() -> Self {
        ChangeHub {
            version: AtomicU64::new(0),
            subs: Mutex::new(Arc::from(Vec::new())),
        }
    }

    pub(crate) fn subscribe(&self, s: Subscriber) {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Subscriber> = subs.iter().cloned().collect();
        v.push(s);
        *subs = Arc::from(v);
        // Released under the lock: a shard that sees the new version reads
        // the new list.
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// A shard's copy of the subscriber list, refreshed when the version moves.
pub(crate) struct LocalSubscribers {
    seen: std::cell::Cell<u64>,
    subs: std::cell::RefCell<Arc<[Subscriber]>>,
}

impl LocalSubscribers {
    pub(crate) fn new() -> Self {
        LocalSubscribers {
            seen: std::cell::Cell::new(0),
            subs: std::cell::RefCell::new(Arc::from(Vec::new())),
        }
    }

    /// Tell every subscriber about the change `make` builds (only built when
    /// someone listens).
    pub(crate) fn notify(&self, hub: &ChangeHub, make: impl FnOnce() -> Change) {
        let v = hub.version.load(Ordering::Acquire);
        if v == 0 {
            return;
        }
        if v != self.seen.get() {
            let fresh = hub.subs.lock().unwrap_or_else(|p| p.into_inner()).clone();
            *self.subs.borrow_mut() = fresh;
            self.seen.set(v);
        }
        // Cloned out so a subscriber that subscribes again cannot hit a
        // held borrow.
        let subs = self.subs.borrow().clone();
        let change = make();
        for s in subs.iter() {
            s(&change);
        }
    }
}
