// The program every consumer build (find_package, add_subdirectory,
// FetchContent, meson, pkg-config) compiles and runs: a real client on the
// simulated transport, so it needs no network, and finishes in virtual time.
#include <tether/core.hpp>
#include <tether/testing.hpp>

// consumer.asio_config: asio::asio must be the target of the test's asio-config.cmake.
#if defined(TETHER_TEST_EXPECT_FAKE_ASIO) && !defined(TETHER_TEST_FAKE_ASIO_CONFIG)
#error "asio::asio from the test's asio-config.cmake did not reach this program"
#endif

#include <chrono>
#include <cstdio>
#include <string>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "consumer: FAILED: %s\n", what);
        ++failures;
    }
}

} // namespace

int main() {
    using namespace std::chrono_literals;
    namespace testing = tether::testing;

    testing::simulation sim;
    testing::simulated_server server;
    std::string last_token;
    server.on_handshake = [&](const testing::server_handshake& h) {
        last_token = h.token.reveal();
        return testing::server_response::accept();
    };

    tether::client_options opts;
    opts.url = "wss://consumer.invalid/stream";
    tether::basic_reconnecting_client<testing::simulated_transport, tether::static_token> client(
        opts, testing::simulated_transport(sim, server), tether::static_token("consumer-token"));

    int opens = 0;
    std::string received;
    tether::stopped_event stopped{};
    client.on_open([&](const tether::open_event&) { ++opens; });
    client.on_message([&](const tether::message_view& m) { received = std::string(m.data); });
    client.on_stopped([&](const tether::stopped_event& e) { stopped = e; });
    client.send_on_open("subscribe");

    client.start();
    expect(sim.run_until([&] { return opens == 1; }, 10s), "first connection opens");
    server.send("hello");
    sim.run_for(1s);
    expect(received == "hello", "message delivered");

    // An abnormal close (1006) means reconnect after a backoff.
    server.close(tether::close_code::abnormal);
    expect(sim.run_until([&] { return opens == 2; }, 5min), "reconnects after 1006");

    client.stop();
    sim.run_for(10s);
    expect(stopped.reason == tether::error::stopped_by_user, "stops on request");
    expect(last_token == "consumer-token", "token reaches the handshake");
    expect(server.received.size() == 2 && server.received[0].data == "subscribe",
           "on-open message replayed on each connection");
    expect(client.counters().opens == 2, "counters");

    std::printf("consumer: tether %d.%d.%d, %d opens, %s\n", tether::version.major,
                tether::version.minor, tether::version.patch, opens, failures ? "FAILED" : "ok");
    return failures == 0 ? 0 : 1;
}
