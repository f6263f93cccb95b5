// The separate-compilation consumer: a C++20 program (when the compiler has it)
// linking tether::compiled. Its include path starts with a directory holding an
// #error header under every websocketpp header name, so it proves that the
// application's files never include websocketpp; the transport it calls was
// compiled once, at C++17, in tether::compiled.
//
// It runs the real transport on loopback: a tiny HTTP server in this program
// refuses the upgrade with 401 and a body, and the client must report that
// refusal (status, body excerpt) and classify it as the default close policy
// says: refresh the token, then reconnect.
#include <tether/tether.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#if !defined(TETHER_SEPARATE_COMPILATION)
#error "tether::compiled did not define TETHER_SEPARATE_COMPILATION"
#endif

int main() {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket peer(io);
    asio::streambuf request;
    std::string request_text;
    const std::string refusal = "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n"
                                "Content-Length: 13\r\nConnection: close\r\n\r\ntoken expired";
    acceptor.async_accept(peer, [&](std::error_code ec) {
        if (ec) return;
        asio::async_read_until(peer, request, "\r\n\r\n", [&](std::error_code rec, std::size_t n) {
            if (rec) return;
            request_text.assign(asio::buffers_begin(request.data()),
                                asio::buffers_begin(request.data()) + static_cast<long>(n));
            asio::async_write(peer, asio::buffer(refusal), [&](std::error_code, std::size_t) {
                std::error_code ignored;
                peer.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
            });
        });
    });

    tether::client_options opts;
    opts.url = "ws://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/stream";
    tether::reconnecting_client<tether::static_token> client(
        opts, tether::websocketpp_transport(io), tether::static_token("compiled-token"));
    tether::close_event seen{};
    tether::reconnect_decision decided{};
    bool stopped = false;
    client.on_close([&](const tether::close_event& e, const tether::reconnect_decision& d) {
        seen = e;
        decided = d;
        client.stop();
    });
    client.on_stopped([&](const tether::stopped_event&) {
        stopped = true;
        io.stop();
    });
    client.start();
    io.run_for(std::chrono::seconds(20));

    int failures = 0;
    const auto expect = [&](bool ok, const char* what) {
        if (!ok) {
            std::fprintf(stderr, "consumer_compiled: FAILED: %s\n", what);
            ++failures;
        }
    };
    expect(request_text.rfind("GET /stream HTTP/1.1\r\n", 0) == 0, "the upgrade request arrived");
    expect(request_text.find("Authorization: Bearer compiled-token") != std::string::npos,
           "the token was on the upgrade request");
    expect(seen.http_status == 401, "the close event reports HTTP 401");
    expect(seen.body_excerpt == "token expired", "the close event keeps the body excerpt");
    expect(decided.action == tether::close_action::refresh_token_then_reconnect,
           "a 401 means: refresh the token, then reconnect");
    expect(stopped, "the client stopped when asked");
    if (failures) return 1;
    std::printf("consumer_compiled: tether %d.%d.%d, C++%ld, refused with %d, ok\n",
                tether::version.major, tether::version.minor, tether::version.patch,
                static_cast<long>(__cplusplus / 100 % 100), seen.http_status);
    return 0;
}
