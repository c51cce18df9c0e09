//! Change notifications: every mutating engine call reports what it changed,
//! on the owning shard's thread, with the caller's origin; reads report nothing.

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cache_engine::types::*;
use cache_engine::{Change, ChangeKind, Engine};
use common::*;

type Seen = Arc<Mutex<Vec<(String, Change)>>>;

fn listen(engine: &Engine) -> Seen {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    engine.subscribe(Arc::new(move |c: &Change| {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        s.lock().unwrap().push((thread, c.clone()));
    }));
    seen
}

/// The changes seen since the last call, each checked to come from the
/// thread of the shard that owns the handle it is reported by.
fn take(engine: &Engine, seen: &Seen) -> Vec<Change> {
    let out: Vec<_> = seen.lock().unwrap().drain(..).collect();
    for (thread, c) in &out {
        let owner = engine.owner(c.kind.reported_by());
        assert_eq!(thread, &format!("weir-shard-{owner}"), "{c:?}");
    }
    out.into_iter().map(|(_, c)| c).collect()
}

#[test]
fn every_mutation_is_reported_once_with_its_origin() {
    let fx = fixture(|c| c.shards = 4);
    let seen = listen(&fx.engine);
    let e = &fx.engine;
    let me = root().with_origin(42);
    block_on(async {
        let r = e.root();
        let sub = e
            .mkdir(&me, &r, b"sub", &SetAttr::default())
            .await
            .unwrap()
            .handle;
        assert_eq!(
            take(e, &seen),
            vec![Change {
                origin: 42,
                kind: ChangeKind::Created {
                    dir: r,
                    name: b"sub".to_vec(),
                    object: sub,
                    ftype: FileType::Directory
                }
            }]
        );

        let f = e
            .create(&me, &r, b"f", CreateMode::Unchecked, &SetAttr::default())
            .await
            .unwrap()
            .handle;
        let c = take(e, &seen);
        assert!(
            matches!(&c[..], [Change { origin: 42, kind: ChangeKind::Created { dir, name, object, ftype: FileType::Regular } }]
                if *dir == r && name == b"f" && *object == f),
            "{c:?}"
        );

        e.write(&me, &f, 100, Bytes::from_static(b"hello"), Stability::FileSync)
            .await
            .unwrap();
        assert_eq!(
            take(e, &seen),
            vec![Change {
                origin: 42,
                kind: ChangeKind::Write {
                    file: f,
                    offset: 100,
                    len: 5
                }
            }]
        );

        let set = SetAttr {
            size: Some(3),
            ..Default::default()
        };
        e.setattr(&me, &f, &set, None).await.unwrap();
        assert_eq!(
            take(e, &seen),
            vec![Change {
                origin: 42,
                kind: ChangeKind::SetAttr { file: f, set }
            }]
        );

        e.link(&me, &f, &sub, b"hard").await.unwrap();
        assert_eq!(
            take(e, &seen),
            vec![Change {
                origin: 42,
                kind: ChangeKind::Linked {
                    dir: sub,
                    name: b"hard".to_vec(),
                    object: f
                }
            }]
        );

        // Renaming a name onto another link of the same file changes nothing.
        e.rename(&me, &r, b"f", &sub, b"hard").await.unwrap();
        assert_eq!(take(e, &seen), vec![]);

        // A rename over an existing name reports both sides and the victim.
        let g = e
            .create(&me, &r, b"g", CreateMode::Unchecked, &SetAttr::default())
            .await
            .unwrap()
            .handle;
        take(e, &seen);
        e.remove(&me, &sub, b"hard").await.unwrap();
        take(e, &seen);
        e.rename(&me, &r, b"g", &r, b"f").await.unwrap();
        assert_eq!(
            take(e, &seen),
            vec![Change {
                origin: 42,
                kind: ChangeKind::Renamed {
                    from_dir: r,
                    from_name: b"g".to_vec(),
                    to_dir: r,
                    to_name: b"f".to_vec(),
                    object: g,
                    replaced: Some(f),
                }
            }]
        );
        e.rename(&me, &r, b"f", &sub, b"g2").await.unwrap();
        let c = take(e, &seen);
        assert!(
            matches!(&c[..], [Change { kind: ChangeKind::Renamed { from_dir, to_dir, object, replaced: None, .. }, .. }]
                if *object == g && *from_dir == r && *to_dir == sub),
            "{c:?}"
        );

        e.remove(&me, &sub, b"g2").await.unwrap();
        assert_eq!(
            take(e, &seen),
            vec![Change {
                origin: 42,
                kind: ChangeKind::Removed {
                    dir: sub,
                    name: b"g2".to_vec(),
                    object: g
                }
            }]
        );
        e.rmdir(&me, &r, b"sub").await.unwrap();
        let c = take(e, &seen);
        assert!(
            matches!(&c[..], [Change { kind: ChangeKind::Removed { name, object, .. }, .. }]
                if name == b"sub" && *object == sub),
            "{c:?}"
        );

        let l = e
            .symlink(&me, &r, b"ln", b"target", &SetAttr::default())
            .await
            .unwrap()
            .handle;
        assert_eq!(
            take(e, &seen),
            vec![Change {
                origin: 42,
                kind: ChangeKind::Created {
                    dir: r,
                    name: b"ln".to_vec(),
                    object: l,
                    ftype: FileType::Symlink
                }
            }]
        );
    });
}

#[test]
fn reads_and_failures_report_nothing() {
    let fx = fixture(|_| {});
    std::fs::write(fx.origin().join("data"), pattern(10_000, 3)).unwrap();
    std::fs::create_dir(fx.origin().join("d")).unwrap();
    let seen = listen(&fx.engine);
    let e = &fx.engine;
    let cred = root().with_origin(7);
    block_on(async {
        let r = e.root();
        let f = walk(e, "data").await.unwrap();
        e.getattr(&f).await.unwrap();
        e.read(&cred, &f, 0, 4096).await.unwrap();
        e.access(&cred, &f, 0x3f).await.unwrap();
        e.readdir(&cred, &r, 0, 0, 100).await.unwrap();
        e.readdir_plus(&cred, &r, 0, 0, 100).await.unwrap();
        e.commit(&cred, &f).await.unwrap();
        // An empty setattr changes nothing.
        e.setattr(&cred, &f, &SetAttr::default(), None).await.unwrap();
        // Failed mutations change nothing either.
        assert!(e.remove(&cred, &r, b"absent").await.is_err());
        assert!(e.mkdir(&cred, &r, b"d", &SetAttr::default()).await.is_err());
        assert!(e.rename(&cred, &r, b"absent", &r, b"x").await.is_err());
        // Opening an existing file without truncating it is no change.
        e.create(&cred, &r, b"data", CreateMode::Unchecked, &SetAttr::default())
            .await
            .unwrap();
    });
    assert_eq!(take(e, &seen), vec![]);
}

#[test]
fn subscribers_added_later_and_several_all_hear() {
    let fx = fixture(|_| {});
    let e = &fx.engine;
    let first = listen(e);
    block_on(async {
        let r = e.root();
        let f = e
            .create(&root(), &r, b"x", CreateMode::Unchecked, &SetAttr::default())
            .await
            .unwrap()
            .handle;
        let second = listen(e);
        e.write(&root(), &f, 0, Bytes::from_static(b"abc"), Stability::Unstable)
            .await
            .unwrap();
        assert_eq!(take(e, &first).len(), 2);
        let c = take(e, &second);
        assert_eq!(
            c,
            vec![Change {
                origin: 0,
                kind: ChangeKind::Write {
                    file: f,
                    offset: 0,
                    len: 3
                }
            }]
        );
    });
}

#[test]
fn a_change_on_the_core_filer_is_reported_when_revalidation_sees_it() {
    let fx = fixture(|c| {
        c.policy.attr_verify = std::time::Duration::ZERO;
        c.policy.dir_verify = std::time::Duration::ZERO;
    });
    std::fs::write(fx.origin().join("f"), b"one").unwrap();
    let e = &fx.engine;
    block_on(async {
        let f = walk(e, "f").await.unwrap();
        e.read(&root(), &f, 0, 10).await.unwrap();
        let seen = listen(e);
        // Unchanged: revalidation reports nothing.
        e.getattr(&f).await.unwrap();
        assert_eq!(take(e, &seen), vec![]);
        std::fs::write(fx.origin().join("f"), b"changed behind").unwrap();
        e.getattr(&f).await.unwrap();
        assert_eq!(
            take(e, &seen),
            vec![Change {
                origin: 0,
                kind: ChangeKind::Behind {
                    object: f,
                    ftype: FileType::Regular
                }
            }]
        );
        // A change through the engine is not reported twice.
        e.write(&root(), &f, 0, Bytes::from_static(b"x"), Stability::FileSync)
            .await
            .unwrap();
        e.getattr(&f).await.unwrap();
        let c = take(e, &seen);
        assert!(
            matches!(
                &c[..],
                [Change {
                    kind: ChangeKind::Write { .. },
                    ..
                }]
            ),
            "{c:?}"
        );
    });
}
