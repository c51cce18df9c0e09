//! IOCTL: FSCTL_VALIDATE_NEGOTIATE_INFO, FSCTL_QUERY_NETWORK_INTERFACE_INFO,
//! and server-side copy (FSCTL_SRV_REQUEST_RESUME_KEY, FSCTL_SRV_COPYCHUNK
//! and _WRITE), done with the READ and WRITE paths (byte-range locks,
//! oplock and lease breaks, the file's dirty flag).

use bytes::{Bytes, BytesMut};
use cache_engine::types::Stability;
use smb_proto::ioctl::{
    encode_network_interfaces, encode_resume_key, fsctl, CopyChunkRequest, CopyChunkResponse, IoctlRequest,
    IoctlResponse, NetworkInterface, ValidateNegotiateInfoRequest, ValidateNegotiateInfoResponse,
    IOCTL_IS_FSCTL,
};
use smb_proto::security::access as sa;
use smb_proto::{FileId, NtStatus};

use crate::context::{Ctx, Reply, Result};

/// Server-side copy limits (what Windows announces).
const MAX_CHUNKS: u32 = 256;
const MAX_CHUNK: u32 = 1 << 20;
const MAX_TOTAL: u32 = 16 << 20;

pub(crate) async fn ioctl(ctx: &mut Ctx, req: IoctlRequest) -> Result<Reply> {
    if req.flags != IOCTL_IS_FSCTL {
        return Err(NtStatus::NOT_SUPPORTED);
    }
    let (status, output) = match req.ctl_code {
        fsctl::VALIDATE_NEGOTIATE_INFO => (NtStatus::SUCCESS, validate_negotiate(ctx, &req)?),
        fsctl::QUERY_NETWORK_INTERFACE_INFO => {
            let mut b = BytesMut::new();
            encode_network_interfaces(
                &[NetworkInterface {
                    if_index: 1,
                    capability: 0,
                    link_speed: 10_000_000_000,
                    address: ctx.conn.local.ip(),
                }],
                &mut b,
            );
            (NtStatus::SUCCESS, b)
        }
        fsctl::GET_OBJECT_ID | fsctl::CREATE_OR_GET_OBJECT_ID => {
            let o = ctx.open(req.file_id)?;
            let a = crate::fileops::attr_of(ctx.srv(), &o).await?;
            // FILE_OBJECTID_BUFFER: an object id from the file id, the
            // volume's id as birth volume, the rest zero.
            let mut b = BytesMut::with_capacity(64);
            b.extend_from_slice(&a.fileid.to_le_bytes());
            b.extend_from_slice(&a.fsid.to_le_bytes());
            b.extend_from_slice(&ctx.srv().guid);
            b.extend_from_slice(&[0; 32]);
            (NtStatus::SUCCESS, b)
        }
        fsctl::SRV_REQUEST_RESUME_KEY => {
            let o = ctx.open(req.file_id)?;
            let mut b = BytesMut::new();
            encode_resume_key(&resume_key(o.fid, ctx.srv().id), &mut b);
            (NtStatus::SUCCESS, b)
        }
        fsctl::SRV_COPYCHUNK | fsctl::SRV_COPYCHUNK_WRITE => copychunk(ctx, &req).await?,
        fsctl::DFS_GET_REFERRALS | fsctl::DFS_GET_REFERRALS_EX => return Err(NtStatus::FS_DRIVER_REQUIRED),
        fsctl::PIPE_TRANSCEIVE | fsctl::PIPE_PEEK | fsctl::PIPE_WAIT => return Err(NtStatus::NOT_SUPPORTED),
        _ => {
            // A closed handle is reported before an unknown control code.
            if req.file_id != FileId::ANY || ctx.last_fid.is_some() {
                ctx.open(req.file_id)?;
            }
            return Err(NtStatus::INVALID_DEVICE_REQUEST);
        }
    };
    if output.len() > req.max_output_response as usize {
        return Err(NtStatus::BUFFER_TOO_SMALL);
    }
    let mut b = BytesMut::new();
    IoctlResponse {
        ctl_code: req.ctl_code,
        file_id: req.file_id,
        input: Bytes::new(),
        output: output.freeze(),
    }
    .encode(&mut b);
    Ok(Reply::with(status, b))
}

fn resume_key(fid: FileId, server: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&fid.persistent.to_le_bytes());
    k[8..16].copy_from_slice(&fid.volatile.to_le_bytes());
    k[16..].copy_from_slice(&server.to_le_bytes());
    k
}

fn validate_negotiate(ctx: &Ctx, req: &IoctlRequest) -> Result<BytesMut> {
    let v =
        ValidateNegotiateInfoRequest::decode(req.input.clone()).map_err(|_| NtStatus::INVALID_PARAMETER)?;
    let neg = ctx.conn.neg().ok_or(NtStatus::INVALID_PARAMETER)?;
    if v.guid != neg.client_guid
        || v.security_mode != neg.client_security_mode
        || v.capabilities != neg.client_caps
        || !v.dialects.contains(&neg.dialect.revision())
    {
        tracing::warn!(peer = %ctx.conn.peer, "smb: VALIDATE_NEGOTIATE_INFO does not match the negotiation");
        return Err(NtStatus::ACCESS_DENIED);
    }
    let mut b = BytesMut::new();
    ValidateNegotiateInfoResponse {
        capabilities: neg.server_caps,
        guid: ctx.srv().guid,
        security_mode: neg.server_security_mode,
        dialect: neg.dialect.revision(),
    }
    .encode(&mut b);
    Ok(b)
}

async fn copychunk(ctx: &mut Ctx, req: &IoctlRequest) -> Result<(NtStatus, BytesMut)> {
    let dst = ctx.open(req.file_id)?;
    let c = CopyChunkRequest::decode(req.input.clone()).map_err(|_| NtStatus::INVALID_PARAMETER)?;
    let limits = || {
        let mut b = BytesMut::new();
        CopyChunkResponse {
            chunks_written: MAX_CHUNKS,
            chunk_bytes_written: MAX_CHUNK,
            total_bytes_written: MAX_TOTAL,
        }
        .encode(&mut b);
        (NtStatus::INVALID_PARAMETER, b)
    };
    let total: u64 = c.chunks.iter().map(|ch| u64::from(ch.length)).sum();
    if c.chunks.len() > MAX_CHUNKS as usize
        || c.chunks.iter().any(|ch| ch.length > MAX_CHUNK || ch.length == 0)
        || total > u64::from(MAX_TOTAL)
    {
        return Ok(limits());
    }
    let src = {
        let st = ctx.conn.st.borrow();
        let srv_id = ctx.srv().id;
        st.opens
            .values()
            .find(|o| o.session == ctx.session_id && resume_key(o.fid, srv_id) == c.source_key)
            .cloned()
            .ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?
    };
    src.require(sa::FILE_READ_DATA)?;
    dst.require(sa::FILE_WRITE_DATA)?;
    if req.ctl_code == fsctl::SRV_COPYCHUNK {
        dst.require(sa::FILE_READ_DATA)?;
    }
    if dst.read_only_share {
        return Err(NtStatus::ACCESS_DENIED);
    }
    let how = if dst.write_through {
        Stability::FileSync
    } else {
        Stability::Unstable
    };
    let (mut chunks, mut written) = (0u32, 0u32);
    for ch in &c.chunks {
        let r = crate::fileops::read_data(ctx.srv(), &src, ch.source_offset, ch.length).await?;
        if r.len() < ch.length as usize {
            return Err(NtStatus(0xC000_001F));
        }
        let data = if r.data.len() == 1 {
            r.data.into_iter().next().unwrap_or_default()
        } else {
            let mut b = BytesMut::with_capacity(r.len());
            for d in &r.data {
                b.extend_from_slice(d);
            }
            b.freeze()
        };
        let w = crate::fileops::write_data(ctx, &dst, ch.target_offset, data, how).await?;
        chunks += 1;
        written += w.count;
    }
    let mut b = BytesMut::new();
    CopyChunkResponse {
        chunks_written: chunks,
        chunk_bytes_written: 0,
        total_bytes_written: written,
    }
    .encode(&mut b);
    Ok((NtStatus::SUCCESS, b))
}
