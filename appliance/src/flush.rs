//! `weir flush` (write dirty data back to the core filers now) and `weir
//! status` (what is waiting to be written back), over the admin socket.
//!
//! A flush of a file writes that file back; a flush of a directory, or
//! `--all`, writes back everything dirty. While it runs the server reports
//! the dirty bytes left; at the end, what was written and each file that
//! could not be, and the exit status says whether all of it was.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use cache_engine::types::FileType;
use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::admin::{self, Context, Request, Responder, Response};

/// A file that could not be written back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub file_id: u64,
    /// Where it is, when Weir's name cache still knows.
    #[serde(default)]
    pub path: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{p} (file id {})", self.file_id),
            None => write!(f, "file id {}", self.file_id),
        }
    }
}

/// Dirty data of one core filer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilerStatus {
    pub name: String,
    pub files: u64,
    pub bytes: u64,
    pub oldest_ms: u64,
    pub reachable: bool,
    pub parked: Vec<Parked>,
    /// Dirty files changed or removed on it behind Weir since start.
    #[serde(default)]
    pub conflicts: u64,
}

/// What `weir status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub filers: Vec<FilerStatus>,
    pub journal_used: u64,
    pub journal_size: u64,
}

fn parked(list: Vec<cache_engine::ParkedFile>) -> Vec<Parked> {
    list.into_iter()
        .map(|p| Parked {
            file_id: p.fileid,
            path: p.path,
            reason: p.why,
        })
        .collect()
}

async fn status(ctx: &Context) -> Result<Status, String> {
    let s = ctx.engine.dirty_status().await.map_err(|e| e.to_string())?;
    Ok(Status {
        filers: s
            .filers
            .into_iter()
            .map(|f| FilerStatus {
                name: f.name,
                files: f.files,
                bytes: f.bytes,
                oldest_ms: f.oldest.as_millis().min(u64::MAX as u128) as u64,
                reachable: f.reachable,
                parked: parked(f.parked),
                conflicts: f.conflicts,
            })
            .collect(),
        journal_used: s.journal_used,
        journal_size: s.journal_size,
    })
}

/// Serve a status request.
pub async fn serve_status(ctx: &Context, out: &mut Responder) -> std::io::Result<()> {
    match status(ctx).await {
        Ok(s) => out.send(&Response::Status(s)).await,
        Err(message) => out.send(&Response::Error { message }).await,
    }
}

/// Serve a flush of `paths` (none: everything), reporting the dirty bytes
/// left every half second.
pub async fn serve_flush(ctx: &Context, paths: Vec<String>, out: &mut Responder) -> std::io::Result<()> {
    let started = Instant::now();
    let mut files = Vec::new();
    for p in &paths {
        match crate::prime::resolve(ctx, p).await {
            Ok((_, attr)) if attr.ftype == FileType::Directory => {
                files.clear();
                break;
            }
            Ok((fh, _)) => files.push(fh),
            Err(error) => {
                let message = format!("{p}: {error}");
                return out.send(&Response::Error { message }).await;
            }
        }
    }
    let engine = ctx.engine.clone();
    let flush = async move {
        if files.is_empty() {
            return engine.flush(None).await;
        }
        let mut total = cache_engine::FlushReport::default();
        for fh in &files {
            let r = engine.flush(Some(fh)).await?;
            total.files += r.files;
            total.bytes += r.bytes;
            total.parked.extend(r.parked);
        }
        Ok(total)
    };
    let mut flush = std::pin::pin!(flush);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let report = loop {
        tokio::select! {
            r = &mut flush => break r,
            _ = tick.tick() => {
                if let Ok(s) = status(ctx).await {
                    let left = s.filers.iter().map(|f| f.bytes).sum();
                    out.send(&Response::FlushProgress { dirty_bytes: left }).await?;
                }
            }
        }
    };
    match report {
        Ok(r) => {
            out.send(&Response::Flushed {
                files: r.files,
                bytes: r.bytes,
                parked: parked(r.parked),
                elapsed_ms: started.elapsed().as_millis().min(u64::MAX as u128) as u64,
            })
            .await
        }
        Err(e) => {
            out.send(&Response::Error {
                message: e.to_string(),
            })
            .await
        }
    }
}

/// `weir flush` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct FlushFlags {
    /// Data dir of the running weir serve (its admin socket is DIR/weir.sock)
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub data_dir: Option<PathBuf>,
    /// Config file of the running weir serve (for its data dir)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write back everything dirty (the same as no PATH)
    #[arg(long, conflicts_with = "paths")]
    pub all: bool,
    /// Files as NFS clients see them, e.g. /export/shots/010.exr (a directory: everything)
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

/// `weir status` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusFlags {
    /// Data dir of the running weir serve (its admin socket is DIR/weir.sock)
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub data_dir: Option<PathBuf>,
    /// Config file of the running weir serve (for its data dir)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

fn data_dir(data_dir: &Option<PathBuf>, config: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(d) = data_dir {
        return Ok(d.clone());
    }
    match config {
        Some(file) => Ok(crate::config::load(file)?.server.data_dir),
        None => Ok(PathBuf::from(crate::config::DEFAULT_DATA_DIR)),
    }
}

/// Run `weir flush`; Ok(false) when some file could not be written back.
pub fn run_flush(flags: &FlushFlags) -> anyhow::Result<bool> {
    let mut client = admin::Client::connect(&data_dir(&flags.data_dir, &flags.config)?)?;
    client.send(&Request::Flush {
        paths: flags.paths.clone(),
    })?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    loop {
        match client.next()? {
            Some(Response::FlushProgress { dirty_bytes }) => {
                if let Some(b) = &bar {
                    b.set_message(format!("{} dirty", HumanBytes(dirty_bytes)));
                }
            }
            Some(Response::Flushed {
                files,
                bytes,
                parked,
                elapsed_ms,
            }) => {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                println!(
                    "flushed {files} file(s), {} in {}",
                    HumanBytes(bytes),
                    HumanDuration(Duration::from_millis(elapsed_ms))
                );
                for p in &parked {
                    eprintln!("weir: flush: {p} not written back: {}", p.reason);
                }
                return Ok(parked.is_empty());
            }
            Some(Response::Error { message }) => {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                return Err(anyhow!("flush: {message}"));
            }
            Some(_) => {}
            None => bail!("weir serve closed the connection before the flush finished (did it stop?)"),
        }
    }
}

/// Run `weir status`.
pub fn run_status(flags: &StatusFlags) -> anyhow::Result<()> {
    let mut client = admin::Client::connect(&data_dir(&flags.data_dir, &flags.config)?)?;
    client.send(&Request::Status)?;
    let s = match client.next()? {
        Some(Response::Status(s)) => s,
        Some(Response::Error { message }) => bail!("status: {message}"),
        _ => bail!("weir serve gave no status"),
    };
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!(
        "journal: {} of {} hold changes not yet written back",
        HumanBytes(s.journal_used),
        HumanBytes(s.journal_size)
    );
    for f in &s.filers {
        println!(
            "core filer {}: {}; {} dirty in {} file(s){}",
            f.name,
            if f.reachable { "reachable" } else { "UNREACHABLE" },
            HumanBytes(f.bytes),
            f.files,
            if f.files > 0 {
                format!(", oldest {}", HumanDuration(Duration::from_millis(f.oldest_ms)))
            } else {
                String::new()
            }
        );
        for p in &f.parked {
            println!("  {p} waits: {}", p.reason);
        }
        if f.conflicts > 0 {
            println!(
                "  {} dirty file(s) changed or removed on it behind Weir since start (Weir's changes were kept)",
                f.conflicts
            );
        }
    }
    Ok(())
}
