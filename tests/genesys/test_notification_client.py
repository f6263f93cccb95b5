#!/usr/bin/python3
"""End-to-end tests of tether's Genesys notification client (the example
program tether_genesys_notifications, built on tether::genesys) against the
local Genesys-like server, in channel mode and in seed mode. Each scenario
starts its own server on 127.0.0.1 (port 0) and one client run with
--duration; every wait is bounded. The checks use the client's summary line
(`summary-json {...}`), its event lines and the server's final counters.

usage: test_notification_client.py --server PATH --client PATH [--scenario NAME ...] [--list]
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


class TestFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


RUNS = []  # servers and clients of the running scenario, for logs on failure


class Server:
    def __init__(self, binary, *args):
        RUNS.append(self)
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([binary, "--port", "0", "--duration", "60", *args], stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        check(m is not None, f"server did not announce its port: {line!r}")
        self.base = f"http://127.0.0.1:{m.group(1)}"

    def hook(self, path):
        req = urllib.request.Request(self.base + path, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            check(resp.status == 200, f"hook {path}: {resp.status}")

    def channels(self):
        with urllib.request.urlopen(self.base + "/test/channels", timeout=5) as resp:
            return json.loads(resp.read())["channels"]

    def stats(self):
        with urllib.request.urlopen(self.base + "/test/stats", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        lines = [l for l in out.splitlines() if l.strip()]
        return json.loads(lines[-1])

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read()


class Client:
    """One run of the example; its stdout lines are collected as they come."""

    def __init__(self, binary, server, duration, *args):
        RUNS.append(self)
        self.proc = subprocess.Popen([binary, "--local", server.base, "--duration", str(duration), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, pattern, timeout, count=1):
        """Waits until `count` lines match `pattern`; returns them."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [l for l in self.lines if rx.search(l)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                check(left > 0, f"no {count} line(s) matching {pattern!r} within {timeout} s")
                self.cond.wait(min(left, 0.2))

    def finish(self, timeout=30):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise TestFailure("client did not stop by itself")
        self.reader.join(5)
        summary = [l for l in self.lines if l.startswith("summary-json ")]
        check(len(summary) == 1, "the client printed no summary line")
        return rc, json.loads(summary[0][len("summary-json "):])

    def matching(self, pattern):
        rx = re.compile(pattern)
        return [l for l in self.lines if rx.search(l)]

    def sequences(self):
        return [int(m.group(1)) for l in self.lines for m in [re.search(r"\] event +#(\d+) ", l)] if m]


def channel_id(server):
    chans = [c for c in server.channels() if c.get("connected")]
    check(len(chans) == 1, f"expected one connected channel, got {chans}")
    return chans[0]["id"]


def check_clean(summary, what):
    check(summary["duplicates"] == 0, f"{what}: {summary['duplicates']} duplicates")
    check(summary["handshakes_rejected"] == 0, f"{what}: handshakes rejected {summary['handshakes_rejected']}")


# ---------------------------------------------------------------- scenarios


def scenario_token_expiry(srv_bin, cli_bin):
    # Tokens live 2 s; the REST token renews in the background, the socket
    # (authorised by its channel) does not care: an unbroken stream.
    srv = Server(srv_bin, "--token-lifetime", "2", "--event-interval-ms", "200")
    c = Client(cli_bin, srv, 7)
    c.wait_for(r"\] open ", 5)
    # Every token expires now; the next REST call (a new channel after a
    # delete) gets 401, refreshes once and succeeds.
    time.sleep(2.5)
    srv.hook("/test/expire-tokens")
    srv.hook("/test/delete-channel/" + channel_id(srv))
    c.wait_for(r"REST call got 401: retried once with a new token", 5)
    c.wait_for(r"\] gap ", 5)
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "token expiry")
    check(stats["rest_401"] == 1, f"server answered 401 {stats['rest_401']} times, expected 1")
    check(stats["channels_created"] == 2 and s["channels_created"] == 2, "expected exactly one new channel")
    check(s["gaps"] == 1, f"gaps {s['gaps']}, expected 1 (the deleted channel)")
    check(s["token_requests"] >= 3, f"token fetches {s['token_requests']}: background renewal expected")
    check(s["token_requests"] == stats["tokens_issued"], "client and server disagree on tokens issued")
    check(s["events"] >= 40, f"only {s['events']} events in 7 s at 10/s")


def scenario_seed_token_expiry(srv_bin, cli_bin):
    # The seed's service: 4001 "Token expired" closes the socket; the client
    # refreshes once per expiry and never presents a stale token (no 401).
    srv = Server(srv_bin, "--seed-mode", "--token-lifetime", "3", "--event-interval-ms", "200")
    c = Client(cli_bin, srv, 10, "--seed-mode")
    c.wait_for(r"closed 4001 'Token expired' -> refresh_token", 8, count=2)
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "seed token expiry")
    closes = len(c.matching(r"\] close +closed 4001"))
    check(closes == stats["sockets_closed_token_expired"], "4001 closes: client and server disagree")
    check(s["gaps"] == closes, f"gaps {s['gaps']} != 4001 drops {closes}")
    check(stats["token_rejections"] == 0, f"{stats['token_rejections']} stale tokens presented")
    seqs = c.sequences()
    check(seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "seed stream out of order or duplicated")


def scenario_seed_renewal(srv_bin, cli_bin):
    # With renew_before_expiry the client hands over to a socket with a new
    # token 1 s before the old one expires: the server never closes with 4001
    # and no event is lost.
    srv = Server(srv_bin, "--seed-mode", "--token-lifetime", "3", "--event-interval-ms", "100")
    c = Client(cli_bin, srv, 9, "--seed-mode", "--renew-before-expiry", "1")
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "seed renewal")
    check(stats["sockets_closed_token_expired"] == 0, "the server had to close a socket for expiry")
    check(s["handovers"] >= 3, f"only {s['handovers']} renewals in 9 s of 3 s tokens")
    check(s["gaps"] == 0 and s["missing"] == 0, f"gaps {s['gaps']} missing {s['missing']}")
    seqs = c.sequences()
    check(sorted(seqs) == list(range(min(seqs), min(seqs) + len(seqs))), "events lost across renewals")
    check(sum(1 for a, b in zip(seqs, seqs[1:]) if b < a) <= s["handovers"], "events out of order beyond handovers")


def handover(srv_bin, cli_bin, seed):
    # socket_closing every 2 s, forced close 1.5 s later; events every 50 ms
    # (two topics) numbered per channel: none may be lost or duplicated.
    args = ["--socket-closing-interval", "2", "--socket-closing-grace", "1.5", "--event-interval-ms", "50",
            "--token-lifetime", "3600"]
    srv = Server(srv_bin, *(["--seed-mode"] if seed else []), *args)
    c = Client(cli_bin, srv, 9, *(["--seed-mode"] if seed else []))
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "handover")
    check(s["handovers"] >= 3, f"only {s['handovers']} handovers in 9 s with socket_closing every 2 s")
    check(s["handovers"] == stats["sockets_taken_over"], "handovers: client and server disagree")
    check(stats["sockets_closed_after_grace"] == 0, "a socket had to be closed after the grace period")
    check(s["gaps"] == 0 and s["reconnects"] == 0, f"gaps {s['gaps']} reconnects {s['reconnects']}")
    seqs = c.sequences()
    # about 20 events a second per topic: 2 topics on a channel, 1 on the seed stream
    check(len(seqs) >= (150 if seed else 300), f"only {len(seqs)} events")
    first = min(seqs)
    check(sorted(seqs) == list(range(first, first + len(seqs))),
          f"events lost across handovers: missing {sorted(set(range(first, max(seqs) + 1)) - set(seqs))[:20]}")
    # Two TCP connections overlap during a handover: the retiring socket's
    # last events may be read after the new socket's first ones. Bounded.
    inversions = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
    check(inversions <= s["handovers"], f"{inversions} out-of-order events with {s['handovers']} handovers")
    if not seed:
        check(first == 1, "the first event of the channel was lost")
    # Everything the server sent to our sockets arrived, exactly once.
    check(s["events"] == stats["events_sent"], f"client got {s['events']}, server sent {stats['events_sent']}")


def scenario_handover(srv_bin, cli_bin):
    handover(srv_bin, cli_bin, False)


def scenario_seed_handover(srv_bin, cli_bin):
    handover(srv_bin, cli_bin, True)


def scenario_channel_keepalive(srv_bin, cli_bin):
    # Channels live 3 s unless resubscribed; the client resubscribes 1.5 s
    # before expiry, so the one channel outlives its lifetime.
    srv = Server(srv_bin, "--channel-lifetime", "3", "--event-interval-ms", "200")
    c = Client(cli_bin, srv, 8, "--resubscribe-margin", "2")
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "keepalive")
    check(stats["channels_expired"] == 0, "the channel expired despite resubscription")
    check(s["channels_created"] == 1, f"{s['channels_created']} channels")
    check(s["resubscriptions"] >= 3, f"only {s['resubscriptions']} resubscriptions in 8 s")
    check(s["gaps"] == 0 and s["missing"] == 0, "events lost")


def scenario_channel_expiry(srv_bin, cli_bin):
    srv = Server(srv_bin, "--event-interval-ms", "200")
    c = Client(cli_bin, srv, 5)
    c.wait_for(r"\] event ", 5)
    srv.hook("/test/expire-channel/" + channel_id(srv))
    c.wait_for(r"closed 1001 'Channel expired' -> refresh_token", 5)
    c.wait_for(r"\] gap ", 5)
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "channel expiry")
    check(s["channels_created"] == 2 and stats["channels_created"] == 2, "expected one new channel")
    check(s["gaps"] == 1 and s["reconnects"] == 1, f"gaps {s['gaps']} reconnects {s['reconnects']}")


def scenario_channel_deleted(srv_bin, cli_bin):
    # Deleted, then the new channel deleted again before the client notices
    # via its socket: each time exactly one new channel.
    srv = Server(srv_bin, "--event-interval-ms", "200")
    c = Client(cli_bin, srv, 6)
    c.wait_for(r"\] event ", 5)
    for n in (1, 2):
        srv.hook("/test/delete-channel/" + channel_id(srv))
        c.wait_for(r"closed 1001 'Channel deleted' -> refresh_token", 5, count=n)
        c.wait_for(r"\] open ", 5, count=n + 1)
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "channel deleted")
    check(s["channels_created"] == 3 and stats["channels_created"] == 3, f"channels {s['channels_created']}")
    check(s["gaps"] == 2, f"gaps {s['gaps']}")


def scenario_channel_limit(srv_bin, cli_bin):
    # The client's own cap (here 2 per hour): the third loss stops it with a
    # clear error instead of eating the 20-channel quota.
    srv = Server(srv_bin, "--event-interval-ms", "200")
    c = Client(cli_bin, srv, 20, "--max-channels", "2")
    c.wait_for(r"\] event ", 5)
    for n in (1, 2):
        srv.hook("/test/delete-channel/" + channel_id(srv))
        c.wait_for(r"Channel deleted", 5, count=n)
        if n == 1:
            c.wait_for(r"\] open ", 5, count=2)
    rc, s = c.finish(15)
    stats = srv.stop()
    check(rc == 1, f"client exit status {rc}, expected 1 (stopped by the limit)")
    check("channel creation limit" in s["stop_reason"], f"stop reason {s['stop_reason']!r}")
    check(stats["channels_created"] == 2, f"server saw {stats['channels_created']} channels")
    check(len(c.matching(r"channel +refused")) == 1, "the refusal was not reported once")


def scenario_subscription_429(srv_bin, cli_bin):
    # The first subscription and a later one get 429 Retry-After: 1; the
    # client waits and retries, creating no extra channel.
    srv = Server(srv_bin, "--event-interval-ms", "200")
    srv.hook("/test/rate-limit-next/1?scope=subscriptions&retry_after=1")
    started = time.monotonic()
    c = Client(cli_bin, srv, 6, "--resubscribe-margin", "1")
    c.wait_for(r"\] open ", 5)
    waited = time.monotonic() - started
    check(waited >= 0.9, f"opened after {waited:.2f} s: Retry-After not honoured")
    srv.hook("/test/rate-limit-next/2?scope=channels&retry_after=1")
    srv.hook("/test/delete-channel/" + channel_id(srv))
    c.wait_for(r"\] open ", 8, count=2)
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "429")
    check(stats["rest_429"] == 3, f"server answered 429 {stats['rest_429']} times, expected 3")
    check(s["channels_created"] == 2 and stats["channels_created"] == 2, f"channels {stats['channels_created']}")


def silent_server(srv_bin, cli_bin, seed):
    # No events: only heartbeats (every 0.5 s) show the socket is alive. They
    # stop; after 2 s of silence the client reconnects (same channel), and
    # again while they stay off; when they resume, it stays.
    mode = ["--seed-mode"] if seed else []
    srv = Server(srv_bin, *mode, "--heartbeat-interval", "0.5", "--event-interval-ms", "0")
    c = Client(cli_bin, srv, 9, *mode, "--heartbeat-timeout", "2")
    c.wait_for(r"\] open ", 5)
    time.sleep(1)
    srv.hook("/test/stop-heartbeats")
    c.wait_for(r"liveness +no frame received within the idle timeout", 4)
    c.wait_for(r"\] open ", 5, count=2)
    srv.hook("/test/start-heartbeats")
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "silent server")
    check(1 <= s["liveness_failures"] <= 2, f"liveness failures {s['liveness_failures']}")
    check(s["reconnects"] == s["liveness_failures"], "each liveness failure should reconnect once")
    check(s["gaps"] == s["liveness_failures"], "each liveness drop is a gap")
    if not seed:
        check(s["channels_created"] == 1 and stats["channels_created"] == 1, "a dead socket needs no new channel")
    check(s["heartbeats"] >= 4, f"heartbeats {s['heartbeats']}")


def scenario_heartbeats_stop(srv_bin, cli_bin):
    silent_server(srv_bin, cli_bin, False)


def scenario_seed_heartbeats_stop(srv_bin, cli_bin):
    silent_server(srv_bin, cli_bin, True)


def scenario_pong_probe(srv_bin, cli_bin):
    # Heartbeats and events keep coming, but pings go unanswered: the probe
    # (ping every 1 s, pong within 1 s) declares the socket dead.
    srv = Server(srv_bin, "--heartbeat-interval", "0.5", "--event-interval-ms", "200")
    c = Client(cli_bin, srv, 6, "--ping-interval", "1", "--pong-timeout", "1")
    c.wait_for(r"\] open ", 5)
    time.sleep(1.5)
    srv.hook("/test/stop-pongs")
    c.wait_for(r"liveness +no pong received in time", 4)
    srv.hook("/test/start-pongs")
    rc, s = c.finish()
    stats = srv.stop()
    check(rc == 0, f"client exit status {rc}")
    check_clean(s, "pong probe")
    check(s["liveness_failures"] >= 1 and s["reconnects"] >= 1, "the missing pong was not acted on")
    check(stats["pongs_sent"] >= 1, "no pong was ever answered")


SCENARIOS = {
    "token_expiry": scenario_token_expiry,
    "seed_token_expiry": scenario_seed_token_expiry,
    "handover": scenario_handover,
    "seed_handover": scenario_seed_handover,
    "seed_renewal": scenario_seed_renewal,
    "channel_keepalive": scenario_channel_keepalive,
    "channel_expiry": scenario_channel_expiry,
    "channel_deleted": scenario_channel_deleted,
    "channel_limit": scenario_channel_limit,
    "subscription_429": scenario_subscription_429,
    "heartbeats_stop": scenario_heartbeats_stop,
    "seed_heartbeats_stop": scenario_seed_heartbeats_stop,
    "pong_probe": scenario_pong_probe,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server")
    parser.add_argument("--client")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    if not args.server or not args.client:
        parser.error("--server and --client are required")
    failed = 0
    for name in args.scenario or list(SCENARIOS):
        start = time.monotonic()
        try:
            SCENARIOS[name](args.server, args.client)
            print(f"PASS {name} ({time.monotonic() - start:.2f} s)")
        except (TestFailure, OSError, subprocess.TimeoutExpired, KeyError, ValueError) as e:
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            for r in RUNS:
                if isinstance(r, Client):
                    print("--- client output, last lines:\n" + "\n".join(r.lines[-60:]))
                else:
                    print("--- server log, last lines:\n" + "\n".join(r.log().splitlines()[-40:]))
        for r in RUNS:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
        RUNS.clear()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
