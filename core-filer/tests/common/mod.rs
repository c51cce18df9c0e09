//! Fixtures shared by the core filer tests: a runtime, callers, and the `nfs`
//! core filer over a ganesha export.
#![allow(dead_code)]

use std::path::Path;

use core_filer::nfs::{NfsConfig, NfsFiler};
use core_filer::types::{Credentials, SetAttr};
use testbed::ganesha::Export;

pub fn run<F: std::future::Future>(f: F) -> F::Output {
    compio::runtime::Runtime::new().unwrap().block_on(f)
}

pub fn root() -> Credentials {
    Credentials::root()
}

/// A caller who is not root, in many groups (more than AUTH_SYS carries).
pub fn user(uid: u32) -> Credentials {
    Credentials {
        uid,
        gid: uid,
        gids: (0..40).map(|g| 5000 + g).collect(),
        origin: 0,
    }
}

pub fn mode(m: u32) -> SetAttr {
    SetAttr {
        mode: Some(m),
        ..SetAttr::default()
    }
}

/// Deterministic bytes for file contents.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// The `nfs` core filer over a ganesha [`Export`].
pub trait Nas {
    fn config(&self) -> NfsConfig;
    fn filer(&self) -> NfsFiler;
    fn filer_with(&self, cfg: &NfsConfig, state: &Path) -> NfsFiler;
}

impl Nas for Export {
    fn config(&self) -> NfsConfig {
        let mut c = NfsConfig::new("127.0.0.1", self.nfs_port, "/export");
        c.mount_port = Some(self.mount_port);
        c
    }

    fn filer(&self) -> NfsFiler {
        self.filer_with(&self.config(), &self.state())
    }

    fn filer_with(&self, cfg: &NfsConfig, state: &Path) -> NfsFiler {
        NfsFiler::connect(cfg, state).unwrap()
    }
}
