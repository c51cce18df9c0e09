//! `[core_filers.NAME]` and `[[junctions]]`: further core filers (or their
//! directories) joined into the namespace, each with its own cache policy.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail};
use cache_engine::{CachePolicy, JunctionSpec};
use serde::{Deserialize, Serialize};

use super::policy::{with_overrides, Overrides, Preset};
use crate::filer_url::CoreFilerUrl;
use crate::units::HumanDuration;

/// A core filer other than the namespace root, named for junctions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedFiler {
    pub url: String,
}

/// A core filer directory joined into the namespace at `path`, with its own
/// cache policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Junction {
    /// Absolute path in the namespace, e.g. "/projects".
    pub path: String,
    /// Name of a [core_filers.NAME] table.
    pub core_filer: String,
    /// Directory of that core filer; its root when unset.
    #[serde(default)]
    pub subdir: Option<String>,
    /// Preset; the [policy] of the namespace root when unset.
    #[serde(default)]
    pub policy: Option<Preset>,
    #[serde(default)]
    pub attr_verify: Option<HumanDuration>,
    #[serde(default)]
    pub dir_verify: Option<HumanDuration>,
    #[serde(default)]
    pub negative_lookups: Option<bool>,
    /// Overrides the preset's write-back delay (read-write only).
    pub writeback_delay: Option<HumanDuration>,
}

/// One mount of the namespace as `weir serve` opens it.
#[derive(Debug, Clone)]
pub struct MountSettings {
    /// The [core_filers] name, or "" for the namespace root.
    pub name: String,
    pub url: CoreFilerUrl,
    pub subdir: String,
    pub policy: CachePolicy,
}

/// Check the junctions and the core filers they name; `root` is the
/// namespace root's policy, which a junction without a preset starts from.
/// Returns the mounts other than the root, in junction order, and where each
/// joins the namespace (mount i + 1).
pub(super) fn mounts(
    core_filers: &BTreeMap<String, NamedFiler>,
    junctions: &[Junction],
    root: &CachePolicy,
) -> anyhow::Result<(Vec<MountSettings>, Vec<JunctionSpec>)> {
    let mut urls = BTreeMap::new();
    for (name, f) in core_filers {
        let url: CoreFilerUrl = f
            .url
            .parse()
            .map_err(|e| anyhow!("core_filers.{name}.url: {e}"))?;
        if !url.available() {
            bail!(
                "core_filers.{name}.url: the `{}` core filer is not available in this build yet",
                url.kind()
            );
        }
        urls.insert(name.as_str(), url);
    }
    let (mut mounts, mut specs) = (Vec::new(), Vec::new());
    let mut paths = BTreeSet::new();
    for (i, j) in junctions.iter().enumerate() {
        let at = |why: String| anyhow!("junctions[{i}] (path {:?}): {why}", j.path);
        let comps = cache_engine::junction::components(&j.path).map_err(at)?;
        if comps.is_empty() {
            return Err(at(
                "the root is [core_filer]'s; a junction needs a path below it".into()
            ));
        }
        let path = format!("/{}", comps.join("/"));
        if !paths.insert(path.clone()) {
            return Err(at("another junction has the same path".into()));
        }
        let url = urls.get(j.core_filer.as_str()).ok_or_else(|| {
            at(format!(
                "core_filer = {:?}: no [core_filers.{}] table",
                j.core_filer, j.core_filer
            ))
        })?;
        let subdir = j.subdir.as_deref().unwrap_or("/");
        let subdir = cache_engine::junction::components(subdir)
            .map_err(|e| at(format!("subdir: {e}")))?
            .join("/");
        let o = Overrides {
            attr_verify: j.attr_verify,
            dir_verify: j.dir_verify,
            negative_lookups: j.negative_lookups,
            writeback_delay: j.writeback_delay,
        };
        let policy = with_overrides(j.policy.map_or_else(|| root.clone(), Preset::policy), &o).map_err(at)?;
        mounts.push(MountSettings {
            name: j.core_filer.clone(),
            url: url.clone(),
            subdir: format!("/{subdir}"),
            policy,
        });
        specs.push(JunctionSpec {
            path,
            mount: mounts.len(),
        });
    }
    Ok((mounts, specs))
}
