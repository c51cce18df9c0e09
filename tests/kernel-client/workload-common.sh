#!/bin/bash
# Sourced by the guest workloads (workload-nfs.sh, workload-cifs.sh): the checks
# that do not depend on how the share is mounted. The workload sets `mnt` and `w`
# ($mnt/$WORK_DIR) and defines do_mount before it runs them. Settings come from
# /cfg/config; POSIX_TREE=0 leaves out what a mount without POSIX semantics
# cannot keep (symlinks, owners, modes) from the generated tree and its comparisons.
set -u
export LC_ALL=C
# shellcheck source=/dev/null
. /cfg/config
: "${WORK_DIR:=kclient}" "${TREE_DIRS:=25}" "${TREE_FILES:=80}" "${BIG_MIB:=6}" "${POSIX_TREE:=1}"

src=/tmp/src
log=/tmp/check.log
checks=0 failed=0
t0=$(date +%s.%N)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# check NAME FUNCTION [ARGS...]: run one check, print one line.
check() {
    local name=$1 start rc
    shift
    start=$(now)
    ("$@") >"$log" 2>&1
    rc=$?
    checks=$((checks + 1))
    if ((rc == 0)); then
        echo "CHECK $name: PASS ($(elapsed "$start") s)"
    else
        failed=$((failed + 1))
        echo "CHECK $name: FAIL ($(elapsed "$start") s)"
        tail -n 15 "$log" | sed 's/^/    | /'
    fi
    return "$rc"
}
finish() {
    echo "WORKLOAD SUMMARY: $checks checks, $((checks - failed)) passed, $failed failed, $(elapsed "$t0") s"
    if ((failed == 0 && checks > 0)); then
        echo "WORKLOAD RESULT: PASS"
        exit 0
    fi
    echo "WORKLOAD RESULT: FAIL"
    exit 1
}
fail() { echo "$*" >&2; return 1; }
as_alice() { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$@"; }
as_bob() { setpriv --reuid=1001 --regid=1001 --clear-groups -- "$@"; }
# expect_fail ERRTEXT CMD...: CMD must fail with ERRTEXT in its message.
expect_fail() {
    local want=$1 out
    shift
    if out=$("$@" 2>&1); then fail "unexpectedly succeeded: $*"; return 1; fi
    [[ $out == *"$want"* ]] || fail "expected '$want' from: $* (got: $out)"
}
want_eq() { [[ $1 == "$2" ]] || fail "$3: got '$1', want '$2'"; }
# A listing of a tree that must survive a copy: type, mode, owner, size, mtime, link target.
listing() {
    if ((POSIX_TREE)); then
        (cd "$1" && find . -mindepth 1 -printf '%y %m %U:%G %s %T@ %P -> %l\n')
    else
        (cd "$1" && find . -mindepth 1 -printf '%y - - %s %T@ %P -> %l\n')
    fi | awk '{ y = $1; s = $4; t = $5; rest = $0; for (i = 0; i < 5; i++) sub(/^[^ ]* /, "", rest)
                 if (y == "d") s = "-"; if (y == "l") t = "-"; else t = int(t)
                 if (y == "d" && $2 == "-") t = "-"
                 print y, $2, $3, s, t, rest }' | sort
}
same_tree() {
    diff -r --no-dereference "$1" "$2" || fail "contents differ: $1 $2"
    diff <(listing "$1") <(listing "$2") || fail "metadata differs: $1 $2"
}


generate_tree() {
    local t=$src/tree d
    rm -rf "$src" && mkdir -p "$t"
    for ((d = 0; d < TREE_DIRS; d++)); do mkdir -p "$t/d$d/sub"; done
    # Thousands of files of varied sizes from one process (forks are slow under TCG).
    awk -v root="$t" -v dirs="$TREE_DIRS" -v files="$TREE_FILES" 'BEGIN {
        srand(42)
        for (d = 0; d < dirs; d++) for (f = 0; f < files; f++) {
            path = root "/d" d "/" (f % 4 == 0 ? "sub/" : "") "f" f ".txt"
            size = int(rand() * rand() * 5000); n = 0
            while (n < size) { line = sprintf("%s line %d %08x\n", path, n, int(rand() * 4294967295)); printf "%s", line > path; n += length(line) }
            printf "" > path; close(path)
        }
    }'
    head -c "$((BIG_MIB << 20))" /dev/urandom >"$t/big1.bin"
    head -c "$((BIG_MIB << 19))" /dev/urandom >"$t/big2.bin"
    printf 'odd size\n' >"$t/with space é.txt"
    : >"$t/empty"
    ln "$t/d0/f1.txt" "$t/d0/f1.hardlink"
    if ((POSIX_TREE)); then
        ln -s d0/f1.txt "$t/rel.symlink"
        ln -s /nonexistent/target "$t/dangling.symlink"
        chmod 0600 "$t/d1/f1.txt"; chmod 0755 "$t/d2/f2.txt"; chmod 0640 "$t/d3/f3.txt"; chmod 0700 "$t/d4"
        chown -R 1000:1000 "$t/d5"; chown -R 1001:1001 "$t/d6"; chown 1000:1001 "$t/d7/f7.txt"
    fi
    echo "tree: $(find "$t" -type f | wc -l) files, $(du -sm "$t" | cut -f1) MiB"
}

tar_in() {
    mkdir "$w/tar" && tar -C "$src" -cf - tree | tar -C "$w/tar" -xpf - || return 1
    tar -C "$src" -cf "$w/tree.tar" tree
}
tar_out() {
    rm -rf /tmp/out && mkdir /tmp/out || return 1
    tar -C "$w/tar" -cf - tree | tar -C /tmp/out -xpf - || return 1
    same_tree "$src/tree" /tmp/out/tree || return 1
    mkdir /tmp/out2 && tar -C /tmp/out2 -xpf "$w/tree.tar" && same_tree "$src/tree" /tmp/out2/tree
}
# cp -a from the mount to the mount, of a part of the tree (a few hundred files,
# the big file, the links, the odd names) to keep the run short under TCG.
cp_a() {
    local t=$w/tar/tree
    mkdir -p "$w/cpa/tree" /tmp/cpa-src/tree || return 1
    local links=()
    ((POSIX_TREE)) && links=(rel.symlink dangling.symlink)
    (cd "$t" && cp -a d[0-7] big1.bin "${links[@]}" with* empty "$w/cpa/tree/") || return 1
    (cd "$src/tree" && cp -a d[0-7] big1.bin "${links[@]}" with* empty /tmp/cpa-src/tree/) || return 1
    same_tree /tmp/cpa-src/tree "$w/cpa/tree" || return 1
    # Without POSIX extensions the CIFS client takes nlink from directory listings
    # (SMB2 find data has no link count): cp -a sees 1 and copies links as files.
    ((POSIX_TREE)) || return 0
    # Hard links survive the copy.
    want_eq "$(stat -c %h "$w/cpa/tree/d0/f1.txt")" 2 "link count after cp -a"
}

perm_setup() {
    p=$w/perm
    mkdir "$p" && chmod 1777 "$p"
}
perm_owner_create() {
    as_alice mkdir "$p/alice" || return 1
    as_alice sh -c "umask 022; echo hello >'$p/alice/a.txt'" || return 1
    want_eq "$(stat -c '%u:%g %a' "$p/alice/a.txt")" "1000:1000 644" "alice's new file"
    want_eq "$(stat -c '%u:%g %a' "$p/alice")" "1000:1000 755" "alice's new directory"
}
perm_other_denied() {
    expect_fail "Permission denied" as_bob sh -c "echo bob >>'$p/alice/a.txt'" || return 1
    want_eq "$(cat "$p/alice/a.txt")" hello "content after bob's write attempt" || return 1
    want_eq "$(as_bob cat "$p/alice/a.txt")" hello "bob reads a 0644 file" || return 1
    expect_fail "Permission denied" as_bob touch "$p/alice/bob.txt" || return 1
    expect_fail "Permission denied" as_bob rm -f "$p/alice/a.txt" || return 1
    expect_fail "Permission denied" as_bob mv "$p/alice/a.txt" "$p/stolen" || return 1
    # Sticky directory: bob cannot remove what alice made there.
    as_alice sh -c "echo sticky >'$p/alice-sticky'" || return 1
    expect_fail "Operation not permitted" as_bob rm -f "$p/alice-sticky"
}
perm_chmod_owner() {
    as_alice chmod 0600 "$p/alice/a.txt" || return 1
    want_eq "$(stat -c %a "$p/alice/a.txt")" 600 "mode after chmod" || return 1
    expect_fail "Permission denied" as_bob cat "$p/alice/a.txt" || return 1
    expect_fail "Operation not permitted" as_bob chmod 0666 "$p/alice/a.txt" || return 1
    as_alice chmod 0640 "$p/alice/a.txt" && want_eq "$(stat -c %a "$p/alice/a.txt")" 640 "mode after second chmod"
}
perm_chown_eperm() {
    expect_fail "Operation not permitted" as_alice chown 1001 "$p/alice/a.txt" || return 1
    expect_fail "Operation not permitted" as_alice chgrp 1001 "$p/alice/a.txt" || return 1
    want_eq "$(stat -c %u:%g "$p/alice/a.txt")" 1000:1000 "owner after refused chown" || return 1
    # root may give files away
    echo "for bob" >"$p/for-bob" && chown 1001:1001 "$p/for-bob" || return 1
    want_eq "$(stat -c %u:%g "$p/for-bob")" 1001:1001 "owner after root's chown" || return 1
    as_bob sh -c "echo more >>'$p/for-bob'" && want_eq "$(tail -n1 "$p/for-bob")" more "bob appends to his file"
}
perm_hardlink() {
    as_alice ln "$p/alice/a.txt" "$p/alice/a.link" || return 1
    want_eq "$(stat -c %h "$p/alice/a.txt")" 2 "link count" || return 1
    want_eq "$(stat -c %i "$p/alice/a.link")" "$(stat -c %i "$p/alice/a.txt")" "inode of the link" || return 1
    as_alice sh -c "echo via-link >>'$p/alice/a.link'" || return 1
    want_eq "$(tail -n1 "$p/alice/a.txt")" via-link "write through the link" || return 1
    as_alice ln "$p/alice/a.txt" "$p/alice/a.link2" && as_alice rm "$p/alice/a.link2" || return 1
    want_eq "$(stat -c %h "$p/alice/a.txt")" 2 "link count after unlink"
}
perm_symlink() {
    as_alice ln -s ../alice/a.txt "$p/alice/a.sym" || return 1
    want_eq "$(readlink "$p/alice/a.sym")" ../alice/a.txt "readlink" || return 1
    want_eq "$(stat -c '%F %u' "$p/alice/a.sym")" "symbolic link 1000" "lstat of the symlink" || return 1
    want_eq "$(head -n1 "$p/alice/a.sym")" hello "read through the symlink" || return 1
    as_alice ln -s "$(printf 'x%.0s' {1..200})" "$p/alice/long.sym" || return 1
    want_eq "$(readlink "$p/alice/long.sym" | wc -c)" 201 "long symlink target"
}
perm_rename() {
    as_alice mkdir "$p/alice/d1" "$p/alice/d2" || return 1
    as_alice sh -c "echo moving >'$p/alice/d1/f'; echo old >'$p/alice/d2/existing'; mkdir '$p/alice/d1/sub'; echo inner >'$p/alice/d1/sub/x'" || return 1
    as_alice mv "$p/alice/d1/f" "$p/alice/d2/g" || return 1
    [[ ! -e $p/alice/d1/f ]] || fail "source still there after rename" || return 1
    want_eq "$(cat "$p/alice/d2/g")" moving "renamed file content" || return 1
    as_alice mv -T "$p/alice/d2/g" "$p/alice/d2/existing" || return 1
    want_eq "$(cat "$p/alice/d2/existing")" moving "content after rename over a file" || return 1
    as_alice mv "$p/alice/d1/sub" "$p/alice/d2/sub" || return 1
    want_eq "$(cat "$p/alice/d2/sub/x")" inner "file in a renamed directory" || return 1
    want_eq "$(ls -A "$p/alice/d1")" "" "emptied directory" || return 1
    as_alice rmdir "$p/alice/d1" && [[ ! -e $p/alice/d1 ]]
}

fio_verify() {
    mkdir "$w/fio" || return 1
    local common=(--directory="$w/fio" --ioengine=psync --verify=crc32c --do_verify=1
        --verify_fatal=1 --end_fsync=1 --group_reporting=1)
    fio --name=seq "${common[@]}" --rw=write --bs=1m --size=8m || return 1
    fio --name=rand "${common[@]}" --rw=randwrite --bs=4k --size=4m --randseed=7 || return 1
    fio --name=direct "${common[@]}" --rw=randwrite --bs=64k --size=4m --direct=1
}
run_dbench() {
    local loadfile
    loadfile=$(ls /usr/share/dbench/client.txt* 2>/dev/null | head -n1)
    [[ -n $loadfile ]] || fail "dbench's client.txt not found" || return 1
    if [[ $loadfile == *.gz ]]; then gzip -dc "$loadfile" >/tmp/client.txt; loadfile=/tmp/client.txt; fi
    mkdir "$w/dbench" || return 1
    dbench -t "${DBENCH_SECONDS:-10}" -c "$loadfile" -D "$w/dbench" 2 >/tmp/dbench.out 2>&1
    local rc=$?
    tail -n 8 /tmp/dbench.out
    ((rc == 0)) || fail "dbench exited with $rc" || return 1
    grep -q '^Throughput' /tmp/dbench.out || fail "no throughput line" || return 1
    rm -rf "$w/dbench"
}

# Type, mode, owner, size (not of directories) and path of everything under WORK_DIR;
# check-backing.sh makes the same listing of the server's backing directory.
owners_listing() {
    (cd "$w" && find . -mindepth 1 ! -name MANIFEST.sha256 ! -name OWNERS \
        \( -type d -printf '%y %m %U:%G - %P\n' -o -printf '%y %m %U:%G %s %P\n' \)) | sort
}
write_manifest() {
    (cd "$w" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >/tmp/MANIFEST.sha256 || return 1
    owners_listing >/tmp/OWNERS || return 1
    cp /tmp/MANIFEST.sha256 /tmp/OWNERS "$w/" || return 1
    echo "$(wc -l </tmp/MANIFEST.sha256) files in the manifest"
    ((POSIX_TREE)) || return 0
    grep -q ' 1000:1000 ' /tmp/OWNERS && grep -q ' 1001:1001 ' /tmp/OWNERS || fail "no alice/bob files listed"
}
remount_verify() {
    sync || return 1
    umount "$mnt" || return 1
    echo 3 >/proc/sys/vm/drop_caches
    do_mount || return 1
    (cd "$w" && sha256sum -c --quiet /tmp/MANIFEST.sha256) || fail "checksums differ after remount" || return 1
    cmp /tmp/MANIFEST.sha256 "$w/MANIFEST.sha256" || return 1
    diff /tmp/OWNERS <(owners_listing) || fail "owners or modes differ after remount"
}
final_umount() { sync && umount "$mnt"; }

# The checks every workload ends with, then its result.
final_checks() {
    check fio-crc32c-verify fio_verify
    check dbench run_dbench
    check manifest write_manifest
    check remount-reverify remount_verify
    check umount final_umount
    finish
}
