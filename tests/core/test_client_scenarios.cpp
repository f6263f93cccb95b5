// Scenario tests of basic_reconnecting_client on virtual time.
#include "sim_fixture.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <thread>

using namespace fixture;
using tether::client_state;
using tether::close_action;
using tether::error;

namespace {

using seed_client =
    tether::basic_reconnecting_client<simulated_transport, recording_token_policy,
                                      tether::close_code_table<>, tether::exponential_backoff>;

struct seed_world {
    simulation sim;
    seed_service svc;
    event_log log;
    seed_client client;
    recording_token_policy::state& tokens;

    explicit seed_world(tether::client_options o = options())
        : client(std::move(o), simulated_transport(sim, svc.server), recording_token_policy(sim),
                 seed_close_policy(), tether::exponential_backoff({}, tether::jitter_rng(42))),
          tokens(client.token_policy().st()) {
        log.attach(client);
    }
};

std::vector<std::string> handshake_tokens(const simulated_server& s) {
    std::vector<std::string> v;
    for (const auto& h : s.handshakes)
        v.emplace_back(h.token.reveal());
    return v;
}

} // namespace

TEST_CASE("seed flow: expiry close -> rejected token reported -> one refresh -> new token on the "
          "next handshake") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1s);
    REQUIRE(w.client.state() == client_state::open);
    REQUIRE(w.tokens.fetches == 1);

    for (int cycle = 1; cycle <= 10; ++cycle) {
        INFO("cycle " << cycle);
        w.sim.run_for(10min);
        w.svc.expire_current();
        w.sim.run_for(1s);
        REQUIRE(w.client.state() == client_state::open);
        // exactly one refresh per expiry, the spent token reported first
        CHECK(w.tokens.fetches == cycle + 1);
        REQUIRE(w.tokens.invalidated.size() == static_cast<std::size_t>(cycle));
        CHECK(w.tokens.invalidated.back().first == "tok-" + std::to_string(cycle));
        // the next handshake carries the new token, never the old one
        CHECK(handshake_tokens(w.svc.server).back() == "tok-" + std::to_string(cycle + 1));
    }
    CHECK(w.svc.server.rejected == 0);
    CHECK(w.svc.server.handshakes.size() == 11);
    CHECK(w.tokens.max_in_flight == 1);
    CHECK(w.log.retries.empty()); // an expiry is not a failure: no backoff
    CHECK(w.client.counters().rejected_handshakes == 0);
    for (const auto& d : w.log.decisions)
        CHECK(d.action == close_action::refresh_token_then_reconnect);
    // the open event reports the downtime, which is about one fetch plus a handshake
    REQUIRE(w.log.opens.size() == 11);
    CHECK(w.log.opens.back().downtime > 50ms);
    CHECK(w.log.opens.back().downtime < 100ms);
}

TEST_CASE("a stale cached token gets 401: one immediate refresh, no backoff, no strike") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1s);
    // the server expires the token while we are connected, then drops us
    w.svc.expired.insert("tok-1");
    w.svc.server.drop();
    w.sim.run_for(1s); // network reconnect: first step of the network ladder is < 1 s
    w.sim.run_for(2s);
    REQUIRE(w.client.state() == client_state::open);
    CHECK(w.svc.server.rejected == 1);
    CHECK(w.tokens.fetches == 2);
    CHECK(handshake_tokens(w.svc.server) == std::vector<std::string>{"tok-1", "tok-1", "tok-2"});
    // the only retry was the network one after the drop
    REQUIRE(w.log.retries.size() == 1);
    CHECK(w.log.retries[0].cls == tether::failure_class::network);
}

TEST_CASE("refresh fails, then succeeds: the client waits on the auth ladder and never handshakes "
          "without a token") {
    seed_world w;
    w.tokens.script.push_back(
        tether::token_result::failure(error::token_request_failed, "503 from IdP"));
    w.tokens.script.push_back(tether::token_result::failure(error::token_request_timeout));
    w.client.start();
    w.sim.run_for(20min);
    REQUIRE(w.client.state() == client_state::open);
    CHECK(w.tokens.fetches == 3);
    REQUIRE(w.log.retries.size() == 2);
    CHECK(w.log.retries[0].cls == tether::failure_class::auth);
    CHECK(w.log.retries[1].cls == tether::failure_class::auth);
    CHECK(w.svc.server.handshakes.size() == 1);
    CHECK(w.client.counters().token_failures == 2);
}

TEST_CASE("a permanent token error stops the client at once") {
    seed_world w;
    w.tokens.script.push_back(tether::token_result::failure(error::invalid_credentials));
    w.client.start();
    w.sim.run();
    REQUIRE(w.log.stops.size() == 1);
    CHECK(w.log.stops[0].reason == error::invalid_credentials);
    CHECK(w.svc.server.handshakes.empty());
    CHECK(w.tokens.fetches == 1);
}

TEST_CASE("stop() while a refresh is in flight: stops once, cancels, no handshake afterwards") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1min);
    w.svc.expire_current();
    w.sim.run_for(10ms); // close delivered; refresh (50 ms) in flight
    REQUIRE(w.client.state() == client_state::acquiring_token);
    REQUIRE(w.tokens.in_flight == 1);
    w.client.stop();
    w.sim.run();
    REQUIRE(w.log.stops.size() == 1);
    CHECK(w.log.stops[0].reason == error::stopped_by_user);
    REQUIRE(w.log.stops[0].last_close.has_value());
    CHECK(w.log.stops[0].last_close->code == 4001);
    CHECK(w.tokens.cancels == 1);
    CHECK(w.svc.server.handshakes.size() == 1);
    CHECK(w.client.state() == client_state::stopped);
}

TEST_CASE(
    "fresh tokens rejected K times in a row: stopped 'unauthorized' after exactly K handshakes") {
    for (unsigned k : {1u, 3u, 5u}) {
        INFO("K = " << k);
        auto o = options();
        o.auth_failure_limit = k;
        seed_world w(o);
        w.svc.server.on_handshake = [](const server_handshake&) {
            return server_response::reject(401);
        };
        w.client.start();
        w.sim.run();
        REQUIRE(w.log.stops.size() == 1);
        CHECK(w.log.stops[0].reason == error::unauthorized);
        CHECK(w.svc.server.handshakes.size() == k);
        CHECK(w.tokens.fetches == static_cast<int>(k));
        CHECK(w.log.retries.size() == k - 1);
        for (const auto& r : w.log.retries)
            CHECK(r.cls == tether::failure_class::auth);
        // no handshake ever reused a rejected token
        auto t = handshake_tokens(w.svc.server);
        CHECK(std::set<std::string>(t.begin(), t.end()).size() == t.size());
    }
}

TEST_CASE("expiry closes right after open count as rejections too") {
    seed_world w;
    // every connection is closed with 4001 10 ms after it opens
    w.svc.server.on_handshake = [](const server_handshake&) {
        return server_response::accept().then_close(10ms, 4001, "Token expired");
    };
    w.client.start();
    w.sim.run();
    REQUIRE(w.log.stops.size() == 1);
    CHECK(w.log.stops[0].reason == error::unauthorized);
    CHECK(w.svc.server.handshakes.size() == 3);
}

TEST_CASE("1008 policy violation: stopped, no reconnect") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1s);
    w.svc.server.close(tether::close_code::policy_violation, "go away");
    w.sim.run();
    REQUIRE(w.log.stops.size() == 1);
    CHECK(w.log.stops[0].reason == error::stop_close_code);
    CHECK(w.log.stops[0].last_close->code == 1008);
    CHECK(w.svc.server.handshakes.size() == 1);
    CHECK(w.log.retries.empty());
}

TEST_CASE("403 on the handshake: stopped with handshake_refused") {
    seed_world w;
    w.svc.server.on_handshake = [](const server_handshake&) {
        return server_response::reject(403);
    };
    w.client.start();
    w.sim.run();
    REQUIRE(w.log.stops.size() == 1);
    CHECK(w.log.stops[0].reason == error::handshake_refused);
    CHECK(w.svc.server.handshakes.size() == 1);
}

TEST_CASE("Retry-After is honoured") {
    seed_world w;
    int n = 0;
    w.svc.server.on_handshake = [&n](const server_handshake&) {
        return ++n == 1 ? server_response::reject(429, std::chrono::milliseconds(30000))
                        : server_response::accept();
    };
    w.client.start();
    w.sim.run_for(5min);
    REQUIRE(w.svc.server.handshakes.size() == 2);
    const auto gap = w.svc.server.handshakes[1].at - w.svc.server.handshakes[0].at;
    CHECK(gap >= 30s);
    CHECK(gap < 31s);
    REQUIRE(w.log.retries.size() == 1);
    CHECK(w.log.retries[0].cls == tether::failure_class::overload);
    CHECK(w.log.retries[0].delay >= 30s);
}

TEST_CASE("a server that closes 10 ms after every open does not reset the backoff (anti-flap)") {
    simulation sim;
    simulated_server server;
    server.on_handshake = [](const server_handshake&) {
        return server_response::accept().then_close(10ms, tether::close_code::going_away);
    };
    auto o = options();
    o.max_attempts = 8;
    tether::basic_reconnecting_client<simulated_transport, tether::no_token,
                                      tether::default_close_policy, tether::delay_table>
        client(o, simulated_transport(sim, server), {}, {},
               tether::delay_table{1s, 2s, 4s, 8s, 16s});
    event_log log;
    log.attach(client);
    client.start();
    sim.run();
    REQUIRE(log.retries.size() == 7);
    std::vector<long long> delays;
    for (const auto& r : log.retries)
        delays.push_back(r.delay.count());
    CHECK(delays == std::vector<long long>{1000, 2000, 4000, 8000, 16000, 16000, 16000});
    REQUIRE(log.stops.size() == 1);
    CHECK(log.stops[0].reason == error::retries_exhausted);
    CHECK(server.handshakes.size() == 8);
}

TEST_CASE("a connection that stays up min_uptime resets the ladder") {
    simulation sim;
    simulated_server server;
    server.on_handshake = [](const server_handshake&) {
        return server_response::accept().then_close(10s, tether::close_code::going_away);
    };
    tether::basic_reconnecting_client<simulated_transport, tether::no_token,
                                      tether::default_close_policy, tether::delay_table>
        client(options(), simulated_transport(sim, server), {}, {},
               tether::delay_table{1s, 2s, 4s});
    event_log log;
    log.attach(client);
    client.start();
    sim.run_for(1min);
    client.stop();
    sim.run();
    REQUIRE(log.retries.size() >= 4);
    for (const auto& r : log.retries)
        CHECK(r.delay == 1s);
}

TEST_CASE("max_elapsed bounds how long the client keeps failing") {
    simulation sim;
    simulated_server server;
    server.on_handshake = [](const server_handshake&) {
        return server_response::fail(make_error_code(std::errc::connection_refused));
    };
    auto o = options();
    o.max_elapsed = 10s;
    tether::basic_reconnecting_client<simulated_transport, tether::no_token,
                                      tether::default_close_policy, tether::constant_backoff>
        client(o, simulated_transport(sim, server), {}, {}, tether::constant_backoff(3s));
    event_log log;
    log.attach(client);
    client.start();
    sim.run();
    REQUIRE(log.stops.size() == 1);
    CHECK(log.stops[0].reason == error::retries_exhausted);
    CHECK(server.handshakes.size() == 4); // at 0, 3, 6 and 9 s; 12 s would pass the bound
    CHECK(sim.elapsed() < 10s);
}

TEST_CASE("a stalled handshake times out and is retried") {
    simulation sim;
    simulated_server server;
    int n = 0;
    server.on_handshake = [&n](const server_handshake&) {
        return ++n == 1 ? server_response::stall() : server_response::accept();
    };
    simulated_transport::options topts;
    topts.handshake_timeout = 5s;
    tether::basic_reconnecting_client<simulated_transport> client(
        options(), simulated_transport(sim, server, topts));
    event_log log;
    log.attach(client);
    client.start();
    sim.run_for(30s);
    CHECK(client.state() == client_state::open);
    REQUIRE(log.closes.size() == 1);
    CHECK(log.closes[0].error == error::handshake_timeout);
    CHECK(log.decisions[0].action == close_action::reconnect);
}

TEST_CASE("a static token that is rejected stops the client: nothing else to offer") {
    simulation sim;
    seed_service svc;
    svc.expired.insert("key-1");
    tether::basic_reconnecting_client<simulated_transport, tether::static_token> client(
        options(), simulated_transport(sim, svc.server),
        tether::static_token(std::string("key-1")));
    event_log log;
    log.attach(client);
    client.start();
    sim.run();
    REQUIRE(log.stops.size() == 1);
    CHECK(log.stops[0].reason == error::token_rejected);
    CHECK(svc.server.handshakes.size() == 1);
}

TEST_CASE("send: queued while not open, subscriptions first, then the queue in order") {
    seed_world w;
    w.client.send_on_open("subscribe:a");
    w.client.send_on_open("subscribe:b");
    CHECK(!w.client.send("m1"));
    CHECK(!w.client.send("m2"));
    w.client.start();
    w.sim.run_for(1s);
    std::vector<std::string> got;
    for (const auto& r : w.svc.server.received)
        got.push_back(r.data);
    CHECK(got == std::vector<std::string>{"subscribe:a", "subscribe:b", "m1", "m2"});
    // while open, send goes straight out
    w.client.send("m3");
    w.sim.run_for(1min);
    CHECK(w.svc.server.received.back().data == "m3");
    // subscriptions again on every open; the queue is not replayed
    w.svc.expire_current();
    w.sim.run_for(1s);
    got.clear();
    for (const auto& r : w.svc.server.received)
        got.push_back(r.data);
    CHECK(got == std::vector<std::string>{"subscribe:a", "subscribe:b", "m1", "m2", "m3",
                                          "subscribe:a", "subscribe:b"});
    CHECK(w.client.counters().messages_sent == 7);
}

TEST_CASE("queue overflow: reject leaves the queue alone, drop_oldest reports every drop") {
    SECTION("reject") {
        auto o = options();
        o.queue_capacity = 2;
        seed_world w(o);
        CHECK(!w.client.send("a"));
        CHECK(!w.client.send("b"));
        CHECK(w.client.send("c") == error::queue_full);
        w.client.start();
        w.sim.run_for(1s);
        REQUIRE(w.svc.server.received.size() == 2);
        CHECK(w.svc.server.received[0].data == "a");
        CHECK(w.svc.server.received[1].data == "b");
        CHECK(w.log.dropped.empty());
    }
    SECTION("drop_oldest") {
        auto o = options();
        o.queue_capacity = 2;
        o.overflow = tether::overflow_policy::drop_oldest;
        seed_world w(o);
        for (auto m : {"a", "b", "c", "d"})
            CHECK(!w.client.send(m));
        w.client.start();
        w.sim.run_for(1s);
        REQUIRE(w.svc.server.received.size() == 2);
        CHECK(w.svc.server.received[0].data == "c");
        CHECK(w.svc.server.received[1].data == "d");
        REQUIRE(w.log.dropped.size() == 2);
        CHECK(w.log.dropped[0].data == "a");
        CHECK(w.log.dropped[1].data == "b");
        CHECK(w.log.dropped[0].reason == error::queue_full);
        CHECK(w.client.counters().dropped_messages == 2);
    }
    SECTION("messages still queued at stop are reported as dropped") {
        seed_world w;
        w.svc.server.on_handshake = [](const server_handshake&) {
            return server_response::reject(503);
        };
        w.client.start();
        w.client.send("never");
        w.sim.run_for(1s);
        w.client.stop();
        w.sim.run();
        REQUIRE(w.log.dropped.size() == 1);
        CHECK(w.log.dropped[0].reason == error::not_running);
        CHECK(w.client.send("after") == error::not_running);
    }
}

TEST_CASE("stop() twice, and stop() before start(): exactly one stopped event") {
    SECTION("twice while open") {
        seed_world w;
        w.client.start();
        w.sim.run_for(1s);
        w.client.stop();
        w.client.stop();
        w.sim.run();
        w.client.stop();
        w.sim.run();
        CHECK(w.log.stops.size() == 1);
        CHECK(w.svc.server.handshakes.size() == 1);
        // the close was graceful: the client sent 1000 and the server answered
        REQUIRE(w.log.closes.size() == 1);
        CHECK(w.log.closes[0].code == 1000);
        CHECK(w.log.closes[0].initiated_locally);
        CHECK(w.client.transport().client_closes() == 1);
    }
    SECTION("before start") {
        seed_world w;
        w.client.stop();
        w.sim.run();
        CHECK(w.log.stops.size() == 1);
        CHECK(w.svc.server.handshakes.empty());
        CHECK(w.tokens.fetches == 0);
        w.client.stop();
        w.sim.run();
        CHECK(w.log.stops.size() == 1);
        // start() after a stop is a new run (see "restart" in test_client_api.cpp)
    }
    SECTION("while waiting to retry") {
        seed_world w;
        w.svc.server.on_handshake = [](const server_handshake&) {
            return server_response::reject(503);
        };
        w.client.start();
        w.sim.run_for(100ms);
        REQUIRE(w.client.state() == client_state::waiting_to_retry);
        w.client.stop();
        w.sim.run();
        CHECK(w.log.stops.size() == 1);
        CHECK(w.svc.server.handshakes.size() == 1);
    }
    SECTION("while connecting") {
        seed_world w;
        w.svc.server.on_handshake = [](const server_handshake&) {
            return server_response::stall();
        };
        w.client.start();
        w.sim.run_for(1s);
        REQUIRE(w.client.state() == client_state::connecting);
        w.client.stop();
        w.sim.run();
        CHECK(w.log.stops.size() == 1);
        CHECK(w.client.counters().stops == 1);
    }
}

TEST_CASE("stop() from another thread") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1s);
    std::thread t([&] { w.client.stop(); });
    t.join();
    w.sim.run();
    CHECK(w.log.stops.size() == 1);
    CHECK(w.client.state() == client_state::stopped);
}

TEST_CASE("destruction with work in flight: no handler runs afterwards, nothing leaks") {
    for (int phase = 0; phase < 4; ++phase) {
        INFO("phase " << phase);
        simulation sim;
        seed_service svc;
        int calls_after = 0;
        bool destroyed = false;
        {
            seed_client client(options(), simulated_transport(sim, svc.server),
                               recording_token_policy(sim), seed_close_policy());
            auto count = [&](auto&&...) { calls_after += destroyed ? 1 : 0; };
            client.on_state_change(count);
            client.on_stopped(count);
            client.on_close(count);
            client.start();
            if (phase >= 1) sim.run_for(20ms); // token in flight
            if (phase >= 2) sim.run_for(40ms); // handshaking
            if (phase >= 3) sim.run_for(1s);   // open
            destroyed = true;
        }
        sim.run();
        CHECK(calls_after == 0);
        if (phase == 3) CHECK(svc.server.open_connections().empty()); // closed gracefully
    }
}

TEST_CASE("a 1001 going-away reconnects and reports the downtime") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1min);
    w.svc.server.close(tether::close_code::going_away);
    w.sim.run_for(2min);
    REQUIRE(w.log.opens.size() == 2);
    CHECK(w.log.opens[1].attempt == 2);
    CHECK(w.log.opens[1].downtime > 0ns);
    CHECK(w.log.opens[1].downtime <= 1s + 10ms); // first network step: at most 1 s
    CHECK(w.tokens.fetches == 1);                // the cached token was still good
}

TEST_CASE("messages reach on_message; counters add up") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1s);
    w.svc.server.send("hello");
    w.svc.server.send("world");
    w.sim.run_for(1s);
    CHECK(w.log.messages == std::vector<std::string>{"hello", "world"});
    auto c = w.client.counters();
    CHECK(c.messages_received == 2);
    CHECK(c.bytes_received == 10);
    CHECK(c.connects == 1);
    CHECK(c.opens == 1);
    CHECK(c.token_requests == 1);
    CHECK(c.tokens_acquired == 1);
}

TEST_CASE("bad options are rejected at construction with a clear message") {
    simulation sim;
    simulated_server server;
    const auto make = [&](tether::client_options o) {
        tether::basic_reconnecting_client<simulated_transport> c(std::move(o),
                                                                 simulated_transport(sim, server));
    };
    CHECK_THROWS_WITH(make(options("http://x")),
                      Catch::Contains("url must start with ws:// or wss://"));
    auto o = options();
    o.queue_capacity = 0;
    CHECK_THROWS_WITH(make(o), Catch::Contains("queue_capacity"));
    o = options();
    o.auth_failure_limit = 0;
    CHECK_THROWS_WITH(make(o), Catch::Contains("auth_failure_limit"));
    o = options();
    o.headers.push_back({"X-Bad\r\nInjected", "v"});
    CHECK_THROWS_WITH(make(o), Catch::Contains("header name"));
    o = options();
    o.headers.push_back({"X-Ok", "a\r\nb"});
    CHECK_THROWS_WITH(make(o), Catch::Contains("line break"));
    CHECK_NOTHROW(make(options("ws://127.0.0.1:9/x")));
}

// --- make-before-break ----------------------------------------------------------

TEST_CASE("handover: the new connection opens before the old one is closed; nothing is lost") {
    seed_world w;
    w.client.send_on_open("subscribe");
    std::vector<tether::state_change_event> states;
    w.client.start();
    w.sim.run_for(1min);
    const auto old_id = *w.svc.server.newest();
    w.client.on_state_change([&](const tether::state_change_event& e) { states.push_back(e); });
    w.svc.server.send(old_id, "before");
    w.client.handover();
    w.sim.run_for(2ms); // new handshake under way, old still open
    REQUIRE(w.svc.server.open_connections().size() == 2);
    w.svc.server.send(old_id, "during");
    w.sim.run_for(1s);
    CHECK(w.client.state() == client_state::open);
    CHECK(states.empty()); // never left 'open'
    REQUIRE(w.log.opens.size() == 2);
    CHECK(w.log.opens[1].handover);
    CHECK(w.log.messages == std::vector<std::string>{"before", "during"});
    // the old connection drains: still open, still delivering, until handover_drain
    REQUIRE(w.svc.server.open_connections().size() == 2);
    w.svc.server.send(old_id, "late");
    w.sim.run_for(1500ms);
    CHECK(w.log.messages == std::vector<std::string>{"before", "during", "late"});
    // then it was closed by us, gracefully; the new one is the only one
    REQUIRE(w.svc.server.open_connections().size() == 1);
    CHECK(*w.svc.server.newest() != old_id);
    CHECK(w.client.transport().client_closes() == 1);
    CHECK(w.log.closes.empty()); // a handover close is not a failure
    CHECK(w.client.counters().handovers == 1);
    // subscriptions go to the new connection too
    int subs = 0;
    for (const auto& r : w.svc.server.received)
        subs += r.data == "subscribe";
    CHECK(subs == 2);
    // the new connection carries the messages from now on
    w.client.send("after");
    w.sim.run_for(1s);
    CHECK(w.svc.server.received.back().id == *w.svc.server.newest());
}

TEST_CASE(
    "handover: a message the server sends just before it sees the new connection is not lost") {
    // The server keeps writing to the old socket until the new handshake
    // reaches it; such a message is still in flight when the client learns
    // the new connection is open. A transport that drops data after its own
    // close frame (websocketpp) loses it if the client closes the old socket
    // at once (handover_drain 0); a drain delivers it.
    for (auto drain : {0ms, 2000ms}) {
        INFO("handover_drain " << drain.count() << " ms");
        auto o = options();
        o.handover_drain = drain;
        seed_world w(o);
        w.client.start();
        w.sim.run_for(1min);
        auto& server = w.svc.server;
        const auto old_id = *server.newest();
        server.on_handshake = [&server, &w, old_id](const server_handshake&) {
            // the server's last word on the old socket leaves as the new one opens
            w.sim.schedule(1ms,
                           [&server, old_id] { server.send(old_id, "last on the old socket"); });
            w.sim.schedule(3ms, [&server, old_id] { server.close(old_id, 1000, "replaced"); });
            return server_response::accept();
        };
        w.client.handover();
        w.sim.run_for(5s);
        CHECK(w.client.state() == client_state::open);
        CHECK(w.client.counters().handovers == 1);
        CHECK(w.log.closes.empty());
        if (drain == 0ms)
            CHECK(w.log.messages.empty()); // what websocketpp does to the message
        else
            CHECK(w.log.messages == std::vector<std::string>{"last on the old socket"});
        // when the server closed the old socket itself, we never had to
        CHECK(w.client.transport().client_closes() == (drain == 0ms ? 1u : 0u));
        CHECK(server.open_connections().size() == 1);
    }
}

TEST_CASE(
    "handover_drain: stop() closes a draining connection at once; negative values are refused") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1min);
    w.client.handover();
    w.sim.run_for(200ms);
    REQUIRE(w.client.counters().handovers == 1);
    REQUIRE(w.svc.server.open_connections().size() == 2);
    w.client.stop();
    w.sim.run_for(100ms); // far less than the drain
    CHECK(w.log.stops.size() == 1);
    CHECK(w.svc.server.open_connections().empty());
    CHECK(w.client.transport().live_connections() == 0);

    auto o = options();
    o.handover_drain = -1ms;
    CHECK_THROWS_WITH(o.validate(), Catch::Contains("handover_drain"));
}

TEST_CASE("handover against a server whose second socket takes over (Genesys)") {
    for (auto takeover_delay : {0ms, 1ms, 5ms}) {
        INFO("server closes the old socket " << takeover_delay.count()
                                             << " ms after the new handshake");
        seed_world w;
        w.client.start();
        w.sim.run_for(1min);
        auto& server = w.svc.server;
        server.on_handshake = [&server, &w, takeover_delay](const server_handshake& h) {
            for (auto id : server.open_connections())
                if (id != h.id)
                    w.sim.schedule(takeover_delay,
                                   [&server, id] { server.close(id, 1000, "taken over"); });
            return server_response::accept();
        };
        w.client.handover();
        w.sim.run_for(1s);
        CHECK(w.client.state() == client_state::open);
        CHECK(server.handshakes.size() == 2);
        CHECK(server.open_connections().size() == 1);
        CHECK(w.log.stops.empty());
        CHECK(w.log.retries.empty());
        w.svc.server.send("on the new socket");
        w.sim.run_for(1s);
        CHECK(w.log.messages == std::vector<std::string>{"on the new socket"});
    }
}

TEST_CASE("a failed handover keeps the old connection") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1min);
    const auto old_id = *w.svc.server.newest();
    w.svc.server.on_handshake = [](const server_handshake&) {
        return server_response::reject(503);
    };
    w.client.handover();
    w.sim.run_for(1s);
    CHECK(w.client.state() == client_state::open);
    CHECK(w.svc.server.is_open(old_id));
    REQUIRE(w.log.closes.size() == 1);
    CHECK(w.log.closes[0].http_status == 503);
    w.svc.server.send(old_id, "still here");
    w.sim.run_for(1s);
    CHECK(w.log.messages == std::vector<std::string>{"still here"});
    // a 403 on the handover means stop, for both connections
    w.svc.server.on_handshake = [](const server_handshake&) {
        return server_response::reject(403);
    };
    w.client.handover();
    w.sim.run();
    REQUIRE(w.log.stops.size() == 1);
    CHECK(w.log.stops[0].reason == error::handshake_refused);
    CHECK(w.svc.server.open_connections().empty());
}

TEST_CASE("stop() during a handover closes both connections and stops once") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1min);
    w.client.handover();
    w.sim.run_for(60ms); // token fetched, new handshake in flight
    w.client.stop();
    w.sim.run();
    CHECK(w.log.stops.size() == 1);
    CHECK(w.svc.server.open_connections().empty());
    CHECK(w.client.transport().live_connections() == 0);
}

TEST_CASE("renew_before_expiry: a new connection with a new token before expiry; the server never "
          "closes us") {
    auto o = options();
    o.renew_before_expiry = 30s;
    seed_world w(o);
    // the server enforces the 300 s lifetime the token policy announces
    std::map<std::string, simulation::time_point> first_use;
    w.svc.server.on_handshake = [&](const server_handshake& h) {
        const std::string t(h.token.reveal());
        if (w.svc.expired.count(t)) return server_response::reject(401);
        first_use.emplace(t, w.sim.now());
        const auto left = first_use[t] + 300s - w.sim.now();
        w.sim.schedule(left, [&w, t] {
            w.svc.expired.insert(t);
            for (const auto& hs : w.svc.server.handshakes)
                if (std::string(hs.token.reveal()) == t && w.svc.server.is_open(hs.id))
                    w.svc.server.close(hs.id, 4001, "Token expired");
        });
        return server_response::accept();
    };
    w.client.start();
    w.sim.run_for(1h);
    CHECK(w.client.state() == client_state::open);
    CHECK(w.log.closes.empty()); // no expiry close, no failure of any kind
    CHECK(w.svc.server.rejected == 0);
    CHECK(w.client.counters().handovers >= 12);
    CHECK(w.tokens.fetches == static_cast<int>(w.client.counters().handovers) + 1);
    CHECK(w.tokens.max_in_flight == 1);
    w.client.stop();
    w.sim.run();
}

TEST_CASE(
    "reconnect(): the application's own liveness verdict drops the connection and reconnects") {
    seed_world w;
    w.client.start();
    w.sim.run_for(1min);
    w.client.reconnect(tether::error::pong_timeout);
    w.sim.run_for(5s);
    CHECK(w.client.state() == client_state::open);
    REQUIRE(w.log.closes.size() == 1);
    CHECK(w.log.closes[0].error == error::pong_timeout);
    CHECK(w.log.closes[0].initiated_locally);
    CHECK(w.log.decisions[0].action == close_action::reconnect);
    REQUIRE(w.log.retries.size() == 1);
    CHECK(w.log.retries[0].cls == tether::failure_class::network);
    CHECK(w.svc.server.handshakes.size() == 2);
}

TEST_CASE("a token may carry its own endpoint (channel URL, pre-signed URL)") {
    simulation sim;
    simulated_server server;
    int n = 0;
    auto fetch = [&n] {
        tether::token_result r;
        r.value.endpoint = "wss://streaming.example.test/channels/ch-" + std::to_string(++n);
        r.value.fresh = true;
        return r;
    };
    tether::basic_reconnecting_client<simulated_transport, tether::callback_token<decltype(fetch)>>
        client(options("wss://streaming.example.test/"), simulated_transport(sim, server),
               tether::callback_token(fetch));
    client.start();
    sim.run_for(1s);
    REQUIRE(server.handshakes.size() == 1);
    CHECK(server.handshakes[0].url == "wss://streaming.example.test/channels/ch-1");
    CHECK(server.handshakes[0].token.empty());
}
