#!/usr/bin/env bash
# Installs the Debian packages ionlab needs to build and test. Idempotent; quiet when all are present.
set -euo pipefail
packages=(
  libsqlite3-dev pkg-config   # the store (GRDB over SQLite)
  openssh-server openssh-client procps   # the channel benchmark compares against OpenSSH
  libvirt-dev libvirt-daemon-system libvirt-clients   # the libvirt C API and the daemon VMs run under
  qemu-system-x86 qemu-utils   # TCG guests
  xorriso genisoimage   # the seed ISO (xorriso writes it; tests read it back with genisoimage's isoinfo)
  debootstrap e2fsprogs util-linux iproute2   # the test guest image; network namespaces for real-VM runs
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
