// Regression tests for orderings that broke the client before it became an
// explicit state machine (each failed on the earlier implementation).
#include "sim_fixture.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>

using namespace fixture;
using tether::client_state;
using tether::close_action;
using tether::error;

namespace {

using plain_client =
    tether::basic_reconnecting_client<simulated_transport, recording_token_policy,
                                      tether::default_close_policy, tether::exponential_backoff>;

struct plain_world {
    simulation sim;
    simulated_server server;
    event_log log;
    plain_client client;

    explicit plain_world(tether::client_options o = options())
        : client(std::move(o), simulated_transport(sim, server), recording_token_policy(sim),
                 tether::default_close_policy(),
                 tether::exponential_backoff({}, tether::jitter_rng(7))) {
        log.attach(client);
    }

    /// Healthy again: the client is open on exactly one connection, and
    /// messages flow both ways on it.
    void require_alive() {
        sim.run_for(std::chrono::minutes(10));
        REQUIRE(client.state() == client_state::open);
        REQUIRE(server.open_connections().size() == 1);
        const auto before = log.messages.size();
        server.send("from-server");
        sim.run_for(1s);
        REQUIRE(log.messages.size() == before + 1);
        CHECK(log.messages.back() == "from-server");
        const auto received = server.received.size();
        REQUIRE_FALSE(client.send("from-client"));
        sim.run_for(1s);
        REQUIRE(server.received.size() == received + 1);
        CHECK(server.received.back().data == "from-client");
        CHECK(server.received.back().id == server.open_connections().front());
    }
};

} // namespace

TEST_CASE("defect: reconnect() then handover() before the reconnect's close arrives leaves no deaf "
          "client") {
    plain_world w;
    w.client.start();
    w.sim.run_for(1s);
    REQUIRE(w.client.state() == client_state::open);
    w.client.reconnect();
    w.client.handover();
    w.require_alive();
    CHECK(w.log.stops.empty());
    // the reconnect is reported once, as our own verdict on the network ladder
    REQUIRE_FALSE(w.log.closes.empty());
    CHECK(w.log.closes.front().error == error::idle_timeout);
    CHECK(w.log.closes.front().initiated_locally);
    CHECK(w.log.decisions.front().action == close_action::reconnect);
    CHECK(w.client.token_policy().st().max_in_flight == 1);
}

TEST_CASE("defect: the renew_before_expiry timer firing between reconnect() and its close leaves "
          "no deaf client") {
    auto o = options();
    o.renew_before_expiry = 60s; // recording_token_policy issues 300 s tokens
    plain_world w(o);
    // the server is slow to answer our close frame: the renewal's handover
    // runs to completion before the reconnect's close comes back
    w.server.answers_close = false;
    w.client.start();
    // the token arrives at 50 ms: the renewal is due at 240.05 s
    w.sim.run_until(simulation::time_point(240s + 50ms - 500us));
    REQUIRE(w.client.state() == client_state::open);
    w.client.reconnect(); // the renewal fires 0.5 ms later, long before the close is done
    w.require_alive();
    CHECK(w.log.stops.empty());
    // after the reconnect the close of the next connection reports the server's doing, not the old
    // verdict
    w.server.close(tether::close_code::going_away);
    w.sim.run_for(1s);
    REQUIRE_FALSE(w.log.closes.empty());
    CHECK(w.log.closes.back().code == tether::close_code::going_away);
    CHECK_FALSE(w.log.closes.back().error);
}

namespace {

// An issuer of short-lived tokens and a service that closes every connection
// with 4001 when its token expires (the issuer's clock), through the
// library's shared_token_source as a user would compose it.
struct short_token_run {
    int expiry_closes = 0;
    int opens = 0;
    int fetches = 0;
    std::size_t handshakes = 0;
    std::size_t rejected = 0;
    std::vector<tether::retry_event> retries;
    std::vector<tether::stopped_event> stops;
};

short_token_run run_short_tokens(std::chrono::seconds lifetime, std::chrono::seconds duration) {
    namespace tt = tether::testing;
    simulation sim;
    tt::simulated_server server;
    short_token_run out;
    std::map<std::string, simulation::time_point> expires;
    auto issue = [&](tether::token_completion done) {
        const int n = ++out.fetches;
        sim.schedule(20ms, [&, n, done] {
            const std::string t = "tok-" + std::to_string(n);
            expires[t] = sim.now() + lifetime;
            done(t, lifetime);
        });
    };
    using fetcher = tether::callback_token<decltype(issue)>;
    tether::shared_token_source<fetcher, simulation*> source(fetcher(issue), &sim);
    server.on_handshake = [&](const tt::server_handshake& h) {
        const auto it = expires.find(std::string(h.token.reveal()));
        if (it == expires.end() || h.at >= it->second) return tt::server_response::reject(401);
        return tt::server_response::accept().then_close(it->second - h.at, 4001, "Token expired");
    };
    tether::basic_reconnecting_client<tt::simulated_transport,
                                      tether::shared_token<fetcher, simulation*>,
                                      tether::close_code_table<>>
        client(options(), tt::simulated_transport(sim, server), source.handle(),
               seed_close_policy());
    client.on_close([&](const tether::close_event& e, const tether::reconnect_decision&) {
        if (e.code == 4001) ++out.expiry_closes;
    });
    client.on_open([&](const tether::open_event&) { ++out.opens; });
    client.on_retry([&](const tether::retry_event& r) { out.retries.push_back(r); });
    client.on_stopped([&](const tether::stopped_event& e) { out.stops.push_back(e); });
    client.start();
    sim.run_for(duration);
    out.handshakes = server.handshakes.size();
    out.rejected = server.rejected;
    client.stop();
    sim.run_for(1s);
    return out;
}

} // namespace

TEST_CASE(
    "defect: short-lived tokens closed at their expiry are normal expiries, not auth strikes") {
    for (const auto lifetime : {1s, 3s}) {
        INFO("token lifetime " << lifetime.count() << " s");
        const auto run = run_short_tokens(lifetime, 10 * lifetime);
        CHECK(run.retries.empty()); // no backoff
        REQUIRE(run.stops.size() == 1);
        CHECK(run.stops[0].reason == error::stopped_by_user); // never "unauthorized"
        CHECK(run.rejected == 0);
        // one reconnect per expiry: every handshake but the first follows an expiry close
        CHECK(run.expiry_closes >= 9);
        CHECK(run.handshakes == static_cast<std::size_t>(run.expiry_closes) + 1);
        CHECK(run.opens == run.expiry_closes + 1);
    }
}

TEST_CASE("defect: a server's 1000 reconnects by default; stopping on it is an option") {
    using client_type = tether::basic_reconnecting_client<simulated_transport, tether::no_token,
                                                          tether::default_close_policy>;
    SECTION("default: reconnect on the network ladder") {
        simulation sim;
        simulated_server server;
        client_type c(options(), simulated_transport(sim, server));
        event_log log;
        log.attach(c);
        c.start();
        sim.run_for(1s);
        server.close(tether::close_code::normal);
        sim.run_for(1min);
        CHECK(c.state() == client_state::open);
        CHECK(server.handshakes.size() == 2);
        REQUIRE(log.decisions.size() == 1);
        CHECK(log.decisions[0].action == close_action::reconnect);
        CHECK(log.decisions[0].cls == tether::failure_class::network);
        CHECK(log.stops.empty());
    }
    SECTION("option: stop") {
        simulation sim;
        simulated_server server;
        tether::default_close_policy::options po;
        po.reconnect_on_normal_close = false;
        client_type c(options(), simulated_transport(sim, server), tether::no_token(),
                      tether::default_close_policy(po));
        event_log log;
        log.attach(c);
        c.start();
        sim.run_for(1s);
        server.close(tether::close_code::normal);
        sim.run_for(1min);
        CHECK(c.state() == client_state::stopped);
        REQUIRE(log.stops.size() == 1);
        CHECK(log.stops[0].reason == error::stop_close_code);
    }
    SECTION("stop() is a stop whatever the policy") {
        simulation sim;
        simulated_server server;
        client_type c(options(), simulated_transport(sim, server));
        event_log log;
        log.attach(c);
        c.start();
        sim.run_for(1s);
        c.stop();
        sim.run_for(1min);
        CHECK(c.state() == client_state::stopped);
        CHECK(server.handshakes.size() == 1);
        REQUIRE(log.stops.size() == 1);
        CHECK(log.stops[0].reason == error::stopped_by_user);
    }
}

TEST_CASE("defect: a takeover's 1000 on the old socket before the new socket's open does not stop "
          "the client") {
    simulation sim;
    simulated_server server;
    using client_type = tether::basic_reconnecting_client<simulated_transport, tether::no_token,
                                                          tether::default_close_policy>;
    client_type c(options(), simulated_transport(sim, server));
    event_log log;
    log.attach(c);
    // The second socket takes over: the server closes the first with 1000 as
    // it accepts the second, so the close reaches the client before the open.
    server.on_handshake = [&server](const server_handshake& h) {
        for (auto id : server.open_connections())
            if (id != h.id) server.close(id, tether::close_code::normal, "taken over");
        return server_response::accept();
    };
    c.start();
    sim.run_for(1s);
    REQUIRE(c.state() == client_state::open);
    c.handover();
    sim.run_for(1min);
    CHECK(c.state() == client_state::open);
    CHECK(log.stops.empty());
    CHECK(server.open_connections().size() == 1);
    CHECK(server.handshakes.size() == 2);
    server.send("after takeover");
    sim.run_for(1s);
    REQUIRE_FALSE(log.messages.empty());
    CHECK(log.messages.back() == "after takeover");
}
