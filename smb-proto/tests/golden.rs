//! Byte images built by smbprotocol 1.17 (an independent SMB2
//! implementation, see `testdata/golden.py`), decoded here and compared with
//! this crate's own encodings.

use bytes::{Bytes, BytesMut};
use smb_proto::create::{CreateContext, CreateRequest, Lease, DH2_FLAG_PERSISTENT};
use smb_proto::fscc::{class, DirEntry, DirectoryWriter, Times};
use smb_proto::negotiate::{NegotiateContext, NegotiateRequest};

fn unhex(parts: &[&str]) -> Bytes {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

const NEGOTIATE: &[&str] = &[
    "240005000100000040000000111111112222333344445555555555557000000003000000020210020003020311030000",
    "0100260000000000010020000100000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0000",
    "0200060000000000020002000100000005000c000000000073006500720076006500720000000000",
];

const CREATE: &[&str] = &[
    "390000ff0200000000000000000000000000000000000000890012000000000007000000010000004000000078001800",
    "90000000a80000006400690072005c00660069006c0065002e0074007800740020000000100004000000180008000000",
    "4d7841630000000000005af64cf5d4015000000010000400000018003400000052714c73000000000303030303030303",
    "030303030303030307000000040000000000000000000000040404040404040404040404040404040500000000000000",
    "00000000100004000000180020000000444832510000000060ea0000020000000000000000000000aaaaaaaabbbbcccc",
    "ddddeeeeeeeeeeee",
];

const ID_BOTH_DIR: &[&str] = &[
    "780000000000000000005af64cf5d4010a005af64cf5d40114005af64cf5d4011e005af64cf5d401e803000000000000",
    "0010000000000000200000000a000000000000000a0041002e0054005800540000000000000000000000000000000000",
    "341200000000000061002e0074007800740000000000000000000000000000000a005af64cf5d4010a005af64cf5d401",
    "14005af64cf5d4011e005af64cf5d401d007000000000000001000000000000020000000160000000000000000000000",
    "00000000000000000000000000000000000000000000000035120000000000006c006f006e0067006500720020006e00",
    "61006d006500",
];

const DIR: &[&str] = &[
    "000000000700000000005af64cf5d4010a005af64cf5d40114005af64cf5d4011e005af64cf5d4013930000000000000",
    "0040000000000000100000001c0000004400690072006500630074006f007200790020006e0061006d006500",
];

const FULL_DIR: &[&str] = &[
    "000000000700000000005af64cf5d4010a005af64cf5d40114005af64cf5d4011e005af64cf5d4013930000000000000",
    "0040000000000000100000001c000000000000004400690072006500630074006f007200790020006e0061006d006500",
];

const BOTH_DIR: &[&str] = &[
    "000000000700000000005af64cf5d4010a005af64cf5d40114005af64cf5d4011e005af64cf5d4013930000000000000",
    "0040000000000000100000001c000000000000000e00530048004f00520054007e003100000000000000000000004400",
    "690072006500630074006f007200790020006e0061006d006500",
];

const ID_FULL_DIR: &[&str] = &[
    "000000000700000000005af64cf5d4010a005af64cf5d40114005af64cf5d4011e005af64cf5d4013930000000000000",
    "0040000000000000100000001c0000000000000000000000efcdab00000000004400690072006500630074006f007200",
    "790020006e0061006d006500",
];

#[test]
fn negotiate_request_with_contexts() {
    let raw = unhex(NEGOTIATE);
    let n = NegotiateRequest::decode(raw.clone()).unwrap();
    assert_eq!(n.dialects, vec![0x0202, 0x0210, 0x0300, 0x0302, 0x0311]);
    assert_eq!(n.security_mode, 1);
    assert_eq!(n.capabilities, 0x40);
    assert_eq!(
        n.contexts,
        vec![
            NegotiateContext::PreauthIntegrity {
                hash_algorithms: vec![1],
                salt: (0u8..32).collect::<Vec<u8>>().into(),
            },
            NegotiateContext::Encryption { ciphers: vec![2, 1] },
            NegotiateContext::NetName("server".into()),
        ]
    );
    let mut b = BytesMut::new();
    n.encode(&mut b);
    // smbprotocol also pads after the last context; the spec does not ask for it.
    assert_eq!(&b[..], &raw[..b.len()]);
    assert!(raw.len() - b.len() < 8 && raw[b.len()..].iter().all(|&x| x == 0));
}

#[test]
fn create_request_with_contexts() {
    let raw = unhex(CREATE);
    let c = CreateRequest::decode(raw.clone()).unwrap();
    assert_eq!(c.name, "dir\\file.txt");
    assert_eq!(c.desired_access, 0x0012_0089);
    assert_eq!(c.share_access, 7);
    assert_eq!(c.create_disposition, 1);
    assert_eq!(c.create_options, 0x40);
    assert_eq!(c.requested_oplock_level, 0xFF);
    assert_eq!(c.contexts.len(), 3);
    assert!(matches!(
        c.contexts[0],
        CreateContext::MaximalAccess { timestamp: Some(_) }
    ));
    assert_eq!(
        c.contexts[1],
        CreateContext::RequestLease(Lease {
            key: [3; 16],
            state: 7,
            flags: 4,
            duration: 0,
            v2: Some(([4; 16], 5)),
        })
    );
    let CreateContext::DurableRequestV2 { timeout, flags, .. } = c.contexts[2] else {
        panic!("DH2Q expected, got {:?}", c.contexts[2]);
    };
    assert_eq!((timeout, flags), (60000, DH2_FLAG_PERSISTENT));
    let mut b = BytesMut::new();
    c.encode(&mut b);
    assert_eq!(&b[..], &raw[..]);
}

#[test]
fn id_both_directory_entries() {
    let raw = unhex(ID_BOTH_DIR);
    let mut w = DirectoryWriter::new(class::ID_BOTH_DIRECTORY, 65536).unwrap();
    for (i, name) in ["a.txt", "longer name"].into_iter().enumerate() {
        assert!(w.push(&DirEntry {
            name: name.into(),
            file_index: 0,
            times: Times {
                creation: 132_000_000_000_000_000 + 10 * i as u64,
                last_access: 132_000_000_000_000_010,
                last_write: 132_000_000_000_000_020,
                change: 132_000_000_000_000_030,
            },
            end_of_file: 1000 * (i as u64 + 1),
            allocation_size: 4096,
            attributes: 0x20,
            file_id: 0x1234 + i as u64,
            ea_size: 0,
            short_name: if i == 0 { "A.TXT".into() } else { String::new() },
            reparse_tag: 0,
        }));
    }
    assert_eq!(&w.finish()[..], &raw[..]);
}

#[test]
fn other_enumeration_classes() {
    let e = DirEntry {
        name: "Directory name".into(),
        file_index: 7,
        times: Times {
            creation: 132_000_000_000_000_000,
            last_access: 132_000_000_000_000_010,
            last_write: 132_000_000_000_000_020,
            change: 132_000_000_000_000_030,
        },
        end_of_file: 12345,
        allocation_size: 16384,
        attributes: 0x10,
        file_id: 0xAB_CDEF,
        ea_size: 0,
        short_name: "SHORT~1".into(),
        reparse_tag: 0,
    };
    for (c, golden) in [
        (class::DIRECTORY, DIR),
        (class::FULL_DIRECTORY, FULL_DIR),
        (class::BOTH_DIRECTORY, BOTH_DIR),
        (class::ID_FULL_DIRECTORY, ID_FULL_DIR),
    ] {
        let mut w = DirectoryWriter::new(c, 4096).unwrap();
        assert!(w.push(&e));
        assert_eq!(&w.finish()[..], &unhex(golden)[..], "class {c}");
    }
}
