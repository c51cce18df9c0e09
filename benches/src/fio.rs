//! Running fio (io_uring, O_DIRECT) on files and reading its JSON output
//! (the JSON readers serve `fio_nfs` too).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Operations and bytes over a time; sums of several runs add up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub ops: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Measured {
    pub fn add(&mut self, m: Measured) {
        self.ops += m.ops;
        self.bytes += m.bytes;
        self.elapsed += m.elapsed;
    }

    pub fn iops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// One fio read job per file over `offset..offset+size`, `depth` in flight
/// in all (split between the files).
pub struct FioRead {
    pub files: Vec<PathBuf>,
    pub offset: u64,
    pub size: u64,
    pub rw: &'static str,
    pub bs: &'static str,
    pub depth: usize,
    pub seconds: u64,
}

pub fn available() -> bool {
    let ok = Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("fio not found (on Debian: apt-get install -y fio): fio columns skipped");
    }
    ok
}

impl FioRead {
    pub fn run(&self) -> Result<Measured, String> {
        let mut cmd = Command::new("fio");
        cmd.args([
            "--ioengine=io_uring",
            "--direct=1",
            "--readonly",
            "--thread",
            "--norandommap",
            "--randrepeat=0",
            "--time_based",
            "--group_reporting",
            "--output-format=json",
        ]);
        cmd.arg(format!("--rw={}", self.rw))
            .arg(format!("--bs={}", self.bs))
            .arg(format!("--runtime={}", self.seconds))
            .arg(format!("--offset={}", self.offset))
            .arg(format!("--size={}", self.size));
        let depth = (self.depth / self.files.len().max(1)).max(1);
        for (i, f) in self.files.iter().enumerate() {
            cmd.arg(format!("--name=weir-{}-{i}", self.rw))
                .arg(format!("--filename={}", f.display()))
                .arg(format!("--iodepth={depth}"));
        }
        let out = cmd.output().map_err(|e| format!("running fio: {e}"))?;
        if !out.status.success() {
            return Err(format!("fio failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let v = parse_json(&String::from_utf8_lossy(&out.stdout))?;
        measured(&v["jobs"][0], "read")
    }
}

/// fio's JSON document (`--output-format=json`); fio may print notes before it.
pub fn parse_json(stdout: &str) -> Result<serde_json::Value, String> {
    let start = stdout.find('{').ok_or("no JSON in fio output")?;
    serde_json::from_str(&stdout[start..]).map_err(|e| format!("fio JSON: {e}"))
}

/// Operations, bytes and runtime of one direction (`"read"` or `"write"`)
/// of one job (or of the group, with `--group_reporting`).
pub fn measured(job: &serde_json::Value, dir: &str) -> Result<Measured, String> {
    let field = |name: &str| {
        job[dir][name]
            .as_u64()
            .ok_or(format!("fio JSON lacks jobs[0].{dir}.{name}"))
    };
    Ok(Measured {
        ops: field("total_ios")?,
        bytes: field("io_bytes")?,
        elapsed: Duration::from_millis(field("runtime")?.max(1)),
    })
}
