//! QUERY_DIRECTORY: enumeration with `.` and `..`, wildcard patterns,
//! restart/reopen/single-entry, resumed across calls from an engine
//! readdir cookie kept in the open.

use std::collections::VecDeque;

use bytes::BytesMut;
use cache_engine::types::Attr;
use smb_proto::dir::{encode_output_buffer_response, query_flags, QueryDirectoryRequest};
use smb_proto::fscc::{DirEntry, DirectoryWriter};
use smb_proto::security::access as sa;
use smb_proto::NtStatus;

use crate::context::{Ctx, Reply, Result};
use crate::errors::EngineResult;
use crate::fileops::Open;
use crate::posix;

/// Bytes of names asked of the engine per page.
const PAGE: usize = 64 << 10;

/// Where an enumeration of a directory open stands.
#[derive(Debug, Default)]
pub(crate) struct DirCursor {
    started: bool,
    /// Entries were returned since the last restart.
    returned: bool,
    pattern: String,
    cookie: u64,
    verifier: u64,
    /// How many of `.` and `..` were produced.
    dots: u8,
    eof: bool,
    pending: VecDeque<DirEntry>,
}

/// Case-insensitive match with `*`, `?` and the DOS wildcards `<`, `>`, `"`.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let n: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*' | '<') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some('?' | '>') => {
                pi += 1;
                ni += 1;
            }
            Some('"') if n[ni] == '.' => {
                pi += 1;
                ni += 1;
            }
            Some(&c) if c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| matches!(c, '*' | '<' | '>' | '"'))
}

fn has_wildcards(p: &str) -> bool {
    p.contains(['*', '?', '<', '>', '"'])
}

fn entry(name: String, a: &Attr) -> DirEntry {
    DirEntry {
        attributes: posix::attributes(a, &name),
        name,
        file_index: 0,
        times: posix::times(a),
        end_of_file: posix::end_of_file(a),
        allocation_size: posix::allocation(a),
        file_id: a.fileid,
        ea_size: 0,
        short_name: String::new(),
        reparse_tag: 0,
    }
}

pub(crate) async fn query(ctx: &mut Ctx, req: QueryDirectoryRequest) -> Result<Reply> {
    let o = ctx.open(req.file_id)?;
    if !o.is_dir {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    o.require(sa::FILE_LIST_DIRECTORY)?;
    let mut w = DirectoryWriter::new(req.file_information_class, req.output_buffer_length)
        .ok_or(NtStatus::INVALID_INFO_CLASS)?;
    let mut cur = std::mem::take(&mut *o.dir.borrow_mut());
    if !cur.started || req.flags & (query_flags::RESTART_SCANS | query_flags::REOPEN) != 0 {
        let pattern = if req.pattern.is_empty() {
            "*".to_string()
        } else {
            req.pattern.clone()
        };
        cur = DirCursor {
            started: true,
            pattern,
            ..DirCursor::default()
        };
    }
    let r = fill(
        ctx,
        &o,
        &mut cur,
        &mut w,
        req.flags & query_flags::RETURN_SINGLE_ENTRY != 0,
    )
    .await;
    let returned_before = cur.returned;
    if !w.is_empty() {
        cur.returned = true;
    }
    let left = !cur.pending.is_empty();
    *o.dir.borrow_mut() = cur;
    r?;
    if w.is_empty() {
        return Err(if left {
            NtStatus::INFO_LENGTH_MISMATCH
        } else if returned_before {
            NtStatus::NO_MORE_FILES
        } else {
            NtStatus::NO_SUCH_FILE
        });
    }
    let mut b = BytesMut::new();
    encode_output_buffer_response(&w.finish(), &mut b);
    Ok(Reply::ok(b))
}

async fn fill(ctx: &Ctx, o: &Open, cur: &mut DirCursor, w: &mut DirectoryWriter, single: bool) -> Result<()> {
    let srv = ctx.srv().clone();
    if !has_wildcards(&cur.pattern) {
        // One name: a lookup, not a listing.
        if cur.eof {
            return Ok(());
        }
        cur.eof = true;
        posix::check_component(&cur.pattern).map_err(|_| NtStatus::OBJECT_NAME_INVALID)?;
        match srv.engine.lookup(&o.cred, &o.fh, cur.pattern.as_bytes()).await {
            Ok((_, a, _)) => cur.pending.push_back(entry(cur.pattern.clone(), &a)),
            Err(cache_engine::Error::NoEnt) => {}
            Err(e) => return Err(crate::errors::status(e)),
        }
    }
    loop {
        if cur.dots < 2 && has_wildcards(&cur.pattern) {
            let name = if cur.dots == 0 { "." } else { ".." };
            cur.dots += 1;
            if matches(&cur.pattern, name) {
                let a = if name == ".." && !o.path.borrow().is_empty() {
                    let parent = o.loc.borrow().0;
                    srv.engine.getattr(&parent).await.nt()?
                } else {
                    srv.engine.getattr(&o.fh).await.nt()?
                };
                cur.pending.push_back(entry(name.to_string(), &a));
            }
        }
        if cur.pending.is_empty() {
            if cur.eof {
                return Ok(());
            }
            let page = srv
                .engine
                .readdir_plus(&o.cred, &o.fh, cur.cookie, cur.verifier, PAGE)
                .await
                .nt()?;
            cur.verifier = page.verifier;
            cur.eof = page.eof || page.entries.is_empty();
            for e in page.entries {
                cur.cookie = e.cookie;
                let Some((_, a)) = e.object else { continue };
                let Ok(name) = String::from_utf8(e.name) else {
                    continue;
                };
                if matches(&cur.pattern, &name) {
                    cur.pending.push_back(entry(name, &a));
                }
            }
            continue;
        }
        let Some(e) = cur.pending.pop_front() else {
            continue;
        };
        if !w.push(&e) {
            cur.pending.push_front(e);
            return Ok(());
        }
        if single {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*", "abc"));
        assert!(matches("*", "."));
        assert!(matches("a*c", "ABC"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("*.txt", "x.y.txt"));
        assert!(!matches("*.txt", "x.txt.gz"));
        assert!(matches("<\"txt", "a.txt"));
        assert!(matches("abc", "abc"));
        assert!(!matches("abd", "abc"));
    }
}
