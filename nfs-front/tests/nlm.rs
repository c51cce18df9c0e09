//! NLM v4 locks over TCP, with a small client-side NLM service and
//! portmapper that take the server's GRANTED callbacks.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use nfs_proto::nlm::nsm::{self, StatChge};
use nfs_proto::nlm::*;
use nfs_proto::portmap::Mapping;
use nfs_proto::record::{frame, RecordReader};
use nfs_proto::rpc::{decode_call, encode_reply, ReplyStat};
use nfs_proto::xdr::{Opaque, Xdr};
use nfs_proto::Decoder;

/// Serve RPC calls on a thread: `handler(proc, args)` gives the results.
fn fake_service(handler: impl Fn(u32, Bytes) -> Bytes + Send + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut rr = RecordReader::new(1 << 20);
            let mut buf = [0u8; 4096];
            'conn: loop {
                while let Ok(Some(rec)) = rr.next_record() {
                    let mut d = Decoder::new(rec);
                    let Ok(h) = decode_call(&mut d) else { break 'conn };
                    let res = handler(h.proc_, d.rest());
                    let mut out = encode_reply(h.xid, &()).to_vec();
                    out.extend_from_slice(&res);
                    if s.write_all(&frame(&out, 1 << 20)).is_err() {
                        break 'conn;
                    }
                }
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => rr.buffer().extend_from_slice(&buf[..n]),
                }
            }
        }
    });
    port
}

/// A client of `fx` and the handle of a new file `f`.
fn file_f(fx: &Fixture) -> (Client, Vec<u8>) {
    use nfs_proto::nfs3::{DirOpArgs3, Nfs3Args, Nfs3Res, NfsResult};
    std::fs::write(fx.origin().join("f"), b"data").unwrap();
    let mut c = fx.client();
    let root = c.root("/export");
    match c.nfs(Nfs3Args::Lookup(DirOpArgs3 {
        dir: root,
        name: Opaque::new(&b"f"[..]),
    })) {
        Nfs3Res::Lookup(NfsResult::Ok(ok)) => (c, ok.object.0.to_vec()),
        other => panic!("{other:?}"),
    }
}

fn lock(host: &str, svid: i32, fh: &[u8], off: u64, len: u64) -> Nlm4Lock {
    Nlm4Lock {
        caller_name: Opaque::new(host.as_bytes().to_vec()),
        fh: Opaque::new(fh.to_vec()),
        oh: Opaque::new(format!("{host}-{svid}").into_bytes()),
        svid,
        l_offset: off,
        l_len: len,
    }
}

fn cookie() -> NetObj {
    Opaque::new(&b"ck"[..])
}

fn call<A: Xdr, R: Xdr>(c: &mut Client, p: NlmProc4, a: &A) -> R {
    let (h, d) = c.call_raw(PROGRAM, VERSION, p as u32, &a.to_bytes());
    assert_eq!(h.stat, ReplyStat::Success, "{p:?}");
    R::from_bytes(d.rest()).unwrap()
}

fn do_lock(c: &mut Client, l: Nlm4Lock, block: bool, reclaim: bool) -> Nlm4Stat {
    let r: Nlm4Res = call(
        c,
        NlmProc4::Lock,
        &Nlm4LockArgs {
            cookie: cookie(),
            block,
            exclusive: true,
            alock: l,
            reclaim,
            state: 1,
        },
    );
    r.stat
}

fn test_lock(c: &mut Client, l: Nlm4Lock) -> Nlm4TestReply {
    let r: Nlm4TestRes = call(
        c,
        NlmProc4::Test,
        &Nlm4TestArgs {
            cookie: cookie(),
            exclusive: true,
            alock: l,
        },
    );
    r.stat
}

fn unlock(c: &mut Client, l: Nlm4Lock) -> Nlm4Stat {
    let r: Nlm4Res = call(
        c,
        NlmProc4::Unlock,
        &Nlm4UnlockArgs {
            cookie: cookie(),
            alock: l,
        },
    );
    r.stat
}

/// A client's NLM service, status monitor and portmapper; GRANTED and
/// SM_NOTIFY calls arrive on the channels.
fn callback_services() -> (u16, mpsc::Receiver<Nlm4TestArgs>) {
    let (port, granted, _) = client_services();
    (port, granted)
}

fn client_services() -> (u16, mpsc::Receiver<Nlm4TestArgs>, mpsc::Receiver<StatChge>) {
    let (ntx, nrx) = mpsc::channel();
    let ntx = std::sync::Mutex::new(ntx);
    let nsm_port = fake_service(move |p, args| {
        assert_eq!(p, nsm::SmProc::Notify as u32);
        let _ = ntx.lock().unwrap().send(StatChge::from_bytes(args).unwrap());
        Bytes::new()
    });
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let nlm_port = fake_service(move |p, args| {
        if p == NlmProc4::Granted as u32 {
            let a = Nlm4TestArgs::from_bytes(args).unwrap();
            let cookie = a.cookie.clone();
            let _ = tx.lock().unwrap().send(a);
            Nlm4Res {
                cookie,
                stat: Nlm4Stat::Granted,
            }
            .to_bytes()
        } else {
            Bytes::new()
        }
    });
    let pmap_port = fake_service(move |p, args| {
        assert_eq!(p, 3, "GETPORT");
        let m = Mapping::from_bytes(args).unwrap();
        match (m.prog, m.vers) {
            (PROGRAM, VERSION) => (nlm_port as u32).to_bytes(),
            (nsm::PROGRAM, nsm::VERSION) => (nsm_port as u32).to_bytes(),
            other => panic!("GETPORT {other:?}"),
        }
    });
    (pmap_port, rx, nrx)
}

#[test]
fn lock_test_unlock_and_a_blocked_lock_granted_by_callback() {
    let (pmap_port, granted) = callback_services();
    let fx = start(|cfg| cfg.callback_portmapper_port = pmap_port);
    let (mut c, fh) = file_f(&fx);
    let mut b = fx.client();

    assert_eq!(
        do_lock(&mut c, lock("hostA", 1, &fh, 0, 100), false, false),
        Nlm4Stat::Granted
    );
    match test_lock(&mut b, lock("hostB", 2, &fh, 50, 10)) {
        Nlm4TestReply::Denied(h) => {
            assert_eq!((h.svid, h.l_offset, h.l_len, h.exclusive), (1, 0, 100, true));
            assert_eq!(h.oh.as_bytes(), b"hostA-1");
        }
        other => panic!("{other:?}"),
    }
    // Outside the held range, and the holder itself, are fine.
    assert_eq!(
        test_lock(&mut b, lock("hostB", 2, &fh, 100, 0)),
        Nlm4TestReply::Other(Nlm4Stat::Granted)
    );
    assert_eq!(
        test_lock(&mut c, lock("hostA", 1, &fh, 0, 0)),
        Nlm4TestReply::Other(Nlm4Stat::Granted)
    );
    assert_eq!(
        do_lock(&mut b, lock("hostB", 2, &fh, 0, 0), false, false),
        Nlm4Stat::Denied
    );
    assert_eq!(
        do_lock(&mut b, lock("hostB", 2, &fh, 0, 0), true, false),
        Nlm4Stat::Blocked
    );
    assert!(
        granted.recv_timeout(Duration::from_millis(300)).is_err(),
        "granted too early"
    );

    assert_eq!(unlock(&mut c, lock("hostA", 1, &fh, 0, 100)), Nlm4Stat::Granted);
    let g = granted
        .recv_timeout(Duration::from_secs(20))
        .expect("no GRANTED callback");
    assert_eq!((g.alock.svid, g.alock.caller_name.as_bytes()), (2, &b"hostB"[..]));
    // B holds it now.
    match test_lock(&mut c, lock("hostA", 1, &fh, 0, 1)) {
        Nlm4TestReply::Denied(h) => assert_eq!(h.svid, 2),
        other => panic!("{other:?}"),
    }
    // Cancelling a request that is not waiting is refused.
    let r: Nlm4Res = call(
        &mut b,
        NlmProc4::Cancel,
        &Nlm4CancArgs {
            cookie: cookie(),
            block: true,
            exclusive: true,
            alock: lock("hostB", 2, &fh, 0, 0),
        },
    );
    assert_eq!(r.stat, Nlm4Stat::Denied);
    // A waiter that cancels is never granted.
    assert_eq!(
        do_lock(&mut c, lock("hostA", 1, &fh, 0, 0), true, false),
        Nlm4Stat::Blocked
    );
    let r: Nlm4Res = call(
        &mut c,
        NlmProc4::Cancel,
        &Nlm4CancArgs {
            cookie: cookie(),
            block: true,
            exclusive: true,
            alock: lock("hostA", 1, &fh, 0, 0),
        },
    );
    assert_eq!(r.stat, Nlm4Stat::Granted);

    // FREE_ALL for B (it rebooted): A can lock again.
    let (h, _) = b.call_raw(
        PROGRAM,
        VERSION,
        NlmProc4::FreeAll as u32,
        &Nlm4Notify {
            name: Opaque::new(&b"hostB"[..]),
            state: 3,
        }
        .to_bytes(),
    );
    assert_eq!(h.stat, ReplyStat::Success);
    assert_eq!(
        do_lock(&mut c, lock("hostA", 1, &fh, 0, 0), false, false),
        Nlm4Stat::Granted
    );
    // SM_NOTIFY for A: B can lock again.
    let (h, _) = b.call_raw(
        nsm::PROGRAM,
        nsm::VERSION,
        nsm::SmProc::Notify as u32,
        &StatChge {
            mon_name: Opaque::new(&b"hostA"[..]),
            state: 5,
        }
        .to_bytes(),
    );
    assert_eq!(h.stat, ReplyStat::Success);
    assert_eq!(
        do_lock(&mut b, lock("hostB", 2, &fh, 0, 0), false, false),
        Nlm4Stat::Granted
    );
    assert!(granted.try_recv().is_err(), "no other callback expected");

    // Handles that name nothing are stale.
    assert_eq!(
        do_lock(&mut b, lock("hostB", 2, &[1, 2, 3], 0, 0), false, false),
        Nlm4Stat::StaleFh
    );
    let (h, _) = b.call_raw(PROGRAM, 1, 0, &[]);
    assert_eq!(h.stat, ReplyStat::ProgMismatch { low: 4, high: 4 });
}

#[test]
fn only_reclaims_succeed_during_the_grace_period() {
    let fx = start(|cfg| cfg.nlm_grace = Duration::from_secs(600));
    let (mut c, fh) = file_f(&fx);
    assert_eq!(
        do_lock(&mut c, lock("h", 1, &fh, 0, 0), false, false),
        Nlm4Stat::DeniedGracePeriod
    );
    assert_eq!(
        test_lock(&mut c, lock("h", 1, &fh, 0, 0)),
        Nlm4TestReply::Other(Nlm4Stat::DeniedGracePeriod)
    );
    assert_eq!(
        do_lock(&mut c, lock("h", 1, &fh, 0, 0), false, true),
        Nlm4Stat::Granted
    );
}

#[test]
fn lock_clients_are_told_of_a_restart() {
    let (pmap_port, _granted, notified) = client_services();
    let tune = move |cfg: &mut nfs_front::NfsConfig, dir: &std::path::Path| {
        cfg.callback_portmapper_port = pmap_port;
        cfg.state_dir = Some(dir.join("state"));
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    let fx = start_in(dir, |cfg| tune(cfg, &state));
    let (mut c, fh) = file_f(&fx);
    assert_eq!(
        do_lock(&mut c, lock("h", 1, &fh, 0, 0), false, false),
        Nlm4Stat::Granted
    );
    assert!(notified.recv_timeout(Duration::from_millis(200)).is_err());
    drop(c);
    let fx = start_in(fx.stop(), |cfg| tune(cfg, &state));
    let n = notified
        .recv_timeout(Duration::from_secs(20))
        .expect("no SM_NOTIFY after restart");
    assert_eq!(n.mon_name.as_bytes(), b"127.0.0.1");
    assert_eq!(n.state, 3, "odd (up), and the second start's");
    // Told once: the record is cleared.
    drop(fx);
    assert!(!state.join("state/nlm-clients").exists());
}

/// FREE_ALL naming `host`, from `c`: the RPC status.
fn free_all(c: &mut Client, host: &str) -> ReplyStat {
    let a = Nlm4Notify {
        name: Opaque::new(host.as_bytes().to_vec()),
        state: 3,
    };
    c.call_raw(PROGRAM, VERSION, NlmProc4::FreeAll as u32, &a.to_bytes())
        .0
        .stat
}

/// SM_NOTIFY naming `host`, from `c`: the RPC status.
fn sm_notify(c: &mut Client, host: &str) -> ReplyStat {
    let a = StatChge {
        mon_name: Opaque::new(host.as_bytes().to_vec()),
        state: 3,
    };
    let p = nsm::SmProc::Notify as u32;
    c.call_raw(nsm::PROGRAM, nsm::VERSION, p, &a.to_bytes()).0.stat
}

fn from(fx: &Fixture, ip: &str) -> Client {
    Client::connect_from(fx.addr(), std::net::SocketAddr::new(ip.parse().unwrap(), 0))
}

#[test]
fn a_host_name_frees_only_the_locks_it_took_from_its_own_address() {
    let fx = start(|_| {});
    let (mut x, fh) = file_f(&fx);
    let mut other = from(&fx, "127.0.0.2");
    let held = |c: &mut Client| matches!(test_lock(c, lock("y", 9, &fh, 0, 0)), Nlm4TestReply::Denied(_));
    for forget in [free_all, sm_notify] {
        assert_eq!(
            do_lock(&mut x, lock("x", 1, &fh, 0, 0), false, false),
            Nlm4Stat::Granted
        );
        // Another address claiming to be x frees nothing, nor unlocks x's lock.
        assert_eq!(forget(&mut other, "x"), ReplyStat::Success);
        assert!(held(&mut other), "another address dropped x's locks");
        assert_eq!(unlock(&mut other, lock("x", 1, &fh, 0, 0)), Nlm4Stat::Granted);
        assert!(held(&mut other), "another address unlocked x's lock");
        // x itself does.
        assert_eq!(forget(&mut x, "x"), ReplyStat::Success);
        assert!(!held(&mut other), "x's own call did not drop its locks");
    }
}

/// A server whose /export admits only 127.0.0.1 (plus, with `open`, an
/// export /open that admits 127.0.0.0/8), a lock on `f` taken from
/// 127.0.0.1, and a client at 127.0.0.3 with `f`'s handle.
fn locked_by_me(open: bool) -> (Fixture, Client, Vec<u8>, Client) {
    use nfs_front::{Access, ExportConfig, Squash};
    let fx = start(|cfg| {
        cfg.exports[0].rules = vec![insecure(&["127.0.0.1"], Access::Rw, Squash::None)];
        if open {
            cfg.exports.push(ExportConfig {
                path: "/open".into(),
                subdir: "/".into(),
                rules: vec![insecure(&["127.0.0.0/8"], Access::Rw, Squash::None)],
            });
        }
    });
    let (mut me, fh) = file_f(&fx);
    let l = lock("me", 1, &fh, 0, 0);
    assert_eq!(do_lock(&mut me, l, false, false), Nlm4Stat::Granted);
    let stranger = from(&fx, "127.0.0.3");
    (fx, me, fh, stranger)
}

#[test]
fn lock_calls_go_through_the_export_rules() {
    // An address /export does not admit cannot lock with its handles.
    let (_fx, _me, fh, mut stranger) = locked_by_me(true);
    let l = lock("s", 1, &fh, 10, 1);
    assert_eq!(do_lock(&mut stranger, l, false, false), Nlm4Stat::Failed);
    // With no export admitting it at all, NLM and NSM refuse it outright.
    let (_fx, mut me, fh, mut stranger) = locked_by_me(false);
    let refused = ReplyStat::AuthError(nfs_proto::rpc::AuthStat::TooWeak);
    assert_eq!(free_all(&mut stranger, "me"), refused);
    assert_eq!(sm_notify(&mut stranger, "me"), refused);
    let (h, _) = stranger.call_raw(PROGRAM, VERSION, NlmProc4::Null as u32, &[]);
    assert_eq!(h.stat, ReplyStat::Success);
    assert!(matches!(
        test_lock(&mut me, lock("other", 2, &fh, 0, 0)),
        Nlm4TestReply::Denied(_)
    ));
}
