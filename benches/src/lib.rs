//! Shared helpers for benchmark drivers, which run Weir and reference servers
//! side by side in one run and report ratios.
//!
//! Nothing in the product may depend on this crate, and it must not hide
//! timings in tests: measurements live here.
