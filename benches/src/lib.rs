//! Shared helpers for benchmark drivers.
