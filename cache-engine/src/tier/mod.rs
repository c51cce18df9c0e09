//! Cache tiers: RAM (S3-FIFO) and NVMe (log-structured segments).

pub mod nvme;
pub mod ram;
