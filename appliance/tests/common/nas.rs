//! A real NAS for the end-to-end tests: nfs-ganesha over a directory of the
//! test, free ports to put it on, and bounds that turn a hang into a failure.

use std::path::Path;
use std::time::{Duration, Instant};

use testbed::ganesha::Ganesha;

/// How long any one call may take before the test calls it a hang.
pub const HANG: Duration = Duration::from_secs(60);

/// ganesha exporting `tmp/export` on `ports` (NFS, MOUNT), its state in
/// `tmp/ganesha`, attributes never cached (changes made on the host show).
pub fn start_ganesha(tmp: &Path, ports: (u16, u16)) -> Ganesha {
    Ganesha::start_fresh_attrs(&tmp.join("export"), &tmp.join("ganesha"), ports.0, ports.1)
        .unwrap_or_else(|e| panic!("ganesha: {e}"))
}

/// A port free on 127.0.0.1 when asked.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two different ports free on 127.0.0.1 when asked.
pub fn free_ports() -> (u16, u16) {
    loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            return (a, b);
        }
    }
}

/// `f`, or a panic once it took [`HANG`].
pub async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("an NFS call through Weir hung for {HANG:?}"))
}

/// `call` until it answers something other than JUKEBOX (which clients
/// retry: Weir may still be reconnecting), for up to half of [`HANG`].
pub async fn retry_jukebox<T>(mut call: impl AsyncFnMut() -> Result<T, String>) -> T {
    let t = Instant::now();
    loop {
        match call().await {
            Ok(v) => return v,
            Err(e) if e.contains("JUKEBOX") && t.elapsed() < HANG / 2 => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
}
