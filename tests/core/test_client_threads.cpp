// The client's thread-safety promise on the simulated transport: one thread
// runs the simulation (virtual time), three call send() and state(), one calls
// reconnect(), handover(), counters(), state() and stop(). Every accepted
// message must reach the server or on_dropped (issue 11, defect 2).
//
// TETHER_STRESS_RUNS=<n> overrides the number of runs (to measure a rate).
#include "client_stress.hpp"

#include <tether/testing/simulated_transport.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using tether::testing::server_handshake;
using tether::testing::server_response;
using tether::testing::simulated_server;
using tether::testing::simulated_transport;
using tether::testing::simulation;

namespace {

int runs_from_env(int fallback) {
    const char* s = std::getenv("TETHER_STRESS_RUNS");
    return s && std::atoi(s) > 0 ? std::atoi(s) : fallback;
}

using sim_client =
    tether::basic_reconnecting_client<stress::recording_transport<simulated_transport>,
                                      tether::no_token, tether::default_close_policy,
                                      tether::constant_backoff>;

stress::outcome sim_run(std::uint64_t seed) {
    simulation sim;
    simulated_server server;
    std::mt19937_64 rng(seed); // executor thread only
    // Refused handshakes add reconnect paths without losing anything in
    // flight; the server never closes an open connection itself (a message
    // in flight when a server closes is lost by any protocol, not by us).
    server.on_handshake = [&rng](const server_handshake&) {
        return rng() % 8 == 0 ? server_response::reject(503) : server_response::accept();
    };
    simulated_transport::options topts;
    topts.latency = 1ms;
    tether::client_options opts;
    opts.url = "wss://example.test/stream";
    opts.queue_capacity = 64;
    opts.overflow =
        seed % 2 ? tether::overflow_policy::reject : tether::overflow_policy::drop_oldest;
    opts.handover_drain = seed % 3 == 0 ? 0ms : 5ms;
    sim_client client(
        opts,
        stress::recording_transport<simulated_transport>(simulated_transport(sim, server, topts)),
        tether::no_token(), tether::default_close_policy(), tether::constant_backoff(10ms));
    stress::config cfg;
    cfg.seed = seed;
    cfg.stop_after = 50 + static_cast<unsigned>(seed % 400);
    return stress::run(
        client, cfg, [&] { sim.run_for(1ms); }, [&] { sim.run_for(60s); },
        [&] {
            std::vector<std::string> got;
            for (const auto& r : server.received)
                got.push_back(r.data);
            return got;
        });
}

} // namespace

TEST_CASE(
    "threads: every message send() accepted from other threads reaches the server or on_dropped, "
    "while the client reconnects and stops (simulated transport)",
    "[client][threads]") {
    const int runs = runs_from_env(200);
    stress::tally t;
    for (int i = 0; i < runs; ++i)
        t.add(static_cast<std::uint64_t>(i) + 1, sim_run(static_cast<std::uint64_t>(i) + 1));
    INFO(t.summary());
    CHECK(t.failed == 0);
}
