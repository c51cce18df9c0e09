//! The client against fake upstreams: pipelining, resends, reconnects,
//! JUKEBOX, hostile replies, reserved ports, the total timeout.

use super::*;
use crate::nfs::connect::RESERVED_PORTS;
use nfs_proto::record::frame;
use nfs_proto::rpc::ReplyHeader;
use nfs_proto::{Encoder, Xdr};
use std::net::TcpListener;

/// Bytes of a call header with AUTH_NONE credentials and verifier.
const HEADER: usize = 40;

pub(in super::super) fn read_record(s: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut mark = [0u8; 4];
    s.read_exact(&mut mark).ok()?;
    let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
    let mut rec = vec![0u8; len];
    s.read_exact(&mut rec).ok()?;
    Some(rec)
}

pub(in super::super) fn xid_of(rec: &[u8]) -> u32 {
    u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]])
}

pub(in super::super) fn reply(s: &mut std::net::TcpStream, xid: u32, results: &[u8]) {
    let mut e = Encoder::new();
    ReplyHeader::new(xid, ReplyStat::Success).encode(&mut e);
    let mut msg = e.into_inner().to_vec();
    msg.extend_from_slice(results);
    s.write_all(&frame(&msg, usize::MAX)).unwrap();
}

/// A fake upstream running `serve` on its accepted connections, and a
/// pool of `connections` to it.
fn upstream(
    connections: usize,
    serve: impl FnOnce(&TcpListener) + Send + 'static,
) -> (Rc<Pool>, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || serve(&l));
    let pool = Pool::new(ClientConfig {
        addr,
        connections,
        attempt_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_secs(3),
    });
    (pool, t)
}

async fn call(pool: &Pool, args: &'static [u8]) -> Result<Reply> {
    let prog = nfs_proto::nfs3::PROGRAM;
    pool.call(prog, 3, 1, &OpaqueAuth::none(), &[Bytes::from_static(args)])
        .await
}

pub(in super::super) fn run<F: std::future::Future>(f: F) -> F::Output {
    compio::runtime::Runtime::new().unwrap().block_on(f)
}

#[test]
fn replies_out_of_order_reach_their_callers() {
    let (pool, t) = upstream(1, |l| {
        let (mut s, _) = l.accept().unwrap();
        let calls: Vec<Vec<u8>> = (0..3).map(|_| read_record(&mut s).unwrap()).collect();
        for rec in calls.iter().rev() {
            // Echo the arguments.
            reply(&mut s, xid_of(rec), &rec[HEADER..]);
        }
    });
    run(async {
        let (a, b, c) = futures::join!(call(&pool, b"aaaa"), call(&pool, b"bbbb"), call(&pool, b"cccc"));
        for (r, want) in [(a, b"aaaa"), (b, b"bbbb"), (c, b"cccc")] {
            let r = r.unwrap();
            assert_eq!(&r.results.rest()[..], want);
            assert!(!r.retransmitted);
        }
    });
    t.join().unwrap();
}

/// The call gets "done", answered to its second transmission.
fn done_on_the_second_send(pool: &Pool, server: std::thread::JoinHandle<()>) {
    run(async {
        let r = call(pool, b"once").await.unwrap();
        assert_eq!(&r.results.rest()[..], b"done");
        assert!(r.retransmitted);
    });
    server.join().unwrap();
}

#[test]
fn an_unanswered_call_is_sent_again_with_the_same_xid_on_the_same_connection() {
    let (pool, t) = upstream(2, |l| {
        let (mut s, _) = l.accept().unwrap();
        let first = read_record(&mut s).unwrap();
        let again = read_record(&mut s).unwrap();
        assert_eq!(first, again);
        reply(&mut s, xid_of(&again), b"done");
    });
    done_on_the_second_send(&pool, t);
}

#[test]
fn a_dropped_connection_is_replaced_and_the_call_sent_again() {
    let (pool, t) = upstream(2, |l| {
        let (mut s, _) = l.accept().unwrap();
        let first = read_record(&mut s).unwrap();
        drop(s);
        loop {
            let (mut s, _) = l.accept().unwrap();
            if let Some(again) = read_record(&mut s) {
                assert_eq!(first, again);
                reply(&mut s, xid_of(&again), b"done");
                return;
            }
        }
    });
    done_on_the_second_send(&pool, t);
}

#[test]
fn jukebox_is_asked_again_as_a_new_call() {
    let (pool, t) = upstream(1, |l| {
        let (mut s, _) = l.accept().unwrap();
        let first = read_record(&mut s).unwrap();
        reply(&mut s, xid_of(&first), &NFS3ERR_JUKEBOX.to_be_bytes());
        let second = read_record(&mut s).unwrap();
        assert_ne!(xid_of(&first), xid_of(&second));
        assert_eq!(first[4..], second[4..]);
        reply(&mut s, xid_of(&second), &[0, 0, 0, 0]);
    });
    run(async {
        let r = call(&pool, b"busy").await.unwrap();
        assert_eq!(&r.results.rest()[..], &[0, 0, 0, 0]);
    });
    t.join().unwrap();
}

#[test]
fn garbage_from_the_upstream_is_an_error_not_a_panic() {
    let (pool, t) = upstream(1, |l| {
        // A record too short for an xid: the connection is dropped.
        let (mut s, _) = l.accept().unwrap();
        read_record(&mut s).unwrap();
        s.write_all(&frame(&[1, 2], usize::MAX)).unwrap();
        // A reply with the right xid and a broken header.
        let (mut s, _) = l.accept().unwrap();
        let rec = read_record(&mut s).unwrap();
        let mut bad = rec[..4].to_vec();
        bad.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 9]);
        s.write_all(&frame(&bad, usize::MAX)).unwrap();
        // A reply refused at the RPC level.
        let rec = read_record(&mut s).unwrap();
        let mut e = Encoder::new();
        ReplyHeader::new(xid_of(&rec), ReplyStat::ProcUnavail).encode(&mut e);
        s.write_all(&frame(e.as_slice(), usize::MAX)).unwrap();
        // A record larger than any reply may be.
        let _ = read_record(&mut s).unwrap();
        s.write_all(&(0x8000_0000u32 | (MAX_RECORD as u32 + 1)).to_be_bytes())
            .unwrap();
        let (mut s, _) = l.accept().unwrap();
        let rec = read_record(&mut s).unwrap();
        reply(&mut s, xid_of(&rec), b"fine");
    });
    run(async {
        assert_eq!(call(&pool, b"one").await.err(), Some(Error::Io));
        assert_eq!(call(&pool, b"two").await.err(), Some(Error::Io));
        let r = call(&pool, b"three").await.unwrap();
        assert_eq!(&r.results.rest()[..], b"fine");
    });
    t.join().unwrap();
}

#[test]
fn root_connects_from_a_reserved_port() {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let (pool, t) = upstream(1, move |l| {
        let (mut s, peer) = l.accept().unwrap();
        assert_eq!(RESERVED_PORTS.contains(&peer.port()), root, "{peer}");
        let rec = read_record(&mut s).unwrap();
        reply(&mut s, xid_of(&rec), b"ok");
    });
    run(async {
        assert_eq!(&call(&pool, b"p").await.unwrap().results.rest()[..], b"ok");
    });
    t.join().unwrap();
}

#[test]
fn no_upstream_fails_within_the_bound() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let pool = Pool::new(ClientConfig {
        addr,
        connections: 2,
        attempt_timeout: Duration::from_millis(200),
        total_timeout: Duration::from_secs(1),
    });
    run(async {
        let t = Instant::now();
        assert_eq!(call(&pool, b"x").await.err(), Some(Error::Unavailable));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    });
}
