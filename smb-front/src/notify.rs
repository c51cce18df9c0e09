//! CHANGE_NOTIFY: a watcher on the directory's owning shard, answered
//! when an SMB client changes a name in the directory or sets the basic
//! information (attributes, times) of a file in it (or with
//! NOTIFY_CLEANUP when the directory is closed, DELETE_PENDING when it is
//! deleted, through SMB or NFS, CANCELLED on CANCEL).
//! Other changes made through NFS or straight on the core filer are not
//! seen, and neither are changes that happen while no CHANGE_NOTIFY is
//! pending.

use std::sync::Arc;

use bytes::BytesMut;
use cache_engine::FileHandle;
use smb_proto::dir::{
    encode_notify_list, encode_output_buffer_response, notify_action, notify_filter, ChangeNotifyRequest,
    FileNotify,
};
use smb_proto::fscc::BasicInfo;
use smb_proto::NtStatus;

use crate::context::{Ctx, Reply, Result};
use crate::fileops::Open;
use crate::state::{on_file, Watcher};
use crate::Server;

/// Tell the watchers of `dir` that `name` changed (in the background).
pub(crate) fn changed(srv: &Arc<Server>, dir: FileHandle, filter: u32, action: u32, name: &str) {
    let srv = srv.clone();
    let change = FileNotify {
        action,
        name: name.to_string(),
    };
    compio::runtime::spawn(async move {
        let _ = on_file(&srv, dir, move |f| f.changed(filter, &[change])).await;
    })
    .detach();
}

/// Tell the watchers of `o`'s directory that FileBasicInformation was set
/// on it: MODIFIED under the filter of each field the client gave (0
/// leaves a time alone, -1 and -2 only stop or resume its updates).
pub(crate) fn basic_info_set(srv: &Arc<Server>, o: &Open, b: &BasicInfo) {
    let given = |t: u64| t != 0 && t < u64::MAX - 1;
    let filter = [
        (b.attributes != 0, notify_filter::ATTRIBUTES),
        (given(b.times.last_write), notify_filter::LAST_WRITE),
        (given(b.times.last_access), notify_filter::LAST_ACCESS),
        (given(b.times.creation), notify_filter::CREATION),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |f, (_, bit)| f | bit);
    let (dir, name) = o.loc.borrow().clone();
    // The share's root has no directory to tell.
    if filter != 0 && !name.is_empty() {
        changed(
            srv,
            dir,
            filter,
            notify_action::MODIFIED,
            &String::from_utf8_lossy(&name),
        );
    }
}

pub(crate) async fn change_notify(ctx: &mut Ctx, req: ChangeNotifyRequest) -> Result<Reply> {
    let o = ctx.open(req.file_id)?;
    if !o.is_dir {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    o.require(smb_proto::security::access::FILE_LIST_DIRECTORY)?;
    let srv = ctx.srv().clone();
    let (tx, rx) = async_channel::bounded(16);
    let id = srv.unique();
    let w = Watcher {
        key: o.key,
        id,
        filter: req.completion_filter,
        tx,
    };
    on_file(&srv, o.fh, move |f| f.watch(w)).await?;
    let cancel = ctx.go_async();
    let got = {
        let a = rx.recv();
        let b = cancel.recv();
        futures::pin_mut!(a, b);
        match futures::future::select(a, b).await {
            futures::future::Either::Left((r, _)) => Some(r),
            futures::future::Either::Right(_) => None,
        }
    };
    let mut b = BytesMut::new();
    match got {
        None => {
            // Only this request's watcher goes; the open stays.
            on_file(&srv, o.fh, move |f| f.unwatch(id)).await?;
            Err(NtStatus::CANCELLED)
        }
        Some(Err(_)) => {
            encode_output_buffer_response(&[], &mut b);
            Ok(Reply::with(NtStatus::NOTIFY_CLEANUP, b))
        }
        Some(Ok(Err(status))) => Err(status),
        Some(Ok(Ok(changes))) => {
            let mut list = BytesMut::new();
            encode_notify_list(&changes, &mut list);
            if list.len() > req.output_buffer_length as usize {
                encode_output_buffer_response(&[], &mut b);
                return Ok(Reply::with(NtStatus::NOTIFY_ENUM_DIR, b));
            }
            encode_output_buffer_response(&list, &mut b);
            Ok(Reply::ok(b))
        }
    }
}
