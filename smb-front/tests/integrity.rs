//! What a client cannot get around: lost writes are reported, a server-side
//! copy obeys byte-range locks and breaks caching like a WRITE, a CANCEL
//! passes the signature checks, and a session that cannot sign is refused
//! when signing is required.

mod common;

use std::sync::atomic::Ordering::Relaxed;

use bytes::{Bytes, BytesMut};
use common::client::*;
use common::*;
use smb_front::config::Signing;
use smb_proto::create::{disposition, CreateResponse};
use smb_proto::header::{flags, HeaderId};
use smb_proto::io::{lock_flags, LockElement, LockRequest};
use smb_proto::ioctl::{fsctl, CopyChunk, CopyChunkRequest};
use smb_proto::security::access;
use smb_proto::{Command, FileId, NtStatus};

fn lock(c: &mut Client, file_id: FileId, offset: u64, length: u64, flags: u32) -> Resp {
    let h = c.header(Command::Lock);
    c.send_with(h, |x| {
        LockRequest {
            lock_sequence: 0,
            file_id,
            locks: vec![LockElement {
                offset,
                length,
                flags,
            }],
        }
        .encode(x)
    });
    c.recv().expect("a response")
}

/// Copy `len` bytes from offset 0 of `src` to offset `at` of `dst`, both
/// opens of `c`: the IOCTL's status.
fn copychunk(c: &mut Client, src: FileId, dst: FileId, at: u64, len: u32) -> NtStatus {
    let (status, key) = c.ioctl(fsctl::SRV_REQUEST_RESUME_KEY, src, Bytes::new());
    assert_eq!(status, NtStatus::SUCCESS);
    let mut input = BytesMut::new();
    CopyChunkRequest {
        source_key: key.unwrap()[..24].try_into().unwrap(),
        chunks: vec![CopyChunk {
            source_offset: 0,
            target_offset: at,
            length: len,
        }],
    }
    .encode(&mut input);
    c.ioctl(fsctl::SRV_COPYCHUNK_WRITE, dst, input.freeze()).0
}

#[test]
fn a_flush_reports_lost_writes_and_a_retry_commits_again() {
    let fx = start(|_| {});
    let mut c = Client::login(&fx);
    let f = c.create("f", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    assert_eq!(write_at(&mut c, f, b"unstable").h.status, NtStatus::SUCCESS);
    fx.filer.lose_next_commit();
    assert_eq!(c.flush(f), NtStatus::UNEXPECTED_IO_ERROR);
    // Still dirty: the second FLUSH reaches the core filer.
    let before = fx.filer.commits.load(Relaxed);
    assert_eq!(c.flush(f), NtStatus::SUCCESS);
    assert_eq!(fx.filer.commits.load(Relaxed), before + 1);
    // Nothing left to commit.
    assert_eq!(c.flush(f), NtStatus::SUCCESS);
    assert_eq!(fx.filer.commits.load(Relaxed), before + 1);
}

#[test]
fn a_flush_through_one_open_commits_the_writes_of_another() {
    let fx = start(|_| {});
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    let fa = a.create("f", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    let fb = b.create("f", RW, ALL_SHARE, disposition::OPEN, 0).unwrap();
    assert_eq!(write_at(&mut a, fa, b"through a").h.status, NtStatus::SUCCESS);
    let before = fx.filer.commits.load(Relaxed);
    assert_eq!(b.flush(fb), NtStatus::SUCCESS);
    assert_eq!(fx.filer.commits.load(Relaxed), before + 1);
}

#[test]
fn a_copychunk_into_a_range_locked_by_another_open_fails() {
    let fx = start(|_| {});
    std::fs::write(fx.origin().join("src"), b"0123456789").unwrap();
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    let fa = a.create("dst", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    let r = lock(
        &mut a,
        fa,
        0,
        10,
        lock_flags::EXCLUSIVE_LOCK | lock_flags::FAIL_IMMEDIATELY,
    );
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    let src = b
        .create("src", access::FILE_READ_DATA, ALL_SHARE, disposition::OPEN, 0)
        .unwrap();
    let dst = b.create("dst", RW, ALL_SHARE, disposition::OPEN, 0).unwrap();
    assert_eq!(copychunk(&mut b, src, dst, 5, 4), NtStatus::FILE_LOCK_CONFLICT);
    // Past the locked range it goes.
    assert_eq!(copychunk(&mut b, src, dst, 10, 4), NtStatus::SUCCESS);
    // A source range another open locks cannot be read either.
    let fs = a.create("src", RW, ALL_SHARE, disposition::OPEN, 0).unwrap();
    let r = lock(
        &mut a,
        fs,
        0,
        1,
        lock_flags::EXCLUSIVE_LOCK | lock_flags::FAIL_IMMEDIATELY,
    );
    assert_eq!(r.h.status, NtStatus::SUCCESS);
    assert_eq!(copychunk(&mut b, src, dst, 20, 4), NtStatus::FILE_LOCK_CONFLICT);
}

#[test]
fn a_copychunk_breaks_the_lease_of_another_client() {
    let fx = start(|_| {});
    std::fs::write(fx.origin().join("src"), b"0123456789").unwrap();
    let key = [0x55; 16];
    let mut a = leased_client(&fx, "leased", key, RWH);
    let mut b = Client::login(&fx);
    let src = b
        .create("src", access::FILE_READ_DATA, ALL_SHARE, disposition::OPEN, 0)
        .unwrap();
    // b's open breaks write caching first (RWH to RH), as in any open.
    let h = b.header(Command::Create);
    b.send_with(h, |x| create_body("leased", 0, None).encode(x));
    assert_eq!(b.recv().unwrap().h.status, NtStatus::PENDING);
    ack_next_break(&mut a, key, RWH, RH);
    let done = b.recv().unwrap();
    assert_eq!(done.h.status, NtStatus::SUCCESS);
    let dst = CreateResponse::decode(done.body).unwrap().file_id;
    // The copy changes the data a caches: its read caching goes.
    assert_eq!(copychunk(&mut b, src, dst, 0, 10), NtStatus::SUCCESS);
    let n = a.recv().unwrap();
    let (k, from, to, _) = lease_break(&n);
    assert_eq!((k, from, to), (key, RH, 0));
}

/// A client with a signed session and a LOCK of its pending behind
/// another client's lock: (holder, waiter, the pending response).
fn pending_lock(fx: &Fixture) -> (Client, Client, Resp) {
    let mut a = Client::login(fx);
    let mut b = Client::connect(fx);
    b.negotiate();
    assert_eq!(b.logon(USER, PASS, true), NtStatus::SUCCESS);
    assert_eq!(b.tree_connect("export"), NtStatus::SUCCESS);
    let fa = a.create("l", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    let fb = b.create("l", RW, ALL_SHARE, disposition::OPEN, 0).unwrap();
    assert_eq!(
        lock(&mut a, fa, 0, 10, lock_flags::EXCLUSIVE_LOCK).h.status,
        NtStatus::SUCCESS
    );
    let r = lock(&mut b, fb, 0, 10, lock_flags::EXCLUSIVE_LOCK);
    assert_eq!(r.h.status, NtStatus::PENDING);
    (a, b, r)
}

fn send_cancel(c: &mut Client, pending: &Resp) {
    let mut h = c.header(Command::Cancel);
    c.mid -= 1;
    h.message_id = pending.h.message_id;
    h.flags |= flags::ASYNC_COMMAND;
    h.id = HeaderId::Async {
        async_id: pending.h.async_id().expect("an async id"),
    };
    c.send_with(h, smb_proto::simple::encode_empty);
}

#[test]
fn an_unsigned_cancel_on_a_signed_session_cancels_nothing() {
    let fx = start(|_| {});
    let (_a, mut b, pending) = pending_lock(&fx);
    let key = b.key.take();
    send_cancel(&mut b, &pending);
    b.key = key;
    // The next answer is the ECHO's, not a cancelled LOCK.
    let r = b.call(Command::Echo, smb_proto::simple::encode_empty);
    assert_eq!((r.h.command, r.h.status), (Command::Echo, NtStatus::SUCCESS));
    // A signed CANCEL still works.
    send_cancel(&mut b, &pending);
    let r = b.recv().unwrap();
    assert_eq!((r.h.command, r.h.status), (Command::Lock, NtStatus::CANCELLED));
}

#[test]
fn a_badly_signed_cancel_drops_the_connection() {
    let fx = start(|_| {});
    let (_a, mut b, pending) = pending_lock(&fx);
    b.key = Some([0x77; 16]);
    send_cancel(&mut b, &pending);
    assert!(b.recv().is_none(), "the connection stays after a forged CANCEL");
}

#[test]
fn a_guest_logon_is_refused_when_signing_is_required() {
    let guest = |signing| {
        start(|cfg| {
            cfg.signing = signing;
            cfg.guest = Some((65534, 65534));
        })
    };
    let fx = guest(Signing::Optional);
    let mut c = Client::connect(&fx);
    c.negotiate();
    assert_eq!(c.logon("stranger", "x", false), NtStatus::SUCCESS);
    let fx = guest(Signing::Required);
    let mut c = Client::connect(&fx);
    c.negotiate();
    assert_eq!(c.logon("stranger", "x", false), NtStatus::ACCESS_DENIED);
    // A user with a password still logs on, signed.
    let mut c = Client::connect(&fx);
    c.negotiate();
    assert_eq!(c.logon(USER, PASS, true), NtStatus::SUCCESS);
}

#[test]
fn a_copychunk_past_the_largest_file_offset_is_refused() {
    let fx = start(|_| {});
    std::fs::write(fx.origin().join("src"), b"0123456789").unwrap();
    let mut c = Client::login(&fx);
    let src = c
        .create("src", access::FILE_READ_DATA, ALL_SHARE, disposition::OPEN, 0)
        .unwrap();
    let dst = c.create("dst", RW, ALL_SHARE, disposition::OPEN_IF, 0).unwrap();
    assert_eq!(
        copychunk(&mut c, src, dst, i64::MAX as u64 - 2, 4),
        NtStatus::INVALID_PARAMETER
    );
}
