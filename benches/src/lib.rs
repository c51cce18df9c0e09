//! Benchmark drivers' shared parts: running reference tools and printing
//! side-by-side tables. Timings live here, never in pass/fail tests.

use std::path::{Path, PathBuf};

pub mod fio;
pub mod fio_nfs;
pub mod iperf;
pub mod nfs_client;
pub mod weir_serve;

/// Fill `path` with `size` bytes (whole MiB) of pseudo-random data, unless
/// a file of that size is already there.
pub fn make_file(path: &Path, size: u64) {
    make_file_seeded(path, size, 0x1234_5678);
}

/// As [`make_file`], with contents that depend on `seed` (not 0): files made
/// with different seeds differ, so a read of the wrong one is caught.
pub fn make_file_seeded(path: &Path, size: u64, seed: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == size) {
        return;
    }
    let mut data = vec![0u8; 1 << 20];
    let mut f = std::fs::File::create(path).unwrap();
    let mut seed = seed.max(1);
    for _ in 0..size >> 20 {
        for chunk in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        std::io::Write::write_all(&mut f, &data).unwrap();
    }
}

/// The `weir` binary a driver starts by default: the one beside the
/// driver's own, else `target/release/weir`.
pub fn default_weir_cmd() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("weir")))
        .filter(|p| p.exists());
    beside.unwrap_or_else(|| PathBuf::from("target/release/weir"))
}

/// Write, in `dir`, the config of the Weir a driver starts: `/export`
/// served to this host as ganesha serves it in the comparisons (root not
/// squashed, any source port), since Weir's default squashes root and
/// wants privileged ports. Returns its path.
pub fn weir_bench_config(dir: &Path) -> PathBuf {
    let path = dir.join("weir-bench.toml");
    let text = "[[exports]]\npath = \"/export\"\n[[exports.rules]]\n\
                clients = [\"127.0.0.1\"]\nsquash = \"none\"\nsecure = false\n";
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// A markdown table whose rows compare Weir with a reference.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// A table whose columns are known only at run time.
    pub fn with_header(header: Vec<String>) -> Self {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    /// Weir's figure, the reference's (if it ran), and Weir / reference.
    pub fn row(&mut self, what: &str, weir: f64, reference: Option<f64>) {
        let (r, ratio) = match reference {
            Some(r) if r > 0.0 => (format!("{r:.1}"), format!("{:.2}", weir / r)),
            _ => ("n/a".into(), "n/a".into()),
        };
        self.rows.push(vec![what.into(), format!("{weir:.1}"), r, ratio]);
    }

    /// A row that is a ratio in itself.
    pub fn ratio_row(&mut self, what: &str, ratio: f64, note: String) {
        self.rows
            .push(vec![what.into(), note, "-".into(), format!("{ratio:.3}")]);
    }

    /// A row of preformatted cells, one per header column.
    pub fn cells(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "one cell per column");
        self.rows.push(cells);
    }

    pub fn print(&self) {
        println!("| {} |", self.header.join(" | "));
        println!("|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
    }
}

/// This machine's CPUs cut in two: the first half for the servers under
/// test, the rest for their clients, so that neither waits for a core the
/// other holds (as on separate machines). `None` with a single CPU.
pub fn server_client_cpus() -> Option<(Vec<usize>, Vec<usize>)> {
    let cpus = cache_engine::allowed_cpus();
    if cpus.len() < 2 {
        return None;
    }
    let (server, client) = cpus.split_at(cpus.len() / 2);
    Some((server.to_vec(), client.to_vec()))
}
