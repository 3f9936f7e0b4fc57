#!/usr/bin/env bash
# Builds the Debian 12 desktop guest for ionlab once per machine and caches it: the way distributions build
# cloud images, a partitioned disk that boots through its own bootloader (GRUB), with cloud-init (NoCloud), and
# a desktop: the user `desktop`, whose Wayland session (sway, drawn with pixman under TCG) starts at boot on
# the VM's display through greetd with nobody logging in; PipeWire; xdg-desktop-portal with the wlr backend
# (ScreenCast); wayvnc on the guest's 127.0.0.1:5900 only; and a terminal (foot).
#
#   scripts/build-desktop-image.sh [--force]     # as root; prints the image directory on stdout
#
# Output: ${IONLAB_IMAGE_CACHE:-/var/cache/ionlab/images}/bookworm-desktop/
#   disk.qcow2  4 GiB, MBR with one ext4 partition (label ionlab-root), GRUB in the MBR
#   manifest    inputs=sha256 of this script, lib/guest-image.sh and desktop-image/rootfs/**; when it matches,
#               the script prints the path and exits at once
# The files under scripts/desktop-image/rootfs/ are copied into the image as they are. The mirror is the first
# bookworm one in /etc/apt/sources.list*, or IONLAB_DEBIAN_MIRROR. Needs loop devices.
set -euo pipefail

readonly NAME=bookworm-desktop SUITE=bookworm IMAGE_SIZE=4G FS_LABEL=ionlab-root DESKTOP_USER=desktop
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
readonly FILES=$here/desktop-image/rootfs
# As in the test image (scripts/build-test-image.sh), plus the bootloader and the desktop. libpam-systemd and
# dbus-user-session are only recommended by what needs them: without them greetd's session has no logind
# session, no /run/user/UID and no session bus. The portal-session probe's guest side is Python with D-Bus,
# GLib and GStreamer's PipeWire source; the FIXTURE portal backend is built in the guest (sd-bus, xkbcommon)
# and types through wtype. The guest has no network, so what a workflow builds with is in the image.
readonly PACKAGES=linux-image-amd64,systemd-sysv,udev,dbus,cloud-init,python3-cffi-backend,ifupdown,isc-dhcp-client,netbase,iproute2,ca-certificates,python3,util-linux,kmod,e2fsprogs,gcc,make,libc6-dev,grub-pc,initramfs-tools,libpam-systemd,dbus-user-session,greetd,sway,foot,wayvnc,pipewire,wireplumber,xdg-desktop-portal,xdg-desktop-portal-wlr,wayland-utils,fonts-dejavu-core,xkb-data,python3-dbus,python3-gi,gir1.2-gstreamer-1.0,gir1.2-gst-plugins-base-1.0,gstreamer1.0-pipewire,gstreamer1.0-plugins-base,gstreamer1.0-tools,libsystemd-dev,libxkbcommon-dev,pkg-config,wtype
IMAGE_FILES=(disk.qcow2)
mapfile -t IMAGE_INPUTS < <(find "$FILES" -type f | LC_ALL=C sort)
# shellcheck source=lib/guest-image.sh
source "$here/lib/guest-image.sh"
image_begin "$(readlink -f "${BASH_SOURCE[0]}")" "$@"

# The partitioned raw disk, its loop device (with the partition's), the file system mounted.
make_disk() {
  local disk=$1 mountpoint=$2 loop
  truncate -s "$IMAGE_SIZE" "$disk"
  printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$disk"
  loop=$(losetup --find --show --partscan "$disk")
  echo "$loop" >"$work/loop"
  [[ -b ${loop}p1 ]] || partx -a "$loop" || true # --partscan does not always make the partition's node at once
  local i
  for ((i = 0; i < 50; i++)); do [[ -b ${loop}p1 ]] && break; sleep 0.2; done
  [[ -b ${loop}p1 ]] || { echo "no partition device for $loop"; return 1; }
  mkfs.ext4 -q -L "$FS_LABEL" -m 1 "${loop}p1"
  mkdir -p "$mountpoint"
  mount "${loop}p1" "$mountpoint"
}

configure_desktop() {
  local root=$1
  chroot "$root" useradd --create-home --uid 1000 --shell /bin/bash --groups video,render,input "$DESKTOP_USER"
  cp -a --no-preserve=ownership "$FILES/." "$root/"
  chroot "$root" chown -R "$DESKTOP_USER:$DESKTOP_USER" "/home/$DESKTOP_USER"
  chroot "$root" systemctl enable greetd.service
  chroot "$root" systemctl set-default graphical.target
  # Upgrades in the guest keep GRUB where it is, without asking.
  echo "grub-pc grub-pc/install_devices multiselect /dev/vda" | chroot "$root" debconf-set-selections
}

# GRUB in the disk's MBR, and its config naming the root file system by UUID. The chroot gets a /dev of its
# own: the host's has no /dev/disk/by-uuid for the loop device, and update-grub would write root=/dev/loopNp1.
install_bootloader() {
  local root=$1 loop uuid
  loop=$(cat "$work/loop")
  uuid=$(blkid -s UUID -o value "${loop}p1")
  mount -t tmpfs ionlab-dev "$root/dev"
  cp -a /dev/null /dev/zero /dev/random /dev/urandom "$loop" "${loop}p1" "$root/dev/"
  mkdir -p "$root/dev/disk/by-uuid"
  ln -s "../../${loop##*/}p1" "$root/dev/disk/by-uuid/$uuid"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  chroot "$root" grub-install --target=i386-pc --modules="part_msdos ext2" "$loop"
  chroot "$root" update-grub
  umount "$root/sys" "$root/proc" "$root/dev"
  grep -q "root=UUID=$uuid" "$root/boot/grub/grub.cfg" || { echo "grub.cfg does not name root=UUID=$uuid"; return 1; }
  chroot "$root" dpkg-query -W -f='kernel=${Version}\n' linux-image-amd64 >"$work/manifest.part"
}

# Unmounted, detached, trimmed of the freed blocks of the downloaded packages, and converted to qcow2.
finish_disk() {
  local disk=$1 mountpoint=$2 out=$3
  fstrim "$mountpoint" || true
  umount "$mountpoint"
  losetup -d "$(cat "$work/loop")"
  qemu-img convert -O qcow2 "$disk" "$out/disk.qcow2"
  rm -f "$disk"
}

phase tools install_tools mmdebstrap fdisk qemu-utils e2fsprogs util-linux debian-archive-keyring
mirror=$(find_mirror)
work=$(mktemp -d "$cache/.$NAME.tmp.XXXXXX")
mkdir "$work/out"
phase disk make_disk "$work/disk.raw" "$work/root"
phase mmdebstrap mmdebstrap --variant=minbase --mode=root --components=main --include="$PACKAGES" "$SUITE" "$work/root" "$mirror"
phase configure configure_guest "$work/root" "LABEL=$FS_LABEL	/	ext4	rw,errors=remount-ro	0	1"
phase desktop configure_desktop "$work/root"
phase bootloader install_bootloader "$work/root"
phase qcow2 finish_disk "$work/disk.raw" "$work/root" "$work/out"
phase install install_image "$work/out" "suite=$SUITE" "mirror=$mirror" "$(cat "$work/manifest.part")" \
  "boot=grub (MBR), root=LABEL=$FS_LABEL" "user=$DESKTOP_USER" "disk_bytes=$(stat -c %s "$work/out/disk.qcow2")"
image_remove_tree "$work"
work=
echo "$NAME: done in $((SECONDS - started)) s: $(du -h "$final/disk.qcow2" | cut -f1)" >&2
echo "$final"
