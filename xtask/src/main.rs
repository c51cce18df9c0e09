//! `cargo xtask`: the project's own automation, run the same way on a laptop
//! and in CI (`.ci/run`).
//!
//! `cargo xtask test` installs the system packages the tests use (as root, with
//! apt-get), then runs the steps of [`plan`]: `cargo fmt --check`, `cargo
//! clippy -D warnings`, the whole test suite, the NFSv3 and SMB suites with
//! real clients against `weir serve`, the kernel NFS and CIFS clients in a
//! qemu guest, NFS and SMB clients on one server, a flood, smbtorture and each
//! fuzz target briefly; steps that do not compete for the same resource run
//! side by side ([`runner`]). A failure stops further steps from starting and
//! the run ends with the failed step's exit code; every run ends with a table
//! of each step's wall time. `cargo xtask samba` runs the SMB harness against
//! Samba. It must stay small and only orchestrate: checks and tests themselves
//! belong in the crates and in `tests/`.

mod plan;
mod runner;

use plan::Plan;
use runner::{Outcome, Runner, Step};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

/// What the tests need, as a shell check that succeeds when it is there, and
/// the Debian package that provides it.
const SYSTEM_PACKAGES: &[(&str, &str)] = &[
    ("command -v fio", "fio"),
    // tests/nfs: libnfs-utils' nfs-cp, nfs-cat, nfs-ls; a Python that can make
    // the venv the suite's Python packages go in (~/.cache/weir-tests).
    ("command -v nfs-cp", "libnfs-utils"),
    ("/usr/bin/python3 -c 'import venv, ensurepip'", "python3-venv"),
    // core-filer's nfs tests (and `cargo xtask nfs-ganesha`):
    // nfs-ganesha with FSAL_VFS as the upstream NAS, and the rpcbind it needs.
    ("command -v ganesha.nfsd", "nfs-ganesha"),
    (
        "dpkg-query -W -f='${Status}' nfs-ganesha-vfs | grep -q 'ok installed'",
        "nfs-ganesha-vfs",
    ),
    ("test -x /sbin/rpcbind", "rpcbind"),
    // The SMB harness (tests/smb, `cargo xtask samba`): Samba as the reference
    // server, its smbclient (which smb-front's tests drive Weir with too), and smbtorture.
    ("command -v smbd", "samba"),
    ("command -v smbclient", "smbclient"),
    ("command -v smbtorture", "samba-testsuite"),
    // core-filer's and cache-engine's caller_rights tests set POSIX ACLs with setfacl.
    ("command -v setfacl", "acl"),
];

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test                 install missing system packages (when root), then run
                       cargo fmt --check, cargo clippy -D warnings, the test suite,
                       the NFSv3 suite against weir (tests/nfs/run-against-weir.sh),
                       the kernel NFS client in a qemu guest against weir
                       (tests/kernel-client/run-against-weir.sh) and through weir
                       caching nfs-ganesha, write-through and write-behind,
                       compared with ganesha alone
                       (tests/kernel-client/run-through-weir-to-ganesha.sh),
                       the SMB suite (tests/smb/run-against-weir.sh), NFS and SMB
                       clients on one weir (tests/multiproto/run-against-weir.sh), smbtorture
                       against weir's known failures, the kernel CIFS client
                       (tests/kernel-client/run-cifs-against-weir.sh), a flood
                       from one address against [limits] (tests/flood/run-against-weir.sh)
                       and each target of every fuzz crate (*/fuzz) for 15 s.
                       Steps in different lanes run side by side, each with its
                       output in CARGO_TARGET_DIR/xtask-test-logs/STEP.log (printed
                       when it fails); a table of step times ends every run
  test STEP...         only the named steps, one at a time, output on the terminal
                       (building weir first when they need it)
  test --list          the steps and their lanes
  nfs-ganesha [ARGS]   run the NFSv3 suite against nfs-ganesha, the reference server
                       (tests/nfs/run-against-ganesha.sh; ARGS go to pytest)
  samba                run the whole SMB harness against Samba, the reference server:
                       the pytest suite (tests/smb/run-against-samba.sh), smbtorture's
                       SMB2 suites against its known failures (tests/smb/smbtorture/)
                       and the kernel CIFS client in a qemu guest
                       (tests/kernel-client/run-cifs-against-samba.sh)
  fuzz [SECONDS]       run each target of every fuzz crate (*/fuzz/run.sh) for SECONDS
                       (default 20); needs cargo-fuzz (cargo install cargo-fuzz),
                       skipped without it";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["test", "--list"] => list_steps(),
        ["test", only @ ..] => test(only),
        ["nfs-ganesha", rest @ ..] => nfs_ganesha(rest),
        ["samba"] => samba(),
        ["fuzz", rest @ ..] => match fuzz_all(rest) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        },
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

/// The `run.sh` of every fuzz crate (`<crate>/fuzz/run.sh`), in name order.
fn fuzz_scripts() -> Vec<PathBuf> {
    let root = repo_root();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("fuzz").join("run.sh"))
        .filter(|p| p.is_file())
        .collect();
    scripts.sort();
    scripts
}

/// Run each fuzz crate's script with `args` (the seconds per target).
fn fuzz_all(args: &[&str]) -> Result<(), ExitCode> {
    for script in fuzz_scripts() {
        run(&script.to_string_lossy(), args, &[])?;
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn plan() -> Plan {
    let nextest = Command::new(cargo())
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !nextest {
        eprintln!("xtask: cargo-nextest not found, using cargo test");
    }
    let side_by_side = std::env::var("WEIR_TEST_LANES").is_ok_and(|v| v == "3");
    Plan::new(&repo_root(), &cargo(), nextest, &fuzz_scripts(), side_by_side)
}

fn list_steps() -> ExitCode {
    let plan = plan();
    for (lane, step) in plan.steps() {
        println!("{:<26} lane {lane}", step.name);
    }
    ExitCode::SUCCESS
}

/// The whole suite (or only the steps named in `only`, one at a time with
/// their output on the terminal), then the table of step times.
fn test(only: &[&str]) -> ExitCode {
    let plan = plan();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let log_dir = target.join("xtask-test-logs");
    let full = only.is_empty();
    if full {
        // Only a full run writes logs; single steps leave the last run's alone.
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    let runner = Runner::new(log_dir);
    let result = if full {
        // Every phase is entered, so that the table lists the steps a
        // failure kept from running; the first failure's code is the result.
        let packages = runner.call("system packages", || system_packages(SYSTEM_PACKAGES));
        let builds = runner.lanes(&plan.builds);
        let checks = runner.lanes(&plan.checks);
        packages.and(builds).and(checks)
    } else {
        let mut steps = Vec::new();
        for name in only {
            match plan.steps().find(|(_, s)| s.name.eq_ignore_ascii_case(name)) {
                Some((_, step)) => steps.push(step),
                None => {
                    eprintln!("xtask: no step named {name:?}; `cargo xtask test --list` lists them");
                    return ExitCode::from(2);
                }
            }
        }
        // The end-to-end steps run the weir binary: build it first.
        let build = plan.steps().find(|(_, s)| s.name == "build weir").map(|(_, s)| s);
        if let Some(build) = build {
            let needs_weir = steps.iter().any(|s| s.env.iter().any(|(k, _)| k == "WEIR_BIN"));
            if needs_weir && !steps.iter().any(|s| s.name == build.name) {
                steps.insert(0, build);
            }
        }
        steps.iter().try_for_each(|step| runner.run(step))
    };
    runner.print_table();
    match result {
        Ok(()) => {
            eprintln!("xtask: all checks passed");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// The checkout `cargo xtask` was run in: the nearest directory above the
/// working directory that holds `xtask/`, else the one this binary was
/// built from (a target directory shared by several checkouts may hold a
/// binary built from another).
fn repo_root() -> PathBuf {
    let here = std::env::current_dir().ok();
    let found = here
        .iter()
        .flat_map(|d| d.ancestors())
        .find(|d| d.join("xtask/Cargo.toml").is_file() && d.join("Cargo.toml").is_file());
    if let Some(d) = found {
        return d.to_path_buf();
    }
    let xtask = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().map(PathBuf::from).unwrap_or(xtask)
}

/// The NFSv3 suite against nfs-ganesha (not part of `test`).
fn nfs_ganesha(pytest_args: &[&str]) -> ExitCode {
    if let Err(code) = system_packages(SYSTEM_PACKAGES) {
        return code;
    }
    let script = repo_root().join("tests/nfs/run-against-ganesha.sh");
    match run(&script.to_string_lossy(), pytest_args, &[]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Steps of `cargo xtask samba`, relative to the workspace root.
const SAMBA_STEPS: &[&[&str]] = &[
    &["tests/smb/run-against-samba.sh"],
    &[
        "tests/smb/run-against-samba.sh",
        "--exec",
        "tests/smb/smbtorture/run.py",
        "--server",
        "samba",
    ],
    &["tests/kernel-client/run-cifs-against-samba.sh"],
];

/// The SMB harness against Samba, the reference. Every step runs; the exit
/// code is the first failing step's.
fn samba() -> ExitCode {
    if let Err(code) = system_packages(SYSTEM_PACKAGES) {
        return code;
    }
    let mut result = ExitCode::SUCCESS;
    let mut failed = Vec::new();
    for step in SAMBA_STEPS {
        if let Err(code) = run_step(step) {
            if failed.is_empty() {
                result = code;
            }
            failed.push(step[step.len() - 1]);
        }
    }
    if failed.is_empty() {
        eprintln!("xtask: the SMB harness passed against Samba");
    } else {
        eprintln!(
            "xtask: SMB harness steps failed against Samba: {}",
            failed.join(", ")
        );
    }
    result
}

/// Run a script step: paths under tests/ are taken from the workspace root.
fn run_step(step: &[&str]) -> Result<(), ExitCode> {
    let root = repo_root();
    let args: Vec<String> = step
        .iter()
        .map(|a| match a.starts_with("tests/") {
            true => root.join(a).to_string_lossy().into_owned(),
            false => (*a).to_string(),
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(args[0], &args[1..], &[])
}

/// Run a command; on failure, the exit code to end with. Each command's
/// wall time is printed when it ends, so a slow step shows in CI's log.
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), ExitCode> {
    let name = std::path::Path::new(program)
        .file_name()
        .map_or(program.into(), |n| n.to_string_lossy());
    let name = format!("{name} {}", args.first().copied().unwrap_or(""));
    let step = env
        .iter()
        .fold(Step::new(name, program, args), |step, (k, v)| step.env(k, *v));
    eprintln!("xtask: $ {program} {}", args.join(" "));
    let (took, outcome) = runner::execute(&step, None);
    eprintln!("xtask: [{} s] {}", took.as_secs(), step.name);
    match outcome {
        Outcome::Passed => Ok(()),
        Outcome::Failed(code) => Err(ExitCode::from(code)),
        Outcome::NotRun => Err(ExitCode::FAILURE),
    }
}

/// Whether a shell check succeeds.
fn have(check: &str) -> bool {
    Command::new("sh")
        .args(["-c", check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Install what is missing when we are root; otherwise say what to install.
fn system_packages(packages: &[(&str, &str)]) -> Result<(), ExitCode> {
    let mut missing: Vec<&str> = packages
        .iter()
        .filter(|(check, _)| !have(check))
        .map(|&(_, package)| package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root || !have("command -v apt-get") {
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
