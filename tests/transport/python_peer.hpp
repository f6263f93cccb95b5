// The Python `websockets` library (Debian: python3-websockets) as an
// independent WebSocket server on 127.0.0.1, plain or TLS, for the transport
// tests. Built only when CMake/Meson found /usr/bin/python3 with the module
// (TETHER_TEST_PYTHON names the interpreter).
//
// Paths:
//   /echo, anything else   echo; "big N" answers N bytes (binary), "burst N"
//                          writes N small text frames in one write, "expire"
//                          closes with 4001 "Token expired", "pings?" answers
//                          the number of pings received on this connection
//   /headers...            first sends {"path": ..., "headers": {...}} as JSON
//   /close/<code>          closes at once with <code> "server says bye"
//   /auth...               401 + Retry-After: 3 unless "Bearer py-token"
//   /refuse/401            401, a JSON body ending in a newline
//   /refuse/403            403, a 5015-byte body
//   /refuse/429            429, Retry-After: 7
//   /refuse/503            503, Retry-After as an HTTP-date 30 s ahead
//   /requests              sends the number of HTTP requests seen before it
// After each connection it prints "closed <code> <reason>" on stdout.
#ifndef TETHER_TESTS_TRANSPORT_PYTHON_PEER_HPP
#define TETHER_TESTS_TRANSPORT_PYTHON_PEER_HPP

#ifdef TETHER_TEST_PYTHON

#include "support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace test_support {

inline const char* python_server_script = R"PY(
import asyncio, email.utils, json, ssl, sys, time
from http import HTTPStatus
import websockets

ping_interval = float(sys.argv[1]) or None
ping_timeout = float(sys.argv[2])
cert = sys.argv[3] if len(sys.argv) > 4 else None
key = sys.argv[4] if len(sys.argv) > 4 else None
tls12_max = len(sys.argv) > 5 and sys.argv[5] == "tls12"
requests = 0

async def check(path, headers):
    global requests
    requests += 1
    if path == "/refuse/401":
        return (HTTPStatus.UNAUTHORIZED, [("Content-Type", "application/json")],
                b'{"error": "unauthorized", "message": "Token expired"}\n')
    if path == "/refuse/403":
        return HTTPStatus.FORBIDDEN, [], b"token expired; " + b"x" * 5000
    if path == "/refuse/429":
        return HTTPStatus.TOO_MANY_REQUESTS, [("Retry-After", "7")], b""
    if path == "/refuse/503":
        when = email.utils.formatdate(time.time() + 30, usegmt=True)
        return HTTPStatus.SERVICE_UNAVAILABLE, [("Retry-After", when)], b""
    if path.startswith("/auth") and headers.get("Authorization") != "Bearer py-token":
        return HTTPStatus.UNAUTHORIZED, [("Retry-After", "3")], b"stale token\n"
    return None

class CountingProtocol(websockets.WebSocketServerProtocol):
    pings_received = 0
    async def pong(self, data=b""):  # called to answer each ping
        self.pings_received += 1
        await super().pong(data)

async def handler(ws, path):
    if path == "/requests":
        await ws.send(str(requests - 1))
    if path.startswith("/headers"):
        hs = {k.lower(): v for k, v in ws.request_headers.raw_items()}
        await ws.send(json.dumps({"path": path, "headers": hs}, sort_keys=True))
    if path.startswith("/close/"):
        await ws.close(int(path.split("/")[2]), "server says bye")
        return
    try:
        async for msg in ws:
            if msg == "pings?":
                await ws.send(str(ws.pings_received))
                continue
            if msg == "expire":
                await ws.close(4001, "Token expired")
                break
            if isinstance(msg, str) and msg.startswith("big "):
                await ws.send(b"x" * int(msg[4:]))
                continue
            if isinstance(msg, str) and msg.startswith("burst "):
                # one write: every frame arrives in the client's buffer together
                n = int(msg[6:])
                frames = b"".join(bytes([0x81, len(m)]) + m
                                  for m in (("m%d" % i).encode() for i in range(n)))
                ws.transport.write(frames)
                continue
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    print("closed %s %s" % (ws.close_code, ws.close_reason), flush=True)

async def main():
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if tls12_max:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    async with websockets.serve(handler, "127.0.0.1", 0, process_request=check, ssl=ctx,
                                ping_interval=ping_interval, ping_timeout=ping_timeout,
                                subprotocols=["chat.v1"],
                                create_protocol=CountingProtocol) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
)PY";

struct python_peer {
    temp_dir dir;
    std::optional<child_process> proc;
    std::uint16_t port = 0;
    bool tls = false;

    /// `cert`: none for ws://, else the server's certificate and key.
    /// `ping_interval`: the server pings that often (0: never) and closes the
    /// connection when a pong is `ping_timeout` late. `tls12_max`: the
    /// server speaks TLS 1.2 at most.
    explicit python_peer(const issued* cert = nullptr,
                         std::chrono::milliseconds ping_interval = std::chrono::milliseconds(0),
                         std::chrono::milliseconds ping_timeout = std::chrono::seconds(20),
                         bool tls12_max = false)
        : tls(cert != nullptr) {
        const std::string script = dir.write("server.py", python_server_script);
        std::vector<std::string> argv{TETHER_TEST_PYTHON, script,
                                      std::to_string(ping_interval.count() / 1000.0),
                                      std::to_string(ping_timeout.count() / 1000.0)};
        if (cert) {
            argv.push_back(dir.write("cert.pem", cert->cert_pem));
            argv.push_back(dir.write("key.pem", cert->key_pem));
            if (tls12_max) argv.push_back("tls12");
        }
        proc.emplace(argv);
        const auto line = proc->read_line(std::chrono::seconds(15));
        REQUIRE(line);
        port = static_cast<std::uint16_t>(std::stoi(*line));
    }
    std::string url(const std::string& path, const std::string& host = "127.0.0.1") const {
        return std::string(tls ? "wss://" : "ws://") + host + ":" + std::to_string(port) + path;
    }
};

} // namespace test_support

#endif // TETHER_TEST_PYTHON

#endif
