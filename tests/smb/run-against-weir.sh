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
# Three passes, as run-against-samba.sh: the whole suite, then the policy tests
# (test_policy.py) and the round trips on a weir with `signing = "required"` and on one
# with `encryption = "required"` (SMB_POLICY_PASSES=0 skips those two).
#
# Exit codes: the first failing pass's pytest code (or CMD's); 77 when this weir has no
# SMB server (no `smbpasswd` command); 2 when the harness could not run (including a
# weir that does not listen within 10 s).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export WEIR_BIN="${WEIR_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/weir}"
# Absolute: the suite runs in tests/smb and starts weirs of its own.
[[ $WEIR_BIN == /* ]] || WEIR_BIN=$PWD/$WEIR_BIN
SMB_USER="${SMB_USER:-weir-test}"
SMB_PASS="${SMB_PASS:-weir-test-pass}"

check_weir_smb || exit $?
ensure_smb_clients || exit 2
PY="$(ensure_venv)" || { say "could not set up the Python venv"; exit 2; }

weir_run_dir weir-smb-weir

# serve NAME [TOML]: stop the weir of the previous pass, drop its cache files, and start one over $TMP/NAME (its
# own state, user and export directory), with TOML as its config file; sets PORT and
# SMB_BACKDIR.
serve() {
    local dir=$TMP/$1 conf=()
    stop_pid "$(cat "$TMP/weir.pid" 2>/dev/null)" weir
    # The previous pass's preallocated cache files (a GiB a shard): three passes'
    # worth can outgrow a small disk.
    rm -rf "$TMP"/*/state/cache
    mkdir -p "$dir/state" "$dir/export"
    if [ -n "${2:-}" ]; then
        printf '%s\n' "$2" >"$dir/weir.toml"
        conf=(--config "$dir/weir.toml")
    fi
    PORT="${WEIR_SMB_TEST_PORT:-$(free_port "$PY")}"
    add_smb_user "$dir/state" || return 2
    "$WEIR_BIN" serve "${conf[@]}" --data-dir "$dir/state" --origin "$dir/export" \
        --smb-listen "127.0.0.1:$PORT" --nfs-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
        </dev/null >"$dir/weir.out" 2>&1 &
    echo $! >"$TMP/weir.pid"
    if ! wait_port 127.0.0.1 "$PORT" 10; then
        say "weir did not listen on 127.0.0.1:$PORT within 10 s; its output:"
        cat "$dir/weir.out" >&2
        return 2
    fi
    say "pass '$1': weir $(cat "$TMP/weir.pid") serving $dir/export as //127.0.0.1/export on port $PORT"
    export SMB_PORT=$PORT SMB_BACKDIR="$dir/export"
}

export SMB_SERVER=weir SMB_HOST=127.0.0.1 SMB_SHARE=export SMB_USER SMB_PASS
if [ "${1:-}" = --exec ]; then
    shift
    serve exec || exit 2
    WEIR_TESTS_PYTHON="$PY" "$@"
    code=$?
    say "exit code $code (weir)"
    exit $code
fi

# As against Samba: the whole suite, then the policy tests and the round trips on a weir
# that demands signing and on one that demands encryption (SMB_POLICY_PASSES=0 skips those).
serve plain || exit 2
status=0
run_smb_suite "$PY" "$@" || status=$?
if [ "${SMB_POLICY_PASSES:-1}" != 0 ]; then
    policy_args=(test_policy.py test_files.py -k "test_policy or round_trip")
    for variant in signing encryption; do
        serve "$variant-required" "$(printf '[smb]\n%s = "required"' "$variant")" || exit 2
        code=0
        if [ $variant = signing ]; then
            SMB_SIGNING_REQUIRED=1 run_smb_suite "$PY" "${policy_args[@]}" || code=$?
        else
            SMB_ENCRYPT_REQUIRED=1 run_smb_suite "$PY" "${policy_args[@]}" || code=$?
        fi
        [ $status != 0 ] || status=$code
    done
fi
say "exit code $status (weir)"
exit $status
