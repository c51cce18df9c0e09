//! The engine over the `nfs` core filer against nfs-ganesha exporting a temp
//! directory: a round trip, and an outage ridden out.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_engine::types::*;
use cache_engine::{Engine, Error};
use common::root;
use core_filer::nfs::{NfsConfig, NfsFiler};
use testbed::ganesha::Export;

fn config(nas: &Export) -> NfsConfig {
    let mut c = NfsConfig::new("127.0.0.1", nas.nfs_port, "/export");
    c.mount_port = Some(nas.mount_port);
    c
}

fn mode(m: u32) -> SetAttr {
    SetAttr {
        mode: Some(m),
        ..SetAttr::default()
    }
}

#[test]
fn engine_round_trip_over_nfs() {
    let nas = Export::start();
    std::fs::create_dir(nas.path("pre")).unwrap();
    std::fs::write(nas.path("pre/old"), b"from the NAS").unwrap();
    let filer = Arc::new(NfsFiler::connect(&config(&nas), &nas.state()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(common::engine_config(dir.path()), filer).unwrap();
    common::block_on(async {
        let c = root();
        let r = engine.root();
        let made = engine
            .create(&c, &r, b"new", CreateMode::Guarded, &mode(0o644))
            .await
            .unwrap();
        let data = common::pattern(300_000, 9);
        let w = engine
            .write(
                &c,
                &made.handle,
                0,
                Bytes::from(data.clone()),
                Stability::FileSync,
            )
            .await
            .unwrap();
        assert_eq!(w.count as usize, data.len());
        let rd = engine.read(&c, &made.handle, 0, 300_000).await.unwrap();
        let got: Vec<u8> = rd.data.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(got, data);
        let pre = common::walk(&engine, "pre/old").await.unwrap();
        let rd = engine.read(&c, &pre, 0, 100).await.unwrap();
        let got: Vec<u8> = rd.data.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(got, b"from the NAS");
        engine.mkdir(&c, &r, b"dir", &mode(0o755)).await.unwrap();
        let list = engine.readdir_plus(&c, &r, 0, 0, 100).await.unwrap();
        let names: BTreeSet<Vec<u8>> = list.entries.iter().map(|e| e.name.clone()).collect();
        let want: BTreeSet<Vec<u8>> = [&b"new"[..], b"pre", b"dir"].iter().map(|n| n.to_vec()).collect();
        assert_eq!(names, want);
        assert!(list.eof);
    });
    engine.shutdown();
    assert_eq!(
        std::fs::read(nas.path("new")).unwrap(),
        common::pattern(300_000, 9)
    );
    assert!(nas.path("dir").is_dir());
}

#[test]
fn engine_over_nfs_rides_out_an_outage() {
    let mut nas = Export::start();
    std::fs::write(nas.path("cached"), b"cached bytes").unwrap();
    std::fs::write(nas.path("cold"), b"never read").unwrap();
    let mut cfg = config(&nas);
    cfg.timeout = Duration::from_secs(1);
    cfg.attempt_timeout = Duration::from_millis(300);
    let filer = Arc::new(NfsFiler::connect(&cfg, &nas.state()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(common::engine_config(dir.path()), filer).unwrap();
    let c = root();
    let (cached, cold) = common::block_on(async {
        let cached = common::walk(&engine, "cached").await.unwrap();
        let cold = common::walk(&engine, "cold").await.unwrap();
        engine.read(&c, &cached, 0, 100).await.unwrap();
        (cached, cold)
    });
    nas.down();
    common::block_on(async {
        // Cached data is served; what is not cached answers "try again later".
        let r = engine.read(&c, &cached, 0, 100).await.unwrap();
        assert_eq!(r.data.concat(), b"cached bytes");
        let t = Instant::now();
        assert_eq!(
            engine.read(&c, &cold, 0, 100).await.err(),
            Some(Error::Unavailable)
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    });
    nas.up();
    common::block_on(async {
        // It recovers by itself once the engine probes the core filer again.
        let t = Instant::now();
        loop {
            match engine.read(&c, &cold, 0, 100).await {
                Ok(r) => {
                    assert_eq!(r.data.concat(), b"never read");
                    break;
                }
                Err(e) => {
                    assert_eq!(e, Error::Unavailable);
                    assert!(t.elapsed() < Duration::from_secs(30), "no recovery");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    });
    engine.shutdown();
}
