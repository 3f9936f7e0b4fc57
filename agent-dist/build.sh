#!/usr/bin/env bash
# Builds the agent bundle that ionlab puts on every VM's seed ISO, in agent-dist/out:
#   ionlab-agent          release build, size-optimised, Swift stdlib and FoundationEssentials linked
#                         statically, dead-stripped, no exported symbols, packed relocations, stripped
#   ionlab-agent.service  the systemd unit (agent-dist/systemd)
#   install-agent.sh      installs the binary, config and unit from the seed (agent-dist/cloud-init)
#   user-data             the small #cloud-config that runs it (agent-dist/cloud-init)
# The controller finds this directory by itself from a checkout, or takes `agent_bundle:` from its config.
set -euo pipefail
cd "$(dirname "$0")/.."
out=agent-dist/out
# Its own scratch directory: its flags differ from every other build's, which would otherwise rebuild each other.
flags=(-c release --product ionlab-agent --static-swift-stdlib --scratch-path .build/agent
       -Xswiftc -Osize                                      # Swift code only; BoringSSL's C keeps its speed
       -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs
       -Xlinker "--version-script=$PWD/agent-dist/local-symbols.map")
swift build "${flags[@]}" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' || true
binary=$(swift build "${flags[@]}" --show-bin-path)/ionlab-agent
[[ -x "$binary" ]] || { echo "agent-dist: release build failed" >&2; exit 1; }
mkdir -p "$out"
strip -o "$out/.ionlab-agent.new" "$binary"
mv -f "$out/.ionlab-agent.new" "$out/ionlab-agent"
install -m 0644 agent-dist/systemd/ionlab-agent.service "$out/ionlab-agent.service"
install -m 0755 agent-dist/cloud-init/install-agent.sh "$out/install-agent.sh"
install -m 0644 agent-dist/cloud-init/user-data "$out/user-data"
echo "agent-dist: $out/ionlab-agent $(du -h "$out/ionlab-agent" | cut -f1) (stripped, static Swift stdlib, no Foundation)"
