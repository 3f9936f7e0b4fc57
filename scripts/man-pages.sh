#!/usr/bin/env bash
# The manual pages in docs/man (ionlab.1, ionlab-controller.1, ionlab-agent.1), written from the commands
# themselves by swift-argument-parser's generate-manual, so they say what `--help` says.
#   scripts/man-pages.sh           rewrite docs/man from the debug binaries (built if missing)
#   scripts/man-pages.sh --check   fail, naming the page, if a committed page differs from what the
#                                  commands give now (the date line aside); scripts/test.sh runs this
# The tool is built from the swift-argument-parser checkout into .build/generate-manual (about a minute the
# first time). Install a page with `install -m 0644 docs/man/ionlab.1 /usr/local/share/man/man1/`.
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
case ${1:-} in
  --check) check=true ;;
  "") ;;
  *) echo "usage: scripts/man-pages.sh [--check]" >&2; exit 2 ;;
esac
commands=(ionlab ionlab-controller ionlab-agent)

swift package resolve >/dev/null
parser=$(swift package show-dependencies --format json | python3 -c '
import json, sys
def find(node):
    for dependency in node.get("dependencies", []):
        if dependency["identity"] == "swift-argument-parser":
            return dependency["path"]
        found = find(dependency)
        if found:
            return found
print(find(json.load(sys.stdin)) or "")')
[[ -n $parser ]] || { echo "man-pages: swift-argument-parser is not among the dependencies" >&2; exit 1; }
swift build --package-path "$parser" --scratch-path .build/generate-manual --product generate-manual >/dev/null
tool=$(swift build --package-path "$parser" --scratch-path .build/generate-manual --show-bin-path)/generate-manual
for command in "${commands[@]}"; do swift build --product "$command" >/dev/null; done
bin=$(swift build --show-bin-path)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The date is the last commit's, so the pages change only when the commands do.
date=$(git log -1 --format=%cs 2>/dev/null || date +%F)
for command in "${commands[@]}"; do
  "$tool" "$bin/$command" --date "$date" --output-directory "$out"
done

if ! $check; then
  mkdir -p docs/man
  for command in "${commands[@]}"; do install -m 0644 "$out/$command.1" "docs/man/$command.1"; done
  echo "man-pages: wrote docs/man/{$(IFS=,; echo "${commands[*]}")}.1"
  exit 0
fi
stale=0
for command in "${commands[@]}"; do
  page=docs/man/$command.1
  if [[ ! -f $page ]]; then
    echo "man-pages: $page is missing: run scripts/man-pages.sh" >&2
    stale=1
  elif ! diff -q <(grep -v '^\.Dd ' "$page") <(grep -v '^\.Dd ' "$out/$command.1") >/dev/null; then
    echo "man-pages: $page differs from what $command's commands say now: run scripts/man-pages.sh" >&2
    diff <(grep -v '^\.Dd ' "$page") <(grep -v '^\.Dd ' "$out/$command.1") | head -20 >&2 || true
    stale=1
  fi
done
[[ $stale == 0 ]] && echo "man-pages: docs/man matches the commands (${#commands[@]} pages)"
exit $stale
