//! Objects made under write-behind. A create or mkdir in a `read-write`
//! junction takes an object the shard made beforehand in the core filer's
//! hidden pool directory (`pool.rs`), journals where it belongs (its
//! *placement*: directory, name, mode, owner) and answers at once with the
//! object's own handle, which stays valid before and after write-back: no
//! handle of Weir's own needs mapping to the core filer's. Write-back sends
//! the object's data, then its mode, owner and times, then renames it from
//! the pool into place, so the core filer never shows it half made.
//!
//! Until then the name lives in [`Placing`], which the directory's shard
//! consults before its names cache; an operation that lists the directory
//! or changes other names in it first writes those names back (the engine's
//! `settle`), so the core filer sees the namespace change in the order the
//! clients made it.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::behind::Change;
use super::{file_key, Shard};
use crate::filer::CoreFiler;
use crate::handle::Resolved;
use crate::perm;
use crate::rt::FastMap;
use crate::types::*;
use crate::{Error, Result};

/// A change of mode or owner not yet written back.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct OwnerChange {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl OwnerChange {
    pub fn of(set: &SetAttr) -> OwnerChange {
        OwnerChange {
            mode: set.mode,
            uid: set.uid,
            gid: set.gid,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == OwnerChange::default()
    }

    /// `later` over this one.
    pub fn merge(&mut self, later: OwnerChange) {
        self.mode = later.mode.or(self.mode);
        self.uid = later.uid.or(self.uid);
        self.gid = later.gid.or(self.gid);
    }

    /// The attributes clients see with this change.
    pub fn present(&self, attr: &mut Attr) {
        if let Some(m) = self.mode {
            attr.mode = m & 0o7777;
        }
        attr.uid = self.uid.unwrap_or(attr.uid);
        attr.gid = self.gid.unwrap_or(attr.gid);
    }

    pub fn encode(&self, out: &mut BytesMut) {
        for v in [self.mode, self.uid, self.gid] {
            match v {
                Some(v) => {
                    out.put_u8(1);
                    out.put_u32(v);
                }
                None => out.put_u8(0),
            }
        }
    }

    pub fn decode(b: &mut Bytes) -> Option<OwnerChange> {
        let mut v = [None; 3];
        for slot in &mut v {
            if b.is_empty() {
                return None;
            }
            if b.get_u8() != 0 {
                if b.len() < 4 {
                    return None;
                }
                *slot = Some(b.get_u32());
            }
        }
        Some(OwnerChange {
            mode: v[0],
            uid: v[1],
            gid: v[2],
        })
    }
}

/// Where an object made from the pool belongs, until write-back puts it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    pub pool_dir: FilerHandle,
    pub pool_name: Vec<u8>,
    pub dir: Resolved,
    pub name: Vec<u8>,
    pub ftype: FileType,
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn get_bytes(b: &mut Bytes) -> Option<Bytes> {
    if b.len() < 2 {
        return None;
    }
    let n = b.get_u16() as usize;
    (b.len() >= n).then(|| b.split_to(n))
}

impl Placement {
    pub fn encode(&self, out: &mut BytesMut) {
        put_bytes(out, self.pool_dir.as_bytes());
        put_bytes(out, &self.pool_name);
        put_bytes(out, self.dir.filer_handle.as_bytes());
        out.put_u64(self.dir.fileid);
        put_bytes(out, &self.name);
        out.put_u8(match self.ftype {
            FileType::Directory => 2,
            _ => 1,
        });
    }

    /// `filer`: the core filer of the record, which the directory shares.
    pub fn decode(b: &mut Bytes, filer: u8) -> Option<Placement> {
        let pool_dir = FilerHandle::new(&get_bytes(b)?).ok()?;
        let pool_name = get_bytes(b)?.to_vec();
        let dir_handle = FilerHandle::new(&get_bytes(b)?).ok()?;
        if b.len() < 8 {
            return None;
        }
        let fileid = b.get_u64();
        let name = get_bytes(b)?.to_vec();
        let ftype = match b.first()? {
            2 => FileType::Directory,
            1 => FileType::Regular,
            _ => return None,
        };
        b.advance(1);
        Some(Placement {
            pool_dir,
            pool_name,
            dir: Resolved {
                filer,
                fileid,
                filer_handle: dir_handle,
            },
            name,
            ftype,
        })
    }
}

/// A name made under write-behind, not yet on the core filer.
#[derive(Clone, Debug)]
pub(crate) struct PendingName {
    pub child: Resolved,
    /// The pool name the object has on the core filer until then.
    pub pool_name: Vec<u8>,
}

/// A directory's pending names, and how its attributes look with them.
#[derive(Default)]
struct Dir {
    names: FastMap<Box<[u8]>, PendingName>,
    /// Names made in it (never lowered while any is pending): added to its
    /// change attribute, so clients see the directory changed.
    made: u64,
    /// When the last was made: its mtime as clients see it.
    latest: Timespec,
}

/// Every name made under write-behind and not yet written back, by
/// directory (its file key), over all shards: the directory's shard answers
/// for it, the object's shard writes it back.
#[derive(Default)]
pub(crate) struct Placing {
    count: AtomicUsize,
    dirs: Mutex<FastMap<u64, Dir>>,
}

impl Placing {
    fn dirs(&self) -> std::sync::MutexGuard<'_, FastMap<u64, Dir>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take `name` in directory `dir` for `p`; `Err` with what holds it already.
    pub fn reserve(&self, dir: u64, name: &[u8], p: PendingName) -> Result<(), PendingName> {
        let mut dirs = self.dirs();
        let d = dirs.entry(dir).or_default();
        if let Some(there) = d.names.get(name) {
            return Err(there.clone());
        }
        d.names.insert(name.into(), p);
        d.made += 1;
        d.latest = d.latest.max(Timespec::now());
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The pending object `name` in `dir` names, if any.
    pub fn get(&self, dir: u64, name: &[u8]) -> Option<PendingName> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.dirs().get(&dir)?.names.get(name).cloned()
    }

    /// `name` in `dir` is on the core filer now (or was never made): drop
    /// it, if it still names `child`.
    pub fn remove(&self, dir: u64, name: &[u8], child: &Resolved) {
        let mut dirs = self.dirs();
        let Some(d) = dirs.get_mut(&dir) else { return };
        if d.names
            .get(name)
            .is_some_and(|p| p.child.filer_handle == child.filer_handle)
        {
            d.names.remove(name);
            self.count.fetch_sub(1, Ordering::Relaxed);
            if d.names.is_empty() {
                dirs.remove(&dir);
            }
        }
    }

    /// The objects pending in `dir`.
    pub fn children(&self, dir: u64) -> Vec<Resolved> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        self.dirs()
            .get(&dir)
            .map(|d| d.names.values().map(|p| p.child).collect())
            .unwrap_or_default()
    }

    /// A directory with pending names as clients see it: changed by them.
    pub fn present_dir(&self, dir: u64, attr: &mut Attr) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Some(d) = self.dirs().get(&dir) {
            attr.mtime = attr.mtime.max(d.latest);
            attr.ctime = attr.ctime.max(d.latest);
            attr.change = attr.change.wrapping_add(d.made);
        }
    }

    /// Whether `pool_name` is some pending object's name in the pool.
    pub fn holds_pool_name(&self, pool_name: &[u8]) -> bool {
        self.dirs()
            .values()
            .any(|d| d.names.values().any(|p| p.pool_name == pool_name))
    }
}

/// An object from the pool taken for a create.
pub(crate) struct Claim {
    pub child: Resolved,
    /// Its attributes on the core filer (in the pool).
    pub attr: Attr,
    pub placement: Placement,
    pub owner: OwnerChange,
    /// The directory's attributes before.
    pub dattr: Attr,
}

/// What the directory's shard made of a create under write-behind.
pub(crate) enum Claimed {
    /// An object from the pool, its name held: journal it on its own shard.
    New(Box<Claim>),
    /// Not for the pool (no spare object, an existing name that an
    /// unchecked create opens): create as under write-through.
    Through,
}

impl Shard {
    /// A create or mkdir in `dir` under write-behind, on the directory's
    /// shard: checked, and a spare object taken for it.
    pub(crate) async fn claim_create(
        self: &Rc<Self>,
        dir: &Resolved,
        cred: &Credentials,
        name: &[u8],
        node: &NewNode,
        attrs: &SetAttr,
    ) -> Result<Claimed> {
        let ftype = match node {
            NewNode::File(_) => FileType::Regular,
            NewNode::Directory => FileType::Directory,
            _ => return Ok(Claimed::Through),
        };
        if !self.writes_behind(dir) || !self.pool.borrow().contains_key(&dir.filer) {
            return Ok(Claimed::Through);
        }
        let dattr = self.dir_state(dir, cred).await?;
        perm::require(cred, &dattr, perm::W | perm::X)?;
        check_name(name)?;
        if self.is_pool_dir(dir, name) {
            return Err(Error::Access);
        }
        match self.lookup(dir, cred, name).await {
            Ok(_) if matches!(node, NewNode::File(CreateMode::Unchecked)) => return Ok(Claimed::Through),
            Ok(_) => return Err(Error::Exist),
            Err(Error::NoEnt) => {}
            Err(e) => return Err(e),
        }
        let Some((pool_dir, pooled)) = self.claim(dir.filer, ftype) else {
            return Ok(Claimed::Through);
        };
        let set = super::namespace::new_owner(cred, &dattr, node, attrs);
        let child = Resolved {
            filer: dir.filer,
            fileid: pooled.attr.fileid,
            filer_handle: pooled.handle,
        };
        let pending = PendingName {
            child,
            pool_name: pooled.name.clone(),
        };
        if self.shared.placing.reserve(file_key(dir), name, pending).is_err() {
            // Made by another create meanwhile.
            return Err(Error::Exist);
        }
        self.cache_name(dir, name, Some((child.filer_handle, child.fileid)));
        self.drop_listing(dir);
        Ok(Claimed::New(Box::new(Claim {
            child,
            attr: pooled.attr,
            placement: Placement {
                pool_dir,
                pool_name: pooled.name,
                dir: *dir,
                name: name.to_vec(),
                ftype,
            },
            owner: OwnerChange::of(&set),
            dattr,
        })))
    }

    /// The object taken for `name` in `dir` could not be journaled: the
    /// name is free again (the object is removed from the pool at the next
    /// start).
    pub(crate) fn unclaim(&self, dir: &Resolved, name: &[u8], child: &Resolved) {
        self.shared.placing.remove(file_key(dir), name, child);
        self.forget_name(dir, name);
    }

    /// Journal the placement of an object made from the pool, on its own
    /// shard; its attributes as clients see them once durable.
    pub(crate) async fn journal_create(
        &self,
        child: &Resolved,
        cred: &Credentials,
        attr: Attr,
        placement: Placement,
        owner: OwnerChange,
    ) -> Result<Attr> {
        let b = self.behind.as_ref().ok_or(Error::Io)?;
        let ftype = placement.ftype;
        let snap = self.install(child, attr, true);
        let change = Change::Create(Box::new(placement), owner);
        let attr = self.journal_change(b, child, cred, &snap, change, None).await?;
        if ftype == FileType::Directory {
            self.made_empty(child);
        }
        Ok(attr)
    }

    /// Whether the object of `p` still has its name in the pool (when the
    /// core filer does not say, it is taken as still there).
    pub(super) async fn still_in_pool(&self, p: &Placement) -> bool {
        let Ok(filer) = self.filer(&p.dir) else {
            return true;
        };
        let root = Credentials::root();
        !matches!(
            self.filer_call(filer.lookup(&root, &p.pool_dir, &p.pool_name))
                .await,
            Err(Error::NoEnt)
        )
    }

    /// Put an object made from the pool in place: rename it from the pool
    /// to its name (a file already there, made behind Weir's back, is
    /// replaced: Weir's changes win, the conflict is counted). Done again
    /// after a crash, it finds the object in place already.
    pub(super) async fn place(&self, filer: &Arc<dyn CoreFiler>, r: &Resolved, p: &Placement) -> Result<()> {
        let root = Credentials::root();
        let dfh = &p.dir.filer_handle;
        let there = match self.filer_call(filer.lookup(&root, dfh, &p.name)).await {
            Ok((_, a)) => Some(a.fileid),
            Err(Error::NoEnt) => None,
            Err(e) => return Err(e),
        };
        if there == Some(r.fileid) {
            // Placed before a restart, the pool name gone with it.
            return Ok(());
        }
        if there.is_some() {
            self.count_conflict(r);
            tracing::warn!(
                shard = self.id,
                file = r.fileid,
                name = %String::from_utf8_lossy(&p.name),
                "write-back: a name made here was also made on the core filer meanwhile; Weir's object replaces it"
            );
        }
        match self
            .filer_call(filer.rename(&root, &p.pool_dir, &p.pool_name, dfh, &p.name))
            .await
        {
            // Gone from the pool: only a placement takes it from there, so
            // it was placed (and maybe renamed since) before a restart.
            Err(Error::NoEnt) if !self.still_in_pool(p).await => Ok(()),
            r => r.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(fileid: u64) -> Resolved {
        Resolved {
            filer: 1,
            fileid,
            filer_handle: FilerHandle::new(&fileid.to_be_bytes()).unwrap(),
        }
    }

    #[test]
    fn a_placement_and_an_owner_change_read_back_as_written() {
        let p = Placement {
            pool_dir: FilerHandle::new(b"pool").unwrap(),
            pool_name: b"0.00ab".to_vec(),
            dir: resolved(7),
            name: b"report.exr".to_vec(),
            ftype: FileType::Directory,
        };
        let o = OwnerChange {
            mode: Some(0o640),
            uid: None,
            gid: Some(100),
        };
        let mut out = BytesMut::new();
        p.encode(&mut out);
        o.encode(&mut out);
        let mut b = out.freeze();
        assert_eq!(Placement::decode(&mut b, 1), Some(p));
        assert_eq!(OwnerChange::decode(&mut b), Some(o));
        assert!(b.is_empty());
        // Cut anywhere, it does not decode.
        let mut whole = BytesMut::new();
        o.encode(&mut whole);
        for n in 0..whole.len() {
            assert_eq!(
                OwnerChange::decode(&mut Bytes::copy_from_slice(&whole[..n])),
                None
            );
        }
    }

    #[test]
    fn a_name_is_held_once_and_dropped_only_by_its_object() {
        let placing = Placing::default();
        let pending = |id| PendingName {
            child: resolved(id),
            pool_name: format!("0.{id}").into_bytes(),
        };
        assert!(placing.reserve(5, b"a", pending(10)).is_ok());
        assert_eq!(
            placing.reserve(5, b"a", pending(11)).unwrap_err().child,
            resolved(10)
        );
        assert!(placing.holds_pool_name(b"0.10"));
        placing.remove(5, b"a", &resolved(11));
        assert!(placing.get(5, b"a").is_some());
        assert_eq!(placing.children(5), vec![resolved(10)]);
        placing.remove(5, b"a", &resolved(10));
        assert!(placing.get(5, b"a").is_none());
        assert!(placing.children(5).is_empty());
    }
}
