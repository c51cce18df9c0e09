//! Local SMB users (name, NT hash, POSIX ids) and a per-client throttle for
//! failed logons.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use md4::{Digest, Md4};

/// One user who may log on with NTLM.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The name as configured; logons match it case-insensitively.
    pub name: String,
    /// MD4(UTF-16LE(password)): all NTLM needs, so no password is kept.
    pub nt_hash: [u8; 16],
    pub uid: u32,
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// The NT hash of a password: MD4 over its UTF-16LE encoding.
pub fn nt_hash(password: &str) -> [u8; 16] {
    let mut h = Md4::new();
    for unit in password.encode_utf16() {
        h.update(unit.to_le_bytes());
    }
    h.finalize().into()
}

/// An NT hash given as 32 hex digits was not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadNtHash;

impl std::fmt::Display for BadNtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an NT hash is 32 hexadecimal digits")
    }
}

impl std::error::Error for BadNtHash {}

/// Parses an NT hash written as 32 hex digits (either case).
pub fn parse_nt_hash(s: &str) -> Result<[u8; 16], BadNtHash> {
    let s = s.trim().as_bytes();
    if s.len() != 32 {
        return Err(BadNtHash);
    }
    let digit = |c: u8| -> Result<u8, BadNtHash> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(BadNtHash),
        }
    };
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

/// Formats an NT hash as 32 lowercase hex digits.
pub fn format_nt_hash(hash: &[u8; 16]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The users of one server, looked up by name case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    users: HashMap<String, User>,
    guest: Option<User>,
}

fn key(name: &str) -> String {
    name.to_lowercase()
}

impl UserDb {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a user (names differing only in case are one user).
    pub fn insert(&mut self, user: User) {
        self.users.insert(key(&user.name), user);
    }

    /// Adds a user with a password, hashing it.
    pub fn insert_password(&mut self, name: &str, password: &str, uid: u32, gid: u32) {
        self.insert(User {
            name: name.to_string(),
            nt_hash: nt_hash(password),
            uid,
            gid,
            groups: Vec::new(),
        });
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(&key(name))
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The account anonymous (and, if the server allows it, guest) sessions
    /// map to; `None` means the server refuses them. The acceptor only
    /// reports an anonymous logon; the caller decides with this.
    pub fn guest(&self) -> Option<&User> {
        self.guest.as_ref()
    }

    pub fn set_guest(&mut self, guest: Option<User>) {
        self.guest = guest;
    }
}

/// Slows down password guessing: after consecutive failed logons from one
/// client address, the next attempt is delayed exponentially (base, 2×base,
/// 4×base, … capped). A success resets the address. Time is passed in, so
/// the throttle is deterministic to test.
#[derive(Debug)]
pub struct LogonThrottle {
    base: Duration,
    cap: Duration,
    /// Entries whose last failure is older than this are forgotten.
    forget_after: Duration,
    max_entries: usize,
    clients: HashMap<IpAddr, Failures>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Default for LogonThrottle {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(4))
    }
}

impl LogonThrottle {
    /// A throttle whose first delay is `base` and whose delays never exceed
    /// `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            forget_after: Duration::from_secs(15 * 60),
            max_entries: 65_536,
            clients: HashMap::new(),
        }
    }

    /// The full delay owed after `count` consecutive failures.
    fn penalty(&self, count: u32) -> Duration {
        if count == 0 {
            return Duration::ZERO;
        }
        let shift = (count - 1).min(31);
        self.base.saturating_mul(1u32 << shift).min(self.cap)
    }

    /// How long `client` must still wait at `now` before its next logon is
    /// processed (zero when it may go ahead).
    pub fn delay(&self, client: IpAddr, now: Instant) -> Duration {
        match self.clients.get(&client) {
            Some(f) => (f.last + self.penalty(f.count)).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    /// Records a failed logon from `client` at `now`.
    pub fn record_failure(&mut self, client: IpAddr, now: Instant) {
        if self.clients.len() >= self.max_entries && !self.clients.contains_key(&client) {
            self.prune(now);
        }
        let e = self
            .clients
            .entry(client)
            .or_insert(Failures { count: 0, last: now });
        e.count = e.count.saturating_add(1);
        e.last = now;
    }

    /// Records a successful logon from `client`: its failures are forgiven.
    pub fn record_success(&mut self, client: IpAddr) {
        self.clients.remove(&client);
    }

    /// Drops clients whose last failure is long past; if the table is still
    /// full, the oldest entries go.
    pub fn prune(&mut self, now: Instant) {
        let forget = self.forget_after;
        self.clients
            .retain(|_, f| now.saturating_duration_since(f.last) < forget);
        if self.clients.len() >= self.max_entries {
            let mut by_age: Vec<_> = self.clients.iter().map(|(ip, f)| (f.last, *ip)).collect();
            by_age.sort_unstable();
            let excess = self.clients.len() + 1 - self.max_entries;
            for (_, ip) in by_age.into_iter().take(excess) {
                self.clients.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nt_hash_of_password() {
        // MS-NLMP 4.2.2.1.2 NTOWFv1("Password").
        assert_eq!(
            format_nt_hash(&nt_hash("Password")),
            "a4f49c406510bdcab6824ee7c30fd852"
        );
        assert_eq!(
            parse_nt_hash("A4F49C406510BDCAB6824EE7C30FD852").unwrap(),
            nt_hash("Password")
        );
        assert_eq!(parse_nt_hash("a4f49c"), Err(BadNtHash));
        assert_eq!(parse_nt_hash(&"zz".repeat(16)), Err(BadNtHash));
        assert_eq!(parse_nt_hash("é".repeat(16).as_str()), Err(BadNtHash));
    }

    #[test]
    fn names_are_case_insensitive() {
        let mut db = UserDb::new();
        db.insert_password("Render", "pw", 1000, 100);
        assert_eq!(db.get("RENDER").unwrap().uid, 1000);
        assert_eq!(db.get("render").unwrap().name, "Render");
        assert!(db.get("other").is_none());
        db.insert_password("RENDER", "pw2", 1001, 100);
        assert_eq!(db.len(), 1);
        assert_eq!(db.get("render").unwrap().uid, 1001);
    }

    #[test]
    fn throttle_backs_off_and_resets() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let mut t = LogonThrottle::new(Duration::from_millis(100), Duration::from_secs(2));
        let t0 = Instant::now();
        assert_eq!(t.delay(ip, t0), Duration::ZERO);
        t.record_failure(ip, t0);
        assert_eq!(t.delay(ip, t0), Duration::from_millis(100));
        assert_eq!(
            t.delay(ip, t0 + Duration::from_millis(40)),
            Duration::from_millis(60)
        );
        t.record_failure(ip, t0);
        assert_eq!(t.delay(ip, t0), Duration::from_millis(200));
        for _ in 0..40 {
            t.record_failure(ip, t0);
        }
        assert_eq!(t.delay(ip, t0), Duration::from_secs(2));
        assert_eq!(t.delay(ip, t0 + Duration::from_secs(3)), Duration::ZERO);
        assert_eq!(t.delay(other, t0), Duration::ZERO);
        t.record_success(ip);
        assert_eq!(t.delay(ip, t0), Duration::ZERO);
    }

    #[test]
    fn throttle_forgets_old_clients() {
        let mut t = LogonThrottle::default();
        let t0 = Instant::now();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        t.record_failure(ip, t0);
        t.prune(t0 + Duration::from_secs(3600));
        assert!(t.clients.is_empty());
    }
}
