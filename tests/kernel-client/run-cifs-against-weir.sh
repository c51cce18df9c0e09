#!/usr/bin/env bash
# Run the kernel CIFS workload against Weir's SMB server, once per mount
# flavour, then check the origin directory (Weir's local core filer) from the
# host side.
#
#   run-cifs-against-weir.sh     (as root; CIFS_VARIANTS overrides the flavours,
#                                 space-separated mount options, default
#                                 "vers=3.1.1,seal vers=2.1"; flavours after
#                                 the first write LATER_TREE_FILES, default 20,
#                                 files per directory instead of 80)
#
# Builds target/debug/weir and, per flavour, starts `weir serve` with a fresh
# data dir and origin, SMB on 127.0.0.1:WEIR_SMB_PORT (default 20595; the guest
# reaches it at 10.0.2.100:445), share `export`, and the SMB user weir-cifs
# (uid and gid 2101, owner of the origin; not root, unlike the Samba run) made
# with `weir smbpasswd`. Part of `cargo xtask test`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${WEIR_SMB_PORT:-20595}
nfs_port=${WEIR_NFS_PORT:-20596}
# Not root: the server acts as this user on the origin, which it owns, as a
# share's users do (the kernel then checks every operation against uid 2101).
user=weir-cifs
uid=2101
pass=weir-cifs-pass
log() { echo "run-cifs-against-weir: $*" >&2; }

[[ $(id -u) == 0 ]] || { log "must run as root"; exit 2; }
. "$here/lib.sh"
ensure_ports_free "$port" "$nfs_port"
# Build the guest first, so the server is not kept waiting by a cold build.
"$here/build-guest.sh" >/dev/null
weir=$(build_weir "$root")

work=$(mktemp -d /tmp/kclient-cifs-weir.XXXXXX)
weir_pid=
stop_server() {
    stop_pid "$weir_pid"
    weir_pid=
    rm -rf "$work"/*/data/cache # preallocated cache files; logs stay for a failed run
}
trap stop_server EXIT

status=0
read -r -a variants <<<"${CIFS_VARIANTS:-vers=3.1.1,seal vers=2.1}"
for opts in "${variants[@]}"; do
    name=${opts//[^a-z0-9.]/-}
    dir=$work/$name
    mkdir -p "$dir/origin" "$dir/data"
    chown "$uid:$uid" "$dir/origin"
    printf '%s\n' "$pass" | "$weir" smbpasswd "$user" --uid "$uid" --gid "$uid" --data-dir "$dir/data" \
        2>>"$dir/weir.log"
    "$weir" serve --data-dir "$dir/data" --origin "$dir/origin" \
        --smb-listen "127.0.0.1:$port" --nfs-listen "127.0.0.1:$nfs_port" \
        --metrics-listen 127.0.0.1:0 >>"$dir/weir.log" 2>&1 &
    weir_pid=$!
    if ! wait_ports "$weir_pid" "$port"; then
        log "FAIL: weir is not serving SMB on 127.0.0.1:$port; log in $dir/weir.log:"
        tail -n 20 "$dir/weir.log" >&2
        status=1
        break
    fi
    log "guest with mount options $opts; weir serving $dir/origin"
    rc=0
    start=$SECONDS
    # The first variant writes the whole tree; later ones differ only in the
    # dialect, whose paths a quarter of it covers.
    files=${TREE_FILES:-80}
    [[ $opts == "${variants[0]}" ]] || files=${LATER_TREE_FILES:-20}
    KCLIENT_OUT=$dir/guest CIFS_OPTS=$opts WORK_DIR=${WORK_DIR:-kclient} TREE_FILES=$files \
        SMB_SHARE=export SMB_USER=$user SMB_PASS=$pass \
        "$here/run-guest.sh" cifs "$port" || rc=$?
    log "guest run ($opts) took $((SECONDS - start)) s, status $rc"
    stop_server
    if ((rc == 0)); then
        "$here/check-backing.sh" --contents-only "$dir/origin/${WORK_DIR:-kclient}" || rc=1
    fi
    ((rc == 0)) || status=$rc
done
trap - EXIT
finish "$status" "$work"
