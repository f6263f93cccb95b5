// shared_token_source: single-flight, invalidation, proactive refresh on a
// virtual clock, failure holds, per-waiter cancellation; and 1,000 clients
// on real threads against a local endpoint that counts requests.
#include "local_token_endpoint.hpp"

#include <tether/core.hpp>
#include <tether/testing/simulated_transport.hpp>
#include <tether/testing/simulation.hpp>
#include <tether/token_policy/callback_token.hpp>
#include <tether/token_policy/concept.hpp>
#include <tether/token_policy/oauth2_client_credentials.hpp>
#include <tether/token_policy/shared_token_source.hpp>

#include <catch2/catch.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using tether::error;
using tether::token_result;

namespace {

// A fetcher the test completes by hand.
struct fetch_log {
    std::vector<std::function<void(token_result)>> pending;
    int calls = 0;
    int cancels = 0;
    std::vector<std::string> invalidated;

    void complete(token_result r) {
        REQUIRE_FALSE(pending.empty());
        auto h = std::move(pending.front());
        pending.erase(pending.begin());
        h(std::move(r));
    }
    void succeed(const std::string& value, std::optional<std::chrono::seconds> lifetime = 300s) {
        complete(token_result::success(tether::token{tether::secret(value), lifetime, true}));
    }
    void fail(error e, std::optional<std::chrono::milliseconds> retry_after = std::nullopt) {
        auto r = token_result::failure(make_error_code(e), "scripted failure");
        r.retry_after = retry_after;
        complete(std::move(r));
    }
};

struct manual_fetcher {
    std::shared_ptr<fetch_log> log = std::make_shared<fetch_log>();
    template <class Handler> void async_get_token(Handler&& h) {
        ++log->calls;
        log->pending.emplace_back(std::forward<Handler>(h));
    }
    void invalidate(const tether::secret& s) { log->invalidated.emplace_back(s.reveal()); }
    void cancel() { ++log->cancels; }
};

// Virtual time: the library's own test simulation drives the refresh timer.
using sim_type = tether::testing::simulation;
using source_type = tether::shared_token_source<manual_fetcher, sim_type*>;
using handle_type = source_type::handle_type;

// What one handle's requests produced.
struct results {
    std::vector<token_result> got;
    std::function<void(token_result)> sink() {
        return [this](token_result r) { got.push_back(std::move(r)); };
    }
    std::string last() const {
        return got.empty() ? std::string("<none>") : std::string(got.back().value.value.reveal());
    }
};

tether::shared_token_options margins() {
    tether::shared_token_options o;
    o.soft_margin = 60s;
    o.hard_margin = 10s;
    o.refresh_jitter = 0; // these tests time the refresh to the second; jitter: refresh_jitter_test
    return o;
}

} // namespace

TEST_CASE("shared_token is a TokenPolicy") {
    STATIC_REQUIRE(tether::is_token_policy_v<handle_type>);
    STATIC_REQUIRE(
        tether::is_token_policy_v<tether::shared_token<tether::oauth2_client_credentials>>);
}

TEST_CASE("shared source: concurrent requests cause one fetch; all waiters get its result") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    source_type src(f, &sim, margins());
    std::vector<handle_type> handles;
    std::vector<results> res(10);
    for (int i = 0; i < 10; ++i)
        handles.push_back(src.handle());
    for (int i = 0; i < 10; ++i)
        handles[i].async_get_token(res[i].sink());

    CHECK(log->calls == 1);
    CHECK(src.stats().waiting == 10);
    for (auto& r : res)
        CHECK(r.got.empty());
    log->succeed("A");
    for (int i = 0; i < 10; ++i) {
        REQUIRE(res[i].got.size() == 1);
        CHECK_FALSE(res[i].got[0].error);
        CHECK(res[i].last() == "A");
        CHECK(res[i].got[0].value.lifetime == 300s);
        // Only the request that started the fetch gets a fresh token.
        CHECK(res[i].got[0].value.fresh == (i == 0));
    }

    SECTION("a usable token is served from the cache, inline") {
        results more;
        handles[3].async_get_token(more.sink());
        REQUIRE(more.got.size() == 1);
        CHECK(more.last() == "A");
        CHECK_FALSE(more.got[0].value.fresh);
        CHECK(log->calls == 1);
        CHECK(src.stats().served_from_cache == 1);
    }
}

TEST_CASE("shared source: 1000 clients reporting the same rejected token cause one refresh") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    source_type src(f, &sim, margins());
    std::vector<handle_type> handles;
    std::vector<results> res(1000);
    for (int i = 0; i < 1000; ++i)
        handles.push_back(src.handle());
    for (int i = 0; i < 1000; ++i)
        handles[i].async_get_token(res[i].sink());
    log->succeed("A");

    const tether::secret rejected("A");
    for (auto& h : handles)
        h.invalidate(rejected);
    CHECK(src.stats().tokens_dropped == 1);
    CHECK(src.stats().invalidations == 1000);
    CHECK(log->invalidated == std::vector<std::string>{"A"}); // forwarded once
    for (int i = 0; i < 1000; ++i)
        handles[i].async_get_token(res[i].sink());
    CHECK(log->calls == 2);
    log->succeed("B");
    int fresh = 0;
    for (auto& r : res) {
        REQUIRE(r.got.size() == 2);
        CHECK(r.last() == "B");
        fresh += r.got[1].value.fresh ? 1 : 0;
    }
    // Every client rejected A and now sees its replacement for the first
    // time: each counts it as fresh (the auth-failure breaker needs that).
    CHECK(fresh == 1000);

    SECTION("a late report of the old token does not drop the new one") {
        handles[7].invalidate(rejected);
        results more;
        handles[7].async_get_token(more.sink());
        REQUIRE(more.got.size() == 1);
        CHECK(more.last() == "B");
        CHECK(log->calls == 2);
    }
    SECTION("a client that reports A after B arrived still sees B as fresh, once") {
        auto late = src.handle();
        late.invalidate(rejected);
        results more;
        late.async_get_token(more.sink());
        late.async_get_token(more.sink());
        REQUIRE(more.got.size() == 2);
        CHECK(more.got[0].value.fresh);
        CHECK_FALSE(more.got[1].value.fresh);
    }
}

TEST_CASE("shared source: a rejected token is never handed out again") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    source_type src(f, &sim, margins());
    auto h = src.handle();
    results r;
    h.async_get_token(r.sink());
    log->succeed("A");
    h.invalidate(tether::secret("A"));
    h.async_get_token(r.sink());
    log->succeed("A"); // an issuer that keeps returning its cached token
    REQUIRE(r.got.size() == 2);
    CHECK(r.got[1].error == error::token_rejected);
    CHECK(tether::is_permanent_token_error(r.got[1].error));
}

TEST_CASE("shared source: proactive refresh at the soft margin, on a virtual clock") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    source_type src(f, &sim, margins()); // lifetime 300 s: soft at 240 s, hard at 290 s
    auto client = src.handle();
    results r;
    client.async_get_token(r.sink());
    log->succeed("A");
    REQUIRE(r.last() == "A");

    sim.run_for(239s);
    CHECK(log->calls == 1);
    client.async_get_token(r.sink());
    CHECK(r.last() == "A");

    sim.run_for(1s); // t = 240 s: the timer starts a background refresh
    CHECK(log->calls == 2);
    CHECK(src.stats().proactive_refreshes == 1);
    client.async_get_token(r.sink()); // still served the current token meanwhile
    CHECK(r.got.size() == 3);
    CHECK(r.last() == "A");

    SECTION("the next handshake after the refresh uses the new token") {
        sim.run_for(2s);
        log->succeed("B");
        client.async_get_token(r.sink());
        CHECK(r.got.size() == 4);
        CHECK(r.last() == "B");
        CHECK(log->calls == 2);
        // And the new token's own refresh is scheduled: 240 s after its fetch began.
        sim.run_for(237s);
        CHECK(log->calls == 2);
        sim.run_for(1s);
        CHECK(log->calls == 3);
    }
    SECTION("past the hard margin the old token is not handed out; requests wait") {
        sim.run_for(50s); // t = 290 s
        client.async_get_token(r.sink());
        CHECK(r.got.size() == 3);
        CHECK(log->calls == 2); // joined the refresh in flight, no second fetch
        log->succeed("B");
        REQUIRE(r.got.size() == 4);
        CHECK(r.last() == "B");
        CHECK_FALSE(r.got[3].value.fresh); // the fetch began before the request
    }
    SECTION("a failed background refresh is retried while the token lasts") {
        log->fail(error::token_request_failed);
        client.async_get_token(r.sink());
        CHECK(r.last() == "A"); // the failure does not reach clients with a usable token
        sim.run_for(4s);
        CHECK(log->calls == 2);
        sim.run_for(1s); // background_retry = 5 s
        CHECK(log->calls == 3);
        log->succeed("B");
        client.async_get_token(r.sink());
        CHECK(r.last() == "B");
    }
}

TEST_CASE("shared source: expiry counts from the start of the fetch") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    source_type src(f, &sim, margins());
    auto client = src.handle();
    results r;
    client.async_get_token(r.sink());
    sim.run_for(50s); // a slow issuer
    log->succeed("A");
    sim.run_for(189s); // t = 239 s after the fetch began
    CHECK(log->calls == 1);
    sim.run_for(1s);
    CHECK(log->calls == 2);
}

TEST_CASE("shared source: margins shrink for short-lived tokens") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    tether::shared_token_options defaults;
    defaults.refresh_jitter = 0;
    source_type src(f, &sim, defaults); // soft 300 s, hard 30 s
    auto client = src.handle();
    results r;
    client.async_get_token(r.sink());
    log->succeed("A", 20s); // soft becomes 10 s, hard 5 s
    sim.run_for(9s);
    CHECK(log->calls == 1);
    sim.run_for(1s);
    CHECK(log->calls == 2);
    client.async_get_token(r.sink());
    CHECK(r.last() == "A");
    sim.run_for(5s); // t = 15 s: inside the hard margin
    client.async_get_token(r.sink());
    CHECK(r.got.size() == 2);
    log->succeed("B", 20s);
    CHECK(r.last() == "B");
}

TEST_CASE("shared source: a token without a lifetime is kept until rejected") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    source_type src(f, &sim, margins());
    auto client = src.handle();
    results r;
    client.async_get_token(r.sink());
    log->succeed("A", std::nullopt);
    CHECK(sim.armed_timers() == 0);
    sim.run_for(24h * 10);
    client.async_get_token(r.sink());
    CHECK(r.last() == "A");
    CHECK(log->calls == 1);
}

TEST_CASE("shared source: failures are held so retries cannot storm the issuer") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    source_type src(f, &sim, margins()); // failure_hold 1 s, permanent 60 s
    auto client = src.handle();
    results r;

    SECTION("transient") {
        client.async_get_token(r.sink());
        log->fail(error::token_request_failed);
        REQUIRE(r.got.size() == 1);
        CHECK(r.got[0].error == error::token_request_failed);
        client.async_get_token(r.sink());
        REQUIRE(r.got.size() == 2);
        CHECK(r.got[1].error == error::token_request_failed);
        CHECK_THAT(r.got[1].detail, Catch::Contains("held"));
        CHECK(log->calls == 1);
        sim.run_for(1s);
        client.async_get_token(r.sink());
        CHECK(log->calls == 2);
    }
    SECTION("rate limited: held for Retry-After, which is passed on shrinking") {
        client.async_get_token(r.sink());
        log->fail(error::rate_limited, 30000ms);
        sim.run_for(10s);
        client.async_get_token(r.sink());
        REQUIRE(r.got.size() == 2);
        CHECK(r.got[1].error == error::rate_limited);
        CHECK(r.got[1].retry_after == 20000ms);
        CHECK(log->calls == 1);
        sim.run_for(20s);
        client.async_get_token(r.sink());
        CHECK(log->calls == 2);
    }
    SECTION("permanent: every client learns it without another request") {
        std::vector<handle_type> others;
        client.async_get_token(r.sink());
        log->fail(error::invalid_credentials);
        for (int i = 0; i < 100; ++i) {
            others.push_back(src.handle());
            sim.run_for(500ms);
            results x;
            others.back().async_get_token(x.sink());
            REQUIRE(x.got.size() == 1);
            CHECK(x.got[0].error == error::invalid_credentials);
        }
        CHECK(log->calls == 1);
    }
}

TEST_CASE("shared source: cancel() and destruction remove only their own waiter") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    source_type src(f, &sim, margins());
    auto h1 = src.handle();
    auto h2 = src.handle();
    std::optional<handle_type> h3(src.handle());
    results r1, r2, r3;
    auto sentinel = std::make_shared<int>(0);
    h1.async_get_token(r1.sink());
    h2.async_get_token([&r2, sentinel](token_result x) { r2.got.push_back(std::move(x)); });
    h3->async_get_token(r3.sink());
    CHECK(sentinel.use_count() == 2);
    h2.cancel();
    CHECK(sentinel.use_count() == 1); // its handler is gone, unrun
    h3.reset();                       // a destroyed client leaves too
    CHECK(src.stats().waiting == 1);
    CHECK(log->cancels == 0); // the fetch goes on for the others
    log->succeed("A");
    CHECK(r1.last() == "A");
    CHECK(r2.got.empty());
    CHECK(r3.got.empty());
    h2.async_get_token(r2.sink()); // a cancelled handle can ask again
    CHECK(r2.last() == "A");
}

TEST_CASE("shared source: destroying everything while a fetch is in flight is safe") {
    sim_type sim;
    manual_fetcher f;
    auto log = f.log;
    {
        source_type src(f, &sim, margins());
        auto h = src.handle();
        results r;
        h.async_get_token(r.sink());
        CHECK(log->calls == 1);
    }
    CHECK(log->cancels == 1);
    log->succeed("A"); // completes into nothing
    sim.run_for(1h);
}

TEST_CASE("shared source: a fetcher that completes inline (callback_token)") {
    int calls = 0;
    auto fetch = [&calls] { return "token-" + std::to_string(++calls); };
    sim_type sim;
    tether::shared_token_source<tether::callback_token<decltype(fetch)>, sim_type*> src(
        tether::callback_token<decltype(fetch)>(fetch), &sim, margins());
    auto h = src.handle();
    std::vector<std::string> got;
    h.async_get_token([&](token_result r) { got.emplace_back(r.value.value.reveal()); });
    h.async_get_token([&](token_result r) { got.emplace_back(r.value.value.reveal()); });
    CHECK(got == std::vector<std::string>{"token-1", "token-1"});
    h.invalidate(tether::secret("token-1"));
    h.async_get_token([&](token_result r) { got.emplace_back(r.value.value.reveal()); });
    CHECK(got.back() == "token-2");
    CHECK(calls == 2);
}

TEST_CASE("shared source: bad options fail at construction") {
    sim_type sim;
    tether::shared_token_options o;
    o.soft_margin = 10s;
    o.hard_margin = 20s;
    CHECK_THROWS_WITH(source_type(manual_fetcher{}, &sim, o), Catch::Contains("hard_margin"));
}

// --------------------------------------------------------------------------
// With the client, on virtual time: a server that closes with 4001 when the
// token of a connection expires (the seed's service), and an application that
// hands over to a new connection every 250 s.

namespace {
struct expiry_run {
    int fetches = 0;
    int expiry_closes = 0;
    std::vector<std::string> handshake_tokens;
    std::size_t rejected = 0;
};

expiry_run run_with_client(const tether::shared_token_options& margins) {
    namespace tt = tether::testing;
    sim_type sim;
    tt::simulated_server server;
    expiry_run out;
    std::map<std::string, sim_type::time_point> expires; // the issuer's view

    // The issuer: 200 ms latency, 300 s tokens.
    auto issue = [&](tether::token_completion done) {
        const int n = ++out.fetches;
        sim.schedule(200ms, [&, n, done] {
            const std::string t = "tok-" + std::to_string(n);
            expires[t] = sim.now() + 300s;
            done(t, 300s);
        });
    };
    using fetcher = tether::callback_token<decltype(issue)>;
    tether::shared_token_source<fetcher, sim_type*> source(fetcher(issue), &sim, margins);

    server.on_handshake = [&](const tt::server_handshake& h) {
        const std::string t(h.token.reveal());
        out.handshake_tokens.push_back(t);
        const auto it = expires.find(t);
        if (it == expires.end() || h.at >= it->second) return tt::server_response::reject(401);
        return tt::server_response::accept().then_close(it->second - h.at, 4001, "Token expired");
    };

    tether::client_options opts;
    opts.url = "wss://streaming.example.com/channels/1";
    tether::basic_reconnecting_client<tt::simulated_transport,
                                      tether::shared_token<fetcher, sim_type*>,
                                      tether::close_code_table<>>
        client(
            opts, tt::simulated_transport(sim, server), source.handle(),
            tether::close_code_table<>{{4001, tether::close_action::refresh_token_then_reconnect}});
    client.on_close([&](const tether::close_event& e, const tether::reconnect_decision&) {
        if (e.code == 4001) ++out.expiry_closes;
    });
    client.start();
    for (auto at : {250s, 500s, 750s})
        sim.schedule(at, [&client] { client.handover(); });
    sim.run_for(900s);
    out.rejected = server.rejected;
    client.stop();
    sim.run_for(1s);
    return out;
}
} // namespace

TEST_CASE(
    "shared source with the client: after the soft margin the next handshake uses the new token") {
    SECTION("proactive refresh: no expiry close at all") {
        const auto run = run_with_client(margins()); // soft 60 s, hard 10 s
        CHECK(run.expiry_closes == 0);
        CHECK(run.rejected == 0);
        CHECK(run.fetches == 4); // at 0, 240, 480 and 720 s
        CHECK(run.handshake_tokens == std::vector<std::string>{"tok-1", "tok-2", "tok-3", "tok-4"});
    }
    SECTION("control: without margins the old token is reused and the server closes with 4001") {
        tether::shared_token_options none;
        none.soft_margin = 0s;
        none.hard_margin = 0s;
        const auto run = run_with_client(none);
        CHECK(run.expiry_closes > 0);
        REQUIRE(run.handshake_tokens.size() >= 2);
        CHECK(run.handshake_tokens[1] == "tok-1"); // the handover at 250 s got the old token
    }
}

// --------------------------------------------------------------------------
// Real threads, real endpoint.

TEST_CASE("shared source: 1000 clients on threads, one request per round at the endpoint") {
    using namespace tether_test;
    local_token_endpoint ep([](const received_request&, std::size_t n) {
        reply r{pause(100ms)}; // keep the fetch in flight while the others pile up
        for (auto& s : respond(200, token_json("tok-" + std::to_string(n), "3600")))
            r.push_back(s);
        return r;
    });
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::vector<std::thread> io_threads;
    for (int i = 0; i < 2; ++i)
        io_threads.emplace_back([&] { io.run(); });

    tether::oauth2_options o;
    o.token_url = ep.url();
    o.client_id = "id";
    o.client_secret = tether::secret("secret");
    o.timeout = 10s;
    std::optional<tether::shared_token_source<tether::oauth2_client_credentials>> src;
    src.emplace(tether::oauth2_client_credentials(io.get_executor(), o),
                tether::steady_timing(io.get_executor()));

    constexpr int clients = 1000;
    constexpr int client_threads = 4;
    constexpr int rounds = 5;
    std::vector<tether::shared_token<tether::oauth2_client_credentials>> handles;
    for (int i = 0; i < clients; ++i)
        handles.push_back(src->handle());

    std::vector<std::size_t> seen_per_round;
    std::string previous;
    for (int round = 0; round < rounds; ++round) {
        std::mutex m;
        std::condition_variable cv;
        int done = 0;
        std::vector<token_result> got(clients);
        std::atomic<bool> go{false};
        std::vector<std::thread> threads;
        for (int t = 0; t < client_threads; ++t) {
            threads.emplace_back([&, t] {
                while (!go.load())
                    std::this_thread::yield();
                for (int i = t; i < clients; i += client_threads) {
                    if (!previous.empty()) handles[i].invalidate(tether::secret(previous));
                    handles[i].async_get_token([&, i](token_result r) {
                        std::lock_guard<std::mutex> lock(m);
                        got[i] = std::move(r);
                        if (++done == clients) cv.notify_all();
                    });
                }
            });
        }
        go = true;
        for (auto& th : threads)
            th.join();
        {
            std::unique_lock<std::mutex> lock(m);
            REQUIRE(cv.wait_for(lock, 20s, [&] { return done == clients; }));
        }
        seen_per_round.push_back(ep.requests());
        const std::string expected = "tok-" + std::to_string(round + 1);
        int fresh = 0;
        for (const auto& r : got) {
            REQUIRE_FALSE(r.error);
            REQUIRE(std::string(r.value.value.reveal()) == expected);
            fresh += r.value.fresh ? 1 : 0;
        }
        CHECK(ep.requests() == static_cast<std::size_t>(round + 1));
        if (round == 0)
            CHECK(fresh == 1);
        else
            CHECK(fresh == clients);
        previous = expected;
    }
    std::cout << "[token] 1,000-client single-flight: endpoint saw " << ep.requests()
              << " requests over " << rounds << " rounds of " << clients
              << " clients (cumulative per round:";
    for (auto n : seen_per_round)
        std::cout << ' ' << n;
    std::cout << ")\n";
    CHECK(ep.requests() == static_cast<std::size_t>(rounds));
    CHECK(src->stats().fetches == static_cast<std::uint64_t>(rounds));

    // Last owner gone: the refresh timer is cancelled, so io.run() can return.
    handles.clear();
    src.reset();
    work.reset();
    for (auto& th : io_threads)
        th.join();
}
