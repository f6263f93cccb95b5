#!/usr/bin/python3
"""End-to-end tests of tether_genesys_local_server, driven by an independent
peer: Python `websockets` 10.4 for the sockets, urllib (and one raw socket) for
REST. Each scenario starts its own server on 127.0.0.1 with --port 0 and short
intervals; every wait is bounded.

usage: test_local_server.py --server PATH [--scenario NAME ...] [--list]
"""
import argparse
import asyncio
import base64
import json
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websockets
import websockets.exceptions

SECRET = "local-secret"
SCENARIO_TIMEOUT = 40.0  # seconds, per scenario
EVENT_TOPICS = re.compile(r"^(?!channel\.metadata$|v2\.system\.)")


class TestFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


# ------------------------------------------------------------------ server


STARTED = []  # every server of the running scenario, for its log on failure


class LocalServer:
    """The server under test, started on an ephemeral loopback port."""

    def __init__(self, binary, *args):
        STARTED.append(self)
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([binary, "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.tokens = []
        line = self._read_stdout_line(10.0)
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        check(m is not None, f"first stdout line should announce the port, got {line!r}")
        self.port = int(m.group(1))
        check(self.port > 0, "port 0 must be replaced by a real port")
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"

    def _read_stdout_line(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        check(ready, f"no stdout line from the server within {timeout} s")
        return self.proc.stdout.readline()

    def log_text(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def check_no_leak(self):
        text = self.log_text()
        check(SECRET not in text, "the client secret appears in the server log")
        for t in self.tokens:
            check(t not in text, "an access token appears in the server log")

    def stop(self, sig=signal.SIGTERM):
        """Stops the server; returns the final stats it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise TestFailure("server did not exit within 10 s of a signal")
        check(self.proc.returncode == 0, f"server exit status {self.proc.returncode}")
        lines = [l for l in out.splitlines() if l.strip()]
        check(len(lines) == 1, f"expected one final stats line on stdout, got {lines!r}")
        self.check_no_leak()
        return json.loads(lines[0])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    # REST ----------------------------------------------------------------

    def http(self, method, path, body=None, token=None, headers=None):
        """Returns (status, headers, parsed JSON body or None)."""
        h = dict(headers or {})
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if token is not None:
            h["Authorization"] = "Bearer " + token
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                status, hdrs, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        parsed = json.loads(raw) if raw else None
        return status, hdrs, parsed

    def token_request(self, client_id="local-client", secret=SECRET, grant="client_credentials"):
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        status, hdrs, body = self.http("POST", "/oauth/token", body=f"grant_type={grant}", headers={
            "Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"})
        if status == 200:
            self.tokens.append(body["access_token"])
        return status, hdrs, body

    def token(self):
        status, _, body = self.token_request()
        check(status == 200, f"token request failed: {status} {body}")
        return body["access_token"]

    def create_channel(self, token):
        status, _, body = self.http("POST", "/api/v2/notifications/channels", token=token)
        check(status == 200, f"channel creation failed: {status} {body}")
        return body

    def subscribe(self, token, channel_id, topics, method="PUT"):
        return self.http(method, f"/api/v2/notifications/channels/{channel_id}/subscriptions",
                         body=[{"id": t} for t in topics], token=token)

    def stats(self):
        status, _, body = self.http("GET", "/test/stats")
        check(status == 200, "GET /test/stats failed")
        return body

    def hook(self, what):
        status, _, body = self.http("POST", "/test/" + what)
        check(status == 200, f"test hook {what} failed: {status} {body}")

    def raw_handshake(self, path, headers=None):
        """A WebSocket upgrade written by hand, to read a rejection's body."""
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                 "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                head, sep, rest = data.partition(b"\r\n\r\n")
                m = re.search(rb"Content-Length: (\d+)", head, re.I)
                if sep and (not m or len(rest) >= int(m.group(1))):
                    break
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        return status, json.loads(body) if body else None


# ------------------------------------------------------------------ sockets


def connect(uri, token=None):
    headers = {"Authorization": "Bearer " + token} if token else None
    return websockets.connect(uri, extra_headers=headers, ping_interval=None, open_timeout=5,
                              close_timeout=2, compression=None)


async def expect_rejected(uri, status, token=None):
    try:
        ws = await connect(uri, token)
    except websockets.exceptions.InvalidStatusCode as e:
        check(e.status_code == status, f"handshake to {uri} rejected with {e.status_code}, expected {status}")
        return
    await ws.close()
    raise TestFailure(f"handshake to {uri} succeeded, expected {status}")


async def receive(ws, seconds, until=None):
    """Messages received for `seconds` (or until `until(msg)`), and the close
    (code, reason) if the socket closed meanwhile."""
    messages = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return messages, None
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            return messages, None
        except websockets.exceptions.ConnectionClosed:
            return messages, (ws.close_code, ws.close_reason)
        msg = json.loads(raw)
        messages.append(msg)
        if until and until(msg):
            return messages, None


async def until_closed(ws, seconds):
    messages, closed = await receive(ws, seconds)
    check(closed is not None, f"socket still open after {seconds} s")
    return messages, closed


def events(messages):
    return [m for m in messages if EVENT_TOPICS.match(m.get("topicName", ""))]


def sequences(messages):
    return [m["eventBody"]["sequence"] for m in events(messages)]


def check_contiguous(seqs, what):
    check(seqs, f"{what}: no events")
    check(seqs == list(range(seqs[0], seqs[0] + len(seqs))),
          f"{what}: sequence numbers not contiguous: {seqs}")


def is_metadata(msg, text):
    return msg.get("topicName") == "channel.metadata" and msg["eventBody"].get("message") == text


# ------------------------------------------------------------------ scenarios


async def scenario_token(binary):
    srv = LocalServer(binary, "--token-lifetime", "1", "--event-interval-ms", "0")
    try:
        status, _, body = srv.token_request()
        check(status == 200, f"token: {status}")
        check(body["token_type"] == "bearer" and body["expires_in"] == 1 and len(body["access_token"]) >= 32,
              f"token response {body}")
        token = body["access_token"]
        check(srv.token() != token, "every token request issues a new token")

        status, hdrs, body = srv.token_request(secret="wrong")
        check(status == 401 and body["error"] == "invalid_client" and "error_description" in body,
              f"bad secret: {status} {body}")
        check(hdrs.get("WWW-Authenticate", "").startswith("Basic"), "401 names the Basic scheme")
        status, _, body = srv.token_request(client_id="someone-else")
        check(status == 401 and body["error"] == "invalid_client", f"bad client id: {status} {body}")
        status, _, body = srv.http("POST", "/oauth/token", body="grant_type=client_credentials",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        check(status == 401, f"no Basic credentials: {status}")
        status, _, body = srv.token_request(grant="password")
        check(status == 400 and body["error"] == "unsupported_grant_type", f"bad grant: {status} {body}")

        # Bearer checks on the REST API.
        status, _, body = srv.http("POST", "/api/v2/notifications/channels")
        check(status == 401 and body["status"] == 401 and body["message"] == "Missing bearer token",
              f"no token: {status} {body}")
        status, _, body = srv.http("POST", "/api/v2/notifications/channels", token="not-a-token")
        check(status == 401 and body["message"] == "Invalid token", f"unknown token: {status} {body}")
        status, _, _ = srv.http("GET", "/api/v2/notifications/channels", token=token)
        check(status == 200, "a fresh token works")
        await asyncio.sleep(1.2)
        status, _, body = srv.http("GET", "/api/v2/notifications/channels", token=token)
        check(status == 401 and body["message"] == "Token expired", f"expired token: {status} {body}")
        status, _, _ = srv.http("GET", "/api/v2/notifications/channels", token=srv.token())
        check(status == 200, "a new token works after expiry")

        s = srv.stop()
        check(s["token_requests"] == 7 and s["tokens_issued"] == 3 and s["token_rejections"] == 3,
              f"token counters {s}")
        check(s["rest_401"] == 6, f"rest_401 {s['rest_401']}")  # 3 at /oauth/token + 3 API
    finally:
        srv.kill()


async def scenario_channel_events(binary):
    srv = LocalServer(binary, "--event-interval-ms", "50", "--heartbeat-interval", "0")
    try:
        token = srv.token()
        ch = srv.create_channel(token)
        cid = ch["id"]
        check(ch["connectUri"] == f"{srv.ws_base}/channels/{cid}", f"connectUri {ch['connectUri']}")
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ch["expires"]), f"expires {ch['expires']}")
        expires = time.mktime(time.strptime(ch["expires"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        check(abs(expires - (time.time() + 86400)) < 5, "channels live 24 hours by default")

        api = "/api/v2/notifications/channels"
        check(srv.http("HEAD", f"{api}/{cid}", token=token)[0] == 200, "HEAD of a live channel")
        check(srv.http("HEAD", f"{api}/streaming-0-nosuchchannel", token=token)[0] == 404, "HEAD of unknown")
        status, _, body = srv.http("GET", api, token=token)
        check(status == 200 and [c["id"] for c in body["entities"]] == [cid], f"GET channels {body}")

        # Subscriptions: replace, add, validation that changes nothing.
        status, _, body = srv.subscribe(token, cid, ["v2.users.a.presence", "v2.users.b.presence"])
        check(status == 200 and [e["id"] for e in body["entities"]] == ["v2.users.a.presence", "v2.users.b.presence"],
              f"PUT subscriptions {status} {body}")
        status, _, body = srv.subscribe(token, cid, ["v2.users.b.presence", "topic.c"], method="POST")
        check(status == 200 and len(body["entities"]) == 3, f"POST subscriptions {status} {body}")
        status, _, body = srv.subscribe(token, cid, [f"t.{i}" for i in range(1001)])
        check(status == 400 and "1001 topics" in body["message"], f"1001 topics: {status} {body}")
        status, _, body = srv.subscribe(token, cid, [f"t.{i}" for i in range(998)], method="POST")
        check(status == 400, f"3 + 998 topics: {status}")
        status, _, body = srv.subscribe(token, cid, ["x" * 201])
        check(status == 400 and "201 characters" in body["message"], f"201-char topic: {status} {body}")
        status, _, body = srv.http("PUT", f"{api}/{cid}/subscriptions", body="not json", token=token)
        check(status == 400, f"non-JSON body: {status}")
        status, _, body = srv.http("PUT", f"{api}/{cid}/subscriptions", body={"id": "x"}, token=token)
        check(status == 400, f"object instead of list: {status}")
        status, _, body = srv.http("GET", f"{api}/{cid}/subscriptions", token=token)
        check([e["id"] for e in body["entities"]] == ["v2.users.a.presence", "v2.users.b.presence", "topic.c"],
              f"failed calls must change nothing: {body}")
        status, _, body = srv.subscribe(token, cid, [f"t.{i}" for i in range(999)] + ["y" * 200])
        check(status == 200 and len(body["entities"]) == 1000, "1000 topics of up to 200 chars are fine")
        status, _, body = srv.subscribe(token, cid, ["v2.users.a.presence", "topic.c"])
        check(status == 200, "back to two topics")

        # Events were produced before any socket: lost, and counted.
        await asyncio.sleep(0.3)
        lost_before = srv.stats()["events_lost"]
        check(lost_before >= 4, f"events without a socket are lost and counted: {lost_before}")

        async with connect(ch["connectUri"]) as ws:
            msgs, closed = await receive(ws, 0.6)
            check(closed is None, "socket stays open")
            evs = events(msgs)
            check(len(evs) >= 12, f"events every 50 ms on 2 topics, got {len(evs)}")
            check_contiguous(sequences(msgs), "one socket")
            check(evs[0]["eventBody"]["sequence"] > 1, "events before the socket opened were lost")
            check({e["topicName"] for e in evs} == {"v2.users.a.presence", "topic.c"}, "events on both topics")
            for e in evs:
                check(e["eventBody"]["topic"] == e["topicName"], f"event body names its topic: {e}")
                check(e["metadata"]["CorrelationId"], "events carry a CorrelationId")
                check(re.fullmatch(r"\d{4}-.*Z", e["eventBody"]["sentAt"]), "sentAt is ISO-8601")

            # Subscribing over the socket.
            await ws.send(json.dumps({"message": "subscribe", "topics": ["topic.socket"]}))
            msgs, _ = await receive(ws, 2.0, until=lambda m: m.get("topicName") == "topic.socket")
            check(msgs[-1]["topicName"] == "topic.socket", "socket subscribe adds a topic")
            replies = [m for m in msgs if "result" in m]
            check(replies == [{"result": "200", "status": "subscribed"}], f"subscribe answered: {replies}")
            await ws.send(json.dumps({"message": "subscribe", "topics": ["topic.d"], "correlationId": "c-1"}))
            msgs, _ = await receive(ws, 2.0, until=lambda m: "result" in m)
            check(msgs[-1] == {"result": "200", "status": "subscribed", "correlationId": "c-1"},
                  f"the reply echoes the correlationId: {msgs[-1]}")
            await ws.send(json.dumps({"message": "subscribe", "topics": ["z" * 201], "correlationId": "c-2"}))
            msgs, _ = await receive(ws, 2.0, until=lambda m: "result" in m)
            check(msgs[-1]["result"] == "400" and msgs[-1]["message"].startswith("subscribe rejected")
                  and msgs[-1]["correlationId"] == "c-2", f"a bad socket subscribe is answered 400: {msgs[-1]}")
            await ws.send("not json")  # ignored, socket stays up

            # Deleting the channel closes its socket.
            status, _, _ = srv.http("DELETE", f"{api}/{cid}", token=token)
            check(status == 204, f"DELETE channel {status}")
            _, closed = await until_closed(ws, 2.0)
            check(closed == (1001, "Channel deleted"), f"close on delete {closed}")
        check(srv.http("HEAD", f"{api}/{cid}", token=token)[0] == 404, "deleted channel is gone")
        await expect_rejected(ch["connectUri"], 404)
        await expect_rejected(f"{srv.ws_base}/channels/streaming-0-unknown", 404)
        await expect_rejected(f"{srv.ws_base}/v2/events", 404)

        s = srv.stop()
        check(s["channels_created"] == 1 and s["channels_deleted"] == 1, f"channel counters {s}")
        check(s["handshakes"] == 4 and s["handshakes_rejected"] == 3, f"handshake counters {s}")
        check(s["events_sent"] >= 12 and s["events_lost"] >= lost_before, f"event counters {s}")
    finally:
        srv.kill()


async def scenario_heartbeat_ping(binary):
    srv = LocalServer(binary, "--heartbeat-interval", "0.2", "--event-interval-ms", "0")
    try:
        token = srv.token()
        ch = srv.create_channel(token)
        async with connect(ch["connectUri"]) as ws:
            msgs, _ = await receive(ws, 1.05)
            beats = [m for m in msgs if is_metadata(m, "WebSocket Heartbeat")]
            check(4 <= len(beats) <= 6, f"heartbeats every 0.2 s: {len(beats)} in 1.05 s")

            start = time.monotonic()
            await ws.send(json.dumps({"message": "ping"}))
            msgs, _ = await receive(ws, 2.0, until=lambda m: is_metadata(m, "pong"))
            check(msgs and is_metadata(msgs[-1], "pong") and time.monotonic() - start < 1.0, "ping -> pong")

            srv.hook("stop-heartbeats")
            srv.hook("stop-pongs")
            await ws.send(json.dumps({"message": "ping"}))
            msgs, closed = await receive(ws, 0.7)
            check(closed is None and msgs == [], f"a silent server sends nothing: {msgs}")

            srv.hook("start-heartbeats")
            srv.hook("start-pongs")
            msgs, _ = await receive(ws, 1.0, until=lambda m: is_metadata(m, "WebSocket Heartbeat"))
            check(msgs and is_metadata(msgs[-1], "WebSocket Heartbeat"), "heartbeats resume")
            await ws.send(json.dumps({"message": "ping"}))
            msgs, _ = await receive(ws, 1.0, until=lambda m: is_metadata(m, "pong"))
            check(msgs and is_metadata(msgs[-1], "pong"), "pongs resume")
        s = srv.stop()
        check(s["pongs_sent"] == 2, f"pongs_sent {s['pongs_sent']}")
        check(s["heartbeats_sent"] >= 5, f"heartbeats_sent {s['heartbeats_sent']}")
    finally:
        srv.kill()


async def scenario_socket_closing(binary):
    """socket_closing, then the forced close; the events lost while no socket
    is connected show as a gap of exactly that size."""
    srv = LocalServer(binary, "--socket-closing-interval", "0.5", "--socket-closing-grace", "0.4",
                      "--event-interval-ms", "40", "--heartbeat-interval", "0")
    try:
        token = srv.token()
        ch = srv.create_channel(token)
        async with connect(ch["connectUri"]) as ws:
            opened = time.monotonic()
            check(srv.subscribe(token, ch["id"], ["topic.one"])[0] == 200, "subscribe")
            msgs, closed = await receive(ws, 3.0, until=lambda m: m["topicName"] == "v2.system.socket_closing")
            announced = time.monotonic()
            check(closed is None and msgs[-1]["topicName"] == "v2.system.socket_closing", "socket_closing arrives")
            body = msgs[-1]["eventBody"]
            check(body["message"] and body["reason"] and body["channelId"] == ch["id"],
                  f"socket_closing is a system message (channelId, reason, message): {body}")
            check(0.4 <= announced - opened <= 1.5, f"socket_closing after {announced - opened:.2f} s, expected 0.5")
            more, closed = await until_closed(ws, 3.0)
            check(closed == (1001, "Socket closing"), f"forced close {closed}")
            check(0.3 <= time.monotonic() - announced <= 1.5, "forced close after the 0.4 s grace")
            first = sequences(msgs + more)
            check_contiguous(first, "first socket")
        await asyncio.sleep(0.3)  # downtime: these events are lost
        async with connect(ch["connectUri"]) as ws:
            msgs, _ = await receive(ws, 0.3)
            second = sequences(msgs)
            check_contiguous(second, "second socket")
            lost = srv.stats()["events_lost"]  # while connected: later losses are the test's own close
        s = srv.stop()
        gap = second[0] - first[-1] - 1
        check(gap >= 5, f"a gap of the downtime, got {gap}")
        check(gap == lost, f"gap {gap} equals events_lost {lost}")
        check(s["socket_closing_sent"] == 1 and s["sockets_closed_after_grace"] == 1, f"counters {s}")
    finally:
        srv.kill()


async def scenario_takeover(binary):
    """Make-before-break: after socket_closing, a second socket on the channel
    takes over; across both sockets no event is lost or delivered twice."""
    srv = LocalServer(binary, "--event-interval-ms", "20", "--heartbeat-interval", "0")
    try:
        token = srv.token()
        ch = srv.create_channel(token)
        async with connect(ch["connectUri"]) as first:
            check(srv.subscribe(token, ch["id"], ["topic.a", "topic.b"])[0] == 200, "subscribe")
            msgs_a, _ = await receive(first, 0.3)
            srv.hook("socket-closing/" + ch["id"])
            more, _ = await receive(first, 2.0, until=lambda m: m["topicName"] == "v2.system.socket_closing")
            msgs_a += more
            check(msgs_a[-1]["topicName"] == "v2.system.socket_closing", "socket_closing via test hook")
            async with connect(ch["connectUri"]) as second:
                more, closed = await until_closed(first, 3.0)
                msgs_a += more
                check(closed == (1000, "Replaced by a newer connection to this channel"), f"takeover close {closed}")
                msgs_b, closed = await receive(second, 0.3)
                check(closed is None, "the new socket stays open")
                lost = srv.stats()["events_lost"]
        seqs = sequences(msgs_a) + sequences(msgs_b)
        check(len(set(seqs)) == len(seqs), "no event delivered twice")
        check_contiguous(seqs, "across the handover")
        check(sequences(msgs_b), "the new socket gets events")
        s = srv.stop()
        check(s["sockets_taken_over"] == 1 and lost == 0, f"takeover counters {s}, {lost} lost before the end")
        check(s["sockets_closed_after_grace"] == 0, "the handover beat the grace period")
    finally:
        srv.kill()


async def scenario_channel_expiry(binary):
    srv = LocalServer(binary, "--channel-lifetime", "1", "--event-interval-ms", "0", "--heartbeat-interval", "0")
    api = "/api/v2/notifications/channels"
    try:
        token = srv.token()
        # Subscribing renews a channel's lifetime.
        renewed = srv.create_channel(token)
        t0 = time.monotonic()
        await asyncio.sleep(0.5)
        check(srv.subscribe(token, renewed["id"], ["topic.x"])[0] == 200, "subscribe")
        _, _, body = srv.http("GET", api, token=token)
        check(body["entities"][0]["expires"] > renewed["expires"], "subscribing moves expires later")
        await asyncio.sleep(max(0.0, 1.2 - (time.monotonic() - t0)))
        check(srv.http("HEAD", f"{api}/{renewed['id']}", token=token)[0] == 200, "renewed channel still alive")

        # A channel expiring under an open socket.
        ch = srv.create_channel(token)
        async with connect(ch["connectUri"]) as ws:
            started = time.monotonic()
            _, closed = await until_closed(ws, 3.0)
            check(closed == (1001, "Channel expired"), f"close on expiry {closed}")
            check(0.8 <= time.monotonic() - started <= 2.0, "closed when the channel expired")
        check(srv.http("HEAD", f"{api}/{ch['id']}", token=token)[0] == 404, "expired channel is gone")
        await expect_rejected(ch["connectUri"], 404)
        await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
        check(srv.http("HEAD", f"{api}/{renewed['id']}", token=token)[0] == 404, "renewed channel expires too")

        # Test hook: expire now.
        ch = srv.create_channel(token)
        async with connect(ch["connectUri"]) as ws:
            srv.hook("expire-channel/" + ch["id"])
            _, closed = await until_closed(ws, 2.0)
            check(closed == (1001, "Channel expired"), f"close on expire hook {closed}")
        s = srv.stop()
        check(s["channels_expired"] == 3 and s["channels_open"] == 0, f"expiry counters {s}")
    finally:
        srv.kill()


async def scenario_channel_limit(binary):
    api = "/api/v2/notifications/channels"
    srv = LocalServer(binary, "--event-interval-ms", "0", "--heartbeat-interval", "0")
    try:
        token = srv.token()
        chans = [srv.create_channel(token) for _ in range(20)]
        async with connect(chans[0]["connectUri"]):
            extra = srv.create_channel(token)  # the 21st replaces chans[1], the oldest idle one
            check(srv.http("HEAD", f"{api}/{chans[0]['id']}", token=token)[0] == 200, "connected channel kept")
            check(srv.http("HEAD", f"{api}/{chans[1]['id']}", token=token)[0] == 404, "oldest idle replaced")
            srv.create_channel(token)
            check(srv.http("HEAD", f"{api}/{chans[2]['id']}", token=token)[0] == 404, "next oldest idle replaced")
            _, _, body = srv.http("GET", api, token=token)
            ids = {c["id"] for c in body["entities"]}
            check(len(ids) == 20 and extra["id"] in ids, f"still 20 channels: {len(ids)}")
        await expect_rejected(chans[1]["connectUri"], 404)
        s = srv.stop()
        check(s["channels_created"] == 22 and s["channels_replaced"] == 2, f"limit counters {s}")
    finally:
        srv.kill()

    # When every channel has a socket, the one with the oldest last use goes
    # anyway, socket and all (Genesys: connected channels are removed too).
    srv = LocalServer(binary, "--max-channels", "2", "--event-interval-ms", "0", "--heartbeat-interval", "0")
    try:
        token = srv.token()
        a, b = srv.create_channel(token), srv.create_channel(token)
        async with connect(b["connectUri"]) as wb, connect(a["connectUri"]) as wa:
            # b was created after a, but a's socket opened last: b is the oldest use
            check(srv.subscribe(token, a["id"], ["topic.a"])[0] == 200, "subscribe a")
            c = srv.create_channel(token)
            _, closed = await until_closed(wb, 2.0)
            check(closed == (1000, ""), f"an evicted channel's socket is closed 1000 without a reason: {closed}")
            msgs, closed = await receive(wa, 0.3)
            check(closed is None, "the other connected channel stays")
            check(srv.http("HEAD", f"{api}/{b['id']}", token=token)[0] == 404, "evicted channel gone")
            check(srv.http("HEAD", f"{api}/{c['id']}", token=token)[0] == 200, "new channel there")
        await expect_rejected(b["connectUri"], 404)
        s = srv.stop()
        check(s["channels_replaced"] == 1 and s["channels_evicted_connected"] == 1, f"eviction counters {s}")
    finally:
        srv.kill()


async def scenario_rate_limit(binary):
    srv = LocalServer(binary, "--rate-limit", "5", "--rate-window", "2", "--event-interval-ms", "0")
    api = "/api/v2/notifications/channels"
    try:
        token = srv.token()
        for i in range(5):
            check(srv.http("GET", api, token=token)[0] == 200, f"call {i + 1} of 5 allowed")
        status, hdrs, body = srv.http("GET", api, token=token)
        check(status == 429 and body["code"] == "too.many.requests", f"6th call: {status} {body}")
        retry = int(hdrs["Retry-After"])
        check(1 <= retry <= 2, f"Retry-After {retry}")
        await asyncio.sleep(retry + 0.1)
        check(srv.http("GET", api, token=token)[0] == 200, "allowed again after Retry-After")

        # Test hook: the next 2 subscription calls get 429.
        ch = srv.create_channel(token)
        srv.hook("rate-limit-next/2?scope=subscriptions&retry_after=3")
        for _ in range(2):
            status, hdrs, _ = srv.subscribe(token, ch["id"], ["t"])
            check(status == 429 and hdrs["Retry-After"] == "3", f"forced 429: {status}")
        check(srv.subscribe(token, ch["id"], ["t"])[0] == 200, "third subscription call passes")
        srv.hook("rate-limit-next/1?scope=token")
        status, hdrs, _ = srv.token_request()
        check(status == 429 and hdrs["Retry-After"] == "1", f"forced 429 on the token endpoint: {status}")
        check(srv.http("POST", "/test/rate-limit-next/1?scope=nonsense")[0] == 400, "bad scope rejected")
        s = srv.stop()
        check(s["rest_429"] == 4, f"rest_429 {s['rest_429']}")
    finally:
        srv.kill()


async def scenario_seed_mode(binary):
    srv = LocalServer(binary, "--seed-mode", "--token-lifetime", "1", "--event-interval-ms", "50",
                      "--heartbeat-interval", "0")
    uri_path = "/v2/analytics/events"
    try:
        uri = srv.ws_base + uri_path
        await expect_rejected(uri, 401)
        status, body = srv.raw_handshake(uri_path)
        check(status == 401 and body == {"error": "unauthorized", "message": "Missing bearer token"},
              f"no Authorization: {status} {body}")
        status, body = srv.raw_handshake(uri_path, {"Authorization": "Bearer nonsense"})
        check(status == 401 and body["message"] == "Invalid token", f"bad token: {status} {body}")

        token = srv.token()
        async with connect(uri, token) as ws:
            started = time.monotonic()
            msgs, closed = await until_closed(ws, 3.0)
            check(closed == (4001, "Token expired"), f"close on token expiry {closed}")
            check(0.7 <= time.monotonic() - started <= 1.6, "closed when the 1 s token expired")
            first = sequences(msgs)
            check_contiguous(first, "seed socket")
            check({m["topicName"] for m in events(msgs)} == {uri_path}, "the path is the topic")
        status, body = srv.raw_handshake(uri_path, {"Authorization": "Bearer " + token})
        check(status == 401 and body == {"error": "unauthorized", "message": "Token expired"},
              f"stale token: {status} {body}")
        await expect_rejected(uri, 401, token)

        async with connect(uri, srv.token()) as ws:
            msgs, _ = await receive(ws, 0.3)
            second = sequences(msgs)
            check(second and second[0] > first[-1], "numbering continues on the same stream")
            srv.hook("expire-tokens")
            _, closed = await until_closed(ws, 2.0)
            check(closed == (4001, "Token expired"), f"close on expire-tokens {closed}")

        # A Genesys channel in seed mode needs the bearer token on the upgrade too.
        token = srv.token()
        ch = srv.create_channel(token)
        await expect_rejected(ch["connectUri"], 401)
        async with connect(ch["connectUri"], token) as ws:
            msgs, closed = await receive(ws, 0.2)
            check(closed is None, "channel socket with a token opens")
        s = srv.stop()
        check(s["sockets_closed_token_expired"] >= 2, f"4001 closes {s}")
        check(s["handshakes_rejected"] == 6, f"handshakes_rejected {s['handshakes_rejected']}")
    finally:
        srv.kill()


async def scenario_test_hooks(binary):
    srv = LocalServer(binary, "--event-interval-ms", "0", "--heartbeat-interval", "0")
    try:
        ch = srv.create_channel(srv.token())
        async with connect(ch["connectUri"]) as ws:
            status, _, body = srv.http("GET", "/test/channels")
            check(status == 200 and body["channels"][0]["id"] == ch["id"] and body["channels"][0]["connected"],
                  f"GET /test/channels {body}")
            srv.hook(f"close-socket/{ch['id']}?code=4000&reason=test%20reason")
            _, closed = await until_closed(ws, 2.0)
            check(closed == (4000, "test reason"), f"close-socket hook {closed}")
        async with connect(ch["connectUri"]) as ws:
            for bad in ("1005", "1006", "999", "5000", "x"):
                status, _, _ = srv.http("POST", f"/test/close-socket/{ch['id']}?code={bad}")
                check(status == 400, f"close code {bad} cannot be sent: {status}")
            srv.hook(f"close-socket/{ch['id']}?drop=1")
            _, closed = await until_closed(ws, 2.0)
            check(closed[0] == 1006, f"drop hook: the peer sees an abnormal closure, got {closed}")
        check(srv.http("POST", f"/test/close-socket/{ch['id']}")[0] == 404, "no socket to close")
        check(srv.http("POST", f"/test/close-socket/{ch['id']}?code=99")[0] == 404, "no socket, bad code")
        check(srv.http("POST", "/test/no-such-hook")[0] == 404, "unknown hook")
        check(srv.http("GET", "/test/stop-heartbeats")[0] == 405, "hooks that change state need POST")
        check(srv.http("POST", "/test/delete-channel/streaming-0-unknown")[0] == 404, "delete unknown")
        check(srv.http("GET", "/")[0] == 404, "unknown resource")
        status, _, body = srv.http("GET", "/oauth/token")
        check(status == 405, f"GET /oauth/token {status}")
        srv.hook("delete-channel/" + ch["id"])
        check(srv.http("GET", "/test/channels")[2]["channels"] == [], "deleted by hook")
        srv.stop()
    finally:
        srv.kill()


async def scenario_lifecycle(binary):
    # --duration: exits by itself and prints the stats.
    srv = LocalServer(binary, "--duration", "0.5")
    try:
        out, _ = srv.proc.communicate(timeout=10)
        check(srv.proc.returncode == 0, f"exit status {srv.proc.returncode}")
        stats = json.loads(out.strip().splitlines()[-1])
        check(stats["handshakes"] == 0 and "events_lost" in stats, f"final stats {stats}")
    finally:
        srv.kill()

    # SIGINT with a socket open: the socket is told, the stats printed.
    srv = LocalServer(binary, "--event-interval-ms", "0")
    try:
        ch = srv.create_channel(srv.token())
        async with connect(ch["connectUri"]) as ws:
            srv.proc.send_signal(signal.SIGINT)
            _, closed = await until_closed(ws, 3.0)
            check(closed == (1001, "Server shutting down"), f"close on shutdown {closed}")
        stats = srv.stop()
        check(stats["sockets_opened"] == 1 and stats["channels_created"] == 1, f"final stats {stats}")
    finally:
        srv.kill()

    # Bad options: a clear error, exit status 2, nothing on stdout.
    for args in (["--port", "70000"], ["--token-lifetime", "-1"], ["--bogus"], ["--client-secret"]):
        p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=10)
        check(p.returncode == 2 and p.stdout == "" and "error:" in p.stderr, f"{args}: {p.returncode} {p.stderr!r}")
    p = subprocess.run([binary, "--client-secret", "s3cr3t-value:x", "--max-channels", "x"],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode == 2 and "s3cr3t" not in p.stderr, "errors never echo the secret")


async def scenario_system_topics(binary):
    """token_revoked and no_longer_subscribed reach the channel's socket as
    system messages; a revoked token gets 401 on REST."""
    srv = LocalServer(binary, "--event-interval-ms", "50", "--heartbeat-interval", "0")
    api = "/api/v2/notifications/channels"
    try:
        token = srv.token()
        ch = srv.create_channel(token)
        async with connect(ch["connectUri"]) as ws:
            check(srv.subscribe(token, ch["id"], ["topic.a"])[0] == 200, "subscribe")
            srv.hook("unsubscribe/" + ch["id"])
            topic = "v2.system.no_longer_subscribed." + ch["id"]
            msgs, closed = await receive(ws, 2.0, until=lambda m: m.get("topicName") == topic)
            check(closed is None and msgs and msgs[-1]["topicName"] == topic, "no_longer_subscribed arrives")
            body = msgs[-1]["eventBody"]
            check(body["channelId"] == ch["id"] and body["message"], f"a system message: {body}")
            _, _, subs = srv.http("GET", f"{api}/{ch['id']}/subscriptions", token=token)
            check(subs["entities"] == [], f"the topics are gone: {subs}")
            srv.hook("revoke-tokens")
            topic = "v2.system.token_revoked." + ch["id"]
            msgs, closed = await receive(ws, 2.0, until=lambda m: m.get("topicName") == topic)
            check(closed is None and msgs and msgs[-1]["topicName"] == topic, "token_revoked arrives")
        status, _, body = srv.http("GET", api, token=token)
        check(status == 401 and body["message"] == "Token revoked", f"a revoked token: {status} {body}")
        check(srv.http("GET", api, token=srv.token())[0] == 200, "a new token works")
        s = srv.stop()
        check(s["tokens_revoked"] == 1 and s["system_messages_sent"] == 2, f"counters {s}")
    finally:
        srv.kill()


async def scenario_dead_channel_answers(binary):
    """--dead-channel-answer: how a handshake on a gone channel is answered."""
    for answer in ("http401", "result404", "close"):
        srv = LocalServer(binary, "--event-interval-ms", "0", "--heartbeat-interval", "0",
                          "--dead-channel-answer", answer)
        try:
            uri = f"ws://127.0.0.1:{srv.port}/channels/streaming-0-gone"
            if answer == "http401":
                await expect_rejected(uri, 401)
            else:
                async with connect(uri) as ws:
                    msgs, closed = await receive(ws, 1.0)
                    if answer == "result404":
                        check(msgs == [{"result": "404", "message": "Channel not found"}] and closed is None,
                              f"result404: {msgs} {closed}")
                    else:
                        check(msgs == [] and closed == (1000, ""), f"close: {msgs} {closed}")
            s = srv.stop()
            check(s["dead_channel_answers"] == (0 if answer == "http401" else 1), f"{answer}: {s}")
        finally:
            srv.kill()


async def scenario_bound_channels(binary):
    """--bind-channels-to-token: a channel dies when its creating token
    expires (or is revoked); channels of newer tokens live on."""
    srv = LocalServer(binary, "--event-interval-ms", "0", "--heartbeat-interval", "0",
                      "--bind-channels-to-token", "--token-lifetime", "1")
    api = "/api/v2/notifications/channels"
    try:
        old = srv.token()
        ch = srv.create_channel(old)
        async with connect(ch["connectUri"]) as ws:
            await asyncio.sleep(0.5)
            new = srv.token()
            ch2 = srv.create_channel(new)
            _, closed = await until_closed(ws, 2.0)
            check(closed == (1000, ""), f"the channel died with its token: {closed}")
        check(srv.http("HEAD", f"{api}/{ch2['id']}", token=new)[0] == 200, "the newer token's channel lives")
        srv.hook("revoke-tokens")
        check(srv.http("HEAD", f"{api}/{ch2['id']}", token=srv.token())[0] == 404, "revoked with its token")
        s = srv.stop()
        check(s["channels_died_with_token"] == 2, f"counters {s}")
    finally:
        srv.kill()


async def scenario_takeover_before_open(binary):
    """--takeover-before-open: the first socket's close 1000 arrives before
    the second socket's handshake is answered."""
    srv = LocalServer(binary, "--event-interval-ms", "0", "--heartbeat-interval", "0", "--takeover-before-open")
    try:
        ch = srv.create_channel(srv.token())
        async with connect(ch["connectUri"]) as first:
            second_task = asyncio.ensure_future(connect(ch["connectUri"]))
            _, closed = await until_closed(first, 2.0)
            closed_at = time.monotonic()
            check(closed is not None and closed[0] == 1000, f"takeover close {closed}")
            second = await second_task
            check(time.monotonic() - closed_at >= 0.1, "the new socket opened after the old one's close")
            await second.close()
        s = srv.stop()
        check(s["sockets_taken_over"] == 1, f"counters {s}")
    finally:
        srv.kill()


async def scenario_send_frame(binary):
    """/test/send-frame/{channel}: any text to the channel's socket (for
    oversize and deeply nested frames)."""
    srv = LocalServer(binary, "--event-interval-ms", "0", "--heartbeat-interval", "0")
    try:
        ch = srv.create_channel(srv.token())
        async with connect(ch["connectUri"]) as ws:
            status, _, _ = srv.http("POST", "/test/send-frame/" + ch["id"], body="[[[[1]]]]")
            check(status == 200, f"send-frame {status}")
            msg = await asyncio.wait_for(ws.recv(), 2)
            check(msg == "[[[[1]]]]", f"frame as sent: {msg!r}")
        srv.stop()
    finally:
        srv.kill()


SCENARIOS = {
    "token": scenario_token,
    "channel_events": scenario_channel_events,
    "heartbeat_ping": scenario_heartbeat_ping,
    "socket_closing": scenario_socket_closing,
    "takeover": scenario_takeover,
    "channel_expiry": scenario_channel_expiry,
    "channel_limit": scenario_channel_limit,
    "rate_limit": scenario_rate_limit,
    "seed_mode": scenario_seed_mode,
    "test_hooks": scenario_test_hooks,
    "lifecycle": scenario_lifecycle,
    "system_topics": scenario_system_topics,
    "dead_channel_answers": scenario_dead_channel_answers,
    "bound_channels": scenario_bound_channels,
    "takeover_before_open": scenario_takeover_before_open,
    "send_frame": scenario_send_frame,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="path of tether_genesys_local_server")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    if not args.server:
        parser.error("--server is required")
    failed = 0
    for name in args.scenario or list(SCENARIOS):
        start = time.monotonic()
        try:
            asyncio.run(asyncio.wait_for(SCENARIOS[name](args.server), SCENARIO_TIMEOUT))
            print(f"PASS {name} ({time.monotonic() - start:.2f} s)")
        except (TestFailure, asyncio.TimeoutError, OSError, websockets.exceptions.WebSocketException) as e:
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            for srv in STARTED:
                print(f"--- server log (port {getattr(srv, 'port', '?')}), last lines:")
                print("\n".join(srv.log_text().splitlines()[-40:]))
        STARTED.clear()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
