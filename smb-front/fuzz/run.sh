#!/bin/sh
# Run the SMB authentication fuzz target briefly (default 60 s).
#   smb-front/fuzz/run.sh [SECONDS]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); works on stable Rust through
# RUSTC_BOOTSTRAP=1. Fails when cargo-fuzz is missing.
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 1
fi
echo "fuzz: auth for ${secs}s" >&2
RUSTC_BOOTSTRAP=1 cargo fuzz run auth -- -max_total_time="$secs" -rss_limit_mb=2048
