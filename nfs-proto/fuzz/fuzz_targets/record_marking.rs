//! Record marking in arbitrary chunkings (first byte: chunk size).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfs_proto::record::RecordReader;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let mut r = RecordReader::new(1 << 16);
    for chunk in rest.chunks(usize::from(step).max(1)) {
        r.buffer().extend_from_slice(chunk);
        loop {
            match r.next_record() {
                Ok(Some(rec)) => assert!(rec.len() <= 1 << 16),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
