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

. "$here/lib.sh"
ensure_ports_free "$port"
# Build the guest first, so the server is not kept waiting by a cold build.
"$here/build-guest.sh" >/dev/null
weir=$(build_weir "$root")

work=$(mktemp -d /tmp/kclient-weir.XXXXXX)
mkdir -p "$work/origin"
weir_pid=
stop_server() {
    stop_pid "$weir_pid"
    rm -rf "$work/data/cache" # preallocated cache files; logs stay for a failed run
}
trap stop_server EXIT
start_weir "$weir" "$work" "$port" --origin "$work/origin" || exit 1
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
finish "$status" "$work"
