// The vendored consumer: this file and a copy of single_include/tether/tether.hpp
// in an otherwise empty folder, built with
//   g++ -std=c++17 -DASIO_STANDALONE main.cpp -o app -lssl -lcrypto -pthread
//
// A real client (websocketpp transport, static token) against a tiny HTTP
// server on 127.0.0.1 that refuses the upgrade with 401: the client must send
// its token as a bearer header, hear the 401, and stop with token_rejected
// instead of retrying a token it knows is refused. Bounded: at most 10 s.
#include "tether.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

namespace {

/// Answers every upgrade request with 401 and remembers what it was sent.
class refusing_server {
public:
    explicit refusing_server(asio::io_context& io)
        : acceptor_(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        accept();
    }
    unsigned short port() const { return acceptor_.local_endpoint().port(); }
    void stop() { acceptor_.close(); }

    int handshakes = 0;
    std::string last_request;

private:
    void accept() {
        acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket s) {
            if (ec) return;
            auto peer = std::make_shared<connection>(std::move(s));
            asio::async_read_until(peer->socket, asio::dynamic_buffer(peer->request), "\r\n\r\n",
                                   [this, peer](std::error_code rec, std::size_t n) {
                                       if (rec) return;
                                       ++handshakes;
                                       last_request = peer->request.substr(0, n);
                                       static const std::string refusal =
                                           "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                                           "Connection: close\r\n\r\n";
                                       asio::async_write(peer->socket, asio::buffer(refusal),
                                                         [peer](std::error_code, std::size_t) {});
                                   });
            accept();
        });
    }

    struct connection {
        explicit connection(asio::ip::tcp::socket s) : socket(std::move(s)) {}
        asio::ip::tcp::socket socket;
        std::string request;
    };

    asio::ip::tcp::acceptor acceptor_;
};

} // namespace

int main() {
    int failures = 0;
    auto expect = [&](bool ok, const char* what) {
        if (!ok) {
            std::fprintf(stderr, "vendored: FAILED: %s\n", what);
            ++failures;
        }
    };

    asio::io_context io;
    refusing_server server(io);

    const unsigned port = server.port();
    tether::client_options opts;
    opts.url = "ws://127.0.0.1:" + std::to_string(port) + "/stream";
    tether::basic_reconnecting_client<tether::websocketpp_transport, tether::static_token> client(
        opts, tether::websocketpp_transport(io), tether::static_token("vendored-token"));

    std::optional<int> refused_status;
    std::optional<std::error_code> stopped_reason;
    client.on_close([&](const tether::close_event& ev, const tether::reconnect_decision&) {
        refused_status = ev.http_status;
    });
    client.on_stopped([&](const tether::stopped_event& ev) {
        stopped_reason = ev.reason;
        server.stop();
    });
    client.start();
    io.run_for(std::chrono::seconds(10));

    expect(server.handshakes == 1, "exactly one handshake: a refused static token is not retried");
    expect(server.last_request.find("\r\nAuthorization: Bearer vendored-token\r\n") !=
               std::string::npos,
           "the token travels as a bearer header");
    expect(refused_status == 401, "the client saw the 401");
    expect(stopped_reason && *stopped_reason == tether::error::token_rejected,
           "stops with token_rejected");

    std::printf("vendored: tether %d.%d.%d against 127.0.0.1:%u: %d handshake(s), %s\n",
                tether::version.major, tether::version.minor, tether::version.patch, port,
                server.handshakes, failures ? "FAILED" : "ok");
    return failures == 0 ? 0 : 1;
}
