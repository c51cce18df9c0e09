#!/usr/bin/env bash
# Build (or reuse) the Debian guest that the kernel-client tests boot under qemu.
#
#   build-guest.sh            prints the guest's cache directory on stdout
#
# The guest is a debootstrap'd bookworm (minbase + NFS/CIFS client tools, fio,
# dbench), Debian's linux-image-amd64 kernel and modules, a busybox initramfs
# and an ext4 root image. It is cached outside the repository under
# $WEIR_GUEST_CACHE (default /var/cache/weir-guest)/<hash of the recipe>/ and is
# rebuilt only when the recipe (this script, guest/*, the kernel package) changes
# or the cache is missing. Concurrent runs are safe: the build holds a lock and
# publishes the finished directory with one rename.
#
# Needs root for a build and for installing missing host packages (apt-get).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${WEIR_GUEST_CACHE:-/var/cache/weir-guest}
suite=${WEIR_GUEST_SUITE:-bookworm}
log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

host_packages=(qemu-system-x86 debootstrap busybox-static linux-image-amd64 e2fsprogs
    netcat-openbsd kmod xz-utils cpio)
missing=()
for p in "${host_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || die "missing host packages: ${missing[*]} (run as root to install them)"
    log "installing host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# The kernel that linux-image-amd64 points at (not necessarily the running one).
kpkg=$(dpkg-query -W -f='${Depends}' linux-image-amd64 | grep -o 'linux-image-[^ ,]*' | head -n1)
kver=${kpkg#linux-image-}
[[ -n $kver && -f /boot/vmlinuz-$kver && -d /lib/modules/$kver ]] \
    || die "kernel $kpkg from linux-image-amd64 is not installed (/boot/vmlinuz-$kver)"
kpkg_version=$(dpkg-query -W -f='${Version}' "$kpkg")

# The Debian mirror the machine's apt uses (deb822 .sources first, then sources.list).
mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk -v suite="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/) types = $i
                    if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
                    if ($i ~ /^Suites:/) suites = $i " "
                }
                if (types ~ /[ \t]deb([ \t]|$)/ && suites ~ ("[ \t]" suite "[ \t]")) {
                    split(uris, u, /[ \t]+/); print u[1]; exit
                }
            }' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    uri=$(cat /etc/apt/sources.list 2>/dev/null \
        | awk -v suite="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { if ($(i+1) == suite) { print $i; exit } break } }')
    echo "${uri:-http://deb.debian.org/debian}"
}
mirror_url=${WEIR_GUEST_MIRROR:-$(mirror)}

guest_packages=netbase,nfs-common,cifs-utils,fio,dbench,kmod,iproute2,procps,passwd,util-linux,findutils,diffutils,tar,git
recipe_hash=$( {
    cat "$here/build-guest.sh" "$here"/guest/*
    echo "$suite $mirror_url $guest_packages $kpkg $kpkg_version"
} | sha256sum | cut -c1-16)
out=$cache_root/$recipe_hash

if [[ -f $out/ready ]]; then
    log "reusing $out"
    echo "$out"
    exit 0
fi

[[ $(id -u) == 0 ]] || die "the guest must be built as root (debootstrap)"
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock-$recipe_hash"
log "waiting for the build lock" ; flock 9
if [[ -f $out/ready ]]; then
    log "built by a concurrent run: $out"
    echo "$out"
    exit 0
fi

start=$SECONDS
tmp=$out.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
rootfs=$tmp/rootfs
log "debootstrap $suite from $mirror_url (kernel $kpkg $kpkg_version)"
debootstrap --variant=minbase --include="$guest_packages" "$suite" "$rootfs" "$mirror_url" \
    >"$tmp/debootstrap.log" 2>&1 || { tail -n 30 "$tmp/debootstrap.log" >&2; die "debootstrap failed"; }

log "configuring the root filesystem"
chroot "$rootfs" groupadd -g 1000 alice
chroot "$rootfs" useradd -m -u 1000 -g 1000 -s /bin/bash alice
chroot "$rootfs" groupadd -g 1001 bob
chroot "$rootfs" useradd -m -u 1001 -g 1001 -s /bin/bash bob
echo weir-guest >"$rootfs/etc/hostname"
echo "127.0.0.1 localhost weir-guest" >"$rootfs/etc/hosts"
: >"$rootfs/etc/fstab"
install -m 0755 "$here/guest/guest-init" "$rootfs/sbin/weir-guest-init"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

# Kernel modules, without the large trees a headless virtio guest never loads.
mkdir -p "$rootfs/lib/modules"
tar -C /lib/modules -cf - \
    --exclude="$kver/kernel/drivers/gpu" --exclude="$kver/kernel/drivers/media" \
    --exclude="$kver/kernel/drivers/net/wireless" --exclude="$kver/kernel/drivers/infiniband" \
    --exclude="$kver/kernel/drivers/staging" --exclude="$kver/kernel/sound" \
    --exclude="$kver/kernel/drivers/net/ethernet" --exclude="$kver/kernel/drivers/bluetooth" \
    --exclude="$kver/kernel/drivers/iio" --exclude="$kver/kernel/drivers/hid" \
    --exclude="$kver/kernel/drivers/usb" --exclude="$kver/kernel/drivers/scsi" \
    "$kver" | tar -C "$rootfs/lib/modules" -xf -
depmod -b "$rootfs" "$kver"

# The initramfs: static busybox, the modules to reach an ext4 root on virtio.
initfs=$tmp/initramfs
mkdir -p "$initfs"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$initfs/bin/busybox"
file_is_static=$(ldd "$initfs/bin/busybox" 2>&1 || true)
[[ $file_is_static == *"not a dynamic executable"* ]] || die "/bin/busybox is not static (install busybox-static)"
install -m 0755 "$here/guest/initramfs-init" "$initfs/init"
: >"$initfs/modules/order"
for m in virtio_pci virtio_blk crc32c_generic ext4; do
    modprobe -S "$kver" --show-depends "$m" | while read -r kind path _; do
        [[ $kind == insmod ]] || continue
        name=$(basename "$path")
        name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
        grep -qx "$name" "$initfs/modules/order" && continue
        case $path in
            *.xz) xz -dc "$path" >"$initfs/modules/$name" ;;
            *.zst) zstd -dc "$path" >"$initfs/modules/$name" ;;
            *.gz) gzip -dc "$path" >"$initfs/modules/$name" ;;
            *) cp "$path" "$initfs/modules/$name" ;;
        esac
        echo "$name" >>"$initfs/modules/order"
    done
done
(cd "$initfs" && find . | cpio -o -H newc --quiet) | gzip -1 >"$tmp/initrd.img"
rm -rf "$initfs"

install -m 0644 "/boot/vmlinuz-$kver" "$tmp/vmlinuz"

log "making the ext4 root image"
size_mb=$(( $(du -sm "$rootfs" | cut -f1) + 768 ))
mkfs.ext4 -q -F -L weir-root -d "$rootfs" "$tmp/root.img" "${size_mb}M" >/dev/null
chmod 0644 "$tmp/root.img"
rm -rf "$rootfs"
echo "$kpkg $kpkg_version" >"$tmp/kernel"
echo "$((SECONDS - start))" >"$tmp/build-seconds"
touch "$tmp/ready"
mv "$tmp" "$out"
log "built $out in $((SECONDS - start)) s"
echo "$out"
