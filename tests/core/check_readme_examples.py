#!/usr/bin/env python3
"""Compiles every ```cpp block of README.md that has a main(), and runs the
ones that need no network (they include only core and testing headers), so
the README's examples cannot rot. Usage: check_readme_examples.py README CXX INCLUDE_DIR WORK_DIR"""
import os
import re
import subprocess
import sys

readme, cxx, include_dir, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)
blocks = re.findall(r"```cpp\n(.*?)```", open(readme, encoding="utf-8").read(), re.S)
programs = [b for b in blocks if "int main(" in b]
if not programs:
    sys.exit("no example with a main() found in " + readme)
flags = ["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-DASIO_STANDALONE", "-I" + include_dir]
for i, code in enumerate(programs):
    src = os.path.join(work, f"readme_example_{i}.cpp")
    exe = os.path.join(work, f"readme_example_{i}")
    with open(src, "w", encoding="utf-8") as f:
        f.write(code)
    offline = "tether/testing/" in code and "reconnecting_client.hpp" not in code
    # examples that need a network are only compiled (syntax and types), not linked
    cmd = [cxx] + flags + ([src, "-o", exe, "-pthread"] if offline else ["-fsyntax-only", src])
    print("compiling README example", i, flush=True)
    subprocess.run(cmd, check=True, timeout=300)
    if offline:
        out = subprocess.run([exe], check=True, timeout=60, capture_output=True, text=True).stdout
        print(out, end="")
        if "handshakes in one virtual hour" in out and not out.startswith("6 handshakes"):
            sys.exit("the testing example should reconnect after every 4001: " + out)
print(len(programs), "README examples compiled")
