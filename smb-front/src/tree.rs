//! TREE_CONNECT / TREE_DISCONNECT: shares by name (case-insensitive),
//! their user lists, encryption and read-only flags, and IPC$.

use bytes::BytesMut;
use smb_proto::security::access;
use smb_proto::tree::{share_flags, share_type, TreeConnectRequest, TreeConnectResponse};
use smb_proto::NtStatus;

use crate::context::{Ctx, Reply, Result};

/// One connected tree of a session.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    /// Index into the server's shares; `None` for IPC$.
    pub share: Option<usize>,
    pub encrypt: bool,
    pub read_only: bool,
}

pub(crate) fn connect(ctx: &mut Ctx, req: TreeConnectRequest) -> Result<Reply> {
    let srv = ctx.srv().clone();
    let name = req.path.rsplit('\\').next().unwrap_or("");
    let dialect = ctx
        .conn
        .neg()
        .map(|n| n.dialect)
        .ok_or(NtStatus::INVALID_PARAMETER)?;
    let (tree, kind) = if name.eq_ignore_ascii_case("IPC$") {
        (
            Tree {
                share: None,
                encrypt: false,
                read_only: true,
            },
            share_type::PIPE,
        )
    } else {
        let (idx, share) = srv.share(name).ok_or(NtStatus::BAD_NETWORK_NAME)?;
        let user = ctx.with_session(|s| s.user.to_lowercase())?;
        if !share.users.is_empty() && !share.users.contains(&user) {
            tracing::info!(peer = %ctx.conn.peer, "smb: {user} may not connect to {}", share.name);
            return Err(NtStatus::ACCESS_DENIED);
        }
        if share.encrypt && !dialect.is_smb3() {
            return Err(NtStatus::ACCESS_DENIED);
        }
        (
            Tree {
                share: Some(idx),
                encrypt: share.encrypt,
                read_only: share.read_only,
            },
            share_type::DISK,
        )
    };
    let mut flags = share_flags::NO_CACHING;
    if tree.encrypt {
        flags |= share_flags::ENCRYPT_DATA;
    }
    let maximal_access = if tree.read_only {
        crate::posix::READ_ACCESS
    } else {
        access::FILE_ALL_ACCESS
    };
    let id = ctx.with_session(|s| {
        let id = s.next_tree;
        s.next_tree = s.next_tree.wrapping_add(1).max(1);
        s.trees.insert(id, tree);
        id
    })?;
    ctx.tree_id = id;
    let mut b = BytesMut::new();
    TreeConnectResponse {
        share_type: kind,
        share_flags: flags,
        capabilities: 0,
        maximal_access,
    }
    .encode(&mut b);
    Ok(Reply::ok(b))
}

/// The request's tree, or NETWORK_NAME_DELETED.
pub(crate) fn check(ctx: &Ctx) -> Result<Tree> {
    ctx.with_session(|s| s.trees.get(&ctx.tree_id).cloned())?
        .ok_or(NtStatus::NETWORK_NAME_DELETED)
}

pub(crate) async fn disconnect(ctx: &mut Ctx) -> Result<Reply> {
    check(ctx)?;
    let (sid, tid) = (ctx.session_id, ctx.tree_id);
    ctx.with_session(|s| s.trees.remove(&tid))?;
    crate::fileops::close_where(&ctx.conn, |o| o.session == sid && o.tree == tid).await;
    Ok(Reply::encode(smb_proto::simple::encode_empty))
}
