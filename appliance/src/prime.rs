//! `weir prime PATH...`: pull a tree into the cache of a running `weir
//! serve` ahead of the job that will read it, so that the job's first reads
//! are hits instead of trips over a slow link.
//!
//! The server side resolves export paths as clients see them (through the
//! NFS front end's export table), walks directories with READDIRPLUS-style
//! listings, and prefetches every regular file through the engine's normal
//! read path, several files at once, streaming progress to the CLI; the CLI
//! side draws it and prints a summary. Symbolic links are not followed.

use std::collections::{HashSet, VecDeque};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use cache_engine::types::{Attr, Credentials, FileType};
use cache_engine::FileHandle;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt as _;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::admin::{self, Context, Request, Responder, Response};

/// Bytes of one file asked for at once: several core filer reads in flight.
const CHUNK: u64 = 8 << 20;
/// Entries asked for per directory listing page.
const PAGE: usize = 1024;
pub const MAX_PARALLEL: usize = 1024;
/// Files found and waiting past which reading them goes before listing more.
const QUEUED_FILES: usize = 10_000;
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often the CLI prints a plain progress line when not on a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

pub fn default_parallel() -> usize {
    16
}

/// Counts of a prime so far (also its final totals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Directories found (and listed, once done).
    pub dirs: u64,
    pub files_found: u64,
    pub bytes_found: u64,
    pub files_done: u64,
    pub bytes_done: u64,
    /// Bytes that were not in the cache and came from the core filer.
    pub fetched: u64,
    /// Bytes the cache already held.
    pub cached: u64,
}

#[derive(Default)]
struct Counters {
    dirs: AtomicU64,
    files_found: AtomicU64,
    bytes_found: AtomicU64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    fetched: AtomicU64,
    cached: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Progress {
        Progress {
            dirs: self.dirs.load(Relaxed),
            files_found: self.files_found.load(Relaxed),
            bytes_found: self.bytes_found.load(Relaxed),
            files_done: self.files_done.load(Relaxed),
            bytes_done: self.bytes_done.load(Relaxed),
            fetched: self.fetched.load(Relaxed),
            cached: self.cached.load(Relaxed),
        }
    }
}

/// Something found: its export path, handle and attributes.
struct Item {
    path: String,
    fh: FileHandle,
    attr: Attr,
}

/// What one job (a directory listed or a file read) ended with.
struct Outcome {
    children: Vec<Item>,
    failure: Option<(String, String)>,
}

/// What is left to do, and what was seen (hard links and overlapping
/// paths are primed once).
#[derive(Default)]
struct Walk {
    seen: HashSet<(u64, u64)>,
    dirs: VecDeque<Item>,
    files: VecDeque<Item>,
}

impl Walk {
    /// Queue what was found; an `explicit` path (one the user named) that
    /// cannot be primed is a failure, one found in a walk is skipped.
    fn found(&mut self, item: Item, explicit: bool, counters: &Counters) -> Option<(String, String)> {
        match item.attr.ftype {
            FileType::Directory | FileType::Regular => {}
            FileType::Symlink if explicit => {
                return Some((item.path, "is a symbolic link (not followed)".into()));
            }
            _ if explicit => return Some((item.path, "is not a regular file or directory".into())),
            _ => return None,
        }
        if !self.seen.insert((item.attr.fsid, item.attr.fileid)) {
            return None;
        }
        if item.attr.ftype == FileType::Directory {
            counters.dirs.fetch_add(1, Relaxed);
            self.dirs.push_back(item);
        } else {
            counters.files_found.fetch_add(1, Relaxed);
            counters.bytes_found.fetch_add(item.attr.size, Relaxed);
            self.files.push_back(item);
        }
        None
    }
}

/// Run a prime request, streaming progress to `out`. An error return means
/// the client went away (the prime stops with it).
pub async fn serve(
    ctx: &Context,
    paths: Vec<String>,
    parallel: usize,
    out: &mut Responder,
) -> std::io::Result<()> {
    if parallel == 0 || parallel > MAX_PARALLEL {
        let message = format!("parallel = {parallel}: must be 1 to {MAX_PARALLEL}");
        return out.send(&Response::Error { message }).await;
    }
    if paths.is_empty() {
        let message = "nothing to prime: no paths given".to_string();
        return out.send(&Response::Error { message }).await;
    }
    let started = Instant::now();
    let counters = Counters::default();
    let mut errors = 0u64;
    let mut walk = Walk::default();
    for path in paths {
        let failure = match resolve(ctx, &path).await {
            Ok((fh, attr)) => walk.found(Item { path, fh, attr }, true, &counters),
            Err(error) => Some((path, error)),
        };
        if let Some((path, error)) = failure {
            errors += 1;
            out.send(&Response::Failed { path, error }).await?;
        }
    }

    let mut running = FuturesUnordered::new();
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Directories first, as they feed the queue of files, unless that
        // queue is long enough already (it would hold a whole huge tree).
        while running.len() < parallel {
            let job = if !walk.dirs.is_empty() && walk.files.len() < QUEUED_FILES {
                walk.dirs.pop_front().map(|d| list(ctx, d).boxed())
            } else {
                walk.files.pop_front().map(|f| read(ctx, f, &counters).boxed())
            };
            let Some(job) = job else { break };
            running.push(job);
        }
        tokio::select! {
            done = running.next() => {
                let Some(outcome) = done else { break };
                for child in outcome.children {
                    walk.found(child, false, &counters);
                }
                if let Some((path, error)) = outcome.failure {
                    errors += 1;
                    out.send(&Response::Failed { path, error }).await?;
                }
            }
            _ = tick.tick() => out.send(&Response::Progress(counters.snapshot())).await?,
        }
    }
    let elapsed_ms = started.elapsed().as_millis().min(u64::MAX as u128) as u64;
    out.send(&Response::Done {
        totals: counters.snapshot(),
        errors,
        elapsed_ms,
    })
    .await
}

/// The engine handle and attributes of an export path, or why not.
pub(crate) async fn resolve(ctx: &Context, path: &str) -> Result<(FileHandle, Attr), String> {
    if !path.starts_with('/') {
        return Err("not an absolute export path (such as /export/dir)".into());
    }
    if path.split('/').any(|c| c == "..") {
        return Err("`..` is not allowed in a path to prime".into());
    }
    let norm = nfs_front::exports::normalize(path).ok_or("not an absolute export path")?;
    let (i, rest) =
        nfs_front::exports::find(ctx.exports.iter().map(|(p, _)| p.as_str()), &norm).ok_or_else(|| {
            let list: Vec<&str> = ctx.exports.iter().map(|(p, _)| p.as_str()).collect();
            format!("not under any export (exports: {})", list.join(", "))
        })?;
    let root = Credentials::root();
    let mut fh = ctx.exports[i].1;
    let mut attr = ctx.engine.getattr(&fh).await.map_err(|e| e.to_string())?;
    for c in rest.split('/').filter(|c| !c.is_empty()) {
        if attr.ftype != FileType::Directory {
            return Err("not a directory on the way".into());
        }
        let (h, a, _) = ctx
            .engine
            .lookup(&root, &fh, c.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        (fh, attr) = (h, a);
    }
    Ok((fh, attr))
}

/// Every entry of a directory, with handles and attributes.
async fn list(ctx: &Context, dir: Item) -> Outcome {
    let root = Credentials::root();
    let (mut cookie, mut verifier) = (0, 0);
    let mut children = Vec::new();
    loop {
        let page = match ctx
            .engine
            .readdir_plus(&root, &dir.fh, cookie, verifier, PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                return Outcome {
                    children,
                    failure: Some((dir.path, e.to_string())),
                }
            }
        };
        verifier = page.verifier;
        for e in &page.entries {
            cookie = e.cookie;
            if e.name == b"." || e.name == b".." {
                continue;
            }
            if let Some((fh, attr)) = e.object {
                let name = String::from_utf8_lossy(&e.name);
                let path = format!("{}/{name}", dir.path.trim_end_matches('/'));
                children.push(Item { path, fh, attr });
            }
        }
        if page.eof || page.entries.is_empty() {
            return Outcome {
                children,
                failure: None,
            };
        }
    }
}

/// Read a whole file into the cache, a large chunk at a time.
async fn read(ctx: &Context, file: Item, counters: &Counters) -> Outcome {
    let root = Credentials::root();
    let mut offset = 0;
    let mut size = file.attr.size;
    while offset < size {
        match ctx.engine.prefetch(&root, &file.fh, offset, CHUNK).await {
            Ok(p) => {
                counters.cached.fetch_add(p.cached, Relaxed);
                counters.fetched.fetch_add(p.fetched, Relaxed);
                counters.bytes_done.fetch_add(p.cached + p.fetched, Relaxed);
                size = p.attr.size;
                offset += CHUNK;
            }
            Err(e) => {
                return Outcome {
                    children: Vec::new(),
                    failure: Some((file.path, e.to_string())),
                }
            }
        }
    }
    counters.files_done.fetch_add(1, Relaxed);
    Outcome {
        children: Vec::new(),
        failure: None,
    }
}

/// `weir prime` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PrimeFlags {
    /// Data dir of the running weir serve (its admin socket is DIR/weir.sock)
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub data_dir: Option<PathBuf>,
    /// Config file of the running weir serve (for its data dir)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also prime the paths listed in FILE, one per line (# starts a comment)
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Files read at once
    #[arg(long, value_name = "N", default_value_t = default_parallel(), value_parser = parse_parallel)]
    pub parallel: usize,
    /// Paths as NFS clients see them, e.g. /export/shots/010 (directories whole)
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

fn parse_parallel(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_PARALLEL).contains(n))
        .ok_or_else(|| format!("`{s}`: must be a number from 1 to {MAX_PARALLEL}"))
}

/// Paths in a manifest: one per line, blank lines and `#` comments skipped.
fn manifest_paths(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_once('#').map_or(l, |(before, _)| before).trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn data_dir(flags: &PrimeFlags) -> anyhow::Result<PathBuf> {
    if let Some(d) = &flags.data_dir {
        return Ok(d.clone());
    }
    match &flags.config {
        Some(file) => Ok(crate::config::load(file)?.server.data_dir),
        None => Ok(PathBuf::from(crate::config::DEFAULT_DATA_DIR)),
    }
}

/// Run `weir prime`; Ok(false) when some paths failed (listed on stderr).
pub fn run(flags: &PrimeFlags) -> anyhow::Result<bool> {
    let mut paths = flags.paths.clone();
    if let Some(m) = &flags.manifest {
        let text =
            std::fs::read_to_string(m).with_context(|| format!("cannot read manifest {}", m.display()))?;
        paths.extend(manifest_paths(&text));
    }
    if paths.is_empty() {
        bail!("nothing to prime: name PATHs (as clients see them, e.g. /export/dir) or --manifest FILE");
    }
    let dir = data_dir(flags)?;
    let mut client = admin::Client::connect(&dir)?;
    client.send(&Request::Prime {
        paths,
        parallel: flags.parallel,
    })?;
    let mut view = View::new();
    let mut failures = Vec::new();
    loop {
        match client.next()? {
            Some(Response::Progress(p)) => view.update(&p),
            Some(Response::Failed { path, error }) => failures.push(format!("{path}: {error}")),
            Some(Response::Done {
                totals,
                errors,
                elapsed_ms,
            }) => {
                view.finish();
                print_summary(&totals, errors, Duration::from_millis(elapsed_ms));
                let mut err = std::io::stderr().lock();
                for f in &failures {
                    let _ = writeln!(err, "weir: prime: {f}");
                }
                return Ok(failures.is_empty() && errors == 0);
            }
            Some(Response::Error { message }) => {
                view.finish();
                return Err(anyhow!("prime: {message}"));
            }
            Some(_) => {}
            None => {
                view.finish();
                bail!("weir serve closed the connection before the prime finished (did it stop?)");
            }
        }
    }
}

/// Progress as a bar on a terminal, as a plain line now and then otherwise.
enum View {
    Bar(ProgressBar),
    Plain(Instant),
}

impl View {
    fn new() -> View {
        if !std::io::stderr().is_terminal() {
            return View::Plain(Instant::now());
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {binary_bytes}/{binary_total_bytes} \
             ({binary_bytes_per_sec}) {msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        View::Bar(bar)
    }

    fn update(&mut self, p: &Progress) {
        match self {
            View::Bar(bar) => {
                bar.set_length(p.bytes_found);
                bar.set_position(p.bytes_done);
                bar.set_message(format!("{}/{} files", p.files_done, p.files_found));
            }
            View::Plain(last) => {
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!(
                        "weir prime: {}/{} files, {}/{}",
                        p.files_done,
                        p.files_found,
                        HumanBytes(p.bytes_done),
                        HumanBytes(p.bytes_found)
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let View::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn print_summary(t: &Progress, errors: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(0.001);
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Primed {} in {}: {} in {secs:.2} s ({}/s)",
        plural(t.files_done, "file", "files"),
        plural(t.dirs, "directory", "directories"),
        HumanBytes(t.bytes_done),
        HumanBytes((t.bytes_done as f64 / secs) as u64),
    );
    let _ = writeln!(out, "  from the core filer  {}", HumanBytes(t.fetched));
    let _ = writeln!(out, "  already cached       {}", HumanBytes(t.cached));
    let _ = writeln!(
        out,
        "  errors               {errors}{}",
        if errors > 0 { " (listed on stderr)" } else { "" }
    );
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_skip_blanks_and_comments() {
        let text = "# shots for Monday\n/export/shots/010\n\n  /export/shots/020  # hero\n#/export/old\n";
        assert_eq!(manifest_paths(text), ["/export/shots/010", "/export/shots/020"]);
    }
}
