#!/usr/bin/env python3
"""Check the hand-written Swift against the generated Swift bindings.

There is no Swift compiler on the project's Linux machines, so the Swift layer in
ios/Sources/CarryKit and the sample in ios/Sample cannot be built here. This script
does the next best thing: it reads the declarations of the generated
build/bindings/swift/CarryFFI.swift (types, functions and initialisers with their
argument labels, enum cases, properties) and every name the hand-written Swift uses,
and fails if a name the hand-written code takes from the generated API is not there,
or is called with argument labels no declaration accepts.

A name the hand-written Swift uses must be one of: declared in the generated file
(then its labels are checked), declared in the hand-written files themselves, or a
known Apple-platform name (the lists below). A rename on the Rust side makes the old
name unknown, and the check fails. Calls through a value of a generated type
(`ffi.unlock(keyStore:)` with `let ffi: Profile`) must match the generated file even
when a hand-written method has the same name. The check is by name, not by type:
a field renamed in one generated record still passes if another record declares a
field of the old name (`display` is on both TimelineItem and Code).

Usage: check_swift_names.py [--generated FILE] [SWIFT_DIR_OR_FILE ...]
Prints "N passed, 0 failed" on success; exits 1 with the failures otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GENERATED = ROOT / "build/bindings/swift/CarryFFI.swift"
DEFAULT_SOURCES = [ROOT / "ios/Sources/CarryKit", ROOT / "ios/Sample"]

KEYWORDS = {
    "as", "async", "await", "break", "case", "catch", "class", "continue", "default",
    "defer", "do", "else", "enum", "extension", "fallthrough", "false", "fileprivate",
    "for", "func", "guard", "if", "import", "in", "init", "inout", "internal", "is",
    "let", "nil", "open", "operator", "private", "protocol", "public", "repeat",
    "rethrows", "return", "self", "Self", "some", "any", "static", "struct", "super",
    "switch", "throw", "throws", "true", "try", "var", "where", "while", "weak",
    "unowned", "final", "required", "convenience", "override", "mutating", "lazy",
    "get", "set", "willSet", "didSet", "Type", "actor", "nonisolated", "consuming",
}

# Apple-platform and standard-library names the hand-written Swift uses. Extend these
# when the Swift layer starts using another platform API; never add a Carry name.
PLATFORM_TYPES = {
    # Swift standard library and Foundation
    "Any", "Array", "AsyncStream", "AsyncThrowingStream", "Bool", "CFDictionary",
    "CFTypeRef", "Data", "Double", "Error", "FileManager", "Int", "Int64", "NSLock",
    "Never", "Result", "Sendable", "String", "Task", "UInt32", "UInt64", "URL", "UUID",
    "Void",
    # CryptoKit and Security
    "AES", "CryptoKitError", "SymmetricKey",
    # SwiftUI and UniformTypeIdentifiers
    "App", "Button", "Environment", "EnvironmentObject", "ForEach", "Form",
    "NavigationLink", "NavigationStack", "ObservableObject", "Picker", "ProgressView",
    "Published", "Scene", "ScrollView", "Section", "State", "StateObject", "Text",
    "TextField", "ToolbarItemGroup", "VStack", "View", "WindowGroup", "List",
}
PLATFORM_MEMBERS = {
    # standard library and Foundation
    "append", "applicationSupportDirectory", "appending", "bits256", "bufferingNewest",
    "combined", "copyItem", "count", "default", "enumerated", "finish", "isCancelled",
    "isEmpty", "keys", "lastPathComponent", "localizedDescription", "lock", "map",
    "offset", "onTermination", "path", "prefix", "removeItem", "sorted",
    "startAccessingSecurityScopedResource", "stopAccessingSecurityScopedResource",
    "success", "temporaryDirectory", "Continuation", "values", "unlock", "withUnsafeBytes", "yield", "cancel",
    "init",
    # CryptoKit
    "GCM", "SealedBox", "authenticationFailure", "open", "seal",
    # SwiftUI
    "caption", "data", "disabled", "dismiss", "environmentObject", "fileImporter",
    "font", "footnote", "leading", "foregroundStyle", "headline", "json", "monospaced",
    "navigationDestination", "navigationTitle", "padding", "red", "secondary", "sheet",
    "system", "task", "toolbar",
}
PLATFORM_FUNCS = {
    "SecItemAdd", "SecItemCopyMatching", "SecItemDelete", "print", "min", "max",
}


@dataclass
class Param:
    label: str  # "_" when unlabelled
    has_default: bool


@dataclass
class Generated:
    types: set[str] = field(default_factory=set)
    # name -> list of parameter lists (functions, enum cases, initialisers by type)
    funcs: dict[str, list[list[Param]]] = field(default_factory=dict)
    cases: dict[str, list[list[Param]]] = field(default_factory=dict)
    inits: dict[str, list[list[Param]]] = field(default_factory=dict)
    props: set[str] = field(default_factory=set)

    def members(self) -> set[str]:
        return set(self.funcs) | set(self.cases) | self.props


def strip(src: str) -> str:
    """Source with comments and string literals blanked (newlines kept), and the
    code inside string interpolations kept."""
    out: list[str] = []
    i, n = 0, len(src)

    def blank(text: str) -> None:
        out.append("".join(c if c == "\n" else " " for c in text))

    def code(i: int, in_interp: bool) -> int:
        depth = 0
        while i < n:
            if src.startswith("//", i):
                j = src.find("\n", i)
                j = n if j < 0 else j
                blank(src[i:j])
                i = j
            elif src.startswith("/*", i):
                j, nest = i + 2, 1
                while j < n and nest:
                    if src.startswith("/*", j):
                        nest, j = nest + 1, j + 2
                    elif src.startswith("*/", j):
                        nest, j = nest - 1, j + 2
                    else:
                        j += 1
                blank(src[i:j])
                i = j
            elif src.startswith('"""', i):
                i = string(i + 3, '"""')
            elif src[i] == '"':
                i = string(i + 1, '"')
            elif src[i] == "(":
                depth += 1
                out.append("(")
                i += 1
            elif src[i] == ")":
                if in_interp and depth == 0:
                    out.append(")")
                    return i + 1
                depth -= 1
                out.append(")")
                i += 1
            else:
                out.append(src[i])
                i += 1
        return i

    def string(i: int, delim: str) -> int:
        out.append('""')
        while i < n:
            if src.startswith("\\(", i):
                out.append(" (")
                i = code(i + 2, True)
            elif src[i] == "\\":
                i += 2
            elif src.startswith(delim, i):
                return i + len(delim)
            else:
                if src[i] == "\n":
                    out.append("\n")
                i += 1
        return i

    while i < n:
        i = code(i, False)
    return "".join(out)


def matching(text: str, open_at: int, pair: str = "()") -> int:
    """Index just past the bracket that closes the one at open_at."""
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == pair[0]:
            depth += 1
        elif text[j] == pair[1]:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for c in text:
        if c in "([{<":
            depth += 1
        elif c in ")]}>":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


def decl_params(inner: str) -> list[Param]:
    params = []
    for part in split_top(inner):
        m = re.match(r"\s*(?:`?(\w+)`?\s+)?`?(\w+)`?\s*:", part)
        if not m:
            continue
        label = m.group(1) or m.group(2)
        params.append(Param(label, "=" in part[m.end():]))
    return params


def call_labels(inner: str) -> list[str]:
    labels = []
    for part in split_top(inner):
        m = re.match(r"\s*(\w+)\s*:(?!:)", part)
        labels.append(m.group(1) if m else "_")
    return labels


def accepts(params: list[Param], labels: list[str], is_case: bool) -> bool:
    if is_case and labels and all(lbl == "_" for lbl in labels) and len(labels) == len(params):
        return True  # a pattern binding the associated values: `case let .x(a, b)`
    k = 0
    for p in params:
        if k < len(labels) and labels[k] == p.label:
            k += 1
        elif not p.has_default:
            return False
    return k == len(labels)


def parse_generated(path: Path) -> Generated:
    text = strip(path.read_text(encoding="utf-8"))
    g = Generated()
    for m in re.finditer(r"\b(?:class|struct|enum|protocol|typealias|actor)\s+(\w+)", text):
        g.types.add(m.group(1))
    for m in re.finditer(r"\bfunc\s+`?(\w+)`?\s*(?:<[^>]*>)?\s*\(", text):
        end = matching(text, m.end() - 1)
        g.funcs.setdefault(m.group(1), []).append(decl_params(text[m.end():end - 1]))
    for m in re.finditer(r"\b(?:var|let)\s+`?(\w+)`?\s*:", text):
        g.props.add(m.group(1))
    # Initialisers and enum cases, by the type whose body holds them.
    for m in re.finditer(r"\b(class|struct|enum)\s+(\w+)[^{]*\{", text):
        kind, name = m.group(1), m.group(2)
        body = text[m.end():matching(text, m.end() - 1, "{}") - 1]
        for im in re.finditer(r"\binit\s*\(", body):
            end = matching(body, im.end() - 1)
            g.inits.setdefault(name, []).append(decl_params(body[im.end():end - 1]))
        if kind == "enum":
            for cm in re.finditer(r"\bcase\s+`?(\w+)`?\s*(\()?", body):
                params = []
                if cm.group(2):
                    end = matching(body, cm.end() - 1)
                    params = decl_params(body[cm.end():end - 1])
                g.cases.setdefault(cm.group(1), []).append(params)
    return g


@dataclass
class Local:
    types: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    # hand-written functions: name -> parameter lists
    funcs: dict[str, list[list[Param]]] = field(default_factory=dict)
    # names declared with a generated type (`let ffi: Profile`, `_ query: TimelineQuery`)
    generated_typed: set[str] = field(default_factory=set)


def parse_local(texts: list[str], g: Generated) -> Local:
    loc = Local()
    for text in texts:
        for m in re.finditer(r"\b(?:class|struct|enum|protocol|actor)\s+(\w+)", text):
            loc.types.add(m.group(1))
        for m in re.finditer(r"\bfunc\s+`?(\w+)`?\s*(?:<[^>]*>)?\s*\(", text):
            end = matching(text, m.end() - 1)
            params = decl_params(text[m.end():end - 1])
            loc.funcs.setdefault(m.group(1), []).append(params)
            loc.names.add(m.group(1))
            for part in split_top(text[m.end():end - 1]):
                pm = re.match(r"\s*(?:(\w+)\s+)?(\w+)\s*:\s*(\w+)?", part)
                if pm:
                    loc.names.update(x for x in pm.group(1, 2) if x)
                    if pm.group(3) in g.types:
                        loc.generated_typed.add(pm.group(2))
        for m in re.finditer(r"\b(?:var|let|case)\s+(?:\.\w+\()?`?(\w+)`?(?:\s*:\s*(\w+))?", text):
            loc.names.add(m.group(1))
            if m.group(2) in g.types:
                loc.generated_typed.add(m.group(1))
        # `let page = try await ffi.timeline(...)`: a value from a generated object.
        for m in re.finditer(r"\b(?:let|var)\s+(\w+)\s*=\s*(?:try\s+)?(?:await\s+)?(\w+)\.", text):
            if m.group(2) in loc.generated_typed or (m.group(2) in g.types and m.group(2) not in loc.types):
                loc.generated_typed.add(m.group(1))
        for m in re.finditer(r"\b(?:let|var)\s+\.?\w*\(([^)]*)\)", text):  # case let .x(a, b)
            loc.names.update(re.findall(r"\w+", m.group(1)))
        for m in re.finditer(r"\{\s*(?:\[[^\]]*\]\s*)?\(?([\w\s,]*?)\)?\s+in\b", text):
            loc.names.update(re.findall(r"\w+", m.group(1)))
        for m in re.finditer(r"\bfor\s+(?:try\s+)?(?:await\s+)?(\w+)\s+in\b", text):
            loc.names.add(m.group(1))
    return loc


@dataclass
class Report:
    passed: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


def check_file(path: Path, text: str, g: Generated, loc: Local, rep: Report) -> None:
    def where(pos: int) -> str:
        return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{text.count(chr(10), 0, pos) + 1}"

    def args_after(pos: int) -> list[str] | None:
        """Labels of a call whose '(' is at pos (after optional spaces), else None."""
        j = pos
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "(":
            return call_labels(text[j + 1:matching(text, j) - 1])
        return None

    def check_sigs(kind: str, name: str, sigs: list[list[Param]], labels: list[str] | None,
                   is_case: bool, pos: int) -> None:
        shown = name if labels is None else f"{name}({''.join(lbl + ':' for lbl in labels)})"
        if labels is None or any(accepts(s, labels, is_case) for s in sigs):
            rep.passed.add(f"{kind} {shown}")
        else:
            options = ", ".join(dict.fromkeys(
                f"{name}({''.join(p.label + ':' for p in s)})" for s in sigs)) or "none"
            rep.failures.append(f"{where(pos)}: {kind} {shown} matches no declaration in "
                                f"the generated Swift (declared: {options})")

    for m in re.finditer(r"\.`?([A-Za-z_]\w*)`?", text):
        name = m.group(1)
        before = text[:m.start()]
        if before.endswith(".") or re.search(r"(?<![\w.])\d+$", before) or name in ("self", "Type"):
            continue  # a range operator, a number, or `.self`
        rm = re.search(r"(\w+)[?!]?$", before)
        receiver = rm.group(1) if rm else None
        labels = args_after(m.end())
        strict = receiver is not None and (receiver in loc.generated_typed or
                                           (receiver in g.types and receiver not in loc.types))
        in_generated = name in g.members() or name in g.types
        if strict or (in_generated and not _local_accepts(loc, name, labels)
                      and name not in PLATFORM_MEMBERS):
            if name in g.cases or name in g.funcs:
                sigs = g.cases.get(name, []) + g.funcs.get(name, [])
                check_sigs("member", name, sigs, labels, name in g.cases, m.start())
            elif name in g.props or name in g.types:
                rep.passed.add(f"member {name}")
            else:
                rep.failures.append(f"{where(m.start())}: .{name} is not declared in the "
                                    f"generated Swift (called on {receiver})")
        elif not (name in loc.names or name in loc.types or name in PLATFORM_MEMBERS
                  or in_generated):
            rep.failures.append(f"{where(m.start())}: .{name} is neither in the generated Swift, "
                                f"nor declared in the hand-written Swift, nor a known platform "
                                f"name (add it to PLATFORM_MEMBERS if it is Apple's)")

    # Identifiers not after a dot: type names, constructor calls and free functions.
    for m in re.finditer(r"(?<![\w.@#$`\\])`?([A-Za-z_]\w*)`?", text):
        name = m.group(1)
        if name in KEYWORDS or re.match(r"\s*:(?!:)", text[m.end():]) or \
                re.search(r"\b(?:func|var|let|case|class|struct|enum|protocol|actor|extension|import)\s+$",
                          text[max(0, m.start() - 40):m.start()]):
            continue
        labels = args_after(m.end())
        if name[0].isupper():
            if name in g.types and name not in loc.types:
                if labels is not None:
                    check_sigs("init", name, g.inits.get(name, []), labels, False, m.start())
                else:
                    rep.passed.add(f"type {name}")
            elif not (name in loc.types or name in PLATFORM_TYPES or name in PLATFORM_FUNCS):
                rep.failures.append(f"{where(m.start())}: type {name} is neither in the generated "
                                    f"Swift, nor hand-written, nor a known platform type")
        elif labels is not None:
            if name in g.funcs and name not in loc.funcs:
                check_sigs("function", name, g.funcs[name], labels, False, m.start())
            elif not (name in loc.names or name in PLATFORM_FUNCS):
                rep.failures.append(f"{where(m.start())}: function {name}(...) is neither in the "
                                    f"generated Swift, nor hand-written, nor a known platform one")


def _local_accepts(loc: Local, name: str, labels: list[str] | None) -> bool:
    """Whether a hand-written declaration explains this use of `name`."""
    if name not in loc.names and name not in loc.types:
        return False
    if labels is None or name not in loc.funcs:
        return True
    return any(accepts(s, labels, False) for s in loc.funcs[name])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generated", type=Path, default=DEFAULT_GENERATED)
    ap.add_argument("-v", "--verbose", action="store_true", help="list every name checked")
    ap.add_argument("sources", nargs="*", type=Path, default=DEFAULT_SOURCES)
    args = ap.parse_args()

    if not args.generated.is_file():
        print(f"check_swift_names: {args.generated} is missing: run `make bindings` first",
              file=sys.stderr)
        return 1
    files = sorted({f for s in args.sources for f in ([s] if s.is_file() else s.rglob("*.swift"))})
    if not files:
        print("check_swift_names: no hand-written Swift found", file=sys.stderr)
        return 1

    g = parse_generated(args.generated)
    texts = {f: strip(f.read_text(encoding="utf-8")) for f in files}
    loc = parse_local(list(texts.values()), g)
    rep = Report()
    for f, text in texts.items():
        check_file(f, text, g, loc, rep)

    if args.verbose:
        for name in sorted(rep.passed):
            print(f"ok   {name}")
    for failure in rep.failures:
        print(f"FAIL {failure}")
    print(f"checked {len(files)} Swift files against {args.generated.name}")
    print(f"{len(rep.passed)} passed, {len(rep.failures)} failed")
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
