#!/usr/bin/env python3
"""Checks the targets table of docs/ARCHITECTURE.md against Package.swift.

Runs `swift package dump-package` in the repository root (it reads the manifest; it builds nothing) and
compares, for every target, the in-package targets it depends on with the table between the lines
`<!-- targets -->` and `<!-- /targets -->`: the target's name in the first column, its kind in the second,
its imports in the third (backquoted names separated by commas, in Package.swift's order, `—` for none).
Products of other packages are not part of the table. Every relative link on the page must lead to a file of
the repository.

It checks that every target declares what it imports: each `import X` in a target's Swift files names a target
or a product it depends on in Package.swift, or a module of the toolchain (Foundation, Glibc, Testing, …). A
debug build finds modules a target did not declare through the targets it depends on; a release build does not.

It also keeps the agent small: no target the agent links (`ionlab-agent` and what it imports, transitively)
may import the whole of Foundation (it brings ICU, 34 MB), only FoundationEssentials, and none may use Yams.

Prints one line per difference and exits 1, or prints a line saying the page matches and exits 0. Exits 2
when it cannot run (no swift, no page, no table).
    scripts/check-architecture.py
"""
import json
import re
import os
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DOC = os.path.join(ROOT, "docs", "ARCHITECTURE.md")
DOC_NAME = "docs/ARCHITECTURE.md"
BEGIN, END = "<!-- targets -->", "<!-- /targets -->"
NONE = "—"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def fail_to_run(message):
    print(f"check-architecture: {message}", file=sys.stderr)
    sys.exit(2)


def dump_package():
    try:
        done = subprocess.run(["swift", "package", "dump-package"], cwd=ROOT, capture_output=True, text=True)
    except FileNotFoundError:
        fail_to_run("swift is not on PATH")
    if done.returncode != 0:
        fail_to_run(f"swift package dump-package failed: {done.stderr.strip()}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as error:
        fail_to_run(f"swift package dump-package printed no JSON: {error}")


def dependency_name(entry):
    """The name a dependency entry refers to, for entries that may name a target of this package."""
    for kind in ("byName", "target"):
        if kind in entry:
            return entry[kind][0]
    return None  # {"product": ...}: another package's product


def kind_of(target):
    """The kind as the table writes it."""
    kind = target.get("type")
    if kind == "system":
        return "system library"
    if kind == "executable":
        return "executable"
    if kind == "test":
        return "test"
    if kind == "regular":
        path = os.path.join(ROOT, target.get("path") or os.path.join("Sources", target["name"]))
        swift, c = False, False
        for _, _, files in os.walk(path):
            for name in files:
                swift |= name.endswith(".swift")
                c |= name.endswith((".c", ".cc", ".cpp", ".m", ".mm"))
        return "C library" if c and not swift else "library"
    return kind or "?"


def package_targets(package):
    """target name -> (kind, [in-package target dependencies, in declaration order])."""
    names = {target["name"] for target in package["targets"]}
    result = {}
    for target in package["targets"]:
        deps = [dependency_name(entry) for entry in target.get("dependencies", [])]
        result[target["name"]] = (kind_of(target), [name for name in deps if name in names])
    return result


def split_row(line):
    """The cells of a Markdown table row (a `\\|` inside a cell is not a separator)."""
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    cells, cell, escaped = [], "", False
    for char in text:
        if escaped:
            cell += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
    cells.append(cell.strip())
    return cells


def clean(name):
    return name.replace("`", "").strip()


def documented_targets(text, problems):
    """target name -> (kind, [imports]) from the table, reporting rows it cannot read into `problems`."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
        end = next(i for i, line in enumerate(lines) if line.strip() == END and i > start)
    except StopIteration:
        fail_to_run(f"{DOC_NAME} has no table between the lines {BEGIN} and {END}")
    table = {}
    for number, line in enumerate(lines[start + 1:end], start=start + 2):
        if not line.strip():
            continue
        if not line.lstrip().startswith("|"):
            problems.append(f"{DOC_NAME}:{number}: not a table row inside the targets table")
            continue
        cells = split_row(line)
        if all(set(cell) <= set("-: ") for cell in cells):
            continue  # the separator row
        if clean(cells[0]) == "Target":
            continue  # the header row
        if len(cells) < 3:
            problems.append(f"{DOC_NAME}:{number}: a row needs at least 3 columns (target, kind, imports)")
            continue
        name, kind, imports = clean(cells[0]), cells[1].strip(), cells[2].strip()
        if name in table:
            problems.append(f"{DOC_NAME}:{number}: target {name} has a second row")
            continue
        if imports == NONE:
            names = []
        elif not imports:
            problems.append(f"{DOC_NAME}:{number}: {name}: the imports column is empty (write {NONE} for none)")
            names = []
        else:
            names = [clean(part) for part in imports.split(",")]
            if any(not part for part in names):
                problems.append(f"{DOC_NAME}:{number}: {name}: an empty name in the imports column")
                names = [part for part in names if part]
        table[name] = (kind, names)
    if not table:
        fail_to_run(f"{DOC_NAME}: the targets table has no rows")
    return table


def compare(package, documented, problems):
    for name, (kind, deps) in package.items():
        if name not in documented:
            problems.append(f"{name}: in Package.swift, missing from {DOC_NAME}")
            continue
        doc_kind, doc_deps = documented[name]
        if doc_kind != kind:
            problems.append(f"{name}: kind is '{doc_kind}' in {DOC_NAME}, '{kind}' in Package.swift")
        missing = [dep for dep in deps if dep not in doc_deps]
        extra = [dep for dep in doc_deps if dep not in deps]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if extra:
                parts.append("extra " + ", ".join(extra))
            problems.append(f"{name}: imports differ from Package.swift: {'; '.join(parts)}")
        elif doc_deps != deps:
            if len(set(doc_deps)) != len(doc_deps):
                problems.append(f"{name}: an import is listed twice in {DOC_NAME}")
            else:
                problems.append(f"{name}: imports are in another order than Package.swift's: {', '.join(deps)}")
    for name in documented:
        if name not in package:
            problems.append(f"{name}: in {DOC_NAME}, not a target in Package.swift")


AGENT = "ionlab-agent"
FULL_FOUNDATION = re.compile(r"^\s*(?:@preconcurrency\s+|internal\s+|public\s+|@_exported\s+)*import\s+Foundation\s*$")
AGENT_FORBIDDEN_PRODUCTS = {"Yams"}


def agent_closure(package_json):
    """The in-package targets the agent links, with their JSON entries."""
    by_name = {target["name"]: target for target in package_json["targets"]}
    seen, todo = {}, [AGENT]
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen[name] = by_name[name]
        todo += [dep for dep in map(dependency_name, by_name[name].get("dependencies", [])) if dep]
    return seen


def swift_sources(target):
    """Each Swift file of a target, in a stable order: its path and its lines."""
    path = os.path.join(ROOT, target.get("path") or os.path.join("Tests" if target.get("type") == "test" else "Sources", target["name"]))
    for folder, folders, files in os.walk(path):
        folders.sort()
        for file in sorted(files):
            if file.endswith(".swift"):
                full = os.path.join(folder, file)
                with open(full, encoding="utf-8") as handle:
                    yield full, handle.read().splitlines()


def check_agent_imports(package_json, problems):
    for name, target in sorted(agent_closure(package_json).items()):
        for entry in target.get("dependencies", []):
            product = entry.get("product")
            if product and product[0] in AGENT_FORBIDDEN_PRODUCTS:
                problems.append(f"{name}: the agent links it, so it may not depend on {product[0]}")
        for full, lines in swift_sources(target):
            for number, line in enumerate(lines, start=1):
                if not FULL_FOUNDATION.match(line):
                    continue
                # Allowed only as the fallback of `#if canImport(FoundationEssentials) import FoundationEssentials #else`.
                before = [text.strip() for text in lines[max(0, number - 3):number - 1]]
                if before != ["import FoundationEssentials", "#else"]:
                    problems.append(f"{os.path.relpath(full, ROOT)}:{number}: the agent links {name}: "
                                    "import FoundationEssentials (Foundation brings ICU)")


# Modules the toolchain brings: no Package.swift entry declares them.
TOOLCHAIN_MODULES = {"Foundation", "FoundationEssentials", "FoundationXML", "FoundationNetworking", "Glibc", "Musl", "Darwin",
                     "Dispatch", "Synchronization", "Testing", "XCTest", "_Concurrency", "os"}
IMPORT = re.compile(r"^\s*(?:@[A-Za-z_]+(?:\([^)]*\))?\s+)*(?:public\s+|internal\s+|private\s+|fileprivate\s+|package\s+)?import\s+"
                    r"(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?([A-Za-z_][A-Za-z0-9_]*)")


def check_declared_imports(package_json, problems):
    for target in package_json["targets"]:
        declared = set(TOOLCHAIN_MODULES)
        for entry in target.get("dependencies", []):
            for kind in ("byName", "target", "product"):
                if kind in entry:
                    declared.add(entry[kind][0].replace("-", "_"))
        for full, lines in swift_sources(target):
            for number, line in enumerate(lines, start=1):
                text = line.strip()
                match = IMPORT.match(line)
                if not match:
                    # Imports come first in a Swift file: past them, an "import" is in code or in a string.
                    if text and not text.startswith(("//", "/*", "*", "#if", "#else", "#elseif", "#endif")):
                        break
                    continue
                if match.group(1) not in declared and match.group(1) != target["name"].replace("-", "_"):
                    problems.append(f"{os.path.relpath(full, ROOT)}:{number}: {target['name']} imports {match.group(1)}, "
                                    "which its Package.swift entry does not declare")


def main():
    try:
        with open(DOC, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        fail_to_run(f"cannot read {DOC_NAME}: {error.strerror}")
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        for target in LINK.findall(line):
            if "://" in target:
                continue
            if not os.path.exists(os.path.join(os.path.dirname(DOC), target)):
                problems.append(f"{DOC_NAME}:{number}: the link {target} leads to no file of the repository")
    documented = documented_targets(text, problems)
    package_json = dump_package()
    package = package_targets(package_json)
    compare(package, documented, problems)
    check_agent_imports(package_json, problems)
    check_declared_imports(package_json, problems)
    if problems:
        for problem in problems:
            print(f"check-architecture: {problem}")
        sys.exit(1)
    print(f"check-architecture: {DOC_NAME} matches Package.swift ({len(package)} targets)")


if __name__ == "__main__":
    main()
