// The client's thread-safety promise on the real transport: websocketpp over
// 127.0.0.1 (ephemeral port), the io_context run by one thread that also
// serves the test server, three threads calling send() and state(), one
// calling reconnect(), handover(), counters(), state() and stop(). Every
// accepted message must reach the server or on_dropped (issue 11, defect 2).
// Every run ends by itself: the client is stopped and each wait is bounded.
//
// TETHER_STRESS_RUNS=<n> overrides the number of runs (to measure a rate).
#include "../core/client_stress.hpp"

#include <tether/transport/websocketpp_transport.hpp>

#include "support.hpp"
#include "wspp_test_server.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

int runs_from_env(int fallback) {
    const char* s = std::getenv("TETHER_STRESS_RUNS");
    return s && std::atoi(s) > 0 ? std::atoi(s) : fallback;
}

using wspp_client =
    tether::basic_reconnecting_client<stress::recording_transport<tether::websocketpp_transport>,
                                      tether::no_token, tether::default_close_policy,
                                      tether::constant_backoff>;

struct wspp_outcome {
    stress::outcome result;
    bool settled = false; ///< the server saw every connection end within the bound
};

wspp_outcome wspp_run(std::uint64_t seed) {
    asio::io_context io;
    test_support::plain_test_server server(io);
    std::mt19937_64 rng(seed); // io thread only
    // Refused handshakes add reconnect paths; the server never closes an open
    // connection itself (what is in flight then is lost by any protocol).
    server.decide = [&rng](const test_support::seen_request&) {
        test_support::handshake_verdict v;
        if (rng() % 8 == 0) v.status = 503;
        return v;
    };
    tether::websocketpp_transport_options topts;
    topts.handshake_timeout = 3s;
    topts.close_timeout = 2s;
    topts.ping_interval = 0ms;
    tether::client_options opts;
    opts.url = server.url("/stress");
    opts.queue_capacity = 64;
    opts.overflow =
        seed % 2 ? tether::overflow_policy::reject : tether::overflow_policy::drop_oldest;
    opts.handover_drain = seed % 3 == 0 ? 0ms : 5ms;
    wspp_client client(opts,
                       stress::recording_transport<tether::websocketpp_transport>(
                           tether::websocketpp_transport(io, topts)),
                       tether::no_token(), tether::default_close_policy(),
                       tether::constant_backoff(5ms));
    stress::config cfg;
    cfg.seed = seed;
    cfg.stop_after = 100 + static_cast<unsigned>(seed % 400);
    wspp_outcome out;
    out.result = stress::run(
        client, cfg,
        [&] {
            if (io.stopped()) io.restart();
            io.run_for(std::chrono::milliseconds(2));
        },
        [&] {
            out.settled = test_support::run_until(
                io,
                [&] {
                    return client.state() == tether::client_state::stopped &&
                           server.closes == server.opens;
                },
                10s);
            // What the API threads posted last (on_dropped reports among it)
            // may still wait in the queue: run it before counting.
            if (io.stopped()) io.restart();
            while (io.poll() > 0) {
            }
        },
        [&] { return server.messages; });
    return out;
}

} // namespace

TEST_CASE(
    "threads: every message send() accepted from other threads reaches the server or on_dropped, "
    "while the client reconnects and stops (websocketpp on 127.0.0.1)",
    "[transport][threads]") {
    const int runs = runs_from_env(100);
    stress::tally t;
    int unsettled = 0;
    for (int i = 0; i < runs; ++i) {
        const auto seed = static_cast<std::uint64_t>(i) + 1;
        const wspp_outcome o = wspp_run(seed);
        if (!o.settled) ++unsettled;
        t.add(seed, o.result);
    }
    INFO(t.summary());
    CHECK(unsettled == 0);
    CHECK(t.failed == 0);
}
