//! Drives one `Acceptor` exchange over stdin/stdout, one hex token per
//! line, so other implementations' clients can be checked against it
//! (see tests/vectors/pyspnego_golden.py). User "render", password
//! "S3cret-pass"; fixed challenge and timestamp, as in tests/pyspnego.rs.

use smb_front::auth::{ntlm::ServerNames, users::UserDb, Acceptor, Step};
use std::io::BufRead;
use std::sync::Arc;
fn main() {
    let mut users = UserDb::new();
    users.insert_password("render", "S3cret-pass", 1000, 1000);
    let names = ServerNames::standalone("weir1.example.com", "WORKGROUP");
    let mut acc = Acceptor::with_challenge(
        Arc::new(users),
        names,
        [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
        0x01dc_5a5a_0000_0000,
    );
    for line in std::io::stdin().lock().lines() {
        let t = hex::decode(line.unwrap().trim()).unwrap();
        match acc.step(&t) {
            Step::Continue(o) => println!("CONTINUE {}", hex::encode(o)),
            Step::Done {
                session_key,
                out_token,
                ..
            } => println!("DONE {} {}", hex::encode(session_key), hex::encode(out_token)),
            Step::Failed(r) => println!("FAILED {r}"),
        }
    }
}
