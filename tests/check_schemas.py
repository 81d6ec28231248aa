"""Checks every schema in schemas/ against its examples, and against real files.

For each `schemas/NAME.schema.json`, `schemas/examples/NAME.valid.json` must validate
and `schemas/examples/NAME.invalid.json` must not. With a profile folder as argument,
its real `vault.key` (and the passphrase wrap inside it) must validate too, and with
a backup file as a second argument, its header.
"""
import base64
import json
import pathlib
import sys

import jsonschema

root = pathlib.Path(__file__).resolve().parent.parent / "schemas"
failures = 0
checked = 0


def load(p):
    return json.loads(pathlib.Path(p).read_text())


def check(schema_name, doc, should_pass, label):
    global failures, checked
    schema = load(root / f"{schema_name}.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    checked += 1
    if bool(errors) == should_pass:
        failures += 1
        print(f"FAIL {label}: expected {'valid' if should_pass else 'invalid'}; {errors[:1]}")


for schema_path in sorted(root.glob("*.schema.json")):
    name = schema_path.name[: -len(".schema.json")]
    for kind, ok in (("valid", True), ("invalid", False)):
        ex = root / "examples" / f"{name}.{kind}.json"
        if not ex.exists():
            failures += 1
            print(f"FAIL {name}: no {kind} example")
            continue
        check(name, load(ex), ok, ex.name)

if len(sys.argv) > 1:
    key = load(pathlib.Path(sys.argv[1]) / "vault.key")
    check("key-file", key, True, "real vault.key")
    raw = key["wrapped"] + "=" * (-len(key["wrapped"]) % 4)
    check("passphrase-wrap", json.loads(base64.urlsafe_b64decode(raw)), True, "real passphrase wrap")

if len(sys.argv) > 2:
    raw = pathlib.Path(sys.argv[2]).read_bytes()
    assert raw[:8] == b"CARRYBK1", "a backup file starts with CARRYBK1"
    n = int.from_bytes(raw[8:12], "big")
    check("backup-header", json.loads(raw[12:12 + n]), True, "real backup header")

print(f"{checked - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
