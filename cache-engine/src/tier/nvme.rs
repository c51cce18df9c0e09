//! NVMe tier.
