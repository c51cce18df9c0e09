#!/usr/bin/env bash
# The kernel-client workload through Weir caching nfs-ganesha (the `nfs` core
# filer), compared with the same workload directly on that ganesha: what users
# get through Weir must be what the NAS alone gives them.
#
#   run-through-weir-to-ganesha.sh      (as root; a step of `cargo xtask test`)
#
# Starts ganesha (VFS) exporting a fresh directory on 127.0.0.1:20592 (MOUNT
# 20582; GANESHA_NFS_PORT / GANESHA_MNT_PORT) and `weir serve --core-filer
# nfs://127.0.0.1:20592/export?mountport=20582` on 127.0.0.1:20590
# (WEIR_NFS_PORT). The guest runs the workload through Weir in `through-weir/`
# (kernel default mount options plus vers=3,nolock), then directly on ganesha
# in `direct/` (plus noacl, which ganesha 4.3 needs; see
# run-against-ganesha.sh). Passes when the run through Weir passed, ganesha's
# backing directory holds what the guest wrote through Weir, and every check
# that passed directly on ganesha passed through Weir too. The direct run
# only shows which checks ganesha itself passes, so it writes a quarter of
# the tree (DIRECT_TREE_FILES, default 20 files per directory).
# KCLIENT_COMPARE=0 skips the direct run (and the comparison).
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

# Checks of one run, without their timings: `name PASS|FAIL`, sorted.
checks() {
    sed -n 's/^CHECK \(.*\): \(PASS\|FAIL\).*/\1 \2/p' "$1" | sort
}

through=0
start=$SECONDS
KCLIENT_OUT=$work/through-weir WORK_DIR=through-weir "$here/run-guest.sh" nfs "$port" || through=$?
log "guest run through Weir took $((SECONDS - start)) s"
if ((through == 0)); then
    "$here/check-backing.sh" "$export_dir/through-weir" || through=1
fi
stop_pid "$weir_pid"

status=$through
if [[ ${KCLIENT_COMPARE:-1} != 0 ]]; then
    direct=0
    start=$SECONDS
    KCLIENT_OUT=$work/direct WORK_DIR=direct MOUNT_OPTS=${MOUNT_OPTS:-noacl} \
        TREE_FILES=${DIRECT_TREE_FILES:-20} "$here/run-guest.sh" nfs "$g_nfs" "$g_mnt" || direct=$?
    log "guest run directly on ganesha took $((SECONDS - start)) s"
    checks "$work/through-weir/console.log" >"$work/checks-weir"
    checks "$work/direct/console.log" >"$work/checks-direct"
    tab() { sed 's/ \([A-Z]*\)$/\t\1/' "$1"; }
    join -t $'\t' -a 1 -a 2 -e missing -o 0,1.2,2.2 <(tab "$work/checks-weir") <(tab "$work/checks-direct") \
        >"$work/compare"
    echo "COMPARE check: through Weir | directly on ganesha"
    awk -F'\t' '{ printf "COMPARE %s: %s | %s\n", $1, $2, $3 }' "$work/compare"
    # A check that passes on ganesha alone but not through Weir is Weir's fault.
    worse=$(awk -F'\t' '$3 == "PASS" && $2 != "PASS"' "$work/compare" | wc -l)
    log "direct on ganesha: $( ((direct == 0)) && echo PASS || echo "FAIL ($direct)"); through Weir: \
$( ((through == 0)) && echo PASS || echo "FAIL ($through)"); checks worse through Weir: $worse"
    if ((worse > 0 || (direct == 0 && through != 0))); then status=1; fi
fi
stop_servers
trap - EXIT
finish "$status" "$work"
