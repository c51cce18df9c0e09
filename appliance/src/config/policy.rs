//! `[policy]`: how long the namespace root's cached metadata is trusted, as a
//! preset with overrides; junctions take the same presets and overrides.

use std::time::Duration;

use anyhow::bail;
use cache_engine::CachePolicy;
use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub preset: Preset,
    /// Overrides the preset's attribute verify period.
    pub attr_verify: Option<HumanDuration>,
    /// Overrides the preset's directory verify period.
    pub dir_verify: Option<HumanDuration>,
    /// Overrides whether the preset caches "no such file" answers.
    pub negative_lookups: Option<bool>,
}

/// Cache policy presets, named as the field names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Reads are cached; writes go straight to the core filer.
    #[default]
    ReadOnly,
    /// Write-behind: not in this build yet.
    ReadWrite,
    /// Other clients change the core filer directly: verify often, cache no negative lookups.
    ClientsBypassing,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::ReadOnly => "read-only",
            Preset::ReadWrite => "read-write",
            Preset::ClientsBypassing => "clients-bypassing",
        }
    }

    pub(super) fn policy(self) -> CachePolicy {
        match self {
            Preset::ReadOnly | Preset::ReadWrite => CachePolicy::default(),
            Preset::ClientsBypassing => CachePolicy {
                attr_verify: Duration::from_secs(3),
                dir_verify: Duration::from_secs(3),
                negative_lookups: false,
            },
        }
    }
}

impl Policy {
    /// The namespace root's cache policy: the preset's, with the overrides.
    pub(super) fn cache_policy(&self) -> anyhow::Result<CachePolicy> {
        if self.preset == Preset::ReadWrite {
            bail!(
                "policy.preset = \"read-write\": write-behind is not available in this build yet \
                 (writes go straight to the core filer); use \"read-only\" or \"clients-bypassing\""
            );
        }
        Ok(with_overrides(
            self.preset.policy(),
            self.attr_verify,
            self.dir_verify,
            self.negative_lookups,
        ))
    }
}

/// `base` with whichever of the overrides are set.
pub(super) fn with_overrides(
    mut base: CachePolicy,
    attr_verify: Option<HumanDuration>,
    dir_verify: Option<HumanDuration>,
    negative_lookups: Option<bool>,
) -> CachePolicy {
    if let Some(d) = attr_verify {
        base.attr_verify = d.0;
    }
    if let Some(d) = dir_verify {
        base.dir_verify = d.0;
    }
    if let Some(b) = negative_lookups {
        base.negative_lookups = b;
    }
    base
}
