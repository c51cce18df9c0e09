#!/usr/bin/env bash
# The kernel-client workload through Weir caching nfs-ganesha (the `nfs` core
# filer), write-through and write-behind, compared with the same workload
# directly on that ganesha: what users get through Weir must be what the NAS
# alone gives them, and what they wrote must reach the NAS.
#
#   run-through-weir-to-ganesha.sh      (as root; a step of `cargo xtask test`)
#
# Starts ganesha (VFS) exporting a fresh directory on 127.0.0.1:20592 (MOUNT
# 20582; GANESHA_NFS_PORT / GANESHA_MNT_PORT) and `weir serve --core-filer
# nfs://127.0.0.1:20592/export?mountport=20582` on 127.0.0.1:20590
# (WEIR_NFS_PORT). The guest runs the workload, one run after another:
#   1. through Weir (the default "read-only" policy: writes go through) in
#      `through-weir/`, kernel default mount options plus vers=3,nolock;
#   2. directly on ganesha in `direct/` (plus noacl, which ganesha 4.3 needs;
#      see run-against-ganesha.sh); it only shows which checks ganesha itself
#      passes, so it writes a quarter of the tree (DIRECT_TREE_FILES, default
#      20 files per directory);
#   3. through a second `weir serve` (fresh data dir) with `[policy] preset =
#      "read-write"` and writeback_delay = "2s", so files are written back
#      while the workload runs, in `through-weir-rw/` (RW_TREE_FILES, default
#      20). Then `weir flush --all` must succeed and `weir status` show nothing
#      dirty, and the backing directory must hold what the guest wrote.
# After runs 1 and 3, check-backing.sh compares ganesha's backing directory
# with the manifest and owner listing the guest left; after run 3 also with
# `direct/` (diff -r, but for the files of random contents: big*.bin,
# tree.tar, fio/, MANIFEST.sha256), when the direct run passed.
# Passes when both runs through Weir passed with their host checks and every
# check that passed directly on ganesha, or write-through, passed through
# Weir read-write too (a `COMPARE check: ...` line per check).
# KCLIENT_COMPARE=0 skips the direct run (and the comparisons with it);
# KCLIENT_RW=0 skips the read-write run.
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
g_nfs=${GANESHA_NFS_PORT:-20592}
g_mnt=${GANESHA_MNT_PORT:-20582}
port=${WEIR_NFS_PORT:-20590}
log() { echo "run-through-weir-to-ganesha: $*" >&2; }

[[ $(id -u) == 0 ]] || { log "must run as root"; exit 2; }
. "$here/lib.sh"
ensure_ganesha_packages
ensure_ports_free "$g_nfs" "$g_mnt" "$port"
# Build the guest first, so the servers are not kept waiting by a cold build.
"$here/build-guest.sh" >/dev/null
weir=$(build_weir "$root")

work=$(mktemp -d /tmp/kclient-weir-ganesha.XXXXXX)
export_dir=$work/export
ganesha_pid= weir_pid=
stop_servers() {
    stop_pid "$weir_pid"
    stop_pid "$ganesha_pid"
}
trap stop_servers EXIT
start_ganesha "$work" "$export_dir" "$g_nfs" "$g_mnt" || exit 2
start_weir "$weir" "$work" "$port" --cache-size 0 \
    --core-filer "nfs://127.0.0.1:$g_nfs/export?mountport=$g_mnt" || exit 1
log "weir on 127.0.0.1:$port caching ganesha; work dir $work"

# Checks of one run, without their timings: `name<TAB>PASS|FAIL`, sorted.
checks() {
    sed -n 's/^CHECK \(.*\): \(PASS\|FAIL\).*/\1\t\2/p' "$1" | sort
}

through=0
start=$SECONDS
KCLIENT_OUT=$work/through-weir WORK_DIR=through-weir "$here/run-guest.sh" nfs "$port" || through=$?
log "guest run through Weir took $((SECONDS - start)) s"
if ((through == 0)); then
    "$here/check-backing.sh" "$export_dir/through-weir" || through=1
fi
stop_pid "$weir_pid"

checks "$work/through-weir/console.log" >"$work/checks-weir"
status=$through

direct=0
if [[ ${KCLIENT_COMPARE:-1} != 0 ]]; then
    start=$SECONDS
    KCLIENT_OUT=$work/direct WORK_DIR=direct MOUNT_OPTS=${MOUNT_OPTS:-noacl} \
        TREE_FILES=${DIRECT_TREE_FILES:-20} "$here/run-guest.sh" nfs "$g_nfs" "$g_mnt" || direct=$?
    log "guest run directly on ganesha took $((SECONDS - start)) s"
    checks "$work/direct/console.log" >"$work/checks-direct"
else
    : >"$work/checks-direct"
fi

# The read-write run: write-behind through a journal, written back during the
# workload (writeback_delay 2s) and by `weir flush --all` at its end.
rw=0
if [[ ${KCLIENT_RW:-1} != 0 ]]; then
    mkdir -p "$work/rw"
    cat "$root/tests/weir-root-export.toml" - >"$work/rw/weir.toml" <<'TOML'

[policy]
preset = "read-write"
writeback_delay = "2s"

[cache]
journal_size = "256MiB"
dirty_max = "128MiB"
TOML
    WEIR_CONFIG=$work/rw/weir.toml start_weir "$weir" "$work/rw" "$port" --cache-size 0 \
        --core-filer "nfs://127.0.0.1:$g_nfs/export?mountport=$g_mnt" || exit 1
    log "weir (read-write) on 127.0.0.1:$port caching ganesha; work dir $work/rw"
    start=$SECONDS
    KCLIENT_OUT=$work/through-weir-rw WORK_DIR=through-weir-rw TREE_FILES=${RW_TREE_FILES:-20} \
        "$here/run-guest.sh" nfs "$port" || rw=$?
    log "guest run through Weir read-write took $((SECONDS - start)) s"
    # host_check NAME CMD...: one `HOST CHECK` line; CMD's output indented.
    host_check() {
        local name=$1 rc=0
        shift
        "$@" >"$work/rw/host-check.log" 2>&1 || rc=$?
        head -n 20 "$work/rw/host-check.log" | sed 's/^/    | /'
        if ((rc == 0)); then echo "HOST CHECK $name: PASS"; else echo "HOST CHECK $name: FAIL"; rw=1; fi
    }
    host_check weir-flush-all "$weir" flush --all --data-dir "$work/rw/data"
    # Nothing dirty, nothing parked, on every core filer.
    host_check nothing-dirty-after-flush sh -c '"$1" status --json --data-dir "$2" | tee /dev/stderr |
        jq -e "[.filers[] | .bytes, .files, (.parked | length)] | add == 0"' - "$weir" "$work/rw/data"
    stop_pid "$weir_pid"
    "$here/check-backing.sh" "$export_dir/through-weir-rw" || rw=1
    if [[ ${KCLIENT_COMPARE:-1} != 0 ]] && ((direct == 0)); then
        # The same workload on the same tree leaves the same files, but for
        # what holds random bytes (or their checksums).
        host_check "same-as-direct-run (diff -r)" diff -r --no-dereference \
            -x big1.bin -x big2.bin -x tree.tar -x fio -x MANIFEST.sha256 \
            "$export_dir/direct" "$export_dir/through-weir-rw"
    fi
    checks "$work/through-weir-rw/console.log" >"$work/checks-rw"
else
    : >"$work/checks-rw"
fi

# check, through Weir, read-write, direct ("missing": the run did not get there or did not run).
join -t $'\t' -a 1 -a 2 -e missing -o 0,1.2,2.2 "$work/checks-weir" "$work/checks-rw" |
    join -t $'\t' -a 1 -a 2 -e missing -o 0,1.2,1.3,2.2 - "$work/checks-direct" >"$work/compare"
echo "COMPARE check: through Weir | through Weir read-write | directly on ganesha"
awk -F'\t' '{ printf "COMPARE %s: %s | %s | %s\n", $1, $2, $3, $4 }' "$work/compare"
# A check that passes on ganesha alone but not through Weir is Weir's fault; so
# is one that passes write-through but not write-behind.
rw_on=$([[ ${KCLIENT_RW:-1} != 0 ]] && echo 1 || echo 0)
worse=$(awk -F'\t' -v rw="$rw_on" '($4 == "PASS" && ($2 != "PASS" || (rw && $3 != "PASS"))) ||
    (rw && $2 == "PASS" && $3 != "PASS")' "$work/compare" | wc -l)
say() { (($1 == 0)) && echo PASS || echo "FAIL ($1)"; }
log "through Weir: $(say "$through"); read-write: $( ((rw_on)) && say "$rw" || echo skipped);\
 directly on ganesha: $([[ ${KCLIENT_COMPARE:-1} != 0 ]] && say "$direct" || echo skipped);\
 checks worse through Weir: $worse"
if ((worse > 0 || rw != 0 || (direct == 0 && through != 0))); then status=1; fi
stop_servers
trap - EXIT
finish "$status" "$work"
