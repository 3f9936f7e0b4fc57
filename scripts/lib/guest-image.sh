# Shared by the guest image builders (scripts/build-test-image.sh, scripts/build-desktop-image.sh): the cache
# and its manifest, one build at a time, phases with their output in a log, cleanup of mounts, loop devices
# and process groups on any exit, the Debian mirror, and the guest configuration both images share.
# A builder sets NAME and SUITE, sources this file, and calls image_begin "$@" (see there).

# image_begin SCRIPT ARGS...: parses --force and --help, then either prints the cached image's path and exits,
# or takes the build lock and sets cache, final, inputs, log, started. The inputs are SCRIPT, this file and the
# files in IMAGE_INPUTS (files the image is made of), by content and in order.
image_begin() {
  local script=$1 arg
  shift
  force=0
  for arg in "$@"; do
    case $arg in
      --force) force=1 ;;
      -h | --help) sed -n '2,/^set -euo/p' "$script" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      *) echo "$NAME: error: unknown argument $arg (usage: $script [--force])" >&2; exit 64 ;;
    esac
  done
  [[ $(id -u) == 0 ]] || image_die "must run as root (the image's file ownership, device nodes and mounts)"
  cache=${IONLAB_IMAGE_CACHE:-/var/cache/ionlab/images}
  final=$cache/$NAME
  inputs=sha256:$(cat "$script" "${BASH_SOURCE[0]}" "${IMAGE_INPUTS[@]}" | sha256sum | cut -d' ' -f1)
  if ((!force)) && image_cached; then
    echo "$final"
    exit 0
  fi
  mkdir -p "$cache"
  exec 9>"$cache/.$NAME.lock"
  if ! flock -n 9; then
    echo "$NAME: waiting for another build of $final" >&2
    flock 9
    if ((!force)) && image_cached; then echo "$final"; exit 0; fi
  fi
  log=$cache/$NAME.build.log
  : >"$log"
  started=$SECONDS
  work= phase_name= child=
  trap image_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # Leftovers from builds that were killed hard.
  local stale
  for stale in "$cache/.$NAME".tmp.* "$cache/.$NAME".old.*; do
    [[ -e $stale ]] && image_remove_tree "$stale"
  done
  echo "$NAME: building $final (log: $log)" >&2
}

image_die() { echo "$NAME: error: $*" >&2; exit 1; }

# The cache holds a complete image whose manifest names these inputs.
image_cached() {
  local file
  for file in "${IMAGE_FILES[@]}"; do [[ -s $final/$file ]] || return 1; done
  [[ -f $final/manifest ]] && grep -qxF "inputs=$inputs" "$final/manifest"
}

# Detaches loop devices on files under a directory, unmounts anything mounted under it (a killed build can
# leave proc, sys, dev or a partition mounted), then removes it without crossing into other file systems.
image_remove_tree() {
  local dir=$1 mounts device
  [[ -e $dir ]] || return 0
  mounts=$(awk -v d="$dir/" 'index($2 "/", d) == 1 { print $2 }' /proc/mounts | sort -r)
  if [[ -n $mounts ]]; then
    while read -r m; do umount -l "$m" 2>/dev/null || true; done <<<"$mounts"
  fi
  while read -r device; do
    [[ -n $device ]] && losetup -d "$device" 2>/dev/null || true
  done < <(losetup -nO NAME,BACK-FILE 2>/dev/null | awk -v d="$dir/" 'index($2, d) == 1 { print $1 }')
  rm -rf --one-file-system "$dir"
}

image_cleanup() {
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
    echo "$NAME: error: phase '$phase_name' failed (exit $status)${last:+: $last}; full log: $log" >&2
  fi
  [[ -n $work ]] && image_remove_tree "$work"
  exit "$status"
}

# phase NAME COMMAND...: runs one step with its output in the log; prints "NAME ... ok 12 s" on stderr.
phase() {
  phase_name=$1
  shift
  local t0=$SECONDS
  printf '%s: %-10s ' "$NAME" "$phase_name" >&2
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

# The first $SUITE mirror in /etc/apt/sources.list*, or IONLAB_DEBIAN_MIRROR, or deb.debian.org.
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

# install_tools PACKAGE...: installs the host packages that are missing.
install_tools() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# configure_guest ROOT FSTAB_LINE: what every ionlab guest image has: its own name files, an empty machine id
# (each VM makes its own), ifupdown reading cloud-init's network config, cloud-init limited to the NoCloud
# seed and to modules that work without SSH, no background apt or e2scrub, and no caches.
configure_guest() {
  local root=$1 fstab=$2
  # The bootstrap copies the host's resolv.conf, hostname and hosts: none of them belong in a guest.
  rm -f "$root/etc/resolv.conf" # dhclient writes it from the DHCP lease
  echo ionlab-guest >"$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tionlab-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  printf '# ionlab %s image\n%s\n' "$NAME" "$fstab" >"$root/etc/fstab"
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  if ! grep -qs 'interfaces.d' "$root/etc/network/interfaces"; then
    printf 'source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n' >"$root/etc/network/interfaces"
  fi
  mkdir -p "$root/etc/cloud/cloud.cfg.d"
  cat >"$root/etc/cloud/cloud.cfg.d/90-ionlab.cfg" <<'EOF'
# ionlab guest image (scripts/lib/guest-image.sh). Keep it valid for `cloud-init schema`: a schema error
# prints "Invalid cloud-config provided" on every boot.
# Only the seed ISO (label cidata); no network metadata probes.
datasource_list: [ NoCloud, None ]
# The locale module fails on a minbase system (no locales package) and marks cloud-init as errored.
# A string: the 22.4 schema wants one, and cloud-init reads "false" as false.
locale: "false"
# No SSH server in these images. The `ssh` module would run ssh-keygen, and `ssh_genkeytypes: []` fails the
# schema ("[] is too short"), so `ssh` is left out of the init modules. Left out of the config modules:
# `set-passwords` (warns on every boot that sshd is missing) and `grub-dpkg` (2 s under TCG; a bootloader,
# where there is one, is installed when the image is built). Otherwise these are Debian's lists (cloud-init 22.4).
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
  # Under TCG a background apt run costs minutes of CPU; a guest never updates itself. e2scrub needs LVM,
  # which the images do not have, yet its boot-time reaper takes about 10 s under TCG.
  local unit
  for unit in apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
    e2scrub_all.timer e2scrub_all.service e2scrub_reap.service; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
  done
  # Smaller image: package lists and caches are rebuilt by apt-get update when a guest needs them.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  rm -f "$root"/var/log/*.log "$root"/var/log/apt/* 2>/dev/null || true
}

# install_image OUT MANIFEST_LINE...: writes the manifest (the inputs first, then the given lines), then swaps
# OUT in as the cached image: the old one (if any) is moved aside first, because rename cannot replace a
# non-empty directory.
install_image() {
  local out=$1 file old=
  shift
  {
    echo "# ionlab $NAME image; delete this directory or run the script again with --force to rebuild"
    echo "inputs=$inputs"
    printf '%s\n' "$@"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$out/manifest"
  for file in "${IMAGE_FILES[@]}"; do sync -f "$out/$file"; done
  if [[ -e $final ]]; then
    old=$(mktemp -d "$cache/.$NAME.old.XXXXXX")
    mv "$final" "$old/"
  fi
  mv "$out" "$final"
  [[ -z $old ]] || rm -rf --one-file-system "$old"
}
