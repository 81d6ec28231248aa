"""Seed corpora for the fuzz targets (make fuzz) from ../shared and schemas/examples.

    python3 tests/fuzz/seed.py SHARED OUT

writes OUT/<target>/<name> files. The corpora live under target/ (never in the
repository); libFuzzer adds what it finds to them.
"""
import base64
import json
import os
import sys
from pathlib import Path

shared, out = Path(sys.argv[1]), Path(sys.argv[2])
repo = Path(__file__).resolve().parents[2]


def put(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# The importer: every FHIR example under 256 KB (larger ones slow each run down).
for p in sorted((shared / "fixtures" / "fhir").rglob("*.json")):
    if p.stat().st_size <= 256 * 1024:
        put("import", p.name, p.read_bytes())
put("import", "ndjson", b'{"resourceType":"Patient","id":"a"}\n{"resourceType":"Observation","id":"b","status":"final","code":{"text":"x"}}\n')

# Share links and their files.
shl = shared / "fixtures" / "shl"
for p in sorted(shl.glob("*shl*.txt")):
    put("shlink", p.name, p.read_bytes().strip())
details = json.loads((shl / "ips-shl-details.json").read_text())
key = base64.urlsafe_b64decode(details["key"] + "==") if "key" in details else bytes(32)
put("jwe", "ips-file", key + (shl / "ips-file.jwe.txt").read_bytes().strip())

# Grant documents.
for p in sorted((repo / "schemas" / "examples").glob("grant*.json")):
    put("grant", p.name, p.read_bytes())

# Invite, pairing and recovery codes.
inv = (repo / "schemas" / "examples" / "invite.valid.json").read_bytes()
put("codes", "invite", "carry:invite:" + b64(inv))
pair = {"v": 1, "purpose": "device", "endpoint": "https://carry.example",
        "keys": {"sign": b64(bytes(32)), "enc": b64(bytes(32))}, "binding": b64(bytes(64))}
put("codes", "pair", "carry:pair:" + b64(json.dumps(pair).encode()))
put("codes", "recovery", "-".join(["ABCD"] * 14))

# Backups: a header and one chunk, and content as a restore reads it.
header = json.dumps({"format": "carry-backup", "version": 1, "id": "x", "kind": "full",
                     "seq": 1, "created_at": 0, "schema": 8,
                     "wrapped_key": {"nonce": b64(bytes(12)), "ct": b64(bytes(48))},
                     "nonce_prefix": b64(bytes(7))}).encode()
put("backup", "header", b"CARRYBK1" + len(header).to_bytes(4, "big") + header
    + (32).to_bytes(4, "big") + bytes(32))
content = (b'{"carry_backup_content":1,"schema":8,"kind":"full"}\n'
           b'{"table":"meta","columns":["key","value"],"mode":"insert"}\n["name","Jene"]\n'
           b'{"table":"prefs","columns":["key","value","updated_at","lamport"],"mode":"insert"}\n'
           b'["lock_timeout_s","300",0,1]\n')
put("backup_content", "full", b"\x00" + content)
put("backup_content", "increment", b"\x01" + content.replace(b'"full"', b'"incremental"')
    .replace(b'"insert"', b'"replace"'))

# Sealed things: the framing with random-looking bodies.
put("envelope", "ce1", b"CE1" + bytes(32) + os.urandom(64))
put("device_batch", "cd1", b"CD1" + bytes(32) + os.urandom(64))
# The endpoint: a route byte (see fuzz_targets/endpoint.rs), then the body or query.
ep = {
    0: [b'{"recipient":"Dr A"}', b'{"recipient":"Dr A","passcode":"1234","embeddedLengthMax":100}'],
    2: [b"recipient=Dr%20A"],
    4: [b'{"tag":"share","body":"' + b64(os.urandom(48)).encode() + b'"}'],
    6: [b"after=0&limit=10"],
    7: [b'{"ids":[1,2,3]}'],
    8: [('{"key":"%s"}' % b64(bytes(32))).encode()],
    9: [('{"key":"%s","challenge":"%s","signature":"%s"}' % (b64(bytes(32)), b64(bytes(32)), b64(bytes(64)))).encode()],
    10: [('{"enc":"%s","binding":"%s"}' % (b64(bytes(32)), b64(bytes(64)))).encode()],
}
for route, bodies in ep.items():
    for i, body in enumerate(bodies):
        put("endpoint", f"r{route}-{i}", bytes([route]) + body)
# Bodies: route, signed-in, declared length, chunk size (fuzz_targets/bodies.rs), then
# the body.
bodies = {
    0: os.urandom(300),
    1: b'{"tag":"share","body":"' + b64(os.urandom(48)).encode() + b'"}',
    2: ('{"successor":"%s","signature":"%s"}' % (b64(bytes(32)), b64(bytes(64)))).encode(),
    3: b'{"file":"eyJhbGciOiJkaXIifQ..aXY.Y3Q.dGFn","flags":"L"}',
    4: ('{"enc":"%s","binding":"%s"}' % (b64(bytes(32)), b64(bytes(64)))).encode(),
    5: b"grant_type=refresh_token&refresh_token=x&client_id=carry",
}
for route, body in bodies.items():
    for signed in (0, 1):
        for declared in (0, 1, 3):
            put("bodies", f"r{route}-s{signed}-d{declared}",
                bytes([route, signed, declared, 7]) + body)
print(f"seeded {out}")
