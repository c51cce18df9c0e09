//! Reading the config file, with errors that point at the line, and putting
//! the `weir serve` flags on top.

use std::path::Path;

use anyhow::{anyhow, Context};

use super::{Config, ServeFlags};

/// Read and parse a config file. Errors name the file and the line.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Parse config text; the error is one line with the line number and text.
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| describe_toml_error(text, &e))
}

fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let Some(start) = e.span().map(|s| s.start) else {
        return msg;
    };
    let before = text.get(..start).unwrap_or(text);
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    format!("line {line_no}, column {column}: {msg} (in `{line}`)")
}

impl Config {
    /// Load `flags.config` if given, then apply the flags on top.
    pub fn from_flags(flags: &ServeFlags) -> anyhow::Result<Config> {
        let mut cfg = match &flags.config {
            Some(path) => load(path)?,
            None => Config::default(),
        };
        cfg.apply(flags)?;
        Ok(cfg)
    }
}
