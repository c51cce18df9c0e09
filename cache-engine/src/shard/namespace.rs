//! Names and directories on the shard that owns the directory: lookups
//! (negative ones too), listings with stable cookies, and the operations that
//! change a directory.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use super::{file_key, key_of, DirNames, NameEntry, Shard};
use crate::filer::{FilerCreated, FilerDirEntryPlus};
use crate::handle::Resolved;
use crate::perm;
use crate::types::*;
use crate::{Error, Result};

/// A directory's entries as the core filer listed them, with its cookies.
/// It fills a page at a time as readers get to its end, so the first page
/// of a large directory is answered without waiting for the last.
pub(crate) struct Listing {
    filled: RefCell<Filled>,
    /// Held while a page is fetched, so two readers do not fetch the same one.
    filling: futures::lock::Mutex<()>,
    validated: Instant,
}

#[derive(Default)]
struct Filled {
    entries: Vec<ListEntry>,
    /// Position of the entry each cookie resumes after.
    by_cookie: HashMap<u64, usize>,
    /// Where the next page starts; `None` once the end was listed.
    next: Option<u64>,
    /// Whether the next page is first tried by names (see `page_by_names`).
    by_names: bool,
}

impl Filled {
    /// Up to `max` entries after `cookie`, if the listing holds them (or
    /// holds the end): `Some(None)` when it is complete without the cookie.
    fn page(&self, cookie: u64, max: usize) -> Option<Option<(Vec<ListEntry>, bool)>> {
        let start = if cookie == 0 {
            Some(0)
        } else {
            self.by_cookie.get(&cookie).map(|&i| i + 1)
        };
        let complete = self.next.is_none();
        match start {
            Some(start) if complete || start + max <= self.entries.len() => {
                let end = (start + max).min(self.entries.len());
                let eof = complete && end == self.entries.len();
                Some(Some((self.entries[start.min(end)..end].to_vec(), eof)))
            }
            None if complete => Some(None),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct ListEntry {
    pub name: Vec<u8>,
    pub fileid: u64,
    pub cookie: u64,
    pub ftype: Option<FileType>,
    pub handle: Option<FilerHandle>,
    /// Attributes as listed, and when.
    pub attr: Option<(Attr, Instant)>,
}

impl ListEntry {
    /// An entry as the core filer listed it at `at`.
    fn listed(e: FilerDirEntryPlus, at: Instant) -> Self {
        ListEntry {
            handle: e.object.map(|(fh, _)| fh),
            attr: e.object.map(|(_, a)| (a, at)),
            name: e.entry.name,
            fileid: e.entry.fileid,
            cookie: e.entry.cookie,
            ftype: e.entry.ftype,
        }
    }
}

/// Listings longer than this are paged from the core filer, not cached.
const MAX_CACHED_LISTING: usize = 1 << 20;
const LIST_PAGE: usize = 1024;

/// What a rename touched, for the engine to tell the other shards.
pub(crate) struct RenameOutcome {
    pub from_wcc: BeforeAfter,
    pub to_wcc: BeforeAfter,
    pub moved: Option<Resolved>,
    pub replaced: Option<Resolved>,
}

impl Shard {
    pub(super) async fn dir_state(&self, dir: &Resolved, cred: &Credentials) -> Result<Attr> {
        let attr = self.state(dir, cred).await?.attr;
        if attr.ftype != FileType::Directory {
            return Err(Error::NotDir);
        }
        // A directory made from the pool: the mode and owner it was made with.
        Ok(self.presented(dir, attr))
    }

    fn child(&self, dir: &Resolved, fh: FilerHandle, fileid: u64) -> Resolved {
        Resolved {
            filer: dir.filer,
            fileid,
            filer_handle: fh,
        }
    }

    pub(super) fn cache_name(&self, dir: &Resolved, name: &[u8], child: Option<(FilerHandle, u64)>) {
        let mut names = self.names.borrow_mut();
        let dn = names.get_or_insert_mut(file_key(dir), DirNames::default);
        if child.is_none() && !self.policy(dir).negative_lookups {
            dn.remove(name);
            return;
        }
        if dn.map.len() >= super::NAMES_PER_DIR {
            *dn = DirNames::default();
        }
        dn.map.insert(
            name.into(),
            NameEntry {
                child,
                validated: Instant::now(),
            },
        );
    }

    /// `dir` was just made, empty, through the engine: a name not cached
    /// in it does not exist (while negative lookups are cached at all).
    /// Names already cached under it came from a race with this news, and
    /// the directory is then left as not complete.
    pub(crate) fn made_empty(&self, dir: &Resolved) {
        if self.policy(dir).negative_lookups {
            let mut names = self.names.borrow_mut();
            let dn = names.get_or_insert_mut(file_key(dir), DirNames::default);
            if dn.map.keys().all(|n| &n[..] == b"..") {
                dn.complete = Some(Instant::now());
            }
        }
    }

    fn cached_name(&self, dir: &Resolved, name: &[u8]) -> Option<Option<(FilerHandle, u64)>> {
        let period = self.policy(dir).dir_verify;
        let down = self.filer_down();
        let mut names = self.names.borrow_mut();
        let dn = names.get(&file_key(dir))?;
        match dn.map.get(name) {
            Some(e) => e.trusted(period, down),
            None if name != b"." && name != b".." => dn
                .complete
                .filter(|since| down || since.elapsed() < period)
                .map(|_| None),
            None => None,
        }
    }

    pub(super) fn drop_listing(&self, dir: &Resolved) {
        self.listings.borrow_mut().pop(&file_key(dir));
    }

    /// Forget what is cached of `name` in `dir` and of `dir` itself: the
    /// core filer lost the object the name led to, so the directory changed
    /// behind the cache's back.
    /// A name the caches hold of the file `key` on core filer `filer`: its
    /// directory's key and the name. For reports, not for serving.
    pub(crate) fn name_of(&self, key: u64, filer: u8) -> Option<(u64, Vec<u8>)> {
        let is = |fileid: u64| key_of(filer, fileid) == key;
        for (dir, names) in self.names.borrow().iter() {
            for (name, e) in &names.map {
                if e.child.is_some_and(|(_, id)| is(id)) {
                    return Some((*dir, name.to_vec()));
                }
            }
        }
        for (dir, l) in self.listings.borrow().iter() {
            let filled = l.filled.borrow();
            let e = filled
                .entries
                .iter()
                .find(|e| is(e.fileid) && e.name != b"." && e.name != b"..");
            if let Some(e) = e {
                return Some((*dir, e.name.clone()));
            }
        }
        None
    }

    pub(crate) fn forget_name(&self, dir: &Resolved, name: &[u8]) {
        if let Some(names) = self.names.borrow_mut().get_mut(&file_key(dir)) {
            names.remove(name);
        }
        self.drop_listing(dir);
        self.expire(dir);
    }

    /// A name in a directory: `Ok(child, attributes if just read from the core filer)`.
    pub(crate) async fn lookup(
        &self,
        dir: &Resolved,
        cred: &Credentials,
        name: &[u8],
    ) -> Result<(Resolved, Option<(Attr, Instant)>, Attr)> {
        let dattr = self.dir_state(dir, cred).await?;
        perm::require(cred, &dattr, perm::X)?;
        check_name(name)?;
        if let Some(p) = self.shared.placing.get(file_key(dir), name) {
            return Ok((p.child, None, dattr));
        }
        if self.is_pool_dir(dir, name) {
            return Err(Error::NoEnt);
        }
        match self.cached_name(dir, name) {
            Some(Some((fh, fileid))) => return Ok((self.child(dir, fh, fileid), None, dattr)),
            Some(None) => return Err(Error::NoEnt),
            None => {}
        }
        let filer = self.filer(dir)?.clone();
        let at = Instant::now();
        // A directory whose mode or owner is not written back yet (made from
        // the pool: root's, 0700): the caller's right to search it was
        // checked against what it will be.
        let as_who = match self.owner_pending(dir) {
            true => Credentials::root(),
            false => cred.clone(),
        };
        match self
            .filer_call(filer.lookup(&as_who, &dir.filer_handle, name))
            .await
        {
            Ok((fh, attr)) => {
                self.cache_name(dir, name, Some((fh, attr.fileid)));
                Ok((self.child(dir, fh, attr.fileid), Some((attr, at)), dattr))
            }
            Err(Error::NoEnt) => {
                self.cache_name(dir, name, None);
                Err(Error::NoEnt)
            }
            Err(e) => Err(e),
        }
    }

    /// The parent of directory `dir`, and its attributes if just read from
    /// the core filer. Cached with the names (`..` is never a real name), for
    /// the directory verify period, as clients ask it at every listing.
    pub(crate) async fn lookup_parent(
        &self,
        dir: &Resolved,
        cred: &Credentials,
    ) -> Result<(Resolved, Option<(Attr, Instant)>)> {
        let dattr = self.dir_state(dir, cred).await?;
        perm::require(cred, &dattr, perm::X)?;
        // Made here and not yet in place: on the core filer its parent is the pool.
        let placed_in = self
            .behind
            .as_ref()
            .and_then(|b| b.entry(dir)?.placement.as_ref().map(|p| p.dir));
        if let Some(parent) = placed_in {
            return Ok((parent, None));
        }
        if let Some(Some((fh, fileid))) = self.cached_name(dir, b"..") {
            return Ok((self.child(dir, fh, fileid), None));
        }
        let filer = self.filer(dir)?.clone();
        let at = Instant::now();
        let (fh, attr) = self
            .filer_call(filer.lookup_parent(cred, &dir.filer_handle))
            .await?;
        self.cache_name(dir, b"..", Some((fh, attr.fileid)));
        Ok((self.child(dir, fh, attr.fileid), Some((attr, at))))
    }

    /// Create in `dir`. For an unchecked create of a name that exists,
    /// returns `Err(Exist)` with nothing done only when `node` is not a
    /// regular file; a regular file is handed back for the caller to open.
    pub(crate) async fn create(
        &self,
        dir: &Resolved,
        cred: &Credentials,
        name: &[u8],
        node: &NewNode,
        attrs: &SetAttr,
    ) -> Result<Created> {
        let dattr = self.dir_state(dir, cred).await?;
        perm::require(cred, &dattr, perm::W | perm::X)?;
        check_name(name)?;
        if self.is_pool_dir(dir, name) {
            return Err(Error::Access);
        }
        if self.shared.placing.get(file_key(dir), name).is_some()
            && !matches!(node, NewNode::File(CreateMode::Unchecked))
        {
            return Err(Error::Exist);
        }
        if matches!(node, NewNode::File(CreateMode::Unchecked)) {
            match self.lookup(dir, cred, name).await {
                Ok((child, seed, _)) => return Ok(Created::Existing(child, seed, dattr)),
                Err(Error::NoEnt) => {}
                Err(e) => return Err(e),
            }
        }
        if matches!(node, NewNode::CharDev(..) | NewNode::BlockDev(..)) && cred.uid != 0 {
            return Err(Error::Perm);
        }
        let set = SetAttr {
            ..new_owner(cred, &dattr, node, attrs)
        };
        let filer = self.filer(dir)?.clone();
        let FilerCreated {
            handle,
            attr,
            mut dir_wcc,
        } = self
            .filer_call(filer.create(cred, &dir.filer_handle, name, node, &set))
            .await?;
        dir_wcc.before = dir_wcc.before.or(Some(AttrStamp::from(&dattr)));
        self.cache_name(dir, name, Some((handle, attr.fileid)));
        self.drop_listing(dir);
        self.dir_changed(dir, dir_wcc.after);
        Ok(Created::New(self.child(dir, handle, attr.fileid), attr, dir_wcc))
    }

    fn dir_changed(&self, dir: &Resolved, after: Option<Attr>) {
        match after {
            Some(a) => {
                self.install(dir, a, true);
            }
            None => self.expire(dir),
        }
    }

    /// Remove a name; returns the directory's change and what was removed.
    pub(crate) async fn remove(
        &self,
        dir: &Resolved,
        cred: &Credentials,
        name: &[u8],
        rmdir: bool,
    ) -> Result<(BeforeAfter, Resolved)> {
        let dattr = self.dir_state(dir, cred).await?;
        check_name(name)?;
        let (victim, vattr) = self.lookup_fresh(dir, cred, name, &dattr).await?;
        perm::may_delete(cred, &dattr, vattr.as_ref())?;
        let filer = self.filer(dir)?.clone();
        let mut wcc = self
            .filer_call(filer.remove(cred, &dir.filer_handle, name, rmdir))
            .await?;
        wcc.before = wcc.before.or(Some(AttrStamp::from(&dattr)));
        self.cache_name(dir, name, None);
        self.drop_listing(dir);
        self.dir_changed(dir, wcc.after);
        Ok((wcc, victim))
    }

    /// The object a name refers to, with its attributes when a sticky
    /// directory makes its owner matter.
    async fn lookup_fresh(
        &self,
        dir: &Resolved,
        cred: &Credentials,
        name: &[u8],
        dattr: &Attr,
    ) -> Result<(Resolved, Option<Attr>)> {
        if dattr.mode & 0o1000 != 0 {
            let filer = self.filer(dir)?.clone();
            let (fh, attr) = self
                .filer_call(filer.lookup(cred, &dir.filer_handle, name))
                .await?;
            return Ok((self.child(dir, fh, attr.fileid), Some(attr)));
        }
        let (child, seed, _) = self.lookup(dir, cred, name).await?;
        Ok((child, seed.map(|(a, _)| a)))
    }

    /// Rename within this shard's directory `from` to `to` (whose
    /// attributes the caller fetched from its shard).
    pub(crate) async fn rename(
        &self,
        from: &Resolved,
        cred: &Credentials,
        from_name: &[u8],
        to: &Resolved,
        to_attr: &Attr,
        to_name: &[u8],
    ) -> Result<RenameOutcome> {
        let fattr = self.dir_state(from, cred).await?;
        if to_attr.ftype != FileType::Directory {
            return Err(Error::NotDir);
        }
        check_name(from_name)?;
        check_name(to_name)?;
        let (moved, mattr) = self.lookup_fresh(from, cred, from_name, &fattr).await?;
        perm::may_delete(cred, &fattr, mattr.as_ref())?;
        perm::require(cred, to_attr, perm::W | perm::X)?;
        let filer = self.filer(from)?.clone();
        // The replaced object, if any, for sticky checks and to expire its attributes.
        let replaced = match self
            .filer_call(filer.lookup(cred, &to.filer_handle, to_name))
            .await
        {
            Ok((fh, attr)) => {
                if to_attr.mode & 0o1000 != 0
                    && cred.uid != 0
                    && cred.uid != attr.uid
                    && cred.uid != to_attr.uid
                {
                    return Err(Error::Access);
                }
                Some(self.child(to, fh, attr.fileid))
            }
            Err(Error::NoEnt) => None,
            Err(e) => return Err(e),
        };
        if replaced.is_some_and(|r| r.fileid == moved.fileid && r.filer_handle == moved.filer_handle) {
            // Two names of one file: POSIX says do nothing.
            let wcc = BeforeAfter {
                before: Some(AttrStamp::from(&fattr)),
                after: Some(fattr),
            };
            return Ok(RenameOutcome {
                from_wcc: wcc,
                to_wcc: BeforeAfter {
                    before: None,
                    after: Some(*to_attr),
                },
                moved: None,
                replaced: None,
            });
        }
        // Moving a directory to a new parent rewrites its "..": needs write on it.
        let moving_dir = match mattr {
            Some(a) => a.ftype == FileType::Directory,
            None => self
                .getattr(&moved, cred)
                .await
                .map(|a| a.ftype == FileType::Directory)
                .unwrap_or(false),
        };
        if moving_dir && file_key(from) != file_key(to) && cred.uid != 0 {
            let a = match mattr {
                Some(a) => a,
                None => self.getattr(&moved, cred).await?,
            };
            perm::require(cred, &a, perm::W)?;
        }
        let (mut fw, mut tw) = self
            .filer_call(filer.rename(cred, &from.filer_handle, from_name, &to.filer_handle, to_name))
            .await?;
        fw.before = fw.before.or(Some(AttrStamp::from(&fattr)));
        tw.before = tw.before.or(Some(AttrStamp::from(to_attr)));
        self.cache_name(from, from_name, None);
        self.drop_listing(from);
        self.dir_changed(from, fw.after);
        if file_key(from) == file_key(to) {
            self.cache_name(from, to_name, Some((moved.filer_handle, moved.fileid)));
        }
        Ok(RenameOutcome {
            from_wcc: fw,
            to_wcc: tw,
            moved: Some(moved),
            replaced,
        })
    }

    /// Another shard changed this shard's directory: a name now refers to
    /// `child` (or nothing), and the listing is stale.
    pub(crate) fn name_changed(
        &self,
        dir: &Resolved,
        name: &[u8],
        child: Option<&Resolved>,
        after: Option<Attr>,
    ) {
        self.cache_name(dir, name, child.map(|c| (c.filer_handle, c.fileid)));
        self.drop_listing(dir);
        self.dir_changed(dir, after);
    }

    pub(crate) async fn link(
        &self,
        file: &Resolved,
        cred: &Credentials,
        dir: &Resolved,
        name: &[u8],
    ) -> Result<(Attr, BeforeAfter)> {
        let dattr = self.dir_state(dir, cred).await?;
        perm::require(cred, &dattr, perm::W | perm::X)?;
        check_name(name)?;
        let filer = self.filer(dir)?.clone();
        let (attr, mut wcc) = self
            .filer_call(filer.link(cred, &file.filer_handle, &dir.filer_handle, name))
            .await?;
        wcc.before = wcc.before.or(Some(AttrStamp::from(&dattr)));
        self.cache_name(dir, name, Some((file.filer_handle, file.fileid)));
        self.drop_listing(dir);
        self.dir_changed(dir, wcc.after);
        Ok((attr, wcc))
    }

    pub(crate) async fn readlink(&self, r: &Resolved, cred: &Credentials) -> Result<(Vec<u8>, Attr)> {
        let attr = self.state(r, cred).await?.attr;
        if attr.ftype != FileType::Symlink {
            return Err(Error::Inval);
        }
        let filer = self.filer(r)?.clone();
        let target = self.filer_call(filer.readlink(cred, &r.filer_handle)).await?;
        Ok((target, attr))
    }

    /// Up to `max` entries after `cookie` (0: from the start), and whether
    /// that reaches the end. Cookies are the core filer's, so they stay valid
    /// whether or not the listing is still cached.
    pub(crate) async fn readdir(
        &self,
        dir: &Resolved,
        cred: &Credentials,
        cookie: u64,
        max: usize,
    ) -> Result<(Vec<ListEntry>, bool, Attr)> {
        let dattr = self.dir_state(dir, cred).await?;
        perm::require(cred, &dattr, perm::R)?;
        if let Some(listing) = self.listing(dir) {
            loop {
                let found = listing.filled.borrow().page(cookie, max);
                match found {
                    Some(Some((entries, eof))) => return Ok((entries, eof, dattr)),
                    Some(None) => break,
                    None => {
                        if !self.fill(dir, cred, &listing).await? {
                            break;
                        }
                    }
                }
            }
        }
        // Not cached, or a cookie of an entry removed since: ask the core filer.
        let filer = self.filer(dir)?.clone();
        let at = Instant::now();
        let (page, eof) = self
            .filer_call(filer.readdir_plus(cred, &dir.filer_handle, cookie, max))
            .await?;
        let entries = page.into_iter().map(|e| ListEntry::listed(e, at)).collect();
        Ok((entries, eof, dattr))
    }

    /// The cached listing of `dir`, a new empty one if it is missing or stale.
    fn listing(&self, dir: &Resolved) -> Option<Rc<Listing>> {
        let key = file_key(dir);
        let period = self.policy(dir).dir_verify;
        if let Some(l) = self.listings.borrow_mut().get(&key) {
            if l.validated.elapsed() < period || self.filer_down() {
                return Some(l.clone());
            }
        }
        if self.filer_down() {
            return None;
        }
        let listing = Rc::new(Listing {
            filled: RefCell::new(Filled {
                next: Some(0),
                by_names: self.names_known(dir) >= NAMES_WORTH_A_PLAIN_LISTING,
                ..Filled::default()
            }),
            filling: futures::lock::Mutex::new(()),
            validated: Instant::now(),
        });
        self.listings.borrow_mut().put(key, listing.clone());
        Some(listing)
    }

    /// Add the next page to `listing`. `false` when it cannot grow: the
    /// directory is too large to cache, so it is paged from the core filer.
    async fn fill(&self, dir: &Resolved, cred: &Credentials, listing: &Listing) -> Result<bool> {
        let before = listing.filled.borrow().entries.len();
        let _filling = listing.filling.lock().await;
        let (cookie, by_names) = {
            let f = listing.filled.borrow();
            if f.entries.len() != before {
                // Another reader added a page meanwhile.
                return Ok(true);
            }
            match f.next {
                Some(c) => (c, f.by_names),
                None => return Ok(true),
            }
        };
        if before > MAX_CACHED_LISTING {
            self.listings.borrow_mut().pop(&file_key(dir));
            return Ok(false);
        }
        let page = match by_names {
            true => self.page_by_names(dir, cred, cookie).await?,
            false => None,
        };
        let named = page.is_some();
        let (page, eof) = match page {
            Some(page) => page,
            None => {
                let filer = self.filer(dir)?.clone();
                let at = Instant::now();
                let (page, eof) = self
                    .filer_call(filer.readdir_plus(cred, &dir.filer_handle, cookie, LIST_PAGE))
                    .await?;
                for e in &page {
                    if let Some((fh, _)) = &e.object {
                        self.cache_name(dir, &e.entry.name, Some((*fh, e.entry.fileid)));
                    }
                }
                let page = page.into_iter().map(|e| ListEntry::listed(e, at)).collect();
                (page, eof)
            }
        };
        let mut f = listing.filled.borrow_mut();
        // Once a page has names the cache lacks, the rest is probed.
        f.by_names = named;
        // A page that is empty but not the last would be asked for forever.
        let end = eof || page.is_empty();
        let mut next = cookie;
        for e in page {
            next = e.cookie;
            let at = f.entries.len();
            f.by_cookie.insert(e.cookie, at);
            f.entries.push(e);
        }
        f.next = (!end).then_some(next);
        Ok(true)
    }

    /// How many names of `dir` the names cache holds.
    fn names_known(&self, dir: &Resolved) -> usize {
        self.names
            .borrow()
            .peek(&file_key(dir))
            .map_or(0, |m| m.map.len())
    }

    /// A page of `dir`'s listing from its names alone, with each entry's
    /// handle from the names cache (attributes come from each file's own
    /// cache later); `None` if the cache lacks any of them. Files made or
    /// looked up through the engine are listed without a probe of each.
    async fn page_by_names(
        &self,
        dir: &Resolved,
        cred: &Credentials,
        cookie: u64,
    ) -> Result<Option<(Vec<ListEntry>, bool)>> {
        let filer = self.filer(dir)?.clone();
        let page = self
            .filer_call(filer.readdir(cred, &dir.filer_handle, cookie, LIST_PAGE))
            .await?;
        // The directory's names, looked up once for the whole page.
        let (period, down) = (self.policy(dir).dir_verify, self.filer_down());
        let mut names = self.names.borrow_mut();
        let Some(known) = names.get(&file_key(dir)) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(page.entries.len());
        for e in page.entries {
            match known.map.get(&e.name[..]).and_then(|n| n.trusted(period, down)) {
                Some(Some((fh, fileid))) if fileid == e.fileid => out.push(ListEntry {
                    name: e.name,
                    fileid,
                    cookie: e.cookie,
                    ftype: e.ftype,
                    handle: Some(fh),
                    attr: None,
                }),
                _ => return Ok(None),
            }
        }
        Ok(Some((out, page.eof)))
    }
}

/// What a new object in a directory with attributes `dattr` is made
/// with: `attrs`, with its mode and the owner it gets. New objects belong
/// to the caller; a setgid directory passes its group on.
pub(super) fn new_owner(cred: &Credentials, dattr: &Attr, node: &NewNode, attrs: &SetAttr) -> SetAttr {
    let default_mode = match node {
        NewNode::Directory => 0o755,
        NewNode::Symlink(_) => 0o777,
        _ => 0o644,
    };
    let gid = if dattr.mode & 0o2000 != 0 {
        dattr.gid
    } else {
        cred.gid
    };
    let mut mode = attrs.mode.unwrap_or(default_mode) & 0o7777;
    if matches!(node, NewNode::Directory) && dattr.mode & 0o2000 != 0 {
        mode |= 0o2000;
    }
    SetAttr {
        mode: Some(mode),
        uid: Some(cred.uid),
        gid: Some(gid),
        ..*attrs
    }
}

/// Below this many cached names, a listing is not first tried by names.
const NAMES_WORTH_A_PLAIN_LISTING: usize = 16;

/// Outcome of a create on the directory's shard.
pub(crate) enum Created {
    New(Resolved, Attr, BeforeAfter),
    /// Unchecked create of an existing name: the caller applies the attributes to it.
    Existing(Resolved, Option<(Attr, Instant)>, Attr),
}
