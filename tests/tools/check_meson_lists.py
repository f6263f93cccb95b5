#!/usr/bin/env python3
"""Fails when CMake builds a test source that no meson.build names.

    check_meson_lists.py --repo DIR --compile-commands BUILD/compile_commands.json

meson has no glob, so tests/<area>/meson.build lists its sources by hand while
tests/<area>/CMakeLists.txt may glob; this keeps the two from drifting apart.
"Built by CMake" = every source under tests/ in compile_commands.json (so only
what the current configuration builds). "Named by meson" = every quoted
'*.cpp' string in any meson.build of the repository, resolved against that
meson.build's folder. A source meson deliberately does not build (say, a
clang-only fuzz target) is listed in a meson.build anyway, in a
`not_built_by_meson = [...]` array with a comment saying why.
Python 3 standard library only.
"""

import argparse
import json
import pathlib
import re
import sys

STRING_RE = re.compile(r"'([^'\n]+\.(?:cpp|cc|cxx))'")
SKIP_DIRS = {".git", "subprojects", "build"}


def meson_named_sources(repo):
    named = set()
    for meson in sorted(repo.rglob("meson.build")):
        rel_parts = meson.relative_to(repo).parts
        if any(p in SKIP_DIRS or p.startswith("build") for p in rel_parts[:-1]):
            continue
        text = "\n".join(line.split("#", 1)[0] for line in meson.read_text().splitlines())
        for name in STRING_RE.findall(text):
            named.add((meson.parent / name).resolve())
    return named


def cmake_built_sources(repo, compile_commands):
    tests = (repo / "tests").resolve()
    built = set()
    for entry in json.loads(compile_commands.read_text()):
        path = pathlib.Path(entry["file"])
        if not path.is_absolute():
            path = pathlib.Path(entry["directory"]) / path
        path = path.resolve()
        if tests in path.parents:
            built.add(path)
    return built


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=pathlib.Path, required=True)
    parser.add_argument("--compile-commands", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    if not args.compile_commands.is_file():
        print(f"{args.compile_commands} not found: configure with CMAKE_EXPORT_COMPILE_COMMANDS=ON",
              file=sys.stderr)
        return 1
    built = cmake_built_sources(repo, args.compile_commands)
    named = meson_named_sources(repo)
    missing = sorted(built - named)
    for path in missing:
        print(f"built by CMake, missing from meson.build: {path.relative_to(repo)}", file=sys.stderr)
    if missing:
        print("add them to tests/<area>/meson.build (see meson.build at the top for the pattern)",
              file=sys.stderr)
        return 1
    print(f"check_meson_lists.py: all {len(built)} test sources CMake builds are named in meson.build files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
