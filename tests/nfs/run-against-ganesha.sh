#!/usr/bin/env bash
# Run the NFSv3 conformance suite against nfs-ganesha (the reference server), on
# 127.0.0.1 ports GANESHA_NFS_PORT (20490) and GANESHA_MOUNT_PORT (20480).
#
#   tests/nfs/run-against-ganesha.sh [pytest args]      e.g. -k readdir
#   tests/nfs/run-against-ganesha.sh --exec CMD [ARGS]  run CMD with the WEIR_NFS_* variables set
#
# Needs root (mount namespace, rpcbind). Installs nfs-ganesha, nfs-ganesha-vfs, rpcbind,
# libnfs-utils and python3-venv when missing, and the Python packages in a venv under
# ~/.cache/weir-tests. rpcbind runs in its own network namespace (rpcbind 1.2.6 listens on
# every address and crashes with -h), and in a private mount namespace whose /run is a
# directory of this run: ganesha, started in that mount namespace but in the host's network
# namespace, registers through that run's own /run/rpcbind.sock and listens on host loopback,
# and no other rpcbind or ganesha on the machine is touched. Everything started here is
# stopped by PID at the end; the exit code is pytest's.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NFS_PORT=${GANESHA_NFS_PORT:-20490}
MNT_PORT=${GANESHA_MOUNT_PORT:-20480}

start_ganesha() { # TMP: start ganesha in the mount namespace of the run's rpcbind
    local tmp=$1
    rm -f "$tmp/ganesha.pid"
    nsenter -t "$(cat "$tmp/rpcbind.pid")" -m \
        ganesha.nfsd -F -f "$tmp/ganesha.conf" -L "$tmp/ganesha.log" -p "$tmp/ganesha.pidfile" \
        </dev/null >>"$tmp/ganesha.out" 2>&1 &
    echo $! >"$tmp/ganesha.pid"
    if ! wait_port 127.0.0.1 "$NFS_PORT" 30 || ! wait_port 127.0.0.1 "$MNT_PORT" 5; then
        say "ganesha did not start listening on $NFS_PORT/$MNT_PORT; its log:"
        tail -30 "$tmp/ganesha.log" >&2
        return 1
    fi
}

if [ "${1:-}" = --restart ]; then # the WEIR_NFS_RESTART hook: --restart TMP
    tmp=$2
    stop_pid "$(cat "$tmp/ganesha.pid")" ganesha
    start_ganesha "$tmp"
    exit
fi

if ! is_root; then
    say "run-against-ganesha.sh needs root (ganesha, rpcbind and a mount namespace)"
    exit 2
fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
missing=()
for p in nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils; do installed "$p" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}" || exit 2
PY="$(ensure_venv)" || { say "could not set up the Python venv"; exit 2; }

for port in "$NFS_PORT" "$MNT_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        say "port $port is already in use; set GANESHA_NFS_PORT / GANESHA_MOUNT_PORT"
        exit 2
    fi
done

TMP="$(mktemp -d /tmp/weir-nfs-ganesha.XXXXXX)"
cleanup() {
    stop_pid "$(cat "$TMP/ganesha.pid" 2>/dev/null)" ganesha
    stop_pid "$(cat "$TMP/rpcbind.pid" 2>/dev/null)" rpcbind
    if [ -n "${KEEP_TMP:-}" ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$TMP/export" "$TMP/ro" "$TMP/squash" "$TMP/run"
chmod 1777 "$TMP/squash"
export_block() { # ID PATH PSEUDO ACCESS SQUASH
    cat <<CONF
EXPORT {
    Export_Id = $1; Path = "$2"; Pseudo = "$3"; Protocols = 3; Transports = TCP;
    Access_Type = $4; Squash = $5; Anonymous_Uid = 65534; Anonymous_Gid = 65534;
    SecType = sys; FSAL { Name = VFS; }
}
CONF
}
{
    cat <<CONF
NFS_CORE_PARAM {
    Protocols = 3; Bind_addr = 127.0.0.1; NFS_Port = $NFS_PORT; MNT_Port = $MNT_PORT;
    Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; mount_path_pseudo = true;
}
NFSV4 { Graceless = true; }
NFS_KRB5 { Active_krb5 = false; }
CONF
    export_block 1 "$TMP/export" /export RW None
    export_block 2 "$TMP/ro" /ro RO None
    export_block 3 "$TMP/squash" /squash RW Root_Squash
} >"$TMP/ganesha.conf"

# rpcbind: private mount namespace (its /run is $TMP/run), private network namespace.
unshare -m --propagation private sh -c '
    mount --bind "$1/run" /run && mkdir -p /run/rpcbind && chown _rpc /run/rpcbind &&
    exec unshare -n /sbin/rpcbind -w -f' sh "$TMP" </dev/null >"$TMP/rpcbind.out" 2>&1 &
echo $! >"$TMP/rpcbind.pid"
for _ in $(seq 100); do [ -S "$TMP/run/rpcbind.sock" ] && break; sleep 0.1; done
if [ ! -S "$TMP/run/rpcbind.sock" ]; then
    say "rpcbind did not start:"; cat "$TMP/rpcbind.out" >&2; exit 2
fi
start_ganesha "$TMP" || exit 2
say "ganesha $(cat "$TMP/ganesha.pid") serving $TMP on 127.0.0.1:$NFS_PORT (MOUNT $MNT_PORT)"

export WEIR_NFS_SERVER=ganesha WEIR_NFS_HOST=127.0.0.1 WEIR_NFS_PORT=$NFS_PORT \
    WEIR_MOUNT_PORT=$MNT_PORT WEIR_NFS_EXPORT=/export WEIR_NFS_BACKDIR="$TMP/export" \
    WEIR_NFS_RESTART="$(readlink -f "${BASH_SOURCE[0]}") --restart $TMP" \
    WEIR_NFS_RO_EXPORT=/ro WEIR_NFS_RO_BACKDIR="$TMP/ro" \
    WEIR_NFS_SQUASH_EXPORT=/squash WEIR_NFS_SQUASH_BACKDIR="$TMP/squash" \
    WEIR_NFS_ANON_UID=65534 WEIR_NFS_ANON_GID=65534
if [ "${1:-}" = --exec ]; then
    shift
    WEIR_TESTS_PYTHON="$PY" "$@"
else
    run_suite "$PY" "$@"
fi
code=$?
say "exit code $code (ganesha)"
exit $code
