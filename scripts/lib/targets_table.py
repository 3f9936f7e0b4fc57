#!/usr/bin/env python3
"""Prints the speed and size table of docs/targets.md from one run's measurements, each row beside its goal
and its anchor (what OpenSSH or the machine does), with PASS or MISS.

  targets_table.py RESULTS.json AGENT_BINARY

RESULTS.json holds what `ionlab-bench channel|scale --results` and scripts/lib/bench-vms.sh wrote. The anchors
measured here: the size of this machine's sshd, and AES-GCM on one core (`openssl speed`).
"""
import json
import os
import re
import subprocess
import sys


def aes_gcm_per_core():
    """GB/s of AES-128-GCM on 16 KiB blocks, one core, or None when openssl cannot say."""
    try:
        out = subprocess.run(["openssl", "speed", "-seconds", "1", "-bytes", "16384", "-evp", "aes-128-gcm"],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = next((l for l in out.splitlines() if l.lower().startswith("aes-128-gcm")), "")
    numbers = re.findall(r"([\d.]+)k", line)
    return float(numbers[-1]) * 1000 / 1e9 if numbers else None


def main(path, agent):
    r = json.load(open(path))
    mib = 1024 * 1024
    sshd = os.path.getsize("/usr/sbin/sshd") / 1e6 if os.path.exists("/usr/sbin/sshd") else None
    aes = aes_gcm_per_core()
    fmt = lambda value, unit, digits=1: "-" if value is None else f"{value:.{digits}f} {unit}"
    rows = [
        # (what, now, goal text, passes, anchor)
        ("agent binary, stripped", fmt(os.path.getsize(agent) / 1e6, "MB"), "≤ 15 MB", os.path.getsize(agent) / 1e6 <= 15,
         fmt(sshd, "MB (sshd)")),
        ("agent idle RSS in the guest", fmt(r.get("agent_rss_kb", 0) / 1000, "MB"), "≤ 12 MB", r.get("agent_rss_kb", 1e9) / 1000 <= 12,
         # Most of it is the binary's own pages, mapped from the page cache (shared, clean, reclaimable); the
         # anonymous part is what the agent allocates.
         fmt(r.get("agent_rss_anon_kb", 0) / 1000 if "agent_rss_anon_kb" in r else None, "MB of it anonymous")),
        ("`vm create` → ready under TCG, median of 3", fmt(r.get("vm_create_median_seconds"), "s"), "≤ 35 s",
         r.get("vm_create_median_seconds", 1e9) <= 35, ", ".join(f"{v:.1f}" for v in r.get("vm_create_seconds", [])) + " s"),
        ("2-VM demo, `up` → verified", fmt(r.get("demo_up_seconds"), "s"), "≤ 60 s", r.get("demo_up_seconds", 1e9) <= 60,
         fmt(r.get("demo_wall_seconds"), "s whole `ionlab demo`")),
        ("`ionlab exec VM -- true` from a shell", fmt(r.get("cli_exec_ms"), "ms", 2), "≤ 7 ms", r.get("cli_exec_ms", 1e9) <= 7,
         fmt(r.get("ssh_master_ms"), "ms ssh ControlMaster", 2) + "; " + fmt(r.get("cli_help_ms"), "ms `ionlab --help`", 2)),
        ("exec over an open channel", fmt(r.get("channel_exec_ms"), "ms", 2), "≤ 2.5 ms", r.get("channel_exec_ms", 1e9) <= 2.5,
         fmt(r.get("ssh_master_ms"), "ms ControlMaster", 2)),
        ("`cp` up", fmt(r.get("cp_up_mib_s"), "MiB/s", 0), "≥ 1024 MiB/s", r.get("cp_up_mib_s", 0) >= 1024,
         fmt(r.get("scp_up_mib_s"), "MiB/s scp", 0) + "; " + fmt(aes, "GB/s AES-GCM a core")),
        ("`cp` down", fmt(r.get("cp_down_mib_s"), "MiB/s", 0), "≥ 1024 MiB/s", r.get("cp_down_mib_s", 0) >= 1024,
         fmt(r.get("scp_down_mib_s"), "MiB/s scp", 0)),
        (f"memory per connected agent ({r.get('agents', 0):,.0f})", fmt(r.get("per_agent_kb"), "KB"), "≤ 50 KB",
         r.get("per_agent_kb", 1e9) <= 50, "-"),
        (f"fan-out of `true` to {r.get('fanout_targets', 0):,.0f} agents, median", fmt(r.get("fanout_median_s"), "s", 2), "< 2 s",
         r.get("fanout_median_s", 1e9) < 2 and r.get("fanout_failed", 1) == 0, "-"),
    ]
    widths = [max(len(row[i]) for row in rows + [("measure", "now", "goal", True, "anchor")]) for i in (0, 1, 2, 4)]
    header = ("measure", "now", "goal", "anchor")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  verdict")
    for what, now, goal, passes, anchor in rows:
        print("  ".join(v.ljust(w) for v, w in zip((what, now, goal, anchor), widths)) + ("  PASS" if passes else "  MISS"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: targets_table.py RESULTS.json AGENT_BINARY")
    main(sys.argv[1], sys.argv[2])
