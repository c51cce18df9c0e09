//! Sans-IO SMB2/3 protocol pieces for Weir's SMB front end: PDU codecs and
//! the packet-level crypto (key derivation, signing, sealing, pre-auth
//! integrity).
//!
//! It must do no I/O and keep no connection state beyond what a caller hands
//! it, and no input from the wire may make it panic.

pub mod crypto;
