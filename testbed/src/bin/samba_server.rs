//! `samba-server`: a private smbd sharing a directory as `export` on
//! 127.0.0.1 for as long as a command runs; the SMB test scripts start
//! Samba through it. The command gets the server in its environment:
//! SMB_SERVER=samba SMB_HOST SMB_PORT SMB_SHARE SMB_USER SMB_PASS
//! SMB_OTHER_USERS (NAME:UID,...) SMB_BACKDIR SMB_SIGNING_REQUIRED
//! SMB_ENCRYPT_REQUIRED SMB_CONF SMB_LOG.
//! Exits with the command's status (2 when Samba does not start).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::Parser;
use testbed::samba::{Samba, SambaConfig};

#[derive(Debug, Parser)]
#[command(
    name = "samba-server",
    about = "Run a command beside a private smbd sharing DIR as `export` on 127.0.0.1"
)]
struct Args {
    /// The directory to share
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Port on 127.0.0.1 (0: a free one)
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// SMB user (a Unix account of that name must exist)
    #[arg(long, default_value = "root")]
    user: String,
    /// The user's password
    #[arg(long, default_value = "weir-test-pass")]
    password: String,
    /// Another SMB user with the same password, as NAME:UID (a Unix account
    /// is made when missing); repeatable
    #[arg(long = "other-user", value_name = "NAME:UID", value_parser = name_uid)]
    other_users: Vec<(String, u32)>,
    /// `server signing = mandatory`
    #[arg(long)]
    signing_required: bool,
    /// `smb encrypt = required`
    #[arg(long)]
    encrypt_required: bool,
    /// More `[global]` smb.conf lines (`name = value`)
    #[arg(long = "global", value_name = "LINE")]
    global: Vec<String>,
    /// Keep smbd's work directory (config, log) afterwards
    #[arg(long)]
    keep: bool,
    /// The command to run while the server is up
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn name_uid(s: &str) -> Result<(String, u32), String> {
    let (name, uid) = s.split_once(':').ok_or("want NAME:UID")?;
    let uid = uid.parse().map_err(|e| format!("uid {uid}: {e}"))?;
    Ok((name.to_string(), uid))
}

fn main() -> ExitCode {
    let a = Args::parse();
    let config = SambaConfig {
        user: a.user,
        password: a.password,
        signing_required: a.signing_required,
        encrypt_required: a.encrypt_required,
        extra_global: a.global,
        other_users: a.other_users,
        ..SambaConfig::default()
    };
    let mut samba = match Samba::start_with(&a.dir, a.port, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("samba-server: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "samba-server: smbd {} sharing {} as {} on port {}",
        samba.pid(),
        samba.dir.display(),
        samba.unc(),
        samba.addr.port()
    );
    let flag = |b: bool| if b { "1" } else { "" };
    let c = &samba.config;
    let status = Command::new(&a.command[0])
        .args(&a.command[1..])
        .env("SMB_SERVER", "samba")
        .env("SMB_HOST", samba.addr.ip().to_string())
        .env("SMB_PORT", samba.addr.port().to_string())
        .env("SMB_SHARE", &c.share)
        .env("SMB_USER", &c.user)
        .env("SMB_PASS", &c.password)
        .env(
            "SMB_OTHER_USERS",
            c.other_users
                .iter()
                .map(|(n, u)| format!("{n}:{u}"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .env("SMB_BACKDIR", &samba.dir)
        .env("SMB_SIGNING_REQUIRED", flag(c.signing_required))
        .env("SMB_ENCRYPT_REQUIRED", flag(c.encrypt_required))
        .env("SMB_CONF", samba.conf().unwrap_or_default())
        .env("SMB_LOG", &samba.log)
        .status();
    if a.keep {
        if let Some(w) = samba.keep_work() {
            eprintln!("samba-server: kept {}", w.display());
        }
    }
    match status {
        Ok(s) => ExitCode::from(s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)),
        Err(e) => {
            eprintln!("samba-server: {}: {e}", a.command[0]);
            ExitCode::from(2)
        }
    }
}
