//! Exports at run time: client matching, access, squashing, and the export
//! tag carried in the file handles given to clients.

use std::net::{IpAddr, SocketAddr};

use cache_engine::types::Credentials;
use cache_engine::{Engine, FileHandle};

use crate::config::{Access, ExportConfig, RuleConfig, Squash};

/// Exports are told apart by a handle tag (0 to MAX_TAG).
pub const MAX_EXPORTS: usize = cache_engine::MAX_TAG as usize + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSpec {
    Any,
    Net { addr: IpAddr, prefix: u8 },
}

impl ClientSpec {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(ClientSpec::Any);
        }
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}` is not an address, a CIDR or \"*\""))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(ClientSpec::Net { addr, prefix })
    }

    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match *self {
            ClientSpec::Any => true,
            ClientSpec::Net { addr, prefix } => match (canonical(addr), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
                    u32::from(n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = u128::MAX.checked_shl(128 - prefix as u32).unwrap_or(0);
                    u128::from(n) & mask == u128::from(a) & mask
                }
                _ => false,
            },
        }
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub clients: Vec<ClientSpec>,
    pub cfg: RuleConfig,
}

#[derive(Debug, Clone)]
pub struct Export {
    pub path: String,
    pub subdir: String,
    pub rules: Vec<Rule>,
    /// Engine handle of the exported directory.
    pub root: FileHandle,
}

impl Export {
    /// The rule for a caller at `peer`, if any admits it.
    pub fn rule_for(&self, peer: SocketAddr) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.clients.iter().any(|c| c.matches(peer.ip())))
    }
}

/// Check the export list; the engine handles of the roots come later.
pub fn parse(cfgs: &[ExportConfig]) -> Result<Vec<(String, String, Vec<Rule>)>, String> {
    if cfgs.len() > MAX_EXPORTS {
        return Err(format!("at most {MAX_EXPORTS} exports"));
    }
    let mut out: Vec<(String, String, Vec<Rule>)> = Vec::new();
    for e in cfgs {
        let path = normalize(&e.path).ok_or_else(|| format!("export path `{}` must be absolute", e.path))?;
        if out.iter().any(|(p, _, _)| *p == path) {
            return Err(format!("export path `{path}` is listed twice"));
        }
        let subdir = normalize(&e.subdir)
            .ok_or_else(|| format!("export {path}: subdir `{}` must be absolute", e.subdir))?;
        if subdir.split('/').any(|c| c == "..") {
            return Err(format!("export {path}: subdir `{subdir}` must not contain `..`"));
        }
        if e.rules.is_empty() {
            return Err(format!(
                "export {path}: no [[exports.rules]], so no client could mount it"
            ));
        }
        let mut rules = Vec::new();
        for r in &e.rules {
            if r.clients.is_empty() {
                return Err(format!("export {path}: a rule has an empty `clients` list"));
            }
            let clients = r
                .clients
                .iter()
                .map(|c| ClientSpec::parse(c).map_err(|m| format!("export {path}: {m}")))
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(Rule {
                clients,
                cfg: r.clone(),
            });
        }
        out.push((path, subdir, rules));
    }
    Ok(out)
}

/// Of `exports` (their paths), the one whose path is `path` or its closest
/// parent, and the rest of `path` below it. `path` is normalized.
pub fn find<'p, 'e>(exports: impl IntoIterator<Item = &'e str>, path: &'p str) -> Option<(usize, &'p str)> {
    exports
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let rest = path.strip_prefix(e)?;
            (e == "/" || rest.is_empty() || rest.starts_with('/')).then_some((i, e.len(), rest))
        })
        .max_by_key(|&(_, len, _)| len)
        .map(|(i, _, rest)| (i, rest))
}

/// "/a//b/" -> "/a/b"; None unless absolute.
pub fn normalize(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    Some(format!("/{}", parts.join("/")))
}

/// Handle on the wire: the engine's handle with the export index as its
/// tag, under the handle's MAC, so a client cannot move it to another export.
/// A handle the engine already tagged for `export` (what LOOKUP and
/// READDIRPLUS give back under a tagged directory) goes out as it is.
pub fn wire_handle(
    engine: &Engine,
    export: usize,
    fh: &FileHandle,
) -> Result<bytes::Bytes, cache_engine::Error> {
    let tag = u8::try_from(export).map_err(|_| cache_engine::Error::ServerFault)?;
    if fh.tag_hint() == Some(Some(tag)) {
        return Ok(bytes::Bytes::copy_from_slice(fh.as_bytes()));
    }
    Ok(bytes::Bytes::copy_from_slice(engine.tag(fh, tag)?.as_bytes()))
}

/// The export a wire handle says it belongs to, read without verifying it:
/// the handle goes to the engine as it is, and the engine verifies it, tag
/// included, before the call has any effect, so one MAC per call suffices.
/// An untagged handle is taken for the only export, and refused when there
/// are several, since it does not say which.
pub fn export_of(exports: usize, wire: &FileHandle) -> Result<usize, cache_engine::Error> {
    match wire
        .tag_hint()
        .ok_or(cache_engine::Error::BadHandle)?
        .map(usize::from)
    {
        Some(i) if i < exports => Ok(i),
        None if exports == 1 => Ok(0),
        _ => Err(cache_engine::Error::BadHandle),
    }
}

/// The identity a call runs with, after squashing.
pub fn squash(rule: &RuleConfig, uid: u32, gid: u32, gids: Vec<u32>) -> Credentials {
    let anon = Credentials {
        uid: rule.anonuid,
        gid: rule.anongid,
        gids: Vec::new(),
        origin: 0,
    };
    match rule.squash {
        Squash::All => anon,
        Squash::Root => Credentials {
            uid: if uid == 0 { rule.anonuid } else { uid },
            gid: if gid == 0 { rule.anongid } else { gid },
            gids: gids
                .into_iter()
                .map(|g| if g == 0 { rule.anongid } else { g })
                .collect(),
            origin: 0,
        },
        Squash::None => Credentials {
            uid,
            gid,
            gids,
            origin: 0,
        },
    }
}

pub fn writable(rule: &RuleConfig) -> bool {
    rule.access == Access::Rw
}

/// The groups of `uid` from the local user database (for `manage_gids`),
/// cached per thread for a minute; None when the user is unknown.
pub fn local_groups(uid: u32, gid: u32) -> Option<Vec<u32>> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};
    /// (uid, gid) -> when looked up, and the groups found.
    type Cache = HashMap<(u32, u32), (Instant, Option<Vec<u32>>)>;
    thread_local! {
        static CACHE: RefCell<Cache> = RefCell::new(HashMap::new());
    }
    let now = Instant::now();
    if let Some(hit) = CACHE.with(|c| {
        c.borrow()
            .get(&(uid, gid))
            .filter(|(t, _)| now.duration_since(*t) < Duration::from_secs(60))
            .map(|(_, g)| g.clone())
    }) {
        return hit;
    }
    let found = lookup_groups(uid, gid);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 4096 {
            c.clear();
        }
        c.insert((uid, gid), (now, found.clone()));
    });
    found
}

fn lookup_groups(uid: u32, gid: u32) -> Option<Vec<u32>> {
    let mut pw: libc::passwd = unsafe_zeroed_passwd();
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the size passed with it;
    // getpwuid_r writes only within them.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    let mut n: libc::c_int = 256;
    let mut groups = vec![0 as libc::gid_t; n as usize];
    // SAFETY: pw_name points into `buf`, a NUL-terminated name getpwuid_r
    // filled; `groups` has room for `n` entries, and getgrouplist writes at
    // most that many and stores the real count in `n`.
    let rc = unsafe { libc::getgrouplist(pw.pw_name, gid, groups.as_mut_ptr(), &mut n) };
    if rc < 0 {
        return None;
    }
    groups.truncate(n.max(0) as usize);
    Some(groups)
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: libc::passwd is plain data (integers and raw pointers), for
    // which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_specs() {
        let net = ClientSpec::parse("10.1.0.0/16").unwrap();
        assert!(net.matches("10.1.2.3".parse().unwrap()));
        assert!(!net.matches("10.2.0.1".parse().unwrap()));
        assert!(net.matches("::ffff:10.1.9.9".parse().unwrap()));
        let one = ClientSpec::parse("192.0.2.7").unwrap();
        assert!(one.matches("192.0.2.7".parse().unwrap()));
        assert!(!one.matches("192.0.2.8".parse().unwrap()));
        assert!(ClientSpec::parse("*").unwrap().matches("::1".parse().unwrap()));
        assert!(ClientSpec::parse("0.0.0.0/0")
            .unwrap()
            .matches("1.2.3.4".parse().unwrap()));
        assert!(ClientSpec::parse("::1").unwrap().matches("::1".parse().unwrap()));
        assert!(ClientSpec::parse("10.0.0.0/33").is_err());
        assert!(ClientSpec::parse("host.example").is_err());
    }

    #[test]
    fn squashing() {
        let mut r = RuleConfig::new(&["*"], Access::Rw, Squash::Root);
        r.anonuid = 99;
        r.anongid = 98;
        let c = squash(&r, 0, 0, vec![0, 5]);
        assert_eq!((c.uid, c.gid, c.gids), (99, 98, vec![98, 5]));
        let c = squash(&r, 7, 8, vec![9]);
        assert_eq!((c.uid, c.gid), (7, 8));
        r.squash = Squash::All;
        assert_eq!(squash(&r, 7, 8, vec![9]).uid, 99);
        r.squash = Squash::None;
        assert_eq!(squash(&r, 0, 0, vec![]).uid, 0);
    }

    #[test]
    fn export_checks() {
        assert_eq!(normalize("/a//b/./").unwrap(), "/a/b");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("a").is_none());
        let mut e = ExportConfig::embedded_default();
        assert_eq!(parse(&e).unwrap().len(), 1);
        e.push(e[0].clone());
        assert!(parse(&e).unwrap_err().contains("twice"));
        e[1].path = "/b".into();
        e[1].subdir = "/x/../..".into();
        assert!(parse(&e).unwrap_err().contains(".."));
    }

    #[test]
    fn paths_find_their_closest_export() {
        let ex = ["/export", "/export/shots", "/scratch"];
        assert_eq!(find(ex, "/export"), Some((0, "")));
        assert_eq!(find(ex, "/export/a/b"), Some((0, "/a/b")));
        assert_eq!(find(ex, "/export/shots/010"), Some((1, "/010")));
        assert_eq!(find(ex, "/exportx"), None);
        assert_eq!(find(ex, "/"), None);
        assert_eq!(find(["/"], "/a"), Some((0, "a")));
    }

    #[test]
    fn root_has_groups() {
        assert!(local_groups(0, 0).is_some_and(|g| g.contains(&0)));
    }
}
