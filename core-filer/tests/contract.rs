//! The contract suite ([`core_filer::contract`]) against every back end:
//! `local` over a temp directory, the same through the counting wrapper, and
//! `nfs` over nfs-ganesha exporting a temp directory. One test per check and
//! back end, each on a filer of its own.

mod common;

use common::{run, Nas};
use core_filer::contract;
use core_filer::counting::CountingFiler;
use core_filer::local::LocalFiler;
use testbed::ganesha::Export;

macro_rules! contract_tests {
    ($($check:ident),* $(,)?) => {
        mod local {
            use super::*;
            $(
                #[test]
                fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let f = LocalFiler::open(dir.path()).unwrap();
                    run(contract::$check(&f));
                }
            )*
        }

        mod counting {
            use super::*;
            $(
                #[test]
                fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let f = CountingFiler::new(LocalFiler::open(dir.path()).unwrap());
                    run(contract::$check(&f));
                }
            )*
        }

        mod nfs {
            use super::*;
            $(
                #[test]
                fn $check() {
                    let nas = Export::start();
                    let f = nas.filer();
                    run(contract::$check(&f));
                }
            )*
        }
    };
}

contract_tests!(
    create_and_lookup,
    names,
    read_write_commit,
    large_files_and_offsets,
    setattr,
    readdir_paging,
    link_symlink_rename,
    remove_and_rmdir,
    wrong_kinds,
    access_for_non_owner,
);

/// Every check in a row on one filer, as a new back end would first run them.
#[test]
fn all_in_a_row_on_one_local_filer() {
    let dir = tempfile::tempdir().unwrap();
    let f = LocalFiler::open(dir.path()).unwrap();
    run(contract::all(&f));
}
