//! `weir`, the Weir appliance binary: `weir serve` runs the caching NAS daemon
//! (config, core filer, cache engine, metrics endpoint, admin socket);
//! `weir config check` validates a config file; `weir prime` pulls a tree
//! into a running server's cache; `weir flush` writes dirty data back now and
//! `weir status` shows what waits; `weir smbpasswd` keeps SMB users.
//!
//! It wires parts together and reports problems in plain words. It must not
//! hold protocol or caching logic (that lives in `cache-engine` and the front
//! ends), and bad input must end in a one-line error and a non-zero exit,
//! never a panic.

mod admin;
mod config;
mod filer_url;
mod flush;
mod metrics_http;
mod prime;
mod serve;
mod smbpasswd;
mod units;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Shards free buffers other shards allocated (a read's bytes, a job, its
// reply) all the time; glibc's malloc takes the owning arena's lock for
// each, mimalloc frees them without one.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "weir", version, about = "Weir: a caching NAS appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance (with no options: a local core filer under ./weir-data/)
    Serve(config::ServeFlags),
    /// Pull files into a running weir serve's cache ahead of a job
    Prime(prime::PrimeFlags),
    /// Write a running weir serve's dirty data back to its core filers now
    Flush(flush::FlushFlags),
    /// Show what a running weir serve has not written back yet
    Status(flush::StatusFlags),
    /// Add an SMB user or set its password (read from stdin; only its NT hash is kept)
    Smbpasswd(smbpasswd::SmbpasswdFlags),
    /// Work with config files
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Parse and validate FILE, then print what it would serve
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(flags) => match serve::run(&flags) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weir: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Prime(flags) => match prime::run(&flags) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("weir: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Flush(flags) => match flush::run_flush(&flags) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("weir: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Status(flags) => match flush::run_status(&flags) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weir: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Smbpasswd(flags) => match smbpasswd::run(&flags) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weir: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Config {
            command: ConfigCommand::Check { file },
        } => check(&file),
    }
}

fn check(file: &Path) -> ExitCode {
    let settings = config::load(file).and_then(|cfg| {
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))
    });
    match settings {
        Ok(s) => {
            println!("{}: ok", file.display());
            println!("  {}", s.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
