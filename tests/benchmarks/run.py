#!/usr/bin/python3
"""Runs tether's benchmarks on loopback and prints one table.

Every figure is next to a baseline measured in the same run (alternating
A B A B, medians). Usage, from the repository root:

    /usr/bin/python3 tests/benchmarks/run.py [--build-dir build-bench] [--quick]
                                             [--skip compile,callgrind,...] [--readme]

It configures and builds the benchmark programs (Release, -O2) when needed.
A failed or inconsistent measurement stops the run with a non-zero status;
no number is ever printed that was not measured.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "tests", "benchmarks")
STEPS = ["throughput", "reconnect", "storm", "rejected", "idle", "tenants", "compile", "callgrind"]


def fail(msg):
    print("run.py: FAILED: " + msg, file=sys.stderr)
    sys.exit(1)


def log(msg):
    print("[%6.1f s] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def run_json(cmd, timeout):
    """Runs one benchmark program; returns its JSON lines (the first is "env")."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail("%s took longer than %d s" % (" ".join(cmd), timeout))
    if p.returncode != 0:
        fail("%s exited with %d:\n%s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines or lines[0].get("kind") != "env":
        fail("%s printed no environment line" % " ".join(cmd))
    if not lines[0].get("optimized"):
        fail("%s was built without optimisation" % cmd[0])
    return lines


# Steps that need tether_bench (the websocketpp TU, expensive to build); the
# others use tether_bench_sim only.
WEBSOCKETPP_STEPS = {"throughput", "reconnect", "storm", "idle", "callgrind"}


# Peer-library baselines: separate programs, built only when CMake finds their
# library (tests/benchmarks/CMakeLists.txt). run.py installs nothing: a missing
# one is skipped with one line saying how to get it.
PEERS = {
    "beast": ("tether_bench_beast", "Boost.Beast 1.81",
              "Boost 1.81 headers not found by CMake (apt-get install libboost1.81-dev)"),
    "lws": ("tether_bench_lws", "libwebsockets 4.1",
            "pkg-config libwebsockets not found by CMake (apt-get install libwebsockets-dev)"),
}
PEER_STEPS = {"throughput", "idle", "reconnect"}
SKIPPED = []  # one line per peer baseline left out, for the notes


def cmake_targets(build_dir):
    r = subprocess.run(["cmake", "--build", build_dir, "--target", "help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return set(re.findall(r"\b(tether_bench\w*)", r.stdout))


def build(build_dir, steps):
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        log("configuring %s (Release)" % build_dir)
        subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                        "-DTETHER_BUILD_BENCHMARKS=ON"], check=True, stdout=subprocess.DEVNULL)
    targets = ["tether_bench_sim"] + (["tether_bench"] if steps & WEBSOCKETPP_STEPS else [])
    peers = {}
    if steps & PEER_STEPS:
        have = cmake_targets(build_dir)
        if any(PEERS[p][0] not in have for p in PEERS):
            # installed since the last configure? CMake looks again for what it did not find
            subprocess.run(["cmake", build_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            have = cmake_targets(build_dir)
        for p, (target, name, why) in sorted(PEERS.items()):
            if target in have:
                targets.append(target)
                peers[p] = os.path.join(build_dir, "tests", "benchmarks", target)
            else:
                SKIPPED.append("skipped the %s baseline (throughput and idle rows%s): %s"
                               % (name, "; tether on beast_transport: throughput, idle and reconnect "
                                  "rows" if p == "beast" else "", why))
                print("run.py: " + SKIPPED[-1], file=sys.stderr, flush=True)
    log("building " + " and ".join(targets))
    r = subprocess.run(["cmake", "--build", build_dir, "--target"] + targets,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        fail("build failed:\n" + r.stdout[-4000:])
    exe = os.path.join(build_dir, "tests", "benchmarks")
    return os.path.join(exe, "tether_bench"), os.path.join(exe, "tether_bench_sim"), peers


def cmake_cxx(build_dir):
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith("CMAKE_CXX_COMPILER:"):
                return line.split("=", 1)[1].strip()
    return "c++"


def ratio(a, b):
    return a / b if b else float("nan")


class Table:
    def __init__(self):
        self.rows = []

    def add(self, item, figure, tether, baseline, r, goal, ok=None):
        verdict = "" if ok is None else (" (met)" if ok else " (NOT met)")
        self.rows.append([item, figure, tether, baseline, r, goal + verdict])
        log("  %s | %s | %s | %s | %s" % tuple(self.rows[-1][1:]))  # a long run keeps what it measured

    def markdown(self):
        head = ["#", "figure", "tether", "baseline (same run)", "ratio", "goal"]
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        return "\n".join(out)


def fmt_rate(x):
    return "{:,.0f} msgs/s".format(x)


# Peer variants of tether_bench throughput: (variant, label in the table).
PEER_THROUGHPUT = {"beast": [("beast_async", "Boost.Beast async_read"), ("beast_sync", "Boost.Beast sync read")],
                   "lws": [("lws", "libwebsockets")]}
SERVER_BOUND = 0.8  # server CPU / client window at or above which the server is the cap


def step_throughput(bench, peers, table, quick, notes):
    plan = [(64, 1000000), (1024, 200000), (65536, 5000)]
    reps = 5
    if quick:
        plan, reps = [(64, 100000), (1024, 20000), (65536, 500)], 3
    peer_variants = [pv for p in sorted(peers) for pv in PEER_THROUGHPUT[p]]
    # tether's client on beast_transport: run by tether_bench_beast with --beast
    on_beast = ["beast_tether"] if "beast" in peers else []
    variants = ["plain", "tether"] + [v for v, _ in peer_variants] + on_beast
    peer_args = []
    for p in sorted(peers):
        peer_args += ["--" + p, peers[p]]
    notes.append("Throughput: %s messages per run (64 B / 1 KiB / 64 KiB), %d runs each, A B A B in one process; "
                 "fewer than 1,000,000 at 1 KiB and 64 KiB to fit the time budget."
                 % (" / ".join("{:,}".format(n) for _, n in plan), reps))
    bound_any = False
    for size, n in plan:
        log("throughput %d B x %d, %d runs each of %s" % (size, n, reps, ", ".join(variants)))
        res = run_json([bench, "throughput", "--size", str(size), "--count", str(n), "--reps", str(reps)]
                       + peer_args, 480 * len(variants) // 2)
        runs = [r for r in res if r.get("kind") == "throughput"]
        by = {v: [r for r in runs if r["variant"] == v] for v in variants}
        if any(len(by[v]) != reps for v in variants):
            fail("throughput: missing runs")
        med = {v: statistics.median(r["msgs_per_s"] for r in by[v]) for v in by}
        cpu = {v: statistics.median(r["client_cpu_s"] for r in by[v]) for v in by}
        srv = {v: statistics.median(r["server_cpu_s"] for r in by[v]) for v in by}
        # the server's share of the client's window: near 1, the server is the cap
        load = {v: statistics.median(r["server_cpu_s"] / r["seconds"] for r in by[v]) for v in by}

        def bound(*vs):
            hit = [v for v in vs if load[v] >= SERVER_BOUND]
            if not hit:
                return ""
            return " [SERVER-BOUND: server CPU %s of the client's window for %s; the figure is the server's cap]" % (
                "/".join("%.0f%%" % (100 * load[v]) for v in hit), ", ".join(hit))

        rt = ratio(med["tether"], med["plain"])
        label = {64: "64 B", 1024: "1 KiB", 65536: "64 KiB"}[size]
        table.add("1", "receive %s (n=%s; client CPU / server CPU)%s" % (label, "{:,}".format(n),
                                                                         bound("tether", "plain")),
                  "%s (%.2f s / %.2f s)" % (fmt_rate(med["tether"]), cpu["tether"], srv["tether"]),
                  "websocketpp %s (%.2f s / %.2f s)" % (fmt_rate(med["plain"]), cpu["plain"], srv["plain"]),
                  "%.3f" % rt, ">= 0.97", rt >= 0.97)
        per_cpu = {v: statistics.median(n / r["client_cpu_s"] for r in by[v]) for v in by}
        rc = ratio(per_cpu["tether"], per_cpu["plain"])
        table.add("1", "receive %s: messages per client CPU second (noise-robust view)" % label,
                  "{:,.0f}".format(per_cpu["tether"]), "websocketpp {:,.0f}".format(per_cpu["plain"]),
                  "%.3f" % rc, ">= 0.97", rc >= 0.97)
        for v, name in peer_variants:
            b = bound(v, "plain")
            bound_any = bound_any or bool(b)
            table.add("1", "receive %s, peer baseline: %s client instead of tether (client CPU / server CPU; "
                      "messages per client CPU second)%s" % (label, name, b),
                      "%s %s (%.2f s / %.2f s); {:,.0f} per CPU s".format(per_cpu[v])
                      % (name, fmt_rate(med[v]), cpu[v], srv[v]),
                      "websocketpp %s (%.2f s / %.2f s); {:,.0f} per CPU s".format(per_cpu["plain"])
                      % (fmt_rate(med["plain"]), cpu["plain"], srv["plain"]),
                      "%.3f (per CPU s %.3f)" % (ratio(med[v], med["plain"]), ratio(per_cpu[v], per_cpu["plain"])),
                      "(reported)")
        if on_beast:
            t, a, sy = "beast_tether", "beast_async", "beast_sync"
            b = bound(t, a)
            bound_any = bound_any or bool(b)
            rb = ratio(med[t], med[a])
            goal_b = size == 65536
            table.add("1", "receive %s, tether on beast_transport vs a raw Boost.Beast client (client CPU / server "
                      "CPU; messages per client CPU second)%s" % (label, b),
                      "%s (%.2f s / %.2f s); {:,.0f} per CPU s".format(per_cpu[t]) % (fmt_rate(med[t]), cpu[t], srv[t]),
                      "Beast async_read %s (%.2f s / %.2f s); {:,.0f} per CPU s; Beast sync read %s"
                      .format(per_cpu[a]) % (fmt_rate(med[a]), cpu[a], srv[a], fmt_rate(med[sy])),
                      "%.3f (per CPU s %.3f; vs sync %.3f)" % (rb, ratio(per_cpu[t], per_cpu[a]), ratio(med[t], med[sy])),
                      ">= 0.9 vs async" if goal_b else "(reported)", rb >= 0.9 if goal_b else None)
            b = bound(t, "plain")
            bound_any = bound_any or bool(b)
            rw = ratio(med[t], med["plain"])
            goal_w = size == 64
            table.add("1", "receive %s, tether on beast_transport vs raw websocketpp (client CPU / server CPU; "
                      "messages per client CPU second)%s" % (label, b),
                      "%s (%.2f s / %.2f s); {:,.0f} per CPU s".format(per_cpu[t]) % (fmt_rate(med[t]), cpu[t], srv[t]),
                      "websocketpp %s (%.2f s / %.2f s); {:,.0f} per CPU s".format(per_cpu["plain"])
                      % (fmt_rate(med["plain"]), cpu["plain"], srv["plain"]),
                      "%.3f (per CPU s %.3f)" % (rw, ratio(per_cpu[t], per_cpu["plain"])),
                      ">= 1.0" if goal_w else "(reported)", rw >= 1.0 if goal_w else None)
        for v in by:
            if srv[v] > 0.5 * cpu[v]:
                notes.append("WARNING: at %s the server used %.2f s CPU vs the %s client's %.2f s: "
                             "the load generator may limit the figure." % (label, srv[v], v, cpu[v]))
    if peer_variants:
        notes.append("Peer baselines (item 1): separate programs run by `tether_bench throughput --beast PATH --lws "
                     "PATH` as child processes against the same server process, in the same A B A B rounds "
                     "(websocketpp, tether, %s); each times itself from the end of its handshake to the N-th "
                     "message (wall clock and its thread's CPU) and fails unless it received exactly N text "
                     "messages of S bytes. All validate UTF-8 as the raw websocketpp client does. Server CPU is the "
                     "server process's CPU from its open to its last write; a row is marked SERVER-BOUND when that "
                     "is >= %.0f%% of the client's window (%s)."
                     % (", ".join([v for v, _ in peer_variants] + on_beast), 100 * SERVER_BOUND,
                        "see the marked rows" if bound_any else "no peer row was"))
    if on_beast:
        notes.append("tether on beast_transport (item 1): `tether_bench_beast throughput --variant tether`, in the "
                     "same program and build as the raw Beast clients (Boost mode, TETHER_USE_BOOST_ASIO, -O2) and "
                     "in the same rounds against the same server: basic_reconnecting_client<beast_transport>, one "
                     "on_message per message, pings off (as the tether-on-websocketpp variant), timed from on_open "
                     "to the N-th message. Goals: >= 0.9x the raw Beast async_read client at 64 KiB, >= 1.0x raw "
                     "websocketpp at 64 B; the other rows are reported.")


def step_reconnect(bench, peers, table, quick, notes):
    cycles = 20 if quick else 200
    log("reconnect after an expiry close, %d cycles each" % cycles)
    beast = ["--beast", peers["beast"]] if "beast" in peers else []
    res = run_json([bench, "reconnect", "--cycles", str(cycles)] + beast, 600)
    by = {r["variant"]: r for r in res if r.get("kind") == "reconnect"}
    if set(by) != {"fetch", "fresh"} | ({"beast_fresh"} if beast else set()):
        fail("reconnect: missing results")
    f, s = by["fetch"], by["fresh"]
    for stat in ("median_ms", "p99_ms"):
        name = stat.split("_")[0]
        rt = ratio(f["reconnect"][stat], f["baseline"][stat])
        table.add("2", "4001 close -> open again, token fetched, %s (%d cycles)" % (name, cycles),
                  "%.3f ms" % f["reconnect"][stat],
                  "fetch + connect %.3f ms (fetch %.3f + connect %.3f)"
                  % (f["baseline"][stat], f["baseline_fetch"][stat], f["baseline_connect"][stat]),
                  "%.2f" % rt, "<= 1.1", rt <= 1.1)
    for stat in ("median_ms", "p99_ms"):
        name = stat.split("_")[0]
        rt = ratio(s["reconnect"][stat], s["baseline"][stat])
        table.add("2", "4001 close -> open again, token already fresh, %s (%d cycles)" % (name, cycles),
                  "%.3f ms" % s["reconnect"][stat], "connect %.3f ms" % s["baseline"][stat],
                  "%.2f" % rt, "<= 1.1", rt <= 1.1)
    if beast:
        b = by["beast_fresh"]
        for stat in ("median_ms", "p99_ms"):
            name = stat.split("_")[0]
            rt = ratio(b["reconnect"][stat], b["baseline"][stat])
            table.add("2", "4001 close -> open again, token already fresh, tether on beast_transport, %s (%d cycles; "
                      "close frame -> on_close %.3f ms)" % (name, cycles, b["close_frame_to_on_close"][stat]),
                      "%.3f ms" % b["reconnect"][stat], "raw Beast connect %.3f ms" % b["baseline"][stat],
                      "%.2f" % rt, "<= 1.1", rt <= 1.1)
        notes.append("Reconnect on beast_transport: `tether_bench reconnect --beast PATH` runs `tether_bench_beast "
                     "reconnect` against the same seed server (it sends 'x' on the server's command pipe itself): "
                     "the fresh variant above with basic_reconnecting_client<beast_transport> and a "
                     "shared_token_source whose fetcher POSTs to the same /oauth/token (one request per fetch); "
                     "the baseline, alternating with the "
                     "cycles, is a raw Beast client as Beast's async example makes one (async_resolve, "
                     "async_connect, async_handshake with the bearer token), timed to the end of its handshake. "
                     "beast_transport reports the peer's close frame as it is parsed, not after the TCP teardown: "
                     "close frame -> on_close %.3f ms (median) against %.3f ms on websocketpp in the same run."
                     % (b["close_frame_to_on_close"]["median_ms"], s["close_frame_to_on_close"]["median_ms"]))
    notes.append("Reconnect, where the time goes (medians): from the close frame's stamp to the client's on_close "
                 "(websocketpp reports a close only after the closing handshake and the TCP teardown, before tether "
                 "sees anything; the baselines contain no close) %.3f ms with a fetch, %.3f ms with a fresh token; "
                 "on_close to on_token (the token fetch inside the client) %.3f ms vs the baseline fetch %.3f ms."
                 % (f["close_frame_to_on_close"]["median_ms"], s["close_frame_to_on_close"]["median_ms"],
                    f["on_close_to_on_token"]["median_ms"], f["baseline_fetch"]["median_ms"]))
    notes.append("Reconnect: timed from the server's CLOCK_MONOTONIC stamp in the 4001 close frame to the client's "
                 "on_open; baselines alternate with the cycles (oauth2_client_credentials fetch from the same "
                 "endpoint, plain websocketpp connect with a bearer token); the baseline is the per-pair sum. "
                 "client_options::auth_failure_uptime = 0 because the cycles are milliseconds long. The fresh "
                 "variant: a shared_token_source refreshed through a second handle before the close; the run "
                 "fails if the reconnect fetched a token.")


def step_storm(bench, table, quick, notes):
    k = 100 if quick else 1000
    log("refresh storm, %d clients" % k)
    res = run_json([bench, "storm", "--clients", str(k)], 300)
    s = [r for r in res if r.get("kind") == "storm"][0]
    table.add("3", "storm: %d clients, one shared_token_source, 4001 to all: token requests at the endpoint" % k,
              str(s["token_requests"]), "%d clients" % k, "-", "1", s["token_requests"] == 1)
    table.add("3", "storm: time from the first close to all %d open again (closes sent within %.1f ms; "
              "handshakes rejected: %d)" % (k, s["close_spread_ms"], s["handshakes_rejected"]),
              "%.0f ms" % s["all_open_again_ms"], "-", "-", "(reported)")


def step_rejected(sim, table, quick, notes):
    log("rejected credential, 10 virtual minutes")
    res = run_json([sim], 120)
    by = {r["variant"]: r for r in res if r.get("kind") == "rejected"}
    t, n = by["tether"], by["naive"]
    limit = t["auth_failure_limit"] + 1
    table.add("4", "always-rejected credential, 10 min virtual: handshakes", str(t["handshakes"]),
              "naive 1 s loop %d" % n["handshakes"], "%.4f" % ratio(t["handshakes"], n["handshakes"]),
              "<= %d (limit + 1); naive ~600" % limit, t["handshakes"] <= limit)
    table.add("4", "always-rejected credential, 10 min virtual: token requests", str(t["token_requests"]),
              "naive 1 s loop %d" % n["token_requests"], "%.4f" % ratio(t["token_requests"], n["token_requests"]),
              "<= %d (limit + 1)" % limit, t["token_requests"] <= limit)
    notes.append("Rejected credential: tether stops with \"%s\". The naive loop waits 1 s after each close, fetches "
                 "a token (50 ms virtual) and reconnects, so it makes %d attempts in 600 s rather than 600."
                 % (t["stop_reason"], n["handshakes"]))


PEER_IDLE = {"beast": "Boost.Beast (one io_context, an async_read pending each)",
             "lws": "libwebsockets (one context)"}


def step_idle(bench, peers, table, quick, notes):
    plan = [(1000, 3), (10000, 2)] if not quick else [(200, 1)]
    on_beast = ["beast_tether"] if "beast" in peers else []  # tether on beast_transport
    variants = ["plain", "tether"] + sorted(peers) + on_beast
    setup_kb = []
    for k, reps in plan:
        log("idle connections: %d, %d runs each of %s (separate processes, A B A B)" % (k, reps, ", ".join(variants)))
        runs = {v: [] for v in variants}
        for _ in range(reps):
            for v in variants:
                cmd = [bench, "idle", "--variant", v, "--count", str(k)]
                if v in peers:
                    cmd += ["--peer", peers[v]]
                elif v == "beast_tether":
                    cmd += ["--peer", peers["beast"]]
                res = run_json(cmd, 300)
                runs[v].append([r for r in res if r.get("kind") == "idle"][0])
        kb = {v: statistics.median(r["kb_per_connection"] for r in runs[v]) for v in runs}
        secs = {v: statistics.median(r["open_all_s"] for r in runs[v]) for v in runs}
        thr = {v: max(r["threads"] for r in runs[v]) for v in runs}
        rt = ratio(kb["tether"], kb["plain"])
        table.add("5", "%s idle connections, one process: resident memory per connection" % "{:,}".format(k),
                  "%.1f kB" % kb["tether"], "websocketpp %.1f kB" % kb["plain"], "%.2f" % rt, "<= 1.1", rt <= 1.1)
        table.add("5", "%s idle connections: time to open all (128 in flight); threads"
                  % "{:,}".format(k), "%.2f s; %d threads" % (secs["tether"], thr["tether"]),
                  "websocketpp %.2f s; %d threads" % (secs["plain"], thr["plain"]),
                  "%.2f" % ratio(secs["tether"], secs["plain"]), "(reported)")
        for v in sorted(peers):
            table.add("5", "%s idle connections, peer baseline: %s client instead of tether: resident memory per "
                      "connection; time to open all; threads" % ("{:,}".format(k), PEER_IDLE[v]),
                      "%s %.1f kB; %.2f s; %d threads" % (PEERS[v][1], kb[v], secs[v], thr[v]),
                      "websocketpp %.1f kB; %.2f s; %d threads" % (kb["plain"], secs["plain"], thr["plain"]),
                      "%.2f" % ratio(kb[v], kb["plain"]), "(reported)")
        if on_beast:
            t = "beast_tether"
            rb = ratio(kb[t], kb["beast"])
            setup_kb += [r["setup_kb"] for r in runs[t]]
            table.add("5", "%s idle connections, tether on beast_transport vs a raw Boost.Beast client: resident "
                      "memory per connection; time to open all; threads" % "{:,}".format(k),
                      "%.1f kB; %.2f s; %d threads" % (kb[t], secs[t], thr[t]),
                      "Boost.Beast %.1f kB; %.2f s; %d threads" % (kb["beast"], secs["beast"], thr["beast"]),
                      "%.2f (vs websocketpp %.2f)" % (rb, ratio(kb[t], kb["plain"])), "<= 1.1", rb <= 1.1)
    if on_beast:
        notes.append("Idle, tether on beast_transport (item 5): `tether_bench idle --variant beast_tether --peer PATH` "
                     "runs `tether_bench_beast idle --variant tether`: K basic_reconnecting_client, each on its own "
                     "beast_transport (default options, so a ping timer each, as the websocketpp tether variant), "
                     "one io_context, 128 in flight; the same VmRSS reading as the raw Beast row. A first "
                     "beast_transport is made and kept before the first reading, so that what a process pays once "
                     "(the transport's code, a TLS trust store if the settings load one) is not spread over the "
                     "connections: it took %.0f kB (median of the runs). The second thread is Boost.Asio's resolver "
                     "thread (the transport resolves the URL's host; the raw Beast client connects to an endpoint)."
                     % statistics.median(setup_kb))


def step_tenants(sim, table, quick, notes):
    """Item 8: K tenants in one process, virtual time (tether_bench_sim tenants)."""
    k, hours, reps = (10000, 4, 3) if not quick else (500, 2, 1)
    spread = 120
    # name: (arguments, what it is); run alternately, one process each
    plan = {
        "own": (["--variant", "tenants", "--spread", str(spread)], "own source, jitter 0.5"),
        "own_nojitter": (["--variant", "tenants", "--spread", str(spread), "--jitter", "0"], "no jitter"),
        "shared": (["--variant", "shared"], "one source"),
        "same": (["--variant", "tenants", "--spread", "0"], "own source, equal lifetimes, jitter 0.5"),
        "same_nojitter": (["--variant", "tenants", "--spread", "0", "--jitter", "0"], "equal lifetimes, no jitter"),
    }
    log("tenants: %d clients, %d virtual hours, %d runs each (separate processes, alternating)" % (k, hours, reps))
    runs = {v: [] for v in plan}
    for _ in range(reps):
        for v, (args, _) in plan.items():
            res = run_json([sim, "tenants", "--count", str(k), "--hours", str(hours)] + args, 600)
            runs[v].append([r for r in res if r.get("kind") == "tenants"][0])
    med = lambda v, f: statistics.median(f(r) for r in runs[v])
    peak = {v: med(v, lambda r: r["peak_refreshes_per_s"]) for v in plan}
    kn = "{:,}".format(k)
    table.add("8", "%s tenants, own token source each, lifetimes 1 h +- %d s, all issued in the same second: "
              "most token refreshes in any 1 s window (%d virtual hours)" % (kn, spread, hours),
              "%d" % peak["own"], "no jitter %d" % peak["own_nojitter"],
              "%.2f" % ratio(peak["own"], peak["own_nojitter"]), "(reported)")
    table.add("8", "%s tenants, own token source each, all lifetimes 1 h, issued in the same second: most token "
              "refreshes in any 1 s window (%d virtual hours)" % (kn, hours),
              "%d" % peak["same"], "no jitter %d" % peak["same_nojitter"],
              "%.4f" % ratio(peak["same"], peak["same_nojitter"]), "(reported)")
    kb = {v: med(v, lambda r: r["kb_per_tenant"]) for v in ("own", "shared")}
    heap = {v: med(v, lambda r: r["heap_bytes_per_tenant"]) for v in ("own", "shared")}
    table.add("8", "%s tenants on the simulated transport: resident memory per tenant (connection + token source); "
              "heap in use" % kn, "%.2f kB; %.0f B" % (kb["own"], heap["own"]),
              "1 source for all %.2f kB; %.0f B" % (kb["shared"], heap["shared"]), "%.2f" % ratio(kb["own"], kb["shared"]),
              "(reported)")
    cpu = {v: med(v, lambda r: statistics.median(r["cpu_s_per_hour"])) for v in ("own", "shared")}
    table.add("8", "%s tenants: process CPU per virtual hour of steady state (a refresh and a handover per tenant "
              "per hour)" % kn, "%.3f s" % cpu["own"], "1 source for all %.3f s" % cpu["shared"],
              "%.2f" % ratio(cpu["own"], cpu["shared"]), "(reported)")
    src = [r for r in run_json([sim, "sources", "--count", str(k)], 120) if r.get("kind") == "sources"][0]
    table.add("8", "one token source alone (cached token, refresh timer armed): heap in use, with steady_timing "
              "(an asio::steady_timer, as in production)", "%.0f B" % src["heap_bytes_per_source_steady"],
              "on the simulation's timer (as above) %.0f B" % src["heap_bytes_per_source_simulation"],
              "%.2f" % ratio(src["heap_bytes_per_source_steady"], src["heap_bytes_per_source_simulation"]),
              "(reported)")
    o = runs["own"][0]
    notes.append("Tenants (item 8): `tether_bench_sim tenants`, %s basic_reconnecting_client on simulated_transport "
                 "and testing::simulation (virtual time, one thread), each tenant with its own issuer (100 ms virtual "
                 "latency, lifetime drawn once per tenant) and its own shared_token_source (seeded refresh_jitter), "
                 "or all on one source; all start at t = 0. The server closes a connection with 4001 at its token's "
                 "expiry; clients hand over 60 s before (renew_before_expiry), so each virtual hour holds one refresh "
                 "and one handover per tenant (%d refreshes and %d handovers in %d hours; every run checks that all "
                 "refreshes were proactive and that no 4001 close and no rejected handshake happened). Refresh "
                 "window: [t, t + 1 s) for every refresh t, over the whole run. With lifetimes spread over +- %d s "
                 "the first refreshes are already spread wider than the jitter's 135 s window, so jitter does not "
                 "lower that peak; with equal lifetimes (one issuer configuration for every tenant) it does. Memory: "
                 "VmRSS (as item 5) and mallinfo2 heap in use, before the simulation exists and once all are open; it "
                 "includes the simulated transport's and server's per-connection state, not websocketpp's, and the "
                 "token source's timer is a simulation timer, not an asio::steady_timer. CPU: "
                 "CLOCK_PROCESS_CPUTIME_ID per virtual hour, median of the hours, the simulation's own work included. "
                 "Medians of %d runs; set-up of all %s clients took %.2f s CPU."
                 % (kn, o["refreshes"], o["handovers"], hours, spread, reps, kn, o["open_cpu_s"]))


def compile_once(cxx, src, obj, include_dir, std="c++17", defines=()):
    cmd = [cxx, "-std=" + std, "-O2", "-DASIO_STANDALONE", *defines, "-I", os.path.join(ROOT, include_dir),
           "-Wall", "-Wextra", "-Wpedantic", "-c", src, "-o", obj]
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    out = p.stdout.read().decode()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0 or out.strip():
        fail("compiling %s: exit %d, output:\n%s" % (src, p.returncode, out[-3000:]))
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def boost_found(build_dir):
    """Whether CMake found Boost (the Beast compile rows need its headers)."""
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith("Boost_DIR:"):
                return not line.strip().endswith("NOTFOUND")
    return False


def step_compile(cxx, table, quick, notes, with_beast=False):
    reps = 1 if quick else 3
    sep = ("-DTETHER_SEPARATE_COMPILATION",)
    # tether: the single header, as the issue asks; wss_only: the split headers
    # and the wss-only transport, what a compile-conscious user would write;
    # separate*: the same application files in separate mode, at C++20 (the
    # transport is compiled once, in `src`, at C++17).
    srcs = {"tether": ("tether_tls_client.cpp", "single_include", "c++17", ()),
            "wss_only": ("tether_wss_only_client.cpp", "include", "c++17", ()),
            "separate": ("tether_wss_only_client.cpp", "include", "c++20", sep),
            "separate_single": ("tether_tls_client.cpp", "single_include", "c++20", sep),
            "src": ("tether_src.cpp", "include", "c++17", sep),
            "wspp": ("wspp_tls_client.cpp", "include", "c++17", ())}
    order = ["wspp", "tether", "wss_only", "separate", "separate_single", "src"]
    if with_beast:
        # tether's client on beast_transport in Boost mode, next to a raw Beast wss:// client
        srcs["beast_tether"] = ("tether_beast_client.cpp", "include", "c++17", ("-DTETHER_USE_BOOST_ASIO",))
        srcs["beast"] = ("beast_tls_client.cpp", "include", "c++17", ())
        order += ["beast", "beast_tether"]
    else:
        SKIPPED.append("skipped the compile rows of tether on beast_transport: Boost 1.81 headers not found by "
                       "CMake (apt-get install libboost1.81-dev)")
        print("run.py: " + SKIPPED[-1], file=sys.stderr, flush=True)
    res = {v: [] for v in srcs}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(reps):
            for v in order:
                log("compile %s (%d/%d)" % (v, i + 1, reps))
                src, inc, std, defines = srcs[v]
                res[v].append(compile_once(cxx, os.path.join(HERE, "compile", src), os.path.join(tmp, v + ".o"),
                                           inc, std, defines))
    cpu = {v: statistics.median(r[1] for r in res[v]) for v in res}
    mem = {v: statistics.median(r[2] for r in res[v]) for v in res}
    cc = os.path.basename(cxx)
    base = "websocketpp TLS client %.1f s; %.0f MiB" % (cpu["wspp"], mem["wspp"])
    rt = ratio(cpu["tether"], cpu["wspp"])
    table.add("6", "compile a wss:// client TU at -O2: CPU seconds (%s)" % cc,
              "%.1f s" % cpu["tether"], "websocketpp TLS client %.1f s" % cpu["wspp"], "%.2f" % rt,
              "<= 1.15", rt <= 1.15)
    rm = ratio(mem["tether"], mem["wspp"])
    table.add("6", "compile: peak memory", "%.0f MiB" % mem["tether"], "%.0f MiB" % mem["wspp"], "%.2f" % rm,
              "<= 1.15", rm <= 1.15)
    rw = ratio(cpu["wss_only"], cpu["wspp"])
    table.add("6", "header-only with only what it uses (core.hpp, the transport header, websocketpp_wss_transport): "
              "CPU seconds; peak memory", "%.1f s; %.0f MiB" % (cpu["wss_only"], mem["wss_only"]), base,
              "%.2f" % rw, "<= 1.15", rw <= 1.15)
    rs = ratio(cpu["separate"], cpu["wspp"])
    table.add("6", "separate compilation: the same application TU at -std=c++20 (%s); peak memory" % cc,
              "%.1f s; %.0f MiB" % (cpu["separate"], mem["separate"]), base, "%.2f" % rs, "<= 0.5", rs <= 0.5)
    rss = ratio(cpu["separate_single"], cpu["wspp"])
    table.add("6", "separate compilation, single header (tether.hpp) at -std=c++20; peak memory",
              "%.1f s; %.0f MiB" % (cpu["separate_single"], mem["separate_single"]), base, "%.2f" % rss,
              "(reported)")
    rsrc = ratio(cpu["src"], cpu["wspp"])
    table.add("6", "separate compilation: the one C++17 file with <tether/src.hpp> (all three transports), "
              "compiled once per program; peak memory", "%.1f s; %.0f MiB" % (cpu["src"], mem["src"]), base,
              "%.2f" % rsrc, "(reported)")
    if with_beast:
        rb = ratio(cpu["beast_tether"], cpu["beast"])
        table.add("6", "compile a wss:// client TU on Boost.Beast at -O2 (core.hpp and beast_transport.hpp, Boost mode): "
                  "CPU seconds; peak memory", "%.1f s; %.0f MiB" % (cpu["beast_tether"], mem["beast_tether"]),
                  "raw Boost.Beast wss:// client %.1f s; %.0f MiB (websocketpp TLS client %.1f s)"
                  % (cpu["beast"], mem["beast"], cpu["wspp"]),
                  "%.2f (vs websocketpp %.2f)" % (rb, ratio(cpu["beast_tether"], cpu["wspp"])), "(reported)")
        notes.append("Compile, Beast: tether_beast_client.cpp is tether_wss_only_client.cpp on beast_transport "
                     "(<tether/core.hpp>, <tether/transport/beast_transport.hpp>, -DTETHER_USE_BOOST_ASIO); its "
                     "baseline beast_tls_client.cpp is the same connection written on Boost.Beast alone as Beast's "
                     "async wss:// client example does it (resolve, connect, TLS with SNI and host name "
                     "verification, upgrade with a bearer token, a read loop). Same flags, same alternation.")
    notes.append("Compile: the tether TU includes single_include/tether/tether.hpp (core, both websocketpp "
                 "endpoints, OAuth2 with nlohmann/json; Genesys is in genesys.hpp) and builds a wss:// "
                 "basic_reconnecting_client; the wss-only row includes core.hpp and the transport header and uses "
                 "websocketpp_wss_transport; the separate rows compile the same files with "
                 "-DTETHER_SEPARATE_COMPILATION at -std=c++20, and tether_src.cpp (#include <tether/src.hpp>) is the "
                 "file compiled once; the baseline includes websocketpp's TLS client config and builds the "
                 "same connection. CPU time (user+sys) and peak RSS of the compiler from wait4(), median of %d, "
                 "alternating." % reps)


def callgrind_ir(bench, variant, n, tmp):
    out = os.path.join(tmp, "cg.%p")
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, bench, "throughput", "--size", "64",
           "--count", str(n), "--reps", "1", "--only", variant]
    res = run_json(cmd, 600)
    pid = res[0]["pid"]
    path = os.path.join(tmp, "cg.%d" % pid)
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    fail("no instruction total in " + path)


def step_callgrind(bench, table, quick, notes):
    if not shutil.which("valgrind"):
        fail("valgrind not found (Debian: valgrind); skip this step with --skip callgrind")
    n1, n2 = (20000, 120000) if not quick else (5000, 25000)
    per = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in ("plain", "tether"):
            log("callgrind %s: %d and %d messages of 64 B" % (v, n1, n2))
            a = callgrind_ir(bench, v, n1, tmp)
            b = callgrind_ir(bench, v, n2, tmp)
            per[v] = (b - a) / float(n2 - n1)
    rt = ratio(per["tether"], per["plain"])
    table.add("7", "instructions per received 64 B message (callgrind, client process)",
              "%.0f" % per["tether"], "websocketpp %.0f" % per["plain"], "%.3f" % rt, "<= 1.03 (1/0.97)",
              rt <= 1 / 0.97)
    notes.append("Instructions: callgrind on the client process only (the server is a forked child with its own "
                 "output file); per message = (Ir(%d) - Ir(%d)) / %d, so set-up cancels out. `perf stat -e "
                 "instructions` is not supported on this machine." % (n2, n1, n2 - n1))


def main():
    global T0
    T0 = time.monotonic()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--quick", action="store_true", help="small sizes (checks the set-up, not for figures)")
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: " + ",".join(STEPS))
    ap.add_argument("--readme", action="store_true", help="write the table into tests/benchmarks/README.md")
    opts = ap.parse_args()
    skip = set(s for s in opts.skip.split(",") if s)
    if skip - set(STEPS):
        fail("unknown step(s): " + ",".join(skip - set(STEPS)))
    build_dir = os.path.abspath(opts.build_dir)
    bench, sim, peers = build(build_dir, set(STEPS) - skip)
    env = run_json([sim], 60)[0]
    table, notes = Table(), []
    if "throughput" not in skip: step_throughput(bench, peers, table, opts.quick, notes)
    if "reconnect" not in skip: step_reconnect(bench, peers, table, opts.quick, notes)
    if "storm" not in skip: step_storm(bench, table, opts.quick, notes)
    if "rejected" not in skip: step_rejected(sim, table, opts.quick, notes)
    if "idle" not in skip: step_idle(bench, peers, table, opts.quick, notes)
    if "tenants" not in skip: step_tenants(sim, table, opts.quick, notes)
    if "compile" not in skip:
        step_compile(cmake_cxx(build_dir), table, opts.quick, notes, boost_found(build_dir))
    if "callgrind" not in skip: step_callgrind(bench, table, opts.quick, notes)
    notes += ["Not measured: " + line for line in SKIPPED]
    elapsed = time.monotonic() - T0
    head = ("Machine: %d cores (%d online), %s, programs at -O2; load average at the end %s; run took %.0f s%s."
            % (env["cores"], env["online_cpus"], env["compiler"], " ".join("%.1f" % x for x in os.getloadavg()),
               elapsed, " (--quick: set-up check only, not figures)" if opts.quick else ""))
    text = head + "\n\n" + table.markdown() + "\n\n" + "\n".join("- " + n for n in notes) + "\n"
    print(text)
    if opts.readme:
        path = os.path.join(HERE, "README.md")
        with open(path) as f:
            readme = f.read()
        new = re.sub(r"(<!-- table:begin -->\n).*?(<!-- table:end -->)",
                     lambda m: m.group(1) + text + m.group(2), readme, flags=re.S)
        if new == readme and "<!-- table:begin -->" not in readme:
            fail("README.md has no table markers")
        with open(path, "w") as f:
            f.write(new)


if __name__ == "__main__":
    main()
