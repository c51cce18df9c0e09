//! What end-to-end tests and benchmarks start around Weir: reference servers
//! (nfs-ganesha, Samba), the child processes behind them, a WAN delay proxy
//! between them, and NFSv3 clients to drive them. It never measures; timings belong to `benches`.

pub mod ganesha;
pub mod nfs_client;
pub mod process;
pub mod proxy;
pub mod samba;

pub use proxy::{DelayProxy, Link, OneWay};
