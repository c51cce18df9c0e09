//! Which file each lease key of one client names (MS-SMB2 3.3.1.11
//! LeaseTable): a key stays bound to one file while the lease lives.

use std::collections::HashMap;

use smb_proto::status::NtStatus;

use super::LeaseKey;

/// The lease keys of one client (ClientGuid) and the file each names; `F`
/// is whatever the server identifies files by (handle, path).
#[derive(Debug, Clone)]
pub struct LeaseTable<F> {
    keys: HashMap<LeaseKey, F>,
}

impl<F> Default for LeaseTable<F> {
    fn default() -> Self {
        LeaseTable { keys: HashMap::new() }
    }
}

impl<F: PartialEq> LeaseTable<F> {
    /// A CREATE asks for a lease with `key` on `file`: refused with
    /// STATUS_INVALID_PARAMETER when the key is bound to another file
    /// (MS-SMB2 3.3.5.9.8).
    pub fn claim(&mut self, key: LeaseKey, file: F) -> Result<(), NtStatus> {
        match self.keys.get(&key) {
            Some(f) if *f != file => Err(NtStatus::INVALID_PARAMETER),
            Some(_) => Ok(()),
            None => {
                self.keys.insert(key, file);
                Ok(())
            }
        }
    }

    /// The lease of `key` ended: [`super::FileLeases::close`] said so, or
    /// the CREATE that claimed it failed and the file holds no such lease.
    pub fn release(&mut self, key: &LeaseKey) {
        self.keys.remove(key);
    }

    /// The file a lease acknowledgment's key names (none:
    /// STATUS_OBJECT_NAME_NOT_FOUND).
    pub fn file_of(&self, key: &LeaseKey) -> Option<&F> {
        self.keys.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_one_file_until_released() {
        let mut t = LeaseTable::default();
        t.claim([1; 16], "a").unwrap();
        t.claim([1; 16], "a").unwrap();
        assert_eq!(t.claim([1; 16], "b"), Err(NtStatus::INVALID_PARAMETER));
        t.claim([2; 16], "b").unwrap();
        assert_eq!(t.file_of(&[1; 16]), Some(&"a"));
        t.release(&[1; 16]);
        assert_eq!(t.file_of(&[1; 16]), None);
        t.claim([1; 16], "b").unwrap();
        t.release(&[1; 16]);
        t.release(&[2; 16]);
        // Releasing an unknown key is harmless.
        t.release(&[3; 16]);
        assert!(t.is_empty());
    }
}
