//! `[core_filer]`: the core filer at the namespace root, and how long a call
//! to it may take.

use std::path::Path;

use anyhow::{anyhow, bail};
use cache_engine::EngineConfig;
use serde::{Deserialize, Serialize};

use crate::filer_url::CoreFilerUrl;
use crate::units::HumanDuration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreFiler {
    /// Where the data lives; `file://<data_dir>/origin` when unset.
    pub url: Option<String>,
    /// How long one call to the core filer may take before it fails.
    pub timeout: HumanDuration,
}

impl Default for CoreFiler {
    fn default() -> Self {
        CoreFiler {
            url: None,
            timeout: HumanDuration(EngineConfig::default().filer_timeout),
        }
    }
}

impl CoreFiler {
    /// The core filer to serve, and whether it is the embedded default
    /// `<data_dir>/origin`.
    pub(super) fn resolve(&self, data_dir: &Path) -> anyhow::Result<(CoreFilerUrl, bool)> {
        let (core_filer, origin_is_default) = match &self.url {
            Some(url) => (
                url.parse::<CoreFilerUrl>()
                    .map_err(|e| anyhow!("core_filer.url: {e}"))?,
                false,
            ),
            None => (CoreFilerUrl::Local(data_dir.join("origin")), true),
        };
        if !core_filer.available() {
            bail!(
                "core_filer.url = {:?}: the `{}` core filer is not available in this build yet \
                 (only file:// and nfs:// work today)",
                self.url.as_deref().unwrap_or_default(),
                core_filer.kind()
            );
        }
        if self.timeout.0.is_zero() {
            bail!("core_filer.timeout must be longer than 0s");
        }
        Ok((core_filer, origin_is_default))
    }
}
