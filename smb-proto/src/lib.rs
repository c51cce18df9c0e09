//! Sans-IO codecs for Weir's SMB2/3 front end (MS-SMB2, with the MS-FSCC
//! information classes and MS-DTYP security descriptors it carries): the
//! direct-TCP framing, the SMB2 header, compound chains, every command's
//! request decoder and response encoder; and the packet-level crypto
//! (key derivation, signing, sealing, pre-auth integrity).
//!
//! It must do no I/O and keep no connection or session state, and no input
//! may make it panic or allocate more than the input justifies.
//! Authentication (NTLM, SPNEGO) is session logic and lives in `smb-front`.

pub mod compound;
pub mod create;
pub mod crypto;
pub mod decode_all;
pub mod dir;
pub mod error;
pub mod error_response;
pub mod fscc;
pub mod header;
pub mod info;
pub mod io;
pub mod ioctl;
pub mod negotiate;
pub mod oplock;
pub mod request;
pub mod security;
pub mod session;
pub mod simple;
pub mod status;
pub mod transport;
pub mod tree;
pub mod wire;

pub use error::DecodeError;
pub use header::{Command, Header};
pub use request::Request;
pub use status::NtStatus;
pub use wire::FileId;
