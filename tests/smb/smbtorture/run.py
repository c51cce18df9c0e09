#!/usr/bin/env python3
"""Run smbtorture's SMB2 suites against a server and compare with that
server's known failures.

    run.py --server samba [--suites smb2.lock,smb2.rw] [--out DIR]

The target comes from the SMB_* variables (SMB_HOST, SMB_PORT, SMB_SHARE,
SMB_USER, SMB_PASS) or the flags. Each suite runs as
`smbtorture //HOST/SHARE -p PORT -U USER%PASS --fullname --format=subunit
SUITE` (plus the suite's options below) with a time limit; its subunit v1
output is parsed into one result per test and compared with
known-failures-SERVER.txt beside this script, where each line is
`test.name  # reason`, one test per line: an entry that names a suite
instead of a test is an error. Prints a table per suite and exits 1 on any
failure not listed there or on a suite entry, 2 when smbtorture could not
run at all. Tests listed that now pass are reported.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUITES = [
    "smb2.connect", "smb2.rw", "smb2.read", "smb2.create", "smb2.dir", "smb2.getinfo",
    "smb2.setinfo", "smb2.rename", "smb2.delete-on-close-perms", "smb2.lock", "smb2.oplock",
    "smb2.lease", "smb2.compound", "smb2.credits", "smb2.session", "smb2.notify", "smb2.maxfid",
    "smb2.timestamps",
]

# Options some suites need to finish in bounded time here.
SUITE_OPTIONS = {
    # Opens up to torture:maxopenfiles (default 0x11000 = 69632, many minutes
    # here) and passes when the limit is reached without an error.
    "smb2.maxfid": ["--option=torture:maxopenfiles=4096"],
}

# Seconds a suite may run before it is ended (its unfinished test fails).
DEFAULT_TIMEOUT = 600

# Suites that need longer than --timeout: smb2.lease waits out break
# timeouts (smb2.lease.timeout alone takes over a minute).
SUITE_TIMEOUTS = {"smb2.lease": 360}

OUTCOMES = {
    "success": "pass", "successful": "pass", "failure": "fail", "fail": "fail",
    "error": "fail", "skip": "skip", "xfail": "fail", "uxsuccess": "pass",
}
LINE = re.compile(r"^(?:\d*)(test|testing|success|successful|failure|fail|error|skip|xfail|uxsuccess)"
                  r":? (.+?)( \[( multipart)?)?$")


@dataclass
class Result:
    name: str
    outcome: str  # pass, fail, skip
    detail: str = ""


def parse_subunit(text):
    """Subunit v1 text into results, in order. A test that started and never
    ended (smbtorture crashed or was ended) is a failure."""
    results = {}
    started = []
    detail_of = None
    detail = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if detail_of is not None:
            if line == "]":
                results[detail_of].detail = "\n".join(detail)
                detail_of, detail = None, []
            else:
                detail.append(line)
            continue
        m = LINE.match(line)
        if not m:
            continue
        word, name, bracket = m.group(1), m.group(2).strip(), m.group(3)
        if word in ("test", "testing"):
            started.append(name)
            continue
        if name not in started:
            # Free text of a test's output that looks like a result line.
            continue
        results[name] = Result(name, OUTCOMES[word])
        if bracket:
            detail_of = name
    for name in started:
        if name not in results:
            results[name] = Result(name, "fail", "no result: smbtorture ended inside this test")
    return list(results.values())


def load_known(path):
    """{entry: reason} from `name  # reason` lines; blank lines and lines
    starting with # are comments."""
    known = {}
    if not path.exists():
        return known
    for n, line in enumerate(path.read_text().splitlines(), 1):
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        name, _, reason = body.partition("#")
        name, reason = name.strip(), reason.strip()
        if not reason:
            sys.exit(f"{path}:{n}: {name}: every known failure needs a reason after '#'")
        known[name] = reason
    return known


def known_entry(known, test):
    return test if test in known else None


def suite_entries(known, runs):
    """Entries that name no test that ran but a group of tests that did: each
    failing test must be listed by itself, with its own reason."""
    ran = {r.name for run in runs for r in run.results}
    return [e for e in known if e not in ran and any(n.startswith(e + ".") for n in ran)]


@dataclass
class SuiteRun:
    suite: str
    results: list = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""


def run_suite(args, suite, out_dir):
    unc = f"//{args.host}/{args.share}"
    cmd = [args.smbtorture, unc, "-p", str(args.port), "-U", f"{args.user}%{args.password}",
           "--fullname", "--format=subunit"]
    if args.target:
        cmd.append(f"--target={args.target}")
    cmd += SUITE_OPTIONS.get(suite, []) + args.option + [suite]
    t = time.monotonic()
    note = ""
    # Its own process group, so a suite past its time is ended with its children.
    # smbtorture leaves a smbtortureXXXXXX directory in its working directory.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=out_dir)
    limit = max(args.timeout, SUITE_TIMEOUTS.get(suite, 0))
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        note = f"ended after {limit} s"
    text = out.decode("utf-8", "replace")
    (out_dir / f"{suite}.subunit").write_text(text)
    results = parse_subunit(text)
    if not results:
        results = [Result(suite, "fail", f"smbtorture exited {proc.returncode} with no test run:\n"
                          + "\n".join(text.splitlines()[-10:]))]
    return SuiteRun(suite, results, time.monotonic() - t, note)


def summarise(runs, known, server):
    rows = []
    unexpected, fixed = [], []
    seen = set()
    for run in runs:
        c = dict(passed=0, failed=0, skipped=0, known=0, unexpected=0, upass=0)
        for r in run.results:
            entry = known_entry(known, r.name)
            if entry:
                seen.add(entry)
            if r.outcome == "pass":
                c["passed"] += 1
                if entry:
                    c["upass"] += 1
                    fixed.append((r.name, known[entry]))
            elif r.outcome == "skip":
                c["skipped"] += 1
            else:
                c["failed"] += 1
                if entry:
                    c["known"] += 1
                else:
                    c["unexpected"] += 1
                    unexpected.append(r)
        rows.append((run, c))
    head = ("suite", "passed", "failed", "skipped", "known failures", "unexpected failures",
            "unexpectedly passing", "seconds")
    table = [head] + [(run.suite + (f" ({run.note})" if run.note else ""), c["passed"],
                       c["failed"], c["skipped"], c["known"], c["unexpected"], c["upass"],
                       f"{run.seconds:.0f}") for run, c in rows]
    totals = ["total"] + [sum(c[k] for _, c in rows) for k in
                          ("passed", "failed", "skipped", "known", "unexpected", "upass")]
    totals.append(f"{sum(run.seconds for run in runs):.0f}")
    table.append(tuple(totals))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    print(f"\nsmbtorture against {server}:")
    for i, row in enumerate(table):
        print("  ".join(str(v).ljust(w) if j == 0 else str(v).rjust(w)
                        for j, (v, w) in enumerate(zip(row, widths))))
        if i == 0 or i == len(table) - 2:
            print("  ".join("-" * w for w in widths))
    if unexpected:
        print("\nunexpected failures:")
        for r in unexpected:
            first = next((ln.strip() for ln in r.detail.splitlines() if ln.strip()), "")
            print(f"  {r.name}  # {first[:200]}")
    if fixed:
        print("\nknown failures that passed (remove them from the list):")
        for name, reason in fixed:
            print(f"  {name}  # was: {reason}")
    ran = {r.name for run in runs for r in run.results}
    stale = [e for e in known if e not in seen and e not in ran
             and any(e.startswith(run.suite + ".") for run in runs)]
    if stale:
        print("\nknown failures of these suites that did not run:")
        for e in stale:
            print(f"  {e}")
    return unexpected


def main():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=env("SMB_SERVER", "weir"),
                   help="whose known-failures-SERVER.txt to use (samba, weir)")
    p.add_argument("--host", default=env("SMB_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("SMB_PORT", "445")))
    p.add_argument("--share", default=env("SMB_SHARE", "export"))
    p.add_argument("--user", default=env("SMB_USER", "root"))
    p.add_argument("--password", default=env("SMB_PASS", ""))
    p.add_argument("--suites", default=",".join(SUITES), help="comma-separated suites or tests")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per suite")
    p.add_argument("--target", default=None,
                   help="smbtorture --target (samba3 selects Samba's behaviour in some tests)")
    p.add_argument("--option", action="append", default=[],
                   help="more smbtorture arguments for every suite, e.g. --option=torture:x=y")
    p.add_argument("--known", type=Path, default=None, help="known-failures file")
    p.add_argument("--out", type=Path, default=None, help="directory for each suite's output")
    p.add_argument("--smbtorture", default=shutil.which("smbtorture") or "smbtorture")
    args = p.parse_args()
    if not shutil.which(args.smbtorture):
        print("smbtorture not found: apt-get install samba-testsuite", file=sys.stderr)
        return 2
    known = load_known(args.known or HERE / f"known-failures-{args.server}.txt")
    out_dir = args.out or Path(os.environ.get("TMPDIR", "/tmp")) / f"smbtorture-{args.server}"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for suite in [s.strip() for s in args.suites.split(",") if s.strip()]:
        print(f"smbtorture: {suite} ...", file=sys.stderr, flush=True)
        run = run_suite(args, suite, out_dir)
        print(f"smbtorture: {suite}: {len(run.results)} tests, {run.seconds:.0f} s {run.note}",
              file=sys.stderr, flush=True)
        runs.append(run)
    unexpected = summarise(runs, known, args.server)
    suites = suite_entries(known, runs)
    if suites:
        print("\nknown-failures entries that name a suite, not a test (list its failing tests,"
              " each with its reason):")
        for e in suites:
            print(f"  {e}  # {known[e]}")
    print(f"\noutput of each suite: {out_dir}/SUITE.subunit")
    total = sum(len(r.results) for r in runs)
    failed = sum(1 for r in runs for x in r.results if x.outcome == "fail")
    passed = sum(1 for r in runs for x in r.results if x.outcome == "pass")
    skipped = total - failed - passed
    print(f"known failures that failed: {failed - len(unexpected)}")
    print(f"smbtorture: {passed} passed, {len(unexpected)} failed, {skipped} skipped")
    return 1 if unexpected or suites else 0


if __name__ == "__main__":
    sys.exit(main())
