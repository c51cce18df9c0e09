//! Model-based test: random sequences of operations through the engine over a
//! `local` core filer, and the same operations on a plain directory with
//! std::fs. Every result and the final trees must match — with a roomy cache,
//! with a tiny one that evicts constantly, and with files changed behind the
//! engine's back (visible once the verify period has passed), and under
//! write-behind, where the final tree is compared after a flush.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use cache_engine::types::*;
use cache_engine::{Engine, Error, FileHandle};
use common::*;
use proptest::prelude::*;

const PATHS: &[&str] = &["a", "b", "d", "d/a", "d/b", "d/d", "d/d/a", "e"];
const VERIFY: Duration = Duration::from_millis(30);

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Mkdir(usize),
    Write {
        path: usize,
        offset: u32,
        len: u32,
        seed: u8,
    },
    Read {
        path: usize,
        offset: u32,
        len: u32,
    },
    Truncate(usize, u32),
    Remove(usize),
    Rmdir(usize),
    Rename(usize, usize),
    Link(usize, usize),
    Symlink(usize, usize),
    Chmod(usize, u32),
    List(usize),
    Stat(usize),
    /// Changes made directly in the core filer's directory.
    Behind {
        path: usize,
        offset: u32,
        len: u32,
        seed: u8,
    },
    BehindCreate(usize),
    BehindRemove(usize),
}

fn path() -> impl Strategy<Value = usize> {
    0..PATHS.len()
}

fn op(behind: bool) -> impl Strategy<Value = Op> {
    let base = prop_oneof![
        3 => path().prop_map(Op::Create),
        2 => path().prop_map(Op::Mkdir),
        4 => (path(), 0..300_000u32, 1..150_000u32, any::<u8>())
            .prop_map(|(path, offset, len, seed)| Op::Write { path, offset, len, seed }),
        4 => (path(), 0..400_000u32, 1..200_000u32).prop_map(|(path, offset, len)| Op::Read { path, offset, len }),
        1 => (path(), 0..300_000u32).prop_map(|(p, s)| Op::Truncate(p, s)),
        1 => path().prop_map(Op::Remove),
        1 => path().prop_map(Op::Rmdir),
        1 => (path(), path()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => (path(), path()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => (path(), path()).prop_map(|(a, b)| Op::Symlink(a, b)),
        1 => (path(), 0..0o777u32).prop_map(|(p, m)| Op::Chmod(p, m)),
        1 => path().prop_map(Op::List),
        2 => path().prop_map(Op::Stat),
    ];
    if !behind {
        return base.boxed();
    }
    prop_oneof![
        8 => base,
        1 => (path(), 0..300_000u32, 1..100_000u32, any::<u8>())
            .prop_map(|(path, offset, len, seed)| Op::Behind { path, offset, len, seed }),
        1 => path().prop_map(Op::BehindCreate),
        1 => path().prop_map(Op::BehindRemove),
    ]
    .boxed()
}

/// What an operation returned, comparable across the two implementations.
#[derive(Debug, PartialEq)]
enum Out {
    Done,
    Data(Vec<u8>),
    Names(Vec<Vec<u8>>),
    Stat(FileType, u64, u32),
    Err(Error),
}

fn from_io<T>(r: std::io::Result<T>, ok: impl FnOnce(T) -> Out) -> Out {
    match r {
        Ok(v) => ok(v),
        Err(e) => Out::Err(Error::from(e)),
    }
}

fn split(p: &str) -> (&str, &str) {
    match p.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", p),
    }
}

fn ftype(m: &std::fs::Metadata) -> FileType {
    let t = m.file_type();
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else {
        FileType::Regular
    }
}

/// The engine never follows a symlink; the model must not either. Fails
/// like the engine when a parent is not a directory (or is a symlink).
fn no_follow(root: &Path, op: &Op) -> Option<Out> {
    let paths: &[usize] = match op {
        Op::Create(i) | Op::Mkdir(i) | Op::Truncate(i, _) | Op::Remove(i) | Op::Rmdir(i) => &[*i],
        Op::Write { path, .. } | Op::Read { path, .. } => &[*path],
        Op::Chmod(i, _) | Op::List(i) | Op::Stat(i) | Op::Symlink(i, _) => &[*i],
        Op::Rename(a, b) | Op::Link(a, b) => &[*a, *b],
        Op::Behind { .. } | Op::BehindCreate(_) | Op::BehindRemove(_) => return None,
    };
    for (n, &i) in paths.iter().enumerate() {
        let mut at = root.to_path_buf();
        let parts: Vec<&str> = PATHS[i].split('/').collect();
        for part in &parts[..parts.len() - 1] {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Some(Out::Err(Error::NotDir)),
                Err(e) => return Some(Out::Err(Error::from(e))),
            }
        }
        // link(2) resolves the existing name fully before the new one's parent.
        if n == 0 && matches!(op, Op::Link(..)) {
            if let Err(e) = std::fs::symlink_metadata(root.join(PATHS[i])) {
                return Some(Out::Err(Error::from(e)));
            }
        }
    }
    let link =
        std::fs::symlink_metadata(root.join(PATHS[paths[0]])).is_ok_and(|m| m.file_type().is_symlink());
    match op {
        Op::Write { .. } | Op::Read { .. } | Op::Truncate(..) if link => Some(Out::Err(Error::Inval)),
        Op::List(_) if link => Some(Out::Err(Error::NotDir)),
        _ => None,
    }
}

fn reference(root: &Path, op: &Op) -> Out {
    if let Some(out) = no_follow(root, op) {
        return out;
    }
    let p = |i: usize| root.join(PATHS[i]);
    match op {
        Op::Create(i) => from_io(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p(*i))
                .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o644))),
            |_| Out::Done,
        ),
        Op::Mkdir(i) => from_io(
            std::fs::create_dir(p(*i))
                .and_then(|_| std::fs::set_permissions(p(*i), std::fs::Permissions::from_mode(0o755))),
            |_| Out::Done,
        ),
        Op::Write {
            path,
            offset,
            len,
            seed,
        }
        | Op::Behind {
            path,
            offset,
            len,
            seed,
        } => {
            let r = std::fs::OpenOptions::new()
                .write(true)
                .open(p(*path))
                .and_then(|f| f.write_all_at(&pattern(*len as usize, *seed), *offset as u64));
            from_io(r, |_| Out::Done)
        }
        Op::Read { path, offset, len } => {
            let r = std::fs::File::open(p(*path)).and_then(|mut f| {
                if f.metadata()?.is_dir() {
                    return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
                }
                f.seek(SeekFrom::Start(*offset as u64))?;
                let mut buf = Vec::new();
                f.take(*len as u64).read_to_end(&mut buf)?;
                Ok(buf)
            });
            from_io(r, Out::Data)
        }
        Op::Truncate(i, size) => from_io(
            std::fs::symlink_metadata(p(*i)).and_then(|m| {
                if m.is_dir() {
                    return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
                }
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(p(*i))?
                    .set_len(*size as u64)
            }),
            |_| Out::Done,
        ),
        Op::Remove(i) | Op::BehindRemove(i) => from_io(std::fs::remove_file(p(*i)), |_| Out::Done),
        Op::Rmdir(i) => from_io(std::fs::remove_dir(p(*i)), |_| Out::Done),
        Op::Rename(a, b) => from_io(std::fs::rename(p(*a), p(*b)), |_| Out::Done),
        Op::Link(a, b) => from_io(std::fs::hard_link(p(*a), p(*b)), |_| Out::Done),
        Op::Symlink(a, b) => from_io(std::os::unix::fs::symlink(format!("t{b}"), p(*a)), |_| Out::Done),
        Op::Chmod(i, mode) => from_io(
            std::fs::symlink_metadata(p(*i)).and_then(|m| {
                if m.file_type().is_symlink() {
                    return Ok(());
                }
                std::fs::set_permissions(p(*i), std::fs::Permissions::from_mode(*mode))
            }),
            |_| Out::Done,
        ),
        Op::List(i) => from_io(std::fs::read_dir(p(*i)), |rd| {
            let mut names: Vec<Vec<u8>> = rd.map(|e| e.unwrap().file_name().into_encoded_bytes()).collect();
            names.sort();
            Out::Names(names)
        }),
        Op::Stat(i) => from_io(std::fs::symlink_metadata(p(*i)), |m| {
            let size = if m.is_dir() { 0 } else { m.len() };
            Out::Stat(ftype(&m), size, m.mode() & 0o7777)
        }),
        Op::BehindCreate(i) => from_io(std::fs::write(p(*i), b"from behind"), |_| Out::Done),
    }
}

async fn parent_and_name<'a>(e: &Engine, path: &'a str) -> cache_engine::Result<(FileHandle, &'a [u8])> {
    let (d, n) = split(path);
    Ok((walk(e, d).await?, n.as_bytes()))
}

fn out(r: cache_engine::Result<Out>) -> Out {
    r.unwrap_or_else(Out::Err)
}

async fn through_engine(e: &Engine, origin: &Path, op: &Op) -> Out {
    let c = root();
    let none = SetAttr::default();
    match op {
        Op::Create(i) => out(async {
            let (d, n) = parent_and_name(e, PATHS[*i]).await?;
            e.create(
                &c,
                &d,
                n,
                CreateMode::Guarded,
                &SetAttr {
                    mode: Some(0o644),
                    ..none
                },
            )
            .await?;
            Ok(Out::Done)
        }
        .await),
        Op::Mkdir(i) => out(async {
            let (d, n) = parent_and_name(e, PATHS[*i]).await?;
            e.mkdir(
                &c,
                &d,
                n,
                &SetAttr {
                    mode: Some(0o755),
                    ..none
                },
            )
            .await?;
            Ok(Out::Done)
        }
        .await),
        Op::Write {
            path,
            offset,
            len,
            seed,
        } => out(async {
            let fh = walk(e, PATHS[*path]).await?;
            let data = Bytes::from(pattern(*len as usize, *seed));
            e.write(&c, &fh, *offset as u64, data, Stability::Unstable)
                .await?;
            Ok(Out::Done)
        }
        .await),
        Op::Read { path, offset, len } => out(async {
            let fh = walk(e, PATHS[*path]).await?;
            // Read as a client would: until the count is filled or EOF.
            let mut got = Vec::new();
            loop {
                let want = *len - got.len() as u32;
                let r = e.read(&c, &fh, *offset as u64 + got.len() as u64, want).await?;
                got.extend_from_slice(&r.to_bytes());
                if r.eof || r.is_empty() || got.len() as u32 >= *len {
                    break;
                }
            }
            Ok(Out::Data(got))
        }
        .await),
        Op::Truncate(i, size) => out(async {
            let fh = walk(e, PATHS[*i]).await?;
            e.setattr(
                &c,
                &fh,
                &SetAttr {
                    size: Some(*size as u64),
                    ..none
                },
                None,
            )
            .await?;
            Ok(Out::Done)
        }
        .await),
        Op::Remove(i) => out(async {
            let (d, n) = parent_and_name(e, PATHS[*i]).await?;
            e.remove(&c, &d, n).await?;
            Ok(Out::Done)
        }
        .await),
        Op::Rmdir(i) => out(async {
            let (d, n) = parent_and_name(e, PATHS[*i]).await?;
            e.rmdir(&c, &d, n).await?;
            Ok(Out::Done)
        }
        .await),
        Op::Rename(a, b) => out(async {
            let (fd, fname) = parent_and_name(e, PATHS[*a]).await?;
            let (td, tname) = parent_and_name(e, PATHS[*b]).await?;
            e.rename(&c, &fd, fname, &td, tname).await?;
            Ok(Out::Done)
        }
        .await),
        Op::Link(a, b) => out(async {
            let f = walk(e, PATHS[*a]).await?;
            let (td, tname) = parent_and_name(e, PATHS[*b]).await?;
            e.link(&c, &f, &td, tname).await?;
            Ok(Out::Done)
        }
        .await),
        Op::Symlink(a, b) => out(async {
            let (d, n) = parent_and_name(e, PATHS[*a]).await?;
            e.symlink(&c, &d, n, format!("t{b}").as_bytes(), &none).await?;
            Ok(Out::Done)
        }
        .await),
        Op::Chmod(i, mode) => out(async {
            let fh = walk(e, PATHS[*i]).await?;
            if e.getattr(&fh).await?.ftype == FileType::Symlink {
                return Ok(Out::Done);
            }
            e.setattr(
                &c,
                &fh,
                &SetAttr {
                    mode: Some(*mode),
                    ..none
                },
                None,
            )
            .await?;
            Ok(Out::Done)
        }
        .await),
        Op::List(i) => out(async {
            let d = walk(e, PATHS[*i]).await?;
            let mut names = Vec::new();
            let (mut cookie, mut verf) = (0, 0);
            loop {
                let page = e.readdir(&c, &d, cookie, verf, 3).await?;
                names.extend(page.entries.iter().map(|x| x.name.clone()));
                if page.eof {
                    break;
                }
                cookie = page.entries.last().map(|x| x.cookie).unwrap_or(cookie);
                verf = page.verifier;
            }
            names.sort();
            Ok(Out::Names(names))
        }
        .await),
        Op::Stat(i) => out(async {
            let a = e.getattr(&walk(e, PATHS[*i]).await?).await?;
            let size = if a.ftype == FileType::Directory { 0 } else { a.size };
            Ok(Out::Stat(a.ftype, size, a.mode))
        }
        .await),
        Op::Behind { .. } | Op::BehindCreate(_) | Op::BehindRemove(_) => {
            let r = reference(origin, op);
            std::thread::sleep(VERIFY + Duration::from_millis(15));
            r
        }
    }
}

/// Every object under `root`: path, type, size, mode, contents or target.
/// Weir's pool of spare objects for write-behind creates is not the
/// clients' and not compared.
fn tree(root: &Path) -> Vec<(String, FileType, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if dir == root && entry.file_name() == ".weir-pool" {
                continue;
            }
            let m = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let content = match ftype(&m) {
                FileType::Directory => {
                    stack.push(path.clone());
                    Vec::new()
                }
                FileType::Symlink => std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
                _ => std::fs::read(&path).unwrap(),
            };
            out.push((rel, ftype(&m), m.mode() & 0o7777, content));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn run(ops: &[Op], tune: impl FnOnce(&mut cache_engine::EngineConfig)) -> Result<(), TestCaseError> {
    run_on(ops, tune, false)
}

/// Run `ops` through an engine over the `local` core filer, or (`nfs`) over
/// the `nfs` core filer with nfs-ganesha exporting the same directory.
fn run_on(
    ops: &[Op],
    tune: impl FnOnce(&mut cache_engine::EngineConfig),
    nfs: bool,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    let model = dir.path().join("model");
    std::fs::create_dir(&origin).unwrap();
    std::fs::create_dir(&model).unwrap();
    let mut _upstream = None;
    let engine = if nfs {
        let (g, nfs_cfg) = ganesha(&origin, &dir.path().join("ganesha"), free_ports());
        _upstream = Some(g);
        let mut cfg = engine_config(dir.path());
        tune(&mut cfg);
        let filer = core_filer::nfs::NfsFiler::connect(&nfs_cfg, &cfg.state_dir).unwrap();
        cache_engine::Engine::start(cfg, std::sync::Arc::new(filer)).unwrap()
    } else {
        start(dir.path(), Duration::ZERO, tune).0
    };
    let result = block_on(async {
        for (step, op) in ops.iter().enumerate() {
            let got = through_engine(&engine, &origin, op).await;
            let want = reference(&model, op);
            prop_assert_eq!(got, want, "step {}: {:?}", step, op);
        }
        // Under write-behind the core filer has it all once flushed; else a no-op.
        let report = engine.flush(None).await.unwrap();
        prop_assert!(report.parked.is_empty(), "not written back: {:?}", report.parked);
        Ok(())
    });
    engine.shutdown();
    result?;
    prop_assert_eq!(tree(&origin), tree(&model));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_plain_directory(ops in proptest::collection::vec(op(false), 1..40)) {
        run(&ops, |_| {})?;
    }

    #[test]
    fn engine_matches_with_a_tiny_cache(ops in proptest::collection::vec(op(false), 1..40)) {
        run(&ops, |c| {
            c.ram_bytes = 32 << 10;
            c.block_size = 4096;
            c.segment_size = 16 << 10;
            c.cache_bytes = 2 * (4096 + 4 * (16 << 10));
            c.readahead_max = 16 << 10;
        })?;
    }

    #[test]
    fn engine_writing_behind_matches_a_plain_directory(ops in proptest::collection::vec(op(false), 1..40)) {
        run(&ops, |c| {
            c.policy.writeback_delay = Some(Duration::from_millis(5));
            c.journal_bytes = 16 << 20;
            c.dirty_max = 8 << 20;
        })?;
    }

    #[test]
    fn engine_writing_behind_with_a_tiny_cache(ops in proptest::collection::vec(op(false), 1..40)) {
        run(&ops, |c| {
            c.ram_bytes = 32 << 10;
            c.block_size = 4096;
            c.segment_size = 16 << 10;
            c.cache_bytes = 2 * (4096 + 4 * (16 << 10));
            c.readahead_max = 16 << 10;
            c.policy.writeback_delay = Some(Duration::from_secs(3600));
            c.journal_bytes = 16 << 20;
            c.dirty_max = 8 << 20;
        })?;
    }

    #[test]
    fn engine_sees_changes_behind_its_back(ops in proptest::collection::vec(op(true), 1..30)) {
        run(&ops, |c| {
            c.policy.attr_verify = VERIFY;
            c.policy.dir_verify = VERIFY;
        })?;
    }
}

proptest! {
    // Each case starts its own nfs-ganesha: fewer cases.
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn engine_over_nfs_matches_a_plain_directory(ops in proptest::collection::vec(op(false), 1..40)) {
        run_on(&ops, |_| {}, true)?;
    }
}

#[test]
fn writes_to_a_file_from_two_handles_agree() {
    // A short fixed sequence kept as a regression test of the model.
    run(
        &[
            Op::Create(0),
            Op::Write {
                path: 0,
                offset: 100,
                len: 70_000,
                seed: 1,
            },
            Op::Read {
                path: 0,
                offset: 0,
                len: 200_000,
            },
            Op::Link(0, 1),
            Op::Write {
                path: 1,
                offset: 65_000,
                len: 10,
                seed: 2,
            },
            Op::Read {
                path: 0,
                offset: 64_000,
                len: 3_000,
            },
            Op::Truncate(1, 65_005),
            Op::Read {
                path: 0,
                offset: 0,
                len: 200_000,
            },
        ],
        |_| {},
    )
    .unwrap();
}
