#!/usr/bin/env python3
"""A C++20 TU that includes the websocketpp transport, built with GCC >= 11,
must fail with tether's one-line diagnostic and nothing else: no error from
websocketpp (not even included) nor from the headers built on the transport.
The same TU at C++17 must compile (the check is about the standard, nothing else).
The line names the fix, separate compilation: with TETHER_SEPARATE_COMPILATION
the same headers compile as C++20, and <tether/src.hpp> (the one file that
compiles websocketpp) says in one line that it needs C++17, or the macro.
"""
import argparse
import os
import subprocess
import sys
import tempfile

MESSAGE = "tether: websocketpp 0.8.2 does not compile as C++20 with GCC >= 11: define TETHER_SEPARATE_COMPILATION"
SRC_MESSAGE = "compile the file that includes <tether/src.hpp> at C++17"
SRC_NEEDS_MACRO = "<tether/src.hpp> is for separate compilation"
HEADERS = ("tether/tether.hpp", "tether/transport/websocketpp_transport.hpp",
           "tether/reconnecting_client.hpp", "tether/genesys.hpp")


def compile_tu(cxx, include, std, source, *defines):
    return subprocess.run([cxx, f"-std={std}", "-fsyntax-only", "-I", include, *defines, source],
                          capture_output=True, text=True, timeout=600)


def one_error(r, message):
    """None when the compile failed with exactly one error line containing message."""
    errors = [l for l in r.stderr.splitlines() if " error: " in l]
    if r.returncode == 0:
        return "compiled, expected the diagnostic"
    if len(errors) != 1 or message not in errors[0]:
        return f"expected exactly one error, tether's; got {len(errors)}:\n" + "\n".join(errors[:10])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cxx", required=True)
    ap.add_argument("--include", required=True)
    a = ap.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as d:
        for header in HEADERS:
            src = os.path.join(d, "tu.cpp")
            with open(src, "w") as f:
                f.write(f"#include <{header}>\nint main() {{ return 0; }}\n")
            why = one_error(compile_tu(a.cxx, a.include, "c++20", src), MESSAGE)
            if why:
                failures.append(f"{header} at C++20: {why}")
            else:
                print(f"ok: {header} at C++20: one line, tether's")
            r = compile_tu(a.cxx, a.include, "c++20", src, "-DTETHER_SEPARATE_COMPILATION")
            if r.returncode != 0:
                failures.append(f"{header} at C++20 with TETHER_SEPARATE_COMPILATION does not compile:\n"
                                + r.stderr[:2000])
            else:
                print(f"ok: {header} at C++20 with TETHER_SEPARATE_COMPILATION compiles")
        src = os.path.join(d, "compiled.cpp")
        with open(src, "w") as f:
            f.write("#include <tether/src.hpp>\n")
        why = one_error(compile_tu(a.cxx, a.include, "c++20", src, "-DTETHER_SEPARATE_COMPILATION"),
                        SRC_MESSAGE)
        if why:
            failures.append(f"tether/src.hpp at C++20: {why}")
        else:
            print("ok: tether/src.hpp at C++20: one line, tether's")
        why = one_error(compile_tu(a.cxx, a.include, "c++17", src), SRC_NEEDS_MACRO)
        if why:
            failures.append(f"tether/src.hpp without TETHER_SEPARATE_COMPILATION: {why}")
        else:
            print("ok: tether/src.hpp without TETHER_SEPARATE_COMPILATION: one line, tether's")
        src = os.path.join(d, "tu17.cpp")
        with open(src, "w") as f:
            f.write("#include <tether/tether.hpp>\nint main() { return 0; }\n")
        r = compile_tu(a.cxx, a.include, "c++17", src)
        if r.returncode != 0:
            failures.append("tether/tether.hpp at C++17 does not compile:\n" + r.stderr[:2000])
        else:
            print("ok: tether/tether.hpp at C++17 compiles")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
