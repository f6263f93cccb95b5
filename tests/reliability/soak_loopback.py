#!/usr/bin/python3
"""Soak over real loopback (issue 12): tether-cli against a Python `websockets`
server that closes every connection with 4001 ("token expired") after one
message, and a Python token endpoint. Each cycle is: expiry close, the spent
token reported, one refresh over HTTP, reconnect. The client's open file
descriptors, threads and RSS are read from /proc every 100 cycles; the slope
is printed and bounded. 127.0.0.1 only; bounded by a timeout.

usage: soak_loopback.py --cli PATH [--cycles N]
"""
import argparse
import asyncio
import json
import os
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fault_matrix import SECRET, TokenEndpoint  # noqa: E402


def sample(pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    status = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    return fds, int(status["Threads"]), int(status["VmRSS"].split()[0])


def slope(xs, ys):
    n = len(xs)
    sx, sy = sum(xs), sum(ys)
    sxx = sum(x * x for x in xs)
    sxy = sum(x * y for x, y in zip(xs, ys))
    return (n * sxy - sx * sy) / (n * sxx - sx * sx)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--cycles", type=int, default=1000)
    a = ap.parse_args()

    tokens = TokenEndpoint()
    await tokens.start()
    opens = 0

    async def handler(ws, path=None):
        nonlocal opens
        opens += 1
        await ws.send("hello %d" % opens)
        await ws.close(4001, "Token expired")

    async def process_request(path, headers):
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] != tokens.issued[-1]:
            return 401, [], b"stale token\n"  # only the newest token is good
        return None

    server = await websockets.serve(handler, "127.0.0.1", 0, process_request=process_request, ping_interval=None)
    port = server.sockets[0].getsockname()[1]
    env = dict(os.environ, TETHER_CLIENT_SECRET=SECRET)
    proc = await asyncio.create_subprocess_exec(
        a.cli, "--quiet", "--backoff-initial", "1", "--backoff-max", "10", "--max-messages", str(a.cycles),
        # every token is closed with 4001 at once: not a sign of bad credentials here
        "--auth-failure-limit", str(a.cycles + 10),
        "--token-url", "http://127.0.0.1:%d/oauth/token" % tokens.port, "--client-id", "soak",
        "ws://127.0.0.1:%d/stream" % port, stdout=asyncio.subprocess.PIPE, env=env)
    samples = []  # (cycle, fds, threads, rss_kb)
    events = {"open": 0, "close": 0, "message": 0}
    rejected = 0
    start = time.monotonic()
    deadline = start + 300
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), max(1, deadline - time.monotonic()))
        if not line:
            break
        e = json.loads(line)
        name = e["event"]
        if name in events:
            events[name] += 1
        if name == "close" and e.get("http_status") == 401:
            rejected += 1
        # not at the last message: the client is stopping then (its resolver thread exits)
        if name == "message" and events["message"] % 100 == 0 and events["message"] < a.cycles:
            try:
                samples.append((events["message"], *sample(proc.pid)))
            except (FileNotFoundError, KeyError):  # exiting: no longer sampled
                pass
    await proc.wait()
    elapsed = time.monotonic() - start
    server.close()
    await server.wait_closed()

    ok = True

    def check(cond, what):
        nonlocal ok
        if not cond:
            print("FAILED:", what)
            ok = False

    check(events["message"] == a.cycles, "%d messages, expected %d" % (events["message"], a.cycles))
    check(events["open"] >= a.cycles, "%d opens" % events["open"])
    check(rejected == 0, "%d handshakes with a stale token" % rejected)
    check(len(tokens.issued) >= a.cycles, "%d tokens fetched for %d expiries" % (len(tokens.issued), a.cycles))
    check(len(samples) >= 5, "too few samples")
    if len(samples) >= 5:
        xs = [s[0] for s in samples[1:]]  # skip the first sample: allocator warm-up
        fds = {s[1] for s in samples}
        thr = {s[2] for s in samples}
        rss_slope = slope(xs, [s[3] for s in samples[1:]]) * 1000
        fd_slope = slope(xs, [s[1] for s in samples[1:]]) * 1000
        print("soak (loopback): %d cycles in %.1f s (%.1f ms per cycle), tokens fetched %d, "
              "fds %s, threads %s, RSS %d kB -> %d kB, slope %.1f kB and %.2f fds per 1,000 cycles"
              % (a.cycles, elapsed, elapsed * 1000 / a.cycles, len(tokens.issued), sorted(fds), sorted(thr),
                 samples[0][3], samples[-1][3], rss_slope, fd_slope))
        check(max(fds) - min(fds) <= 2, "open descriptors vary: %s" % sorted(fds))
        check(len(thr) == 1, "thread count varies: %s" % sorted(thr))
        # a 1 kB-per-cycle leak would be 1,000 kB per 1,000 cycles
        check(rss_slope < 400, "RSS grows %.1f kB per 1,000 cycles" % rss_slope)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
