//! MOUNT v3: hands out the root handle of an export (or of a directory
//! under it) to clients its rules admit.

use std::sync::Arc;

use cache_engine::types::FileType;
use nfs_proto::mount::*;
use nfs_proto::rpc::ReplyStat;
use nfs_proto::xdr::{List, Opaque};
use nfs_proto::Decoder;

use crate::context::{args, Body, Ctx};
use crate::exports::{find, normalize, wire_handle};
use crate::Server;

pub(crate) async fn call(srv: &Arc<Server>, ctx: &Ctx, proc_: u32, d: Decoder) -> Result<Body, ReplyStat> {
    let p = MountProc3::from_u32(proc_).ok_or(ReplyStat::ProcUnavail)?;
    let b = ctx.body();
    let host = ctx.peer.ip().to_string();
    Ok(match p {
        MountProc3::Null => b,
        MountProc3::Mnt => {
            let path: DirPath = args(d)?;
            let res = mnt(srv, ctx, path.as_bytes()).await;
            if let (MountRes3::Ok(_), Ok(p)) = (&res, std::str::from_utf8(path.as_bytes())) {
                let mut m = srv.mounts.lock().unwrap_or_else(|e| e.into_inner());
                let entry = (host, p.to_string());
                if !m.contains(&entry) && m.len() < 65536 {
                    m.push(entry);
                }
            }
            b.put(&res)
        }
        MountProc3::Dump => {
            let m = srv.mounts.lock().unwrap_or_else(|e| e.into_inner());
            let list = m
                .iter()
                .map(|(h, p)| MountBody {
                    hostname: Opaque::new(h.clone().into_bytes()),
                    directory: Opaque::new(p.clone().into_bytes()),
                })
                .collect();
            b.put(&MountList(list))
        }
        MountProc3::Umnt => {
            let path: DirPath = args(d)?;
            let p = String::from_utf8_lossy(path.as_bytes()).into_owned();
            let mut m = srv.mounts.lock().unwrap_or_else(|e| e.into_inner());
            m.retain(|(h, q)| !(*h == host && *q == p));
            b
        }
        MountProc3::Umntall => {
            let mut m = srv.mounts.lock().unwrap_or_else(|e| e.into_inner());
            m.retain(|(h, _)| *h != host);
            b
        }
        MountProc3::Export => {
            let list = srv
                .exports
                .iter()
                .map(|e| ExportNode {
                    dir: Opaque::new(e.path.clone().into_bytes()),
                    groups: Groups(
                        e.rules
                            .iter()
                            .flat_map(|r| r.cfg.clients.iter())
                            .map(|c| Opaque::new(c.clone().into_bytes()))
                            .collect(),
                    ),
                })
                .collect();
            b.put(&Exports(list))
        }
    })
}

async fn mnt(srv: &Server, ctx: &Ctx, raw: &[u8]) -> MountRes3 {
    let Some(path) = std::str::from_utf8(raw).ok().and_then(normalize) else {
        return MountRes3::Err(MountStat3::NoEnt);
    };
    let Some((i, rest)) = find(srv.exports.iter().map(|e| e.path.as_str()), &path) else {
        return MountRes3::Err(MountStat3::NoEnt);
    };
    let Some(rule) = srv.admit(ctx, i) else {
        return MountRes3::Err(MountStat3::Acces);
    };
    let cred = srv.credentials(ctx, rule);
    let mut fh = srv.exports[i].root;
    for c in rest.split('/').filter(|c| !c.is_empty()) {
        if c == ".." {
            return MountRes3::Err(MountStat3::Acces);
        }
        match srv.engine.lookup(&cred, &fh, c.as_bytes()).await {
            Ok((h, attr, _)) if attr.ftype == FileType::Directory => fh = h,
            Ok(_) => return MountRes3::Err(MountStat3::NotDir),
            Err(cache_engine::Error::NoEnt) => return MountRes3::Err(MountStat3::NoEnt),
            Err(cache_engine::Error::Access) => return MountRes3::Err(MountStat3::Acces),
            Err(_) => return MountRes3::Err(MountStat3::Io),
        }
    }
    let Ok(fhandle) = wire_handle(&srv.engine, i, &fh) else {
        return MountRes3::Err(MountStat3::ServerFault);
    };
    MountRes3::Ok(MountOk {
        fhandle: Opaque(fhandle),
        auth_flavors: List(vec![nfs_proto::rpc::AuthFlavor::Sys as u32]),
    })
}
