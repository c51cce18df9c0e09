//! What end-to-end tests and benchmarks start around Weir: reference servers
//! (nfs-ganesha), the child processes behind them, and a WAN delay proxy
//! between them. It never measures; timings belong to `benches`.

pub mod ganesha;
pub mod process;
pub mod proxy;

pub use proxy::{DelayProxy, Link, OneWay};
