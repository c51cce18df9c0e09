//! The global namespace: core filers and their directories joined under one
//! tree at junctions, each with its own cache policy.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cache_engine::filer::local::LocalFiler;
use cache_engine::types::{FileType, SetAttr};
use cache_engine::{CachePolicy, Engine, Error, JunctionSpec, Mount};
use common::*;

fn mount(dir: &std::path::Path, subdir: &str, verify: Duration) -> Mount {
    Mount {
        filer: Arc::new(LocalFiler::open(dir).unwrap()),
        subdir: subdir.into(),
        policy: CachePolicy {
            attr_verify: verify,
            dir_verify: verify,
            negative_lookups: true,
            writeback_delay: None,
        },
    }
}

/// Root: `root/` with `projects/`; `nas/` joined at /projects/shots (its
/// `shots/` directory) and `lib/` at /library (verified on every access).
fn namespace(dir: &std::path::Path) -> Result<Engine, String> {
    let long = Duration::from_secs(3600);
    let mounts = vec![
        mount(&dir.join("root"), "/", long),
        mount(&dir.join("nas"), "/shots", long),
        mount(&dir.join("lib"), "/", Duration::ZERO),
    ];
    let junctions = vec![
        JunctionSpec {
            path: "/library".into(),
            mount: 2,
        },
        JunctionSpec {
            path: "/projects/shots".into(),
            mount: 1,
        },
    ];
    Engine::start_namespace(engine_config(dir), mounts, junctions).map_err(|e| e.to_string())
}

fn tree(dir: &std::path::Path) {
    for d in ["root/projects/shots", "nas/shots/010", "lib"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("root/projects/shots/hidden"), b"under the junction").unwrap();
    std::fs::write(dir.join("root/projects/notes"), b"root").unwrap();
    std::fs::write(dir.join("nas/shots/010/frame.exr"), b"frame 10").unwrap();
    std::fs::write(dir.join("nas/outside"), b"not in the mount").unwrap();
    std::fs::write(dir.join("lib/tex"), b"v1").unwrap();
}

async fn read_all(e: &Engine, path: &str) -> Vec<u8> {
    let fh = walk(e, path).await.unwrap();
    e.read(&root(), &fh, 0, 1 << 20)
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

async fn names(e: &Engine, path: &str, plus: bool) -> Vec<(String, Option<FileType>, bool)> {
    let fh = walk(e, path).await.unwrap();
    let (mut cookie, mut verf, mut out) = (0, 0, Vec::new());
    loop {
        let l = if plus {
            e.readdir_plus(&root(), &fh, cookie, verf, 1).await.unwrap()
        } else {
            e.readdir(&root(), &fh, cookie, verf, 1).await.unwrap()
        };
        for d in &l.entries {
            out.push((
                String::from_utf8_lossy(&d.name).into_owned(),
                d.ftype,
                d.object.is_some(),
            ));
            cookie = d.cookie;
        }
        verf = l.verifier;
        if l.eof {
            return out;
        }
    }
}

#[test]
fn junctions_join_core_filers_into_one_tree() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let e = namespace(dir.path()).unwrap();
    block_on(async {
        assert_eq!(read_all(&e, "projects/shots/010/frame.exr").await, b"frame 10");
        assert_eq!(read_all(&e, "projects/notes").await, b"root");
        assert_eq!(read_all(&e, "library/tex").await, b"v1");
        // The junction hides what its directory held under that name.
        let err = walk(&e, "projects/shots/hidden").await.unwrap_err();
        assert!(matches!(err, Error::NoEnt), "{err:?}");

        // `..` from a mount's root leads back to the junction's directory,
        // never to the core filer's own parent of the mount's directory.
        let shots = walk(&e, "projects/shots").await.unwrap();
        let (up, attr, _) = e.lookup(&root(), &shots, b"..").await.unwrap();
        assert_eq!(up, walk(&e, "projects").await.unwrap());
        assert_eq!(attr.ftype, FileType::Directory);
        let lib = walk(&e, "library").await.unwrap();
        assert_eq!(e.lookup(&root(), &lib, b"..").await.unwrap().0, e.root());
        let deep = walk(&e, "projects/shots/010").await.unwrap();
        let (up, _, _) = e.lookup(&root(), &deep, b"..").await.unwrap();
        assert_eq!(up, shots);

        // Listings show each junction once, plain and with attributes, even
        // one entry per page.
        for plus in [false, true] {
            let got = names(&e, "projects", plus).await;
            let shots: Vec<_> = got.iter().filter(|n| n.0 == "shots").collect();
            assert_eq!(shots.len(), 1, "{got:?}");
            assert_eq!(shots[0].1, Some(FileType::Directory));
            assert_eq!(shots[0].2, plus);
            assert!(got.iter().any(|n| n.0 == "notes"), "{got:?}");
            let top = names(&e, "", plus).await;
            assert_eq!(top.iter().filter(|n| n.0 == "library").count(), 1, "{top:?}");
        }
    });
    e.shutdown();
}

#[test]
fn junctions_cannot_be_removed_renamed_or_crossed() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let e = namespace(dir.path()).unwrap();
    block_on(async {
        let projects = walk(&e, "projects").await.unwrap();
        let shots = walk(&e, "projects/shots").await.unwrap();
        let c = root();
        assert!(matches!(
            e.rmdir(&c, &projects, b"shots").await,
            Err(Error::Access)
        ));
        assert!(matches!(
            e.rename(&c, &projects, b"shots", &projects, b"x").await,
            Err(Error::Access)
        ));
        assert!(matches!(
            e.rename(&c, &projects, b"notes", &projects, b"shots").await,
            Err(Error::Access)
        ));
        assert!(matches!(
            e.mkdir(&c, &projects, b"shots", &SetAttr::default()).await,
            Err(Error::Exist)
        ));
        // Across a junction: no rename, no hard link.
        assert!(matches!(
            e.rename(&c, &projects, b"notes", &shots, b"notes").await,
            Err(Error::XDev)
        ));
        let notes = walk(&e, "projects/notes").await.unwrap();
        assert!(matches!(e.link(&c, &notes, &shots, b"n").await, Err(Error::XDev)));
        // Inside a mount, everything works as usual.
        let f = e.mkdir(&c, &shots, b"020", &SetAttr::default()).await.unwrap();
        e.rmdir(&c, &shots, b"020").await.unwrap();
        let _ = f;
    });
    assert!(dir.path().join("nas/shots/010").is_dir());
    assert!(!dir.path().join("nas/shots/020").exists());
    e.shutdown();
}

#[test]
fn each_mount_keeps_its_own_cache_policy() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let e = namespace(dir.path()).unwrap();
    block_on(async {
        assert_eq!(read_all(&e, "library/tex").await, b"v1");
        assert_eq!(read_all(&e, "projects/notes").await, b"root");
        // Changed behind the cache: the library (verified on every access)
        // shows it at once; the root (verified hourly) still serves its copy.
        std::fs::write(dir.path().join("lib/tex"), b"v2 longer").unwrap();
        std::fs::write(dir.path().join("root/projects/notes"), b"changed").unwrap();
        assert_eq!(read_all(&e, "library/tex").await, b"v2 longer");
        assert_eq!(read_all(&e, "projects/notes").await, b"root");
    });
    e.shutdown();
}

#[test]
fn a_namespace_that_does_not_hold_together_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let long = Duration::from_secs(3600);
    let m = |d: &str, sub: &str| mount(&dir.path().join(d), sub, long);
    let start = |mounts: Vec<Mount>, junctions: Vec<(&str, usize)>| {
        let j = junctions
            .into_iter()
            .map(|(p, m)| JunctionSpec {
                path: p.into(),
                mount: m,
            })
            .collect();
        match Engine::start_namespace(engine_config(dir.path()), mounts, j) {
            Ok(e) => {
                e.shutdown();
                String::new()
            }
            Err(e) => e.to_string(),
        }
    };
    let cases = [
        (vec![m("root", "/"), m("nas", "/nope")], vec![("/x", 1)], "/nope"),
        (
            vec![m("root", "/"), m("nas", "/outside")],
            vec![("/x", 1)],
            "/outside",
        ),
        (
            vec![m("root", "/"), m("lib", "/")],
            vec![("/missing/x", 1)],
            "/missing",
        ),
        (
            vec![m("root", "/"), m("lib", "/")],
            vec![("/projects/notes/x", 1)],
            "not a directory",
        ),
        (vec![m("root", "/"), m("lib", "/")], vec![("/", 1)], "below"),
        (
            vec![m("root", "/"), m("lib", "/")],
            vec![("/a/../b", 1)],
            "plain names",
        ),
        (vec![m("root", "/"), m("lib", "/")], vec![], "no junction"),
        (
            vec![m("root", "/"), m("lib", "/")],
            vec![("/x", 1), ("/y", 1)],
            "already",
        ),
        (vec![m("root", "/"), m("lib", "/")], vec![("/x", 2)], "no mount 2"),
    ];
    for (mounts, junctions, want) in cases {
        let why = start(mounts, junctions.clone());
        assert!(why.contains(want), "{junctions:?}: {why:?} lacks {want:?}");
    }
}
