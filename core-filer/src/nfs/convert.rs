//! What the `nfs` core filer's procedures share around NFSv3's types: a
//! reply's result as ours, directory arguments. The conversions between
//! NFSv3's types and ours are in [`crate::nfs3`].

use super::*;

pub(super) use crate::nfs3::{attr, sattr, stability, stable_how};

pub(super) fn ok<T, F>(r: NfsResult<T, F>) -> Result<T> {
    match r {
        NfsResult::Ok(v) => Ok(v),
        NfsResult::Err(s, _) => Err(crate::nfs3::error(s)),
    }
}

pub(super) fn dirop(dir: NfsFh3, name: &[u8]) -> DirOpArgs3 {
    DirOpArgs3 {
        dir,
        name: Opaque::new(Bytes::copy_from_slice(name)),
    }
}
