// The policies that need no network, the concept checks and the small types.
#include "sim_fixture.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

using namespace fixture;
using tether::close_action;
using tether::close_event;
using tether::failure_class;

// --- concept checks ---------------------------------------------------------

// A user-written policy of each kind, as a user would write it.
struct my_backoff {
    std::chrono::milliseconds next_delay(failure_class) { return std::chrono::milliseconds(250); }
    void reset() {}
};
struct my_close_policy {
    tether::reconnect_decision decide(const close_event& ev) const {
        return ev.code == 4001 ? tether::reconnect_decision::refresh_token()
                               : tether::reconnect_decision::reconnect();
    }
};
struct not_a_policy {};
struct almost_backoff { // reset() missing
    std::chrono::milliseconds next_delay(failure_class) { return {}; }
};

static_assert(tether::is_transport_v<simulated_transport>);
static_assert(!tether::is_transport_v<not_a_policy>);
static_assert(tether::is_token_policy_v<tether::no_token>);
static_assert(tether::is_token_policy_v<tether::static_token>);
static_assert(tether::is_token_policy_v<recording_token_policy>);
static_assert(tether::is_token_policy_v<tether::callback_token<std::function<std::string()>>>);
static_assert(!tether::is_token_policy_v<not_a_policy>);
static_assert(tether::is_close_policy_v<tether::default_close_policy>);
static_assert(tether::is_close_policy_v<tether::close_code_table<>>);
static_assert(tether::is_close_policy_v<my_close_policy>);
static_assert(!tether::is_close_policy_v<not_a_policy>);
static_assert(tether::is_backoff_v<tether::exponential_backoff>);
static_assert(tether::is_backoff_v<tether::decorrelated_jitter>);
static_assert(tether::is_backoff_v<tether::constant_backoff>);
static_assert(tether::is_backoff_v<tether::delay_table>);
static_assert(tether::is_backoff_v<my_backoff>);
static_assert(!tether::is_backoff_v<almost_backoff>);
#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
static_assert(tether::backoff<my_backoff>);
static_assert(!tether::close_policy<not_a_policy>);
#endif

// Stateless policies cost nothing.
struct empty_a {};
struct empty_b {};
struct empty_c {};
static_assert(sizeof(tether::detail::policy_storage<empty_a, empty_b, empty_c>) == 1);
static_assert(sizeof(tether::detail::policy_storage<empty_a, empty_b, long>) == sizeof(long));
static_assert(sizeof(tether::detail::policy_storage<tether::no_token, empty_b, long>) ==
              sizeof(long));

TEST_CASE("user-written sample policies compose into a working client") {
    simulation sim;
    simulated_server server;
    server.on_handshake = [](const server_handshake&) {
        return server_response::accept().then_close(100ms, 4001);
    };
    auto o = options();
    o.max_attempts = 3;
    tether::basic_reconnecting_client<simulated_transport, recording_token_policy, my_close_policy,
                                      my_backoff>
        client(o, simulated_transport(sim, server), recording_token_policy(sim));
    event_log log;
    log.attach(client);
    client.start();
    sim.run();
    // 4001 after 100 ms: refresh each time until the breaker trips (fresh tokens, short uptime)
    REQUIRE(log.stops.size() == 1);
    CHECK(log.stops[0].reason == tether::error::unauthorized);
    for (const auto& r : log.retries)
        CHECK(r.delay == std::chrono::milliseconds(250));
}

// --- backoff ------------------------------------------------------------------

TEST_CASE("exponential_backoff: full jitter within the ladder, growing caps, reset") {
    tether::backoff_ladders l;
    l.network = {1000ms, 8000ms, 2.0};
    tether::exponential_backoff b(l, tether::jitter_rng(7));
    // the cap doubles each step up to max; each delay is within [0, cap]
    const long long caps[] = {1000, 2000, 4000, 8000, 8000, 8000};
    for (int round = 0; round < 200; ++round) {
        b.reset();
        for (long long cap : caps) {
            auto d = b.next_delay(failure_class::network).count();
            REQUIRE(d >= 0);
            REQUIRE(d <= cap);
        }
    }
    // ladders are independent
    b.reset();
    for (int i = 0; i < 10; ++i)
        b.next_delay(failure_class::network);
    long long max_auth = 0;
    for (int round = 0; round < 100; ++round) {
        tether::exponential_backoff c(l, tether::jitter_rng(round));
        for (int i = 0; i < 10; ++i)
            c.next_delay(failure_class::network);
        max_auth = std::max<long long>(max_auth, c.next_delay(failure_class::auth).count());
    }
    CHECK(max_auth <= l.auth.initial.count());
    // the same seed gives the same delays
    tether::exponential_backoff x(l, tether::jitter_rng(99)), y(l, tether::jitter_rng(99));
    for (int i = 0; i < 20; ++i)
        CHECK(x.next_delay(failure_class::overload) == y.next_delay(failure_class::overload));
}

TEST_CASE("jitter_rng: small, deterministic per seed, uniform enough for jitter; other engines "
          "still fit") {
    STATIC_REQUIRE(sizeof(tether::jitter_rng) == 8);
    STATIC_REQUIRE(sizeof(tether::exponential_backoff) <
                   128); // was over 2.5 kB with std::mt19937_64
    tether::jitter_rng a(5), b(5), c(6);
    for (int i = 0; i < 10; ++i)
        CHECK(a() == b());
    CHECK(a() != c());
    // 100,000 delays in [0, 1000]: every decile holds 10% +- 1%
    tether::exponential_backoff e({}, tether::jitter_rng(11));
    std::array<int, 10> deciles{};
    for (int i = 0; i < 100000; ++i) {
        e.reset();
        const auto d = e.next_delay(failure_class::network).count();
        REQUIRE(d >= 0);
        REQUIRE(d <= 1000);
        ++deciles[static_cast<std::size_t>(std::min<long long>(d / 100, 9))];
    }
    for (int n : deciles)
        CHECK(std::abs(n - 10000) < 1000);
    // a user's engine of choice
    tether::basic_exponential_backoff<std::mt19937_64> m({}, std::mt19937_64(1));
    CHECK(m.next_delay(failure_class::network).count() <= 1000);
}

TEST_CASE("exponential_backoff: jitter spreads a crowd") {
    tether::backoff_ladders l;
    std::set<long long> seen;
    for (int i = 0; i < 100; ++i) {
        tether::exponential_backoff b(l, tether::jitter_rng(i));
        seen.insert(b.next_delay(failure_class::network).count());
    }
    CHECK(seen.size() > 90);
}

TEST_CASE("decorrelated_jitter stays within [initial, max]") {
    tether::backoff_ladders l;
    l.network = {500ms, 10000ms, 1.0};
    tether::decorrelated_jitter b(l, tether::jitter_rng(3));
    long long last = 0;
    for (int i = 0; i < 1000; ++i) {
        auto d = b.next_delay(failure_class::network).count();
        REQUIRE(d >= 500);
        REQUIRE(d <= 10000);
        last = d;
    }
    CHECK(last >= 500);
}

TEST_CASE("delay_table and constant_backoff") {
    tether::delay_table t({1s, 5s}, {2s}, {30s, 60s});
    CHECK(t.next_delay(failure_class::network) == 1s);
    CHECK(t.next_delay(failure_class::network) == 5s);
    CHECK(t.next_delay(failure_class::network) == 5s);
    CHECK(t.next_delay(failure_class::auth) == 2s);
    CHECK(t.next_delay(failure_class::overload) == 30s);
    t.reset();
    CHECK(t.next_delay(failure_class::network) == 1s);
    tether::constant_backoff c(250ms);
    CHECK(c.next_delay(failure_class::overload) == 250ms);
}

TEST_CASE("bad backoff settings are rejected at construction") {
    tether::backoff_ladders l;
    l.auth = {10s, 1s, 2.0};
    CHECK_THROWS_WITH(tether::exponential_backoff(l),
                      Catch::Contains("'auth': initial exceeds max"));
    l = {};
    l.network.multiplier = 0.5;
    CHECK_THROWS_WITH(tether::exponential_backoff(l), Catch::Contains("multiplier"));
    CHECK_THROWS(tether::constant_backoff(-1ms));
    CHECK_THROWS_WITH(tether::delay_table({}, {1s}, {1s}), Catch::Contains("empty"));
}

// --- close policies -----------------------------------------------------------

namespace {
close_event code(std::uint16_t c) {
    close_event e;
    e.code = c;
    e.was_open = true;
    return e;
}
close_event http(int s, std::optional<std::chrono::milliseconds> ra = {}) {
    close_event e;
    e.http_status = s;
    e.retry_after = ra;
    return e;
}
close_event failed(std::error_code ec) {
    close_event e;
    e.error = ec;
    return e;
}
} // namespace

TEST_CASE("default_close_policy: RFC 6455 codes") {
    tether::default_close_policy p;
    // a server's 1000 reconnects by default (a stream that must stay up)
    CHECK(p.decide(code(1000)).action == close_action::reconnect);
    CHECK(p.decide(code(1000)).cls == failure_class::network);
    for (std::uint16_t c : {1001, 1005, 1006, 1011, 1012, 1014}) {
        INFO(c);
        CHECK(p.decide(code(c)).action == close_action::reconnect);
        CHECK(p.decide(code(c)).cls == failure_class::network);
    }
    CHECK(p.decide(code(1013)).action == close_action::reconnect);
    CHECK(p.decide(code(1013)).cls == failure_class::overload);
    for (std::uint16_t c : {1002, 1003, 1007, 1008, 1009, 1010, 1015}) {
        INFO(c);
        CHECK(p.decide(code(c)).action == close_action::stop);
        CHECK(p.decide(code(c)).stop_reason == tether::error::stop_close_code);
    }
    CHECK(p.decide(code(4321)).action == close_action::reconnect);
    tether::default_close_policy q({false, close_action::stop});
    CHECK(q.decide(code(1000)).action ==
          close_action::stop); // the option: a server's 1000 ends the stream
    CHECK(q.decide(code(1000)).stop_reason == tether::error::stop_close_code);
    CHECK(q.decide(code(4321)).action == close_action::stop);
}

TEST_CASE("default_close_policy: handshake statuses and transport errors") {
    tether::default_close_policy p;
    CHECK(p.decide(http(401)).action == close_action::refresh_token_then_reconnect);
    CHECK(p.decide(http(401)).cls == failure_class::auth);
    for (int s : {403, 404, 400, 301}) {
        INFO(s);
        CHECK(p.decide(http(s)).action == close_action::stop);
        CHECK(p.decide(http(s)).stop_reason == tether::error::handshake_refused);
    }
    for (int s : {408, 429, 500, 502, 503, 504}) {
        INFO(s);
        auto d = p.decide(http(s, 7000ms));
        CHECK(d.action == close_action::reconnect);
        CHECK(d.cls == failure_class::overload);
        CHECK(d.min_delay == std::optional<std::chrono::milliseconds>(7000ms));
    }
    CHECK(p.decide(failed(tether::error::tls_verification_failed)).action == close_action::stop);
    CHECK(p.decide(failed(tether::error::insecure_transport)).action == close_action::stop);
    CHECK(p.decide(failed(tether::error::invalid_upgrade_request)).action == close_action::stop);
    CHECK(p.decide(failed(make_error_code(std::errc::connection_refused))).action ==
          close_action::reconnect);
    CHECK(p.decide(failed(tether::error::pong_timeout)).cls == failure_class::network);
}

TEST_CASE("close_code_table: codes and ranges as data, first match wins, the rest falls back") {
    tether::close_code_table<> t{
        {4001, close_action::refresh_token_then_reconnect},
        {4000, 4499, close_action::reconnect},
        {4500, 4999, close_action::stop},
        {1013, close_action::reconnect, failure_class::network},
    };
    CHECK(t.decide(code(4001)).action == close_action::refresh_token_then_reconnect);
    CHECK(t.decide(code(4002)).action == close_action::reconnect);
    CHECK(t.decide(code(4500)).action == close_action::stop);
    CHECK(t.decide(code(4999)).stop_reason == tether::error::stop_close_code);
    CHECK(t.decide(code(1013)).cls == failure_class::network); // overridden
    CHECK(t.decide(code(1008)).action == close_action::stop);  // fallback
    CHECK(t.decide(http(401)).action == close_action::refresh_token_then_reconnect);
    CHECK_THROWS_WITH((tether::close_code_table<>{{4999, 4000, close_action::stop}}),
                      Catch::Contains("empty"));
    CHECK_THROWS_WITH((tether::close_code_table<>{{999, close_action::stop}}),
                      Catch::Contains("1000-4999"));
}

// --- tokens and secrets ---------------------------------------------------------

TEST_CASE("secret never prints") {
    tether::secret s(std::string("hunter2-very-secret"));
    std::ostringstream os;
    os << s << ' ' << tether::token{s, std::nullopt, true}.value;
    CHECK(os.str() == "[redacted] [redacted]");
    CHECK(s.reveal() == "hunter2-very-secret");
    tether::secret moved(std::move(s));
    CHECK(s.empty()); // NOLINT(bugprone-use-after-move): wiped on move
    CHECK(moved.reveal() == "hunter2-very-secret");
}

TEST_CASE("static_token: offered until rejected, then token_rejected") {
    tether::static_token t(std::string("k"));
    tether::token_result got;
    t.async_get_token([&](tether::token_result r) { got = std::move(r); });
    CHECK(!got.error);
    CHECK(got.value.value.reveal() == "k");
    t.invalidate(tether::secret(std::string("other")));
    CHECK(!t.rejected());
    t.invalidate(tether::secret(std::string("k")));
    t.async_get_token([&](tether::token_result r) { got = std::move(r); });
    CHECK(got.error == tether::error::token_rejected);
}

TEST_CASE("callback_token: sync and async forms, freshness, rejected tokens never offered") {
    SECTION("sync string; a throw becomes token_request_failed") {
        int n = 0;
        tether::callback_token cb([&n]() -> std::string {
            if (++n == 3) throw std::runtime_error("idp down");
            return n == 1 ? "a" : "b";
        });
        std::vector<tether::token_result> got;
        for (int i = 0; i < 3; ++i)
            cb.async_get_token([&](tether::token_result r) { got.push_back(std::move(r)); });
        REQUIRE(got.size() == 3);
        CHECK(got[0].value.fresh);
        CHECK(got[1].value.value.reveal() == "b");
        CHECK(got[2].error == tether::error::token_request_failed);
        CHECK_THAT(got[2].detail, Catch::Contains("idp down"));
    }
    SECTION("same token twice is not fresh; a rejected one becomes token_rejected") {
        tether::callback_token cb([] { return std::string("same"); });
        std::vector<tether::token_result> got;
        const auto take = [&](tether::token_result r) { got.push_back(std::move(r)); };
        cb.async_get_token(take);
        cb.async_get_token(take);
        cb.invalidate(tether::secret(std::string("same")));
        cb.async_get_token(take);
        CHECK(got[0].value.fresh);
        CHECK(!got[1].value.fresh);
        CHECK(got[2].error == tether::error::token_rejected);
    }
    SECTION("async completion from another thread, once") {
        std::vector<tether::token_completion> pending;
        tether::callback_token cb(
            [&pending](tether::token_completion done) { pending.push_back(done); });
        std::atomic<int> calls{0};
        std::string value;
        cb.async_get_token([&](tether::token_result r) {
            ++calls;
            value = std::string(r.value.value.reveal());
        });
        REQUIRE(pending.size() == 1);
        std::thread t([&] {
            pending[0]("from-thread", std::chrono::seconds(60));
            pending[0]("twice");
        });
        t.join();
        CHECK(calls == 1);
        CHECK(value == "from-thread");
    }
}

TEST_CASE("callback_token drives a client; an async function completing later works") {
    simulation sim;
    seed_service svc;
    int n = 0;
    auto fetch = [&sim, &n](tether::token_completion done) {
        sim.schedule(30ms,
                     [done, &n] { done("cb-" + std::to_string(++n), std::chrono::seconds(3600)); });
    };
    tether::basic_reconnecting_client<simulated_transport, tether::callback_token<decltype(fetch)>,
                                      tether::close_code_table<>>
        client(options(), simulated_transport(sim, svc.server), tether::callback_token(fetch),
               seed_close_policy());
    client.start();
    sim.run_for(1min);
    svc.expire_current();
    sim.run_for(1s);
    CHECK(client.state() == tether::client_state::open);
    REQUIRE(svc.server.handshakes.size() == 2);
    CHECK(svc.server.handshakes[1].token.reveal() == "cb-2");
}

// --- errors ---------------------------------------------------------------------

TEST_CASE("error codes have the tether category and readable messages") {
    std::error_code ec = tether::error::unauthorized;
    CHECK(std::string(ec.category().name()) == "tether");
    CHECK_THAT(ec.message(), Catch::Contains("credential"));
    CHECK(ec == tether::error::unauthorized);
    CHECK(tether::is_permanent_token_error(tether::error::invalid_credentials));
    CHECK(!tether::is_permanent_token_error(tether::error::token_request_timeout));
    for (int v : {1, 2, 8, 100, 108, 200, 208})
        CHECK(std::error_code(v, tether::error_category()).message() != "unknown tether error");
}
