//! placeholder until the real store merges (not committed)
use std::path::PathBuf;
pub struct NvmeConfig {
    pub path: PathBuf,
    pub size: u64,
    pub segment_size: u32,
    pub block_size: u32,
    pub shard: usize,
}
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockKey {
    pub file: u64,
    pub block: u64,
}
pub struct SegmentStore;
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct StoreError;
impl SegmentStore {
    pub async fn open(_cfg: NvmeConfig) -> Result<SegmentStore, StoreError> {
        Ok(SegmentStore)
    }
    pub async fn read(
        &self,
        _key: BlockKey,
        _gen: u32,
        _offset: u32,
        _len: u32,
    ) -> std::io::Result<Option<bytes::Bytes>> {
        Ok(None)
    }
    pub fn insert(&self, _key: BlockKey, _gen: u32, _data: &[u8]) {}
    pub fn remove(&self, _key: BlockKey) {}
    pub fn contains(&self, _key: BlockKey, _gen: u32) -> bool {
        false
    }
    pub async fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}
