# Shared by the SMB runners (sourced): the NFS suite's helpers (packages, the venv that
# holds both suites' Python packages, ports, stopping by PID), plus what SMB adds.
SMBTESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$SMBTESTS_DIR/../nfs/lib.sh"
REPO="$(cd "$SMBTESTS_DIR/../.." && pwd)"

say() { echo "smb-tests: $*" >&2; }

# ensure_smb_clients: smbclient (Debian) for the suite's command-line tests.
ensure_smb_clients() {
    need smbclient:smbclient
}

# samba_server_bin: build (when needed) and print the testbed's samba-server.
samba_server_bin() {
    if [ -n "${SAMBA_SERVER_BIN:-}" ]; then echo "$SAMBA_SERVER_BIN"; return; fi
    (cd "$REPO" && "${CARGO:-cargo}" build --quiet -p testbed --bin samba-server) >&2 || return 1
    local bin=${CARGO_TARGET_DIR:-$REPO/target}/debug/samba-server
    [[ $bin == /* ]] || bin=$REPO/$bin
    echo "$bin"
}

# free_port PYTHON: a TCP port on 127.0.0.1 nothing listens on.
free_port() {
    "$1" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run_smb_suite PYTHON [pytest args]: the suite with its own rootdir; pytest's code.
run_smb_suite() {
    local py=$1
    shift
    (cd "$SMBTESTS_DIR" && "$py" -m pytest -p no:cacheprovider -rfEsxX "$@")
}

# check_weir_smb: whether $WEIR_BIN exists and has an SMB server; when not, says why and
# returns the runner's exit code (2: no binary, 77: no SMB server in this build).
check_weir_smb() {
    if [ ! -x "$WEIR_BIN" ]; then
        say "no weir binary at $WEIR_BIN: build it (cargo build -p appliance --bin weir) or set WEIR_BIN"
        return 2
    fi
    if ! "$WEIR_BIN" smbpasswd --help >/dev/null 2>&1; then
        say "weir has no SMB server in this build ($WEIR_BIN has no 'smbpasswd' command)"
        return 77
    fi
}

# weir_run_dir PREFIX: set TMP to a new directory (with state/ and export/) for one weir
# run; on exit, the weir whose PID is in $TMP/weir.pid is stopped and TMP removed
# (KEEP_TMP keeps it).
weir_run_dir() {
    TMP="$(mktemp -d "/tmp/$1.XXXXXX")"
    trap weir_run_cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$TMP/state" "$TMP/export"
}

weir_run_cleanup() {
    stop_pid "$(cat "$TMP/weir.pid" 2>/dev/null)" weir
    rm -rf "$TMP/state/cache" # preallocated cache files
    if [ -n "${KEEP_TMP:-}" ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}

# Users that are not root (NAME:UID, the gid the same), with SMB_PASS: the suite
# checks what they may not do (test_caller_rights.py). Samba's runner makes Unix
# accounts of them.
export SMB_OTHER_USERS="${SMB_OTHER_USERS:-weir-alice:2101,weir-bob:2102}"

# add_smb_user [STATE_DIR]: `weir smbpasswd $SMB_USER` in STATE_DIR (default $TMP/state),
# as the caller's uid and gid, and each of SMB_OTHER_USERS as its uid, with the
# password $SMB_PASS (read on stdin).
add_smb_user() {
    local u state="${1:-$TMP/state}"
    add_one_smb_user "$state" "$SMB_USER" "$(id -u)" "$(id -g)" || return 1
    for u in ${SMB_OTHER_USERS//,/ }; do
        add_one_smb_user "$state" "${u%%:*}" "${u#*:}" "${u#*:}" || return 1
    done
}

add_one_smb_user() {
    printf '%s\n' "$SMB_PASS" | "$WEIR_BIN" smbpasswd "$2" --uid "$3" --gid "$4" \
        --data-dir "$1" >"$TMP/smbpasswd.out" 2>&1 && return 0
    say "weir smbpasswd $2 failed:"; cat "$TMP/smbpasswd.out" >&2
    return 1
}
