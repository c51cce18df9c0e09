//! Cache tiers: RAM (S3-FIFO) and NVMe (log-structured segments).

pub mod aligned;
pub mod nvme;
pub mod ram;

/// Hash maps on the hot path: keys are file ids and block numbers, which
/// clients cannot choose, so a fast keyed hash is enough.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
