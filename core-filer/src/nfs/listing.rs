//! Paged directory listings: READDIR and READDIRPLUS behind one loop, which
//! leaves out `.`, `..` and names the engine would refuse.

use super::*;

impl NfsFiler {
    /// The listing of `dir` from `cookie`: one READDIR or READDIRPLUS page
    /// with `.`, `..` and names the engine would refuse left out.
    pub(super) async fn list<P: ListProc>(
        &self,
        l: &Local,
        cred: &Credentials,
        dir: &FilerHandle,
        mut cookie: u64,
        max: usize,
    ) -> Result<(Vec<P::Entry>, bool)> {
        if max == 0 {
            return Err(Error::TooSmall);
        }
        let dir_up = self.upstream(l, dir)?;
        let mut verf = match cookie {
            0 => 0,
            _ => l.cookieverfs.borrow().get(dir).copied().unwrap_or(0),
        };
        let count = max
            .saturating_mul(64)
            .saturating_add(512)
            .clamp(1024, self.inner.dtpref.max(4096) as usize) as u32;
        let mut out = Vec::new();
        loop {
            let args = [P::args(&dir_up, cookie, verf, count)];
            let (r, _) = self
                .call::<NfsResult<P::Page, PostOpAttr>>(l, cred, P::PROC, &args)
                .await?;
            let (entries, new_verf, eof) = P::page(ok(r)?);
            verf = new_verf;
            if verf != 0 {
                remember(&l.cookieverfs, *dir, verf);
            }
            let Some(last) = entries.last().map(|e| P::name_cookie(e).1) else {
                if eof {
                    return Ok((out, true));
                }
                // Nothing and not the end: a server that cannot make progress.
                return Err(Error::Io);
            };
            let n = entries.len();
            for (i, e) in entries.into_iter().enumerate() {
                let (name, _) = P::name_cookie(&e);
                if name == b"." || name == b".." {
                    continue;
                }
                if check_name(name).is_err() {
                    tracing::debug!(
                        "NFS upstream: skipping directory entry {:?}",
                        String::from_utf8_lossy(name)
                    );
                    continue;
                }
                out.push(e);
                if out.len() == max {
                    return Ok((out, eof && i + 1 == n));
                }
            }
            if eof || !out.is_empty() {
                return Ok((out, eof));
            }
            cookie = last;
        }
    }
}

/// READDIR or READDIRPLUS: how to ask for a page and what comes back.
pub(super) trait ListProc {
    const PROC: NfsProc3;
    type Page: Xdr;
    type Entry;
    fn args(dir: &NfsFh3, cookie: u64, verf: u64, count: u32) -> Bytes;
    /// Entries, cookie verifier, end of directory.
    fn page(p: Self::Page) -> (Vec<Self::Entry>, u64, bool);
    fn name_cookie(e: &Self::Entry) -> (&[u8], u64);
}

pub(super) struct Plain;
pub(super) struct Plus;

impl ListProc for Plain {
    const PROC: NfsProc3 = NfsProc3::Readdir;
    type Page = Readdir3Ok;
    type Entry = Entry3;
    fn args(dir: &NfsFh3, cookie: u64, cookieverf: u64, count: u32) -> Bytes {
        let dir = dir.clone();
        Readdir3Args {
            dir,
            cookie,
            cookieverf,
            count,
        }
        .to_bytes()
    }
    fn page(p: Readdir3Ok) -> (Vec<Entry3>, u64, bool) {
        (p.reply.entries, p.cookieverf, p.reply.eof)
    }
    fn name_cookie(e: &Entry3) -> (&[u8], u64) {
        (e.name.as_bytes(), e.cookie)
    }
}

impl ListProc for Plus {
    const PROC: NfsProc3 = NfsProc3::Readdirplus;
    type Page = Readdirplus3Ok;
    type Entry = EntryPlus3;
    fn args(dir: &NfsFh3, cookie: u64, cookieverf: u64, dircount: u32) -> Bytes {
        let dir = dir.clone();
        // Room for the attributes and handles too.
        let maxcount = dircount.saturating_mul(8).min(1 << 20);
        Readdirplus3Args {
            dir,
            cookie,
            cookieverf,
            dircount,
            maxcount,
        }
        .to_bytes()
    }
    fn page(p: Readdirplus3Ok) -> (Vec<EntryPlus3>, u64, bool) {
        (p.reply.entries, p.cookieverf, p.reply.eof)
    }
    fn name_cookie(e: &EntryPlus3) -> (&[u8], u64) {
        (e.name.as_bytes(), e.cookie)
    }
}
