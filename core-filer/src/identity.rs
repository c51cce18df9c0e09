//! The file-system identity of the calling thread: fsuid, fsgid and
//! supplementary groups, switched per call so that the kernel checks each
//! operation of a core filer against the caller's rights (mode bits, ACLs,
//! changes made behind the cache), as nfs-ganesha's FSAL_VFS and Samba do.
//!
//! Raw system calls only: glibc's `setgroups` changes every thread of the
//! process, the kernel's changes the calling one. The identity is sticky: a
//! thread keeps the last caller's until another is needed, and a thread-local
//! copy makes a call by the same caller cost one comparison. Code on a shard
//! thread that needs the appliance's own rights calls [`daemon`] first. A
//! thread starts out not knowing its identity (a thread inherits its
//! creator's), so its first call switches whatever it holds.
//!
//! Only a process running as root can switch; otherwise every call acts as
//! the process's own user (found out once). A caller of uid 0 acts as the
//! process itself.

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::types::Credentials;
use crate::{Error, Result};

/// A switched-to identity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Id {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl Id {
    fn is(&self, cred: &Credentials) -> bool {
        self.uid == cred.uid && self.gid == cred.gid && self.groups == cred.gids
    }
}

/// What this thread acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Acting {
    /// Not known (a new thread, or a switch that failed half way).
    Unknown,
    /// The process's own identity.
    Own,
    Caller(Id),
}

thread_local! {
    static CURRENT: RefCell<Acting> = const { RefCell::new(Acting::Unknown) };
}

/// The process's own identity, when it may switch away from it (root).
fn own() -> Option<&'static Id> {
    static OWN: OnceLock<Option<Id>> = OnceLock::new();
    OWN.get_or_init(|| {
        // SAFETY: plain system calls without arguments that can be invalid.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if euid != 0 {
            return None;
        }
        // SAFETY: a zero size asks only for the count.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        let mut groups = vec![0; usize::try_from(n).unwrap_or(0)];
        // SAFETY: `groups` has room for the `n` entries asked for.
        let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
        groups.truncate(usize::try_from(got).unwrap_or(0));
        Some(Id {
            uid: euid,
            gid: egid,
            groups,
        })
    })
    .as_ref()
}

/// Whether this process can act as its callers (it runs as root).
pub fn can_switch() -> bool {
    own().is_some()
}

/// Act as `cred` on this thread from now on. One comparison when the thread
/// already does.
pub fn assume(cred: &Credentials) -> Result<()> {
    if cred.uid == 0 {
        return daemon();
    }
    let same = CURRENT.with_borrow(|cur| matches!(cur, Acting::Caller(id) if id.is(cred)));
    if same || own().is_none() {
        return Ok(());
    }
    switch(cred.uid, cred.gid, &cred.gids)?;
    CURRENT.set(Acting::Caller(Id {
        uid: cred.uid,
        gid: cred.gid,
        groups: cred.gids.clone(),
    }));
    Ok(())
}

/// Act with the process's own rights on this thread from now on.
pub fn daemon() -> Result<()> {
    if CURRENT.with_borrow(|cur| *cur == Acting::Own) {
        return Ok(());
    }
    let Some(id) = own() else {
        return Ok(());
    };
    switch(id.uid, id.gid, &id.groups)?;
    CURRENT.set(Acting::Own);
    Ok(())
}

/// Whether this thread now acts as a caller other than the process itself.
pub fn acting_as_caller() -> bool {
    CURRENT.with_borrow(|cur| matches!(cur, Acting::Caller(_)))
}

fn switch(uid: u32, gid: u32, groups: &[u32]) -> Result<()> {
    // Until this switch is done and checked, nothing is known.
    CURRENT.set(Acting::Unknown);
    // SAFETY: `groups` is valid for reads of groups.len() gids; the kernel copies them.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r != 0 {
        // Too many groups or no CAP_SETGID: never go on with the wrong ones.
        return Err(Error::from(std::io::Error::last_os_error()));
    }
    // setfsuid/setfsgid report no error: they return the old id, and a
    // second call with an invalid id (-1) returns the current one.
    // SAFETY: plain system calls on integers.
    let (fsgid, fsuid) = unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        let fsgid = libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32;
        libc::syscall(libc::SYS_setfsuid, uid);
        (fsgid, libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32)
    };
    if fsgid != gid || fsuid != uid {
        return Err(Error::Perm);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file system uid and gid of thread `tid` of this process.
    fn fs_ids(tid: libc::pid_t) -> (u32, u32) {
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
        let field = |name: &str| -> u32 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            // Real, effective, saved, file system.
            line.split_whitespace().nth(4).unwrap().parse().unwrap()
        };
        (field("Uid:"), field("Gid:"))
    }

    fn tid() -> libc::pid_t {
        // SAFETY: a system call without arguments.
        unsafe { libc::gettid() }
    }

    #[test]
    fn switches_this_thread_only_and_back() {
        assert!(can_switch(), "the tests run as root");
        let user = Credentials {
            uid: 1000,
            gid: 1000,
            gids: vec![1000, 50],
            origin: 0,
        };
        let outer = tid();
        std::thread::spawn(move || {
            assume(&user).unwrap();
            assert_eq!(fs_ids(tid()), (1000, 1000));
            assert!(acting_as_caller());
            // The other threads are untouched.
            assert_eq!(fs_ids(outer), (0, 0));
            assume(&user).unwrap();
            assume(&Credentials::root()).unwrap();
            assert_eq!(fs_ids(tid()), (0, 0));
            assert!(!acting_as_caller());
            // A thread started while acting as a caller inherits that
            // identity; its first call to be the process switches back.
            assume(&user).unwrap();
            std::thread::spawn(|| {
                assert_eq!(fs_ids(tid()), (1000, 1000));
                daemon().unwrap();
                assert_eq!(fs_ids(tid()), (0, 0));
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }
}
