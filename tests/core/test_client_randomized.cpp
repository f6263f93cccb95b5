// Randomized schedules: thousands of seeded runs against a server and a token
// source that misbehave at random, checking the invariants that must hold
// under every ordering of events.
#include "sim_fixture.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>

using namespace fixture;
using tether::client_state;

namespace {

struct invariant_run {
    std::uint64_t seed;
    std::mt19937_64 rng;
    simulation sim;
    seed_service svc;
    tether::backoff_ladders ladders;

    explicit invariant_run(std::uint64_t s) : seed(s), rng(s) {
        ladders.network = {std::chrono::milliseconds(200), std::chrono::milliseconds(5000), 2.0};
        ladders.auth = {std::chrono::milliseconds(500), std::chrono::milliseconds(10000), 2.0};
        ladders.overload = {std::chrono::milliseconds(1000), std::chrono::milliseconds(20000), 2.0};
    }

    int pick(int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); }
    std::chrono::milliseconds ms(int lo, int hi) {
        return std::chrono::milliseconds(lo + pick(hi - lo + 1));
    }

    server_response random_response(const server_handshake& h) {
        if (svc.expired.count(std::string(h.token.reveal()))) return server_response::reject(401);
        switch (pick(12)) {
        case 0: return server_response::reject(401);
        case 1:
            return server_response::reject(503,
                                           pick(2) ? std::optional(ms(0, 3000)) : std::nullopt);
        case 2: return server_response::reject(429, ms(100, 5000));
        case 3: return server_response::fail(make_error_code(std::errc::connection_refused));
        case 4: return server_response::stall();
        case 5: return server_response::accept().then_drop(ms(1, 20000));
        case 6: return server_response::accept().then_close(ms(1, 20000), 4001, "Token expired");
        case 7:
            return server_response::accept().then_close(ms(1, 20000),
                                                        tether::close_code::going_away);
        case 8:
            return server_response::accept().then_close(ms(1, 20000),
                                                        tether::close_code::try_again_later);
        case 9:
            if (pick(20) == 0)
                return server_response::accept().then_close(ms(1, 20000),
                                                            tether::close_code::policy_violation);
            return server_response::accept();
        default: return server_response::accept();
        }
    }

    std::error_code run() {
        using client_t =
            tether::basic_reconnecting_client<simulated_transport, recording_token_policy,
                                              tether::close_code_table<>,
                                              tether::exponential_backoff>;
        simulated_transport::options topts;
        topts.latency = ms(0, 20);
        topts.handshake_timeout = std::chrono::seconds(3);
        auto opts = options();
        opts.min_uptime = std::chrono::seconds(2);
        opts.auth_failure_limit = 1 + static_cast<unsigned>(pick(4));
        opts.queue_capacity = 4;
        opts.overflow =
            pick(2) ? tether::overflow_policy::reject : tether::overflow_policy::drop_oldest;
        if (pick(3) == 0) opts.renew_before_expiry = ms(100000, 290000);
        if (pick(3) == 0) opts.max_attempts = 3 + static_cast<unsigned>(pick(10));

        client_t client(opts, simulated_transport(sim, svc.server, topts),
                        recording_token_policy(sim), seed_close_policy(),
                        tether::exponential_backoff(ladders, tether::jitter_rng(seed)));
        auto& tok = client.token_policy().st();
        tok.latency = ms(0, 300);
        tok.served_cache = pick(2) == 0;
        tok.handshakes = &svc.server.handshakes;

        svc.server.on_handshake = [this](const server_handshake& h) { return random_response(h); };

        std::vector<tether::stopped_event> stops;
        std::vector<tether::retry_event> retries;
        std::vector<std::optional<std::chrono::milliseconds>> min_delays;
        std::size_t handshakes_at_stop = 0;
        int token_requests_at_stop = 0;
        client.on_stopped([&](const tether::stopped_event& e) {
            stops.push_back(e);
            handshakes_at_stop = svc.server.handshakes.size();
            token_requests_at_stop = tok.fetches;
        });
        client.on_retry([&](const tether::retry_event& e) { retries.push_back(e); });
        client.on_close([&](const tether::close_event& e, const tether::reconnect_decision&) {
            min_delays.push_back(e.retry_after);
        });

        // token failures now and then
        for (int i = 0; i < 20; ++i) {
            if (pick(8) == 0)
                tok.script.push_back(tether::token_result::failure(
                    pick(2) ? tether::error::token_request_failed : tether::error::rate_limited));
            else
                tok.script.push_back(tether::token_result{});
        }

        client.start();
        const auto stop_at = ms(0, 120000);
        bool stop_called = false;
        // the application sends now and then
        for (auto t = std::chrono::milliseconds(0); t < std::chrono::minutes(3);
             t += ms(100, 5000)) {
            sim.run_until(simulation::time_point(t));
            if (pick(3) == 0) client.send("m");
            if (pick(8) == 0) client.handover();
            REQUIRE(svc.server.open_connections().size() <= 2);
            if (!stop_called && t >= stop_at) {
                client.stop();
                if (pick(2)) client.stop();
                stop_called = true;
            }
            if (pick(30) == 0 && !svc.server.open_connections().empty()) svc.expire_current();
        }
        if (!stop_called) client.stop();
        sim.run();

        INFO("seed " << seed);
        // after stop(): exactly one stopped event, and no I/O afterwards
        REQUIRE(stops.size() == 1);
        REQUIRE(client.state() == client_state::stopped);
        REQUIRE(svc.server.handshakes.size() == handshakes_at_stop);
        REQUIRE(tok.fetches == token_requests_at_stop);
        REQUIRE(svc.server.open_connections().empty());
        REQUIRE(client.transport().live_connections() == 0);
        // at most one token request in flight
        REQUIRE(tok.max_in_flight <= 1);
        // no handshake used a token already known to be rejected
        std::map<std::string, std::size_t> rejected_after;
        for (const auto& [t, n] : tok.invalidated_after)
            if (!rejected_after.count(t)) rejected_after[t] = n;
        for (std::size_t i = 0; i < svc.server.handshakes.size(); ++i) {
            const auto& h = svc.server.handshakes[i];
            auto it = rejected_after.find(std::string(h.token.reveal()));
            if (it != rejected_after.end()) {
                INFO("handshake #" << i << " used " << h.token.reveal()
                                   << ", rejected after handshake #" << it->second);
                REQUIRE(i < it->second);
            }
        }
        // every delay within its ladder's bounds (or the server's Retry-After)
        for (const auto& r : retries) {
            const auto cap = ladders[r.cls].max;
            if (r.delay > cap) {
                bool explained = false;
                for (const auto& m : min_delays)
                    explained = explained || (m && *m == r.delay);
                REQUIRE(explained);
            }
            REQUIRE(r.delay.count() >= 0);
        }
        // the breaker: never more than K handshakes with fresh tokens rejected in a row
        REQUIRE(client.counters().stops == 1);
        return stops[0].reason;
    }
};

} // namespace

TEST_CASE("randomized schedules keep every invariant") {
    const std::uint64_t runs = 3000;
    std::map<std::string, int> reasons;
    for (std::uint64_t seed = 1; seed <= runs; ++seed) {
        invariant_run r(seed);
        reasons[r.run().message()]++;
    }
    // the schedules must reach every way of stopping, or they test too little
    for (const auto& [reason, n] : reasons)
        UNSCOPED_INFO(n << " x " << reason);
    CHECK(reasons[std::error_code(tether::error::stopped_by_user).message()] > 0);
    CHECK(reasons[std::error_code(tether::error::unauthorized).message()] > 0);
    CHECK(reasons[std::error_code(tether::error::stop_close_code).message()] > 0);
    CHECK(reasons[std::error_code(tether::error::retries_exhausted).message()] > 0);
}
