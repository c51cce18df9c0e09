#!/bin/bash
# Kernel NFSv3 client workload. Runs inside the test guest as root (see
# run-guest.sh); its settings come from /cfg/config:
#   NFS_SERVER NFS_PORT MOUNT_PORT EXPORT   where to mount (NLM off: nolock)
#   MOUNT_OPTS                               more mount options (e.g. noacl)
#   WORK_DIR                                 directory on the export this run owns
#   TREE_DIRS TREE_FILES BIG_MIB             size of the generated tree
# Prints one `CHECK <name>: PASS|FAIL` line per check, a summary, and last
# `WORKLOAD RESULT: PASS|FAIL`. Leaves MANIFEST.sha256 and OWNERS in WORK_DIR
# for the host to compare with the server's backing directory.
. /cfg/workload-common.sh
: "${NFS_SERVER:=10.0.2.100}" "${NFS_PORT:=2049}" "${MOUNT_PORT:=20048}" "${EXPORT:=/export}"
mnt=/mnt/nfs
w=$mnt/$WORK_DIR

do_mount() {
    mkdir -p "$mnt"
    mount.nfs "$NFS_SERVER:$EXPORT" "$mnt" \
        -o "vers=3,proto=tcp,port=$NFS_PORT,mountport=$MOUNT_PORT,mountproto=tcp,nolock${MOUNT_OPTS:+,$MOUNT_OPTS}" || return 1
    grep " $mnt nfs " /proc/mounts
    grep -q " $mnt nfs .*vers=3" /proc/mounts || fail "not an NFSv3 mount"
}
mount_and_prepare() {
    modprobe nfs || return 1
    do_mount || return 1
    rm -rf "$w" && mkdir "$w" && chmod 0755 "$w" || return 1
    df -h "$mnt"
}

echo "WORKLOAD START: nfs vers=3 $NFS_SERVER:$EXPORT port=$NFS_PORT mountport=$MOUNT_PORT opts=${MOUNT_OPTS:-} dir=$WORK_DIR"
check mount mount_and_prepare || finish
check generate-tree generate_tree || finish
check tar-in tar_in
check tar-out-diff tar_out
check cp-a cp_a
p=$w/perm
check perm-setup perm_setup || finish
check perm-owner-creates perm_owner_create
check perm-other-uid-denied perm_other_denied
check perm-chmod-by-owner perm_chmod_owner
check perm-chown-non-root-eperm perm_chown_eperm
check hardlink-count perm_hardlink
check symlink-readlink perm_symlink
check rename-across-dirs perm_rename
final_checks
