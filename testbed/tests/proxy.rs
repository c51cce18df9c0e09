//! The delay proxy against small servers of the test's own: bytes arrive
//! intact and counted, never earlier than the link's latency, a cut stalls
//! connections until a restore closes them, and many connections share it.
//! Only lower bounds on time are asserted; waits are bounded only to turn a
//! hang into a failure.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rand::RngCore;
use testbed::proxy::{DelayProxy, Link, OneWay, DEFAULT_WINDOW};

/// Only reached when something hangs.
const PATIENCE: Duration = Duration::from_secs(60);

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// A server that runs `serve` on each connection in a thread of its own.
fn server(serve: impl Fn(TcpStream) + Send + Sync + Clone + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let serve = serve.clone();
            thread::spawn(move || serve(s));
        }
    });
    addr
}

fn echo_server() -> SocketAddr {
    server(|s| {
        let mut r = s.try_clone().unwrap();
        let mut w = s;
        let _ = io::copy(&mut r, &mut w);
        let _ = w.shutdown(Shutdown::Write);
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Wait (boundedly) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < PATIENCE, "never: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn bytes_pass_intact_both_ways_and_are_counted() {
    // The server hashes what it receives until EOF, then sends its own payload.
    let reply = random(3 << 20);
    let (hashes, got_hash) = mpsc::channel();
    let reply_c = reply.clone();
    let target = server(move |mut s| {
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 100_000];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    h.update(&buf[..n]);
                }
            }
        }
        hashes.send(h.finalize()).unwrap();
        s.write_all(&reply_c).unwrap();
    });
    let link = Link {
        to_target: OneWay {
            latency: Duration::from_millis(3),
            bandwidth: None,
        },
        from_target: OneWay {
            latency: Duration::from_millis(7),
            bandwidth: Some(200 << 20),
        },
        window: 256 << 10,
    };
    let proxy = DelayProxy::start(target, link).unwrap();
    let sent = random(5 << 20);
    let mut s = connect(proxy.addr());
    s.write_all(&sent).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(got_hash.recv_timeout(PATIENCE).unwrap(), blake3::hash(&sent));
    assert_eq!(back.len(), reply.len());
    assert!(back == reply, "the reply was changed on the way");
    eventually("counters settle", || {
        proxy.bytes_to_target() == sent.len() as u64 && proxy.bytes_from_target() == reply.len() as u64
    });
    eventually("the connection is closed", || proxy.connections() == 0);
}

#[test]
fn nothing_arrives_before_the_latency() {
    let up = Duration::from_millis(30);
    let down = Duration::from_millis(50);
    // The server notes when each byte arrives and answers it at once.
    let (arrivals, arrived) = mpsc::channel();
    let target = server(move |mut s| {
        let mut b = [0u8; 1];
        while let Ok(1) = s.read(&mut b) {
            arrivals.send(Instant::now()).unwrap();
            s.write_all(&b).unwrap();
        }
    });
    let link = Link {
        to_target: OneWay {
            latency: up,
            bandwidth: None,
        },
        from_target: OneWay {
            latency: down,
            bandwidth: None,
        },
        window: DEFAULT_WINDOW,
    };
    let proxy = DelayProxy::start(target, link).unwrap();
    let mut s = connect(proxy.addr());
    for i in 0..5u8 {
        let t0 = Instant::now();
        s.write_all(&[i]).unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        let t1 = Instant::now();
        assert_eq!(b[0], i);
        let at = arrived.recv_timeout(PATIENCE).unwrap();
        assert!(at - t0 >= up, "arrived {:?} after sending", at - t0);
        assert!(t1 - at >= down, "answer took {:?}", t1 - at);
    }

    // Latency and bandwidth changed at run time apply from then on; a
    // capped link cannot deliver faster than its rate.
    let rate = 4u64 << 20;
    proxy.set_link(Link {
        to_target: OneWay {
            latency: Duration::from_millis(5),
            bandwidth: Some(rate),
        },
        ..link
    });
    let t0 = Instant::now();
    s.write_all(&[9]).unwrap();
    let at = arrived.recv_timeout(PATIENCE).unwrap();
    assert!(at - t0 >= Duration::from_millis(5));
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();

    let big = random(2 << 20);
    let sink = server(|mut s| {
        let _ = io::copy(&mut s, &mut io::sink());
    });
    let capped = DelayProxy::start(
        sink,
        Link {
            to_target: OneWay {
                latency: Duration::ZERO,
                bandwidth: Some(rate),
            },
            ..Link::unlimited()
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let mut c = connect(capped.addr());
    c.write_all(&big).unwrap();
    eventually("all delivered", || capped.bytes_to_target() == big.len() as u64);
    // Less the burst the bucket allows (one chunk, or 10 ms at this rate).
    let floor = (big.len() as u64 - (64 << 10)) as f64 / rate as f64;
    assert!(
        t0.elapsed().as_secs_f64() >= floor,
        "{} bytes in {:?} at {rate} B/s",
        big.len(),
        t0.elapsed()
    );
}

#[test]
fn a_cut_stalls_until_restore_closes_old_connections() {
    let proxy = DelayProxy::start(echo_server(), Link::new(Duration::from_millis(2), None)).unwrap();
    let mut old = connect(proxy.addr());
    old.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    old.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    eventually("the ping is counted", || proxy.bytes_from_target() == 4);

    proxy.cut();
    assert!(proxy.is_cut());
    let before = (proxy.bytes_to_target(), proxy.bytes_from_target());
    old.write_all(b"lost").unwrap();
    // A connection attempt during the cut is not answered either.
    let mut waiting = connect(proxy.addr());
    waiting.write_all(b"late").unwrap();
    for s in [&mut old, &mut waiting] {
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let err = s.read(&mut b).expect_err("data came through a cut link");
        assert!(
            matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
            "{err}"
        );
        s.set_read_timeout(Some(PATIENCE)).unwrap();
    }
    assert_eq!((proxy.bytes_to_target(), proxy.bytes_from_target()), before);

    proxy.restore();
    assert!(!proxy.is_cut());
    // The connection that was open across the cut is closed; what it sent is lost.
    match old.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("old connection still delivers after the cut: {other:?}"),
    }
    // The one that waited for an answer gets it now, as a retried SYN would.
    waiting.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"late");
    let mut fresh = connect(proxy.addr());
    fresh.write_all(b"back").unwrap();
    fresh.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"back");
}

#[test]
fn many_connections_at_once() {
    let proxy = DelayProxy::start(
        echo_server(),
        Link::new(Duration::from_millis(4), Some(400 << 20)),
    )
    .unwrap();
    let addr = proxy.addr();
    let each = 256 << 10;
    let clients: Vec<_> = (0..48)
        .map(|_| {
            thread::spawn(move || {
                let data = random(each);
                let mut s = connect(addr);
                let mut w = s.try_clone().unwrap();
                let sent = data.clone();
                let writer = thread::spawn(move || {
                    w.write_all(&sent).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut back = Vec::new();
                s.read_to_end(&mut back).unwrap();
                writer.join().unwrap();
                assert!(back == data, "echo differs");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let total = 48 * each as u64;
    eventually("counters settle", || {
        proxy.bytes_to_target() == total && proxy.bytes_from_target() == total
    });
    eventually("all closed", || proxy.connections() == 0);
}

#[test]
fn an_unreachable_target_closes_the_client() {
    let gone = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy = DelayProxy::start(gone, Link::unlimited()).unwrap();
    let mut s = connect(proxy.addr());
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("{other:?}"),
    }
}
