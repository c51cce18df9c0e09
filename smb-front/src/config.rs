//! What the SMB front end serves: listen address, shares, users, and whether
//! signing and encryption are required. The share and user structs are the
//! `[[shares]]` and `[smb.users.NAME]` tables of the appliance config as
//! they are; the users file (`weir smbpasswd`) has the same `[users.NAME]`
//! tables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::auth::throttle::LogonLimits;
use crate::auth::users::{format_nt_hash, parse_nt_hash, User, UserDb};

/// Whether signing is offered or demanded (Samba's `server signing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signing {
    /// Signed when the client asks (and always for SMB 3.1.1, as the protocol wants).
    #[default]
    Optional,
    /// Every session must sign; unsigned requests are refused.
    Required,
}

/// Whether encryption is offered or demanded (Samba's `smb encrypt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// Never offered.
    Off,
    /// Clients that want it get it (SMB 3.x).
    #[default]
    Optional,
    /// Clients that cannot encrypt (SMB 2.x) are refused; traffic is sealed.
    Required,
}

fn root_dir() -> String {
    "/".into()
}

/// One SMB share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareConfig {
    /// The share name clients connect to (`\\server\NAME`); case-insensitive.
    pub name: String,
    /// The directory of the core filer it shows, "/" for its root.
    #[serde(default = "root_dir")]
    pub subdir: String,
    #[serde(default)]
    pub read_only: bool,
    /// Overrides `[smb] encryption` for this share.
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// Users who may connect; empty: every user.
    #[serde(default)]
    pub users: Vec<String>,
}

impl ShareConfig {
    pub fn new(name: &str) -> Self {
        ShareConfig {
            name: name.into(),
            subdir: root_dir(),
            read_only: false,
            encryption: None,
            users: Vec::new(),
        }
    }
}

/// One user as written in a config or users file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// MD4 of the UTF-16LE password, 32 hex digits (`weir smbpasswd` writes it).
    pub nt_hash: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary group ids.
    #[serde(default)]
    pub groups: Vec<u32>,
}

impl UserConfig {
    pub fn new(hash: &[u8; 16], uid: u32, gid: u32, groups: Vec<u32>) -> Self {
        UserConfig {
            nt_hash: format_nt_hash(hash),
            uid,
            gid,
            groups,
        }
    }

    fn user(&self, name: &str) -> Result<User, String> {
        let nt_hash = parse_nt_hash(&self.nt_hash).map_err(|e| format!("user {name}: nt_hash: {e}"))?;
        Ok(User {
            name: name.into(),
            nt_hash,
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
        })
    }
}

/// The users file: `[users.NAME]` tables, kept by `weir smbpasswd`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default)]
    pub users: BTreeMap<String, UserConfig>,
}

impl UsersFile {
    /// Read `path`; a missing file (or one whose directory cannot exist,
    /// which the data dir check reports) is an empty one.
    pub fn load(path: &Path) -> Result<UsersFile, String> {
        use std::io::ErrorKind;
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Ok(UsersFile::default())
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Write `path` readable by its owner only, atomically (a temporary file renamed over it).
    pub fn store(&self, path: &Path) -> Result<(), String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = toml::to_string(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(b"# SMB users of weir serve; written by `weir smbpasswd`.\n")?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Everything the SMB front end needs to start.
#[derive(Debug, Clone)]
pub struct SmbConfig {
    pub listen: SocketAddr,
    /// Shares; none: the core filer's root as `export`.
    pub shares: Vec<ShareConfig>,
    /// Users from the config file (`[smb.users.NAME]`).
    pub users: BTreeMap<String, UserConfig>,
    /// The users file (`weir smbpasswd`); read at start, may be missing.
    pub users_file: Option<PathBuf>,
    pub signing: Signing,
    pub encryption: Encryption,
    /// Let logons with an unknown name or no password in, as this uid/gid.
    pub guest: Option<(u32, u32)>,
    /// NetBIOS domain (workgroup) the server names in its NTLM challenge.
    pub workgroup: String,
    /// Largest READ/WRITE/TRANSACT the server announces.
    pub max_io: u32,
    /// Connections at once, in all and from one client address.
    pub limits: cache_engine::front::limits::ConnLimits,
    /// A connection with no open file and no request in progress that
    /// sends nothing for this long is closed (one that holds opens is not).
    pub idle_timeout: Duration,
    /// A connection with no logged-on session this long after it was made
    /// (or its last session logged off) is closed.
    pub logon_timeout: Duration,
    /// Logons in progress, and lockout after failures.
    pub logons: LogonLimits,
}

impl SmbConfig {
    pub fn new(listen: SocketAddr) -> Self {
        SmbConfig {
            listen,
            shares: Vec::new(),
            users: BTreeMap::new(),
            users_file: None,
            signing: Signing::default(),
            encryption: Encryption::default(),
            guest: None,
            workgroup: "WORKGROUP".into(),
            max_io: 8 << 20,
            limits: Default::default(),
            idle_timeout: Duration::from_secs(15 * 60),
            logon_timeout: Duration::from_secs(60),
            logons: Default::default(),
        }
    }

    /// The shares to serve: the configured ones, or `export` over the root.
    pub fn effective_shares(&self) -> Vec<ShareConfig> {
        if self.shares.is_empty() {
            vec![ShareConfig::new("export")]
        } else {
            self.shares.clone()
        }
    }

    /// Check shares and the config's own users, without reading the users
    /// file (which `validate` reads when the server starts).
    pub fn check(&self) -> Result<(), String> {
        let mut cfg = self.clone();
        cfg.users_file = None;
        cfg.shares.iter_mut().for_each(|s| s.users.clear());
        cfg.validate().map(drop)
    }

    /// Check shares and users; returns the user database (config users and
    /// the users file's, which must not name the same user twice).
    pub fn validate(&self) -> Result<UserDb, String> {
        let mut seen = std::collections::HashSet::new();
        for s in &self.shares {
            let name = s.name.to_lowercase();
            if name.is_empty()
                || name.len() > 80
                || name == "ipc$"
                || name
                    .chars()
                    .any(|c| c.is_control() || "\\/:*?\"<>|[]+=;,".contains(c))
            {
                return Err(format!("share {:?}: not a valid share name", s.name));
            }
            if !seen.insert(name) {
                return Err(format!("share {:?} is defined twice", s.name));
            }
            if !s.subdir.starts_with('/') {
                return Err(format!(
                    "share {}: subdir {:?} must start with /",
                    s.name, s.subdir
                ));
            }
        }
        let mut db = UserDb::new();
        for (name, u) in &self.users {
            check_user_name(name)?;
            db.insert(u.user(name)?);
        }
        if let Some(path) = &self.users_file {
            for (name, u) in UsersFile::load(path)?.users {
                check_user_name(&name)?;
                if db.get(&name).is_some() {
                    return Err(format!(
                        "user {name} is in the config and in {} too",
                        path.display()
                    ));
                }
                db.insert(u.user(&name)?);
            }
        }
        for s in &self.shares {
            if let Some(u) = s.users.iter().find(|u| db.get(u).is_none()) {
                return Err(format!("share {}: no such SMB user {u:?}", s.name));
            }
        }
        if let Some((uid, gid)) = self.guest {
            db.set_guest(Some(User {
                name: "guest".into(),
                nt_hash: [0; 16],
                uid,
                gid,
                groups: Vec::new(),
            }));
        }
        Ok(db)
    }
}

/// A user name NTLM can carry and a config can hold.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || name
            .chars()
            .any(|c| c.is_control() || "\\/:*?\"<>|[]+=;,@".contains(c))
    {
        return Err(format!("{name:?} is not a valid SMB user name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::users::nt_hash;

    #[test]
    fn users_file_round_trips_and_merges_with_config_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smb-users.toml");
        let mut file = UsersFile::default();
        file.users.insert(
            "alice".into(),
            UserConfig::new(&nt_hash("pw"), 1000, 100, vec![5]),
        );
        file.store(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(UsersFile::load(&path).unwrap(), file);

        let mut cfg = SmbConfig::new("127.0.0.1:445".parse().unwrap());
        cfg.users_file = Some(path.clone());
        cfg.users
            .insert("bob".into(), UserConfig::new(&nt_hash("x"), 1001, 100, vec![]));
        let db = cfg.validate().unwrap();
        assert_eq!(db.get("ALICE").unwrap().nt_hash, nt_hash("pw"));
        assert_eq!(db.get("bob").unwrap().uid, 1001);

        cfg.users
            .insert("Alice".into(), UserConfig::new(&nt_hash("y"), 1, 1, vec![]));
        assert!(cfg.validate().unwrap_err().contains("in the config and in"));
    }

    #[test]
    fn bad_shares_and_users_are_refused_with_the_reason() {
        let mut cfg = SmbConfig::new("127.0.0.1:445".parse().unwrap());
        cfg.shares = vec![ShareConfig::new("a"), ShareConfig::new("A")];
        assert!(cfg.validate().unwrap_err().contains("defined twice"));
        cfg.shares = vec![ShareConfig::new("IPC$")];
        assert!(cfg.validate().unwrap_err().contains("not a valid share name"));
        cfg.shares = vec![ShareConfig::new("a/b")];
        assert!(cfg.validate().is_err());
        let mut s = ShareConfig::new("data");
        s.users = vec!["nobody".into()];
        cfg.shares = vec![s];
        assert!(cfg.validate().unwrap_err().contains("no such SMB user"));
        cfg.shares = Vec::new();
        cfg.users.insert(
            "carol".into(),
            UserConfig {
                nt_hash: "xyz".into(),
                uid: 1,
                gid: 1,
                groups: vec![],
            },
        );
        assert!(cfg.validate().unwrap_err().contains("nt_hash"));
        assert_eq!(cfg.effective_shares()[0].name, "export");
    }

    #[test]
    fn a_broken_users_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.toml");
        std::fs::write(&path, "[users.x]\nnt_hash = 5\n").unwrap();
        let err = UsersFile::load(&path).unwrap_err();
        assert!(err.contains("u.toml"), "{err}");
    }
}
