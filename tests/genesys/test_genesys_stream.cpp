// tether::genesys::notification_stream and genesys_close_policy on a real
// basic_reconnecting_client, over the simulated transport on virtual time:
// the orderings a live server cannot be made to produce on demand (a
// takeover close before the new socket's open) and each way a channel ends.
#include <tether/core.hpp>
#include <tether/genesys/close_policy.hpp>
#include <tether/genesys/notification_stream.hpp>
#include <tether/testing/simulated_transport.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gen = tether::genesys;
using namespace std::chrono_literals;
using tether::testing::server_handshake;
using tether::testing::server_response;
using tether::testing::simulated_server;
using tether::testing::simulated_transport;
using tether::testing::simulation;

namespace {

/// A stand-in for channel_token_policy: channel N is "ws://127.0.0.1/channels/ch-N";
/// invalidate() or drop() makes the next request create channel N+1.
class sim_channels {
public:
    struct state {
        int channel = 1;
        int created = 1;
        int invalidations = 0;
        std::vector<std::string> dropped; // reasons
    };
    sim_channels() : s_(std::make_shared<state>()) {}

    template <class Handler> void async_get_token(Handler&& h) {
        h(tether::token_result::success(
            tether::token(tether::secret{}, std::nullopt, false, uri())));
    }
    void invalidate(const tether::secret&) { next("invalidated"); }
    void cancel() {}
    void drop(const std::string& why) { next(why); }
    std::string uri() const { return "ws://127.0.0.1/channels/ch-" + std::to_string(s_->channel); }
    state& st() { return *s_; }

private:
    void next(std::string why) {
        ++s_->invalidations;
        ++s_->channel;
        ++s_->created;
        s_->dropped.push_back(std::move(why));
    }
    std::shared_ptr<state> s_;
};

using client_type =
    tether::basic_reconnecting_client<simulated_transport, sim_channels, gen::genesys_close_policy,
                                      tether::exponential_backoff>;

std::string channel_of(const std::string& url) { return url.substr(url.rfind('/') + 1); }

/// A Genesys-like server: a channel is alive unless listed dead; a second
/// socket on a channel closes the first with 1000 before it accepts.
struct world {
    simulation sim;
    simulated_server server;
    std::map<std::string, tether::connection_id> active; // channel -> socket
    std::map<std::string, int> dead; // channel -> HTTP status for its handshakes
    bool takeover_first = true;
    client_type client;
    sim_channels::state& channels;
    gen::notification_stream<client_type> stream;
    std::vector<gen::gap_event> gaps;
    std::vector<std::string> closes;
    int rest_token_drops = 0;
    int resubscribe_calls = 0;
    std::function<void(bool)> resubscribe_done;
    bool stopped = false;

    static tether::client_options options() {
        tether::client_options o;
        o.url = "ws://127.0.0.1/placeholder";
        o.auth_failure_uptime = 0ms;
        return o;
    }

    world()
        : client(options(), simulated_transport(sim, server), sim_channels(),
                 gen::genesys_close_policy(),
                 tether::exponential_backoff({}, tether::jitter_rng(7))),
          channels(client.token_policy().st()),
          stream(
              client, quiet(), [this] { return client.token_policy().uri(); }, actions()) {
        server.on_handshake = [this](const server_handshake& h) {
            const std::string ch = channel_of(h.url);
            if (dead.count(ch)) return server_response::reject(dead[ch]);
            auto it = active.find(ch);
            if (it != active.end() && server.is_open(it->second) && takeover_first)
                server.close(it->second, 1000,
                             ""); // reaches the client before the new socket's open
            active[ch] = h.id;
            return server_response::accept();
        };
        stream.on_gap([this](const gen::gap_event& g) { gaps.push_back(g); });
        stream.on_close([this](const tether::close_event& e, const tether::reconnect_decision& d) {
            closes.push_back(std::to_string(e.code) + "/" + std::to_string(e.http_status) + "->" +
                             tether::to_string(d.action));
        });
        stream.on_stopped([this](const tether::stopped_event&) { stopped = true; });
    }

    static gen::stream_options quiet() {
        gen::stream_options o;
        o.heartbeat_timeout = 0ms; // this server sends no heartbeats
        return o;
    }

    gen::channel_actions actions() {
        gen::channel_actions a;
        a.drop_channel = [this](const std::string& why) { client.token_policy().drop(why); };
        a.drop_rest_token = [this] { ++rest_token_drops; };
        a.resubscribe = [this](std::function<void(bool)> done) {
            ++resubscribe_calls;
            resubscribe_done = std::move(done);
        };
        return a;
    }

    std::string last_channel() const { return channel_of(server.handshakes.back().url); }
    void send_to_channel(const std::string& text) {
        const auto id = active.at("ch-" + std::to_string(channels.channel));
        server.send(id, text);
    }
    bool open() const { return client.state() == tether::client_state::open; }
};

} // namespace

TEST_CASE("genesys stream: a takeover close (1000) that arrives before the new socket's open is "
          "survived") {
    world w;
    w.client.start();
    w.sim.run_for(1s);
    REQUIRE(w.open());
    w.sim.run_for(10min);
    w.send_to_channel(R"({"topicName":"v2.system.socket_closing","eventBody":{"message":"bye"}})");
    w.sim.run_for(1s);
    // The old socket got 1000 first; the new one opened; no new channel, no stop.
    CHECK(w.open());
    CHECK_FALSE(w.stopped);
    CHECK(w.channels.created == 1);
    CHECK(w.server.handshakes.size() == 2);
    CHECK(w.last_channel() == "ch-1");
    REQUIRE(w.closes.size() == 1);
    CHECK(w.closes[0] == "1000/0->reconnect");
    CHECK(w.server.open_connections().size() == 1);
    // Conservative: the stream cannot tell this close from a drop, so it
    // reports a (millisecond) gap for the application to backfill.
    CHECK(w.gaps.size() == 1);
}

TEST_CASE("genesys stream: an open socket closed by the server goes back to its channel; a refused "
          "retry makes a new one") {
    world w;
    w.client.start();
    w.sim.run_for(1s);
    REQUIRE(w.open());
    w.sim.run_for(10min);
    // Path 1: closed with 1000 (what default_close_policy stops on today), channel alive.
    w.server.close(1000, "");
    w.sim.run_for(5s);
    CHECK(w.open());
    CHECK(w.channels.created == 1);
    CHECK(w.last_channel() == "ch-1");
    w.sim.run_for(10min);
    // Path 2: closed with 4000, then the channel's handshake gets 404: a new channel.
    w.dead["ch-1"] = 404;
    w.server.close(4000, "whatever");
    w.sim.run_for(30s);
    CHECK(w.open());
    CHECK(w.channels.created == 2);
    CHECK(w.last_channel() == "ch-2");
    // Path 3: an evicted channel whose handshake gets 401.
    w.sim.run_for(10min);
    w.dead["ch-2"] = 401;
    w.server.close(1001, "");
    w.sim.run_for(30s);
    CHECK(w.open());
    CHECK(w.last_channel() == "ch-3");
    CHECK(w.gaps.size() == 3);
    CHECK_FALSE(w.stopped);
}

TEST_CASE("genesys stream: repeated immediate closes of a fresh socket make a new channel") {
    world w;
    w.server.on_handshake = [&w](const server_handshake& h) {
        if (channel_of(h.url) == "ch-1")
            return server_response::accept().then_close(10ms, 1000, "");
        w.active[channel_of(h.url)] = h.id;
        return server_response::accept();
    };
    w.client.start();
    w.sim.run_for(1min);
    CHECK(w.open());
    CHECK(w.last_channel() == "ch-2");
    // ch-1: opened and closed at once twice (first retry of the same channel, then a new one).
    std::size_t on_ch1 = 0;
    for (const auto& h : w.server.handshakes)
        on_ch1 += channel_of(h.url) == "ch-1";
    CHECK(on_ch1 == 2);
}

TEST_CASE("genesys stream: token_revoked drops the REST token and the channel, reconnects and "
          "reports the gap") {
    world w;
    w.client.start();
    w.sim.run_for(1s);
    w.send_to_channel(R"({"topicName":"v2.users.u.presence","eventBody":{"sequence":1}})");
    w.sim.run_for(1s);
    w.send_to_channel(
        R"({"topicName":"v2.system.token_revoked.ch-1","eventBody":{"message":"revoked"}})");
    w.sim.run_for(5s);
    CHECK(w.open());
    CHECK(w.rest_token_drops == 1);
    CHECK(w.channels.created == 2);
    CHECK(w.last_channel() == "ch-2");
    REQUIRE(w.gaps.size() == 1);
    CHECK(w.gaps[0].reason.find("revoked") != std::string::npos);
    CHECK(w.stream.counters().tokens_revoked == 1);
    CHECK(w.stream.counters().notifications == 1); // the system topic is not an application event
}

TEST_CASE("genesys stream: a result 404 frame means the channel is gone; 400 and 200 do not") {
    world w;
    w.client.start();
    w.sim.run_for(1s);
    w.send_to_channel(R"({"result":"200","status":"subscribed"})");
    w.send_to_channel(R"({"result":"400","message":"bad topic"})");
    w.sim.run_for(1s);
    CHECK(w.channels.created == 1);
    w.send_to_channel(R"({"result":"404","message":"Channel not found"})");
    w.sim.run_for(5s);
    CHECK(w.open());
    CHECK(w.last_channel() == "ch-2");
    CHECK(w.stream.counters().replies == 3);
    CHECK(w.stream.counters().channels_gone == 1);
    REQUIRE(w.channels.dropped.size() == 1);
    CHECK(w.channels.dropped[0] == "result 404: Channel not found");
}

TEST_CASE("genesys stream: no_longer_subscribed resubscribes and reports the gap once it is back") {
    world w;
    w.client.start();
    w.sim.run_for(1s);
    w.send_to_channel(
        R"({"topicName":"v2.system.no_longer_subscribed.ch-1","eventBody":{"message":"x\r\ny"}})");
    w.sim.run_for(1s);
    CHECK(w.resubscribe_calls == 1);
    CHECK(w.gaps.empty());
    REQUIRE(w.resubscribe_done);
    w.resubscribe_done(true);
    w.sim.run_for(1s);
    REQUIRE(w.gaps.size() == 1);
    CHECK(w.gaps[0].reason == "no_longer_subscribed: x  y");
    CHECK(w.open());
    CHECK(w.server.handshakes.size() == 1); // the socket stayed
    // The channel turned out gone: reconnect with a new one.
    w.send_to_channel(R"({"topicName":"v2.system.no_longer_subscribed.ch-1","eventBody":{}})");
    w.sim.run_for(1s);
    w.client.token_policy().drop("subscription answered 404");
    w.resubscribe_done(false);
    w.sim.run_for(5s);
    CHECK(w.open());
    CHECK(w.last_channel() == "ch-2");
    CHECK(w.gaps.size() == 2);
}

TEST_CASE("genesys stream: a frame over the limits is reported and skipped; the socket stays") {
    world w;
    std::vector<gen::rejected_frame> rejected;
    w.stream.on_rejected_frame([&](const gen::rejected_frame& f) { rejected.push_back(f); });
    w.client.start();
    w.sim.run_for(1s);
    w.send_to_channel(std::string(300 * 1024, ' '));
    w.send_to_channel(std::string(1000, '['));
    w.send_to_channel(R"({"topicName":"v2.users.u.presence","eventBody":{}})");
    w.sim.run_for(1s);
    REQUIRE(rejected.size() == 2);
    CHECK(rejected[0].why == gen::message_type::too_large);
    CHECK(rejected[1].why == gen::message_type::too_deep);
    CHECK(w.stream.counters().notifications == 1);
    CHECK(w.server.handshakes.size() == 1);
    CHECK(w.open());
}
