//! Core filer URLs: which back end Weir caches, and where it is.
//!
//! `file://PATH` (a local directory) and
//! `nfs://host[:port]/export[?mountport=N&connections=N]` (an NFSv3 NAS) work
//! today. `s3://bucket/prefix` and `gcs://bucket/prefix` are parsed and
//! checked so a config written for them is ready, but this build cannot serve
//! them yet.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreFilerUrl {
    /// A directory on this machine (`file:///srv/origin`, `file://./origin`).
    Local(PathBuf),
    /// An NFSv3 export.
    Nfs {
        host: String,
        port: u16,
        path: String,
        /// MOUNT service port (`?mountport=N`); `None` asks the portmapper.
        mount_port: Option<u16>,
        /// TCP connections per shard (`?connections=N`); `None` is the default.
        connections: Option<usize>,
    },
    S3 {
        bucket: String,
        prefix: String,
    },
    Gcs {
        bucket: String,
        prefix: String,
    },
}

pub const NFS_DEFAULT_PORT: u16 = 2049;
/// Most TCP connections per shard an `nfs://` URL may ask for.
const MAX_CONNECTIONS: u64 = 64;

impl CoreFilerUrl {
    /// The core filer kind as the docs and metrics name it.
    pub fn kind(&self) -> &'static str {
        match self {
            CoreFilerUrl::Local(_) => "local",
            CoreFilerUrl::Nfs { .. } => "nfs",
            CoreFilerUrl::S3 { .. } => "s3",
            CoreFilerUrl::Gcs { .. } => "gcs",
        }
    }

    /// Whether this build has an implementation of the kind.
    pub fn available(&self) -> bool {
        matches!(self, CoreFilerUrl::Local(_) | CoreFilerUrl::Nfs { .. })
    }
}

impl FromStr for CoreFilerUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid core filer URL `{url}`: {why}");
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(
                "expected file:///dir, nfs://host[:port]/path, s3://bucket/prefix or gcs://bucket/prefix",
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                if rest.is_empty() {
                    return Err(bad("no directory given (file:///srv/origin, file://./origin)"));
                }
                Ok(CoreFilerUrl::Local(PathBuf::from(rest)))
            }
            "nfs" => {
                let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
                let (authority, path) = match rest.find('/') {
                    Some(i) => rest.split_at(i),
                    None => return Err(bad("no export path (nfs://host/export)")),
                };
                let (host, port) = split_host_port(authority).map_err(|e| bad(&e))?;
                if path.contains('\0') {
                    return Err(bad("export path contains NUL"));
                }
                let (mut mount_port, mut connections) = (None, None);
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let number = |max: u64| {
                        value
                            .parse::<u64>()
                            .ok()
                            .filter(|&n| n > 0 && n <= max)
                            .ok_or_else(|| {
                                bad(&format!("`{key}={value}`: expected a number from 1 to {max}"))
                            })
                    };
                    match key {
                        "mountport" => mount_port = Some(number(u16::MAX.into())? as u16),
                        "connections" => connections = Some(number(MAX_CONNECTIONS)? as usize),
                        other => {
                            return Err(bad(&format!(
                                "unknown option `{other}` (known: mountport, connections)"
                            )))
                        }
                    }
                }
                Ok(CoreFilerUrl::Nfs {
                    host,
                    port: port.unwrap_or(NFS_DEFAULT_PORT),
                    path: path.to_string(),
                    mount_port,
                    connections,
                })
            }
            kind @ ("s3" | "gcs") => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                check_bucket(bucket).map_err(|e| bad(&e))?;
                let (bucket, prefix) = (bucket.to_string(), prefix.trim_matches('/').to_string());
                Ok(if kind == "s3" {
                    CoreFilerUrl::S3 { bucket, prefix }
                } else {
                    CoreFilerUrl::Gcs { bucket, prefix }
                })
            }
            other => Err(bad(&format!(
                "unknown scheme `{other}` (known: file, nfs, s3, gcs)"
            ))),
        }
    }
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed `[` in host")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after `]`")?),
        };
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{host}` is not an IPv6 address"))?;
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let host_ok = authority.starts_with('[')
        || host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !host_ok {
        return Err(format!("`{host}` is not a host name or address"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("`{p}` is not a port"))?,
        ),
    };
    Ok((host.to_string(), port))
}

/// The bucket naming rules S3 and GCS share: 3–63 of `a-z 0-9 . - _`,
/// starting and ending with a letter or digit (`_` is GCS only; allowed here).
fn check_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("no bucket".into());
    }
    let chars_ok = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    let ends_ok = bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !(3..=63).contains(&bucket.len()) || !chars_ok || !ends_ok {
        return Err(format!(
            "`{bucket}` is not a valid bucket name (3-63 lowercase letters, digits, `.`, `-`)"
        ));
    }
    Ok(())
}

impl fmt::Display for CoreFilerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreFilerUrl::Local(p) => write!(f, "file://{}", p.display()),
            CoreFilerUrl::Nfs {
                host,
                port,
                path,
                mount_port,
                connections,
            } => {
                if host.contains(':') {
                    write!(f, "nfs://[{host}]:{port}{path}")?;
                } else {
                    write!(f, "nfs://{host}:{port}{path}")?;
                }
                let mut sep = '?';
                for (key, value) in [
                    ("mountport", mount_port.map(usize::from)),
                    ("connections", *connections),
                ] {
                    if let Some(v) = value {
                        write!(f, "{sep}{key}={v}")?;
                        sep = '&';
                    }
                }
                Ok(())
            }
            CoreFilerUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            CoreFilerUrl::Gcs { bucket, prefix } => write!(f, "gcs://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<CoreFilerUrl, String> {
        s.parse()
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            p("file:///srv/origin"),
            Ok(CoreFilerUrl::Local("/srv/origin".into()))
        );
        assert_eq!(p("file://./origin"), Ok(CoreFilerUrl::Local("./origin".into())));
        assert!(p("file://").is_err());
    }

    #[test]
    fn nfs_urls() {
        let nfs = |host: &str, port, path: &str| CoreFilerUrl::Nfs {
            host: host.into(),
            port,
            path: path.into(),
            mount_port: None,
            connections: None,
        };
        assert_eq!(p("nfs://nas/export"), Ok(nfs("nas", 2049, "/export")));
        assert_eq!(p("nfs://10.0.0.5:20490/a/b"), Ok(nfs("10.0.0.5", 20490, "/a/b")));
        assert_eq!(p("nfs://[fd00::1]:2050/x"), Ok(nfs("fd00::1", 2050, "/x")));
        assert_eq!(p("nfs://[fd00::1]/x"), Ok(nfs("fd00::1", 2049, "/x")));
        for bad in [
            "nfs://nas",
            "nfs:///export",
            "nfs://nas:0/x",
            "nfs://nas:99999/x",
            "nfs://[zz]/x",
            "nfs://nas/x?mountport=0",
            "nfs://nas/x?mountport=70000",
            "nfs://nas/x?connections=0",
            "nfs://nas/x?connections=1000",
            "nfs://nas/x?version=3",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let with = p("nfs://127.0.0.1:2050/export?mountport=20048&connections=4").unwrap();
        assert_eq!(
            with,
            CoreFilerUrl::Nfs {
                host: "127.0.0.1".into(),
                port: 2050,
                path: "/export".into(),
                mount_port: Some(20048),
                connections: Some(4),
            }
        );
        assert_eq!(
            with.to_string(),
            "nfs://127.0.0.1:2050/export?mountport=20048&connections=4"
        );
        assert_eq!(p(&with.to_string()), Ok(with));
        assert_eq!(
            p("nfs://nas/x?connections=3").unwrap().to_string(),
            "nfs://nas:2049/x?connections=3"
        );
        assert_eq!(
            p("nfs://[fd00::1]:2050/x").unwrap().to_string(),
            "nfs://[fd00::1]:2050/x"
        );
    }

    #[test]
    fn object_store_urls() {
        assert_eq!(
            p("s3://render-assets/shots/"),
            Ok(CoreFilerUrl::S3 {
                bucket: "render-assets".into(),
                prefix: "shots".into()
            })
        );
        assert_eq!(
            p("gcs://genomes"),
            Ok(CoreFilerUrl::Gcs {
                bucket: "genomes".into(),
                prefix: "".into()
            })
        );
        for bad in [
            "s3://",
            "s3://UPPER/x",
            "s3://ab",
            "gcs://-bucket/x",
            "gcs://b*d/x",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_schemes_and_bare_paths_are_explained() {
        assert!(p("ftp://x/y").unwrap_err().contains("unknown scheme `ftp`"));
        assert!(p("/srv/origin").unwrap_err().contains("expected file:///dir"));
    }

    #[test]
    fn local_and_nfs_are_available() {
        assert!(p("file:///x").unwrap().available());
        assert!(p("nfs://nas/x").unwrap().available());
        for url in ["s3://bucket/x", "gcs://bucket/x"] {
            assert!(!p(url).unwrap().available(), "{url}");
        }
    }
}
