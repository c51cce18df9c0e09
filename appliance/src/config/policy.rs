//! `[policy]`: how long the namespace root's cached metadata is trusted, as a
//! preset with overrides; junctions take the same presets and overrides.

use std::time::Duration;

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
    /// Overrides how long a file written under "read-write" stays quiet
    /// before it is written back.
    pub writeback_delay: Option<HumanDuration>,
}

/// Cache policy presets, named as the field names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Reads are cached; writes go straight to the core filer.
    #[default]
    ReadOnly,
    /// Write-behind: writes are answered once durable in the journal and
    /// written back after `writeback_delay`.
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
            Preset::ReadOnly => CachePolicy::default(),
            Preset::ReadWrite => CachePolicy {
                writeback_delay: Some(DEFAULT_WRITEBACK_DELAY),
                ..CachePolicy::default()
            },
            Preset::ClientsBypassing => CachePolicy {
                attr_verify: Duration::from_secs(3),
                dir_verify: Duration::from_secs(3),
                negative_lookups: false,
                writeback_delay: None,
            },
        }
    }
}

impl Policy {
    /// The namespace root's cache policy: the preset's, with the overrides.
    pub(super) fn cache_policy(&self) -> anyhow::Result<CachePolicy> {
        let o = Overrides {
            attr_verify: self.attr_verify,
            dir_verify: self.dir_verify,
            negative_lookups: self.negative_lookups,
            writeback_delay: self.writeback_delay,
        };
        with_overrides(self.preset.policy(), &o).map_err(|e| anyhow::anyhow!("policy.{e}"))
    }
}

/// How long a file written under "read-write" stays quiet before it is
/// written back, unless the policy says otherwise.
pub const DEFAULT_WRITEBACK_DELAY: Duration = Duration::from_secs(30);

/// A preset's values that a policy or a junction overrides.
pub(super) struct Overrides {
    pub attr_verify: Option<HumanDuration>,
    pub dir_verify: Option<HumanDuration>,
    pub negative_lookups: Option<bool>,
    pub writeback_delay: Option<HumanDuration>,
}

/// `base` with whichever of the overrides are set; an error names the key.
pub(super) fn with_overrides(mut base: CachePolicy, o: &Overrides) -> Result<CachePolicy, String> {
    if let Some(d) = o.attr_verify {
        base.attr_verify = d.0;
    }
    if let Some(d) = o.dir_verify {
        base.dir_verify = d.0;
    }
    if let Some(b) = o.negative_lookups {
        base.negative_lookups = b;
    }
    if let Some(d) = o.writeback_delay {
        if base.writeback_delay.is_none() {
            return Err(format!(
                "writeback_delay = \"{d}\": only the \"read-write\" preset writes behind"
            ));
        }
        if d.0 > Duration::from_secs(24 * 3600) {
            return Err(format!("writeback_delay = \"{d}\": at most 24h"));
        }
        base.writeback_delay = Some(d.0);
    }
    Ok(base)
}
