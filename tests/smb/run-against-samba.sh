#!/usr/bin/env bash
# Run the SMB2/3 suite against Samba (the reference server): a private smbd on a free
# 127.0.0.1 port sharing a temporary directory as `export`, started through the testbed's
# samba-server (testbed/src/samba.rs), which stops it when the suite ends.
#
#   tests/smb/run-against-samba.sh [pytest args]      e.g. -k locks, or SMB_PROFILES=3.1.1-sign
#   tests/smb/run-against-samba.sh --exec CMD [ARGS]  run CMD with Samba up and SMB_* set
#
# Three passes: the whole suite on a plain share, then the policy tests (test_policy.py) and
# the round trips on an smbd with `server signing = mandatory`, and on one with
# `smb encrypt = required` (SMB_POLICY_PASSES=0 skips those two). Installs samba and
# smbclient (as root) and the Python packages (a venv under ~/.cache/weir-tests) when
# missing. Exit code: the first failing pass's pytest code, 2 when the harness could not run.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! is_root; then
    say "run-against-samba.sh needs root (smbd, and the share is written as root)"
    exit 2
fi
need smbd:samba smbpasswd:samba || exit 2
ensure_smb_clients || exit 2
PY="$(ensure_venv)" || { say "could not set up the Python venv"; exit 2; }
SAMBA="$(samba_server_bin)" || { say "could not build samba-server"; exit 2; }

TMP="$(mktemp -d /tmp/weir-smb-samba.XXXXXX)"
chmod 755 "$TMP" # smbd reaches the share as SMB_OTHER_USERS too
cleanup() { if [ -n "${KEEP_TMP:-}" ]; then say "kept $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# pass NAME SAMBA_FLAGS -- COMMAND: one smbd over a fresh directory for COMMAND.
pass() {
    local name=$1 flags=()
    shift
    while [ "$1" != -- ]; do flags+=("$1"); shift; done
    shift
    mkdir -p "$TMP/$name"
    say "pass '$name': samba-server ${flags[*]}"
    local others=()
    for u in ${SMB_OTHER_USERS//,/ }; do others+=(--other-user "$u"); done
    "$SAMBA" --dir "$TMP/$name" "${others[@]}" "${flags[@]}" -- env WEIR_TESTS_PYTHON="$PY" "$@"
}

if [ "${1:-}" = --exec ]; then
    shift
    pass exec -- "$@"
    exit
fi

status=0
pass plain -- bash -c 'cd "$0" && "$1" -m pytest -p no:cacheprovider -rfEsxX "${@:2}"' \
    "$SMBTESTS_DIR" "$PY" "$@" || status=$?
if [ "${SMB_POLICY_PASSES:-1}" != 0 ]; then
    policy_args=(test_policy.py test_files.py -k "test_policy or round_trip")
    for variant in signing-required encrypt-required; do
        code=0
        pass "$variant" "--$variant" -- bash -c 'cd "$0" && "$1" -m pytest -p no:cacheprovider -rfEsxX "${@:2}"' \
            "$SMBTESTS_DIR" "$PY" "${policy_args[@]}" || code=$?
        [ $status != 0 ] || status=$code
    done
fi
say "exit code $status (samba)"
exit $status
