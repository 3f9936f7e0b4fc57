#!/bin/sh
# Installs the ionlab agent from the mounted cloud-init seed ISO and starts it.
#   install-agent.sh SEED_DIR    (run as root by the bootcmd in user-data, once per instance)
# The seed holds ionlab-agent (the binary), agent.json (config with a secret token) and ionlab-agent.service.
# Safe to run again: files are replaced atomically and a running agent is restarted.
set -eu
seed=${1:?usage: install-agent.sh SEED_DIR}
for file in ionlab-agent agent.json ionlab-agent.service; do
  if [ ! -s "$seed/$file" ]; then
    echo "install-agent: missing $seed/$file" >&2
    exit 1
  fi
done
umask 077

install -d -m 0755 /usr/local/bin
install -m 0755 "$seed/ionlab-agent" /usr/local/bin/.ionlab-agent.new
mv -f /usr/local/bin/.ionlab-agent.new /usr/local/bin/ionlab-agent

# The config holds the enrollment token: root only.
install -d -m 0700 /etc/ionlab
install -m 0600 "$seed/agent.json" /etc/ionlab/.agent.json.new
mv -f /etc/ionlab/.agent.json.new /etc/ionlab/agent.json

unit=/etc/systemd/system/ionlab-agent.service
reinstall=false
[ -e "$unit" ] && reinstall=true
install -m 0644 "$seed/ionlab-agent.service" "$unit"
# --no-block: this runs inside cloud-init's network stage, part of the boot transaction. Each systemctl call
# that reloads systemd costs seconds under TCG, so a first install is a single call (enable reloads).
if $reinstall; then
  systemctl daemon-reload
  systemctl enable ionlab-agent.service
  systemctl restart --no-block ionlab-agent.service
else
  systemctl enable --now --no-block ionlab-agent.service
fi
echo "install-agent: installed /usr/local/bin/ionlab-agent ($(wc -c </usr/local/bin/ionlab-agent) bytes), service started"
