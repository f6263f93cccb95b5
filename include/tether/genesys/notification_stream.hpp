// tether: typed notifications, liveness, handovers and gaps on top of any
// basic_reconnecting_client that carries a Genesys-style notification socket.
#ifndef TETHER_GENESYS_NOTIFICATION_STREAM_HPP
#define TETHER_GENESYS_NOTIFICATION_STREAM_HPP

#include <tether/basic_reconnecting_client.hpp>
#include <tether/detail/net.hpp>
#include <tether/error.hpp>
#include <tether/genesys/notification.hpp>

#if defined(TETHER_USE_BOOST_ASIO)
#include <boost/asio/post.hpp>
#else
#include <asio/post.hpp>
#endif

#include <algorithm>
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
    /// Frames over these limits are counted, reported (on_rejected_frame)
    /// and skipped without being parsed; the socket stays open.
    parse_limits limits;

    void validate() const {
        if (heartbeat_timeout.count() < 0 || ping_interval.count() < 0 || pong_timeout.count() <= 0)
            throw detail::invalid_option(
                "tether: genesys: stream_options: bad heartbeat or ping interval");
        if (limits.max_bytes == 0 || limits.max_depth == 0)
            throw detail::invalid_option(
                "tether: genesys: stream_options: parse limits must be at least 1");
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
    std::uint64_t tokens_revoked = 0;   ///< v2.system.token_revoked
    std::uint64_t unsubscribed = 0;     ///< v2.system.no_longer_subscribed
    std::uint64_t resubscriptions = 0;  ///< repairs after no_longer_subscribed that succeeded
    std::uint64_t replies = 0;          ///< {"result": ...} frames
    std::uint64_t channels_gone = 0;    ///< result 4xx frames taken as "this channel is gone"
    std::uint64_t frames_too_large = 0; ///< skipped: over parse_limits::max_bytes
    std::uint64_t frames_too_deep = 0;  ///< skipped: over parse_limits::max_depth
};

/// What the stream asks of the channel's owner when the server says the
/// channel or its token is gone (notification_client wires these to the
/// channel policy and the REST client). Each may be empty: the stream then
/// only reconnects. Called on the client's executor.
struct channel_actions {
    /// The channel is dead (token_revoked, a result 4xx frame): forget it so
    /// that the next connection attempt creates a new one.
    std::function<void(const std::string& why)> drop_channel;
    /// The REST token was revoked: do not use it for the new channel.
    std::function<void()> drop_rest_token;
    /// Subscribe the channel again; call `done(true)` when it is, or
    /// `done(false)` when the channel turned out to be gone. May call back on
    /// any thread.
    std::function<void(std::function<void(bool)> done)> resubscribe;
};

/// A system message the stream acted on.
struct system_event {
    message_type type; ///< socket_closing, token_revoked or no_longer_subscribed
    std::string topic;
    system_message message; ///< as sent; print through printable()
};

/// A frame the stream did not use: too large, too deep or malformed.
struct rejected_frame {
    message_type why;
    std::size_t bytes;
};

/// Attaches to a client (before start(), or on its executor) and subscribes to
/// its on_open, on_message, on_close and on_stopped next to any handlers of
/// yours (removed again when the stream is destroyed); then:
/// - parses each message; notifications go to on_notification, heartbeats
///   and pongs are consumed;
/// - heartbeat watchdog and optional ping probe -> client.reconnect();
/// - `v2.system.socket_closing` -> client.handover() (make-before-break on
///   the same channel), reported on_handover when the new socket is open;
/// - every drop -> on_gap when the next connection opens;
/// - `v2.system.token_revoked` -> drop the REST token and the channel,
///   reconnect (new token, new channel, subscriptions, a gap);
/// - `v2.system.no_longer_subscribed` -> resubscribe; on_gap when done;
/// - a `{"result": "4xx"}` frame (not 400 or 429, which answer a request)
///   -> the channel is gone: drop it and reconnect;
/// - frames over stream_options::limits -> counted, reported, skipped.
/// Lives on the client's executor; must outlive the client's run, and be
/// destroyed before the client (declare the client first).
template <class Client> class notification_stream {
public:
    using clock_type = typename Client::clock_type;
    using timer_type = typename Client::transport_type::timer_type;

    notification_stream(Client& client, stream_options opts,
                        std::function<std::string()> source_name = {}, channel_actions actions = {})
        : client_(client), opts_((opts.validate(), opts)), source_(std::move(source_name)),
          actions_(std::move(actions)), watchdog_(client.transport().make_timer()),
          ping_timer_(client.transport().make_timer()),
          pong_timer_(client.transport().make_timer()) {
        subscriptions_[0] = client_.on_open([this](const open_event& e) { opened(e); });
        subscriptions_[1] = client_.on_message([this](const message_view& m) { message(m); });
        subscriptions_[2] = client_.on_close(
            [this](const close_event& e, const reconnect_decision& d) { closed(e, d); });
        subscriptions_[3] = client_.on_stopped([this](const stopped_event& e) { stopped(e); });
    }
    notification_stream(const notification_stream&) = delete;
    notification_stream& operator=(const notification_stream&) = delete;
    ~notification_stream() {
        cancel_timers();
        for (handler_id id : subscriptions_)
            client_.remove_handler(id);
    }

    void on_notification(std::function<void(const notification&)> f) {
        h_notification_ = std::move(f);
    }
    void on_gap(std::function<void(const gap_event&)> f) { h_gap_ = std::move(f); }
    void on_handover(std::function<void(const handover_event&)> f) { h_handover_ = std::move(f); }
    /// socket_closing arrived (the handover starts); its system message as sent.
    void on_socket_closing(std::function<void(const system_message&)> f) {
        h_closing_ = std::move(f);
    }
    /// Every system topic (socket_closing, token_revoked, no_longer_subscribed).
    void on_system(std::function<void(const system_event&)> f) { h_system_ = std::move(f); }
    /// A socket reply `{"result": ...}`: its status and the whole object.
    void on_reply(std::function<void(int, const nlohmann::json&)> f) { h_reply_ = std::move(f); }
    /// A frame that was skipped (too large, too deep, malformed).
    void on_rejected_frame(std::function<void(const rejected_frame&)> f) {
        h_rejected_ = std::move(f);
    }
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
        const message_type type = parse_notification(m.data, n, opts_.limits);
        switch (type) {
        case message_type::heartbeat: ++counters_.heartbeats; return;
        case message_type::pong:
            ++counters_.pongs;
            ++pong_gen_; // answered: disarm the deadline
            pong_timer_.cancel();
            return;
        case message_type::metadata: ++counters_.other_metadata; return;
        case message_type::malformed:
        case message_type::too_large:
        case message_type::too_deep:
            ++(type == message_type::malformed   ? counters_.malformed
               : type == message_type::too_large ? counters_.frames_too_large
                                                 : counters_.frames_too_deep);
            if (h_rejected_) h_rejected_(rejected_frame{type, m.data.size()});
            return;
        case message_type::reply: return reply(n.body);
        case message_type::socket_closing: {
            ++counters_.socket_closings;
            handover_asked_ = last_frame_;
            closing_pending_ = true;
            const system_event ev{type, n.topic, parse_system_message(n.body)};
            if (h_system_) h_system_(ev);
            if (h_closing_) h_closing_(ev.message);
            client_.handover();
            return;
        }
        case message_type::token_revoked: {
            ++counters_.tokens_revoked;
            const system_event ev{type, n.topic, parse_system_message(n.body)};
            if (h_system_) h_system_(ev);
            // Start over: a new REST token makes a new channel, subscribed;
            // the close of this socket is the start of the gap.
            if (actions_.drop_rest_token) actions_.drop_rest_token();
            if (actions_.drop_channel) actions_.drop_channel("v2.system.token_revoked");
            client_.reconnect(make_error_code(error::token_revoked));
            return;
        }
        case message_type::no_longer_subscribed: {
            ++counters_.unsubscribed;
            const system_event ev{type, n.topic, parse_system_message(n.body)};
            if (h_system_) h_system_(ev);
            return resubscribe(ev.message);
        }
        case message_type::event: break;
        }
        ++counters_.notifications;
        n.channel_id = source();
        n.received = std::chrono::system_clock::now();
        delivered_until_ = n.received;
        if (h_notification_) h_notification_(n);
    }

    void reply(const nlohmann::json& body) {
        ++counters_.replies;
        const int status = reply_status(body);
        if (h_reply_) h_reply_(status, body);
        // 400 and 429 answer a request of ours (a bad topic, too fast); other
        // 4xx have been seen from a channel the server no longer knows.
        if (status < 400 || status > 499 || status == 400 || status == 429) return;
        if (client_.state() != client_state::open) return;
        ++counters_.channels_gone;
        std::string why = "result " + std::to_string(status);
        const auto msg = body.find("message");
        if (msg != body.end() && msg->is_string())
            why += ": " + printable(msg->template get<std::string>(), 100);
        if (actions_.drop_channel) actions_.drop_channel(why);
        client_.reconnect(make_error_code(error::channel_gone));
    }

    // no_longer_subscribed: the events since the last one delivered may be
    // lost; the gap ends when the subscription is back.
    void resubscribe(const system_message& m) {
        if (!sub_gap_) {
            sub_gap_ = true;
            sub_gap_from_ = delivered_until_;
            sub_gap_reason_ =
                "no_longer_subscribed" +
                (m.message.empty() ? std::string() : ": " + printable(m.message, 100));
        }
        if (!actions_.resubscribe) {
            client_.reconnect(make_error_code(error::channel_gone));
            return;
        }
        if (resubscribing_) return;
        resubscribing_ = true;
        std::weak_ptr<int> alive = alive_;
        auto ex = client_.get_executor();
        actions_.resubscribe([this, alive, ex](bool ok) {
            net::post(ex, [this, alive, ok] {
                if (!alive.lock()) return;
                resubscribed(ok);
            });
        });
    }

    void resubscribed(bool ok) {
        resubscribing_ = false;
        if (!ok) {
            // The channel is gone: the socket's close starts the gap (and
            // absorbs this one).
            if (client_.state() == client_state::open)
                client_.reconnect(make_error_code(error::channel_gone));
            return;
        }
        ++counters_.resubscriptions;
        if (!sub_gap_) return; // absorbed by a socket gap meanwhile
        sub_gap_ = false;
        ++counters_.gaps;
        if (h_gap_)
            h_gap_(
                gap_event{sub_gap_from_, std::chrono::system_clock::now(), sub_gap_reason_, true});
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
            if (sub_gap_) { // a pending resubscription gap becomes part of this one
                sub_gap_ = false;
                gap_from_ = std::min(gap_from_, sub_gap_from_);
                gap_reason_ = sub_gap_reason_ + ", then " + gap_reason_;
            }
            closing_pending_ = false;
            cancel_timers();
        }
        if (h_close_) h_close_(e, d);
    }

    void stopped(const stopped_event& e) {
        cancel_timers();
        if (sub_gap_ && !in_gap_) {
            sub_gap_ = false;
            ++counters_.gaps;
            if (h_gap_)
                h_gap_(gap_event{sub_gap_from_, std::chrono::system_clock::now(), sub_gap_reason_,
                                 false});
        }
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
            return "closed " + std::to_string(e.code) + " '" + printable(e.reason, 123) + "'";
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
    handler_id subscriptions_[4] = {}; // on the client: open, message, close, stopped
    const stream_options opts_;
    std::function<std::string()> source_;
    channel_actions actions_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0); // for completions from other strands
    timer_type watchdog_, ping_timer_, pong_timer_;
    std::uint64_t watchdog_gen_ = 0, ping_gen_ = 0, pong_gen_ = 0;
    time_point last_frame_{};
    time_point handover_asked_{};
    bool closing_pending_ = false; // socket_closing seen, handover not open yet
    std::chrono::system_clock::time_point delivered_until_{};
    bool in_gap_ = false;
    std::chrono::system_clock::time_point gap_from_{};
    std::string gap_reason_;
    bool sub_gap_ = false; // no_longer_subscribed, resubscription not done yet
    bool resubscribing_ = false;
    std::chrono::system_clock::time_point sub_gap_from_{};
    std::string sub_gap_reason_;
    stream_counters counters_;

    std::function<void(const notification&)> h_notification_;
    std::function<void(const gap_event&)> h_gap_;
    std::function<void(const handover_event&)> h_handover_;
    std::function<void(const system_message&)> h_closing_;
    std::function<void(const system_event&)> h_system_;
    std::function<void(int, const nlohmann::json&)> h_reply_;
    std::function<void(const rejected_frame&)> h_rejected_;
    std::function<void(std::error_code)> h_liveness_;
    std::function<void(const open_event&)> h_open_;
    std::function<void(const close_event&, const reconnect_decision&)> h_close_;
    std::function<void(const stopped_event&)> h_stopped_;
};

} // namespace genesys
TETHER_NAMESPACE_END

#endif
