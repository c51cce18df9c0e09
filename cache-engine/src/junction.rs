//! The global namespace: several core filers, or directories of them, each a
//! *mount* with a cache policy of its own, joined into one tree at
//! *junctions*. Mount 0 is the root of the tree; every other mount appears
//! as a directory name (its junction) somewhere under it.
//!
//! A junction hides whatever its parent directory holds under that name, as a
//! mount point does. `..` from a mount's root leads back to the junction's
//! directory. Renames and hard links never cross a junction (`XDev`), and the
//! junction name itself cannot be removed or renamed.

use std::sync::Arc;

use crate::config::CachePolicy;
use crate::filer::CoreFiler;
use crate::handle::{FileHandle, Resolved};
use crate::rt::FastMap;
use crate::{Error, Result};

/// A core filer, or one of its directories, as one part of the namespace.
#[derive(Clone)]
pub struct Mount {
    pub filer: Arc<dyn CoreFiler>,
    /// The directory of the core filer the mount shows ("/" for its root).
    pub subdir: String,
    pub policy: CachePolicy,
}

/// Where mount `mount` (never 0: the root mount is the tree's root) appears:
/// an absolute path of the namespace, such as `/projects/shots`. Its parent
/// directory must exist, in the root mount or under another junction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JunctionSpec {
    pub path: String,
    pub mount: usize,
}

/// Junction entries listed after a directory's own entries take the top
/// cookies: core filer cookies stay below them (directory offsets are
/// non-negative 63-bit values on Linux).
pub(crate) const COOKIE_BASE: u64 = u64::MAX - 1024;

pub(crate) struct Junction {
    /// The directory the junction is in.
    pub parent: FileHandle,
    pub name: Vec<u8>,
    /// The mount's root directory.
    pub root: FileHandle,
    pub root_fileid: u64,
}

#[derive(Default)]
pub(crate) struct Junctions {
    list: Vec<Junction>,
    /// (filer, file id) of a directory → its junctions, in listing order.
    by_parent: FastMap<(u8, u64), Vec<usize>>,
    /// Mount index → the junction its root hangs at.
    by_mount: FastMap<u8, usize>,
}

impl Junctions {
    pub fn add(&mut self, parent: &Resolved, mount: u8, j: Junction) -> Result<()> {
        let siblings = self.by_parent.entry((parent.filer, parent.fileid)).or_default();
        if siblings.iter().any(|&i| self.list[i].name == j.name) || self.by_mount.contains_key(&mount) {
            return Err(Error::Exist);
        }
        if siblings.len() >= (u64::MAX - COOKIE_BASE) as usize {
            return Err(Error::NoSpc);
        }
        siblings.push(self.list.len());
        self.by_mount.insert(mount, self.list.len());
        self.list.push(j);
        Ok(())
    }

    /// The junction named `name` in directory `dir`.
    pub fn at(&self, dir: &Resolved, name: &[u8]) -> Option<&Junction> {
        self.in_dir(dir).find(|j| j.name == name)
    }

    /// The junctions in directory `dir`, in listing order.
    pub fn in_dir<'a>(&'a self, dir: &Resolved) -> impl Iterator<Item = &'a Junction> + 'a {
        self.by_parent
            .get(&(dir.filer, dir.fileid))
            .into_iter()
            .flatten()
            .map(|&i| &self.list[i])
    }

    /// The junction whose mount root `dir` is, if it is one.
    pub fn above(&self, dir: &FileHandle, r: &Resolved) -> Option<&Junction> {
        let j = &self.list[*self.by_mount.get(&r.filer)?];
        (j.root == *dir).then_some(j)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The components of an absolute namespace or core filer path; `/` has none.
/// Refuses `.`, `..`, empty components and relative paths.
pub fn components(path: &str) -> std::result::Result<Vec<&str>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("`{path}` is not an absolute path"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    for p in &parts {
        if p.is_empty() || *p == "." || *p == ".." || p.contains('\0') {
            return Err(format!("`{path}`: components must be plain names"));
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::components;

    #[test]
    fn paths_split_into_plain_names() {
        assert_eq!(components("/").unwrap(), Vec::<&str>::new());
        assert_eq!(components("/a/b/").unwrap(), vec!["a", "b"]);
        for bad in ["a/b", "/a//b", "/a/../b", "/.", ""] {
            assert!(components(bad).is_err(), "{bad}");
        }
    }
}
