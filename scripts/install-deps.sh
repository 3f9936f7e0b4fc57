#!/usr/bin/env bash
# Installs the Debian packages ionlab needs to build and test. Idempotent; quiet when all are present.
set -euo pipefail
packages=(
  libsqlite3-dev pkg-config   # the store (GRDB over SQLite)
  openssh-server openssh-client procps   # the channel benchmark compares against OpenSSH
  libvirt-dev libvirt-daemon-system libvirt-clients   # the libvirt C API and the daemon VMs run under
  libpng-dev                                         # screenshots written as PNG
  nettle-dev   # the DES of RFB's VNC Authentication
  tigervnc-standalone-server tigervnc-tools   # a real VNC server with a password, for the RFB client's tests
  qemu-system-x86 qemu-utils   # TCG guests
  xorriso genisoimage   # the seed ISO (xorriso writes it; tests read it back with genisoimage's isoinfo)
  debootstrap e2fsprogs util-linux iproute2   # the test guest image; network namespaces for real-VM runs
  mmdebstrap fdisk   # the desktop guest image (a partitioned disk)
  python3-venv python3-pip   # vncdotool, the independent VNC client the real-VM test checks the desktop with
  binutils bc   # strip for the agent bundle; phase timings in the scripts
  python3 curl dbus-daemon systemd   # step tests on loopback: an HTTP server and downloads, a private D-Bus, busctl
  shellcheck   # the guest scripts are checked in the test command
  zsh fish   # ionlab's shell completions are tried in each shell
  python3-prometheus-client   # Prometheus' own parser reads /metrics in the tests
  chromium chromium-driver   # a real headless browser loads the dashboard in the tests (through selenium)
  tesseract-ocr tesseract-ocr-eng   # the controller reads the text on VMs' screens (OCR, on the host)
  apngasm   # the controller keeps a session's frames as one animated PNG
  python3-pil fonts-dejavu-core   # the scripted VNC server of the tests draws what is typed in a real font
  python3-dbus python3-gi   # the scripted portal frontend of the tests, and the portal-session script run on this host
  libsystemd-dev libxkbcommon-dev   # the desktop portal FIXTURE is built and tried on this host too
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No daemon may start on the host during the install: libvirtd runs only inside scripts/in-netns.sh.
  added_policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ -n $added_policy ]]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# Never autostart libvirt's NAT network (it would create a bridge).
rm -f /etc/libvirt/qemu/networks/autostart/default.xml
# vncdotool from PyPI, in a venv of its own, for the real-VM test's independent VNC viewer.
readonly VNCDOTOOL=/opt/ionlab-tools/vncdotool
if [[ ! -x $VNCDOTOOL/bin/vncdo ]]; then
  echo "installing vncdotool 1.4.2 (PyPI) into $VNCDOTOOL"
  /usr/bin/python3 -m venv "$VNCDOTOOL"
  "$VNCDOTOOL/bin/pip" install -q vncdotool==1.4.2
fi
# selenium from PyPI, in a venv of its own, drives the headless chromium that tests the dashboard.
readonly SELENIUM=/opt/ionlab-tools/selenium
if ! "$SELENIUM/bin/python" -c 'import selenium' 2>/dev/null; then
  echo "installing selenium 4.38.0 (PyPI) into $SELENIUM"
  /usr/bin/python3 -m venv "$SELENIUM"
  "$SELENIUM/bin/pip" install -q selenium==4.38.0
fi
