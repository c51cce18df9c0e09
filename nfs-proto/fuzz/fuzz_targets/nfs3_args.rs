//! NFSv3 arguments of every procedure (first byte picks it), and the
//! results of the same procedure for the client side.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&p, rest)) = data.split_first() else {
        return;
    };
    let body = bytes::Bytes::copy_from_slice(rest);
    let proc_ = u32::from(p % 22);
    let _ = nfs_proto::decode_args(nfs_proto::nfs3::PROGRAM, 3, proc_, body.clone());
    let _ = nfs_proto::decode_nfs3_res(proc_, body);
});
