// Thread stress for basic_reconnecting_client: several threads call send(),
// stop(), reconnect(), handover(), counters() and state() while one thread
// runs the executor and the client reconnects. Shared by the simulated run
// (tests/core) and the websocketpp run (tests/transport).
//
// The check (issue 11, defect 2 and invariant I5): every message send()
// accepted is received by the server or reported through on_dropped, exactly
// once; a refused one is neither. A lost message is classified by where it
// vanished, from a log the transport wrapper keeps:
//   - "left in the queue": never handed to the transport and never reported
//     (defect 2 when its send() overlapped the stop);
//   - "refused by the transport": handed to a connection that no longer
//     took messages, and not reported;
//   - "lost in flight": the transport took it, the server never saw it.
#ifndef TETHER_TESTS_CORE_CLIENT_STRESS_HPP
#define TETHER_TESTS_CORE_CLIENT_STRESS_HPP

#include <tether/core.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace stress {

/// Every send() the client made on the transport (executor thread only).
struct transport_log {
    std::vector<std::pair<std::string, bool>> sends; ///< data, accepted
};

/// A Transport that forwards to `Inner` and records every send().
template <class Inner> class recording_transport {
public:
    using executor_type = typename Inner::executor_type;
    using clock_type = typename Inner::clock_type;
    using timer_type = typename Inner::timer_type;

    explicit recording_transport(Inner inner)
        : inner_(std::move(inner)), log_(std::make_shared<transport_log>()) {}

    executor_type get_executor() { return inner_.get_executor(); }
    typename clock_type::time_point now() const { return inner_.now(); }
    timer_type make_timer() { return inner_.make_timer(); }
    template <class Sink>
    tether::connection_id connect(const tether::connect_request& req, Sink& sink) {
        return inner_.connect(req, sink);
    }
    std::error_code send(tether::connection_id id, std::string_view data,
                         tether::message_kind kind) {
        const std::error_code ec = inner_.send(id, data, kind);
        log_->sends.emplace_back(std::string(data), !ec);
        return ec;
    }
    void close(tether::connection_id id, std::uint16_t code, std::string_view reason) {
        inner_.close(id, code, reason);
    }

    Inner& inner() noexcept { return inner_; }
    const std::shared_ptr<transport_log>& log() const noexcept { return log_; }

private:
    Inner inner_;
    std::shared_ptr<transport_log> log_;
};

struct config {
    std::uint64_t seed = 1;
    int senders = 3;     ///< threads calling send() (and state())
    int controllers = 1; ///< threads calling reconnect(), handover(), counters(), state(), stop()
    /// stop() once this many sends were attempted (all threads together).
    unsigned stop_after = 200;
    /// Give up sending after this many attempts even if the client never stops.
    unsigned max_sends = 20000;
    /// Sends per sender thread, unpaced, right after stop() was asked for.
    unsigned stop_burst = 300;
    /// Spin (yield) at most this many times between two control calls.
    unsigned control_pause = 200;
};

struct outcome {
    std::size_t attempted = 0;
    std::size_t accepted = 0;
    std::size_t received = 0;
    std::size_t dropped = 0;
    std::vector<std::string> left_in_queue;
    std::size_t left_in_queue_during_stop =
        0; ///< send() began before the state became stopped, returned after
    std::vector<std::string> refused_by_transport;
    std::vector<std::string> lost_in_flight;
    std::vector<std::string> duplicated; ///< received or dropped more than once, or both
    std::vector<std::string> refused_but_delivered;
    std::size_t accepted_after_stopped_seen = 0; ///< send() succeeded after state() said stopped
    int stopped_events = 0;
    bool left_stopped = false; ///< the state changed after it became stopped
    std::string last_states;   ///< the last few states entered
    bool counters_monotonic = true;
    bool counters_agree = true;
    std::string counters_note;

    std::size_t lost() const {
        return left_in_queue.size() + refused_by_transport.size() + lost_in_flight.size();
    }
    bool ok() const {
        return lost() == 0 && duplicated.empty() && refused_but_delivered.empty() &&
               accepted_after_stopped_seen == 0 && stopped_events == 1 && !left_stopped &&
               counters_monotonic && counters_agree;
    }
    std::string summary() const {
        std::ostringstream o;
        o << "attempted " << attempted << ", accepted " << accepted << ", received " << received
          << ", dropped " << dropped << "; lost " << lost() << ": left in the queue "
          << left_in_queue.size() << " (" << left_in_queue_during_stop
          << " sent while the client stopped), refused by the transport "
          << refused_by_transport.size() << ", lost in flight " << lost_in_flight.size()
          << "; duplicated " << duplicated.size() << ", refused but delivered "
          << refused_but_delivered.size() << ", accepted after stopped was seen "
          << accepted_after_stopped_seen << ", on_stopped x" << stopped_events
          << (left_stopped ? ", the state left stopped" : "") << "; last states: " << last_states
          << (counters_monotonic ? "" : ", counters went backwards")
          << (counters_agree ? "" : ", counters disagree: " + counters_note);
        const auto first = [&o](const char* what, const std::vector<std::string>& v) {
            if (!v.empty()) o << "; first " << what << ": " << v.front();
        };
        first("left in the queue", left_in_queue);
        first("refused by the transport", refused_by_transport);
        first("lost in flight", lost_in_flight);
        return o.str();
    }
};

namespace detail {

struct send_record {
    std::string data;
    bool accepted;
    std::uint64_t begin; ///< sequence numbers (see run())
    std::uint64_t end;
};

inline bool monotonic(const tether::client_counters& a, const tether::client_counters& b) {
    return b.connects >= a.connects && b.opens >= a.opens && b.closes >= a.closes &&
           b.rejected_handshakes >= a.rejected_handshakes &&
           b.messages_received >= a.messages_received && b.bytes_received >= a.bytes_received &&
           b.messages_sent >= a.messages_sent && b.retries >= a.retries &&
           b.token_requests >= a.token_requests && b.tokens_acquired >= a.tokens_acquired &&
           b.token_failures >= a.token_failures && b.tokens_rejected >= a.tokens_rejected &&
           b.dropped_messages >= a.dropped_messages && b.state_changes >= a.state_changes &&
           b.stops >= a.stops && b.handovers >= a.handovers && b.stops <= 1;
}

} // namespace detail

/// One run. `Client` is a basic_reconnecting_client over recording_transport<...>.
/// `run_some()` runs the executor for a short while (called in a loop on one
/// thread while the API threads work); `settle()` runs it until everything
/// the client started is over (after the API threads finished);
/// `server_received()` lists the messages the server got, in any order.
template <class Client>
outcome run(Client& client, const config& cfg, const std::function<void()>& run_some,
            const std::function<void()>& settle,
            const std::function<std::vector<std::string>()>& server_received) {
    // A global order of the events that matter, for classifying losses.
    std::atomic<std::uint64_t> seq{1};
    // When the state became stopped (executor thread; read after the join).
    std::uint64_t stopped_at = 0;
    int stopped_events = 0;
    std::vector<std::string> dropped;
    client.on_dropped([&](const tether::dropped_message& d) { dropped.push_back(d.data); });
    std::vector<tether::client_state> states; // every state entered, in order
    client.on_state_change([&](const tether::state_change_event& e) {
        states.push_back(e.to);
        if (e.to == tether::client_state::stopped) stopped_at = seq.fetch_add(1);
    });
    client.on_stopped([&](const tether::stopped_event&) { ++stopped_events; });
    client.start();

    std::atomic<bool> api_done{false};
    std::thread executor([&] {
        while (!api_done.load(std::memory_order_acquire))
            run_some();
    });

    std::atomic<unsigned> attempts{0};
    std::atomic<bool> stop_requested{false};
    std::vector<std::vector<detail::send_record>> records(static_cast<std::size_t>(cfg.senders));
    std::vector<std::size_t> after_stopped(static_cast<std::size_t>(cfg.senders), 0);
    std::vector<char> monotonic(static_cast<std::size_t>(cfg.senders + cfg.controllers), 1);
    std::vector<std::thread> threads;
    for (int t = 0; t < cfg.senders; ++t) {
        threads.emplace_back([&, t] {
            auto& mine = records[static_cast<std::size_t>(t)];
            tether::client_counters last{};
            int after = 0; // sends made after state() said stopped
            unsigned burst = 0;
            for (unsigned i = 0; after < 3; ++i) {
                const bool stopped_seen = client.state() == tether::client_state::stopped;
                if (attempts.fetch_add(1) >= cfg.max_sends && !stopped_seen) break;
                std::string data = "m" + std::to_string(t) + "-" + std::to_string(i);
                const std::uint64_t begin = seq.fetch_add(1);
                const std::error_code ec = client.send(data);
                const std::uint64_t end = seq.fetch_add(1);
                mine.push_back({std::move(data), !ec, begin, end});
                if (stopped_seen) {
                    ++after;
                    if (!ec) ++after_stopped[static_cast<std::size_t>(t)];
                }
                // Paced, so the client gets open and reconnects; right after
                // stop() was asked for, a burst as fast as possible, to race it.
                if (!stop_requested.load(std::memory_order_relaxed) || ++burst > cfg.stop_burst)
                    std::this_thread::yield();
                if (i % 16 == 0) {
                    const auto now = client.counters();
                    if (!detail::monotonic(last, now)) monotonic[static_cast<std::size_t>(t)] = 0;
                    last = now;
                }
            }
        });
    }
    for (int t = 0; t < cfg.controllers; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(cfg.seed * 7919 + static_cast<std::uint64_t>(t));
            tether::client_counters last{};
            bool stop_sent = false;
            while (client.state() != tether::client_state::stopped) {
                if (attempts.load() >= cfg.max_sends) break;
                if (!stop_sent && attempts.load() >= cfg.stop_after) {
                    stop_requested.store(true, std::memory_order_relaxed);
                    client.stop(); // from every controller: stop() is idempotent
                    stop_sent = true;
                }
                switch (rng() % 16) {
                case 0: client.reconnect(); break;
                case 1: client.handover(); break;
                case 2:
                case 3:
                case 4: {
                    const auto now = client.counters();
                    if (!detail::monotonic(last, now))
                        monotonic[static_cast<std::size_t>(cfg.senders + t)] = 0;
                    last = now;
                    break;
                }
                default: (void)client.state(); break;
                }
                const auto pause = rng() % (cfg.control_pause + 1);
                for (std::uint64_t k = 0; k < pause; ++k)
                    std::this_thread::yield();
            }
            if (!stop_sent) {
                stop_requested.store(true, std::memory_order_relaxed);
                client.stop();
            }
        });
    }
    for (auto& th : threads)
        th.join();
    api_done.store(true, std::memory_order_release);
    executor.join();
    settle();

    outcome out;
    out.stopped_events = stopped_events;
    const auto first_stop = std::find(states.begin(), states.end(), tether::client_state::stopped);
    out.left_stopped = first_stop != states.end() && first_stop + 1 != states.end();
    for (auto it = states.size() > 8 ? states.end() - 8 : states.begin(); it != states.end(); ++it)
        out.last_states +=
            std::string(out.last_states.empty() ? "" : " -> ") + tether::to_string(*it);
    out.counters_monotonic =
        std::all_of(monotonic.begin(), monotonic.end(), [](char c) { return c != 0; });
    for (auto n : after_stopped)
        out.accepted_after_stopped_seen += n;

    std::map<std::string, int> received_count;
    const auto received = server_received();
    for (const auto& r : received)
        ++received_count[r];
    std::map<std::string, int> dropped_count;
    for (const auto& d : dropped)
        ++dropped_count[d];
    std::map<std::string, bool> handed; // data -> the transport accepted it (last attempt)
    const auto& log = client.transport().log()->sends;
    for (const auto& s : log)
        handed[s.first] = handed[s.first] || s.second;

    std::uint64_t transport_accepted = 0;
    for (const auto& s : log)
        transport_accepted += s.second ? 1 : 0;
    for (const auto& mine : records) {
        for (const auto& r : mine) {
            ++out.attempted;
            const int got = received_count.count(r.data) ? received_count[r.data] : 0;
            const int drop = dropped_count.count(r.data) ? dropped_count[r.data] : 0;
            if (!r.accepted) {
                if (got + drop > 0) out.refused_but_delivered.push_back(r.data);
                continue;
            }
            ++out.accepted;
            if (got + drop > 1) out.duplicated.push_back(r.data);
            if (got + drop > 0) continue;
            const auto h = handed.find(r.data);
            if (h == handed.end()) {
                out.left_in_queue.push_back(r.data);
                if (stopped_at != 0 && r.begin < stopped_at && r.end > stopped_at)
                    ++out.left_in_queue_during_stop;
            } else if (!h->second) {
                out.refused_by_transport.push_back(r.data);
            } else {
                out.lost_in_flight.push_back(r.data);
            }
        }
    }
    out.received = received.size();
    out.dropped = dropped.size();
    const auto c = client.counters();
    std::ostringstream note;
    if (c.stops != 1) note << "stops " << c.stops << " ";
    if (c.dropped_messages != dropped.size())
        note << "dropped_messages " << c.dropped_messages << " vs " << dropped.size()
             << " reported ";
    if (c.messages_sent != transport_accepted)
        note << "messages_sent " << c.messages_sent << " vs " << transport_accepted
             << " taken by the transport ";
    out.counters_note = note.str();
    out.counters_agree = out.counters_note.empty();
    return out;
}

/// Totals over many runs, for the report a failing test prints.
struct tally {
    int runs = 0;
    int failed = 0;
    int with_left_in_queue = 0;
    int with_left_in_queue_during_stop = 0;
    int with_refused_by_transport = 0;
    int with_lost_in_flight = 0;
    int with_other = 0;
    std::string first_failure;

    void add(std::uint64_t seed, const outcome& o) {
        ++runs;
        if (o.ok()) return;
        ++failed;
        if (!o.left_in_queue.empty()) ++with_left_in_queue;
        if (o.left_in_queue_during_stop > 0) ++with_left_in_queue_during_stop;
        if (!o.refused_by_transport.empty()) ++with_refused_by_transport;
        if (!o.lost_in_flight.empty()) ++with_lost_in_flight;
        if (o.lost() == 0) ++with_other;
        if (first_failure.empty())
            first_failure = "seed " + std::to_string(seed) + ": " + o.summary();
    }
    std::string summary() const {
        std::ostringstream o;
        o << failed << " of " << runs << " runs failed: " << with_left_in_queue
          << " left a message in the queue (" << with_left_in_queue_during_stop
          << " with a send() that overlapped the stop), " << with_refused_by_transport
          << " had a message refused by the transport and not reported, " << with_lost_in_flight
          << " lost one in flight, " << with_other << " failed otherwise";
        if (!first_failure.empty()) o << ". First failure: " << first_failure;
        return o.str();
    }
};

} // namespace stress

#endif
