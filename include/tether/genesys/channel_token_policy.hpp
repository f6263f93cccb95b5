// tether: a Genesys notification channel as the socket's credential.
//
// Genesys authorises the WebSocket by the channel id in its URL, not by a
// header. So the TokenPolicy of a notification socket hands out an empty
// secret (no Authorization header) whose endpoint is the channel's
// connectUri; "refresh" means "create a new channel and subscribe it".
#ifndef TETHER_GENESYS_CHANNEL_TOKEN_POLICY_HPP
#define TETHER_GENESYS_CHANNEL_TOKEN_POLICY_HPP

#include <tether/detail/net.hpp>
#include <tether/detail/retry_after.hpp>
#include <tether/detail/url.hpp>
#include <tether/error.hpp>
#include <tether/genesys/notification.hpp>
#include <tether/genesys/rest_client.hpp>
#include <tether/token.hpp>
#include <tether/token_policy/concept.hpp>

#if defined(TETHER_USE_BOOST_ASIO)
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#else
#include <asio/bind_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/steady_timer.hpp>
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN
namespace genesys {

/// Genesys limits (docs/genesys.md): checked before anything is sent.
inline constexpr std::size_t max_topics_per_channel = 1000;
inline constexpr std::size_t max_topic_length = 200;

/// Throws std::system_error (error::invalid_option) saying which topic is wrong.
inline void validate_topics(const std::vector<std::string>& topics) {
    if (topics.empty()) throw detail::invalid_option("tether: genesys: no topics to subscribe to");
    if (topics.size() > max_topics_per_channel)
        throw detail::invalid_option("tether: genesys: " + std::to_string(topics.size()) +
                                     " topics; a channel takes at most 1000");
    for (std::size_t i = 0; i < topics.size(); ++i) {
        const auto& t = topics[i];
        if (t.empty())
            throw detail::invalid_option("tether: genesys: topic " + std::to_string(i) +
                                         " is empty");
        if (t.size() > max_topic_length)
            throw detail::invalid_option("tether: genesys: topic " + std::to_string(i) + " ('" +
                                         t.substr(0, 40) + "...') has " + std::to_string(t.size()) +
                                         " characters; at most 200 are allowed");
        for (char c : t)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                throw detail::invalid_option("tether: genesys: topic " + std::to_string(i) +
                                             " contains a control character");
    }
}

/// "2024-05-01T12:00:00.000Z" (UTC, optional fraction) -> time point.
inline std::optional<std::chrono::system_clock::time_point>
parse_utc_timestamp(std::string_view s) noexcept {
    auto num = [&](std::size_t pos, std::size_t n, int& out) {
        if (pos + n > s.size()) return false;
        out = 0;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (s[i] < '0' || s[i] > '9') return false;
            out = out * 10 + (s[i] - '0');
        }
        return true;
    };
    int y, mo, d, h, mi, se;
    if (!num(0, 4, y) || s.size() < 20 || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' ||
        !num(8, 2, d) || (s[10] != 'T' && s[10] != 't') || !num(11, 2, h) || s[13] != ':' ||
        !num(14, 2, mi) || s[16] != ':' || !num(17, 2, se) || mo < 1 || mo > 12 || d < 1 ||
        d > 31 || h > 23 || mi > 59 || se > 60)
        return std::nullopt;
    std::size_t i = 19;
    long long millis = 0, scale = 100;
    if (i < s.size() && s[i] == '.') {
        ++i;
        if (i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
        for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10)
            millis += (s[i] - '0') * scale;
    }
    if (i + 1 != s.size() || (s[i] != 'Z' && s[i] != 'z')) return std::nullopt;
    const auto days =
        detail::days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    const auto secs = days * 86400LL + h * 3600LL + mi * 60LL + se;
    const auto whole = detail::sys_time_from_seconds(secs);
    if (whole == std::chrono::system_clock::time_point::max())
        return whole; // clamped: no fraction to add
    return whole + std::chrono::milliseconds(millis);
}

struct channel_options {
    std::vector<std::string> topics; ///< validated at construction
    /// The client's own cap: at most this many channel creations per window.
    /// Each creation past Genesys' 20 channels silently replaces another
    /// channel of the same user and app, so a loop must stop, not create.
    unsigned max_channel_creations = 5;
    std::chrono::seconds creation_window{std::chrono::hours(1)};
    /// Resubscribe (which renews the channel's 24 h lifetime) this long before
    /// `expires`; capped at half the channel's lifetime.
    std::chrono::seconds resubscribe_margin{std::chrono::hours(1)};
    /// A failed resubscription is tried again after this long (or Retry-After).
    std::chrono::seconds resubscribe_retry{30};
    /// Creations follow each other at least this far apart, doubling with
    /// each creation in the window (1, 2, 4 ... s, at most 64 times this):
    /// a server that kills every new channel cannot make a hot loop.
    std::chrono::milliseconds creation_spacing{1000};
    /// connectUri must be wss:// except to a loopback host; true allows
    /// ws:// anywhere (the channel id in the URL is the socket's credential).
    bool allow_plain_ws_to_non_loopback_host = false;

    void validate() const {
        validate_topics(topics);
        if (max_channel_creations == 0)
            throw detail::invalid_option(
                "tether: genesys: channel_options::max_channel_creations must be at least 1");
        if (creation_window.count() <= 0 || resubscribe_margin.count() <= 0 ||
            resubscribe_retry.count() <= 0 || creation_spacing.count() < 0)
            throw detail::invalid_option(
                "tether: genesys: channel_options: durations must be positive");
    }
};

/// What happened to the channel, for logs and metrics.
struct channel_event {
    enum kind_type : unsigned char {
        created,      ///< POST channels succeeded
        subscribed,   ///< PUT subscriptions succeeded on a new or re-used channel
        resubscribed, ///< the keep-alive PUT renewed the channel's lifetime
        lost,         ///< the channel is gone (invalidated, 404)
        refused,      ///< creation refused by the client's own limit
        failed,       ///< a REST call failed (detail says which)
    };
    kind_type kind;
    std::string channel_id; ///< full id; print it through shorten_id(): it opens the socket
    std::string detail;     ///< ids in it are shortened, server text made printable
    /// created: this channel replaces one that was lost after the REST token
    /// that created it had been replaced (channels may die with their token).
    bool token_changed = false;
};

inline const char* to_string(channel_event::kind_type k) noexcept {
    switch (k) {
    case channel_event::created: return "created";
    case channel_event::subscribed: return "subscribed";
    case channel_event::resubscribed: return "resubscribed";
    case channel_event::lost: return "lost";
    case channel_event::refused: return "refused";
    case channel_event::failed: return "failed";
    }
    return "?";
}

struct channel_stats {
    std::uint64_t channels_created = 0;
    std::uint64_t creations_refused = 0;
    std::uint64_t subscriptions = 0;   ///< successful PUTs, keep-alive included
    std::uint64_t resubscriptions = 0; ///< keep-alive PUTs
    std::uint64_t channels_lost = 0;
    std::uint64_t refused_ids = 0;        ///< POST answers with an unsafe id or connectUri
    std::uint64_t token_replacements = 0; ///< creations after a channel died with its REST token
};

/// TokenPolicy for a Genesys notification socket.
///
/// async_get_token: the cached channel (fresh = false) if it is live and
/// subscribed; otherwise creates one (POST /api/v2/notifications/channels),
/// subscribes it (PUT .../subscriptions) and hands it out (fresh = true).
/// The token is `token{secret{}, nullopt, fresh, connectUri}`: no
/// Authorization header, and the client connects to connectUri.
/// invalidate(): the channel is gone; the next get creates a new one.
/// While a channel is held, it is resubscribed before `expires`.
///
/// Errors: channel_creation_limit (permanent: the client stops),
/// subscription_rejected and request_forbidden (permanent), rate_limited
/// (with retry_after), channel_request_failed, proxy_auth_required and
/// proxy_denied (an HTTP proxy refused the REST call: permanent), and any
/// token error of the REST token (invalid_credentials...).
class channel_token_policy {
public:
    using handler_type = std::function<void(token_result)>;

    /// Throws std::system_error (error::invalid_option) for bad options (topics in particular).
    channel_token_policy(std::shared_ptr<rest_client> rest, channel_options options)
        : state_(std::make_shared<state>(std::move(rest), std::move(options))) {}

    template <class Handler> void async_get_token(Handler&& handler) {
        auto h = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(handler));
        state_->get(handler_type([h](token_result r) { (*h)(std::move(r)); }));
    }
    void invalidate(const secret&) {
        state_->invalidate("the connection reported the channel gone");
    }
    void cancel() { state_->cancel(); }

    /// The channel is gone (a system message or a result frame said so):
    /// the next async_get_token creates a new one.
    void drop(std::string why) { state_->invalidate(std::move(why)); }
    /// PUT the subscriptions again (after no_longer_subscribed); `done(true)`
    /// when they are back, `done(false)` when the channel turned out gone.
    /// `done` runs on the REST strand.
    void resubscribe(std::function<void(bool)> done) { state_->repair(std::move(done)); }

    /// Called on the REST strand.
    void on_channel(std::function<void(const channel_event&)> f) {
        state_->on_event = std::move(f);
    }
    /// A snapshot; synchronised with the policy's strand only loosely (for metrics).
    channel_stats stats() const { return state_->stats_snapshot(); }
    /// The channel currently held (empty when none); for reports and tests.
    std::string channel_id() const { return state_->current_id(); }

private:
    struct channel {
        std::string id;
        std::string connect_uri;
        std::chrono::steady_clock::time_point expires{};
        std::chrono::steady_clock::duration lifetime{};
        bool subscribed = false;
        std::uint64_t token_serial = 0; // the REST token that created it
    };

    struct state : std::enable_shared_from_this<state> {
        state(std::shared_ptr<rest_client> r, channel_options o)
            : rest(std::move(r)), opts(std::move(o)), timer(rest->strand()) {
            opts.validate();
            nlohmann::json list = nlohmann::json::array();
            for (const auto& t : opts.topics)
                list.push_back({{"id", t}});
            subscription_body = list.dump();
        }

        void get(handler_type h) {
            net::dispatch(rest->strand(),
                          [self = this->shared_from_this(), h = std::move(h)]() mutable {
                              self->pending = std::move(h);
                              if (!self->busy) self->advance();
                          });
        }

        void cancel() {
            // The REST call in flight goes on: a channel it creates is kept
            // for the next request instead of being wasted.
            net::dispatch(rest->strand(),
                          [self = this->shared_from_this()] { self->pending = nullptr; });
        }

        void invalidate(std::string why) {
            net::dispatch(rest->strand(), [self = this->shared_from_this(), why = std::move(why)] {
                if (self->current) self->drop(why);
            });
        }

        void repair(std::function<void(bool)> done) {
            net::dispatch(rest->strand(),
                          [self = this->shared_from_this(), done = std::move(done)]() mutable {
                              if (!self->current) return done(false);
                              self->repairs.push_back(std::move(done));
                              self->current->subscribed = false; // not handed out again until it is
                              if (!self->busy) self->subscribe(false);
                          });
        }

        void finish_repairs(bool ok) {
            auto list = std::move(repairs);
            repairs.clear();
            for (auto& f : list)
                f(ok);
        }

        void advance() {
            if (!pending) return;
            if (current && current->subscribed) {
                token t(secret{}, std::nullopt, std::exchange(fresh, false), current->connect_uri);
                return deliver(token_result::success(std::move(t)));
            }
            if (current) return subscribe(false);
            create();
        }

        void deliver(token_result r) {
            auto h = std::move(pending);
            pending = nullptr;
            if (h) h(std::move(r));
        }

        void fail(channel_event::kind_type kind, rest_outcome out) {
            emit(kind, current ? current->id : std::string(), out.detail);
            token_result r = token_result::failure(out.error, std::move(out.detail));
            r.retry_after = out.retry_after;
            deliver(std::move(r));
        }

        void create() {
            const auto now = std::chrono::steady_clock::now();
            while (!creations.empty() && now - creations.front() >= opts.creation_window)
                creations.pop_front();
            if (!creations.empty() && opts.creation_spacing.count() > 0) {
                const auto doublings = std::min<std::size_t>(creations.size() - 1, 6);
                const auto due = creations.back() + opts.creation_spacing * (1LL << doublings);
                if (due > now) {
                    busy = true;
                    timer.expires_at(due);
                    const auto gen = ++timer_gen;
                    std::weak_ptr<state> weak = this->shared_from_this();
                    timer.async_wait(
                        net::bind_executor(rest->strand(), [weak, gen](std::error_code ec) {
                            auto self = weak.lock();
                            if (!self || gen != self->timer_gen) return;
                            self->busy = false;
                            if (!ec && self->pending && !self->current) self->create();
                        }));
                    return;
                }
            }
            if (creations.size() >= opts.max_channel_creations) {
                ++stats.creations_refused;
                rest_outcome out;
                out.error = make_error_code(error::channel_creation_limit);
                out.detail = std::to_string(creations.size()) + " channels created in the last " +
                             std::to_string(opts.creation_window.count()) +
                             " s (channel_options::max_channel_creations); not creating another";
                return fail(channel_event::refused, std::move(out));
            }
            // Counted when sent: a request that times out may still have made one.
            creations.push_back(now);
            busy = true;
            std::weak_ptr<state> weak = this->shared_from_this();
            rest->call("POST", "/api/v2/notifications/channels", "", [weak](rest_outcome out) {
                if (auto self = weak.lock()) self->on_created(std::move(out));
            });
        }

        void on_created(rest_outcome out) {
            busy = false;
            if (!out.error) {
                const auto& b = out.body;
                if (!b.is_object() || !b.contains("id") || !b["id"].is_string() ||
                    !b.contains("connectUri") || !b["connectUri"].is_string()) {
                    out.error = make_error_code(error::channel_request_failed);
                    out.detail = "POST channels: the answer lacks id or connectUri";
                } else {
                    channel c;
                    c.id = b["id"].get<std::string>();
                    c.connect_uri = b["connectUri"].get<std::string>();
                    c.token_serial = out.token_serial;
                    if (const char* why = unsafe(c)) {
                        ++stats.refused_ids;
                        out.error = make_error_code(error::channel_request_failed);
                        out.detail = std::string("POST channels: refused the answer: ") + why;
                    } else {
                        set_expiry(c, b);
                        std::string note;
                        bool token_changed = false;
                        if (lost && lost->token_serial != 0 &&
                            c.token_serial > lost->token_serial &&
                            exempted_serial != c.token_serial) {
                            // The lost channel died after its REST token was
                            // replaced: it may have died with it. Once per
                            // token, this creation does not count against
                            // max_channel_creations.
                            token_changed = true;
                            exempted_serial = c.token_serial;
                            ++stats.token_replacements;
                            if (!creations.empty()) creations.pop_back();
                            note = "replaces " + shorten_id(lost->id) +
                                   ", lost after the REST token that created it was replaced "
                                   "(channels may die with their token)";
                        }
                        lost.reset();
                        current = std::move(c);
                        fresh = true;
                        ++stats.channels_created;
                        emit(channel_event::created, current->id, note, token_changed);
                        return subscribe(false);
                    }
                }
            }
            fail(channel_event::failed, std::move(out));
            advance_if_waiting_again();
        }

        void advance_if_waiting_again() {
            if (pending && !busy) advance();
        }

        static void set_expiry(channel& c, const nlohmann::json& b) {
            // Measured as a duration against our clock: only the difference
            // between the server's `expires` and its (our) now matters.
            auto lifetime = std::chrono::steady_clock::duration(std::chrono::hours(24));
            if (b.contains("expires") && b["expires"].is_string())
                if (const auto at = parse_utc_timestamp(b["expires"].get<std::string>())) {
                    const auto left = *at - std::chrono::system_clock::now();
                    if (left > std::chrono::seconds(0))
                        lifetime =
                            std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
                }
            c.lifetime = lifetime;
            c.expires = std::chrono::steady_clock::now() + lifetime;
        }

        void subscribe(bool keepalive) {
            busy = true;
            const std::string id = current->id;
            std::weak_ptr<state> weak = this->shared_from_this();
            rest->call("PUT", "/api/v2/notifications/channels/" + id + "/subscriptions",
                       subscription_body, [weak, id, keepalive](rest_outcome out) {
                           if (auto self = weak.lock())
                               self->on_subscribed(id, keepalive, std::move(out));
                       });
        }

        void on_subscribed(const std::string& id, bool keepalive, rest_outcome out) {
            busy = false;
            if (!current || current->id != id) {
                finish_repairs(false);
                return advance_if_waiting_again(); // dropped meanwhile
            }
            if (!out.error) {
                finish_repairs(true);
                current->subscribed = true;
                // A successful subscription renews the channel's lifetime.
                current->expires = std::chrono::steady_clock::now() + current->lifetime;
                ++stats.subscriptions;
                if (keepalive) ++stats.resubscriptions;
                emit(keepalive ? channel_event::resubscribed : channel_event::subscribed, id,
                     std::to_string(opts.topics.size()) + " topics");
                arm_keepalive(std::nullopt);
                return advance();
            }
            if (out.status == 404) {
                drop("subscription answered 404: " + out.detail);
                finish_repairs(false);
                if (pending) return create();
                return;
            }
            if (out.status == 400) {
                out.error = make_error_code(error::subscription_rejected);
                if (!keepalive) current.reset(); // its topics are refused: do not hand it out
                finish_repairs(false);
            }
            if (!repairs.empty() && current) {
                // A repair that failed for now (429, network): try again later.
                emit(channel_event::failed, id, out.detail);
                arm_keepalive(out.retry_after ? std::chrono::duration_cast<std::chrono::seconds>(
                                                    *out.retry_after)
                                              : opts.resubscribe_retry);
                return advance_if_waiting_again();
            }
            if (keepalive && current) {
                emit(channel_event::failed, id, out.detail);
                arm_keepalive(out.retry_after ? std::chrono::duration_cast<std::chrono::seconds>(
                                                    *out.retry_after)
                                              : opts.resubscribe_retry);
                return advance_if_waiting_again();
            }
            fail(channel_event::failed, std::move(out));
        }

        void arm_keepalive(std::optional<std::chrono::seconds> retry_in) {
            if (!current) return;
            const auto margin =
                std::min(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             opts.resubscribe_margin),
                         current->lifetime / 2);
            auto at = current->expires - margin;
            if (retry_in) at = std::min(at, std::chrono::steady_clock::now() + *retry_in);
            timer.expires_at(at);
            const auto gen = ++timer_gen;
            std::weak_ptr<state> weak = this->shared_from_this();
            timer.async_wait(net::bind_executor(rest->strand(), [weak, gen](std::error_code ec) {
                auto self = weak.lock();
                if (!self || ec || gen != self->timer_gen || !self->current) return;
                if (self->busy) return self->arm_keepalive(std::chrono::seconds(1));
                self->subscribe(!self->current->subscribed ? false : true);
            }));
        }

        void drop(const std::string& why) {
            ++stats.channels_lost;
            emit(channel_event::lost, current->id, why);
            lost = current;
            current.reset();
            ++timer_gen;
            timer.cancel();
        }

        void emit(channel_event::kind_type k, std::string id, std::string detail,
                  bool token_changed = false) {
            {
                std::lock_guard<std::mutex> lock(stats_mutex);
                published = stats;
                id_published = current ? current->id : std::string();
            }
            if (on_event)
                on_event(channel_event{k, std::move(id), std::move(detail), token_changed});
        }

        // The id goes into REST paths, the URI is where the credential goes.
        const char* unsafe(const channel& c) const {
            if (!is_valid_channel_id(c.id))
                return "the channel id is not 1-128 characters of A-Z a-z 0-9 -";
            std::string why;
            const auto url = detail::parse_ws_url(c.connect_uri, why);
            if (!url) return "connectUri is not a ws:// or wss:// URL";
            if (!url->secure && !opts.allow_plain_ws_to_non_loopback_host &&
                !detail::is_loopback_host(url->host))
                return "connectUri is ws:// to a host that is not loopback (the channel id would "
                       "travel in clear)";
            for (char ch : c.connect_uri)
                if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f)
                    return "connectUri contains a control character or space";
            return nullptr;
        }

        channel_stats stats_snapshot() const {
            std::lock_guard<std::mutex> lock(stats_mutex);
            return published;
        }
        std::string current_id() const {
            std::lock_guard<std::mutex> lock(stats_mutex);
            return id_published;
        }

        std::shared_ptr<rest_client> rest;
        channel_options opts;
        std::string subscription_body;
        net::steady_timer timer;
        std::uint64_t timer_gen = 0;
        std::optional<channel> current;
        std::optional<channel> lost;       // the last channel dropped, until a new one is made
        std::uint64_t exempted_serial = 0; // REST token whose replacement creation was not counted
        std::vector<std::function<void(bool)>> repairs; // resubscribe() callers waiting
        bool fresh = false; // the current channel was created and not handed out yet
        bool busy = false;  // a POST or PUT is in flight
        handler_type pending;
        std::deque<std::chrono::steady_clock::time_point> creations;
        channel_stats stats;
        std::function<void(const channel_event&)> on_event;
        mutable std::mutex stats_mutex;
        channel_stats published;
        std::string id_published;
    };

    std::shared_ptr<state> state_;
};

static_assert(is_token_policy_v<channel_token_policy>,
              "channel_token_policy must be a TokenPolicy");

} // namespace genesys
TETHER_NAMESPACE_END

#endif
