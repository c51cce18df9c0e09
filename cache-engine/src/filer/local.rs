//! The `local` core filer: a directory on this machine.
