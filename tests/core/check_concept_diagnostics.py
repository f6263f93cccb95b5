#!/usr/bin/env python3
"""Compile-fail tests for the concept diagnostics.

    check_concept_diagnostics.py --cxx CXX --include DIR --source concept_diagnostics.cpp
                                 [--std c++17 --std c++20] [--flag=-I/usr/include/x ...]

For every row of the four concept tables, compiles concept_diagnostics.cpp
with BROKEN_<ROW> (one sample policy misses that row's expression) and checks
that the compilation fails, that the first error is the client's static_assert
naming that row, and that no other row is named. Without a BROKEN_* macro it
must compile cleanly. Python 3 standard library only.
"""

import argparse
import concurrent.futures
import re
import subprocess
import sys

# row macro -> the text its static_assert must show
ROWS = {
    "EXECUTOR_TYPE": "Transport requirement not met: T::executor_type must name an Asio executor type",
    "CLOCK_TYPE": "Transport requirement not met: T::clock_type must name a chrono clock",
    "TIMER_TYPE": "Transport requirement not met: T::timer_type must name a timer type",
    "TIMER_EXPIRES_AFTER": "Transport requirement not met: tm.expires_after(d) must be valid",
    "TIMER_ASYNC_WAIT": "Transport requirement not met: tm.async_wait(h) must be valid",
    "TIMER_CANCEL": "Transport requirement not met: tm.cancel() must be valid",
    "GET_EXECUTOR": "Transport requirement not met: t.get_executor() must return executor_type",
    "NOW": "Transport requirement not met: t.now() must return clock_type::time_point",
    "MAKE_TIMER": "Transport requirement not met: t.make_timer() must return timer_type",
    "CONNECT": "Transport requirement not met: t.connect(req, sink) must return connection_id",
    "SEND": "Transport requirement not met: t.send(id, data, kind) must return std::error_code",
    "CLOSE": "Transport requirement not met: t.close(id, code, reason) must be valid",
    "ASYNC_GET_TOKEN": "TokenPolicy requirement not met: p.async_get_token(h) must be valid",
    "INVALIDATE": "TokenPolicy requirement not met: p.invalidate(s) must be valid",
    "CANCEL": "TokenPolicy requirement not met: p.cancel() must be valid",
    "DECIDE": "ClosePolicy requirement not met: p.decide(ev) must return reconnect_decision",
    "NEXT_DELAY": "Backoff requirement not met: b.next_delay(c) must return std::chrono::milliseconds",
    "RESET": "Backoff requirement not met: b.reset() must be valid",
}

ERROR_RE = re.compile(r"\berror\b[:(]")
NAMED_RE = re.compile(r"(\w+) requirement not met: (.*?) must ")


def compile_case(args, std, macro):
    cmd = [args.cxx, f"-std={std}", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic",
           "-DASIO_STANDALONE", "-I", args.include, *args.flag, args.source]
    cmd.append(f"-DBROKEN_{macro}" if macro else "-DEXPECT_ALL_MET")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout


def check(args, std, macro):
    rc, out = compile_case(args, std, macro)
    where = f"[{std}] {('BROKEN_' + macro) if macro else 'all rows met'}"
    lines = out.splitlines()
    errors = [line for line in lines if ERROR_RE.search(line)]
    if macro is None:
        if rc != 0 or errors:
            return False, f"{where}: expected a clean compile, got:\n{out}"
        return True, f"{where}: compiles"
    expected = ROWS[macro]
    if rc == 0:
        return False, f"{where}: compiled, expected an error naming '{expected}'"
    if expected not in out:
        return False, f"{where}: the error does not name the row ('{expected}'):\n{out}"
    if not errors or expected not in errors[0]:
        return False, f"{where}: the first error is not the row's static_assert:\n" + "\n".join(errors[:5])
    named = {m.group(0) for m in NAMED_RE.finditer(out)}
    others = [n for n in named if n not in expected + " must "]
    if others:
        return False, f"{where}: other rows were named too: {sorted(others)}"
    return True, f"{where}: fails naming the row ({len(errors)} error line(s))"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cxx", required=True)
    parser.add_argument("--include", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--std", action="append", help="standards to try (default: c++17)")
    parser.add_argument("--flag", action="append", default=[], help="extra compiler flag")
    parser.add_argument("-j", type=int, default=2)
    args = parser.parse_args(argv)
    stds = args.std or ["c++17"]
    cases = [(std, macro) for std in stds for macro in [None, *ROWS]]
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.j) as pool:
        for ok, note in pool.map(lambda c: check(args, *c), cases):
            print(("ok    " if ok else "FAIL  ") + note)
            failed += 0 if ok else 1
    print(f"{len(cases) - failed} of {len(cases)} cases as expected")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
