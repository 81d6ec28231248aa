#!/usr/bin/env python3
"""Credit each sample of an import profile to the pipeline step that caused it.

Reads `perf script -F comm,tid,time,ip,sym,dso` output (a `perf record --call-graph
dwarf` of the vault bench, cut to one encrypted import with `--time`) on stdin and
prints a markdown table of the top areas: which thread, which step of the pipeline,
and what kind of work inside it (SQLite's engine, SQLCipher's crypto, the kernel's
file I/O, the allocator, memory copies, or the step's own code).

    perf script -i perf.data --time START,END -F comm,tid,time,ip,sym,dso \\
        | python3 tests/perf_areas.py [--top 15]

The reading thread is named `carry-import-read`; every other sample of the process is
the writing thread (the caller's).
"""

import argparse
import collections
import sys

READER = "carry-import-re"  # perf keeps the first 15 bytes of a thread's name

# (step, any of these substrings in a frame), first match from the leaf upwards.
WRITER_STEPS = [
    ("FTS rows, written in batches", ["store::Writer::finish"]),
    ("sameness keys (resource_keys)", ["carry_vault::store::group"]),
    ("commit (WAL write-out, checkpoint)", ["Transaction::commit", "Transaction::drop"]),
    ("identity lookup before the insert", ["Statement::query_row", "OptionalExtension"]),
    ("the `resources` INSERT", ["execute_with_bound_parameters"]),
    ("put: binding, dropping the item", ["store::Writer::put_prepared"]),
    ("waiting on and taking batches", ["import::write_items"]),
]
READER_STEPS = [
    ("sensitivity labels", ["record::sensitivity"]),
    ("minify", ["record::json::minify"]),
    ("sameness keys", ["record::sameness"]),
    ("analysis (category, date, display, codes)", ["carry_base::record::analyse", "record::summary"]),
    ("content hash (SHA-256)", ["sha256", "Sha256", "digest::"]),
    ("parse each resource to a `Value`", ["Value>::deserialize", "serde_json::de::from_trait"]),
    ("free each `Value`", ["drop_in_place<serde_json::value::Value"]),
    ("hand batches to the writer", ["mpsc", "crossbeam", "SyncSender"]),
    ("walk the Bundle (serde reader, raw entries)", ["import::bundle"]),
]

OUTSIDE = "outside the import"

KINDS = [
    ("SQLCipher crypto", ["sqlcipher", "aesni", "sha512_block", "HMAC", "EVP_", "aes_"]),
    ("malloc/free", ["malloc", "_int_free", "free", "unlink_chunk", "realloc", "lll_lock", "pthread_mutex"]),
    ("memory copies", ["memmove", "memcpy", "memset", "memcmp"]),
]


def samples(stream):
    """Yield (comm, [frames leaf first]) for each sample."""
    comm, frames = None, []
    for line in stream:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif not line[0].isspace():
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(" ", 1)
            frames.append(parts[1] if len(parts) > 1 else "")
    if comm is not None:
        yield comm, frames


def first(frames, rules):
    for frame in frames:
        for name, needles in rules:
            if any(n in frame for n in needles):
                return name
    return None


def kind(frames):
    leaf = frames[0] if frames else ""
    if "[kernel" in leaf or "kallsyms" in leaf:
        return "kernel"
    for name, needles in KINDS:
        if any(n in leaf for n in needles):
            return name
    # The only C in the binary besides OpenSSL (caught above) is SQLite: a symbol
    # without Rust's `::` or `<` there is SQLite's.
    symbol = leaf.split(" (")[0]
    in_libc = "libc.so" in leaf
    if not in_libc and "::" not in symbol and "<" not in symbol:
        return "SQLite engine"
    return "Rust code"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    areas = collections.Counter()
    steps = collections.Counter()
    total = 0
    for comm, frames in samples(sys.stdin):
        total += 1
        if comm == READER:
            thread, step = "read", first(frames, READER_STEPS) or "other reading work"
        else:
            thread, step = "write", first(frames, WRITER_STEPS) or OUTSIDE
        steps[(thread, step)] += 1
        areas[(thread, step, kind(frames))] += 1
    if not total:
        sys.exit("no samples on stdin")
    # Outside the import (the bench making the profile, its key's PBKDF2): left out.
    outside = steps.pop(("write", OUTSIDE), 0)
    for key in [k for k in areas if k[1] == OUTSIDE]:
        del areas[key]
    total -= outside
    print(f"{total} samples in the import ({outside} outside it left out)\n")
    print("| share | thread | step | work |\n|---|---|---|---|")
    for (thread, step, what), n in areas.most_common(args.top):
        print(f"| {100 * n / total:.1f}% | {thread} | {step} | {what} |")
    print("\n| share | thread | step |\n|---|---|---|")
    for (thread, step), n in steps.most_common():
        print(f"| {100 * n / total:.1f}% | {thread} | {step} |")


if __name__ == "__main__":
    main()
