//! Random and mutated inputs through every decoder: none may panic. The
//! fuzz targets in `fuzz/` go further; this keeps the suite covering them
//! without libFuzzer.

use bytes::Bytes;
use nfs_proto::record::{frame, RecordReader};
use nfs_proto::rpc::{decode_call, decode_reply, AuthSysParams, CallHeader, OpaqueAuth};
use nfs_proto::xdr::{Encoder, List, Opaque, Xdr};
use nfs_proto::{decode_args, decode_nfs3_res, mount, nfs3, nlm, portmap, Decoder};
use rand::{Rng, SeedableRng};

const PROGRAMS: &[(u32, u32, u32)] = &[
    (nfs3::PROGRAM, nfs3::VERSION, 22),
    (mount::PROGRAM, mount::VERSION, 6),
    (portmap::PROGRAM, portmap::VERSION, 6),
    (nlm::PROGRAM, nlm::VERSION, 24),
    (nlm::nsm::PROGRAM, nlm::nsm::VERSION, 7),
];

/// Plausible seeds: real encodings of calls, so mutations reach deep arms.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut e = Encoder::new();
    e.opaque(&[7u8; 30]);
    e.opaque(b"name");
    e.u32(0);
    e.u32(1);
    e.u32(0o644);
    for _ in 0..5 {
        e.u32(0);
    }
    out.push(e.as_slice().to_vec());
    let cred = OpaqueAuth::sys(&AuthSysParams {
        stamp: 1,
        machine_name: Opaque::new(&b"host"[..]),
        uid: 0,
        gid: 0,
        gids: List(vec![1, 2]),
    });
    let h = CallHeader {
        xid: 1,
        prog: nfs3::PROGRAM,
        vers: 3,
        proc_: 7,
        cred,
        verf: OpaqueAuth::none(),
    };
    out.push(h.to_bytes().to_vec());
    let mut e = Encoder::new();
    e.opaque(b"cookie");
    e.bool(true);
    e.bool(true);
    e.opaque(b"client");
    e.opaque(&[1u8; 30]);
    e.opaque(b"oh");
    e.u32(5);
    e.u64(0);
    e.u64(100);
    e.bool(false);
    e.u32(1);
    out.push(e.as_slice().to_vec());
    out
}

fn mutate(rng: &mut impl Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..4) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            1 if !b.is_empty() => {
                let n = rng.random_range(0..b.len());
                b.truncate(n);
            }
            2 => {
                let i = rng.random_range(0..=b.len());
                b.splice(i..i, [0xff, 0xff, 0xff, 0xfc]);
            }
            _ => b.extend((0..rng.random_range(0..16)).map(|_| rng.random::<u8>())),
        }
    }
    b
}

fn all_decoders(input: &[u8]) {
    let b = Bytes::copy_from_slice(input);
    for &(prog, vers, procs) in PROGRAMS {
        for p in 0..procs {
            let _ = decode_args(prog, vers, p, b.clone());
        }
    }
    for p in 0..22 {
        let _ = decode_nfs3_res(p, b.clone());
    }
    let _ = decode_call(&mut Decoder::new(b.clone()));
    let _ = decode_reply(b.clone());
    let _ = AuthSysParams::from_bytes(b.clone());
    let _ = mount::MountRes3::from_bytes(b.clone());
    let _ = mount::Exports::from_bytes(b.clone());
    let _ = mount::MountList::from_bytes(b.clone());
    let _ = portmap::PmapList::from_bytes(b.clone());
    let _ = nlm::Nlm4TestRes::from_bytes(b.clone());
    let _ = nlm::nsm::SmStatRes::from_bytes(b.clone());
    let mut r = RecordReader::new(4096);
    r.buffer().extend_from_slice(input);
    while let Ok(Some(_)) = r.next_record() {}
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let seeds = seeds();
    for i in 0..3000 {
        let input = if i % 3 == 0 {
            let n = rng.random_range(0..256);
            (0..n).map(|_| rng.random::<u8>()).collect()
        } else {
            let s = seeds[i % seeds.len()].clone();
            mutate(&mut rng, s)
        };
        all_decoders(&input);
        all_decoders(&frame(&input, 7));
    }
}
