#!/usr/bin/env bash
# Run the NFSv3 conformance suite against `weir serve` (NFS and MOUNT on one port).
#
#   tests/nfs/run-against-weir.sh [pytest args]
#   tests/nfs/run-against-weir.sh --exec CMD [ARGS]   run CMD with the WEIR_NFS_* variables set
#
# WEIR_BIN: the weir binary (default: $CARGO_TARGET_DIR or target/, debug/weir; build it first).
# WEIR_NFS_TEST_PORT: the port (default: a free one). Installs libnfs-utils (as root) and the
# Python packages (a venv under ~/.cache/weir-tests) when missing.
#
# Exit codes: pytest's; 2 when the harness could not run (including a weir that does not
# listen within 10 s).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
REPO="$(cd "$NFSTESTS_DIR/../.." && pwd)"
export WEIR_BIN="${WEIR_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/weir}"

# start_weir TMP: start weir on the run's data and config; 0 when it listens, else 1.
start_weir() {
    local tmp=$1 port
    port="$(cat "$tmp/port")"
    local args=(serve --data-dir "$tmp/state" --origin "$tmp/export"
        --nfs-listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --smb-listen 127.0.0.1:0)
    [ -e "$tmp/weir.toml" ] && args+=(--config "$tmp/weir.toml")
    : >"$tmp/weir.out"
    "$WEIR_BIN" "${args[@]}" </dev/null >>"$tmp/weir.out" 2>&1 &
    echo $! >"$tmp/weir.pid"
    local deadline=$((SECONDS + 10))
    while [ $SECONDS -lt $deadline ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        if ! kill -0 "$(cat "$tmp/weir.pid")" 2>/dev/null; then
            say "weir exited at start:"; cat "$tmp/weir.out" >&2; return 1
        fi
        sleep 0.2
    done
    say "weir did not listen on 127.0.0.1:$port within 10 s; its output:"
    cat "$tmp/weir.out" >&2
    return 1
}

if [ "${1:-}" = --restart ]; then # the WEIR_NFS_RESTART hook: --restart TMP
    stop_pid "$(cat "$2/weir.pid")" weir
    start_weir "$2"
    exit
fi

if [ ! -x "$WEIR_BIN" ]; then
    say "no weir binary at $WEIR_BIN: build it (cargo build -p appliance --bin weir) or set WEIR_BIN"
    exit 2
fi
need nfs-ls:libnfs-utils nfs-cp:libnfs-utils nfs-cat:libnfs-utils || exit 2
PY="$(ensure_venv)" || { say "could not set up the Python venv"; exit 2; }

TMP="$(mktemp -d /tmp/weir-nfs-weir.XXXXXX)"
cleanup() {
    stop_pid "$(cat "$TMP/weir.pid" 2>/dev/null)" weir
    if [ -n "${KEEP_TMP:-}" ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$TMP/state" "$TMP/export"
chmod 1777 "$TMP/export" # the root-squash test writes there as the anonymous user
PORT="${WEIR_NFS_TEST_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
echo "$PORT" >"$TMP/port"

# Export rules (read-only, root squash) through the config file. The suite acts as root
# on /export and calls from unprivileged ports, so its rules say so (Weir's default export
# squashes root and serves privileged ports only).
cat >"$TMP/weir.toml" <<'TOML'
[[exports]]
path = "/export"
subdir = "/"
[[exports.rules]]
clients = ["*"]
access = "rw"
squash = "none"
secure = false

[[exports]]
path = "/ro"
subdir = "/"
[[exports.rules]]
clients = ["*"]
access = "ro"
squash = "none"
secure = false

[[exports]]
path = "/squash"
subdir = "/"
[[exports.rules]]
clients = ["*"]
access = "rw"
squash = "root"
secure = false
TOML
if ! "$WEIR_BIN" config check "$TMP/weir.toml" >"$TMP/config-check.out" 2>&1; then
    say "weir rejects the export-rules config:"
    sed 's/^/    /' "$TMP/config-check.out" >&2
    exit 2
fi

start_weir "$TMP"
code=$?
if [ $code != 0 ]; then
    exit 2
fi
say "weir $(cat "$TMP/weir.pid") serving $TMP/export on 127.0.0.1:$PORT"

export WEIR_NFS_SERVER=weir WEIR_NFS_HOST=127.0.0.1 WEIR_NFS_PORT=$PORT WEIR_MOUNT_PORT=$PORT \
    WEIR_NFS_EXPORT=/export WEIR_NFS_BACKDIR="$TMP/export" \
    WEIR_NFS_RESTART="$(readlink -f "${BASH_SOURCE[0]}") --restart $TMP" \
    WEIR_NFS_RO_EXPORT=/ro WEIR_NFS_SQUASH_EXPORT=/squash \
    WEIR_NFS_ANON_UID=65534 WEIR_NFS_ANON_GID=65534
if [ "${1:-}" = --exec ]; then
    shift
    WEIR_TESTS_PYTHON="$PY" "$@"
else
    run_suite "$PY" "$@"
fi
code=$?
say "exit code $code (weir)"
exit $code
