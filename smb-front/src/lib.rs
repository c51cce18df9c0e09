//! The SMB2/3 server front end: maps the protocol (MS-SMB2) onto the cache
//! engine, with NTLMv2-over-SPNEGO authentication, signing and encryption.
//!
//! It must not hold file data of its own nor talk to core filers directly:
//! everything goes through the cache engine. No client input may make it
//! panic.

pub mod auth;
pub mod config;
pub mod lease;
