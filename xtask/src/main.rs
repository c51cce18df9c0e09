//! `cargo xtask`: the project's own automation, run the same way on a laptop
//! and in CI (`.ci/run`).
//!
//! `cargo xtask test` installs the system packages the tests use (as root, with
//! apt-get), then runs `cargo fmt --check`, `cargo clippy -D warnings`, the
//! whole test suite and the end-to-end scripts (`SCRIPT_STEPS`), stopping at the
//! first failure with its exit code. It must
//! stay small and only orchestrate: checks and tests themselves belong in the
//! crates.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, ExitCode, Stdio};

/// Commands the tests run, and the Debian package that provides each.
const SYSTEM_PACKAGES: &[(&str, &str)] = &[("fio", "fio")];

/// End-to-end scripts run after the cargo tests, relative to the workspace root;
/// each installs what it needs itself.
const SCRIPT_STEPS: &[&str] = &["tests/kernel-client/run-against-weir.sh"];

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test   install missing system packages (when root), then run
         cargo fmt --check, cargo clippy -D warnings, the test suite and
         the end-to-end scripts (kernel NFS client in a qemu guest)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["test"] => test(),
        ["help" | "-h" | "--help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn test() -> ExitCode {
    if let Err(code) = system_packages() {
        return code;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let nextest = Command::new(&cargo)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let tests: &[&str] = if nextest {
        &["nextest", "run", "--workspace"]
    } else {
        eprintln!("xtask: cargo-nextest not found, using cargo test");
        &["test", "--workspace"]
    };
    let steps: [&[&str]; 3] = [
        &["fmt", "--all", "--", "--check"],
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
        tests,
    ];
    for step in steps {
        if let Err(code) = run(&cargo, step, &[]) {
            return code;
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for script in SCRIPT_STEPS {
        if let Err(code) = run(&root.join(script).to_string_lossy(), &[], &[]) {
            return code;
        }
    }
    eprintln!("xtask: all checks passed");
    ExitCode::SUCCESS
}

/// Run a command; on failure, the exit code to end with.
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), ExitCode> {
    eprintln!("xtask: $ {program} {}", args.join(" "));
    match Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            eprintln!("xtask: `{program} {}` failed ({s})", args.join(" "));
            let code = s.code().and_then(|c| u8::try_from(c).ok()).filter(|&c| c != 0);
            Err(ExitCode::from(code.unwrap_or(1)))
        }
        Err(e) => {
            eprintln!("xtask: cannot run {program}: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Install what is missing when we are root; otherwise say what to install.
fn system_packages() -> Result<(), ExitCode> {
    let missing: Vec<&str> = SYSTEM_PACKAGES
        .iter()
        .filter(|(command, _)| !have(command))
        .map(|&(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root || !have("apt-get") {
        eprintln!(
            "xtask: missing system packages: {0}; install them with `sudo apt-get install -y {0}` \
             (tests that need them will fail)",
            missing.join(" ")
        );
        return Ok(());
    }
    let noninteractive = [("DEBIAN_FRONTEND", "noninteractive")];
    run("apt-get", &["update", "-q"], &noninteractive)?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    run("apt-get", &install, &noninteractive)
}
