//! What a client may hold before it is trusted: connections per address,
//! record size before an RPC call is seen, and time spent silent.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use nfs_proto::nfs3::PROGRAM;
use nfs_proto::record::record_mark;
use nfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyStat};
use nfs_proto::xdr::Xdr;

/// The server closed the connection (a read timing out is no close).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => closed(s),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn connections_over_the_per_client_limit_are_closed_at_once() {
    let fx = start(|c| c.limits.max_per_client = 2);
    let mut a = fx.client();
    let mut b = fx.client();
    // Served, so both are counted before the third comes.
    for c in [&mut a, &mut b] {
        c.send(PROGRAM, 3, 0, &[]);
        assert_eq!(c.reply().0.stat, ReplyStat::Success);
    }
    let mut over = fx.client();
    assert!(
        closed(&mut over.s),
        "a third connection from one address is closed"
    );
    // A connection that ends frees its place.
    drop(a);
    let mut again = (0..100)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            let mut c = fx.client();
            // Not closed at once: counted.
            c.s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let kept = !closed(&mut c.s);
            c.s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            kept.then_some(c)
        })
        .find_map(|c| c)
        .expect("a place freed by a closed connection");
    again.send(PROGRAM, 3, 0, &[]);
    assert_eq!(again.reply().0.stat, ReplyStat::Success);
}

#[test]
fn a_large_record_that_does_not_start_as_an_rpc_call_is_refused() {
    let fx = start(|_| {});
    let mut c = fx.client();
    c.s.write_all(&record_mark(1 << 20)).unwrap();
    c.s.write_all(&[0x42; 64]).unwrap();
    assert!(closed(&mut c.s), "garbage announcing 1 MiB closes the connection");
    // A call header earns the large record: a NULL call padded to 200 KiB
    // is answered once it has all arrived.
    let mut c = fx.client();
    let h = CallHeader {
        xid: 77,
        prog: PROGRAM,
        vers: 3,
        proc_: 0,
        cred: OpaqueAuth::none(),
        verf: OpaqueAuth::none(),
    };
    let mut msg = h.to_bytes().to_vec();
    msg.resize(200 << 10, 0);
    c.s.write_all(&record_mark(msg.len())).unwrap();
    c.s.write_all(&msg).unwrap();
    assert_eq!(c.reply().0.xid, 77);
}

#[test]
fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let fx = start(|c| c.idle_timeout = Duration::from_millis(300));
    let mut c = fx.client();
    c.send(PROGRAM, 3, 0, &[]);
    assert_eq!(c.reply().0.stat, ReplyStat::Success);
    assert!(closed(&mut c.s), "closed after being silent");
}
