//! Cache tiers: RAM (S3-FIFO) and NVMe (log-structured segments).

pub mod aligned;
pub mod nvme;
