//! A core filer wrapper that counts what reaches the back end, can slow reads
//! and writes down, can play dead and can lose unstable writes (as a NAS that
//! restarted): tests and benchmarks use it to check coalescing, caching and
//! behaviour while a back end is unreachable or forgetful.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::*;

pub struct CountingFiler<F> {
    inner: F,
    read_delay: Duration,
    unreachable: AtomicBool,
    /// Whether [`CoreFiler::caches_writes`] answers as the wrapped filer
    /// does; by default it stands for a back end across a link, which does not.
    pass_caches_writes: AtomicBool,
    /// The next commit answers `WritesLost`.
    lose_writes: AtomicBool,
    /// Every write waits this long first (nanoseconds), so that writes a
    /// test starts together are in flight together.
    write_delay_ns: AtomicU64,
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub getattrs: AtomicU64,
    pub lookups: AtomicU64,
    pub readdirs: AtomicU64,
    /// Of `readdirs`, those with each entry's handle and attributes.
    pub readdir_pluses: AtomicU64,
    /// Commits that reached the wrapped filer.
    pub commits: AtomicU64,
}

impl<F: CoreFiler> CountingFiler<F> {
    pub fn new(inner: F) -> Self {
        Self::with_read_delay(inner, Duration::ZERO)
    }

    /// Every read waits `delay` first, as over a slow link.
    pub fn with_read_delay(inner: F, delay: Duration) -> Self {
        CountingFiler {
            inner,
            read_delay: delay,
            unreachable: AtomicBool::new(false),
            pass_caches_writes: AtomicBool::new(false),
            lose_writes: AtomicBool::new(false),
            write_delay_ns: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            getattrs: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
            readdirs: AtomicU64::new(0),
            readdir_pluses: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        }
    }

    /// While set, say whether writes are cached as the wrapped filer says.
    pub fn set_passing_caches_writes(&self, on: bool) {
        self.pass_caches_writes.store(on, Relaxed);
    }

    /// While set, every call hangs, as calls to a NAS whose link was cut.
    pub fn set_unreachable(&self, cut: bool) {
        self.unreachable.store(cut, Relaxed);
    }

    /// Every write from now on waits `delay` before it reaches the back end.
    pub fn set_write_delay(&self, delay: Duration) {
        self.write_delay_ns.store(delay.as_nanos() as u64, Relaxed);
    }

    async fn write_gate(&self) {
        self.gate().await;
        let ns = self.write_delay_ns.load(Relaxed);
        if ns > 0 {
            compio::time::sleep(Duration::from_nanos(ns)).await;
        }
    }

    /// The next commit fails with `WritesLost`, as after a NAS restart.
    pub fn lose_next_commit(&self) {
        self.lose_writes.store(true, Relaxed);
    }

    async fn gate(&self) {
        while self.unreachable.load(Relaxed) {
            compio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[async_trait(?Send)]
#[deny(clippy::missing_trait_methods)]
impl<F: CoreFiler> CoreFiler for CountingFiler<F> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn root(&self) -> FilerHandle {
        self.inner.root()
    }

    fn caches_writes(&self) -> bool {
        self.pass_caches_writes.load(Relaxed) && self.inner.caches_writes()
    }

    async fn getattr(&self, cred: &Credentials, fh: &FilerHandle) -> Result<Attr> {
        self.gate().await;
        self.getattrs.fetch_add(1, Relaxed);
        self.inner.getattr(cred, fh).await
    }

    async fn lookup(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
    ) -> Result<(FilerHandle, Attr)> {
        self.gate().await;
        self.lookups.fetch_add(1, Relaxed);
        self.inner.lookup(cred, dir, name).await
    }

    async fn lookup_parent(&self, cred: &Credentials, dir: &FilerHandle) -> Result<(FilerHandle, Attr)> {
        self.gate().await;
        self.lookups.fetch_add(1, Relaxed);
        self.inner.lookup_parent(cred, dir).await
    }

    async fn read(&self, cred: &Credentials, fh: &FilerHandle, offset: u64, len: u32) -> Result<FilerRead> {
        self.gate().await;
        self.reads.fetch_add(1, Relaxed);
        if !self.read_delay.is_zero() {
            compio::time::sleep(self.read_delay).await;
        }
        let r = self.inner.read(cred, fh, offset, len).await?;
        self.read_bytes.fetch_add(r.data.len() as u64, Relaxed);
        Ok(r)
    }

    async fn write(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<FilerWrite> {
        self.write_gate().await;
        self.inner.write(cred, fh, offset, data, stability).await
    }

    async fn write_opened(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> Result<FilerWrite> {
        self.write_gate().await;
        self.inner.write_opened(cred, fh, offset, data, stability).await
    }

    async fn commit(&self, cred: &Credentials, fh: &FilerHandle) -> Result<BeforeAfter> {
        self.gate().await;
        if self.lose_writes.swap(false, Relaxed) {
            return Err(crate::Error::WritesLost);
        }
        self.commits.fetch_add(1, Relaxed);
        self.inner.commit(cred, fh).await
    }

    async fn setattr(&self, cred: &Credentials, fh: &FilerHandle, attrs: &SetAttr) -> Result<BeforeAfter> {
        self.gate().await;
        self.inner.setattr(cred, fh, attrs).await
    }

    async fn create(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
        node: &NewNode,
        attrs: &SetAttr,
    ) -> Result<FilerCreated> {
        self.gate().await;
        self.inner.create(cred, dir, name, node, attrs).await
    }

    async fn readlink(&self, cred: &Credentials, fh: &FilerHandle) -> Result<Vec<u8>> {
        self.gate().await;
        self.inner.readlink(cred, fh).await
    }

    async fn link(
        &self,
        cred: &Credentials,
        fh: &FilerHandle,
        dir: &FilerHandle,
        name: &[u8],
    ) -> Result<(Attr, BeforeAfter)> {
        self.gate().await;
        self.inner.link(cred, fh, dir, name).await
    }

    async fn remove(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        name: &[u8],
        rmdir: bool,
    ) -> Result<BeforeAfter> {
        self.gate().await;
        self.inner.remove(cred, dir, name, rmdir).await
    }

    async fn rename(
        &self,
        cred: &Credentials,
        from_dir: &FilerHandle,
        from_name: &[u8],
        to_dir: &FilerHandle,
        to_name: &[u8],
    ) -> Result<(BeforeAfter, BeforeAfter)> {
        self.gate().await;
        self.inner
            .rename(cred, from_dir, from_name, to_dir, to_name)
            .await
    }

    async fn readdir(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<FilerDirPage> {
        self.gate().await;
        self.readdirs.fetch_add(1, Relaxed);
        self.inner.readdir(cred, dir, cookie, max).await
    }

    async fn readdir_plus(
        &self,
        cred: &Credentials,
        dir: &FilerHandle,
        cookie: u64,
        max: usize,
    ) -> Result<(Vec<FilerDirEntryPlus>, bool)> {
        self.gate().await;
        self.readdirs.fetch_add(1, Relaxed);
        self.readdir_pluses.fetch_add(1, Relaxed);
        self.inner.readdir_plus(cred, dir, cookie, max).await
    }

    async fn fsstat(&self, cred: &Credentials, fh: &FilerHandle) -> Result<FsStat> {
        self.gate().await;
        self.inner.fsstat(cred, fh).await
    }
}
