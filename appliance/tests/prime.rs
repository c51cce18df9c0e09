//! `weir prime` against a running `weir serve`: a primed tree is then read
//! through NFS (libnfs-utils' `nfs-cat`, a client nobody here wrote) without
//! a single core filer read, as the server's own metrics show; and every
//! way it can fail ends in one clear line.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use common::*;

/// Deterministic contents of a given size.
fn contents(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
}

/// 5 top directories x 6 subdirectories x 10 files of 1-40 KiB, plus one
/// file of 1.5 MiB: 301 files. Returns their paths relative to `origin`.
fn make_tree(origin: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for d in 0..5 {
        for s in 0..6 {
            let dir = origin.join(format!("d{d}/s{s}"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..10 {
                let seed = d * 100 + s * 10 + f;
                let rel = format!("d{d}/s{s}/f{f}");
                std::fs::write(origin.join(&rel), contents(1024 + seed * 131 % (39 << 10), seed)).unwrap();
                files.push(rel);
            }
        }
    }
    std::fs::write(origin.join("d0/big"), contents(3 << 19, 7)).unwrap();
    files.push("d0/big".into());
    files
}

fn prime(data: &Path, args: &[&str], cwd: &Path) -> std::process::Output {
    let mut all = vec!["prime", "--data-dir", data.to_str().unwrap()];
    all.extend_from_slice(args);
    weir(&all, cwd)
}

struct Served {
    tmp: tempfile::TempDir,
    daemon: Daemon,
    data: PathBuf,
    metrics: String,
    nfs_port: u16,
    files: Vec<String>,
}

fn serve_tree() -> Served {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let files = make_tree(&origin);
    let data = tmp.path().join("data");
    let mut args = small_serve_args(&data);
    args.extend(["--origin".into(), origin.to_str().unwrap().into()]);
    let mut daemon = Daemon::start(&args, tmp.path());
    let banner = daemon.banner();
    Served {
        metrics: metrics_addr(&banner),
        nfs_port: nfs_port(&banner),
        tmp,
        daemon,
        data,
        files,
    }
}

#[test]
fn a_primed_tree_is_read_through_nfs_without_core_filer_reads() {
    testbed::process::ensure_installed(&["nfs-cat"], &["libnfs-utils"]).unwrap();
    let mut s = serve_tree();
    let cwd = s.tmp.path().to_path_buf();
    let filer_reads = |s: &Served| metric(&http_get(&s.metrics, "/metrics"), "weir_filer_reads_total");
    let before = filer_reads(&s);

    // Part of the tree by argument, the rest from a manifest.
    let manifest = cwd.join("shots.txt");
    std::fs::write(
        &manifest,
        "# Monday's shots\n/export/d2\n\n/export/d3   # hero\n/export/d4/\n",
    )
    .unwrap();
    let out = prime(
        &s.data,
        &[
            "--manifest",
            manifest.to_str().unwrap(),
            "--parallel",
            "8",
            "/export/d0",
            "/export//d1",
        ],
        &cwd,
    );
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(
        stdout.starts_with("Primed 301 files in 35 directories"),
        "{stdout}"
    );
    assert!(stdout.contains("already cached       0 B"), "{stdout}");
    assert!(stdout.contains("errors               0"), "{stdout}");
    let primed = filer_reads(&s);
    assert!(primed > before, "prime read nothing from the core filer");

    // Every file through NFS, byte for byte, with no core filer read.
    let origin = cwd.join("origin");
    let hits = |s: &Served| metric(&http_get(&s.metrics, "/metrics"), "weir_cache_hits_total");
    let hits_before = hits(&s);
    for rel in &s.files {
        let want = std::fs::read(origin.join(rel)).unwrap();
        assert!(nfs_cat(s.nfs_port, rel) == want, "{rel} differs through NFS");
    }
    assert_eq!(
        filer_reads(&s),
        primed,
        "a primed file was read from the core filer"
    );
    assert!(hits(&s) > hits_before);

    // A second prime finds everything cached.
    let out = prime(&s.data, &["/export"], &cwd);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("from the core filer  0 B"), "{stdout}");
    assert_eq!(filer_reads(&s), primed);

    let sock = s.data.join("weir.sock");
    assert!(sock.exists());
    s.daemon.signal(libc::SIGTERM);
    assert!(s.daemon.wait().success(), "{}", s.daemon.stderr());
    assert!(!sock.exists(), "the admin socket outlived the server");
}

#[test]
fn bad_paths_and_no_server_are_one_clear_line_each() {
    let s = serve_tree();
    let cwd = s.tmp.path();
    for (path, want) in [
        (
            "/export/nope",
            "weir: prime: /export/nope: no such file or directory",
        ),
        (
            "/srv/elsewhere",
            "weir: prime: /srv/elsewhere: not under any export (exports: /export)",
        ),
        ("export/d0", "weir: prime: export/d0: not an absolute export path"),
        ("/export/d0/../d1", "`..` is not allowed"),
        ("/export/d0/s0/f0/x", "not a directory"),
    ] {
        let out = prime(&s.data, &[path], cwd);
        let line = assert_clean_failure(&out, want);
        assert!(line.starts_with("weir: prime: "), "{line}");
    }
    // A good path beside a bad one is still primed; the run still fails.
    let out = prime(&s.data, &["/export/d1/s1", "/export/missing"], cwd);
    assert_clean_failure(&out, "/export/missing: no such file or directory");
    assert!(
        text(&out.stdout).starts_with("Primed 10 files in 1 directory"),
        "{}",
        text(&out.stdout)
    );

    let out = prime(&cwd.join("elsewhere"), &["/export"], cwd);
    assert_clean_failure(&out, "no weir serve is running with data dir");
    let out = weir(&["prime", "--data-dir", s.data.to_str().unwrap()], cwd);
    assert_clean_failure(&out, "nothing to prime");
    let out = prime(&s.data, &["--manifest", "absent.txt"], cwd);
    assert_clean_failure(&out, "cannot read manifest absent.txt");
    let out = prime(&s.data, &["--parallel", "0", "/export"], cwd);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("must be a number from 1 to 1024"));
}

#[test]
fn malformed_admin_requests_get_an_error_line_not_a_crash() {
    let mut s = serve_tree();
    let sock = UnixStream::connect(s.data.join("weir.sock")).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut lines = BufReader::new(sock.try_clone().unwrap()).lines();
    let mut w = sock;
    for bad in [
        "garbage",
        "{\"cmd\":\"format-disk\"}",
        "{\"cmd\":\"prime\",\"paths\":\"/export\"}",
        "{\"cmd\":\"prime\",\"paths\":[]}",
        "{\"cmd\":\"prime\",\"paths\":[\"/export\"],\"parallel\":0}",
        "\u{1}\u{2}\u{ff}",
    ] {
        writeln!(w, "{bad}").unwrap();
        let answer = lines.next().unwrap().unwrap();
        assert!(
            answer.starts_with("{\"event\":\"error\",\"message\":"),
            "{bad}: {answer}"
        );
    }
    // Invalid UTF-8, then a request still works on the same connection.
    w.write_all(b"\xff\xfe\n{\"cmd\":\"ping\"}\n").unwrap();
    assert!(lines.next().unwrap().unwrap().contains("\"error\""));
    assert!(lines.next().unwrap().unwrap().contains("\"pong\""));
    // A line past the limit ends the connection with an error.
    let long = vec![b'x'; (1 << 20) + 10];
    let _ = w.write_all(&long);
    assert!(lines.next().unwrap().unwrap().contains("longer than"));
    drop((w, lines));

    assert!(s.daemon.stderr().is_empty() || !s.daemon.stderr().contains("panicked"));
    s.daemon.signal(libc::SIGTERM);
    assert!(s.daemon.wait().success(), "{}", s.daemon.stderr());
}
