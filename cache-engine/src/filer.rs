//! The core filer API the engine runs on, re-exported from [`core_filer`] so
//! that front ends and the appliance name it through the engine. Back ends
//! other than `local` are taken from `core_filer` itself.

pub use core_filer::{counting, identity};
pub use core_filer::{CoreFiler, FilerCreated, FilerDirEntryPlus, FilerRead, FilerWrite};

#[cfg(feature = "local")]
pub use core_filer::local;
