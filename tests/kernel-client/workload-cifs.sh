#!/bin/bash
# Kernel CIFS (SMB2/3) client workload. Runs inside the test guest as root (see
# run-guest.sh); its settings come from /cfg/config:
#   SMB_SERVER SMB_PORT SMB_SHARE SMB_USER SMB_PASS   where and as whom to mount
#   CIFS_OPTS                                         dialect and more, e.g. vers=3.1.1,seal
#   WORK_DIR                                          directory on the share this run owns
#   TREE_DIRS TREE_FILES BIG_MIB                      size of the generated tree
# The checks are workload-common.sh's, without what CIFS without POSIX extensions
# does not keep (POSIX_TREE=0): symlinks, owners and modes, and the uid-based
# permission checks (every file shows the mount's owner; chown and mknod are not
# passed to the server; cp -a does not keep hard links, since the client takes
# nlink from directory listings). Prints `CHECK <name>: PASS|FAIL` lines and last
# `WORKLOAD RESULT: PASS|FAIL`; leaves MANIFEST.sha256 in WORK_DIR for the host.
POSIX_TREE=0
. /cfg/workload-common.sh
POSIX_TREE=0
: "${SMB_SERVER:=10.0.2.100}" "${SMB_PORT:=445}" "${SMB_SHARE:=export}" "${CIFS_OPTS:=vers=3.1.1}"
mnt=/mnt/cifs
w=$mnt/$WORK_DIR

do_mount() {
    mkdir -p "$mnt"
    # The password goes in a credentials file, not on the command line.
    printf 'username=%s\npassword=%s\n' "$SMB_USER" "$SMB_PASS" >/tmp/cifs.cred
    mount -t cifs "//$SMB_SERVER/$SMB_SHARE" "$mnt" \
        -o "credentials=/tmp/cifs.cred,port=$SMB_PORT,$CIFS_OPTS" || return 1
    grep " $mnt cifs " /proc/mounts
    local vers=${CIFS_OPTS#*vers=}
    vers=${vers%%,*}
    grep -q " $mnt cifs .*vers=$vers" /proc/mounts || fail "not a vers=$vers mount"
    if [[ ,$CIFS_OPTS, == *,seal,* ]]; then
        grep -q " $mnt cifs .*seal" /proc/mounts || fail "not sealed"
    fi
}
mount_and_prepare() {
    modprobe cifs || return 1
    do_mount || return 1
    rm -rf "$w" && mkdir "$w" || return 1
    df -h "$mnt"
}

cifs_hardlink() {
    local d=$w/links
    mkdir "$d" && echo hello >"$d/a.txt" || return 1
    ln "$d/a.txt" "$d/a.link" || return 1
    want_eq "$(stat -c %h "$d/a.txt")" 2 "link count" || return 1
    echo via-link >>"$d/a.link" || return 1
    want_eq "$(tail -n1 "$d/a.txt")" via-link "write through the link" || return 1
    rm "$d/a.link" && want_eq "$(stat -c %h "$d/a.txt")" 1 "link count after unlink"
}
cifs_rename() {
    local d=$w/ren
    mkdir -p "$d/d1/sub" "$d/d2" || return 1
    echo moving >"$d/d1/f"; echo old >"$d/d2/existing"; echo inner >"$d/d1/sub/x"
    mv "$d/d1/f" "$d/d2/g" || return 1
    [[ ! -e $d/d1/f ]] || fail "source still there after rename" || return 1
    want_eq "$(cat "$d/d2/g")" moving "renamed file content" || return 1
    mv -T "$d/d2/g" "$d/d2/existing" || return 1
    want_eq "$(cat "$d/d2/existing")" moving "content after rename over a file" || return 1
    mv "$d/d1/sub" "$d/d2/sub" || return 1
    want_eq "$(cat "$d/d2/sub/x")" inner "file in a renamed directory" || return 1
    rmdir "$d/d1" && [[ ! -e $d/d1 ]]
}
cifs_truncate_append() {
    local f=$w/trunc
    head -c 100000 /dev/urandom >"$f" && truncate -s 1000 "$f" || return 1
    want_eq "$(stat -c %s "$f")" 1000 "size after truncate" || return 1
    printf 'tail' >>"$f" && want_eq "$(stat -c %s "$f")" 1004 "size after append" || return 1
    want_eq "$(tail -c 4 "$f")" tail "appended bytes" || return 1
    truncate -s 5000 "$f" && want_eq "$(tail -c 3996 "$f" | tr -d '\0' | wc -c)" 0 "zeros after extending"
}
cifs_git() (
    # git makes its objects read-only (0444) and writes them through the
    # handle that created them; the close must not be refused. (A subshell:
    # it changes directory.)
    local d=$w/repo
    mkdir "$d" && cd "$d" || return 1
    git init -q . && git config user.email t@weir.test && git config user.name weir || return 1
    seq 1 2000 >a.txt && mkdir sub && echo nested >sub/b.txt || return 1
    git add . && git commit -q -m first || return 1
    echo more >>a.txt && git commit -q -am second || return 1
    want_eq "$(git rev-list --count HEAD)" 2 "commits" || return 1
    git fsck --strict --no-progress || return 1
    want_eq "$(git status --porcelain)" "" "a clean work tree" || return 1
    cd / && rm -rf "$d"
)
cifs_unsupported() {
    # Documented differences of CIFS without POSIX extensions: no symlinks (without
    # mfsymlinks) and no device nodes.
    expect_fail "" ln -s target "$w/sym" || return 1
    expect_fail "" mknod "$w/node" p
}

echo "WORKLOAD START: cifs //$SMB_SERVER/$SMB_SHARE port=$SMB_PORT opts=$CIFS_OPTS dir=$WORK_DIR"
check mount mount_and_prepare || finish
check generate-tree generate_tree || finish
check tar-in tar_in
check tar-out-diff tar_out
check cp-a cp_a
check hardlink-count cifs_hardlink
check rename-across-dirs cifs_rename
check truncate-append cifs_truncate_append
check git-commit cifs_git
check no-symlink-no-mknod cifs_unsupported
final_checks
