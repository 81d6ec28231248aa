#!/usr/bin/env python3
"""What the shipped library is made of (`make size`): the stripped size, the size of
each ELF section that ships, and the code and data by crate, from the symbols of the
unstripped build (`nm --size-sort`, demangled). C symbols are grouped by what they
belong to: SQLite/SQLCipher (`sqlite3…`), OpenSSL under SQLCipher, and ring's
assembly. Sizes are in KiB.

Usage: breakdown.py UNSTRIPPED.so STRIPPED.so
"""

import collections
import os
import re
import subprocess
import sys

SHIPPED = [".text", ".rodata", ".eh_frame", ".eh_frame_hdr", ".gcc_except_table",
           ".data.rel.ro", ".data", ".dynsym", ".dynstr"]

# C and assembly symbols, by prefix: what they belong to.
C_GROUPS = [
    (re.compile(r"^(sqlite3|sqlcipher|fts5|fts3|rtree|sqlite)", re.I), "[C] SQLite + SQLCipher"),
    (re.compile(r"^(ring_core_|GFp_|ring_)"), "[asm/C] ring"),
    (re.compile(r"^(EVP_|OPENSSL_|CRYPTO_|ERR_|BIO_|BN_|EC_|RSA_|DSA_|DH_|X509|PEM_|ASN1_|OBJ_|RAND_|"
                r"aesni_|AES_|sha\d|SHA\d|HMAC|CMAC|ossl_|gcm_|ChaCha|Poly1305|KECCAK|"
                r"bn_|ec_|x25519|ecp_|rsaz_|aes_|ossl|OSSL_|PKCS|EVP|CONF_|DSO_|UI_|ENGINE_|"
                r"v2i_|i2v_|i2d_|d2i_|s2i_|i2s_|X9_|SM\d|OCSP|CMS_|TS_|SSL|ct_|async_|padlock|"
                r"WPACKET|PACKET|DES_|RC\d|MD\d|RIPEMD|WHIRLPOOL|CAST_|BF_|IDEA|SEED|Camellia|"
                r"ARIA|SRP_|blake2|siphash|poly1305|chacha|CRYPTO|OBJ|lh_|sk_|OPENSSL|BUF_|"
                r"NCONF|COMP_|HMAC_|CTLOG|SCT_|PKEY|KDF|EVP_)")
     , "[C] OpenSSL (under SQLCipher)"),
]


def kib(n):
    return f"{n / 1024:,.0f}"


def sections(path):
    out = subprocess.run(["size", "-A", path], check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return found


def crate_of(name):
    """The crate a demangled Rust symbol belongs to, or the group of a C one."""
    name = name.strip()
    # <T as Trait>::method, impl blocks: the first path inside decides.
    m = re.match(r"^<+\s*(?:&(?:mut )?|\*(?:const|mut) |dyn )?([A-Za-z_][A-Za-z0-9_]*)::", name)
    if m:
        return m.group(1)
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)::", name)
    if m:
        return m.group(1)
    for pattern, group in C_GROUPS:
        if pattern.match(name):
            return group
    return "[C] static functions of SQLite and OpenSSL (unattributed)"


def by_crate(path):
    out = subprocess.run(["nm", "--size-sort", "-C", "-S", path], check=True,
                         capture_output=True, text=True).stdout
    totals = collections.Counter()
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or parts[2].lower() not in "tdrbw":
            continue
        if parts[2].lower() == "b":
            continue  # zero-filled: takes no room in the file
        totals[crate_of(parts[3])] += int(parts[1], 16)
    return totals


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    unstripped, stripped = sys.argv[1], sys.argv[2]
    size = os.path.getsize(stripped)
    print(f"stripped: {size / 1e6:.2f} MB ({size} bytes)")
    found = sections(stripped)
    print("sections (KiB): " + ", ".join(f"{s} {kib(found[s])}" for s in SHIPPED if s in found))
    totals = by_crate(unstripped)
    whole = sum(totals.values()) or 1
    print("code and data by crate (KiB, from the symbols; the rest is tables and padding):")
    for name, n in totals.most_common(20):
        print(f"  {kib(n):>6}  {100 * n / whole:4.1f}%  {name}")
    rest = sum(n for _, n in totals.most_common()[20:])
    print(f"  {kib(rest):>6}  {100 * rest / whole:4.1f}%  (all others)")


if __name__ == "__main__":
    main()
