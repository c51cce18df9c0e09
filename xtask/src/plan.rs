//! The steps of `cargo xtask test` and which of them run side by side.
//!
//! Two phases of lanes. First `cargo fmt` and the weir binary in one lane
//! while the other prepares what is slow to fetch and needs little CPU (the
//! kernel-client guest image, the Python venv). Then the checks: one after
//! another by default, or with `WEIR_TEST_LANES=3` in three lanes: the qemu
//! guest (the longest), clippy, the Rust tests and smbtorture (which spends
//! most of its time waiting for breaks and notifications that are meant not
//! to come), and the suites driven from the host with the fuzz targets. On
//! two cores the three lanes starve the TCG guest and push smbtorture's
//! timed suites past their limits, so one lane is the default there.
//!
//! The guest lane is the longest and the guest is CPU-bound under TCG, so
//! clippy, the Rust tests and the fuzz targets run niced: they take the CPU
//! the guest leaves. The guest runs get a longer time limit than alone
//! (`KCLIENT_TIMEOUT`): it is there to end a hung guest, and the guest is
//! slower beside the other lanes.
//!
//! Every cargo step builds with `opt-level = 1` (`CARGO_PROFILE_DEV_OPT_LEVEL`):
//! debug assertions and overflow checks stay on, but the weir under test no
//! longer spends the end-to-end steps in unoptimised crypto and copies (the
//! SMB suite's signed and encrypted 256 MiB files took minutes each).

use crate::runner::Step;
use std::path::{Path, PathBuf};

/// Seconds each fuzz target runs in `cargo xtask test`.
pub const FUZZ_SECONDS: &str = "15";

/// A lane: its name and its steps, run in order.
pub type Lane = (&'static str, Vec<Step>);

/// Seconds one guest run may take (run-guest.sh's own default is 900).
const GUEST_TIMEOUT: &str = "1800";

/// The dev profile's opt-level of every cargo step (see the module doc).
const OPT_LEVEL: (&str, &str) = ("CARGO_PROFILE_DEV_OPT_LEVEL", "1");

/// Everything `cargo xtask test` runs after installing system packages.
pub struct Plan {
    /// Lanes run side by side.
    pub builds: Vec<Lane>,
    /// Lanes run side by side once every build lane has passed.
    pub checks: Vec<Lane>,
}

impl Plan {
    /// `side_by_side`: the checks in three lanes at once (guest; cargo;
    /// suites) instead of one after another.
    pub fn new(
        root: &Path,
        cargo: &str,
        nextest: bool,
        fuzz_scripts: &[PathBuf],
        side_by_side: bool,
    ) -> Plan {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let target = if target.is_absolute() {
            target
        } else {
            root.join(target)
        };
        let weir = target.join("debug").join("weir").to_string_lossy().into_owned();
        let script = |name: &'static str, path: &str, args: &[&str]| {
            Step::new(name, root.join(path).to_string_lossy(), args)
                .env("WEIR_BIN", weir.clone())
                .env(OPT_LEVEL.0, OPT_LEVEL.1)
        };
        let cargo_step =
            |name: &'static str, args: &[&str]| Step::new(name, cargo, args).env(OPT_LEVEL.0, OPT_LEVEL.1);
        let tests: &[&str] = if nextest {
            &["nextest", "run", "--workspace"]
        } else {
            &["test", "--workspace"]
        };
        let build_lane = vec![
            cargo_step("fmt", &["fmt", "--all", "--", "--check"]),
            cargo_step("build weir", &["build", "-p", "appliance", "--bin", "weir"]),
        ];
        let setup_lane = vec![
            script("guest image", "tests/kernel-client/build-guest.sh", &[]),
            Step::new(
                "python venv",
                "bash",
                &[
                    "-c",
                    ". \"$0\" && ensure_venv",
                    &root.join("tests/nfs/lib.sh").to_string_lossy(),
                ],
            ),
        ];
        let cargo_lane = vec![
            cargo_step(
                "clippy",
                &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
            )
            .niced(),
            cargo_step(if nextest { "nextest" } else { "cargo test" }, tests).niced(),
            script(
                "smbtorture",
                "tests/smb/run-against-weir.sh",
                &[
                    "--exec",
                    &root.join("tests/smb/smbtorture/run.py").to_string_lossy(),
                    "--server",
                    "weir",
                    // smb2.notify.tcon waits for a notification Weir does not send.
                    "--timeout",
                    "120",
                ],
            ),
        ];
        let guest =
            |name: &'static str, path: &str| script(name, path, &[]).env("KCLIENT_TIMEOUT", GUEST_TIMEOUT);
        let guest_lane = vec![
            guest("kernel NFS client", "tests/kernel-client/run-against-weir.sh"),
            // Weir caching nfs-ganesha (the `nfs` core filer), write-through and then
            // write-behind ("read-write"), compared with ganesha alone.
            guest(
                "kernel NFS via ganesha",
                "tests/kernel-client/run-through-weir-to-ganesha.sh",
            ),
            guest(
                "kernel CIFS client",
                "tests/kernel-client/run-cifs-against-weir.sh",
            ),
        ];
        let mut suites_lane = vec![
            script("NFS suite", "tests/nfs/run-against-weir.sh", &[]),
            // The smbprotocol/smbclient suite, plain and with signing and
            // encryption required.
            script("SMB suite", "tests/smb/run-against-weir.sh", &[]),
            // NFS and SMB clients on one weir: data, attributes, and the SMB
            // lease and oplock breaks NFS changes cause.
            script("multiproto", "tests/multiproto/run-against-weir.sh", &[]),
            // A flood from one address against `[limits]`, a client on another served.
            script("flood", "tests/flood/run-against-weir.sh", &[]),
        ];
        suites_lane.push(Step::new(
            "cargo-fuzz",
            "sh",
            &[
                "-c",
                "\"$0\" fuzz --help >/dev/null 2>&1 || \"$0\" install --locked cargo-fuzz",
                cargo,
            ],
        ));
        // The fuzz crates share a target directory of their own: the Rust
        // tests build in the main one at the same time.
        let fuzz_target = target.join("fuzz").to_string_lossy().into_owned();
        for run in fuzz_scripts {
            let krate = run
                .parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            suites_lane.push(
                Step::new(format!("fuzz {krate}"), run.to_string_lossy(), &[FUZZ_SECONDS])
                    .env("CARGO_TARGET_DIR", fuzz_target.clone())
                    .niced(),
            );
        }
        let checks = if side_by_side {
            vec![
                ("guest", guest_lane),
                ("cargo", cargo_lane),
                ("suites", suites_lane),
            ]
        } else {
            let mut one = cargo_lane;
            one.extend(suites_lane);
            one.extend(guest_lane);
            vec![("checks", one)]
        };
        Plan {
            builds: vec![("build", build_lane), ("setup", setup_lane)],
            checks,
        }
    }

    /// Every step, phase by phase and lane by lane.
    pub fn steps(&self) -> impl Iterator<Item = (&'static str, &Step)> {
        self.builds
            .iter()
            .chain(&self.checks)
            .flat_map(|(lane, steps)| steps.iter().map(move |s| (*lane, s)))
    }
}
