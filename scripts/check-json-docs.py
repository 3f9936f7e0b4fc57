#!/usr/bin/env python3
"""Checks that docs/json.md describes every command that has a `--json` flag.

Reads the commands from the binaries themselves (`--experimental-dump-help`, swift-argument-parser's
description of a command tree) and looks in docs/json.md for each as it is typed: `ionlab vm snapshot list`.
ionlab-controller's commands are typed through ionlab (`ionlab backends`). Prints one line per command the
page lacks and exits 1, or a line saying the page covers them all.

  scripts/check-json-docs.py [BIN_DIR]     (default: the debug build)
"""
import json
import os
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DOC = os.path.join(ROOT, "docs", "json.md")


def json_commands(binary):
    """The command paths under `binary` that take --json, as a user types them."""
    dump = json.loads(subprocess.run([binary, "--experimental-dump-help"], capture_output=True, text=True, check=True).stdout)
    found = []

    def walk(command, path):
        path = path + [command["commandName"]]
        names = [name.get("name") for argument in command.get("arguments", []) for name in argument.get("names", [])]
        if "json" in names:
            found.append(" ".join(["ionlab"] + path[1:]))
        for sub in command.get("subcommands", []):
            walk(sub, path)

    walk(dump["command"], [])
    return found


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else subprocess.run(
        ["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    with open(DOC, encoding="utf-8") as file:
        page = file.read()
    commands = sorted({c for binary in ("ionlab", "ionlab-controller") for c in json_commands(os.path.join(bin_dir, binary))})
    missing = [c for c in commands if f"`{c} " not in page and f"`{c}`" not in page]
    for command in missing:
        print(f"check-json-docs: `{command} --json` is not described in docs/json.md")
    if missing:
        sys.exit(1)
    print(f"check-json-docs: docs/json.md describes all {len(commands)} commands with --json")


if __name__ == "__main__":
    main()
