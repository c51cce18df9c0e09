//! A namespace of two core filers joined at a junction, served by `weir
//! serve` from a config file and read by libnfs-utils (`nfs-ls`, `nfs-cat`),
//! clients nobody here wrote: the junction lists and reads as a directory,
//! its files come from the other core filer, and `weir prime` crosses it.

mod common;

use std::process::Command;

use common::*;

#[test]
fn an_export_spans_a_junction_to_another_core_filer() {
    testbed::process::ensure_installed(&["nfs-cat", "nfs-ls"], &["libnfs-utils"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (origin, nas) = (tmp.path().join("origin"), tmp.path().join("nas"));
    std::fs::create_dir_all(origin.join("projects")).unwrap();
    std::fs::create_dir_all(nas.join("vol/shots/010")).unwrap();
    std::fs::write(origin.join("projects/readme"), b"root filer").unwrap();
    std::fs::write(nas.join("vol/shots/010/frame.exr"), b"frame from the nas").unwrap();
    std::fs::write(nas.join("vol/outside-the-junction"), b"never shown").unwrap();
    let config = tmp.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            "[core_filer]\nurl = \"file://{}\"\n\
             [core_filers.nas]\nurl = \"file://{}\"\n\
             [[junctions]]\npath = \"/projects/shots\"\ncore_filer = \"nas\"\n\
             subdir = \"/vol/shots\"\npolicy = \"clients-bypassing\"\n",
            origin.display(),
            nas.display()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let mut args = small_serve_args(&data);
    args.extend(["--config".into(), config.to_str().unwrap().into()]);
    let mut daemon = Daemon::start(&args, tmp.path());
    let banner = daemon.banner();
    assert!(
        banner
            .iter()
            .any(|l| l.contains("junction       /projects/shots -> nas (local) /vol/shots")),
        "{banner:?}"
    );
    let port = nfs_port(&banner);

    assert_eq!(
        nfs_cat(port, "projects/shots/010/frame.exr"),
        b"frame from the nas"
    );
    assert_eq!(nfs_cat(port, "projects/readme"), b"root filer");
    let url = format!("nfs://127.0.0.1/export/projects?version=3&nfsport={port}&mountport={port}");
    let ls = Command::new("nfs-ls").arg(&url).output().unwrap();
    let listing = text(&ls.stdout);
    assert!(ls.status.success(), "{listing} {}", text(&ls.stderr));
    let shots: Vec<&str> = listing.lines().filter(|l| l.ends_with(" shots")).collect();
    assert_eq!(shots.len(), 1, "{listing}");
    assert!(shots[0].starts_with('d'), "a directory: {listing}");

    // `weir prime` walks across the junction.
    let out = weir(
        &["prime", "--data-dir", data.to_str().unwrap(), "/export/projects"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("Primed 2 files"),
        "{}",
        text(&out.stdout)
    );
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait().success());
}
