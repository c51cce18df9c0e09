#!/bin/sh
# Run each fuzz target of smb-front briefly (default 60 s each).
#   smb-front/fuzz/run.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); works on stable Rust through
# RUSTC_BOOTSTRAP=1. Fails when cargo-fuzz is missing.
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
[ $# -gt 0 ] && shift
if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 1
fi
targets=${*:-"$(cargo fuzz list)"}
for t in $targets; do
    echo "fuzz: $t for ${secs}s" >&2
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048
done
