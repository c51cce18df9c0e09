//! What acting as the caller costs the `local` core filer: switching a
//! thread's fsuid, fsgid and groups against finding them already right, alone
//! and inside filer calls (a cached lookup, a 4 KiB read). Needs root.
//!
//! `cargo run --release -p benches --bin caller_identity`

use std::time::Instant;

use cache_engine::filer::identity;
use cache_engine::filer::local::LocalFiler;
use cache_engine::filer::CoreFiler;
use cache_engine::types::Credentials;

fn user(uid: u32) -> Credentials {
    Credentials {
        uid,
        gid: uid,
        gids: vec![uid, 100, 101],
        origin: 0,
    }
}

/// ns per call of `f(i)` over `n` calls.
fn per_op(n: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..n / 10 {
        f(i);
    }
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

/// ns per open+close of a file's data: by kernel handle (the filer's way
/// before it acted as callers) and by reopening an `O_PATH` descriptor
/// through `/proc` (its way now: the kernel checks the caller's rights).
fn data_opens(path: &std::path::Path) -> (f64, f64) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: libc::c_int,
        f: [u8; 128],
    }
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut h = Handle {
        bytes: 128,
        kind: 0,
        f: [0; 128],
    };
    let mut mount_id = 0;
    // SAFETY: `c` is NUL-terminated; `h` is a file_handle with room for 128 bytes;
    // the descriptors opened below are closed at once.
    unsafe {
        let hp = (&mut h as *mut Handle).cast::<libc::file_handle>();
        assert_eq!(
            libc::name_to_handle_at(libc::AT_FDCWD, c.as_ptr(), hp, &mut mount_id, 0),
            0
        );
        let dir = CString::new(path.parent().unwrap().as_os_str().as_bytes()).unwrap();
        let mount = libc::open(dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        let opath = libc::open(c.as_ptr(), libc::O_PATH);
        let proc = CString::new(format!("/proc/self/fd/{opath}")).unwrap();
        let by_handle = per_op(100_000, |_| {
            let fd = libc::open_by_handle_at(mount, hp, libc::O_RDONLY);
            assert!(fd >= 0);
            libc::close(fd);
        });
        let by_proc = per_op(100_000, |_| {
            let fd = libc::open(proc.as_ptr(), libc::O_RDONLY);
            assert!(fd >= 0);
            libc::close(fd);
        });
        libc::close(opath);
        libc::close(mount);
        (by_handle, by_proc)
    }
}

fn main() {
    if !identity::can_switch() {
        eprintln!("caller_identity: run as root (the filer acts as its callers only then)");
        std::process::exit(2);
    }
    let (a, b) = (user(2101), user(2102));
    let n = 200_000;
    let same = per_op(n, |_| identity::assume(&a).unwrap());
    let switch = per_op(n, |i| identity::assume(if i % 2 == 0 { &a } else { &b }).unwrap());
    let back = per_op(n, |i| {
        if i % 2 == 0 {
            identity::assume(&a).unwrap()
        } else {
            identity::daemon().unwrap()
        }
    });
    identity::daemon().unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![7u8; 1 << 20]).unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fs = LocalFiler::open(dir.path()).unwrap();
    let rt = compio::runtime::Runtime::new().unwrap();
    let root = Credentials::root();
    let fh = rt.block_on(fs.lookup(&root, &fs.root(), b"f")).unwrap().0;
    let calls = 50_000;
    let filer = |label: &str, who: &dyn Fn(u32) -> &'static Credentials| {
        let lookup = per_op(calls, |i| {
            rt.block_on(fs.lookup(who(i), &fs.root(), b"f")).unwrap();
        });
        let read = per_op(calls, |i| {
            rt.block_on(fs.read(who(i), &fh, u64::from(i % 256) * 4096, 4096))
                .unwrap();
        });
        println!("{label:<34} lookup {lookup:>8.0} ns   read 4 KiB {read:>8.0} ns");
    };
    let (ra, rb, rr): (&'static _, &'static _, &'static _) = (
        Box::leak(Box::new(a.clone())),
        Box::leak(Box::new(b.clone())),
        Box::leak(Box::new(root.clone())),
    );
    let (by_handle, by_proc) = data_opens(&dir.path().join("f"));
    println!("identity::assume, same caller      {same:>8.1} ns/op");
    println!("identity::assume, two callers      {switch:>8.1} ns/op (every call switches)");
    println!("caller, then the process's own     {back:>8.1} ns/op (every call switches)");
    println!("open data by handle (as before)    {by_handle:>8.0} ns/op");
    println!("open data through /proc (now)      {by_proc:>8.0} ns/op");
    filer("filer as root (no switch)", &|_| rr);
    filer("filer as one user (no switch)", &|_| ra);
    filer("filer as two users (switch each)", &|i| {
        if i % 2 == 0 {
            ra
        } else {
            rb
        }
    });
}
