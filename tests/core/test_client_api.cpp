// The client's Asio-style surface on virtual time: async_send with completion
// tokens, restart after a stop, portable error conditions.
#include "sim_fixture.hpp"

#include <catch2/catch.hpp>

#if defined(TETHER_USE_BOOST_ASIO)
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>
#else
#include <asio/use_future.hpp>
#endif

#include <future>
#include <optional>
#include <string>
#include <vector>

using namespace fixture;
using tether::client_state;
using tether::error;
namespace net = tether::net;

namespace {

using api_client = tether::basic_reconnecting_client<simulated_transport, tether::no_token,
                                                     tether::default_close_policy>;

struct api_world {
    simulation sim;
    simulated_server server;
    event_log log;
    api_client client;

    explicit api_world(tether::client_options o = options())
        : client(std::move(o), simulated_transport(sim, server)) {
        log.attach(client);
    }
};

struct outcome {
    std::vector<std::error_code> results;
    std::function<void(std::error_code)> handler() {
        return [this](std::error_code ec) { results.push_back(ec); };
    }
};

} // namespace

TEST_CASE("async_send: completes once the message is written, or with why it never will be") {
    SECTION("queued before start: completes after the open, in order") {
        api_world w;
        outcome a, b;
        w.client.async_send("one", a.handler());
        w.client.async_send("two", tether::message_kind::binary, b.handler());
        w.sim.poll();
        CHECK(a.results.empty()); // not written yet: nothing is open
        w.client.start();
        w.sim.run_for(1s);
        REQUIRE(a.results.size() == 1);
        REQUIRE(b.results.size() == 1);
        CHECK_FALSE(a.results[0]);
        CHECK_FALSE(b.results[0]);
        REQUIRE(w.server.received.size() == 2);
        CHECK(w.server.received[0].data == "one");
        CHECK(w.server.received[1].kind == tether::message_kind::binary);
    }
    SECTION("queued, then stopped: not_running, and on_dropped sees it too") {
        api_world w;
        outcome a;
        w.client.async_send("never", a.handler());
        w.client.stop();
        w.sim.run_for(1s);
        REQUIRE(a.results.size() == 1);
        CHECK(a.results[0] == error::not_running);
        REQUIRE(w.log.dropped.size() == 1);
        CHECK(w.log.dropped[0].data == "never");
    }
    SECTION("after the stop: not_running at once") {
        api_world w;
        w.client.stop();
        w.sim.run_for(1s);
        outcome a;
        w.client.async_send("late", a.handler());
        w.sim.poll();
        REQUIRE(a.results.size() == 1);
        CHECK(a.results[0] == error::not_running);
        CHECK(w.log.dropped.empty()); // refused, not accepted then dropped
    }
    SECTION("drop_oldest: the dropped message completes with queue_full") {
        auto o = options();
        o.queue_capacity = 1;
        o.overflow = tether::overflow_policy::drop_oldest;
        api_world w(o);
        outcome first, second;
        w.client.async_send("first", first.handler());
        w.client.async_send("second", second.handler());
        w.sim.poll();
        REQUIRE(first.results.size() == 1);
        CHECK(first.results[0] == error::queue_full);
        CHECK(second.results.empty());
        w.client.start();
        w.sim.run_for(1s);
        REQUIRE(second.results.size() == 1);
        CHECK_FALSE(second.results[0]);
    }
    SECTION("reject: queue_full, nothing queued") {
        auto o = options();
        o.queue_capacity = 1;
        api_world w(o);
        outcome first, second;
        w.client.async_send("first", first.handler());
        w.client.async_send("second", second.handler());
        w.sim.poll();
        REQUIRE(second.results.size() == 1);
        CHECK(second.results[0] == error::queue_full);
        CHECK(first.results.empty());
    }
}

TEST_CASE("async_send: destroying the client completes what is queued with operation_cancelled") {
    simulation sim;
    simulated_server server;
    server.on_handshake = [](const server_handshake&) { return server_response::stall(); };
    outcome a;
    {
        api_client c(options(), simulated_transport(sim, server));
        c.start();
        sim.run_for(1s); // handshaking: the message waits in the queue
        c.async_send("late", a.handler());
        sim.poll();
        CHECK(a.results.empty());
    }
    sim.run_for(1s);
    REQUIRE(a.results.size() == 1);
    CHECK(a.results[0] == error::operation_cancelled);
    CHECK(a.results[0] == std::errc::operation_canceled);
    CHECK(server.received.empty());
}

TEST_CASE("buffered_amount: the queue plus what the transport has not written; its peak") {
    tether::client_options o = options();
    api_world w(o);
    CHECK(w.client.buffered_amount() == 0);
    REQUIRE_FALSE(w.client.send(std::string(100, 'q'))); // queued: nothing is open
    REQUIRE_FALSE(w.client.send(std::string(50, 'q')));
    CHECK(w.client.buffered_amount() == 150);
    // At the open the queue went to the transport, whose latency holds it unsent.
    std::optional<std::size_t> at_open;
    w.client.on_open([&](const tether::open_event&) { at_open = w.client.buffered_amount(); });
    w.client.start();
    w.sim.run_for(1s); // open, and delivered
    REQUIRE(at_open);
    CHECK(*at_open == 150);
    std::size_t on_executor = 1;
    REQUIRE(w.server.received.size() == 2);
    net::post(w.client.get_executor(), [&] { on_executor = w.client.buffered_amount(); });
    w.sim.poll();
    CHECK(on_executor == 0);
    CHECK(w.client.buffered_amount_peak() == 150);
    w.client.stop();
    w.sim.run_for(1s);
    CHECK(w.client.buffered_amount() == 0);
}

TEST_CASE("async_send with net::use_future") {
    api_world w;
    w.client.start();
    w.sim.run_for(1s);
    REQUIRE(w.client.state() == client_state::open);
    std::future<void> ok = w.client.async_send("hello", net::use_future);
    w.sim.run_for(1s);
    // use_future's handler runs on Asio's system executor (its own thread):
    // a bounded wait for that thread, not for virtual time
    REQUIRE(ok.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK_NOTHROW(ok.get());
    CHECK(w.server.received.back().data == "hello");

    // A refusal completes with the error code. (Not through use_future here:
    // its exception is freed by whichever thread drops the last reference,
    // and libstdc++'s uninstrumented exception_ptr count makes ThreadSanitizer
    // report the catch block's read against the system executor's free.)
    w.client.stop();
    w.sim.run_for(1s);
    std::optional<std::error_code> refused;
    w.client.async_send("too late", [&](auto ec) { refused = std::error_code(ec); });
    w.sim.run_for(1s);
    REQUIRE(refused);
    CHECK(*refused == error::not_running);
}

TEST_CASE("restart: start() after a stop begins a new run with the same policies and handlers") {
    SECTION("after stop()") {
        api_world w;
        w.client.start();
        w.sim.run_for(1s);
        w.client.stop();
        w.sim.run_for(1s);
        REQUIRE(w.client.state() == client_state::stopped);
        w.client.start();
        w.sim.run_for(1s);
        CHECK(w.client.state() == client_state::open);
        CHECK(w.server.handshakes.size() == 2);
        CHECK(w.log.opens.size() == 2);
        REQUIRE(w.log.stops.size() == 1);
        REQUIRE_FALSE(w.client.send("again")); // the queue takes messages again
        w.sim.run_for(1s);
        CHECK(w.server.received.back().data == "again");
        w.client.stop();
        w.sim.run_for(1s);
        CHECK(w.log.stops.size() == 2); // exactly one on_stopped per run
        CHECK(w.client.counters().stops == 2);
    }
    SECTION("stop() then start() back to back while open: the stop completes first") {
        api_world w;
        w.client.start();
        w.sim.run_for(1s);
        w.client.stop();
        w.client.start();
        w.sim.run_for(1s);
        CHECK(w.client.state() == client_state::open);
        REQUIRE(w.log.stops.size() == 1);
        CHECK(w.log.stops[0].reason == error::stopped_by_user);
        CHECK(w.server.open_connections().size() == 1);
        CHECK(w.server.handshakes.size() == 2);
    }
    SECTION(
        "start(), stop(), stop(): the second stop cancels nothing else and the restart is off") {
        api_world w;
        w.client.start();
        w.sim.run_for(1s);
        w.client.stop();
        w.client.start();
        w.client.stop();
        w.sim.run_for(1s);
        CHECK(w.client.state() == client_state::stopped);
        CHECK(w.log.stops.size() == 1);
        CHECK(w.server.handshakes.size() == 1);
    }
    SECTION("after the client's own stop decision, the breaker starts over") {
        api_world w;
        w.server.on_handshake = [](const server_handshake&) {
            return server_response::reject(403);
        };
        w.client.start();
        w.sim.run_for(1s);
        REQUIRE(w.client.state() == client_state::stopped);
        REQUIRE(w.log.stops.size() == 1);
        CHECK(w.log.stops[0].reason == error::handshake_refused);
        w.server.on_handshake = nullptr; // fixed on the server's side
        w.client.start();
        w.sim.run_for(1s);
        CHECK(w.client.state() == client_state::open);
        CHECK(w.server.handshakes.size() == 2);
    }
    SECTION("a destroyed client cannot be restarted: nothing runs after destruction") {
        simulation sim;
        simulated_server server;
        int stops = 0;
        {
            api_client c(options(), simulated_transport(sim, server));
            c.on_stopped([&](const tether::stopped_event&) { ++stops; });
            c.start();
            sim.run_for(1s);
        }
        sim.run_for(1s);
        CHECK(stops == 0);
        CHECK(server.open_connections().empty());
    }
}

TEST_CASE("handlers: several per event, removable, registered on the executor at any time") {
    SECTION("every subscriber runs, in the order registered") {
        api_world w; // the event_log is the first subscriber
        std::vector<std::string> order;
        w.client.on_open([&](const tether::open_event&) { order.push_back("a"); });
        w.client.on_open([&](const tether::open_event&) { order.push_back("b"); });
        w.client.start();
        w.sim.run_for(1s);
        CHECK(w.log.opens.size() == 1);
        CHECK(order == std::vector<std::string>{"a", "b"});
    }
    SECTION("remove_handler() removes exactly one, once") {
        api_world w;
        int a = 0, b = 0;
        const tether::handler_id ida =
            w.client.on_message([&](const tether::message_view&) { ++a; });
        const tether::handler_id idb =
            w.client.on_message([&](const tether::message_view&) { ++b; });
        CHECK(ida != idb);
        w.client.start();
        w.sim.run_for(1s);
        w.server.send("one");
        w.sim.run_for(100ms);
        CHECK(w.client.remove_handler(ida));
        CHECK_FALSE(w.client.remove_handler(ida));
        CHECK_FALSE(w.client.remove_handler(tether::handler_id{}));
        w.server.send("two");
        w.sim.run_for(100ms);
        CHECK(a == 1);
        CHECK(b == 2);
        CHECK(w.log.messages == std::vector<std::string>{"one", "two"});
    }
    SECTION("a handler may remove itself and add another while the event is delivered") {
        api_world w;
        std::vector<std::string> seen;
        tether::handler_id self{};
        self = w.client.on_message([&](const tether::message_view& m) {
            seen.push_back("once:" + std::string(m.data));
            w.client.remove_handler(self);
            w.client.on_message([&](const tether::message_view& m2) {
                seen.push_back("late:" + std::string(m2.data));
            });
        });
        w.client.on_message([&](const tether::message_view& m) {
            seen.push_back("always:" + std::string(m.data));
        });
        w.client.start();
        w.sim.run_for(1s);
        w.server.send("1");
        w.sim.run_for(100ms);
        w.server.send("2");
        w.sim.run_for(100ms);
        // The one added during "1" is called from "2" on; the removed one
        // finished its call and the handler after it still ran.
        CHECK(seen == std::vector<std::string>{"once:1", "always:1", "always:2", "late:2"});
    }
    SECTION("registered after start() from a function posted to the executor") {
        api_world w;
        w.client.start();
        w.sim.run_for(1s);
        int closes = 0;
        net::post(w.client.get_executor(), [&] {
            w.client.on_close(
                [&](const tether::close_event&, const tether::reconnect_decision&) { ++closes; });
        });
        w.sim.poll();
        w.server.close(1001, "bye");
        w.sim.run_for(1s);
        CHECK(closes == 1);
        CHECK(w.log.closes.size() == 1);
    }
}

TEST_CASE("errors compare equal to the portable conditions they mean") {
    using tether::make_error_code;
    for (auto e : {error::handshake_timeout, error::pong_timeout, error::idle_timeout,
                   error::close_timeout, error::token_request_timeout}) {
        INFO(make_error_code(e).message());
        CHECK(make_error_code(e) == std::errc::timed_out);
    }
    CHECK(make_error_code(error::operation_cancelled) == std::errc::operation_canceled);
    CHECK(make_error_code(error::not_connected) == std::errc::not_connected);
    CHECK(make_error_code(error::message_too_large) == std::errc::message_size);
    CHECK(make_error_code(error::queue_full) == std::errc::no_buffer_space);
    CHECK(make_error_code(error::invalid_url) == std::errc::invalid_argument);
    CHECK_FALSE(make_error_code(error::unauthorized) == std::errc::timed_out);
    CHECK_FALSE(make_error_code(error::stopped_by_user) == std::errc::operation_canceled);
}

TEST_CASE("bad options: std::system_error naming the option, or an error_code without exceptions") {
    tether::client_options bad = options();
    bad.queue_capacity = 0;
    simulation sim;
    simulated_server server;
    try {
        api_client c(bad, simulated_transport(sim, server));
        FAIL("a client was made with queue_capacity = 0");
    } catch (const std::system_error& e) {
        CHECK(e.code() == error::invalid_option);
        CHECK(e.code() == std::errc::invalid_argument);
        CHECK_THAT(e.what(), Catch::Contains("queue_capacity"));
    }

    std::error_code ec = make_error_code(error::queue_full); // overwritten either way
    std::string why = "stale";
    tether::validate(bad, ec, &why);
    CHECK(ec == error::invalid_option);
    CHECK_THAT(why, Catch::Contains("queue_capacity"));

    tether::validate(options(), ec, &why);
    CHECK_FALSE(ec);
    CHECK(why.empty());

    // The same function for every options type.
    tether::backoff_ladders ladders;
    ladders.auth.multiplier = 0.5;
    tether::validate(ladders, ec, &why);
    CHECK(ec == error::invalid_option);
    CHECK_THAT(why, Catch::Contains("'auth'"));
}
