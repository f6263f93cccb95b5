// The Boost mode consumer: a C++20 program linking tether::core_boost from the
// installed package. Its include path starts with a directory holding an
// #error header under every standalone Asio and websocketpp header name tether
// includes, so it proves that Boost mode reaches neither.
//
// It runs basic_reconnecting_client on beast_transport on loopback: a tiny
// Boost.Asio HTTP server in this program refuses the upgrade with 401 and a
// body, and the client must report that refusal (status, body excerpt) and
// classify it as the default close policy says: refresh the token, then
// reconnect.
#include <tether/core.hpp>
#include <tether/transport/beast_transport.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <type_traits>

#if !defined(TETHER_USE_BOOST_ASIO)
#error "tether::core_boost did not define TETHER_USE_BOOST_ASIO"
#endif
static_assert(std::is_same_v<tether::net::io_context, boost::asio::io_context>,
              "in Boost mode tether::net is boost::asio");

int main() {
    namespace net = boost::asio;
    using boost::system::error_code;
    net::io_context io;
    net::ip::tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), 0});
    net::ip::tcp::socket peer(io);
    net::streambuf request;
    std::string request_text;
    const std::string refusal = "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n"
                                "Content-Length: 13\r\nConnection: close\r\n\r\ntoken expired";
    acceptor.async_accept(peer, [&](error_code ec) {
        if (ec) return;
        net::async_read_until(peer, request, "\r\n\r\n", [&](error_code rec, std::size_t n) {
            if (rec) return;
            request_text.assign(net::buffers_begin(request.data()),
                                net::buffers_begin(request.data()) + static_cast<long>(n));
            net::async_write(peer, net::buffer(refusal), [&](error_code, std::size_t) {
                error_code ignored;
                peer.shutdown(net::ip::tcp::socket::shutdown_both, ignored);
            });
        });
    });

    tether::client_options opts;
    opts.url = "ws://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/stream";
    tether::basic_reconnecting_client<tether::beast_transport, tether::static_token> client(
        opts, tether::beast_transport(io), tether::static_token("boost-token"));
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
            std::fprintf(stderr, "consumer_boost: FAILED: %s\n", what);
            ++failures;
        }
    };
    expect(request_text.rfind("GET /stream HTTP/1.1\r\n", 0) == 0, "the upgrade request arrived");
    expect(request_text.find("Authorization: Bearer boost-token") != std::string::npos,
           "the token was on the upgrade request");
    expect(seen.http_status == 401, "the close event reports HTTP 401");
    expect(seen.body_excerpt == "token expired", "the close event keeps the body excerpt");
    expect(decided.action == tether::close_action::refresh_token_then_reconnect,
           "a 401 means: refresh the token, then reconnect");
    expect(stopped, "the client stopped when asked");
    if (failures) return 1;
    std::printf("consumer_boost: tether %d.%d.%d, C++%ld, Boost.Asio, refused with %d, ok\n",
                tether::version.major, tether::version.minor, tether::version.patch,
                static_cast<long>(__cplusplus / 100 % 100), seen.http_status);
    return 0;
}
