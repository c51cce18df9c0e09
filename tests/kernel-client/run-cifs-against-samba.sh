#!/usr/bin/env bash
# Run the kernel CIFS workload against Samba on this host, once per mount
# flavour, then check Samba's backing directory from the host side.
#
#   run-cifs-against-samba.sh     (as root; CIFS_VARIANTS overrides the flavours,
#                                  space-separated mount options, default
#                                  "vers=3.1.1,seal vers=2.1")
#
# Samba is the testbed's private smbd (testbed/src/samba.rs) on a free
# 127.0.0.1 port, started by samba-server for the length of each guest run; the
# guest reaches it at 10.0.2.100:445 through a qemu guestfwd.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { echo "run-cifs-against-samba: $*" >&2; }

[[ $(id -u) == 0 ]] || { log "must run as root"; exit 2; }
. "$here/lib.sh"
for p in samba; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$p" >&2
    }
done
# Build the guest first, so the server is not kept waiting by a cold build.
"$here/build-guest.sh" >/dev/null
(cd "$root" && "${CARGO:-cargo}" build --quiet -p testbed --bin samba-server)
samba=${CARGO_TARGET_DIR:-$root/target}/debug/samba-server
[[ $samba == /* ]] || samba=$root/$samba

work=$(mktemp -d /tmp/kclient-cifs-samba.XXXXXX)
status=0
read -r -a variants <<<"${CIFS_VARIANTS:-vers=3.1.1,seal vers=2.1}"
for opts in "${variants[@]}"; do
    name=${opts//[^a-z0-9.]/-}
    mkdir -p "$work/$name/export"
    log "guest with mount options $opts"
    rc=0
    start=$SECONDS
    # samba-server runs the guest with the server's SMB_* in its environment.
    KCLIENT_OUT=$work/$name/guest CIFS_OPTS=$opts WORK_DIR=${WORK_DIR:-kclient} \
        "$samba" --dir "$work/$name/export" -- \
        bash -c 'exec "$0" cifs "$SMB_PORT"' "$here/run-guest.sh" || rc=$?
    log "guest run ($opts) took $((SECONDS - start)) s, status $rc"
    if ((rc == 0)); then
        "$here/check-backing.sh" --contents-only "$work/$name/export/${WORK_DIR:-kclient}" || rc=1
    fi
    ((rc == 0)) || status=$rc
done
finish "$status" "$work"
