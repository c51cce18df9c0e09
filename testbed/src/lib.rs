//! What end-to-end tests and benchmarks start around Weir: reference servers
//! (nfs-ganesha) and the child processes behind them. It never measures;
//! timings belong to `benches`.

pub mod ganesha;
pub mod process;
