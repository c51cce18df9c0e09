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
