#!/usr/bin/env bash
# Run the kernel-client workload against nfs-ganesha (VFS FSAL) on this host,
# then check ganesha's backing directory from the host side.
#
#   run-against-ganesha.sh            (as root; GANESHA_NFS_PORT / GANESHA_MNT_PORT
#                                      default 20590 / 20580 on 127.0.0.1)
#
# ganesha needs rpcbind to start; rpcbind runs in a private network namespace and
# both run in a private mount namespace with their own /run, so nothing here
# touches another rpcbind or ganesha on the machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
nfs_port=${GANESHA_NFS_PORT:-20590}
mnt_port=${GANESHA_MNT_PORT:-20580}
log() { echo "run-against-ganesha: $*" >&2; }

[[ $(id -u) == 0 ]] || { log "must run as root"; exit 2; }
. "$here/lib.sh"
ensure_ganesha_packages
ensure_ports_free "$nfs_port" "$mnt_port"

# Build the guest first, so the server is not kept waiting by a cold build.
"$here/build-guest.sh" >/dev/null

work=$(mktemp -d /tmp/kclient-ganesha.XXXXXX)
export_dir=$work/export
ganesha_pid=
trap 'stop_pid "$ganesha_pid"' EXIT
start_ganesha "$work" "$export_dir" "$nfs_port" "$mnt_port" || exit 2

status=0
start=$SECONDS
# noacl: the client would otherwise also call NFSACL, which ganesha 4.3 answers
# with errors ("Bad xdr_free for NFSACL_SETACL"), failing cp -a with EIO.
KCLIENT_OUT=$work/guest MOUNT_OPTS=${MOUNT_OPTS:-noacl} WORK_DIR=${WORK_DIR:-kclient} "$here/run-guest.sh" nfs "$nfs_port" "$mnt_port" || status=$?
log "guest run took $((SECONDS - start)) s"
stop_pid "$ganesha_pid"
trap - EXIT
if ((status == 0)); then
    "$here/check-backing.sh" "$export_dir/${WORK_DIR:-kclient}" || status=1
fi
finish "$status" "$work"
