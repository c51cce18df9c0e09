#!/usr/bin/env bash
# Flood `weir serve` from 127.0.0.1 while a client on 127.0.0.2 is served
# (tests/flood/test_flood.py); the test starts weir itself with its limits.
#
#   tests/flood/run-against-weir.sh [pytest args]
#
# WEIR_BIN: the weir binary (default: $CARGO_TARGET_DIR or target/, debug/weir; build it first).
# Exit codes: pytest's; 2 when the harness could not run.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../smb/lib.sh"
export WEIR_BIN="${WEIR_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/weir}"
[[ $WEIR_BIN == /* ]] || WEIR_BIN="$REPO/$WEIR_BIN"
PY="$(ensure_venv)" || { say "could not set up the Python venv"; exit 2; }
cd "$REPO/tests/flood" && exec "$PY" -m pytest -q -s -p no:cacheprovider "$@" test_flood.py
