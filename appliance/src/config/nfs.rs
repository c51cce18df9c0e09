//! `[nfs]` and `[[exports]]`: what the NFS front end serves besides its
//! limits.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use nfs_front::{ExportConfig, NfsConfig};
use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nfs {
    /// Also serve portmapper v2 on port 111 (TCP and UDP).
    pub portmapper: bool,
    /// Take callers' groups from the local user database, not AUTH_SYS.
    pub manage_gids: bool,
    /// After a restart with lock clients to notify, only reclaims succeed for this long.
    pub nlm_grace: HumanDuration,
}

impl Default for Nfs {
    fn default() -> Self {
        Nfs {
            portmapper: false,
            manage_gids: false,
            nlm_grace: HumanDuration(Duration::from_secs(45)),
        }
    }
}

impl Nfs {
    /// The NFS front end's config from this section, the exports and the
    /// data directory; [limits] are added on top.
    pub(super) fn front_config(
        &self,
        listen: SocketAddr,
        exports: &[ExportConfig],
        data_dir: &Path,
    ) -> anyhow::Result<NfsConfig> {
        nfs_front::exports::parse(exports).map_err(|e| anyhow!("exports: {e}"))?;
        let mut nfs = NfsConfig::new(listen);
        nfs.exports = exports.to_vec();
        nfs.portmapper = self.portmapper;
        nfs.manage_gids = self.manage_gids;
        nfs.nlm_grace = self.nlm_grace.0;
        nfs.state_dir = Some(data_dir.to_path_buf());
        Ok(nfs)
    }
}
