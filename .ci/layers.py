#!/usr/bin/env python3
"""The layering rule, checked on every `make test` (`make lint`): each crate of the
workspace may depend only on the crates of the workspace listed for it here, and each
top-level module of the core may refer (`crate::…`) only to the modules listed before
it in the core's map, and never to another feature, so a dependency upward or
sideways fails the build. Only test
code is exempt. The maps are docs/architecture.md's."""

import json
import os
import re
import subprocess
import sys

# Crate -> the workspace crates it may depend on (normal, dev and build dependencies).
ALLOWED = {
    "carry-proto": set(),
    "carry-base": {"carry-proto"},
    "carry-core": {"carry-base", "carry-proto"},
    "carry-endpoint": {"carry-proto"},
    "carry-ffi": {"carry-core"},
    "carry-cli": {"carry-core"},
    "carry-soak": {"carry-proto"},
}

# The core's top-level modules, bottom to top, by layer. A module may refer to the ones
# before it; a new module must be placed here.
CORE_LAYERS = [
    # The carry-base crate, which the core re-exports under these names: the compiler
    # holds it to referring to nothing above it.
    ("base", ["files", "private_file", "text", "time", "error", "keys", "qr", "record", "crypto"]),
    ("the vault and the record in it", ["vault", "store", "audit", "readings", "outbox", "trend", "query", "scope", "export", "import", "mend", "contacts", "documents"]),
    ("the handle apps hold", ["profile"]),
    ("the person's settings", ["prefs"]),
    ("network plumbing", ["net"]),
    ("features", ["sync", "share", "links", "backup"]),
    ("the person's devices, which keep grants, keys and backups in step", ["devices"]),
    ("flows that span features", ["restore", "exchange", "stop_sharing"]),
]
# Layers whose modules stand side by side: none of them may refer to another.
APART = {"features"}
# Test-only modules, free to use anything.
CORE_TEST_ONLY = {"lib", "test_support", "fuzzing"}


def core_problems(src):
    """References from a core module to one not before it in CORE_LAYERS."""
    order = [m for _, mods in CORE_LAYERS for m in mods]
    rank = {m: i for i, m in enumerate(order)}
    layer_of = {m: name for name, mods in CORE_LAYERS for m in mods}
    found = []
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            if top in CORE_TEST_ONLY or f == "tests.rs":
                continue
            if top not in rank:
                found.append(f"core/src/{rel}: module {top} is not in the core's layer map")
                continue
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            # Unit tests at the end of a file may use anything.
            text = re.split(r"#\[cfg\(test\)\]\s*mod tests \{", text)[0]
            for target in sorted(set(re.findall(r"crate::([a-z_]+)", text))):
                if target == top or target not in rank:
                    continue
                if rank[target] > rank[top]:
                    found.append(f"core/src/{rel}: {top} refers to {target}, which is above it")
                elif layer_of[top] == layer_of[target] and layer_of[top] in APART:
                    found.append(
                        f"core/src/{rel}: {top} refers to {target}, beside it among the {layer_of[top]}"
                    )
    return found


meta = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
members = {p["name"]: p for p in meta["packages"]}
problems = []
for name, package in sorted(members.items()):
    if name not in ALLOWED:
        problems.append(f"{name} is not in the layer map (.ci/layers.py, docs/architecture.md)")
        continue
    for dep in package["dependencies"]:
        if dep["name"] in members and dep["name"] not in ALLOWED[name]:
            kind = dep.get("kind") or "normal"
            problems.append(f"{name} depends on {dep['name']} ({kind}): not allowed by the layer map")
problems += core_problems(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core", "src"))
for p in problems:
    print(f"layers: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
modules = sum(len(m) for _, m in CORE_LAYERS)
print(
    f"layers: {len(members)} crates and the core's {modules} modules, every dependency as the maps allow"
)
