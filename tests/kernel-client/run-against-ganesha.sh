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
missing=()
for p in nfs-ganesha nfs-ganesha-vfs rpcbind netcat-openbsd; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
fi
for port in "$nfs_port" "$mnt_port"; do
    if nc -z 127.0.0.1 "$port" 2>/dev/null; then log "port $port is already in use"; exit 2; fi
done

# Build the guest first, so the server is not kept waiting by a cold build.
"$here/build-guest.sh" >/dev/null

work=$(mktemp -d /tmp/kclient-ganesha.XXXXXX)
export_dir=$work/export
mkdir -p "$export_dir"
cat >"$work/ganesha.conf" <<CONF
NFS_CORE_PARAM {
    Protocols = 3;
    Bind_addr = 127.0.0.1;
    NFS_Port = $nfs_port;
    MNT_Port = $mnt_port;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = true;
}
NFSV4 { Graceless = true; }
EXPORT {
    Export_Id = 1;
    Path = "$export_dir";
    Pseudo = "/export";
    Protocols = 3;
    Transports = TCP;
    Access_Type = RW;
    Squash = None;
    SecType = sys;
    FSAL { Name = VFS; }
}
CONF

# The wrapper is PID $server: it starts rpcbind and ganesha, and stops both on TERM.
unshare -m --propagation private bash -c '
    set -e
    mount -t tmpfs -o mode=0755 tmpfs /run
    mkdir -p /run/rpcbind /run/ganesha
    unshare -n rpcbind -w -f &
    rpcbind_pid=$!
    for _ in $(seq 100); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
    ganesha.nfsd -F -f "$1/ganesha.conf" -L "$1/ganesha.log" -p "$1/ganesha.pid" &
    ganesha_pid=$!
    trap "kill \$ganesha_pid \$rpcbind_pid 2>/dev/null; wait" TERM INT
    wait $ganesha_pid
    echo "ganesha exited ($?)" >&2
    kill $rpcbind_pid 2>/dev/null
    wait
' ganesha-wrapper "$work" >"$work/wrapper.log" 2>&1 &
server=$!
stop_server() {
    if kill -0 "$server" 2>/dev/null; then
        kill "$server"
        wait "$server" 2>/dev/null || true
    fi
}
trap stop_server EXIT

for _ in $(seq 300); do
    if nc -z 127.0.0.1 "$nfs_port" 2>/dev/null && nc -z 127.0.0.1 "$mnt_port" 2>/dev/null; then break; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
if ! nc -z 127.0.0.1 "$nfs_port" 2>/dev/null || ! nc -z 127.0.0.1 "$mnt_port" 2>/dev/null; then
    log "ganesha did not start; logs in $work"
    tail -n 20 "$work/wrapper.log" "$work/ganesha.log" >&2 || true
    exit 2
fi
log "ganesha serving $export_dir on 127.0.0.1:$nfs_port (MOUNT $mnt_port); work dir $work"

status=0
start=$SECONDS
# noacl: the client would otherwise also call NFSACL, which ganesha 4.3 answers
# with errors ("Bad xdr_free for NFSACL_SETACL"), failing cp -a with EIO.
KCLIENT_OUT=$work/guest MOUNT_OPTS=${MOUNT_OPTS:-noacl} WORK_DIR=${WORK_DIR:-kclient} "$here/run-guest.sh" nfs "$nfs_port" "$mnt_port" || status=$?
log "guest run took $((SECONDS - start)) s"
stop_server
trap - EXIT
if ((status == 0)); then
    "$here/check-backing.sh" "$export_dir/${WORK_DIR:-kclient}" || status=1
fi
if ((status == 0)); then
    log "PASS"
    [[ -n ${KCLIENT_KEEP:-} ]] || rm -rf "$work"
else
    log "FAIL (status $status); logs in $work"
fi
exit "$status"
