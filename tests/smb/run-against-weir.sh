#!/usr/bin/env bash
# Run the SMB2/3 suite against `weir serve` with its SMB front end on 127.0.0.1.
#
#   tests/smb/run-against-weir.sh [pytest args]
#   tests/smb/run-against-weir.sh --exec CMD [ARGS]   run CMD with weir up and SMB_* set
#                                                     (e.g. the smbtorture runner)
#
# WEIR_BIN: the weir binary (default: $CARGO_TARGET_DIR or target/, debug/weir; build it first).
# WEIR_SMB_TEST_PORT: the port (default: a free one). The user (SMB_USER, default
# weir-test) is created with `weir smbpasswd NAME --data-dir D`, which reads the password
# (SMB_PASS, default weir-test-pass) on stdin; the share is `export` over the origin
# directory, the `local` core filer. Installs smbclient (as root) and the Python packages
# (a venv under ~/.cache/weir-tests) when missing.
#
# Exit codes: pytest's (or CMD's); 77 when this weir has no SMB server (no `smbpasswd`
# command); 2 when the harness could not run (including a weir that does not listen
# within 10 s).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export WEIR_BIN="${WEIR_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/weir}"
SMB_USER="${SMB_USER:-weir-test}"
SMB_PASS="${SMB_PASS:-weir-test-pass}"

check_weir_smb || exit $?
ensure_smb_clients || exit 2
PY="$(ensure_venv)" || { say "could not set up the Python venv"; exit 2; }

weir_run_dir weir-smb-weir
PORT="${WEIR_SMB_TEST_PORT:-$(free_port "$PY")}"
add_smb_user || exit 2
"$WEIR_BIN" serve --data-dir "$TMP/state" --origin "$TMP/export" \
    --smb-listen "127.0.0.1:$PORT" --nfs-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    </dev/null >"$TMP/weir.out" 2>&1 &
echo $! >"$TMP/weir.pid"
if ! wait_port 127.0.0.1 "$PORT" 10; then
    say "weir did not listen on 127.0.0.1:$PORT within 10 s; its output:"
    cat "$TMP/weir.out" >&2
    exit 2
fi
say "weir $(cat "$TMP/weir.pid") serving $TMP/export as //127.0.0.1/export on port $PORT"

export SMB_SERVER=weir SMB_HOST=127.0.0.1 SMB_PORT=$PORT SMB_SHARE=export \
    SMB_USER SMB_PASS SMB_BACKDIR="$TMP/export"
if [ "${1:-}" = --exec ]; then
    shift
    WEIR_TESTS_PYTHON="$PY" "$@"
else
    run_smb_suite "$PY" "$@"
fi
code=$?
say "exit code $code (weir)"
exit $code
