#!/usr/bin/env bash
# Builds the small Debian 12 test guest for ionlab once per machine and caches it.
#
#   scripts/build-test-image.sh [--force]     # as root; prints the image directory on stdout
#
# Output: ${IONLAB_IMAGE_CACHE:-/var/cache/ionlab/images}/bookworm-test/
#   disk.raw    sparse raw ext4, no partition table, label ionlab-root (the root file system is /dev/vda)
#   vmlinuz     kernel and initrd for direct kernel boot: cmdline "root=/dev/vda rw console=ttyS0"
#   initrd.img
#   manifest    inputs=sha256 of this script; when it matches, the script prints the path and exits at once
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

force=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-test-image: error: unknown argument $arg (usage: $0 [--force])" >&2; exit 64 ;;
  esac
done

die() { echo "build-test-image: error: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, device nodes and file ownership in the image)"

cache=${IONLAB_IMAGE_CACHE:-/var/cache/ionlab/images}
final=$cache/$NAME
script=$(readlink -f "${BASH_SOURCE[0]}")
inputs=sha256:$(sha256sum <"$script" | cut -d' ' -f1)

cached() {
  [[ -s $final/disk.raw && -s $final/vmlinuz && -s $final/initrd.img && -f $final/manifest ]] &&
    grep -qxF "inputs=$inputs" "$final/manifest"
}
if ((!force)) && cached; then
  echo "$final"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.$NAME.lock"
if ! flock -n 9; then
  echo "build-test-image: waiting for another build of $final" >&2
  flock 9
  if ((!force)) && cached; then echo "$final"; exit 0; fi
fi

log=$cache/$NAME.build.log
: >"$log"
started=$SECONDS
work=
phase_name=
child=

# Unmounts anything left under a directory (a killed debootstrap can leave proc/sys/dev mounts), then removes
# it without crossing into other file systems.
remove_tree() {
  local dir=$1 mounts
  [[ -e $dir ]] || return 0
  mounts=$(awk -v d="$dir/" 'index($2 "/", d) == 1 { print $2 }' /proc/mounts | sort -r)
  if [[ -n $mounts ]]; then
    while read -r m; do umount -l "$m" 2>/dev/null || true; done <<<"$mounts"
  fi
  rm -rf --one-file-system "$dir"
}

cleanup() {
  local status=$?
  if [[ -n $child ]]; then # interrupted: stop the phase's whole process group (debootstrap, dpkg, ...)
    kill -TERM -- "-$child" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do kill -0 -- "-$child" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if [[ -n $phase_name ]]; then
    printf 'FAILED\n' >&2
    local last
    last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-200 || true)
    if ((status >= 128)); then last="interrupted by signal $((status - 128))"; fi
    echo "build-test-image: error: phase '$phase_name' failed (exit $status)${last:+: $last}; full log: $log" >&2
  fi
  [[ -n $work ]] && remove_tree "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# phase NAME COMMAND...: runs one step with its output in the log; prints "NAME ... ok 12 s" on stderr.
phase() {
  phase_name=$1
  shift
  local t0=$SECONDS
  printf 'build-test-image: %-10s ' "$phase_name" >&2
  echo "=== $phase_name: $*" >>"$log"
  # In the background, in its own process group, so that a signal is handled at once and stops all of it.
  set -m
  "$@" >>"$log" 2>&1 &
  child=$!
  set +m
  wait "$child"
  child=
  printf 'ok %4d s (total %d s)\n' $((SECONDS - t0)) $((SECONDS - started)) >&2
  phase_name=
}

find_mirror() {
  if [[ -n ${IONLAB_DEBIAN_MIRROR:-} ]]; then echo "$IONLAB_DEBIAN_MIRROR"; return; fi
  local f types uris suites line
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    if [[ $f == *.sources ]]; then # deb822: blank-line separated stanzas
      types= uris= suites=
      while IFS= read -r line || [[ -n $line ]]; do
        case $line in
          Types:*) types=${line#Types:} ;;
          URIs:*) uris=${line#URIs:} ;;
          Suites:*) suites=${line#Suites:} ;;
          '')
            if [[ " $types " == *" deb "* && " $suites " == *" $SUITE "* && -n $uris ]]; then
              set -- $uris
              echo "$1"
              return
            fi
            types= uris= suites= ;;
        esac
      done < <(grep -v '^[[:space:]]*#' "$f"; echo)
    else # one-line: deb [options] URI SUITE COMPONENTS
      line=$(sed -E 's/\[[^]]*\]//' "$f" | awk -v s="$SUITE" '$1 == "deb" && $3 == s { print $2; exit }')
      if [[ -n $line ]]; then echo "$line"; return; fi
    fi
  done
  echo http://deb.debian.org/debian
}

ensure_tools() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # mkfs.ext4 -d needs e2fsprogs 1.43 or newer (Debian 12 has 1.47)
  mkfs.ext4 -V 2>&1 | grep -q 'mke2fs 1\.\(4[3-9]\|[5-9]\)' || missing+=(e2fsprogs)
  command -v flock >/dev/null || missing+=(util-linux)
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
  if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

configure_rootfs() {
  local root=$1
  # debootstrap copies the host's resolv.conf, hostname and hosts: none of them belong in a guest.
  rm -f "$root/etc/resolv.conf" # dhclient writes it from the DHCP lease
  echo ionlab-guest >"$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tionlab-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  # The whole disk is the root file system, no partition table. No fsck: the kernel mounts it rw (cmdline) and
  # every VM starts from a fresh overlay.
  printf '# ionlab test image\n/dev/vda\t/\text4\trw,errors=remount-ro\t0\t0\n' >"$root/etc/fstab"
  # Each VM generates its own machine id at first boot.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  # ifupdown reads the DHCP config that cloud-init renders into interfaces.d.
  if ! grep -qs 'interfaces.d' "$root/etc/network/interfaces"; then
    printf 'source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n' >"$root/etc/network/interfaces"
  fi
  mkdir -p "$root/etc/cloud/cloud.cfg.d"
  cat >"$root/etc/cloud/cloud.cfg.d/90-ionlab.cfg" <<'EOF'
# ionlab test image (scripts/build-test-image.sh). Keep it valid for `cloud-init schema`: a schema error
# prints "Invalid cloud-config provided" on every boot.
# Only the seed ISO (label cidata); no network metadata probes.
datasource_list: [ NoCloud, None ]
# The locale module fails on a minbase system (no locales package) and marks cloud-init as errored.
# A string: the 22.4 schema wants one, and cloud-init reads "false" as false.
locale: "false"
# No SSH server in this image. The `ssh` module would run ssh-keygen, and `ssh_genkeytypes: []` fails the
# schema ("[] is too short"), so `ssh` is left out of the init modules. Left out of the config modules:
# `set-passwords` (warns on every boot that sshd is missing) and `grub-dpkg` (no grub; 2 s under TCG).
# Otherwise these are Debian's lists (cloud-init 22.4).
cloud_init_modules:
 - migrator
 - seed_random
 - bootcmd
 - write-files
 - growpart
 - resizefs
 - disk_setup
 - mounts
 - set_hostname
 - update_hostname
 - update_etc_hosts
 - ca-certs
 - rsyslog
 - users-groups
cloud_config_modules:
 - snap
 - ssh-import-id
 - keyboard
 - locale
 - apt-pipelining
 - apt-configure
 - ntp
 - timezone
 - disable-ec2-metadata
 - runcmd
 - byobu
no_ssh_fingerprints: true
ssh:
  emit_keys_to_console: false
EOF
  # Check it with the image's own cloud-init (the schema wants the #cloud-config header).
  { echo '#cloud-config'; cat "$root/etc/cloud/cloud.cfg.d/90-ionlab.cfg"; } >"$root/tmp/90-ionlab.yaml"
  chroot "$root" cloud-init schema --config-file /tmp/90-ionlab.yaml
  rm -f "$root/tmp/90-ionlab.yaml"
  # Under TCG a background apt run costs minutes of CPU; the test guest never updates itself. e2scrub needs
  # LVM, which the image does not have, yet its boot-time reaper takes about 10 s under TCG.
  local unit
  for unit in apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
    e2scrub_all.timer e2scrub_all.service e2scrub_reap.service; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
  done
  # Smaller image: package lists and caches are rebuilt by apt-get update when a guest needs them.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  rm -f "$root"/var/log/*.log "$root"/var/log/apt/* 2>/dev/null || true
}

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

finish() {
  local out=$1 mirror=$2
  {
    echo "# ionlab test image; delete this directory or run scripts/build-test-image.sh --force to rebuild"
    echo "inputs=$inputs"
    echo "suite=$SUITE"
    echo "mirror=$mirror"
    cat "$out/manifest.part"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cmdline=root=/dev/vda rw console=ttyS0"
    echo "disk_bytes=$(stat -c %s "$out/disk.raw")"
  } >"$out/manifest"
  rm -f "$out/manifest.part"
  sync -f "$out/disk.raw"
  # Swap in: the old image (if any) is moved aside first, because rename cannot replace a non-empty directory.
  local old=
  if [[ -e $final ]]; then
    old=$(mktemp -d "$cache/.$NAME.old.XXXXXX")
    mv "$final" "$old/"
  fi
  mv "$out" "$final"
  [[ -z $old ]] || rm -rf --one-file-system "$old"
}

# Leftovers from builds that were killed hard.
for stale in "$cache/.$NAME".tmp.* "$cache/.$NAME".old.*; do
  [[ -e $stale ]] && remove_tree "$stale"
done

echo "build-test-image: building $final (log: $log)" >&2
phase tools ensure_tools
mirror=$(find_mirror)
work=$(mktemp -d "$cache/.$NAME.tmp.XXXXXX")
mkdir "$work/out" "$work/rootfs"
phase debootstrap debootstrap --variant=minbase --components=main --include="$PACKAGES" "$SUITE" "$work/rootfs" "$mirror"
phase configure configure_rootfs "$work/rootfs"
phase kernel extract_kernel "$work/rootfs" "$work/out"
phase mkfs make_disk "$work/rootfs" "$work/out/disk.raw"
phase tidy remove_tree "$work/rootfs"
phase install finish "$work/out" "$mirror"
rmdir "$work" 2>/dev/null || true
work=
echo "build-test-image: done in $((SECONDS - started)) s: $(du -h --apparent-size "$final/disk.raw" | cut -f1) apparent, $(du -h "$final/disk.raw" | cut -f1) on disk" >&2
echo "$final"
