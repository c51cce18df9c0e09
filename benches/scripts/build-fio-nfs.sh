#!/usr/bin/env bash
# build-fio-nfs.sh - build fio with the libnfs (userspace NFS) engine from Debian's
# own fio source package (bookworm) and install the binary as /opt/fio-nfs/bin/fio.
#
# Idempotent: re-running is cheap once /opt/fio-nfs/bin/fio exists and has the nfs
# engine (set FORCE=1 to rebuild). Needs root and access to the Debian archive.
#
# Nothing but Debian's source package is used: `apt-get source fio` (bookworm: 3.33-3,
# i.e. upstream 3.33 plus Debian's patches), configured with `./configure --enable-libnfs`
# against Debian's libnfs-dev (4.0.0), built with `make -j2`.
#
# Known limitation of this build (fio 3.33 nfs engine + libnfs 4.0.0):
# with iodepth > 1 the job process can hang in nfs_umount() after its I/O phase has
# finished and its statistics are final; a benchmark driver should end such job processes once their statistics are out.
set -Eeuo pipefail

WORK=${WORK:-/var/cache/fio-nfs-src}        # where the source package is unpacked and built
PREFIX=${PREFIX:-/opt/fio-nfs}
FORCE=${FORCE:-0}
export DEBIAN_FRONTEND=noninteractive
# Other jobs on the machine may hold the dpkg lock for a while: wait for it.

log() { printf '[build-fio-nfs] %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

if [ "$FORCE" != 1 ] && [ -x "$PREFIX/bin/fio" ] && "$PREFIX/bin/fio" --enghelp=nfs 2>/dev/null | grep -q nfs_url; then
    log "$PREFIX/bin/fio ($("$PREFIX/bin/fio" --version)) already has the nfs engine; FORCE=1 to rebuild"
    exit 0
fi

# 1. deb-src entry for bookworm main (deb822 format)
SRC=/etc/apt/sources.list.d/debsrc.sources
WANT='Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
if [ "$(cat "$SRC" 2>/dev/null)" != "$WANT" ]; then
    log "writing $SRC"
    printf '%s\n' "$WANT" > "$SRC"
fi

# 2. toolchain + build dependencies, all from Debian
log "apt-get update / install libnfs-dev dpkg-dev / build-dep fio"
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq libnfs-dev dpkg-dev >/dev/null
apt-get -o DPkg::Lock::Timeout=600 build-dep -y -qq fio >/dev/null

# 3. Debian source package
mkdir -p "$WORK"
cd "$WORK"
SRCDIR=$(find . -maxdepth 1 -type d -name 'fio-[0-9]*' | sort | tail -n1)
if [ -z "$SRCDIR" ] || [ ! -x "$SRCDIR/configure" ]; then
    log "apt-get source fio into $WORK"
    apt-get source fio
    SRCDIR=$(find . -maxdepth 1 -type d -name 'fio-[0-9]*' | sort | tail -n1)
fi
[ -n "$SRCDIR" ] || { log "no unpacked fio source in $WORK"; exit 1; }
cd "$SRCDIR"
log "source: $WORK/${SRCDIR#./} ($(dpkg-parsechangelog -S Version 2>/dev/null || echo '?'))"

# 4. configure with the libnfs engine and check that configure found libnfs
./configure --enable-libnfs | tee configure.out
if ! grep -Eq '^NFS engine +yes' configure.out; then
    log "configure did not enable the NFS engine (is libnfs-dev installed?)"
    exit 1
fi

# 5. build and install only the fio binary
make -j2
./fio --enghelp=nfs | grep -q nfs_url || { log "built fio has no nfs engine"; exit 1; }
install -D -m 0755 fio "$PREFIX/bin/fio"
log "installed $PREFIX/bin/fio: $("$PREFIX/bin/fio" --version)"
"$PREFIX/bin/fio" --enghelp=nfs
