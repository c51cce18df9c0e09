//! Running steps: one at a time with their output on the terminal, or in
//! lanes side by side (each lane a thread running its steps in order) with
//! each step's output in a log file of its own, shown when the step fails.
//! Every step's wall time is recorded for the table printed at the end.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One step: a name for the table and a command.
#[derive(Clone)]
pub struct Step {
    pub name: String,
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Step {
    pub fn new(name: impl Into<String>, program: impl Into<String>, args: &[&str]) -> Step {
        Step {
            name: name.into(),
            program: program.into(),
            args: args.iter().map(|a| (*a).to_string()).collect(),
            env: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Step {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Run at a lower CPU priority (`nice -n 10`): for steps that only
    /// need what CPU the lanes on the critical path leave.
    pub fn niced(mut self) -> Step {
        let program = std::mem::replace(&mut self.program, "nice".into());
        self.args
            .splice(0..0, ["-n".to_string(), "10".to_string(), program]);
        self
    }

    fn command_line(&self) -> String {
        let mut line = self.program.clone();
        for a in &self.args {
            line.push(' ');
            line.push_str(a);
        }
        line
    }
}

/// What became of a step.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Failed with this exit code (1 when it had none).
    Failed(u8),
    /// Not started: an earlier step failed.
    NotRun,
}

struct Record {
    name: String,
    lane: String,
    took: Duration,
    outcome: Outcome,
    log: Option<PathBuf>,
}

/// Runs steps and keeps their records; after the first failure no further
/// step starts (steps already running finish).
pub struct Runner {
    log_dir: PathBuf,
    started: Instant,
    failed: AtomicBool,
    records: Mutex<Vec<Record>>,
}

impl Runner {
    pub fn new(log_dir: PathBuf) -> Runner {
        Runner {
            log_dir,
            started: Instant::now(),
            failed: AtomicBool::new(false),
            records: Mutex::new(Vec::new()),
        }
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Run `f` as a step named `name` (its output is its own affair).
    pub fn call(&self, name: &str, f: impl FnOnce() -> Result<(), ExitCode>) -> Result<(), ExitCode> {
        let t = Instant::now();
        let result = f();
        let outcome = match &result {
            Ok(()) => Outcome::Passed,
            Err(_) => {
                self.failed.store(true, Ordering::SeqCst);
                Outcome::Failed(1)
            }
        };
        self.record(name, "-", t.elapsed(), outcome, None);
        result
    }

    /// Run one step with its output on the terminal.
    pub fn run(&self, step: &Step) -> Result<(), ExitCode> {
        self.run_step(step, "-", None)
    }

    /// Run each lane's steps in order, the lanes side by side; each step's
    /// output goes to `<log dir>/<step>.log`.
    pub fn lanes(&self, lanes: &[(&str, Vec<Step>)]) -> Result<(), ExitCode> {
        if let Err(e) = std::fs::create_dir_all(&self.log_dir) {
            eprintln!("xtask: cannot make {}: {e}", self.log_dir.display());
            return Err(ExitCode::FAILURE);
        }
        let names: Vec<&str> = lanes.iter().map(|(name, _)| *name).collect();
        if !self.failed() {
            eprintln!(
                "xtask: side by side: {} (logs in {})",
                names.join(" | "),
                self.log_dir.display()
            );
        }
        std::thread::scope(|scope| {
            for (lane, steps) in lanes {
                scope.spawn(move || {
                    // After a failure anywhere the rest are recorded as not run.
                    for step in steps {
                        let log = self.log_dir.join(format!("{}.log", file_name(&step.name)));
                        let _ = self.run_step(step, lane, Some(&log));
                    }
                });
            }
        });
        self.first_failure()
    }

    fn first_failure(&self) -> Result<(), ExitCode> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        match records.iter().find_map(|r| match r.outcome {
            Outcome::Failed(code) => Some(code),
            _ => None,
        }) {
            Some(code) => Err(ExitCode::from(code)),
            None => Ok(()),
        }
    }

    fn run_step(&self, step: &Step, lane: &str, log: Option<&Path>) -> Result<(), ExitCode> {
        if self.failed() {
            self.record(&step.name, lane, Duration::ZERO, Outcome::NotRun, None);
            return Err(ExitCode::FAILURE);
        }
        match log {
            Some(_) => eprintln!("xtask: [{lane}] {} started: $ {}", step.name, step.command_line()),
            None => eprintln!("xtask: $ {}", step.command_line()),
        }
        let (took, outcome) = execute(step, log);
        self.finish(step, lane, took, outcome, log)
    }

    fn finish(
        &self,
        step: &Step,
        lane: &str,
        took: Duration,
        outcome: Outcome,
        log: Option<&Path>,
    ) -> Result<(), ExitCode> {
        let word = match outcome {
            Outcome::Passed => "passed",
            _ => "FAILED",
        };
        eprintln!("xtask: [{} s] {} {word}", took.as_secs(), step.name);
        if let (Outcome::Failed(_), Some(log)) = (outcome, log) {
            self.failed.store(true, Ordering::SeqCst);
            show_log(&step.name, log);
        }
        self.record(&step.name, lane, took, outcome, log.map(Path::to_path_buf));
        match outcome {
            Outcome::Passed => Ok(()),
            Outcome::Failed(code) => {
                self.failed.store(true, Ordering::SeqCst);
                Err(ExitCode::from(code))
            }
            Outcome::NotRun => Err(ExitCode::FAILURE),
        }
    }

    fn record(&self, name: &str, lane: &str, took: Duration, outcome: Outcome, log: Option<PathBuf>) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.push(Record {
            name: name.to_string(),
            lane: lane.to_string(),
            took,
            outcome,
            log,
        });
    }

    /// The table of every step's wall time, its lane and outcome, and the
    /// total wall time since the runner was made.
    pub fn print_table(&self) {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let name_w = records.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
        let lane_w = records.iter().map(|r| r.lane.len()).max().unwrap_or(4).max(4);
        eprintln!("\nxtask: step times (steps in different lanes ran side by side)");
        eprintln!(
            "{:<name_w$}  {:<lane_w$}  {:>7}  result",
            "step", "lane", "seconds"
        );
        eprintln!("{}", "-".repeat(name_w + lane_w + 22));
        for r in records.iter() {
            let result = match r.outcome {
                Outcome::Passed => "passed".to_string(),
                Outcome::Failed(code) => match &r.log {
                    Some(log) => format!("FAILED ({code}), log {}", log.display()),
                    None => format!("FAILED ({code})"),
                },
                Outcome::NotRun => "not run".to_string(),
            };
            let secs = match r.outcome {
                Outcome::NotRun => "-".to_string(),
                _ => format!("{:.0}", r.took.as_secs_f64()),
            };
            eprintln!("{:<name_w$}  {:<lane_w$}  {secs:>7}  {result}", r.name, r.lane);
        }
        eprintln!("{}", "-".repeat(name_w + lane_w + 22));
        let total = self.started.elapsed().as_secs_f64();
        eprintln!(
            "{:<name_w$}  {:<lane_w$}  {total:>7.0}  ({:.1} min wall time)",
            "total",
            "",
            total / 60.0
        );
    }
}

/// Run a step's command, its output to `log` (or the terminal); how long it
/// took and how it ended.
pub fn execute(step: &Step, log: Option<&Path>) -> (Duration, Outcome) {
    let mut command = Command::new(&step.program);
    command
        .args(&step.args)
        .envs(step.env.iter().map(|(k, v)| (k, v)));
    if let Some(path) = log {
        let file = match File::create(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("xtask: cannot write {}: {e}", path.display());
                return (Duration::ZERO, Outcome::Failed(1));
            }
        };
        let err = file.try_clone();
        command.stdin(Stdio::null()).stdout(file);
        if let Ok(err) = err {
            command.stderr(err);
        }
    }
    let t = Instant::now();
    let status = command.status();
    let took = t.elapsed();
    let outcome = match status {
        Ok(s) if s.success() => Outcome::Passed,
        Ok(s) => {
            eprintln!("xtask: `{}` failed ({s})", step.command_line());
            let code = s.code().and_then(|c| u8::try_from(c).ok()).filter(|&c| c != 0);
            Outcome::Failed(code.unwrap_or(1))
        }
        Err(e) => {
            eprintln!("xtask: cannot run {}: {e}", step.program);
            Outcome::Failed(1)
        }
    };
    (took, outcome)
}

/// A step's name as a file name.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Print a failed step's log, framed so it stands out among other lanes' lines.
fn show_log(name: &str, log: &Path) {
    let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned());
    // One lock for the whole log, so other lanes' lines do not cut into it.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "xtask: ---- log of {name} ({}) ----", log.display());
    let _ = match text {
        Ok(text) => write!(err, "{text}"),
        Err(e) => writeln!(err, "(cannot read it: {e})"),
    };
    let _ = writeln!(err, "xtask: ---- end of the log of {name} ----");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(runner: &Runner) -> Vec<(String, Outcome)> {
        let records = runner.records.lock().unwrap();
        records.iter().map(|r| (r.name.clone(), r.outcome)).collect()
    }

    #[test]
    fn a_failure_ends_the_run_with_its_code_and_starts_nothing_after_it() {
        let dir = std::env::temp_dir().join(format!("xtask-runner-test-{}", std::process::id()));
        let runner = Runner::new(dir.clone());
        let fails = Step::new("fails", "sh", &["-c", "echo inside the log; exit 3"]);
        let slow = Step::new("slow", "sh", &["-c", "sleep 0.3"]);
        let lanes = [
            ("a", vec![fails, Step::new("after", "true", &[])]),
            ("b", vec![slow, Step::new("later", "true", &[])]),
        ];
        assert!(runner.lanes(&lanes).is_err());
        let got = outcomes(&runner);
        let of = |name: &str| got.iter().find(|(n, _)| n == name).map(|(_, o)| *o);
        assert!(of("fails") == Some(Outcome::Failed(3)));
        assert!(of("after") == Some(Outcome::NotRun));
        assert!(of("slow") == Some(Outcome::Passed), "a running step finishes");
        assert!(of("later") == Some(Outcome::NotRun));
        let log = std::fs::read_to_string(dir.join("fails.log")).unwrap();
        assert_eq!(log, "inside the log\n");
        runner.print_table();
        let _ = std::fs::remove_dir_all(dir);
    }
}
