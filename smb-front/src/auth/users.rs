//! Local SMB users (name, NT hash, POSIX ids).

use std::collections::HashMap;

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
}
