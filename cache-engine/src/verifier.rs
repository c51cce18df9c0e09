//! The NFS write verifier: a value that changes whenever writes the server
//! acknowledged as unstable may have been lost, so clients send them again.
//!
//! Random at every start, unless every mount writes behind: then nothing is
//! acknowledged that the journal does not hold, a clean replay loses
//! nothing, and the verifier is kept (in the state directory) so that
//! clients do not resend what Weir still has. A journal that lost
//! acknowledged records picks a new one.

use std::io::{self, Write};
use std::path::Path;

const FILE: &str = "write.verifier";

/// The verifier this start answers with.
pub fn at_start(state_dir: &Path, all_behind: bool) -> io::Result<u64> {
    if !all_behind {
        return Ok(rand::random());
    }
    match std::fs::read(state_dir.join(FILE)) {
        Ok(b) if b.len() == 8 => Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
        Ok(_) | Err(_) => renew(state_dir),
    }
}

/// A new verifier, kept for the next start.
pub fn renew(state_dir: &Path) -> io::Result<u64> {
    let v: u64 = rand::random();
    let tmp = state_dir.join(format!("{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&v.to_le_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, state_dir.join(FILE))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_only_when_everything_writes_behind() {
        let dir = tempfile::tempdir().unwrap();
        let a = at_start(dir.path(), true).unwrap();
        assert_eq!(at_start(dir.path(), true).unwrap(), a);
        assert_ne!(at_start(dir.path(), false).unwrap(), a);
        let b = renew(dir.path()).unwrap();
        assert_ne!(a, b);
        assert_eq!(at_start(dir.path(), true).unwrap(), b);
    }
}
