#!/usr/bin/env bash
# Builds the small Debian 12 test guest for ionlab once per machine and caches it.
#
#   scripts/build-test-image.sh [--force]     # as root; prints the image directory on stdout
#
# Output: ${IONLAB_IMAGE_CACHE:-/var/cache/ionlab/images}/bookworm-test/
#   disk.raw    sparse raw ext4, no partition table, label ionlab-root (the root file system is /dev/vda)
#   vmlinuz     kernel and initrd for direct kernel boot: cmdline "root=/dev/vda rw console=ttyS0"
#   initrd.img
#   manifest    inputs=sha256 of this script and lib/guest-image.sh; when it matches, the script prints the
#               path and exits at once
# The image is built in a temporary directory next to the cache and renamed into place, so an interrupted
# build never leaves half an image. Progress: one line per phase on stderr; the last stdout line is the path.
# The mirror is the first bookworm one in /etc/apt/sources.list*, or IONLAB_DEBIAN_MIRROR.
set -euo pipefail

readonly NAME=bookworm-test SUITE=bookworm IMAGE_SIZE=2G FS_LABEL=ionlab-root
readonly PACKAGES=linux-image-amd64,systemd-sysv,udev,dbus,cloud-init,python3-cffi-backend,ifupdown,isc-dhcp-client,netbase,iproute2,ca-certificates,python3,util-linux,kmod,e2fsprogs,gcc,make,libc6-dev
# python3-cffi-backend: debootstrap misses this cloud-init dependency without it.
# dbus: as in Debian's and Ubuntu's cloud images; without it systemd-logind does not run, and nothing answers
# the ACPI power button that `ionlab vm stop` presses.
# gcc, make, libc6-dev: the fixture portal is built from source in the VM (controller-config/recipes/fixture-portal.yaml).
IMAGE_FILES=(disk.raw vmlinuz initrd.img)
# shellcheck source=lib/guest-image.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/guest-image.sh"
image_begin "$(readlink -f "${BASH_SOURCE[0]}")" "$@"

extract_kernel() {
  local root=$1 out=$2 kernel initrd
  kernel=$(readlink -f "$root/vmlinuz" 2>/dev/null || true)
  [[ -f $kernel ]] || kernel=$(ls -1 "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
  initrd=$(readlink -f "$root/initrd.img" 2>/dev/null || true)
  [[ -f $initrd ]] || initrd=$(ls -1 "$root"/boot/initrd.img-* | sort -V | tail -n 1)
  [[ -s $kernel && -s $initrd ]] || { echo "no kernel or initrd under $root/boot"; return 1; }
  cp "$kernel" "$out/vmlinuz"
  cp "$initrd" "$out/initrd.img"
  echo "kernel=$(basename "$kernel" | sed 's/^vmlinuz-//')" >"$out/manifest.part"
}

make_disk() {
  local root=$1 disk=$2
  local leftover
  leftover=$(awk -v d="$root/" 'index($2 "/", d) == 1 { print $2 }' /proc/mounts)
  [[ -z $leftover ]] || { echo "still mounted under the rootfs: $leftover"; return 1; }
  truncate -s "$IMAGE_SIZE" "$disk"
  mkfs.ext4 -q -F -L "$FS_LABEL" -m 1 -d "$root" "$disk"
}

# mkfs.ext4 -d needs e2fsprogs 1.43 or newer (Debian 12 has 1.47).
phase tools install_tools debootstrap e2fsprogs util-linux debian-archive-keyring
mirror=$(find_mirror)
work=$(mktemp -d "$cache/.$NAME.tmp.XXXXXX")
mkdir "$work/out" "$work/rootfs"
phase debootstrap debootstrap --variant=minbase --components=main --include="$PACKAGES" "$SUITE" "$work/rootfs" "$mirror"
# The whole disk is the root file system, no partition table. No fsck: the kernel mounts it rw (cmdline) and
# every VM starts from a fresh overlay.
phase configure configure_guest "$work/rootfs" "/dev/vda	/	ext4	rw,errors=remount-ro	0	0"
phase kernel extract_kernel "$work/rootfs" "$work/out"
phase mkfs make_disk "$work/rootfs" "$work/out/disk.raw"
phase tidy image_remove_tree "$work/rootfs"
phase install install_image "$work/out" "suite=$SUITE" "mirror=$mirror" "$(cat "$work/out/manifest.part")" \
  "cmdline=root=/dev/vda rw console=ttyS0" "disk_bytes=$(stat -c %s "$work/out/disk.raw")"
rmdir "$work" 2>/dev/null || true
work=
echo "$NAME: done in $((SECONDS - started)) s: $(du -h --apparent-size "$final/disk.raw" | cut -f1) apparent, $(du -h "$final/disk.raw" | cut -f1) on disk" >&2
echo "$final"
