//! `weir smbpasswd NAME`: add an SMB user or change its password, keeping
//! only the password's NT hash in the users file (as `smbpasswd -a -s`
//! does, the password comes from stdin).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use smb_front::auth::users::nt_hash;
use smb_front::config::{check_user_name, UserConfig, UsersFile};

use crate::config::{self, Config};

#[derive(Debug, clap::Args)]
pub struct SmbpasswdFlags {
    /// The user name clients log on with
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The config file whose users file to change (its [server] data_dir and [smb] users_file)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// [server] data_dir: the users file is <DIR>/smb-users.toml
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// POSIX uid the user acts as [default: the local user NAME's, or the one already stored]
    #[arg(long)]
    pub uid: Option<u32>,
    /// POSIX gid [default: as --uid]
    #[arg(long)]
    pub gid: Option<u32>,
    /// Supplementary gids, comma-separated [default: the local user's groups]
    #[arg(long, value_delimiter = ',')]
    pub groups: Option<Vec<u32>>,
    /// Remove the user instead
    #[arg(long, conflicts_with_all = ["uid", "gid", "groups"])]
    pub delete: bool,
}

pub fn run(flags: &SmbpasswdFlags) -> anyhow::Result<()> {
    check_user_name(&flags.name).map_err(|e| anyhow!(e))?;
    let mut cfg = match &flags.config {
        Some(path) => config::load(path)?,
        None => Config::default(),
    };
    if let Some(d) = &flags.data_dir {
        cfg.server.data_dir = d.clone();
    }
    let path = cfg.smb.users_file(&cfg.server.data_dir);
    let mut file = UsersFile::load(&path).map_err(|e| anyhow!(e))?;
    let existing = file
        .users
        .keys()
        .find(|k| k.eq_ignore_ascii_case(&flags.name))
        .cloned();
    if cfg.smb.users.keys().any(|k| k.eq_ignore_ascii_case(&flags.name)) {
        bail!(
            "user {} is written in the config file's [smb] users; change it there",
            flags.name
        );
    }
    if flags.delete {
        let Some(key) = existing else {
            bail!("no SMB user {} in {}", flags.name, path.display());
        };
        file.users.remove(&key);
        file.store(&path).map_err(|e| anyhow!(e))?;
        eprintln!("removed SMB user {key} from {}", path.display());
        return Ok(());
    }
    let password = read_password()?;
    let old = existing.as_ref().and_then(|k| file.users.get(k)).cloned();
    let local = local_user(&flags.name);
    let uid = flags
        .uid
        .or(old.as_ref().map(|u| u.uid))
        .or(local.as_ref().map(|l| l.0))
        .ok_or_else(|| {
            anyhow!(
                "{} is not a user of this host: give the POSIX ids it acts as with --uid and --gid",
                flags.name
            )
        })?;
    let gid = flags
        .gid
        .or(old.as_ref().filter(|_| flags.uid.is_none()).map(|u| u.gid))
        .or(local.as_ref().filter(|l| l.0 == uid).map(|l| l.1))
        .unwrap_or(uid);
    let groups = flags
        .groups
        .clone()
        .or(old
            .as_ref()
            .filter(|_| flags.uid.is_none())
            .map(|u| u.groups.clone()))
        .or(local.filter(|l| l.0 == uid).map(|l| l.2))
        .unwrap_or_default();
    if let Some(k) = &existing {
        file.users.remove(k);
    }
    file.users.insert(
        flags.name.clone(),
        UserConfig::new(&nt_hash(&password), uid, gid, groups),
    );
    file.store(&path).map_err(|e| anyhow!(e))?;
    eprintln!(
        "{} SMB user {} (uid {uid}, gid {gid}) in {}",
        if existing.is_some() { "updated" } else { "added" },
        flags.name,
        path.display()
    );
    Ok(())
}

/// The password: the first line of stdin; a second line, when present, must
/// repeat it (what `smbpasswd -s` reads).
fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 << 10)
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    let mut lines = input.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Some(first) = lines.next().filter(|_| !input.is_empty()) else {
        bail!("no password on stdin (give it as the first line; a second line may repeat it)");
    };
    if let Some(second) = lines.next().filter(|l| !l.is_empty()) {
        if second != first {
            bail!("the two passwords on stdin differ");
        }
    }
    if first.chars().count() > 256 {
        bail!("the password is longer than 256 characters");
    }
    Ok(first.to_string())
}

/// uid, gid and groups of the local user `name`, if there is one.
fn local_user(name: &str) -> Option<(u32, u32, Vec<u32>)> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: all-zero bytes are a valid libc::passwd (integers and pointers).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the size passed with it;
    // getpwnam_r writes only within them.
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    let mut n: libc::c_int = 256;
    let mut groups = vec![0 as libc::gid_t; n as usize];
    // SAFETY: pw_name points into `buf`; `groups` has room for `n` entries,
    // and getgrouplist writes at most that many, storing the count in `n`.
    let rc = unsafe { libc::getgrouplist(pw.pw_name, pw.pw_gid, groups.as_mut_ptr(), &mut n) };
    groups.truncate(if rc < 0 { 0 } else { n.max(0) as usize });
    groups.retain(|&g| g != pw.pw_gid);
    Some((pw.pw_uid, pw.pw_gid, groups))
}
