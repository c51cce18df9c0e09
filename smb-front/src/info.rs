//! QUERY_INFO and SET_INFO: file, filesystem and security classes over
//! engine attributes; times, READONLY, size, delete disposition, rename,
//! hard links, owner/group/mode from security descriptors.

use bytes::{Bytes, BytesMut};
use cache_engine::types::{FileType, SetAttr, SetTime, Timespec};
use smb_proto::dir::{encode_output_buffer_response, notify_action, notify_filter};
use smb_proto::error_response::encode_buffer_too_small;
use smb_proto::fscc::{
    self, attributes as fa, class, fit_output, fs_attributes as fsa, fs_class, BasicInfo, FileInfo, Fit,
    FsInfo, RenameInfo, SetFileInfo, StandardInfo, StreamEntry,
};
use smb_proto::info::{info_type, QueryInfoRequest, SetInfoRequest};
use smb_proto::security::{access as sa, additional_info as ai, SecurityDescriptor};
use smb_proto::{DecodeError, NtStatus};

use crate::context::{Ctx, Reply, Result};
use crate::errors::EngineResult;
use crate::fileops::{attr_of, walk, Open};
use crate::state::on_file;
use crate::{notify, posix};

fn decode_status(e: DecodeError) -> NtStatus {
    match e {
        DecodeError::Unsupported { .. } => NtStatus::INVALID_INFO_CLASS,
        DecodeError::Truncated { .. } => NtStatus::INFO_LENGTH_MISMATCH,
        _ => NtStatus::INVALID_PARAMETER,
    }
}

fn output(encoded: Bytes, fixed: usize, max: u32) -> Result<Reply> {
    let mut b = BytesMut::new();
    match fit_output(encoded, fixed, max) {
        Fit::Whole(d) => {
            encode_output_buffer_response(&d, &mut b);
            Ok(Reply::ok(b))
        }
        Fit::Truncated(d) => {
            encode_output_buffer_response(&d, &mut b);
            Ok(Reply::with(NtStatus::BUFFER_OVERFLOW, b))
        }
        Fit::TooSmall => Err(NtStatus::INFO_LENGTH_MISMATCH),
    }
}

pub(crate) async fn query(ctx: &mut Ctx, req: QueryInfoRequest) -> Result<Reply> {
    let o = ctx.open(req.file_id)?;
    match req.info_type {
        info_type::FILE => {
            // Only the classes that show attributes or times need the right
            // to read them (MS-FSA 2.1.5.11).
            if matches!(
                req.file_info_class,
                class::BASIC | class::ALL | class::NETWORK_OPEN | class::ATTRIBUTE_TAG
            ) {
                o.require(sa::FILE_READ_ATTRIBUTES)?;
            }
            let info = file_info(ctx, &o, req.file_info_class).await?;
            let mut b = BytesMut::new();
            info.encode(&mut b);
            let min = info
                .fixed_len()
                .max(windows_min(info_type::FILE, req.file_info_class));
            output(b.freeze(), min, req.output_buffer_length)
        }
        info_type::FILESYSTEM if req.file_info_class == fs_class::CONTROL => {
            // FileFsControlInformation: no quotas (default threshold and
            // limit -1).
            let mut b = BytesMut::with_capacity(48);
            b.extend_from_slice(&[0; 24]);
            b.extend_from_slice(&u64::MAX.to_le_bytes());
            b.extend_from_slice(&u64::MAX.to_le_bytes());
            b.extend_from_slice(&[0; 8]);
            output(b.freeze(), 48, req.output_buffer_length)
        }
        info_type::FILESYSTEM => {
            let info = fs_info(ctx, &o, req.file_info_class).await?;
            let mut b = BytesMut::new();
            info.encode(&mut b);
            let min = info
                .fixed_len()
                .max(windows_min(info_type::FILESYSTEM, req.file_info_class));
            output(b.freeze(), min, req.output_buffer_length)
        }
        info_type::SECURITY => {
            o.require(sa::READ_CONTROL)?;
            let a = attr_of(ctx.srv(), &o).await?;
            let mut b = BytesMut::new();
            posix::security_descriptor(&a).encode(req.additional_information, &mut b);
            if b.len() > req.output_buffer_length as usize {
                let mut e = BytesMut::new();
                encode_buffer_too_small(b.len() as u32, &mut e);
                return Ok(Reply::with(NtStatus::BUFFER_TOO_SMALL, e));
            }
            let mut out = BytesMut::new();
            encode_output_buffer_response(&b, &mut out);
            Ok(Reply::ok(out))
        }
        info_type::QUOTA => Err(NtStatus::NOT_SUPPORTED),
        _ => Err(NtStatus::INVALID_PARAMETER),
    }
}

/// The smallest OutputBufferLength Windows takes for a class before it
/// answers INFO_LENGTH_MISMATCH: the C structure's size, padding included,
/// where that is more than the wire's fixed part.
fn windows_min(kind: u8, cls: u8) -> usize {
    match (kind, cls) {
        (info_type::FILE, class::ALL) => 104,
        (info_type::FILE, class::ALTERNATE_NAME | class::NORMALIZED_NAME) => 8,
        (info_type::FILE, class::STREAM) => 32,
        (info_type::FILESYSTEM, fs_class::VOLUME) => 24,
        (info_type::FILESYSTEM, fs_class::ATTRIBUTE) => 16,
        _ => 0,
    }
}

async fn file_info(ctx: &Ctx, o: &Open, cls: u8) -> Result<FileInfo> {
    let srv = ctx.srv().clone();
    let a = attr_of(&srv, o).await?;
    let name = o.name();
    let basic = BasicInfo {
        times: posix::times(&a),
        attributes: posix::attributes(&a, &name),
    };
    let is_dir = a.ftype == FileType::Directory;
    let standard = |delete_pending| StandardInfo {
        allocation_size: posix::allocation(&a),
        end_of_file: posix::end_of_file(&a),
        number_of_links: a.nlink,
        delete_pending,
        directory: is_dir,
    };
    let pending = || on_file(&srv, o.fh, |f| f.delete_pending);
    Ok(match cls {
        class::BASIC => FileInfo::Basic(basic),
        class::STANDARD => FileInfo::Standard(standard(pending().await?)),
        class::INTERNAL => FileInfo::Internal {
            index_number: a.fileid,
        },
        class::EA => FileInfo::Ea { ea_size: 0 },
        class::ACCESS => FileInfo::Access {
            access_flags: o.access,
        },
        class::POSITION => FileInfo::Position {
            current_byte_offset: 0,
        },
        class::MODE => FileInfo::Mode { mode: 0 },
        class::ALIGNMENT => FileInfo::Alignment {
            alignment_requirement: 0,
        },
        class::ALL => FileInfo::All {
            basic,
            standard: standard(pending().await?),
            index_number: a.fileid,
            ea_size: 0,
            access_flags: o.access,
            current_byte_offset: 0,
            mode: 0,
            alignment_requirement: 0,
            name: format!("\\{}", o.path.borrow()),
        },
        class::STREAM if is_dir => FileInfo::Stream(Vec::new()),
        class::STREAM => FileInfo::Stream(vec![StreamEntry {
            name: "::$DATA".into(),
            size: a.size,
            allocation_size: posix::allocation(&a),
        }]),
        class::COMPRESSION => FileInfo::Compression {
            compressed_file_size: a.size,
            compression_format: 0,
            compression_unit_shift: 0,
            chunk_shift: 0,
            cluster_shift: 0,
        },
        class::NETWORK_OPEN => FileInfo::NetworkOpen {
            times: basic.times,
            allocation_size: posix::allocation(&a),
            end_of_file: posix::end_of_file(&a),
            attributes: basic.attributes,
        },
        class::ATTRIBUTE_TAG => FileInfo::AttributeTag {
            attributes: basic.attributes,
            reparse_tag: 0,
        },
        class::NORMALIZED_NAME => FileInfo::NormalizedName(o.path.borrow().clone()),
        class::ALTERNATE_NAME => FileInfo::AlternateName(posix::short_name(&name)),
        class::FULL_EA => {
            o.require(sa::FILE_READ_EA)?;
            return Err(NtStatus::NO_EAS_ON_FILE);
        }
        _ => return Err(NtStatus::INVALID_INFO_CLASS),
    })
}

async fn fs_info(ctx: &Ctx, o: &Open, cls: u8) -> Result<FsInfo> {
    let srv = ctx.srv().clone();
    let size = || async {
        let (st, _) = srv.engine.fsstat(&o.cred, &o.fh).await.nt()?;
        Ok::<_, NtStatus>((st.total_bytes / 4096, st.avail_bytes / 4096, st.free_bytes / 4096))
    };
    let serial = u32::from_le_bytes([srv.guid[0], srv.guid[1], srv.guid[2], srv.guid[3]]);
    Ok(match cls {
        fs_class::VOLUME => FsInfo::Volume {
            creation_time: srv.start_time,
            serial_number: serial,
            supports_objects: false,
            label: srv.shares[o.share].name.clone(),
        },
        fs_class::SIZE => {
            let (total, avail, _) = size().await?;
            FsInfo::Size {
                total_allocation_units: total,
                available_allocation_units: avail,
                sectors_per_allocation_unit: 8,
                bytes_per_sector: 512,
            }
        }
        fs_class::FULL_SIZE => {
            let (total, avail, free) = size().await?;
            FsInfo::FullSize {
                total_allocation_units: total,
                caller_available_allocation_units: avail,
                actual_available_allocation_units: free,
                sectors_per_allocation_unit: 8,
                bytes_per_sector: 512,
            }
        }
        fs_class::DEVICE => FsInfo::Device {
            // FILE_DEVICE_DISK; FILE_DEVICE_IS_MOUNTED.
            device_type: 7,
            characteristics: 0x20,
        },
        fs_class::ATTRIBUTE => FsInfo::Attribute {
            attributes: fsa::CASE_SENSITIVE_SEARCH
                | fsa::CASE_PRESERVED_NAMES
                | fsa::UNICODE_ON_DISK
                | fsa::PERSISTENT_ACLS
                | fsa::SUPPORTS_HARD_LINKS,
            max_component_name_length: 255,
            name: "NTFS".into(),
        },
        fs_class::OBJECT_ID => FsInfo::ObjectId {
            object_id: srv.guid,
            extended_info: [0; 48],
        },
        fs_class::SECTOR_SIZE => FsInfo::SectorSize {
            logical_bytes_per_sector: 512,
            physical_bytes_per_sector_for_atomicity: 4096,
            physical_bytes_per_sector_for_performance: 4096,
            effective_physical_bytes_per_sector_for_atomicity: 4096,
            flags: 0,
            byte_offset_for_sector_alignment: 0,
            byte_offset_for_partition_alignment: 0,
        },
        _ => return Err(NtStatus::INVALID_INFO_CLASS),
    })
}

pub(crate) async fn set(ctx: &mut Ctx, req: SetInfoRequest) -> Result<Reply> {
    let o = ctx.open(req.file_id)?;
    if o.read_only_share {
        return Err(NtStatus::ACCESS_DENIED);
    }
    match req.info_type {
        info_type::FILE => {
            let info = SetFileInfo::decode(req.file_info_class, req.buffer).map_err(decode_status)?;
            let resizes = matches!(
                info,
                SetFileInfo::EndOfFile { .. } | SetFileInfo::Allocation { .. }
            );
            if resizes && !o.is_dir && o.require(sa::FILE_WRITE_DATA).is_ok() {
                crate::oplock::before_change(ctx, &o, false).await?;
            }
            if matches!(info, SetFileInfo::Rename(_)) && o.require(sa::DELETE).is_ok() {
                crate::oplock::before_change(ctx, &o, true).await?;
            }
            set_file(ctx, &o, info).await?;
        }
        info_type::SECURITY => {
            o.require(sa::WRITE_DAC | sa::WRITE_OWNER)?;
            let sd = SecurityDescriptor::decode(req.buffer).map_err(|_| NtStatus::INVALID_SECURITY_DESCR)?;
            let a = attr_of(ctx.srv(), &o).await?;
            let (uid, gid, mode) = posix::from_security_descriptor(&sd, &a);
            let want = req.additional_information;
            let set = SetAttr {
                uid: uid.filter(|_| want & ai::OWNER_SECURITY_INFORMATION != 0),
                gid: gid.filter(|_| want & ai::GROUP_SECURITY_INFORMATION != 0),
                mode: mode.filter(|_| want & ai::DACL_SECURITY_INFORMATION != 0),
                ..SetAttr::default()
            };
            if set != SetAttr::default() {
                ctx.srv().engine.setattr(&o.cred, &o.fh, &set, None).await.nt()?;
            }
        }
        info_type::FILESYSTEM => {
            fscc::decode_set_fs_info(req.file_info_class, &req.buffer).map_err(decode_status)?;
            return Err(NtStatus::NOT_SUPPORTED);
        }
        _ => return Err(NtStatus::INVALID_PARAMETER),
    }
    Ok(Reply::encode(smb_proto::simple::encode_set_info_response))
}

fn set_time(ft: u64) -> SetTime {
    // 0: leave; -1 / -2: stop / resume automatic updates (left as they are).
    if ft == 0 || ft >= u64::MAX - 1 {
        return SetTime::DontChange;
    }
    let (sec, nsec) = fscc::filetime_to_unix(ft);
    SetTime::Client(Timespec { sec, nsec })
}

async fn set_file(ctx: &Ctx, o: &Open, info: SetFileInfo) -> Result<()> {
    let srv = ctx.srv().clone();
    let eng = &srv.engine;
    match info {
        SetFileInfo::Basic(b) => {
            o.require(sa::FILE_WRITE_ATTRIBUTES)?;
            let a = attr_of(&srv, o).await?;
            let mut set = SetAttr {
                atime: set_time(b.times.last_access),
                mtime: set_time(b.times.last_write),
                ..SetAttr::default()
            };
            if b.attributes != 0 && a.ftype != FileType::Directory {
                if b.attributes & fa::DIRECTORY != 0 {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                let mode = if b.attributes & fa::READONLY != 0 {
                    a.mode & !0o222
                } else if a.mode & 0o200 == 0 {
                    a.mode | 0o200
                } else {
                    a.mode
                };
                if mode != a.mode {
                    set.mode = Some(mode);
                }
            }
            if set != SetAttr::default() {
                eng.setattr(&o.cred, &o.fh, &set, None).await.nt()?;
            }
            notify::basic_info_set(&srv, o, &b);
        }
        SetFileInfo::EndOfFile { end_of_file } => {
            o.require(sa::FILE_WRITE_DATA)?;
            if o.is_dir {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            let set = SetAttr {
                size: Some(end_of_file),
                ..SetAttr::default()
            };
            eng.setattr(&o.cred, &o.fh, &set, None).await.nt()?;
        }
        SetFileInfo::Allocation { allocation_size } => {
            o.require(sa::FILE_WRITE_DATA)?;
            let a = attr_of(&srv, o).await?;
            if !o.is_dir && allocation_size < a.size {
                let set = SetAttr {
                    size: Some(allocation_size),
                    ..SetAttr::default()
                };
                eng.setattr(&o.cred, &o.fh, &set, None).await.nt()?;
            }
        }
        SetFileInfo::Disposition { delete_pending } => disposition(ctx, o, delete_pending).await?,
        SetFileInfo::DispositionEx { flags } => {
            disposition(ctx, o, flags & fscc::disposition_ex::DELETE != 0).await?
        }
        SetFileInfo::Rename(r) => rename(ctx, o, r).await?,
        SetFileInfo::Link(r) => link(ctx, o, r).await?,
        SetFileInfo::Position { .. } | SetFileInfo::Mode { .. } => {}
        SetFileInfo::FullEa(_) => return Err(NtStatus::EAS_NOT_SUPPORTED),
    }
    Ok(())
}

async fn disposition(ctx: &Ctx, o: &Open, on: bool) -> Result<()> {
    o.require(sa::DELETE)?;
    let srv = ctx.srv().clone();
    if o.path.borrow().is_empty() {
        return Err(NtStatus::ACCESS_DENIED);
    }
    if on {
        let a = attr_of(&srv, o).await?;
        if a.ftype == FileType::Directory {
            let page = srv.engine.readdir(&o.cred, &o.fh, 0, 0, 4096).await.nt()?;
            if !page.entries.is_empty() {
                return Err(NtStatus::DIRECTORY_NOT_EMPTY);
            }
        } else if a.mode & 0o200 == 0 {
            return Err(NtStatus::CANNOT_DELETE);
        }
    }
    let key = o.key;
    on_file(&srv, o.fh, move |f| f.set_delete_pending(key, on)).await
}

/// The directory and name a rename or link target names.
async fn target(
    ctx: &Ctx,
    o: &Open,
    r: &RenameInfo,
) -> Result<(cache_engine::FileHandle, String, Vec<String>)> {
    if r.root_directory != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let comps = posix::split_path(r.name.trim_start_matches('\\'))?;
    let (last, parents) = comps.split_last().ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let srv = ctx.srv();
    let dir = walk(srv, &o.cred, srv.shares[o.share].root, parents).await?;
    Ok((dir, last.clone(), comps.clone()))
}

async fn rename(ctx: &Ctx, o: &Open, r: RenameInfo) -> Result<()> {
    o.require(sa::DELETE)?;
    let srv = ctx.srv().clone();
    let (dir, name, comps) = target(ctx, o, &r).await?;
    let (from_dir, from_name) = o.loc.borrow().clone();
    if from_name.is_empty() {
        return Err(NtStatus::ACCESS_DENIED);
    }
    match srv.engine.lookup(&o.cred, &dir, name.as_bytes()).await {
        Ok((fh, a, _)) => {
            if fh == o.fh {
                // Same object (a case change, or nothing at all).
            } else if !r.replace_if_exists {
                return Err(NtStatus::OBJECT_NAME_COLLISION);
            } else if a.ftype == FileType::Directory || on_file(&srv, fh, |f| f.open_count()).await? > 0 {
                // Windows does not replace a directory or an open file.
                return Err(NtStatus::ACCESS_DENIED);
            }
        }
        Err(cache_engine::Error::NoEnt) => {}
        Err(e) => return Err(crate::errors::status(e)),
    }
    srv.engine
        .rename(&o.cred, &from_dir, &from_name, &dir, name.as_bytes())
        .await
        .nt()?;
    let loc = (dir, name.clone().into_bytes());
    *o.loc.borrow_mut() = loc.clone();
    *o.path.borrow_mut() = comps.join("\\");
    let key = o.key;
    on_file(&srv, o.fh, move |f| f.relocate(key, loc)).await?;
    let filter = if o.is_dir {
        notify_filter::DIR_NAME
    } else {
        notify_filter::FILE_NAME
    };
    let old = String::from_utf8_lossy(&from_name).into_owned();
    notify::changed(&srv, from_dir, filter, notify_action::RENAMED_OLD_NAME, &old);
    notify::changed(&srv, dir, filter, notify_action::RENAMED_NEW_NAME, &name);
    Ok(())
}

async fn link(ctx: &Ctx, o: &Open, r: RenameInfo) -> Result<()> {
    if o.is_dir {
        return Err(NtStatus::FILE_IS_A_DIRECTORY);
    }
    let srv = ctx.srv().clone();
    let (dir, name, _) = target(ctx, o, &r).await?;
    match srv.engine.lookup(&o.cred, &dir, name.as_bytes()).await {
        Ok(_) if !r.replace_if_exists => return Err(NtStatus::OBJECT_NAME_COLLISION),
        Ok(_) => {
            srv.engine.remove(&o.cred, &dir, name.as_bytes()).await.nt()?;
        }
        Err(cache_engine::Error::NoEnt) => {}
        Err(e) => return Err(crate::errors::status(e)),
    }
    srv.engine
        .link(&o.cred, &o.fh, &dir, name.as_bytes())
        .await
        .nt()?;
    notify::changed(&srv, dir, notify_filter::FILE_NAME, notify_action::ADDED, &name);
    Ok(())
}
