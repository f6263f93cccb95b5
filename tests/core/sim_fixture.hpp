// Shared fixture for the core tests: a simulated server and a token policy
// that records everything (also the "user-written sample policy").
#pragma once

#include <tether/core.hpp>
#include <tether/testing/simulated_transport.hpp>

#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace fixture {

using namespace std::chrono_literals;
using tether::testing::server_handshake;
using tether::testing::server_response;
using tether::testing::simulated_server;
using tether::testing::simulated_transport;
using tether::testing::simulation;

/// Issues "tok-1", "tok-2", ... after a fetch latency on virtual time, caches
/// the current one, and records every call the client makes.
class recording_token_policy {
public:
    struct state {
        simulation* sim = nullptr;
        std::chrono::nanoseconds latency = 50ms;
        std::string cached;
        int next = 0;
        int fetches = 0;
        int in_flight = 0;
        int max_in_flight = 0;
        int cancels = 0;
        std::vector<std::string> issued;
        std::vector<std::pair<std::string, simulation::time_point>> invalidated;
        /// Results to give instead of a token, consumed one per fetch.
        std::deque<tether::token_result> script;
        bool served_cache = true;
        /// When set, each invalidation also records how many handshakes the
        /// server had seen, to order events that share a virtual instant.
        const std::vector<server_handshake>* handshakes = nullptr;
        std::vector<std::pair<std::string, std::size_t>> invalidated_after;
    };

    explicit recording_token_policy(simulation& sim) : s_(std::make_shared<state>()) {
        s_->sim = &sim;
    }

    template <class Handler> void async_get_token(Handler&& h) {
        if (s_->served_cache && !s_->cached.empty()) {
            h(tether::token_result::success(
                tether::token{tether::secret(s_->cached), 300s, false}));
            return;
        }
        ++s_->fetches;
        s_->max_in_flight = std::max(s_->max_in_flight, ++s_->in_flight);
        auto st = s_;
        st->sim->schedule(st->latency, [st, h = std::forward<Handler>(h)]() mutable {
            --st->in_flight;
            if (!st->script.empty()) {
                auto r = std::move(st->script.front());
                st->script.pop_front();
                if (r.error) return h(std::move(r));
            }
            st->cached = "tok-" + std::to_string(++st->next);
            st->issued.push_back(st->cached);
            h(tether::token_result::success(tether::token{tether::secret(st->cached), 300s, true}));
        });
    }
    void invalidate(const tether::secret& s) {
        s_->invalidated.emplace_back(std::string(s.reveal()), s_->sim->now());
        if (s_->handshakes)
            s_->invalidated_after.emplace_back(std::string(s.reveal()), s_->handshakes->size());
        if (s.reveal() == s_->cached) s_->cached.clear();
    }
    void cancel() { ++s_->cancels; }

    state& st() { return *s_; }
    std::shared_ptr<state> shared() { return s_; }

private:
    std::shared_ptr<state> s_;
};

/// The seed's service: tokens it has expired get 401; everything else is accepted.
struct seed_service {
    simulated_server server;
    std::set<std::string> expired;

    seed_service() {
        server.on_handshake = [this](const server_handshake& h) {
            if (h.token.empty() || expired.count(std::string(h.token.reveal())))
                return server_response::reject(401);
            return server_response::accept();
        };
    }
    /// Expires the token of the newest connection and closes it with 4001.
    void expire_current() {
        auto id = server.newest();
        if (!id) return;
        for (const auto& h : server.handshakes)
            if (h.id == *id) expired.insert(std::string(h.token.reveal()));
        server.close(*id, 4001, "Token expired");
    }
};

inline tether::client_options options(std::string url = "wss://example.test/stream") {
    tether::client_options o;
    o.url = std::move(url);
    return o;
}

inline tether::close_code_table<> seed_close_policy() {
    return tether::close_code_table<>{{4001, tether::close_action::refresh_token_then_reconnect}};
}

/// Everything the client reported, in order.
struct event_log {
    std::vector<std::string> lines;
    std::vector<tether::retry_event> retries;
    std::vector<tether::stopped_event> stops;
    std::vector<tether::close_event> closes;
    std::vector<tether::reconnect_decision> decisions;
    std::vector<tether::open_event> opens;
    std::vector<tether::token_event> tokens;
    std::vector<tether::dropped_message> dropped;
    std::vector<std::string> messages;

    template <class Client> void attach(Client& c) {
        c.on_state_change([this](const tether::state_change_event& e) {
            lines.push_back(std::string("state ") + tether::to_string(e.to));
        });
        c.on_open([this](const tether::open_event& e) { opens.push_back(e); });
        c.on_close([this](const tether::close_event& e, const tether::reconnect_decision& d) {
            closes.push_back(e);
            decisions.push_back(d);
        });
        c.on_retry([this](const tether::retry_event& e) { retries.push_back(e); });
        c.on_token([this](const tether::token_event& e) { tokens.push_back(e); });
        c.on_dropped([this](const tether::dropped_message& d) { dropped.push_back(d); });
        c.on_stopped([this](const tether::stopped_event& e) { stops.push_back(e); });
        c.on_message([this](const tether::message_view& m) { messages.emplace_back(m.data); });
    }
};

} // namespace fixture
