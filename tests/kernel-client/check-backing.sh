#!/usr/bin/env bash
# Host-side check after a guest run: the server's backing directory holds what
# the guest wrote. DIR is <backing dir>/<WORK_DIR>; the workload left there
# MANIFEST.sha256 (sha256 of every file) and OWNERS (type, mode, uid:gid, size,
# path of every entry).
#
#   check-backing.sh [--contents-only] DIR
#
# --contents-only: only the manifest (a CIFS mount without POSIX extensions
# shows the mount's owner and modes, not the server's).
set -uo pipefail
export LC_ALL=C
contents_only=0
if [[ ${1:-} == --contents-only ]]; then contents_only=1; shift; fi
dir=${1:?usage: check-backing.sh [--contents-only] DIR}
failed=0
result() {
    if (($2 == 0)); then echo "HOST CHECK $1: PASS"; else echo "HOST CHECK $1: FAIL"; failed=1; fi
}
cd "$dir" && [[ -s MANIFEST.sha256 && -s OWNERS ]]
result "manifest-present ($dir)" $?
((failed)) && exit 1

sha256sum -c --quiet MANIFEST.sha256
result "contents-match-manifest ($(wc -l <MANIFEST.sha256) files)" $?
((contents_only)) && exit "$failed"

find . -mindepth 1 ! -name MANIFEST.sha256 ! -name OWNERS \
    \( -type d -printf '%y %m %U:%G - %P\n' -o -printf '%y %m %U:%G %s %P\n' \) | sort >/tmp/kclient-owners.$$
diff OWNERS /tmp/kclient-owners.$$ | head -n 20
result "owners-modes-sizes-match ($(wc -l <OWNERS) entries)" "${PIPESTATUS[0]}"
rm -f /tmp/kclient-owners.$$

n1000=$(find . -uid 1000 -gid 1000 | wc -l)
n1001=$(find . -uid 1001 -gid 1001 | wc -l)
echo "host: $n1000 entries owned by 1000:1000, $n1001 by 1001:1001"
((n1000 > 0 && n1001 > 0))
result "uids-1000-1001-present" $?
[[ $(stat -c %u:%g perm/alice/a.txt 2>/dev/null) == 1000:1000 && $(stat -c %u:%g perm/for-bob 2>/dev/null) == 1001:1001 ]]
result "perm-files-owners" $?
exit "$failed"
