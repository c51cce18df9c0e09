//! The on-disk format and opening it: the superblock, the checks on a
//! configuration, and making a cache file or block device ready (created,
//! sized, its blocks allocated) before the store opens it.

use super::disk::write_all_at;
use super::*;

/// Why the NVMe tier could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid NVMe cache configuration for {path}: {reason}")]
    InvalidConfig { path: PathBuf, reason: String },
    #[error("cannot create cache file {path}: directory {dir} does not exist; create it or configure another path")]
    DirMissing { path: PathBuf, dir: PathBuf },
    #[error("cannot create cache file {path}: directory {dir} is not writable ({source})")]
    DirNotWritable {
        path: PathBuf,
        dir: PathBuf,
        source: io::Error,
    },
    #[error("cache file {path} does not exist and no cache size is configured; set the cache size")]
    SizeRequired { path: PathBuf },
    #[error(
        "cache file {} is {actual} bytes but the configuration says {configured}; \
         delete it or set cache size to {actual}",
        path.display()
    )]
    WrongSize {
        path: PathBuf,
        actual: u64,
        configured: u64,
    },
    #[error("cache device {} is {actual} bytes, smaller than the configured {configured}", path.display())]
    DeviceTooSmall {
        path: PathBuf,
        actual: u64,
        configured: u64,
    },
    #[error(
        "cache {} is too small: {size} bytes, but a 4 KiB superblock and two segments of \
         {segment_size} bytes need {min}",
        path.display()
    )]
    TooSmall {
        path: PathBuf,
        size: u64,
        segment_size: u32,
        min: u64,
    },
    #[error(
        "not enough free space to reserve {size} bytes for cache file {}; free space or lower the \
         cache size ({source})",
        path.display()
    )]
    NoSpace {
        path: PathBuf,
        size: u64,
        source: io::Error,
    },
    #[error(
        "the file system holding {} does not support O_DIRECT; put the cache on a local file system \
         (ext4, xfs) or a block device ({source})",
        path.display()
    )]
    DirectIoUnsupported { path: PathBuf, source: io::Error },
    #[error("cache path {} is neither a regular file nor a block device", path.display())]
    NotAFile { path: PathBuf },
    #[error("permission denied on cache {} ({source})", path.display())]
    PermissionDenied { path: PathBuf, source: io::Error },
    #[error("cannot {op} cache {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

/// The decoded superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub version: u32,
    pub segment_size: u32,
    pub block_size: u32,
    pub size: u64,
    pub segment_count: u64,
    pub epoch: u64,
    pub opened_unix: u64,
}

impl Superblock {
    fn encode(&self) -> AlignedBuf {
        let mut buf = AlignedBuf::zeroed(PAGE);
        let b = buf.as_mut_slice();
        b[0..8].copy_from_slice(&SUPERBLOCK_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.segment_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.block_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.size.to_le_bytes());
        b[32..40].copy_from_slice(&self.segment_count.to_le_bytes());
        b[40..48].copy_from_slice(&self.epoch.to_le_bytes());
        b[48..56].copy_from_slice(&self.opened_unix.to_le_bytes());
        let crc = crate::crc32c(&b[..SUPERBLOCK_CRC_AT]);
        b[SUPERBLOCK_CRC_AT..SUPERBLOCK_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Parse the first page of a cache file; `None` if it is not a valid
    /// superblock (wrong magic or checksum, or too short).
    pub fn decode(b: &[u8]) -> Option<Superblock> {
        let b = b.get(..SUPERBLOCK_CRC_AT + 4)?;
        if b[0..8] != SUPERBLOCK_MAGIC {
            return None;
        }
        let u32_at = |i: usize| {
            b.get(i..i + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let u64_at = |i: usize| {
            b.get(i..i + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
        };
        if u32_at(SUPERBLOCK_CRC_AT)? != crate::crc32c(&b[..SUPERBLOCK_CRC_AT]) {
            return None;
        }
        Some(Superblock {
            version: u32_at(8)?,
            segment_size: u32_at(12)?,
            block_size: u32_at(16)?,
            size: u64_at(24)?,
            segment_count: u64_at(32)?,
            epoch: u64_at(40)?,
            opened_unix: u64_at(48)?,
        })
    }
}

impl SegmentStore {
    /// Create the cache file at `size` bytes, or reuse an existing one of
    /// exactly that size (an existing empty file counts as new); a block
    /// device is used at its own size (error if smaller than `size`, when
    /// `size != 0`). The tier starts empty after every open: the index is in
    /// memory only, and a fresh random epoch is written to the superblock.
    pub async fn open(cfg: NvmeConfig) -> Result<SegmentStore, StoreError> {
        validate(&cfg)?;
        let path = cfg.path.clone();
        let prep_path = path.clone();
        let size = cfg.size;
        // Creation, fallocate and stat are blocking syscalls (fallocate of a
        // large file can take a while): keep them off the shard's event loop.
        let prepared = compio::runtime::spawn_blocking(move || prepare_file(&prep_path, size))
            .await
            .map_err(|e| StoreError::Io {
                path: path.clone(),
                op: "prepare",
                source: io::Error::other(e.to_string()),
            })??;
        let size = prepared;
        let min = SUPERBLOCK_LEN + 2 * u64::from(cfg.segment_size);
        if size < min {
            return Err(StoreError::TooSmall {
                path,
                size,
                segment_size: cfg.segment_size,
                min,
            });
        }
        let segment_count =
            u32::try_from((size - SUPERBLOCK_LEN) / u64::from(cfg.segment_size)).map_err(|_| {
                StoreError::InvalidConfig {
                    path: path.clone(),
                    reason: "more than 2^32 segments; use a larger segment size".into(),
                }
            })?;

        let file = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(&path)
            .await
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => StoreError::DirectIoUnsupported {
                    path: path.clone(),
                    source: e,
                },
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => StoreError::PermissionDenied {
                    path: path.clone(),
                    source: e,
                },
                _ => StoreError::Io {
                    path: path.clone(),
                    op: "open",
                    source: e,
                },
            })?;

        let sb = Superblock {
            version: FORMAT_VERSION,
            segment_size: cfg.segment_size,
            block_size: cfg.block_size,
            size,
            segment_count: u64::from(segment_count),
            epoch: rand::random(),
            opened_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let write_sb = async {
            write_all_at(&file, Rc::new(sb.encode()), 0).await?;
            file.sync_data().await
        };
        write_sb.await.map_err(|e| match e.raw_os_error() {
            // Some file systems accept O_DIRECT at open and refuse the I/O.
            Some(libc::EINVAL) => StoreError::DirectIoUnsupported {
                path: path.clone(),
                source: e,
            },
            _ => StoreError::Io {
                path: path.clone(),
                op: "write the superblock of",
                source: e,
            },
        })?;

        let segs = (0..segment_count)
            .map(|_| SegMeta {
                seq: 0,
                state: SegState::Free,
                used_pages: 0,
                keys: Vec::new(),
                hits: 0,
            })
            .collect();
        tracing::info!(
            path = %path.display(),
            size,
            segment_size = cfg.segment_size,
            segments = segment_count,
            epoch = sb.epoch,
            "NVMe cache tier opened (empty)"
        );
        Ok(SegmentStore {
            dev: Rc::new(Device {
                file,
                path,
                segment_size: cfg.segment_size,
                block_size: cfg.block_size,
                segment_count,
                size,
                epoch: sb.epoch,
                log: RefCell::new(Log {
                    index: Default::default(),
                    segs,
                    open: None,
                    head: segment_count - 1,
                    next_seq: 1,
                    writing: 0,
                    prefetch: None,
                    pool: Vec::new(),
                    write_error: None,
                    waiters: Vec::new(),
                }),
                c: Counters::new(cfg.shard),
                #[cfg(test)]
                fail_next_write: Cell::new(false),
            }),
        })
    }
}

pub(super) fn validate(cfg: &NvmeConfig) -> Result<(), StoreError> {
    let bad = |reason: String| {
        Err(StoreError::InvalidConfig {
            path: cfg.path.clone(),
            reason,
        })
    };
    if cfg.segment_size == 0 || !is_aligned(cfg.segment_size as usize) {
        return bad(format!(
            "segment size {} is not a positive multiple of 4096",
            cfg.segment_size
        ));
    }
    if cfg.block_size == 0 || !is_aligned(cfg.block_size as usize) {
        return bad(format!(
            "block size {} is not a positive multiple of 4096",
            cfg.block_size
        ));
    }
    if cfg.block_size > cfg.segment_size {
        return bad(format!(
            "block size {} is larger than the segment size {}",
            cfg.block_size, cfg.segment_size
        ));
    }
    if i64::try_from(cfg.size).is_err() {
        return bad(format!("size {} is too large", cfg.size));
    }
    // Checked again after open for a device used at its own size; checking
    // here avoids creating a file that would then be refused.
    let min = SUPERBLOCK_LEN + 2 * u64::from(cfg.segment_size);
    if cfg.size != 0 && cfg.size < min {
        return Err(StoreError::TooSmall {
            path: cfg.path.clone(),
            size: cfg.size,
            segment_size: cfg.segment_size,
            min,
        });
    }
    Ok(())
}

/// Make sure the file or device exists with the right size; returns the size
/// to use. Blocking.
pub(super) fn prepare_file(path: &Path, size: u64) -> Result<u64, StoreError> {
    use std::os::unix::fs::FileTypeExt;
    let io_err = |op: &'static str, source: io::Error| StoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    };
    match std::fs::metadata(path) {
        Ok(md) if md.file_type().is_block_device() => {
            use std::io::Seek;
            let mut device = std::fs::File::open(path).map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => StoreError::PermissionDenied {
                    path: path.to_path_buf(),
                    source: e,
                },
                _ => io_err("open", e),
            })?;
            let actual = device.seek(io::SeekFrom::End(0)).map_err(|e| io_err("size", e))?;
            if size != 0 && actual < size {
                return Err(StoreError::DeviceTooSmall {
                    path: path.to_path_buf(),
                    actual,
                    configured: size,
                });
            }
            Ok(actual)
        }
        Ok(md) if md.is_file() => {
            let actual = md.len();
            let target = match (actual, size) {
                (0, 0) => {
                    return Err(StoreError::SizeRequired {
                        path: path.to_path_buf(),
                    })
                }
                // An empty file (left by an interrupted creation, or made by
                // hand) is treated as new.
                (0, s) => s,
                (a, 0) => a,
                (a, s) if a == s => a,
                (a, s) => {
                    return Err(StoreError::WrongSize {
                        path: path.to_path_buf(),
                        actual: a,
                        configured: s,
                    })
                }
            };
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                        StoreError::PermissionDenied {
                            path: path.to_path_buf(),
                            source: e,
                        }
                    }
                    _ => io_err("open", e),
                })?;
            // Also for a reused file: a copied or sparse file could otherwise
            // run out of space on a later write.
            reserve(&f, path, target)?;
            Ok(target)
        }
        Ok(_) => Err(StoreError::NotAFile {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !dir.is_dir() {
                return Err(StoreError::DirMissing {
                    path: path.to_path_buf(),
                    dir,
                });
            }
            if size == 0 {
                return Err(StoreError::SizeRequired {
                    path: path.to_path_buf(),
                });
            }
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                        StoreError::DirNotWritable {
                            path: path.to_path_buf(),
                            dir: dir.clone(),
                            source: e,
                        }
                    }
                    _ => io_err("create", e),
                })?;
            if let Err(e) = reserve(&f, path, size) {
                // Do not leave a half-made file that the next start would
                // mistake for the cache.
                drop(f);
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
            Ok(size)
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(StoreError::PermissionDenied {
            path: path.to_path_buf(),
            source: e,
        }),
        Err(e) => Err(io_err("inspect", e)),
    }
}

/// Allocate the file's blocks so that later writes cannot hit ENOSPC.
pub(super) fn reserve(f: &std::fs::File, path: &Path, size: u64) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(size).map_err(|_| StoreError::InvalidConfig {
        path: path.to_path_buf(),
        reason: format!("size {size} is too large"),
    })?;
    // SAFETY: `f` keeps the descriptor open for the duration of the call;
    // fallocate takes no pointers.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Err(StoreError::NoSpace {
            path: path.to_path_buf(),
            size,
            source: err,
        }),
        Some(libc::EOPNOTSUPP) => {
            tracing::warn!(
                path = %path.display(),
                "file system cannot reserve space for the cache file; a full disk may make cache writes fail"
            );
            f.set_len(size).map_err(|e| StoreError::Io {
                path: path.to_path_buf(),
                op: "size",
                source: e,
            })
        }
        _ => Err(StoreError::Io {
            path: path.to_path_buf(),
            op: "reserve space for",
            source: err,
        }),
    }
}
