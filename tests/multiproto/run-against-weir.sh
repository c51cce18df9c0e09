#!/usr/bin/env bash
# Run the multi-protocol suite against one `weir serve` with its SMB and NFS front
# ends on 127.0.0.1, both over the same origin directory.
#
#   tests/multiproto/run-against-weir.sh [pytest args]
#
# WEIR_BIN: the weir binary (default: $CARGO_TARGET_DIR or target/, debug/weir; build it first).
# The SMB user (SMB_USER, default weir-test, password SMB_PASS) is created with
# `weir smbpasswd` as the caller's uid and gid; NFS calls use AUTH_SYS with the same ids.
# The share is `export` and the NFS export `/export`, both the `local` core filer's
# root. Uses the NFS and SMB suites' helpers and their Python venv.
#
# Exit codes: pytest's; 77 when this weir has no SMB server (no `smbpasswd` command);
# 2 when the harness could not run (including a weir that does not listen within 10 s).
set -uo pipefail
MPTESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$MPTESTS_DIR/../smb/lib.sh"
say() { echo "multiproto-tests: $*" >&2; }
export WEIR_BIN="${WEIR_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/weir}"
SMB_USER="${SMB_USER:-weir-test}"
SMB_PASS="${SMB_PASS:-weir-test-pass}"

check_weir_smb || exit $?
PY="$(ensure_venv)" || { say "could not set up the Python venv"; exit 2; }

weir_run_dir weir-multiproto
SMB_PORT="$(free_port "$PY")"
NFS_PORT="$(free_port "$PY")"
while [ "$NFS_PORT" = "$SMB_PORT" ]; do NFS_PORT="$(free_port "$PY")"; done
add_smb_user || exit 2
# The NFS side acts as this user (root in CI) from unprivileged ports: the export says so.
"$WEIR_BIN" serve --config "$MPTESTS_DIR/../weir-root-export.toml" --data-dir "$TMP/state" --origin "$TMP/export" \
    --smb-listen "127.0.0.1:$SMB_PORT" --nfs-listen "127.0.0.1:$NFS_PORT" --metrics-listen 127.0.0.1:0 \
    </dev/null >"$TMP/weir.out" 2>&1 &
echo $! >"$TMP/weir.pid"
for port in "$SMB_PORT" "$NFS_PORT"; do
    if ! wait_port 127.0.0.1 "$port" 10; then
        say "weir did not listen on 127.0.0.1:$port within 10 s; its output:"
        cat "$TMP/weir.out" >&2
        exit 2
    fi
done
say "weir $(cat "$TMP/weir.pid") serving $TMP/export: SMB //127.0.0.1/export on port $SMB_PORT," \
    "NFS 127.0.0.1:/export on port $NFS_PORT"

export SMB_HOST=127.0.0.1 SMB_PORT SMB_SHARE=export SMB_USER SMB_PASS \
    WEIR_NFS_HOST=127.0.0.1 WEIR_NFS_PORT=$NFS_PORT WEIR_MOUNT_PORT=$NFS_PORT WEIR_NFS_EXPORT=/export
(cd "$MPTESTS_DIR" && "$PY" -m pytest -p no:cacheprovider -rfEsxX "$@")
code=$?
say "exit code $code (weir)"
exit $code
