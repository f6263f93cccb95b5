// tether: typed notifications, liveness, handovers and gaps on top of any
// basic_reconnecting_client that carries a Genesys-style notification socket.
#ifndef TETHER_GENESYS_NOTIFICATION_STREAM_HPP
#define TETHER_GENESYS_NOTIFICATION_STREAM_HPP

#include <tether/basic_reconnecting_client.hpp>
#include <tether/genesys/notification.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

TETHER_NAMESPACE_BEGIN
namespace genesys {

struct stream_options {
    /// No frame at all (heartbeats come every ~30 s) for this long: the
    /// connection is dead; reconnect (error::idle_timeout). 0: off.
    std::chrono::milliseconds heartbeat_timeout{std::chrono::seconds(60)};
    /// Send `{"message":"ping"}` this often and expect the pong within
    /// pong_timeout, else reconnect (error::pong_timeout). 0: no probe.
    std::chrono::milliseconds ping_interval{0};
    std::chrono::milliseconds pong_timeout{std::chrono::seconds(10)};

    void validate() const {
        if (heartbeat_timeout.count() < 0 || ping_interval.count() < 0 || pong_timeout.count() <= 0)
            throw std::invalid_argument(
                "tether: genesys: stream_options: bad heartbeat or ping interval");
    }
};

struct stream_counters {
    std::uint64_t notifications = 0;
    std::uint64_t heartbeats = 0;
    std::uint64_t pongs = 0;
    std::uint64_t pings_sent = 0;
    std::uint64_t other_metadata = 0;
    std::uint64_t malformed = 0;
    std::uint64_t socket_closings = 0;
    std::uint64_t handovers = 0;
    std::uint64_t gaps = 0;
    std::uint64_t heartbeat_timeouts = 0;
    std::uint64_t pong_timeouts = 0;
};

/// Attaches to a client (before start(); it takes the client's on_open,
/// on_message, on_close and on_stopped — register yours here instead) and:
/// - parses each message; notifications go to on_notification, heartbeats
///   and pongs are consumed;
/// - heartbeat watchdog and optional ping probe -> client.reconnect();
/// - `v2.system.socket_closing` -> client.handover() (make-before-break on
///   the same channel), reported on_handover when the new socket is open;
/// - every drop -> on_gap when the next connection opens.
/// Lives on the client's executor; must outlive the client's run.
template <class Client> class notification_stream {
public:
    using clock_type = typename Client::clock_type;
    using timer_type = typename Client::transport_type::timer_type;

    notification_stream(Client& client, stream_options opts,
                        std::function<std::string()> source_name = {})
        : client_(client), opts_((opts.validate(), opts)), source_(std::move(source_name)),
          watchdog_(client.transport().make_timer()), ping_timer_(client.transport().make_timer()),
          pong_timer_(client.transport().make_timer()) {
        client_.on_open([this](const open_event& e) { opened(e); });
        client_.on_message([this](const message_view& m) { message(m); });
        client_.on_close(
            [this](const close_event& e, const reconnect_decision& d) { closed(e, d); });
        client_.on_stopped([this](const stopped_event& e) { stopped(e); });
    }
    notification_stream(const notification_stream&) = delete;
    notification_stream& operator=(const notification_stream&) = delete;
    ~notification_stream() { cancel_timers(); }

    void on_notification(std::function<void(const notification&)> f) {
        h_notification_ = std::move(f);
    }
    void on_gap(std::function<void(const gap_event&)> f) { h_gap_ = std::move(f); }
    void on_handover(std::function<void(const handover_event&)> f) { h_handover_ = std::move(f); }
    /// socket_closing arrived (the handover starts); the text is the server's message.
    void on_socket_closing(std::function<void(const std::string&)> f) { h_closing_ = std::move(f); }
    /// The watchdog or the ping probe declared the connection dead.
    void on_liveness_failure(std::function<void(std::error_code)> f) { h_liveness_ = std::move(f); }
    void on_open(std::function<void(const open_event&)> f) { h_open_ = std::move(f); }
    void on_close(std::function<void(const close_event&, const reconnect_decision&)> f) {
        h_close_ = std::move(f);
    }
    void on_stopped(std::function<void(const stopped_event&)> f) { h_stopped_ = std::move(f); }

    /// Read on the client's executor (or after it stopped).
    const stream_counters& counters() const noexcept { return counters_; }

private:
    using time_point = typename clock_type::time_point;

    std::string source() const { return source_ ? source_() : std::string(); }

    void opened(const open_event& e) {
        const auto wall = std::chrono::system_clock::now();
        last_frame_ = client_.transport().now();
        if (e.handover) {
            ++counters_.handovers;
            // Ours after socket_closing, else the client's renew_before_expiry.
            const bool announced = std::exchange(closing_pending_, false);
            const auto took = announced ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                              last_frame_ - handover_asked_)
                                        : std::chrono::milliseconds(0);
            if (h_handover_) h_handover_(handover_event{source(), took, announced});
        } else if (in_gap_) {
            in_gap_ = false;
            ++counters_.gaps;
            if (h_gap_) h_gap_(gap_event{gap_from_, wall, gap_reason_, true});
        }
        delivered_until_ = wall;
        arm_watchdog();
        arm_ping();
        if (h_open_) h_open_(e);
    }

    void message(const message_view& m) {
        last_frame_ = client_.transport().now();
        notification n;
        switch (parse_notification(m.data, n)) {
        case message_type::heartbeat: ++counters_.heartbeats; return;
        case message_type::pong:
            ++counters_.pongs;
            ++pong_gen_; // answered: disarm the deadline
            pong_timer_.cancel();
            return;
        case message_type::metadata: ++counters_.other_metadata; return;
        case message_type::malformed: ++counters_.malformed; return;
        case message_type::socket_closing: {
            ++counters_.socket_closings;
            handover_asked_ = last_frame_;
            closing_pending_ = true;
            std::string text =
                n.body.is_object() && n.body.contains("message") && n.body["message"].is_string()
                    ? n.body["message"].template get<std::string>()
                    : std::string();
            if (h_closing_) h_closing_(text);
            client_.handover();
            return;
        }
        case message_type::event: break;
        }
        ++counters_.notifications;
        n.channel_id = source();
        n.received = std::chrono::system_clock::now();
        delivered_until_ = n.received;
        if (h_notification_) h_notification_(n);
    }

    void closed(const close_event& e, const reconnect_decision& d) {
        // Only the end of an open connection starts a gap: a failed attempt
        // after it extends the same gap, a failed handover loses nothing.
        const bool user_stop =
            d.action == close_action::stop && d.stop_reason == error::stopped_by_user;
        if (e.was_open && !in_gap_ && !user_stop) {
            in_gap_ = true;
            gap_from_ = delivered_until_;
            gap_reason_ = describe(e);
            closing_pending_ = false;
            cancel_timers();
        }
        if (h_close_) h_close_(e, d);
    }

    void stopped(const stopped_event& e) {
        cancel_timers();
        if (in_gap_) {
            in_gap_ = false;
            ++counters_.gaps;
            if (h_gap_)
                h_gap_(gap_event{gap_from_, std::chrono::system_clock::now(), gap_reason_, false});
        }
        if (h_stopped_) h_stopped_(e);
    }

    static std::string describe(const close_event& e) {
        if (e.error) return e.error.message() + (e.detail.empty() ? "" : " (" + e.detail + ")");
        if (e.code != close_code::none)
            return "closed " + std::to_string(e.code) + " '" + e.reason + "'";
        if (e.http_status) return "handshake refused " + std::to_string(e.http_status);
        return "connection lost";
    }

    void arm_watchdog() {
        if (opts_.heartbeat_timeout.count() == 0) return;
        const auto gen = ++watchdog_gen_;
        const auto due = last_frame_ + std::chrono::duration_cast<typename clock_type::duration>(
                                           opts_.heartbeat_timeout);
        const auto now = client_.transport().now();
        watchdog_.expires_after(due > now ? due - now : typename clock_type::duration(0));
        watchdog_.async_wait([this, gen](std::error_code ec) {
            if (ec || gen != watchdog_gen_) return;
            const auto silent = client_.transport().now() - last_frame_;
            if (silent < opts_.heartbeat_timeout) return arm_watchdog(); // a frame came meanwhile
            ++counters_.heartbeat_timeouts;
            ++watchdog_gen_;
            if (h_liveness_) h_liveness_(make_error_code(error::idle_timeout));
            client_.reconnect(make_error_code(error::idle_timeout));
        });
    }

    void arm_ping() {
        if (opts_.ping_interval.count() == 0) return;
        const auto gen = ++ping_gen_;
        ping_timer_.expires_after(opts_.ping_interval);
        ping_timer_.async_wait([this, gen](std::error_code ec) {
            if (ec || gen != ping_gen_) return;
            if (client_.state() != client_state::open) return;
            client_.send(R"({"message":"ping"})");
            ++counters_.pings_sent;
            const auto pgen = ++pong_gen_;
            pong_timer_.expires_after(opts_.pong_timeout);
            pong_timer_.async_wait([this, pgen](std::error_code e2) {
                if (e2 || pgen != pong_gen_) return;
                ++counters_.pong_timeouts;
                ++pong_gen_;
                if (h_liveness_) h_liveness_(make_error_code(error::pong_timeout));
                client_.reconnect(make_error_code(error::pong_timeout));
            });
            arm_ping();
        });
    }

    void cancel_timers() {
        ++watchdog_gen_;
        ++ping_gen_;
        ++pong_gen_;
        watchdog_.cancel();
        ping_timer_.cancel();
        pong_timer_.cancel();
    }

    Client& client_;
    const stream_options opts_;
    std::function<std::string()> source_;
    timer_type watchdog_, ping_timer_, pong_timer_;
    std::uint64_t watchdog_gen_ = 0, ping_gen_ = 0, pong_gen_ = 0;
    time_point last_frame_{};
    time_point handover_asked_{};
    bool closing_pending_ = false; // socket_closing seen, handover not open yet
    std::chrono::system_clock::time_point delivered_until_{};
    bool in_gap_ = false;
    std::chrono::system_clock::time_point gap_from_{};
    std::string gap_reason_;
    stream_counters counters_;

    std::function<void(const notification&)> h_notification_;
    std::function<void(const gap_event&)> h_gap_;
    std::function<void(const handover_event&)> h_handover_;
    std::function<void(const std::string&)> h_closing_;
    std::function<void(std::error_code)> h_liveness_;
    std::function<void(const open_event&)> h_open_;
    std::function<void(const close_event&, const reconnect_decision&)> h_close_;
    std::function<void(const stopped_event&)> h_stopped_;
};

} // namespace genesys
TETHER_NAMESPACE_END

#endif
