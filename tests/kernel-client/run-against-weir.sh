#!/usr/bin/env bash
# Run the kernel-client workload against Weir's own NFS server, then check the
# origin directory (Weir's local core filer) from the host side.
#
#   run-against-weir.sh         (as root: the guest is built with debootstrap)
#
# Builds target/debug/weir, starts `weir serve` with a fresh data dir and origin,
# NFS, MOUNT and NLM on one port (WEIR_NFS_PORT, default 20590, on 127.0.0.1),
# export path /export. The guest mounts with the kernel's default options plus
# vers=3,nolock (no noacl: the client's NFSACL calls must get PROG_UNAVAIL).
# Part of `cargo xtask test`; fails while Weir does not serve NFS.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${WEIR_NFS_PORT:-20590}
log() { echo "run-against-weir: $*" >&2; }

if nc -z 127.0.0.1 "$port" 2>/dev/null; then log "port $port is already in use"; exit 2; fi
# Build the guest first, so the server is not kept waiting by a cold build.
"$here/build-guest.sh" >/dev/null

log "building weir"
(cd "$root" && "${CARGO:-cargo}" build --quiet --bin weir)
weir=${CARGO_TARGET_DIR:-$root/target}/debug/weir
[[ $weir == /* ]] || weir=$root/$weir

work=$(mktemp -d /tmp/kclient-weir.XXXXXX)
mkdir -p "$work/data" "$work/origin"
"$weir" serve --data-dir "$work/data" --origin "$work/origin" \
    --nfs-listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --smb-listen 127.0.0.1:0 \
    >"$work/weir.log" 2>&1 &
server=$!
stop_server() {
    if kill -0 "$server" 2>/dev/null; then
        kill "$server"
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work/data/cache" # preallocated cache files; logs stay for a failed run
}
trap stop_server EXIT

for _ in $(seq 300); do
    nc -z 127.0.0.1 "$port" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
if ! nc -z 127.0.0.1 "$port" 2>/dev/null; then
    log "FAIL: weir is not serving NFS on 127.0.0.1:$port after 30 s; log in $work/weir.log:"
    tail -n 20 "$work/weir.log" >&2
    exit 1
fi
log "weir serving $work/origin on 127.0.0.1:$port; work dir $work"

status=0
start=$SECONDS
KCLIENT_OUT=$work/guest WORK_DIR=${WORK_DIR:-kclient} "$here/run-guest.sh" nfs "$port" || status=$?
log "guest run took $((SECONDS - start)) s"
stop_server
trap - EXIT
if ((status == 0)); then
    "$here/check-backing.sh" "$work/origin/${WORK_DIR:-kclient}" || status=1
fi
if ((status == 0)); then
    log "PASS"
    [[ -n ${KCLIENT_KEEP:-} ]] || rm -rf "$work"
else
    log "FAIL (status $status); logs in $work"
fi
exit "$status"
