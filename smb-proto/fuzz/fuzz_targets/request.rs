//! Arbitrary bytes through the frame reader (first byte: chunk size), the
//! compound walker, the header and every request decoder, and the create
//! context, security descriptor and set-info decoders.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smb_proto::decode_all::decode_all(data);
});
