//! `[smb]` and `[[shares]]`: what the SMB front end serves besides its
//! limits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::{Deserialize, Serialize};
use smb_front::config::{ShareConfig, SmbConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smb {
    /// "optional" or "required" (Samba's `server signing = mandatory`).
    pub signing: smb_front::config::Signing,
    /// "off", "optional" or "required" (Samba's `smb encrypt`); per share too.
    pub encryption: smb_front::config::Encryption,
    /// Let unknown users and anonymous logons in as guest_uid/guest_gid.
    pub guest: bool,
    pub guest_uid: u32,
    pub guest_gid: u32,
    /// NetBIOS domain the server names itself in.
    pub workgroup: String,
    /// Users kept by `weir smbpasswd`; `<data_dir>/smb-users.toml` when unset.
    pub users_file: Option<PathBuf>,
    /// Users written into this file: NAME = { nt_hash, uid, gid, groups }.
    pub users: BTreeMap<String, smb_front::config::UserConfig>,
}

impl Default for Smb {
    fn default() -> Self {
        Smb {
            signing: Default::default(),
            encryption: Default::default(),
            guest: false,
            guest_uid: 65534,
            guest_gid: 65534,
            workgroup: "WORKGROUP".into(),
            users_file: None,
            users: Default::default(),
        }
    }
}

impl Smb {
    pub fn users_file(&self, data_dir: &Path) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| data_dir.join("smb-users.toml"))
    }

    /// The SMB front end's config from this section, the shares and the data
    /// directory; [limits] are added on top, then the whole is checked.
    pub(super) fn front_config(
        &self,
        listen: SocketAddr,
        shares: &[ShareConfig],
        data_dir: &Path,
    ) -> anyhow::Result<SmbConfig> {
        let mut smb = SmbConfig::new(listen);
        smb.shares = shares.to_vec();
        smb.users = self.users.clone();
        smb.users_file = Some(self.users_file(data_dir));
        smb.signing = self.signing;
        smb.encryption = self.encryption;
        smb.guest = self.guest.then_some((self.guest_uid, self.guest_gid));
        if self.workgroup.is_empty()
            || self.workgroup.len() > 15
            || !self
                .workgroup
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!(
                "smb.workgroup = {:?}: 1 to 15 letters, digits, '-', '_' or '.'",
                self.workgroup
            );
        }
        smb.workgroup = self.workgroup.clone();
        Ok(smb)
    }
}
