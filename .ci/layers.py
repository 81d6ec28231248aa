#!/usr/bin/env python3
"""The layering rule, checked on every `make test` (`make lint`): each crate of the
workspace may depend only on the crates of the workspace listed for it here, and each
top-level module of the core and of the endpoint may refer (`crate::…`) only to the
modules listed before it in its map, and never to one beside it in a layer whose
modules stand apart, so a dependency upward or sideways fails the build. Test code
and comments are exempt. The maps are docs/architecture.md's."""

import json
import os
import re
import subprocess
import sys

# Crate -> the workspace crates it may depend on (normal, dev and build dependencies).
ALLOWED = {
    "carry-proto": set(),
    "carry-base": {"carry-proto"},
    "carry-vault": {"carry-base", "carry-stu3"},
    "carry-net": {"carry-base", "carry-proto"},
    "carry-profile": {"carry-base", "carry-vault"},
    # The features: each over the layers below, never over another feature.
    "carry-sync": {"carry-base", "carry-vault", "carry-net", "carry-profile", "carry-proto"},
    "carry-links": {"carry-base", "carry-vault", "carry-net", "carry-profile", "carry-proto"},
    "carry-share": {"carry-base", "carry-vault", "carry-net", "carry-profile", "carry-proto"},
    "carry-backup": {"carry-base", "carry-vault", "carry-net", "carry-profile", "carry-proto"},
    "carry-core": {
        "carry-base",
        "carry-vault",
        "carry-net",
        "carry-profile",
        "carry-proto",
        "carry-sync",
        "carry-links",
        "carry-share",
        "carry-backup",
    },
    "carry-endpoint": {"carry-proto"},
    "carry-ffi": {"carry-core"},
    "carry-cli": {"carry-core"},
    "carry-soak": {"carry-proto"},
    "carry-stu3": set(),
}

# The core's top-level modules, bottom to top, by layer. A module may refer to the ones
# before it; a new module must be placed here.
CORE_LAYERS = [
    # The carry-base crate, which the core re-exports under these names: the compiler
    # holds it to referring to nothing above it.
    ("base", ["files", "private_file", "text", "time", "error", "keys", "qr", "record", "crypto"]),
    # The carry-vault crate, re-exported the same way.
    ("the vault and the record in it", ["vault", "store", "audit", "readings", "outbox", "trend", "query", "scope", "export", "import", "mend", "contacts", "documents"]),
    # The carry-profile crate (with prefs), re-exported the same way.
    ("the handle apps hold", ["profile"]),
    ("the person's settings", ["prefs"]),
    # The carry-net crate, re-exported as net.
    ("network plumbing", ["net"]),
    # The features are crates of their own (carry-sync, carry-share, carry-links,
    # carry-backup), re-exported the same way: the compiler keeps each off the others.
    ("features", ["sync", "share", "links", "backup"]),
    ("the person's devices, which keep grants, keys and backups in step", ["devices"]),
    ("flows that span features", ["restore", "exchange", "stop_sharing"]),
]
# Layers whose modules stand side by side: none of them may refer to another.
APART = {"features"}

# The endpoint's top-level modules, bottom to top: the services over what they share,
# storage (which implements every service's store trait) over the services. lib.rs
# assembles them and is exempt.
ENDPOINT_LAYERS = [
    ("shared", ["error", "time", "http"]),
    ("services", ["fhir", "relay", "nhs_login"]),
    ("services signed in through the relay", ["links", "backup"]),
    ("services signed in through NHS login", ["gp_connect"]),
    ("the backends", ["storage"]),
]
ENDPOINT_APART = {"services", "services signed in through the relay"}
# Test-only modules, free to use anything.
CORE_TEST_ONLY = {"lib", "test_support", "tests", "fuzzing"}


def core_problems(src, layers=None, apart=None, exempt=None, prefix="core/src"):
    """References from a module to one not before it in its layer map (the core's by
    default), or to one beside it in a layer whose modules stand apart. Comments are
    not references."""
    layers = CORE_LAYERS if layers is None else layers
    apart = APART if apart is None else apart
    exempt = CORE_TEST_ONLY if exempt is None else exempt
    order = [m for _, mods in layers for m in mods]
    rank = {m: i for i, m in enumerate(order)}
    layer_of = {m: name for name, mods in layers for m in mods}
    found = []
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            if top in exempt or f == "tests.rs":
                continue
            if top not in rank:
                found.append(f"{prefix}/{rel}: module {top} is not in its layer map")
                continue
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            # Unit tests at the end of a file may use anything.
            text = re.split(r"#\[cfg\(test\)\]\s*mod tests \{", text)[0]
            text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
            for target in sorted(set(re.findall(r"crate::([a-z_]+)", text))):
                if target == top or target not in rank:
                    continue
                if rank[target] > rank[top]:
                    found.append(f"{prefix}/{rel}: {top} refers to {target}, which is above it")
                elif layer_of[top] == layer_of[target] and layer_of[top] in apart:
                    found.append(
                        f"{prefix}/{rel}: {top} refers to {target}, beside it among the {layer_of[top]}"
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
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
problems += core_problems(os.path.join(root, "core", "src"))
# The vault layer is the carry-vault crate: within it, the same order holds.
problems += core_problems(
    os.path.join(root, "crates", "carry-vault", "src"), exempt={"lib"}, prefix="crates/carry-vault/src"
)
problems += core_problems(
    os.path.join(root, "endpoint", "src"),
    ENDPOINT_LAYERS,
    ENDPOINT_APART,
    {"lib", "main"},
    "endpoint/src",
)
for p in problems:
    print(f"layers: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
modules = sum(len(m) for _, m in CORE_LAYERS)
endpoint = sum(len(m) for _, m in ENDPOINT_LAYERS)
print(
    f"layers: {len(members)} crates, the core's {modules} modules and the endpoint's "
    f"{endpoint}, every dependency as the maps allow"
)
