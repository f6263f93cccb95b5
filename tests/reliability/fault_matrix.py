#!/usr/bin/python3
"""The fault matrix (issue 12): tether-cli (the real client: reconnecting
client + websocketpp transport + OAuth2 token source) against an independent
server written with Python `websockets` and a Python token endpoint, with a
fault-injection proxy in between. Everything listens on 127.0.0.1, port 0;
every row is bounded by tether-cli's --duration and a subprocess timeout.

Each row asserts its expected outcome. The server numbers its messages per
connection ("c<conn>-<seq>"); for every connection the client saw open, the
messages it received must be 1, 2, 3, ... of one server connection with no
gap and no duplicate (a WebSocket cannot resume, so what was in flight when a
connection broke may be lost; nothing else may be).

usage: fault_matrix.py --cli PATH [--only ROW] [--markdown FILE]
"""
import argparse
import warnings
import asyncio
import base64
import datetime
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import tempfile
import time

import websockets

SECRET = "fault-matrix-secret"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RowFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise RowFailure(what)


# ------------------------------------------------------------------ certificates


def make_pki(directory):
    """CA, a good leaf, an expired leaf, a leaf for another host, a
    self-signed certificate (python3-cryptography)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(key, cn, issuer_name, issuer_key, nb, na, ca, sans):
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(nb).not_valid_after(na)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def write(fname, c, k):
        path = os.path.join(directory, fname)
        with open(path, "wb") as f:
            f.write(c.public_bytes(serialization.Encoding.PEM))
            if k is not None:
                f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        return path

    local = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert(ca_key, "fault matrix CA", name("fault matrix CA"), ca_key, now - day, now + 30 * day, True, None)
    out = {"ca": write("ca.pem", ca, None)}
    for label, nb, na, sans in [("good", now - day, now + 30 * day, local),
                                ("expired", now - 10 * day, now - day, local),
                                ("wrong_host", now - day, now + 30 * day, [x509.DNSName("wrong.example")])]:
        k = ec.generate_private_key(ec.SECP256R1())
        out[label] = write(label + ".pem", cert(k, label, ca.subject, ca_key, nb, na, False, sans), k)
    k = ec.generate_private_key(ec.SECP256R1())
    out["self_signed"] = write("self.pem", cert(k, "localhost", name("localhost"), k, now - day, now + 30 * day,
                                                False, local), k)
    return out


def server_tls(pem, tls10_only=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem)
    if tls10_only:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 allows TLS 1.0 only at level 0
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    return ctx


# ------------------------------------------------------------------ the peers


class TokenEndpoint:
    """POST /oauth/token -> a fresh token; counts requests."""

    def __init__(self):
        self.issued = []

    async def start(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def serve(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            token = "tok-%d-%s" % (len(self.issued) + 1, base64.b32encode(os.urandom(10)).decode())
            self.issued.append(token)
            body = json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3600}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class StreamServer:
    """Python `websockets`: checks the bearer token, then sends c<conn>-1, -2, ... every 20 ms."""

    def __init__(self, tokens, interval=0.02):
        self.tokens = tokens
        self.interval = interval
        self.handshakes = 0
        self.authorized = 0
        self.sent = {}  # conn -> last seq sent

    async def start(self, tls=None):
        async def process_request(path, headers):
            self.handshakes += 1
            auth = headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens.issued:
                return 401, [], b"bad token\n"
            self.authorized += 1
            return None

        self.server = await websockets.serve(self.handler, "127.0.0.1", 0, ssl=tls,
                                             process_request=process_request, ping_interval=None)
        self.port = self.server.sockets[0].getsockname()[1]

    async def handler(self, ws, path=None):
        conn = len(self.sent) + 1
        self.sent[conn] = 0
        try:
            while True:
                await ws.send("c%d-%d" % (conn, self.sent[conn] + 1))
                self.sent[conn] += 1
                await asyncio.sleep(self.interval)
        except websockets.ConnectionClosed:
            pass


def accept_key(request):
    for line in request.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
            return base64.b64encode(hashlib.sha1(key + GUID).digest())
    return b""


def frame(opcode, payload):
    return bytes([0x80 | opcode, len(payload)]) + payload


def rst(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forwards 127.0.0.1:port -> upstream; the first `faulty` connections get `mode`."""

    def __init__(self, upstream_port, mode, faulty=1):
        self.upstream_port = upstream_port
        self.mode = mode
        self.faulty = faulty
        self.connections = 0
        self.fault_at = None  # monotonic time the fault was applied
        self.trickle_delay = 0.05
        self.tasks = set()

    async def start(self):
        self.server = await asyncio.start_server(self.on_client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def mark(self):
        if self.fault_at is None:
            self.fault_at = time.monotonic()

    async def on_client(self, cr, cw):
        self.connections += 1
        mode = self.mode if self.connections <= self.faulty else "pass"
        try:
            if mode in ("blackhole_all",):
                self.mark()
                while await cr.read(65536):
                    pass
                return
            if mode in FAKE_SERVERS:
                await FAKE_SERVERS[mode](self, cr, cw)
                return
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            up = asyncio.ensure_future(self.pump(cr, uw, mode, upstream=True))
            down = asyncio.ensure_future(self.pump(ur, cw, mode, upstream=False))
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            for t in (up, down):
                t.cancel()
            uw.close()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if not cw.is_closing():
                cw.close()

    async def pump(self, reader, writer, mode, upstream):
        seen = 0          # bytes forwarded in this direction
        head_done = False  # the HTTP head of this direction has passed
        buf = b""
        while True:
            data = await reader.read(65536)
            if not data:
                if mode == "half_close" or mode == "blackhole_after_open":
                    await asyncio.sleep(3600)
                writer.close()
                return
            if not head_done:
                buf += data
                if b"\r\n\r\n" in buf:
                    head_done = True
            if mode == "latency":
                await asyncio.sleep(0.2)  # in order: one chunk at a time
            elif mode == "bandwidth" and not upstream:
                for i in range(0, len(data), 500):
                    writer.write(data[i:i + 500])
                    await writer.drain()
                    await asyncio.sleep(0.05)  # 10 kB/s
                seen += len(data)
                continue
            elif mode == "trickle" and not upstream:
                self.mark()
                for i in range(len(data)):
                    writer.write(data[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(self.trickle_delay)
                seen += len(data)
                continue
            elif mode == "reset_mid_handshake" and not upstream:
                self.mark()
                writer.write(data[:min(20, len(data))])
                await writer.drain()
                rst(writer)
                return
            elif mode == "reset_mid_frame" and not upstream and head_done and seen > 400:
                self.mark()
                writer.write(data[:1])  # the first byte of a frame, then a reset
                await writer.drain()
                rst(writer)
                return
            elif mode == "half_close" and not upstream and head_done and seen > 400:
                self.mark()
                writer.write_eof()  # FIN towards the client; keep reading from it
                await asyncio.sleep(3600)
            elif mode == "blackhole_after_open" and head_done and seen > 400:
                self.mark()
                while await reader.read(65536):
                    pass  # swallow everything, forward nothing
                await asyncio.sleep(3600)
            writer.write(data)
            await writer.drain()
            seen += len(data)


# Fake upstreams: the proxy answers the upgrade itself.

async def read_head(cr):
    return await cr.readuntil(b"\r\n\r\n")


async def fake_garbage(proxy, cr, cw):
    await read_head(cr)
    proxy.mark()
    cw.write(os.urandom(64) + b"\r\n\r\n")
    await cw.drain()
    await asyncio.sleep(1)


async def fake_big_body(proxy, cr, cw):
    await read_head(cr)
    proxy.mark()
    size = 10 * 1024 * 1024
    cw.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: %d\r\n\r\n" % size)
    chunk = b"x" * 65536
    try:
        for _ in range(size // len(chunk)):
            cw.write(chunk)
            await cw.drain()
    except ConnectionError:
        pass


async def fake_http10(proxy, cr, cw):
    req = await read_head(cr)
    proxy.mark()
    cw.write(b"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Accept: " + accept_key(req) + b"\r\n\r\n")
    await cw.drain()
    await asyncio.sleep(1)


async def fake_no_accept(proxy, cr, cw):
    await read_head(cr)
    proxy.mark()
    cw.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    await cw.drain()
    await asyncio.sleep(1)


async def fake_wrong_accept(proxy, cr, cw):
    await read_head(cr)
    proxy.mark()
    cw.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Accept: " + base64.b64encode(b"x" * 20) + b"\r\n\r\n")
    await cw.drain()
    await asyncio.sleep(1)


async def handshake_ok(cr, cw):
    req = await read_head(cr)
    cw.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Accept: " + accept_key(req) + b"\r\n\r\n")
    cw.write(frame(0x1, b"c0-1"))


async def fake_invalid_close(proxy, cr, cw):
    await handshake_ok(cr, cw)
    await asyncio.sleep(0.1)
    proxy.mark()
    # reserved code 1005 must never be on the wire (RFC 6455 7.4.1), then a bad reason
    cw.write(frame(0x8, struct.pack("!H", 1005) + b"\xff\xfe"))
    await cw.drain()
    await asyncio.sleep(1)


async def fake_close_no_fin(proxy, cr, cw):
    await handshake_ok(cr, cw)
    await asyncio.sleep(0.1)
    proxy.mark()
    cw.write(frame(0x8, struct.pack("!H", 1001) + b"going away"))
    await cw.drain()
    while await cr.read(65536):  # keep the socket open, answer nothing
        pass


FAKE_SERVERS = {"garbage": fake_garbage, "big_body": fake_big_body, "http10": fake_http10,
                "no_accept": fake_no_accept, "wrong_accept": fake_wrong_accept,
                "invalid_close": fake_invalid_close, "close_no_fin": fake_close_no_fin}


# ------------------------------------------------------------------ running tether-cli


async def run_cli(cli, args, duration, env_extra=None):
    env = dict(os.environ)
    env["TETHER_CLIENT_SECRET"] = SECRET
    proc = await asyncio.create_subprocess_exec(
        cli, "--duration", str(duration), "--backoff-initial", "50", "--backoff-max", "200", "--quiet", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env)
    events = []
    start = time.monotonic()
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), duration + 20)
            if not line:
                break
            e = json.loads(line)
            e["mono"] = time.monotonic()
            events.append(e)
    finally:
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
    return events, start


def segments(events):
    """Messages grouped by the open they follow."""
    out, cur = [], None
    for e in events:
        if e["event"] == "open":
            cur = []
            out.append(cur)
        elif e["event"] == "message" and cur is not None:
            cur.append(e["text"])
    return out


def check_stream(events, server):
    total = 0
    for seg in segments(events):
        if not seg:
            continue
        conn = seg[0].split("-")[0]
        nums = []
        for text in seg:
            c, n = text.split("-")
            check(c == conn, "messages of two server connections in one client connection")
            nums.append(int(n))
        check(nums == list(range(1, len(nums) + 1)), "gap or duplicate in the numbered stream: %s" % nums[:20])
        if server is not None and conn != "c0":
            check(len(nums) <= server.sent.get(int(conn[1:]), 0), "more messages received than sent")
        total += len(nums)
    return total


def recovery_ms(events, proxy):
    """From the fault (proxy's mark, else the first failure) to the next open."""
    t0 = proxy.fault_at if proxy is not None and proxy.fault_at else None
    if t0 is None:
        fails = [e for e in events if e["event"] == "close"]
        if not fails:
            return None
        t0 = fails[0]["mono"]
    opens = [e for e in events if e["event"] == "open" and e["mono"] > t0]
    return round((opens[0]["mono"] - t0) * 1000) if opens else None


def first_close(events):
    c = [e for e in events if e["event"] == "close"]
    return c[0] if c else {}


def opens(events):
    return [e for e in events if e["event"] == "open"]


# ------------------------------------------------------------------ the rows


class Env:
    def __init__(self, cli, pki):
        self.cli, self.pki = cli, pki

    async def start(self, tls=None):
        self.tokens = TokenEndpoint()
        await self.tokens.start()
        self.server = StreamServer(self.tokens)
        await self.server.start(tls)

    def token_args(self, port=None):
        return ["--token-url", "http://127.0.0.1:%d/oauth/token" % (port or self.tokens.port),
                "--client-id", "fault-matrix"]


async def ws_row(env, mode, duration=2.5, extra=(), faulty=1):
    await env.start()
    proxy = FaultProxy(env.server.port, mode, faulty)
    await proxy.start()
    events, _ = await run_cli(env.cli, [*env.token_args(), "--handshake-timeout", "1", *extra,
                                        "ws://127.0.0.1:%d/stream" % proxy.port], duration)
    return events, proxy


async def token_row(env, mode, duration=3.0):
    await env.start()
    proxy = FaultProxy(env.tokens.port, mode)
    proxy.trickle_delay = 0.01
    await proxy.start()
    events, _ = await run_cli(env.cli, [*env.token_args(proxy.port), "ws://127.0.0.1:%d/stream" % env.server.port],
                              duration)
    return events, proxy


def expect_recovered(events, proxy, server, error_word=None, lossless=False):
    c = first_close(events)
    check(c, "no failure was reported")
    if error_word:
        check(error_word in json.dumps(c), "the failure does not mention %r: %s" % (error_word, c))
    check(len(opens(events)) >= 1, "never (re)opened")
    n = check_stream(events, server)
    check(n > 0, "no message arrived after recovery")
    return recovery_ms(events, proxy)


ROWS = []


def row(name, fault):
    def wrap(fn):
        ROWS.append((name, fault, fn))
        return fn
    return wrap


@row("latency", "200 ms each way on every chunk")
async def r_latency(env):
    events, proxy = await ws_row(env, "latency", faulty=99)
    check(len(opens(events)) == 1, "reconnected under mere latency")
    check(not [e for e in events if e["event"] == "close" and e.get("error")], "an error under mere latency")
    n = check_stream(events, env.server)
    check(n >= 20, "too few messages under latency: %d" % n)
    return "open, stream intact (%d messages, 1 connection)" % n, "n/a (no failure)"


@row("bandwidth", "server->client limited to 10 kB/s")
async def r_bandwidth(env):
    events, proxy = await ws_row(env, "bandwidth", faulty=99)
    check(len(opens(events)) == 1, "reconnected under low bandwidth")
    n = check_stream(events, env.server)
    check(n >= 20, "too few messages: %d" % n)
    return "open, stream intact (%d messages, 1 connection)" % n, "n/a (no failure)"


@row("reset mid-frame", "RST after 1 byte of a frame")
async def r_reset_frame(env):
    events, proxy = await ws_row(env, "reset_mid_frame")
    t = expect_recovered(events, proxy, env.server)
    check(first_close(events).get("code") == 1006, "not reported as 1006")
    return "1006 connection_failed -> reconnect, stream intact per connection", t


@row("reset mid-handshake", "RST after 20 bytes of the 101")
async def r_reset_hs(env):
    events, proxy = await ws_row(env, "reset_mid_handshake")
    t = expect_recovered(events, proxy, env.server, "connection")
    return "connection_failed (lost during the handshake) -> retry", t


@row("half-close", "FIN towards the client after open")
async def r_half_close(env):
    events, proxy = await ws_row(env, "half_close", extra=["--ping-interval", "0.3", "--pong-timeout", "0.3"])
    t = expect_recovered(events, proxy, env.server)
    return "1006 (%s) -> reconnect" % first_close(events).get("error", "closed"), t


@row("black hole after open", "nothing forwarded either way after open")
async def r_blackhole(env):
    events, proxy = await ws_row(env, "blackhole_after_open",
                                 extra=["--ping-interval", "0.3", "--pong-timeout", "0.3"], duration=3.0)
    t = expect_recovered(events, proxy, env.server, "pong")
    return "pong_timeout (1006) -> reconnect", t


@row("black hole during TLS", "wss:// peer accepts and never answers")
async def r_blackhole_tls(env):
    await env.start()
    proxy = FaultProxy(0, "blackhole_all", faulty=99)
    await proxy.start()
    events, _ = await run_cli(env.cli, [*env.token_args(), "--handshake-timeout", "0.5", "--max-attempts", "2",
                                        "--ca-file", env.pki["ca"], "wss://127.0.0.1:%d/" % proxy.port], 4)
    c = first_close(events)
    check("timed out" in json.dumps(c) or "handshake" in c.get("error", ""), "not a handshake timeout: %s" % c)
    check("TLS" in c.get("detail", ""), "the detail does not name the TLS stage: %s" % c)
    check(not opens(events), "opened")
    return "handshake_timeout (stuck in the TLS handshake), retried, bounded by --max-attempts", "n/a (permanent)"


@row("slowloris", "the 101 answer trickled 1 byte / 50 ms")
async def r_trickle(env):
    events, proxy = await ws_row(env, "trickle", duration=3.0)
    t = expect_recovered(events, proxy, env.server, "timed out")
    return "handshake_timeout after 1 s -> retry", t


@row("10 MB upgrade response body", "503 with a 10 MB body")
async def r_big_body(env):
    events, proxy = await ws_row(env, "big_body", duration=3.0)
    t = expect_recovered(events, proxy, env.server)
    c = first_close(events)
    check(c.get("http_status") == 503, "status not reported: %s" % c)
    return "refused (HTTP 503, body excerpt bounded) -> retry", t


@row("garbage instead of HTTP", "64 random bytes")
async def r_garbage(env):
    events, proxy = await ws_row(env, "garbage")
    t = expect_recovered(events, proxy, env.server)
    return "handshake failed (%s) -> retry" % first_close(events).get("error", "?"), t


@row("HTTP/1.0 answer", "HTTP/1.0 101")
async def r_http10(env):
    events, proxy = await ws_row(env, "http10")
    t = expect_recovered(events, proxy, env.server)
    return "handshake failed (%s) -> retry" % first_close(events).get("error", "?"), t


@row("101 without Sec-WebSocket-Accept", "")
async def r_no_accept(env):
    events, proxy = await ws_row(env, "no_accept")
    t = expect_recovered(events, proxy, env.server, "protocol")
    return "protocol_error -> retry", t


@row("wrong accept key", "")
async def r_wrong_accept(env):
    events, proxy = await ws_row(env, "wrong_accept")
    t = expect_recovered(events, proxy, env.server, "protocol")
    return "protocol_error -> retry", t


@row("invalid close payload", "close code 1005 + invalid UTF-8 reason")
async def r_invalid_close(env):
    # 1002 means stop to the default close table; --reconnect-code shows the recovery too
    events, proxy = await ws_row(env, "invalid_close", extra=["--reconnect-code", "1002"])
    t = expect_recovered(events, proxy, env.server, "protocol")
    check(first_close(events).get("code") == 1002, "not closed with 1002: %s" % first_close(events))
    return "protocol_error, reported as 1002 (stop by default; reconnect with --reconnect-code 1002)", t


@row("close frame then no FIN", "close 1001, socket kept open")
async def r_close_no_fin(env):
    events, proxy = await ws_row(env, "close_no_fin", duration=7.0)
    t = expect_recovered(events, proxy, env.server)
    c = first_close(events)
    check(c.get("code") == 1001, "close code lost: %s" % c)
    check(4800 <= c.get("uptime_ms", 0) - 100 <= 6500, "not bounded by close_timeout (5 s): %s" % c)
    return "1001 reported once the 5 s close bound passes (a client waits for the server's FIN) -> reconnect", t


@row("refused connections", "nothing listens")
async def r_refused(env):
    await env.start()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    events, _ = await run_cli(env.cli, [*env.token_args(), "--max-attempts", "3", "ws://127.0.0.1:%d/" % port], 3)
    c = first_close(events)
    check("cannot connect" in c.get("detail", ""), "not a connect failure: %s" % c)
    check(len([e for e in events if e["event"] == "connecting"]) == 3, "not retried up to --max-attempts")
    return "connection_failed (refused), retried with backoff, stops at --max-attempts", "n/a (permanent)"


@row("DNS failure", "a name that does not resolve (.invalid)")
async def r_dns(env):
    await env.start()
    events, _ = await run_cli(env.cli, [*env.token_args(), "--allow-insecure-token-transport", "--max-attempts", "2",
                                        "ws://tether-fault-matrix.invalid/"], 6)
    c = first_close(events)
    check("cannot resolve" in c.get("detail", ""), "not a resolve failure: %s" % c)
    return "connection_failed (cannot resolve), retried, stops at --max-attempts", "n/a (permanent)"


async def tls_row(env, pem, tls10=False):
    await env.start(server_tls(pem, tls10))
    events, _ = await run_cli(env.cli, [*env.token_args(), "--ca-file", env.pki["ca"], "--max-attempts", "2",
                                        "wss://localhost:%d/stream" % env.server.port], 4)
    check(not opens(events), "opened")
    check(env.server.handshakes == 0, "an HTTP request (with the token) reached the server")
    return first_close(events)


@row("expired certificate", "")
async def r_expired(env):
    c = await tls_row(env, env.pki["expired"])
    check("expired" in c.get("detail", ""), "not reported as expired: %s" % c)
    check(c.get("action") == "stop", "retried a verification failure")
    return "tls_verification_failed (certificate has expired) -> stop; no request sent", "n/a (stops)"


@row("self-signed certificate", "")
async def r_self_signed(env):
    c = await tls_row(env, env.pki["self_signed"])
    check("verif" in json.dumps(c), "not a verification failure: %s" % c)
    check(c.get("action") == "stop", "retried a verification failure")
    return "tls_verification_failed (self-signed) -> stop; no request sent", "n/a (stops)"


@row("certificate for another host", "SAN wrong.example")
async def r_wrong_host(env):
    c = await tls_row(env, env.pki["wrong_host"])
    check("does not match host" in c.get("detail", ""), "not a host mismatch: %s" % c)
    check(c.get("action") == "stop", "retried a verification failure")
    return "tls_verification_failed (does not match host) -> stop; no request sent", "n/a (stops)"


@row("TLS 1.0-only server", "Python ssl, SECLEVEL=0, TLSv1 max")
async def r_tls10(env):
    c = await tls_row(env, env.pki["good"], tls10=True)
    check("TLS handshake" in c.get("detail", ""), "not a TLS handshake failure: %s" % c)
    check(c.get("action") != "stop" or "verif" not in json.dumps(c), "reported as a verification failure")
    # the row is real: an old client does get TLS 1.0 from this server
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1
    _, w = await asyncio.open_connection("127.0.0.1", env.server.port, ssl=old)
    version = w.get_extra_info("ssl_object").version()
    w.close()
    check(version == "TLSv1", "the server did not speak TLS 1.0 (%s)" % version)
    return "connection_failed (TLS handshake refused: tether needs TLS 1.2+), no request sent; bounded by --max-attempts", \
        "n/a (permanent)"


@row("token endpoint: latency", "200 ms each way")
async def r_tok_latency(env):
    events, proxy = await token_row(env, "latency")
    check(len(opens(events)) == 1, "did not open")
    check(not [e for e in events if e["event"] == "token_error"], "token error under latency")
    check_stream(events, env.server)
    return "token fetched, open", "n/a (no failure)"


@row("token endpoint: reset mid-answer", "RST after 20 bytes")
async def r_tok_reset(env):
    events, proxy = await token_row(env, "reset_mid_handshake")
    check([e for e in events if e["event"] == "token_error"], "no token error reported")
    check(len(opens(events)) == 1, "did not open after the retry")
    check_stream(events, env.server)
    return "token_request_failed -> retry -> token, open", recovery_ms(events, proxy)


@row("token endpoint: garbage", "64 random bytes")
async def r_tok_garbage(env):
    events, proxy = await token_row(env, "garbage")
    check([e for e in events if e["event"] == "token_error"], "no token error reported")
    check(len(opens(events)) == 1, "did not open after the retry")
    return "malformed_http_response -> retry -> token, open", recovery_ms(events, proxy)


@row("token endpoint: 10 MB body", "503 with a 10 MB body")
async def r_tok_big(env):
    events, proxy = await token_row(env, "big_body")
    errs = [e for e in events if e["event"] == "token_error"]
    check(errs, "no token error reported")
    check(len(opens(events)) == 1, "did not open after the retry")
    return "%s (not read to the end) -> retry -> open" % errs[0].get("error"), recovery_ms(events, proxy)


@row("token endpoint: slowloris", "answer trickled 1 byte / 10 ms")
async def r_tok_trickle(env):
    events, proxy = await token_row(env, "trickle", duration=5.0)
    check(len(opens(events)) == 1, "did not open")
    check(not [e for e in events if e["event"] == "token_error"], "the slow answer was refused")
    return "slow but complete answer accepted (within the request timeout), open", "n/a (no failure)"


warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLS 1.0 is the point of one row


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--only")
    ap.add_argument("--markdown")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    pki = make_pki(tmp.name)
    results, failed = [], 0
    for name, fault, fn in ROWS:
        if a.only and name not in a.only.split(","):
            continue
        env = Env(a.cli, pki)
        t0 = time.monotonic()
        try:
            outcome, recover = await asyncio.wait_for(fn(env), 40)
            status = "pass"
        except (RowFailure, asyncio.TimeoutError) as e:
            outcome, recover, status = "FAILED: %s" % (e or "timeout"), "", "FAIL"
            failed += 1
        recover_text = recover if isinstance(recover, str) else ("%d ms" % recover if recover is not None else "-")
        results.append((name, fault, outcome, recover_text, status))
        print("%-34s %-5s %s | %s (%.1f s)" % (name, status, outcome, recover_text, time.monotonic() - t0),
              flush=True)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("| fault | injected | outcome (asserted) | time to recover |\n|---|---|---|---|\n")
            for name, fault, outcome, recover, status in results:
                f.write("| %s | %s | %s | %s |\n" % (name, fault, outcome, recover))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
