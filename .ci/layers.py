#!/usr/bin/env python3
"""The layering rule, checked on every `make test` (`make lint`): each crate of the
workspace may depend only on the crates of the workspace listed for it here, so a
dependency upward or sideways fails the build. The map is docs/architecture.md's."""

import json
import subprocess
import sys

# Crate -> the workspace crates it may depend on (normal, dev and build dependencies).
ALLOWED = {
    "carry-proto": set(),
    "carry-core": {"carry-proto"},
    "carry-endpoint": {"carry-proto"},
    "carry-ffi": {"carry-core"},
    "carry-cli": {"carry-core"},
    "carry-soak": {"carry-proto"},
}

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
for p in problems:
    print(f"layers: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"layers: {len(members)} crates, every dependency inside the workspace as the map allows")
