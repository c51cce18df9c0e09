//! `[limits]`: what clients may hold, checked here and handed to both front
//! ends.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use cache_engine::front::limits::ConnLimits;
use nfs_front::NfsConfig;
use serde::{Deserialize, Serialize};
use smb_front::config::{LogonLimits, SmbConfig};

use crate::units::{ByteSize, HumanDuration};

/// What one client, or all of them, may hold before and after logging on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections at once to each front end (NFS, SMB), from all clients.
    pub max_connections: usize,
    /// Connections at once to each front end from one client address.
    pub max_connections_per_client: usize,
    /// Memory of large messages still arriving, in all connections.
    pub receive_buffer_memory: ByteSize,
    /// How long a message waits for room in that memory before its connection is closed.
    pub receive_buffer_wait: HumanDuration,
    /// An NFS connection with no call in progress that sends nothing for this long is closed.
    pub nfs_idle_timeout: HumanDuration,
    /// An SMB connection with no open file that sends nothing for this long is closed.
    pub smb_idle_timeout: HumanDuration,
    /// An SMB connection with no logged-on session this long after it was made
    /// (or its last session logged off) is closed.
    pub smb_logon_timeout: HumanDuration,
    /// SMB sessions in setup at once on one connection.
    pub smb_sessions_in_setup_per_connection: usize,
    /// SMB logons in progress at once from one client address.
    pub smb_logons_per_client: usize,
    /// SMB logons in progress at once, from all clients.
    pub smb_logons_total: usize,
    /// Failed SMB logons in a row that lock a client address out; 0: never.
    pub smb_lockout_after: u32,
    /// How long a locked-out address is refused.
    pub smb_lockout_for: HumanDuration,
}

impl Default for Limits {
    fn default() -> Self {
        let conns = ConnLimits::default();
        let logons = LogonLimits::default();
        let nfs = NfsConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)));
        let smb = SmbConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)));
        Limits {
            max_connections: conns.max_connections,
            max_connections_per_client: conns.max_per_client,
            receive_buffer_memory: ByteSize(1 << 30),
            receive_buffer_wait: HumanDuration(Duration::from_secs(10)),
            nfs_idle_timeout: HumanDuration(nfs.idle_timeout),
            smb_idle_timeout: HumanDuration(smb.idle_timeout),
            smb_logon_timeout: HumanDuration(smb.logon_timeout),
            smb_sessions_in_setup_per_connection: logons.per_connection,
            smb_logons_per_client: logons.per_client,
            smb_logons_total: logons.total,
            smb_lockout_after: logons.lockout_after,
            smb_lockout_for: HumanDuration(logons.lockout_for),
        }
    }
}

impl Limits {
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if self.max_connections == 0 || self.max_connections_per_client == 0 {
            bail!("limits.max_connections and limits.max_connections_per_client must be at least 1");
        }
        if self.smb_sessions_in_setup_per_connection == 0
            || self.smb_logons_per_client == 0
            || self.smb_logons_total == 0
        {
            bail!("limits: the smb_* logon limits must be at least 1");
        }
        Ok(())
    }

    /// Hand the limits to both front ends.
    pub(super) fn apply(&self, nfs: &mut NfsConfig, smb: &mut SmbConfig) {
        let conn_limits = ConnLimits {
            max_connections: self.max_connections,
            max_per_client: self.max_connections_per_client,
        };
        nfs.limits = conn_limits;
        nfs.idle_timeout = self.nfs_idle_timeout.0;
        smb.limits = conn_limits;
        smb.idle_timeout = self.smb_idle_timeout.0;
        smb.logon_timeout = self.smb_logon_timeout.0;
        smb.logons = LogonLimits {
            per_client: self.smb_logons_per_client,
            total: self.smb_logons_total,
            per_connection: self.smb_sessions_in_setup_per_connection,
            lockout_after: self.smb_lockout_after,
            lockout_for: self.smb_lockout_for.0,
        };
    }

    /// Memory for large messages still arriving, and how long one waits for room.
    pub(super) fn receive_budget(&self) -> (usize, Duration) {
        (self.receive_buffer_memory.0 as usize, self.receive_buffer_wait.0)
    }
}
