//! CHANGE_NOTIFY: how pending requests end.

mod common;

use bytes::BufMut;
use cache_engine::types::Credentials;
use common::client::*;
use common::*;
use smb_proto::create::{disposition, options};
use smb_proto::dir::{notify_action, notify_filter, ChangeNotifyRequest};
use smb_proto::security::access;
use smb_proto::{Command, FileId, NtStatus};

/// Send a CHANGE_NOTIFY for `filter` in `dir`; answers its interim response.
fn watch(c: &mut Client, dir: FileId, filter: u32) -> Resp {
    c.call(Command::ChangeNotify, |x| {
        ChangeNotifyRequest {
            flags: 0,
            output_buffer_length: 4096,
            file_id: dir,
            completion_filter: filter,
        }
        .encode(x)
    })
}

/// Create directory `name`, open to list.
fn new_dir(c: &mut Client, name: &str) -> FileId {
    c.create(
        name,
        access::FILE_LIST_DIRECTORY,
        ALL_SHARE,
        disposition::CREATE,
        options::DIRECTORY_FILE,
    )
    .unwrap()
}

/// SET_INFO of file information `class` with `buffer`.
fn set_info(c: &mut Client, file: FileId, class: u8, buffer: &[u8]) -> NtStatus {
    c.call(Command::SetInfo, |b| {
        b.put_u16_le(33);
        b.put_u8(1); // SMB2_0_INFO_FILE
        b.put_u8(class);
        b.put_u32_le(buffer.len() as u32);
        b.put_u16_le(64 + 32);
        b.put_u16_le(0);
        b.put_u32_le(0);
        b.put_u64_le(file.persistent);
        b.put_u64_le(file.volatile);
        b.put_slice(buffer);
    })
    .h
    .status
}

/// SET_INFO FileDispositionInformation: delete `file` when it closes.
fn set_delete_pending(c: &mut Client, file: FileId) -> NtStatus {
    set_info(c, file, 13, &[1])
}

#[test]
fn setting_basic_information_is_a_modified_change_under_the_filter_of_each_field_given() {
    let fx = start(|_| {});
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    let dir = new_dir(&mut a, "d");
    let f = b
        .create(
            "d\\f",
            access::FILE_WRITE_ATTRIBUTES,
            ALL_SHARE,
            disposition::CREATE,
            0,
        )
        .unwrap();
    // FileBasicInformation: creation, last access, last write, change
    // times, attributes, reserved; 0 leaves a field as it is.
    let basic = |times: [u64; 4], attributes: u32| {
        let mut v: Vec<u8> = times.iter().flat_map(|t| t.to_le_bytes()).collect();
        v.extend_from_slice(&attributes.to_le_bytes());
        v.extend_from_slice(&[0; 4]);
        v
    };
    const WRITE_TIME: u64 = 133_000_000_000_000_000;
    for (filter, info) in [
        (notify_filter::ATTRIBUTES, basic([0; 4], 0x2)),
        (notify_filter::LAST_WRITE, basic([0, 0, WRITE_TIME, 0], 0)),
    ] {
        assert_eq!(watch(&mut a, dir, filter).h.status, NtStatus::PENDING);
        // A field the watcher does not ask for is not its change.
        let other = basic([0, WRITE_TIME, 0, 0], 0);
        assert_eq!(set_info(&mut b, f, 4, &other), NtStatus::SUCCESS);
        assert_eq!(set_info(&mut b, f, 4, &info), NtStatus::SUCCESS);
        let r = a.recv().expect("the CHANGE_NOTIFY is answered");
        assert_eq!(r.h.status, NtStatus::SUCCESS, "filter {filter:#x}");
        assert_eq!(notify_changes(&r), [(notify_action::MODIFIED, "f".to_string())]);
    }
}

#[test]
fn a_pending_notify_ends_delete_pending_when_its_directory_is_deleted() {
    let fx = start(|_| {});
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    for by_disposition in [false, true] {
        let dir = new_dir(&mut a, "gone");
        assert_eq!(
            watch(&mut a, dir, notify_filter::FILE_NAME).h.status,
            NtStatus::PENDING
        );
        let opts = if by_disposition {
            options::DIRECTORY_FILE
        } else {
            options::DIRECTORY_FILE | options::DELETE_ON_CLOSE
        };
        let del = b
            .create("gone", access::DELETE, ALL_SHARE, disposition::OPEN, opts)
            .unwrap();
        if by_disposition {
            assert_eq!(set_delete_pending(&mut b, del), NtStatus::SUCCESS);
        }
        assert_eq!(close(&mut b, del).h.status, NtStatus::SUCCESS);
        let r = a.recv().expect("the pending CHANGE_NOTIFY ends");
        assert_eq!(
            (r.h.command, r.h.status),
            (Command::ChangeNotify, NtStatus::DELETE_PENDING),
            "by disposition: {by_disposition}"
        );
        assert_eq!(close(&mut a, dir).h.status, NtStatus::SUCCESS);
        assert!(!fx.origin().join("gone").exists());
    }
}

#[test]
fn a_pending_notify_ends_delete_pending_when_another_front_end_removes_its_directory() {
    let fx = start(|_| {});
    let mut a = Client::login(&fx);
    let dir = new_dir(&mut a, "gone");
    assert_eq!(
        watch(&mut a, dir, notify_filter::FILE_NAME).h.status,
        NtStatus::PENDING
    );
    // As NFS removes it: with no SMB open's origin.
    futures::executor::block_on(fx.engine.rmdir(&Credentials::root(), &fx.engine.root(), b"gone")).unwrap();
    let r = a.recv().expect("the pending CHANGE_NOTIFY ends");
    assert_eq!(
        (r.h.command, r.h.status),
        (Command::ChangeNotify, NtStatus::DELETE_PENDING)
    );
    assert_eq!(close(&mut a, dir).h.status, NtStatus::SUCCESS);
}
