#!/usr/bin/env bash
# Builds the STAND-IN RustDesk package for tests and the local demo: the real .deb cannot be downloaded here.
# It is named as a stand-in everywhere (file name, version, description). It installs what ionlab's RustDesk
# step touches, answering like the real one: /usr/bin/rustdesk with --get-id (only once its service has
# "registered"), --password, --option and --version, and a rustdesk.service unit that postinst starts.
#   scripts/build-standin-rustdesk.sh [OUT_DIR]    -> OUT_DIR/rustdesk-STANDIN_0.0.0-standin_all.deb
set -euo pipefail
out=${1:-$(dirname "$0")/../.build/standin}
mkdir -p "$out"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system"

cat >"$root/DEBIAN/control" <<'CONTROL'
Package: rustdesk
Version: 0.0.0-standin
Architecture: all
Maintainer: ionlab tests <ionlab@localhost>
Description: STAND-IN for RustDesk, built by ionlab's tests; not RustDesk
 Answers --get-id, --password, --option and --version the way RustDesk does, and runs a rustdesk
 service that "registers" two seconds after it starts. It connects to nothing.
CONTROL

cat >"$root/usr/bin/rustdesk" <<'RUSTDESK'
#!/bin/sh
# STAND-IN for RustDesk (ionlab tests): see the package description.
state=/run/rustdesk-standin
config=/root/.config/rustdesk
case "$1" in
  --version) echo "0.0.0-standin" ;;
  --get-id)
    # Like RustDesk: no ID until the service has registered with the rendezvous server.
    [ -e "$state/registered" ] || exit 0
    echo $(( $(cksum </etc/machine-id | cut -d' ' -f1) % 900000000 + 100000000 )) ;;
  --password)
    [ "$(id -u)" = 0 ] || { echo "Administrative privileges required" >&2; exit 1; }
    [ -n "$2" ] || { echo "missing password" >&2; exit 1; }
    mkdir -p "$config"
    printf "password = '%s'\n" "$(printf %s "$2" | sha256sum | cut -d' ' -f1)" >"$config/RustDesk.toml"
    echo "Done!" ;;
  --option)
    [ "$(id -u)" = 0 ] || { echo "Administrative privileges required" >&2; exit 1; }
    mkdir -p "$config"
    printf "%s = '%s'\n" "$2" "$3" >>"$config/RustDesk2.toml" ;;
  --service)
    mkdir -p "$state"
    sleep 2
    touch "$state/registered"
    exec sleep infinity ;;
  *) echo "rustdesk STAND-IN: unsupported arguments: $*" >&2; exit 2 ;;
esac
RUSTDESK
chmod 755 "$root/usr/bin/rustdesk"

cat >"$root/lib/systemd/system/rustdesk.service" <<'UNIT'
[Unit]
Description=RustDesk (STAND-IN built by ionlab tests)
After=network.target

[Service]
ExecStart=/usr/bin/rustdesk --service
ExecStopPost=/bin/rm -f /run/rustdesk-standin/registered
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT

cat >"$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now rustdesk.service
fi
POSTINST
cat >"$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl disable --now rustdesk.service || true; fi
PRERM
chmod 755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm"

deb="$out/rustdesk-STANDIN_0.0.0-standin_all.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
