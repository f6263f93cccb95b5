// Issue 12 #7: memory tether owns that held a secret is wiped before it is
// freed. Global operator delete is replaced (freed_memory_probe.hpp) and every
// block freed while armed is searched for a marker that only the secret holds.
// Plain HTTP on loopback: OpenSSL's record buffers are outside tether's reach
// (README, "Secrets in memory"). The peer's bytes live in static storage, so
// only the client's copies can be found.
#include "../support/freed_memory_probe.hpp"

#include <tether/detail/http_client.hpp>
#include <tether/secret.hpp>

#include <catch2/catch.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <string>

using namespace std::chrono_literals;

namespace {

constexpr char marker[] = "RESIDUE-7f3a9c2e41b8d05f";
// Served from static storage: the server side never allocates a copy.
constexpr char response_bytes[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 61\r\n"
    "Connection: close\r\n\r\n"
    "{\"access_token\":\"RESIDUE-7f3a9c2e41b8d05f\",\"expires_in\":3600}";

} // namespace

TEST_CASE("secret: the value is wiped on destruction and reassignment") {
    freed_memory_probe::arm(marker);
    {
        std::string value;
        value.reserve(200);
        value += marker;
        value.append(100, 'x');
        tether::secret a{std::move(value)}; // moved in: no unwiped copy made here
        tether::secret b = a;               // a copy is a secret too
        a = tether::secret("short");
    }
    CHECK(freed_memory_probe::disarm() == 0);
}

TEST_CASE("http exchange: no freed buffer keeps the token response (issue 12 #7)") {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket peer(io);
    std::array<char, 4096> request_buffer{};
    acceptor.async_accept(peer, [&](std::error_code ec) {
        if (ec) return;
        peer.async_read_some(asio::buffer(request_buffer), [&](std::error_code, std::size_t) {
            asio::async_write(peer, asio::buffer(response_bytes, sizeof response_bytes - 1),
                              [&](std::error_code, std::size_t) { peer.close(); });
        });
    });
    std::string why;
    auto url = tether::detail::parse_http_url(
        "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/token", why);
    REQUIRE(url);
    std::optional<int> status;
    freed_memory_probe::arm(marker);
    {
        tether::detail::http_exchange_options opts;
        opts.timeout = 5s;
        auto exchange = tether::detail::http_exchange::start(
            io.get_executor(), *url,
            tether::secret(std::string("POST /token HTTP/1.1\r\nHost: x\r\n\r\n")), std::move(opts),
            [&](tether::detail::http_result r) {
                status = r.response.status;
                CHECK(r.response.body.find(marker) != std::string::npos);
                tether::detail::wipe(r.response.body); // what oauth2_client_credentials does
            });
        io.run_for(5s);
    }
    io.run_for(50ms); // let go of every handler
    const int hits = freed_memory_probe::disarm();
    REQUIRE(status == 200);
    CHECK(hits == 0);
}
