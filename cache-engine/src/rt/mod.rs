//! The ground floor: what every layer of the engine stands on. The per-core
//! executor and its polling, CPUs and pinning, aligned buffers for direct
//! I/O and whole reads and writes of them, the pool of message buffers,
//! fast maps.
//!
//! Nothing here imports from the rest of the crate: only `std`, external
//! crates and other `rt` modules (the `layers` test holds it to that).

pub mod aligned;
pub(crate) mod cpu;
pub mod io;
pub(crate) mod msgbuf;
pub(crate) mod poll;

/// Hash maps on the hot path: keys are file ids and block numbers, which
/// clients cannot choose, so a fast keyed hash is enough.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
