//! Running fio on files and reading its JSON output.

use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Clone, Copy)]
pub struct FioResult {
    pub iops: f64,
    pub mbps: f64,
}

/// `fio --ioengine=io_uring --direct=1` reading the first `size` bytes of
/// `files` (one job each, the depth split between them); `None` when fio is
/// missing or fails.
pub fn run(
    files: &[PathBuf],
    size: u64,
    rw: &str,
    bs: &str,
    iodepth: usize,
    seconds: u64,
) -> Option<FioResult> {
    if Command::new("fio").arg("--version").output().is_err() {
        eprintln!("fio not found (apt-get install fio): reference column skipped");
        return None;
    }
    let mut cmd = Command::new("fio");
    cmd.args([
        "--output-format=json",
        "--ioengine=io_uring",
        "--direct=1",
        "--time_based",
        "--group_reporting",
        &format!("--runtime={seconds}"),
        &format!("--rw={rw}"),
        &format!("--bs={bs}"),
        &format!("--size={size}"),
    ]);
    let depth = (iodepth / files.len()).max(1);
    for (i, f) in files.iter().enumerate() {
        cmd.arg(format!("--name=j{i}"));
        cmd.arg(format!("--filename={}", f.display()));
        cmd.arg(format!("--iodepth={depth}"));
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("fio failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let read = &json["jobs"][0]["read"];
    Some(FioResult {
        iops: read["iops"].as_f64()?,
        mbps: read["bw_bytes"].as_f64()? / 1e6,
    })
}
