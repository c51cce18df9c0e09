//! The `weir` binary as an operator meets it: config checks, start-up errors,
//! and a daemon that serves metrics and stops on a signal.

mod common;

use std::path::Path;

use common::*;

#[test]
fn version_is_the_crate_version() {
    let tmp = tempfile::tempdir().unwrap();
    let out = weir(&["--version"], tmp.path());
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("weir {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn config_check_accepts_a_good_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("weir.toml");
    std::fs::write(
        &file,
        "[cache]\nmemory = \"1GiB\"\nsize = \"10G\"\n[core_filer]\nurl = \"file:///srv/data\"\n",
    )
    .unwrap();
    let out = weir(&["config", "check", file.to_str().unwrap()], tmp.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!("{}: ok\n", file.display())),
        "{stdout}"
    );
    assert!(stdout.contains("core filer local /srv/data"), "{stdout}");
    assert!(
        stdout.contains("RAM 1GiB") && stdout.contains("NVMe 10GiB"),
        "{stdout}"
    );
}

#[test]
fn config_check_accepts_the_example_config() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weir.example.toml");
    let tmp = tempfile::tempdir().unwrap();
    let out = weir(&["config", "check", example.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(": ok"));
}

#[test]
fn config_check_shows_the_line_of_broken_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("broken.toml");
    std::fs::write(&file, "[server]\nlog = \"info\"\n[cache\nsize = 1\n").unwrap();
    let out = weir(&["config", "check", "broken.toml"], tmp.path());
    let line = assert_clean_failure(&out, "broken.toml: line 3");
    assert!(line.contains("[cache"), "{line}");
}

#[test]
fn config_check_names_an_unknown_key() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("typo.toml"), "[cache]\nmemroy = \"1GiB\"\n").unwrap();
    let out = weir(&["config", "check", "typo.toml"], tmp.path());
    let line = assert_clean_failure(&out, "unknown field `memroy`");
    assert!(line.contains("line 2"), "{line}");
}

#[test]
fn config_check_explains_bad_sizes_and_durations() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("size.toml"), "[cache]\nsize = \"lots\"\n").unwrap();
    assert_clean_failure(
        &weir(&["config", "check", "size.toml"], tmp.path()),
        "invalid size `lots`",
    );
    std::fs::write(tmp.path().join("dur.toml"), "[policy]\nattr_verify = \"soon\"\n").unwrap();
    assert_clean_failure(
        &weir(&["config", "check", "dur.toml"], tmp.path()),
        "invalid duration `soon`",
    );
}

#[test]
fn config_check_refuses_core_filers_not_in_this_build() {
    let tmp = tempfile::tempdir().unwrap();
    for url in ["s3://bucket/prefix", "gcs://bucket/prefix"] {
        std::fs::write(
            tmp.path().join("f.toml"),
            format!("[core_filer]\nurl = \"{url}\"\n"),
        )
        .unwrap();
        assert_clean_failure(
            &weir(&["config", "check", "f.toml"], tmp.path()),
            "not available in this build yet",
        );
    }
}

#[test]
fn config_check_of_a_missing_file_fails() {
    let tmp = tempfile::tempdir().unwrap();
    assert_clean_failure(
        &weir(&["config", "check", "nope.toml"], tmp.path()),
        "cannot read nope.toml",
    );
}

#[test]
fn serve_refuses_a_cache_dir_that_is_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cachefile"), b"x").unwrap();
    let mut args = small_serve_args(&tmp.path().join("data"));
    args.extend(["--cache-dir".into(), "cachefile".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let line = assert_clean_failure(
        &weir(&args, tmp.path()),
        "cache dir cachefile (cache.dir) is not a directory",
    );
    assert!(line.starts_with("weir: "), "{line}");
}

#[test]
fn serve_refuses_a_data_dir_it_cannot_write() {
    let tmp = tempfile::tempdir().unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let data = if root {
        // root may write anywhere; a path below a regular file defeats it too.
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        tmp.path().join("file/data")
    } else {
        use std::os::unix::fs::PermissionsExt;
        let ro = tmp.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        ro
    };
    let args = small_serve_args(&data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_clean_failure(&weir(&args, tmp.path()), "data dir");
}

#[test]
fn serve_refuses_an_origin_that_is_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("plain"), b"x").unwrap();
    let mut args = small_serve_args(&tmp.path().join("data"));
    args.extend(["--origin".into(), "plain".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_clean_failure(&weir(&args, tmp.path()), "origin plain is not a directory");

    let mut args = small_serve_args(&tmp.path().join("data"));
    args.extend(["--origin".into(), "missing".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_clean_failure(
        &weir(&args, tmp.path()),
        "origin missing: No such file or directory",
    );
}

#[test]
fn serve_refuses_a_busy_metrics_address() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let args = serve_args(&tmp.path().join("data"), &addr);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let line = assert_clean_failure(
        &weir(&args, tmp.path()),
        &format!("cannot listen for metrics on {addr}"),
    );
    assert!(line.contains("in use"), "{line}");
}

#[test]
fn serve_reports_a_broken_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("w.toml"), "[server]\ndata_dir = 5\n").unwrap();
    let out = weir(&["serve", "--config", "w.toml"], tmp.path());
    assert_clean_failure(&out, "weir: w.toml: line 2");
}

#[test]
fn serve_refuses_bad_sizes_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = weir(&["serve", "--memory", "12 parsecs"], tmp.path());
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown unit `parsecs`") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn serve_starts_serves_metrics_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut d = Daemon::start(&small_serve_args(&data), tmp.path());
    let banner = d.banner();
    let all = banner.join("\n");
    assert!(
        all.contains(&format!("local {}", data.join("origin").display())),
        "{all}"
    );
    assert!(all.contains("NFSv3, MOUNT, NLM on 127.0.0.1:"), "{all}");
    assert!(all.contains("mount -t nfs -o vers=3,proto=tcp,port="), "{all}");
    assert!(all.contains("SMB 2.0.2-3.1.1 on 127.0.0.1:"), "{all}");
    assert!(all.contains("smbclient //127.0.0.1/export -p "), "{all}");
    assert!(
        all.contains("mount -t cifs //127.0.0.1/export /mnt -o port="),
        "{all}"
    );
    assert!(data.join("origin").is_dir(), "default origin not created");

    let addr = metrics_addr(&banner);
    let response = http_get(&addr, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("text/plain; version=0.0.4"), "{response}");
    assert!(response.contains("# TYPE weir_"), "{response}");
    assert!(
        response.contains("weir_filer_ops_total{filer=\"local\",shard=\"0\"}"),
        "{response}"
    );
    assert!(response.contains("weir_build_info{version="), "{response}");
    assert!(http_get(&addr, "/nothing").starts_with("HTTP/1.1 404"));

    d.signal(libc::SIGTERM);
    let status = d.wait();
    let stderr = d.stderr();
    assert!(status.success(), "{status}; stderr: {stderr}");
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_stops_on_sigint_and_restarts_on_the_same_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for _ in 0..2 {
        let mut d = Daemon::start(&small_serve_args(&data), tmp.path());
        d.banner();
        d.signal(libc::SIGINT);
        let status = d.wait();
        assert!(status.success(), "{status}; stderr: {}", d.stderr());
        assert!(d.stderr().contains("SIGINT: shutting down"), "{}", d.stderr());
    }
}
