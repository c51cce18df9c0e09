//! `weir serve` caching a real NAS end to end: nfs-ganesha (FSAL_VFS) as the
//! core filer behind a delay proxy (the WAN, with a cable to pull), NFSv3
//! clients nobody here wrote (crates.io `nfs3_client`) in front of Weir.
//! These are the promises issue 4 makes to operators: a change made directly
//! on the NAS shows through after the verify period, concurrent cold reads
//! fetch the data once, an outage leaves cached data readable and fails the
//! rest cleanly, and a NAS restart is ridden out, all without restarting
//! Weir. Pass/fail only: the one time bound says "did not hang".

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::nas::*;
use common::*;
use testbed::ganesha::Ganesha;
use testbed::nfs_client::nfs3_types::nfs3::{
    self, nfs_fh3, stable_how, COMMIT3args, COMMIT3res, WRITE3args, WRITE3res,
};
use testbed::nfs_client::nfs3_types::xdr_codec::Opaque;
use testbed::nfs_client::{self as nfs, Conn, Endpoint, Pipe};
use testbed::{DelayProxy, Link};

/// ganesha over a temp directory, the proxy in front of it and `weir serve`
/// caching it through the proxy.
struct Rig {
    tmp: tempfile::TempDir,
    ports: (u16, u16),
    ganesha: Option<Ganesha>,
    proxy: DelayProxy,
    weir: Daemon,
    ep: Endpoint,
    metrics: String,
    rt: tokio::runtime::Runtime,
}

/// What a test asks of the rig.
struct Opts {
    /// Attribute and directory verify period.
    verify: &'static str,
    /// `[core_filer] timeout`: the bounded wait of a call to the NAS.
    timeout: &'static str,
    memory: &'static str,
    link: Link,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            verify: "1s",
            timeout: "3s",
            memory: "256MiB",
            link: Link::new(Duration::from_millis(2), None),
        }
    }
}

impl Rig {
    /// Start everything over an export that `fill` populated first.
    fn start(opts: Opts, fill: impl FnOnce(&Path)) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let export = tmp.path().join("export");
        std::fs::create_dir(&export).unwrap();
        fill(&export);
        let ports = free_ports();
        let ganesha = start_ganesha(tmp.path(), ports);
        let proxy = DelayProxy::start(ganesha.nfs, opts.link).unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let config = tmp.path().join("weir.toml");
        std::fs::write(
            &config,
            format!(
                "[core_filer]\nurl = \"nfs://127.0.0.1:{}/export?mountport={}\"\ntimeout = \"{}\"\n\
                 [policy]\nattr_verify = \"{v}\"\ndir_verify = \"{v}\"\n\
                 [[exports]]\npath = \"/export\"\n[[exports.rules]]\nclients = [\"127.0.0.1\"]\n\
                 squash = \"none\"\nsecure = false\n",
                proxy.addr().port(),
                ports.1,
                opts.timeout,
                v = opts.verify,
            ),
        )
        .unwrap();
        let args: Vec<String> = [
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
            "--nfs-listen",
            "127.0.0.1:0",
            "--smb-listen",
            "127.0.0.1:0",
            "--memory",
            opts.memory,
            "--cache-size",
            "0",
            "--shards",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut weir = Daemon::start(&args, tmp.path());
        let banner = weir.banner();
        let port = nfs_port(&banner);
        let ep = Endpoint {
            nfs: ([127, 0, 0, 1], port).into(),
            mount_port: port,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Rig {
            tmp,
            ports,
            ganesha: Some(ganesha),
            proxy,
            weir,
            ep,
            metrics: metrics_addr(&banner),
            rt,
        }
    }

    /// The NAS's directory, as the host sees it.
    fn export(&self) -> PathBuf {
        self.tmp.path().join("export")
    }

    /// `f` with a connection to Weir, on the rig's runtime, bounded by [`HANG`].
    fn with<T>(&self, f: impl AsyncFnOnce(&mut Conn) -> T) -> T {
        self.rt.block_on(async {
            let mut c = bounded(nfs::connect(&self.ep)).await.unwrap();
            bounded(f(&mut c)).await
        })
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&http_get(&self.metrics, "/metrics"), name)
    }

    /// Weir still runs: the test never restarts it.
    fn assert_weir_alive(&mut self) {
        assert!(
            self.weir.running(),
            "weir serve exited; stderr: {}",
            self.weir.stderr()
        );
    }
}

/// Deterministic bytes of a given length.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// A whole file read through Weir (1 MiB READs, one at a time).
async fn read_all(c: &mut Conn, fh: &nfs_fh3) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let r = c
            .read(&nfs3::READ3args {
                file: fh.clone(),
                offset: out.len() as u64,
                count: 1 << 20,
            })
            .await
            .map_err(nfs::err("READ", ""))?;
        let ok = nfs::status(r, "READ", "")?;
        out.extend_from_slice(&ok.data);
        if ok.eof || ok.count == 0 {
            return Ok(out);
        }
    }
}

/// LOOKUP `path` and read the whole file.
async fn read_path(c: &mut Conn, path: &str) -> Result<Vec<u8>, String> {
    let fh = nfs::lookup_path(c, path).await?;
    read_all(c, &fh).await
}

#[test]
fn changes_made_on_the_nas_show_through_after_the_verify_period() {
    let rig = Rig::start(Opts::default(), |e| {
        std::fs::write(e.join("v"), b"first").unwrap();
    });
    let path = rig.export().join("v");
    let verify_and_slack = Duration::from_millis(2500);

    let fh = rig.with(async |c| {
        assert_eq!(read_path(c, "v").await.unwrap(), b"first");
        // Not there yet: a negative lookup Weir may cache.
        assert!(nfs::lookup_path(c, "late").await.is_err());
        nfs::lookup_path(c, "v").await.unwrap()
    });

    // A longer version, then one of the same length (only the contents and
    // times change), each written on the NAS directly.
    for (i, new) in [&b"second, and longer"[..], &b"SECOND, AND LONGER"[..]]
        .into_iter()
        .enumerate()
    {
        std::fs::write(&path, new).unwrap();
        if i == 0 {
            std::fs::write(rig.export().join("late"), b"made on the NAS").unwrap();
        }
        std::thread::sleep(verify_and_slack);
        rig.with(async |c| {
            // From now on every answer is the new one, by path and by handle.
            for _ in 0..5 {
                assert_eq!(read_path(c, "v").await.unwrap(), new, "stale contents by path");
                assert_eq!(read_all(c, &fh).await.unwrap(), new, "stale contents by handle");
                let size = nfs::getattr(c, &fh).await.unwrap().size;
                assert_eq!(size, new.len() as u64, "stale size");
                assert_eq!(read_path(c, "late").await.unwrap(), b"made on the NAS");
            }
        });
    }

    // Removed on the NAS: gone through Weir too.
    std::fs::remove_file(rig.export().join("late")).unwrap();
    std::thread::sleep(verify_and_slack);
    rig.with(async |c| {
        let e = nfs::lookup_path(c, "late").await.unwrap_err();
        assert!(e.contains("NOENT"), "{e}");
    });
}

/// Weir's metrics and the proxy agree that 64 clients reading one cold
/// 256 MiB file at once made Weir fetch it about once.
#[test]
fn concurrent_cold_reads_of_one_file_fetch_it_once() {
    const SIZE: usize = 256 << 20;
    const CLIENTS: usize = 64;
    let data = Arc::new(pattern(SIZE, 7));
    let d = data.clone();
    let opts = Opts {
        memory: "1GiB",
        timeout: "30s",
        link: Link::new(Duration::from_millis(4), Some(1_000_000_000 / 8 * 2)),
        ..Opts::default()
    };
    let rig = Rig::start(opts, move |e| std::fs::write(e.join("big"), &*d).unwrap());
    let fh = rig.with(async |c| nfs::lookup_path(c, "big").await.unwrap());
    let before = (
        rig.proxy.bytes_from_target(),
        rig.metric("weir_filer_read_bytes_total"),
    );

    rig.rt.block_on(async {
        let mut tasks = Vec::new();
        for client in 0..CLIENTS {
            let (fh, data, addr) = (fh.clone(), data.clone(), rig.ep.nfs);
            tasks.push(tokio::spawn(async move {
                let pipe = Pipe::connect(addr).await.unwrap();
                read_whole_pipelined(&pipe, &fh, &data, client).await
            }));
        }
        // Each READ is bounded; the whole read may take long on a loaded machine.
        for t in tasks {
            t.await.unwrap();
        }
    });

    let proxy = (rig.proxy.bytes_from_target() - before.0) as f64;
    let filer = rig.metric("weir_filer_read_bytes_total") - before.1;
    let size = SIZE as f64;
    eprintln!(
        "upstream / file: {:.4} (Weir's metrics), {:.4} (proxy); coalesced misses: {}",
        filer / size,
        proxy / size,
        rig.metric("weir_coalesced_misses_total")
    );
    assert!(filer >= size, "Weir's core filer read {filer} bytes of {size}");
    assert!(
        filer <= 1.05 * size,
        "Weir's core filer read {:.3}× the file",
        filer / size
    );
    assert!(
        proxy <= 1.05 * size,
        "the NAS sent {:.3}× the file through the proxy",
        proxy / size
    );
}

/// Read the whole file with 4 READs of 1 MiB in flight, starting at a
/// different MiB per client and wrapping around, checking every byte.
async fn read_whole_pipelined(pipe: &Pipe, fh: &nfs_fh3, want: &[u8], client: usize) {
    const MIB: usize = 1 << 20;
    let chunks = want.len() / MIB;
    let order: Vec<usize> = (0..chunks).map(|i| (i + client * 3) % chunks).collect();
    for group in order.chunks(4) {
        let reads = group.iter().map(|&i| async move {
            let (data, _) = bounded(pipe.read(fh, (i * MIB) as u64, MIB as u32))
                .await
                .unwrap();
            (i, data)
        });
        for (i, data) in futures::future::join_all(reads).await {
            assert!(
                data == want[i * MIB..(i + 1) * MIB],
                "client {client}: wrong bytes in MiB {i}"
            );
        }
    }
}

#[test]
fn an_outage_leaves_cached_data_readable_and_fails_the_rest_cleanly() {
    let cached_data = pattern(4 << 20, 1);
    let uncached_data = pattern(4 << 20, 2);
    let (a, b) = (cached_data.clone(), uncached_data.clone());
    let opts = Opts {
        // Long enough that cached attributes stay valid through the outage.
        verify: "120s",
        ..Opts::default()
    };
    let mut rig = Rig::start(opts, move |e| {
        std::fs::write(e.join("cached"), &a).unwrap();
        std::fs::write(e.join("uncached"), &b).unwrap();
    });
    // `cached` is read whole; `uncached` only looked up (its handle is known).
    let uncached = rig.with(async |c| {
        assert!(read_path(c, "cached").await.unwrap() == cached_data);
        nfs::lookup_path(c, "uncached").await.unwrap()
    });

    // A client that keeps reading cached data across the outage.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (ep, stop, want) = (rig.ep.clone(), stop.clone(), cached_data.clone());
        rig.rt.spawn(async move {
            let mut c = nfs::connect(&ep).await.unwrap();
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let got = bounded(read_path(&mut c, "cached")).await;
                assert!(
                    got.as_deref() == Ok(&want[..]),
                    "cached read failed: {:?}",
                    got.err()
                );
                reads += 1;
            }
            reads
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    rig.proxy.cut();
    let outage = Instant::now();
    rig.with(async |c| {
        for _ in 0..3 {
            assert!(read_path(c, "cached").await.unwrap() == cached_data);
        }
        // Not cached: fails after the bounded wait, with JUKEBOX (clients
        // retry it) or an I/O error, never an answer of wrong data.
        for what in ["uncached", "no-such-file", "uncached by handle"] {
            let t = Instant::now();
            let e = match what {
                "uncached by handle" => read_all(c, &uncached).await.unwrap_err(),
                name => read_path(c, name).await.unwrap_err(),
            };
            eprintln!("{what} during the outage: {e} after {:?}", t.elapsed());
            assert!(e.contains("JUKEBOX") || e.contains("IO"), "{what}: {e}");
        }
    });
    // The cached reader went on all through.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !reader.is_finished(),
        "the cached reader stopped during the outage"
    );
    eprintln!("outage lasted {:?}", outage.elapsed());

    rig.proxy.restore();
    let t = Instant::now();
    let got = rig.with(async |c| loop {
        match read_path(c, "uncached").await {
            Ok(data) => return data,
            Err(e) if t.elapsed() < HANG / 2 => {
                eprintln!("after restore: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("Weir did not recover after the link came back: {e}"),
        }
    });
    assert!(got == uncached_data);
    eprintln!("recovered {:?} after the restore", t.elapsed());
    rig.with(async |c| assert!(read_path(c, "cached").await.unwrap() == cached_data));

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = rig.rt.block_on(bounded(reader)).unwrap();
    assert!(reads > 0);
    rig.assert_weir_alive();
}

/// Past the verify period Weir cannot ask the NAS whether its copy is still
/// current; with the NAS unreachable it serves what it has.
#[test]
fn cached_data_outlives_its_verify_period_in_an_outage() {
    let data = pattern(1 << 20, 5);
    let d = data.clone();
    let rig = Rig::start(Opts::default(), move |e| std::fs::write(e.join("f"), &d).unwrap());
    let fh = rig.with(async |c| {
        let fh = nfs::lookup_path(c, "f").await.unwrap();
        assert!(read_all(c, &fh).await.unwrap() == data);
        fh
    });
    rig.proxy.cut();
    std::thread::sleep(Duration::from_secs(2));
    rig.with(async |c| {
        assert!(read_all(c, &fh).await.unwrap() == data, "by handle");
        assert_eq!(nfs::getattr(c, &fh).await.unwrap().size, data.len() as u64);
        assert!(read_path(c, "f").await.unwrap() == data, "by path");
    });
}

#[test]
fn weir_rides_out_a_nas_restart() {
    let a_data = pattern(1 << 20, 3);
    let b_data = pattern(1 << 20, 4);
    let (a, b) = (a_data.clone(), b_data.clone());
    let mut rig = Rig::start(Opts::default(), move |e| {
        std::fs::write(e.join("a"), &a).unwrap();
        std::fs::write(e.join("b"), &b).unwrap();
    });
    let (fh_a, fh_w) = rig.with(async |c| {
        let fh_a = nfs::lookup_path(c, "a").await.unwrap();
        assert!(read_all(c, &fh_a).await.unwrap() == a_data);
        let root = c.root_nfs_fh3();
        let fh_w = nfs::create(c, &root, "w").await.unwrap();
        write(c, &fh_w, b"before", stable_how::FILE_SYNC).await.unwrap();
        (fh_a, fh_w)
    });

    restart_nas(&mut rig);
    rig.with(async |c| {
        let attr = retry_jukebox(async || nfs::getattr(c, &fh_a).await).await;
        assert_eq!(
            attr.size,
            1 << 20,
            "GETATTR with a handle from before the restart"
        );
        assert!(read_all(c, &fh_a).await.unwrap() == a_data);
        assert!(read_path(c, "b").await.unwrap() == b_data);
        write(c, &fh_w, b"after!", stable_how::FILE_SYNC).await.unwrap();
        assert_eq!(read_all(c, &fh_w).await.unwrap(), b"after!");
    });
    assert_eq!(std::fs::read(rig.export().join("w")).unwrap(), b"after!");
    rig.assert_weir_alive();
}

/// An unstable write through Weir, the NAS restarted (a new write verifier),
/// then COMMIT: Weir cannot tell whether the NAS kept the write, so COMMIT
/// answers with a changed verifier (RFC 1813: the client sends its writes
/// again), never an error for the application.
#[test]
fn commit_after_a_nas_restart_asks_for_the_writes_again() {
    let mut rig = Rig::start(Opts::default(), |_| {});
    let (fh_w, verf) = rig.with(async |c| {
        let root = c.root_nfs_fh3();
        let fh_w = nfs::create(c, &root, "w").await.unwrap();
        let ok = write(c, &fh_w, b"unstable", stable_how::UNSTABLE).await.unwrap();
        (fh_w, ok.verf.0)
    });
    restart_nas(&mut rig);
    rig.with(async |c| {
        let commit = async || {
            let r: COMMIT3res = c
                .commit(&COMMIT3args {
                    file: fh_w.clone(),
                    offset: 0,
                    count: 0,
                })
                .await
                .map_err(nfs::err("COMMIT", "w"))?;
            nfs::status(r, "COMMIT", "w")
        };
        let commit_verf = retry_jukebox(commit).await.verf.0;
        // Weir cannot know whether the NAS kept them: the client must send
        // its unstable writes again, which a new verifier tells it.
        assert_ne!(commit_verf, verf, "COMMIT kept the verifier across a NAS restart");
    });
    rig.assert_weir_alive();
}

/// Stop ganesha and start it again on the same ports and directory (a new
/// write verifier), then wait past the verify period so Weir asks the new
/// instance with its old handles.
fn restart_nas(rig: &mut Rig) {
    rig.ganesha = None;
    // ganesha's write verifier counts whole seconds of its start time: a
    // restart within the same second would keep it.
    std::thread::sleep(Duration::from_millis(1100));
    rig.ganesha = Some(start_ganesha(rig.tmp.path(), rig.ports));
    std::thread::sleep(Duration::from_millis(1500));
}

/// WRITE `data` at offset 0.
async fn write(
    c: &mut Conn,
    fh: &nfs_fh3,
    data: &[u8],
    stable: stable_how,
) -> Result<nfs3::WRITE3resok, String> {
    let r: WRITE3res = c
        .write(&WRITE3args {
            file: fh.clone(),
            offset: 0,
            count: data.len() as u32,
            stable,
            data: Opaque::borrowed(data),
        })
        .await
        .map_err(nfs::err("WRITE", ""))?;
    nfs::status(r, "WRITE", "")
}
