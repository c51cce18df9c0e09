//! Latency of cached metadata calls at queue depth 1 through the engine:
//! from a task on the owning shard and from a thread of its own.
//!
//! `cargo run --release -p benches --bin engine_latency`

use std::time::{Duration, Instant};

use cache_engine::filer::local::LocalFiler;
use cache_engine::types::Credentials;
use cache_engine::{Engine, EngineConfig};

fn percentile(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6
}

async fn getattrs(engine: &Engine, n: usize) -> Vec<Duration> {
    let fh = engine
        .lookup(&Credentials::root(), &engine.root(), b"f")
        .await
        .unwrap()
        .0;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        engine.getattr(&fh).await.unwrap();
        out.push(t.elapsed());
    }
    out
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("origin")).unwrap();
    std::fs::write(dir.path().join("origin/f"), b"x").unwrap();
    let cfg = EngineConfig {
        shards: 1,
        cache_bytes: 0,
        cache_dir: dir.path().join("cache"),
        state_dir: dir.path().join("state"),
        ..EngineConfig::default()
    };
    let engine = Engine::start(
        cfg,
        std::sync::Arc::new(LocalFiler::open(&dir.path().join("origin")).unwrap()),
    )
    .unwrap();
    let n = 20_000;
    let e = engine.clone();
    let local =
        futures::executor::block_on(engine.run_on(0, move || async move { getattrs(&e, n).await })).unwrap();
    let remote = futures::executor::block_on(getattrs(&engine, n));
    for (what, v) in [("on the owning shard", local), ("from another thread", remote)] {
        let mean = v.iter().sum::<Duration>().as_secs_f64() * 1e6 / v.len() as f64;
        println!(
            "getattr {what}: mean {mean:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
            percentile(v.clone(), 0.5),
            percentile(v, 0.99)
        );
    }
    engine.shutdown();
}
