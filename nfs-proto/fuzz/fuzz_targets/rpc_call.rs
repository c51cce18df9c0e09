//! An RPC call header, its AUTH_SYS credential, then the arguments of
//! whatever program and procedure it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::{decode_call, AuthSysParams};
use nfs_proto::{Decoder, Xdr};

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new(bytes::Bytes::copy_from_slice(data));
    if let Ok(h) = decode_call(&mut d) {
        let _ = AuthSysParams::from_bytes(h.cred.body.clone());
        let _ = nfs_proto::decode_args(h.prog, h.vers, h.proc_, d.rest());
    }
});
