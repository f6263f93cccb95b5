#!/usr/bin/env python3
"""Generates tether's umbrella headers and single-header amalgamations.

    python3 tests/tools/amalgamate.py           # rewrite every generated file
    python3 tests/tools/amalgamate.py --check   # exit 1 when a committed file is stale

Generated from the headers under include/tether/ (never edit these by hand):

  include/tether/core.hpp        every public header that needs only Asio: no websocketpp,
                                 OpenSSL or nlohmann/json (found by scanning includes
                                 transitively), Genesys aside; what tether::core covers
  include/tether/tether.hpp      core.hpp plus every other public header but Genesys's
                                 (the websocketpp transport, OAuth 2.0)
  include/tether/testing.hpp     every header under include/tether/testing/
  single_include/tether/core.hpp     core.hpp with all <tether/...> includes inlined
  single_include/tether/tether.hpp   tether.hpp, likewise (self-contained)
  single_include/tether/testing.hpp  testing.hpp, likewise (self-contained)
  single_include/tether/genesys.hpp  <tether/genesys.hpp>: #include "tether.hpp", then
                                     the Genesys headers
  single_include/tether/src.hpp      <tether/src.hpp> (separate compilation): #include
                                     "tether.hpp", then the transport's implementation

Public headers are all of include/tether/**/*.hpp except detail/ and impl/
folders, testing/, genesys/, src.hpp, OPTIONAL_HEADERS (the Beast transport,
which needs Boost) and the generated files. An .ipp file (an
implementation, under impl/) may be included conditionally; it is inlined
wherever it is included (its own guard keeps one copy), never marked seen. Each <tether/...> include is inlined once, at
its first use, so dependencies come before their users; the inner include
guards are kept, so the amalgamation mixes safely with the split headers (of
the same version). Dependency includes (<asio/...>, <websocketpp/...>, the
standard library) stay as they are. Output depends only on file contents.
Python 3 standard library only.
"""

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

GENERATED_UMBRELLAS = ("tether.hpp", "core.hpp", "testing.hpp")

# Headers no umbrella includes: they need a dependency the rest does not
# (Boost.Beast); a program includes them by name. Included conditionally (Boost
# mode), they stay an #include of the split header.
OPTIONAL_HEADERS = ("tether/transport/beast_transport.hpp",)

# An include of any of these makes a header "heavy": not part of core.hpp (the
# tether::core target provides Asio and threads only).
HEAVY_INCLUDE = re.compile(r"^(websocketpp/|openssl/|nlohmann/|asio/ssl(/|\.hpp$))")

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
CONDITIONAL_OPEN_RE = re.compile(r"^\s*#\s*if(n?def)?\b")
CONDITIONAL_CLOSE_RE = re.compile(r"^\s*#\s*endif\b")
GUARD_RE = re.compile(r"^\s*#\s*ifndef\s+TETHER_\w+_(HPP|IPP)\s*$")
PRAGMA_ONCE_RE = re.compile(r"^\s*#\s*pragma\s+once\b")
VERSION_RE = re.compile(r"^#define TETHER_VERSION_(MAJOR|MINOR|PATCH) (\d+)\s*$", re.M)


class AmalgamationError(Exception):
    pass


def read_text(path):
    text = path.read_text(encoding="utf-8")
    return text.replace("\r\n", "\n")


def read_version(include_dir):
    parts = dict(VERSION_RE.findall(read_text(include_dir / "tether" / "version.hpp")))
    missing = {"MAJOR", "MINOR", "PATCH"} - parts.keys()
    if missing:
        raise AmalgamationError("version.hpp lacks TETHER_VERSION_" + ", ".join(sorted(missing)))
    return tuple(int(parts[k]) for k in ("MAJOR", "MINOR", "PATCH"))


def includes_of(text):
    """(kind, name, line number) of every #include in text."""
    found = []
    for number, line in enumerate(text.split("\n"), 1):
        m = INCLUDE_RE.match(line)
        if m:
            found.append((m.group(1), m.group(2), number))
    return found


class HeaderTree:
    """The headers under include/ and what each includes."""

    def __init__(self, include_dir):
        self.include_dir = include_dir
        self.texts = {}
        for pattern in ("*.hpp", "*.ipp"):
            for path in sorted((include_dir / "tether").rglob(pattern)):
                name = path.relative_to(include_dir).as_posix()
                self.texts[name] = read_text(path)
        self._heavy = {}

    def tether_includes(self, name):
        result = []
        for kind, inc, number in includes_of(self.texts[name]):
            if inc.startswith("tether/"):
                if kind != "<":
                    raise AmalgamationError(
                        f"include/{name}:{number}: write #include <{inc}>, not \"{inc}\"")
                if inc not in self.texts:
                    raise AmalgamationError(f"include/{name}:{number}: <{inc}> does not exist")
                result.append(inc)
        return result

    def is_heavy(self, name, visiting=()):
        """True when name includes websocketpp/OpenSSL/nlohmann, directly or through tether headers."""
        if name in self._heavy:
            return self._heavy[name]
        heavy = any(HEAVY_INCLUDE.match(inc) for _, inc, _ in includes_of(self.texts[name]))
        if not heavy:
            heavy = any(self.is_heavy(dep, visiting + (name,))
                        for dep in self.tether_includes(name) if dep not in visiting)
        self._heavy[name] = heavy
        return heavy

    def public_headers(self):
        generated = {"tether/" + g for g in GENERATED_UMBRELLAS}
        folders = lambda n: n.split("/")[:-1]
        return [n for n in self.texts
                if n not in generated and n.endswith(".hpp")
                and n not in ("tether/src.hpp", "tether/genesys.hpp")
                and n not in OPTIONAL_HEADERS
                and "detail" not in folders(n) and "impl" not in folders(n)
                and not n.startswith("tether/testing/") and not n.startswith("tether/genesys/")]

    def testing_headers(self):
        return [n for n in self.texts
                if n.startswith("tether/testing/") and "detail" not in n.split("/")[:-1]]


def display_order(names):
    """Root headers first, then one folder at a time, each sorted as clang-format sorts
    includes (every header is self-contained, so the order is free)."""
    def key(name):
        parts = name.split("/")
        folder = "/".join(parts[1:-1])
        return (folder != "", folder, parts[-1])
    return sorted(names, key=key)


def version_guard_check(version, what):
    """Preprocessor lines warning when another tether version came first in this TU.

    Placed before an include guard: a second copy of tether reaches it even
    though all the headers it would define are already guarded away."""
    major, minor, patch = version
    message = (f"tether {major}.{minor}.{patch} is included after another tether version in this "
               "translation unit: the headers of the version included first are used")
    return (
        f"// Before the include guard on purpose: warns when {what} of tether "
        f"{major}.{minor}.{patch}\n// comes after another tether version in one translation unit.\n"
        "// clang-format off\n"
        "#if defined(TETHER_VERSION_MAJOR) && !defined(TETHER_DETAIL_MIXED_VERSIONS_WARNED) && \\\n"
        f"    (TETHER_VERSION_MAJOR != {major} || TETHER_VERSION_MINOR != {minor} || "
        f"TETHER_VERSION_PATCH != {patch})\n"
        "#define TETHER_DETAIL_MIXED_VERSIONS_WARNED\n"
        "#if defined(__GNUC__) || defined(__clang__)\n"
        f'#pragma GCC warning "{message}"\n'
        "#elif defined(_MSC_VER)\n"
        f'#pragma message("warning: {message}")\n'
        "#endif\n"
        "#endif\n"
        "// clang-format on\n")


def umbrella(name, description, includes, version):
    guard = "TETHER_" + re.sub(r"[^A-Za-z0-9]", "_", name[len("tether/"):]).upper()
    lines = [f"// tether: {description}",
             "// Generated by tests/tools/amalgamate.py from the headers that exist; do not edit.",
             version_guard_check(version, f"<{name}>").rstrip("\n"),
             f"#ifndef {guard}",
             f"#define {guard}",
             ""]
    folder = None
    for inc in includes:
        inc_folder = "/".join(inc.split("/")[1:-1])
        if folder is not None and inc_folder != folder:
            lines.append("")
        folder = inc_folder
        lines.append(f"#include <{inc}>")
    lines += ["", "#endif", ""]
    return "\n".join(lines)


def make_umbrellas(tree, version):
    public = tree.public_headers()
    core = display_order([n for n in public if not tree.is_heavy(n)])
    heavy = display_order([n for n in public if tree.is_heavy(n)])
    testing = display_order(tree.testing_headers())
    return {
        "tether/core.hpp": umbrella(
            "tether/core.hpp",
            "every public header that needs only Asio (no websocketpp, OpenSSL or nlohmann/json;\n"
            "// the tether::core target), Genesys aside, C++17 and C++20.",
            core, version),
        "tether/tether.hpp": umbrella(
            "tether/tether.hpp",
            "the library without Genesys (<tether/genesys.hpp>): core.hpp, the websocketpp\n"
            "// transport and OAuth 2.0 (websocketpp, OpenSSL and nlohmann/json).",
            ["tether/core.hpp"] + heavy, version),
        "tether/testing.hpp": umbrella(
            "tether/testing.hpp",
            "test helpers shipped to users: simulated transport, virtual clock.",
            testing, version),
    }


class Amalgamator:
    def __init__(self, tree, seen=()):
        self.tree = tree
        self.seen = set(seen)

    def inline(self, name, stack=()):
        if name in stack:
            raise AmalgamationError("include cycle: " + " -> ".join(stack + (name,)))
        self.seen.add(name)
        out = [f"// ---- begin <{name}> ----"]
        # Open #if blocks; the file's own include guard does not make an include conditional.
        blocks = []
        guard_seen = False
        for number, line in enumerate(self.tree.texts[name].rstrip("\n").split("\n"), 1):
            if PRAGMA_ONCE_RE.match(line):
                continue
            if CONDITIONAL_OPEN_RE.match(line):
                is_guard = not guard_seen and not blocks and GUARD_RE.match(line)
                guard_seen = guard_seen or bool(is_guard)
                blocks.append("guard" if is_guard else "if")
            elif CONDITIONAL_CLOSE_RE.match(line):
                if not blocks:
                    raise AmalgamationError(f"include/{name}:{number}: #endif without #if")
                blocks.pop()
            depth = blocks.count("if")
            m = INCLUDE_RE.match(line)
            if m and m.group(2).startswith("tether/"):
                inc = m.group(2)
                if inc.endswith(".ipp"):
                    # Inlined wherever it is included (its guard keeps one copy), maybe
                    # inside an #if: nothing inlined within it counts as seen afterwards.
                    before = set(self.seen)
                    out.append(self.inline(inc, stack + (name,)))
                    self.seen = before
                    continue
                if inc in self.seen:
                    out.append(f"// #include <{inc}> (inlined above)")
                    continue
                if depth > 0 and inc in OPTIONAL_HEADERS:
                    # Boost mode's transport (genesys/notification_client.hpp): left an
                    # include of the split header, as no umbrella holds it.
                    out.append(line)
                    continue
                if depth > 0:
                    raise AmalgamationError(
                        f"include/{name}:{number}: <{inc}> is included conditionally; "
                        "the amalgamation inlines each header once, so include it unconditionally")
                out.append(self.inline(inc, stack + (name,)))
                continue
            out.append(line)
        out.append(f"// ---- end <{name}> ----")
        return "\n".join(out)


def single_header(tree, umbrella_name, guard, version, note, after=None):
    """umbrella_name with every <tether/...> include inlined. With `after` (a
    single header's file name), the result starts with #include "after" and
    inlines only what that one does not hold."""
    major, minor, patch = version
    seen = ()
    if after:
        first = Amalgamator(tree)
        first.inline(after[1])
        seen = first.seen
    body = Amalgamator(tree, seen).inline(umbrella_name)
    return "\n".join([
        f"// tether {major}.{minor}.{patch}: single-header edition of <{umbrella_name}>.",
        "// Generated by tests/tools/amalgamate.py from include/; do not edit: change the",
        "// headers under include/ and run `python3 tests/tools/amalgamate.py`.",
        f"// {note}",
        version_guard_check(version, "this single header").rstrip("\n"),
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        *([f'#include "{after[0]}"', ""] if after else []),
        body,
        "",
        f"#endif // {guard}",
        ""])


VERSION_BLOCK_RE = re.compile(r"(// BEGIN version check[^\n]*\n)(.*?)(// END version check\n)", re.S)
MESON_VERSION_RE = re.compile(r"(\bproject\(.*?\bversion\s*:\s*)'[^']*'", re.S)


def sync_version(root, tree, version):
    """version.hpp's check block and meson.build's project version, from the #defines."""
    files = {}
    name = "tether/version.hpp"
    text = tree.texts[name]
    if not VERSION_BLOCK_RE.search(text):
        raise AmalgamationError("include/tether/version.hpp lost its '// BEGIN version check' block")
    text = VERSION_BLOCK_RE.sub(
        lambda m: m.group(1) + version_guard_check(version, f"<{name}>") + m.group(3), text, count=1)
    tree.texts[name] = text
    files["include/" + name] = text
    meson = root / "meson.build"
    if meson.is_file():
        text = read_text(meson)
        if not MESON_VERSION_RE.search(text):
            raise AmalgamationError("meson.build: no version: '...' in project()")
        files["meson.build"] = MESON_VERSION_RE.sub(
            lambda m: m.group(1) + "'%d.%d.%d'" % version, text, count=1)
    return files


def generate(root):
    """{path relative to root: content} for every generated file."""
    include_dir = root / "include"
    tree = HeaderTree(include_dir)
    version = read_version(include_dir)
    files = sync_version(root, tree, version)
    umbrellas = make_umbrellas(tree, version)
    # The single headers are made from the files as generated now, not as committed.
    tree.texts.update(umbrellas)
    files.update({f"include/{name}": text for name, text in umbrellas.items()})
    files["single_include/tether/core.hpp"] = single_header(
        tree, "tether/core.hpp", "TETHER_SINGLE_INCLUDE_TETHER_CORE_HPP", version,
        "Needs: standalone Asio (-DASIO_STANDALONE), threads; C++17 or C++20.")
    files["single_include/tether/tether.hpp"] = single_header(
        tree, "tether/tether.hpp", "TETHER_SINGLE_INCLUDE_TETHER_HPP", version,
        "Needs: standalone Asio (-DASIO_STANDALONE), websocketpp, nlohmann/json, OpenSSL, threads.\n"
        "// Includes core.hpp's content; Genesys is in genesys.hpp next to it.")
    files["single_include/tether/genesys.hpp"] = single_header(
        tree, "tether/genesys.hpp", "TETHER_SINGLE_INCLUDE_TETHER_GENESYS_HPP", version,
        "Genesys Cloud notifications and REST; needs tether.hpp next to it (included).",
        after=("tether.hpp", "tether/tether.hpp"))
    files["single_include/tether/src.hpp"] = single_header(
        tree, "tether/src.hpp", "TETHER_SINGLE_INCLUDE_TETHER_SRC_HPP", version,
        "Separate compilation: include in one C++17 file built with -DTETHER_SEPARATE_COMPILATION;\n"
        "// needs tether.hpp next to it (included).",
        after=("tether.hpp", "tether/tether.hpp"))
    files["single_include/tether/testing.hpp"] = single_header(
        tree, "tether/testing.hpp", "TETHER_SINGLE_INCLUDE_TETHER_TESTING_HPP", version,
        "Self-contained; combines with the other single headers in any order.")
    return files


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the files on disk instead of writing them")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT,
                        help="repository root (default: this script's repository)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        files = generate(root)
    except AmalgamationError as e:
        print(f"amalgamate.py: error: {e}", file=sys.stderr)
        return 2

    if args.check:
        stale = []
        for rel, text in files.items():
            path = root / rel
            if not path.is_file() or read_text(path) != text:
                stale.append(rel)
        if stale:
            for rel in stale:
                print(f"stale or missing: {rel}", file=sys.stderr)
            print("single_include is stale: run tests/tools/amalgamate.py", file=sys.stderr)
            return 1
        print(f"amalgamate.py: {len(files)} generated files are up to date")
        return 0

    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            path.write_bytes(text.encode("utf-8"))
            print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
