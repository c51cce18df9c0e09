//! CHANGE_NOTIFY: how pending requests end.

mod common;

use bytes::BufMut;
use common::client::*;
use common::*;
use smb_proto::create::{disposition, options};
use smb_proto::dir::ChangeNotifyRequest;
use smb_proto::security::access;
use smb_proto::{Command, FileId, NtStatus};

/// Send a CHANGE_NOTIFY for file names in `dir`; answers its interim response.
fn watch(c: &mut Client, dir: FileId) -> Resp {
    c.call(Command::ChangeNotify, |x| {
        ChangeNotifyRequest {
            flags: 0,
            output_buffer_length: 4096,
            file_id: dir,
            completion_filter: smb_proto::dir::notify_filter::FILE_NAME,
        }
        .encode(x)
    })
}

/// SET_INFO FileDispositionInformation: delete `file` when it closes.
fn set_delete_pending(c: &mut Client, file: FileId) -> NtStatus {
    c.call(Command::SetInfo, |b| {
        b.put_u16_le(33);
        b.put_u8(1); // SMB2_0_INFO_FILE
        b.put_u8(13); // FileDispositionInformation
        b.put_u32_le(1);
        b.put_u16_le(64 + 32);
        b.put_u16_le(0);
        b.put_u32_le(0);
        b.put_u64_le(file.persistent);
        b.put_u64_le(file.volatile);
        b.put_u8(1);
    })
    .h
    .status
}

#[test]
fn a_pending_notify_ends_delete_pending_when_its_directory_is_deleted() {
    let fx = start(|_| {});
    let mut a = Client::login(&fx);
    let mut b = Client::login(&fx);
    for by_disposition in [false, true] {
        let dir = a
            .create(
                "gone",
                access::FILE_LIST_DIRECTORY,
                ALL_SHARE,
                disposition::CREATE,
                options::DIRECTORY_FILE,
            )
            .unwrap();
        assert_eq!(watch(&mut a, dir).h.status, NtStatus::PENDING);
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
