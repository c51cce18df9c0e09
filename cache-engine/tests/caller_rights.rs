//! The engine over the `local` core filer, which acts with the caller's
//! rights: a change made behind the engine's cache is enforced by the kernel
//! when the engine calls in. The test runs as root and acts as another user.

mod common;

use std::os::unix::fs::PermissionsExt;

use bytes::Bytes;
use cache_engine::types::*;
use cache_engine::Error;
use common::*;

fn chown(p: &std::path::Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn chmod(p: &std::path::Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The engine's cached attributes say the file is open to everyone; the
/// kernel, asked with the caller's rights, says it no longer is.
#[test]
fn a_change_behind_the_cache_is_enforced() {
    let fx = fixture(|_| {});
    chmod(&fx.origin(), 0o755);
    let path = fx.origin().join("f");
    std::fs::write(&path, pattern(256 << 10, 1)).unwrap();
    chown(&path, 2000, 2000);
    chmod(&path, 0o644);
    let me = Credentials {
        uid: 1000,
        gid: 1000,
        gids: Vec::new(),
        origin: 0,
    };
    block_on(async {
        let e = &fx.engine;
        let (f, _, _) = e.lookup(&me, &e.root(), b"f").await.unwrap();
        // Reads the first block; the engine now holds the file as 0644.
        e.read(&me, &f, 0, 4096).await.unwrap();
        chmod(&path, 0o600);
        // A block not cached yet goes to the core filer, which refuses.
        let r = e.read(&me, &f, 200 << 10, 4096).await;
        assert_eq!(r.err(), Some(Error::Access));
        let w = e
            .write(&me, &f, 0, Bytes::from_static(b"x"), Stability::FileSync)
            .await;
        assert_eq!(w.err(), Some(Error::Access));
        assert_eq!(std::fs::read(&path).unwrap(), pattern(256 << 10, 1));
    });
}
