#!/usr/bin/env bash
# Boot the test guest against a server on this host and run a workload in it.
#
#   run-guest.sh nfs NFS_PORT [MOUNT_PORT]
#   run-guest.sh cifs SMB_PORT
#
# The guest reaches the host only through qemu user-networking forwards:
# 10.0.2.100:2049 -> 127.0.0.1:NFS_PORT and 10.0.2.100:20048 -> 127.0.0.1:MOUNT_PORT
# (with one port, or MOUNT_PORT == NFS_PORT, MOUNT is asked on 2049 as well);
# for cifs, 10.0.2.100:445 -> 127.0.0.1:SMB_PORT.
# Settings reach the guest on a small read-only ext4 disk (/dev/vdb) that holds
# `config` and the workload script. The serial console is the result channel;
# it is copied to $KCLIENT_OUT/console.log. Exits 0 when the workload printed
# `WORKLOAD RESULT: PASS`, 1 when it failed, 2 when no result came (boot
# failure, crash, timeout).
#
# Environment: KCLIENT_OUT (directory for logs; default a new temporary one),
# KCLIENT_TIMEOUT (seconds for the whole guest run, default 900), EXPORT (default
# /export), MOUNT_OPTS (extra NFS mount options), WORK_DIR (directory on the
# export, default kclient), TREE_DIRS,
# TREE_FILES, BIG_MIB, DBENCH_SECONDS (workload size), for cifs SMB_SHARE, SMB_USER,
# SMB_PASS, CIFS_OPTS (e.g. vers=3.1.1,seal), KCLIENT_SMP, KCLIENT_MEM,
# KCLIENT_WORKLOAD (another workload script, for debugging).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { echo "usage: $0 nfs NFS_PORT [MOUNT_PORT] | cifs SMB_PORT" >&2; exit 2; }
log() { echo "run-guest: $*" >&2; }

(($# >= 2)) || usage
proto=$1
shift
case $proto in
    nfs)
        workload=${KCLIENT_WORKLOAD:-workload-nfs.sh}
        nfs_port=$1
        mount_port=${2:-$1}
        forwards=(2049:"$nfs_port")
        guest_mount_port=2049
        if [[ $mount_port != "$nfs_port" ]]; then
            forwards+=(20048:"$mount_port")
            guest_mount_port=20048
        fi
        ;;
    cifs)
        workload=${KCLIENT_WORKLOAD:-workload-cifs.sh}
        forwards=(445:"$1")
        ;;
    *) log "unknown protocol '$proto'"; usage ;;
esac
for f in "${forwards[@]}"; do
    [[ ${f#*:} =~ ^[0-9]+$ ]] || { log "bad port '${f#*:}'"; usage; }
done

guest=$("$here/build-guest.sh")
out=${KCLIENT_OUT:-$(mktemp -d /tmp/kclient.XXXXXX)}
mkdir -p "$out"
console=$out/console.log
timeout_s=${KCLIENT_TIMEOUT:-900}

# The config disk.
cfg=$out/cfg
rm -rf "$cfg" "$out/cfg.img"
mkdir -p "$cfg"
[[ $workload == /* ]] || workload=$here/$workload
install -m 0755 "$workload" "$cfg/$(basename "$workload")"
install -m 0644 "$here/workload-common.sh" "$cfg/workload-common.sh"
workload=$(basename "$workload")
{
    echo "WORKLOAD=$workload"
    echo "WORKLOAD_TIMEOUT=$((timeout_s - 60))"
    if [[ $proto == nfs ]]; then
        echo "NFS_SERVER=10.0.2.100"
        echo "NFS_PORT=2049"
        echo "MOUNT_PORT=$guest_mount_port"
    else
        echo "SMB_SERVER=10.0.2.100"
        echo "SMB_PORT=445"
    fi
    for v in EXPORT MOUNT_OPTS WORK_DIR TREE_DIRS TREE_FILES BIG_MIB DBENCH_SECONDS \
        SMB_SHARE SMB_USER SMB_PASS CIFS_OPTS; do
        [[ -n ${!v:-} ]] && printf '%s=%q\n' "$v" "${!v}"
    done
} >"$cfg/config"
mkfs.ext4 -q -F -L weir-cfg -d "$cfg" "$out/cfg.img" 8M >/dev/null

netdev="user,id=n0,restrict=on"
for f in "${forwards[@]}"; do
    netdev+=",guestfwd=tcp:10.0.2.100:${f%%:*}-cmd:nc 127.0.0.1 ${f#*:}"
done

qemu=(qemu-system-x86_64 -accel tcg -cpu max -smp "${KCLIENT_SMP:-2}" -m "${KCLIENT_MEM:-1536}"
    -nodefaults -no-user-config -display none -no-reboot
    -serial "file:$console"
    -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img"
    -append "console=ttyS0 panic=1 oops=panic loglevel=4 net.ifnames=0"
    -drive "file=$guest/root.img,format=raw,if=virtio,snapshot=on"
    -drive "file=$out/cfg.img,format=raw,if=virtio,readonly=on"
    -netdev "$netdev" -device virtio-net-pci,netdev=n0)

log "guest $guest, forwards ${forwards[*]}, console $console, timeout ${timeout_s}s"
: >"$console"
start=$SECONDS
timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null >"$out/qemu.log" 2>&1 &
qpid=$!
trap 'kill "$qpid" 2>/dev/null || true' EXIT
tail -n +1 -F --pid="$qpid" "$console" 2>/dev/null | tr -d '\r' &
tpid=$!
set +e
wait "$qpid"
qrc=$?
wait "$tpid"
set -e
trap - EXIT
log "guest ran $((SECONDS - start)) s (qemu status $qrc)"
if [[ $qrc == 124 || $qrc == 137 ]]; then
    log "timeout after ${timeout_s}s"
fi
[[ -s $out/qemu.log ]] && sed 's/^/qemu: /' "$out/qemu.log" >&2

result=$(tr -d '\r' <"$console" | sed -n 's/^WORKLOAD RESULT: \([A-Z]*\).*/\1/p' | tail -n1)
case $result in
    PASS) log "workload passed"; exit 0 ;;
    FAIL) log "workload failed"; exit 1 ;;
    *) log "no workload result on the console"; exit 2 ;;
esac
