// tether: what the ends of a Genesys notification socket mean.
#ifndef TETHER_GENESYS_CLOSE_POLICY_HPP
#define TETHER_GENESYS_CLOSE_POLICY_HPP

#include <tether/close_event.hpp>
#include <tether/detail/ascii.hpp>

#include <chrono>
#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace genesys {

/// ClosePolicy for sockets whose credential is a notification channel
/// (channel_token_policy): "refresh the token" means "make a new channel".
///
/// Genesys documents no close code, no close reason and no answer of a dead
/// channel to an upgrade, so every close the application did not ask for is
/// decided here, none by default_close_policy (whose 1000 behaviour is
/// changing), and the rule is: reconnect to the same channel; if the server
/// then refuses it or closes it again at once, make a new channel.
///
/// | outcome                                                     | action                     |
/// |-------------------------------------------------------------|----------------------------|
/// | open socket closed (any code, 1005, 1006, a drop)           | same channel (network)     |
/// | ... closed within `immediate_close` of opening, first time  | same channel               |
/// | ... again, right after going back to it (the retry failed)  | new channel                |
/// | reason "Channel expired/deleted/not found" (local server)   | new channel                |
/// | our own 1009 (a frame over the socket's size limit)         | same channel               |
/// | handshake 4xx except 408, 429 (401, 404: a dead channel)    | new channel                |
/// | handshake 408, 429, 5xx                                     | same channel, Retry-After  |
/// | handshake 3xx                                               | stop (handshake_refused)   |
/// | handshake 1xx/2xx without an upgrade                        | same channel               |
/// | TLS verification, bad URL, credential in clear, bad request | stop                       |
/// | HTTP proxy 407 or 403/refusal (proxy_auth_required/_denied) | stop                       |
/// | HTTP proxy 502/503/504 or unreachable (proxy_error, network)| same channel               |
/// | other failures before the server answered (DNS, TCP, time)  | same channel               |
///
/// A failure that never reached the server says nothing about the channel,
/// and a new channel needs the same network: it keeps the channel. New
/// channels are bounded by channel_options::max_channel_creations and spaced
/// by channel_options::creation_spacing, so none of this can loop hot.
/// Closes the client makes itself (stop, handover, reconnect() after a
/// liveness failure or a system message) never reach a ClosePolicy. The
/// server's close of a socket a handover replaced does, marked
/// `close_event::replaced`: it changes nothing here (the takeover's 1000)
/// unless it says the channel is gone.
class genesys_close_policy {
public:
    struct options {
        /// A socket closed by the server sooner than this after it opened
        /// was closed "at once": twice in a row means the channel is dead.
        std::chrono::milliseconds immediate_close{std::chrono::seconds(2)};
    };

    genesys_close_policy() = default;
    explicit genesys_close_policy(options o) : opts_(o) {}

    reconnect_decision decide(const close_event& ev) {
        if (ev.replaced) // a socket a handover replaced: says nothing about the new one
            return channel_gone(ev.reason) ? reconnect_decision::refresh_token() : same_channel();
        if (ev.http_status != 0) return handshake_refused(ev);
        if (!ev.was_open) return not_reached(ev);
        if (ev.error == error::message_too_large)
            return same_channel(); // our limit, not the channel
        if (channel_gone(ev.reason)) return new_channel();
        if (ev.uptime < opts_.immediate_close) {
            // The first immediate close may be a hiccup; a second one on the
            // same channel (the retry failed) means the channel is dead.
            if (retrying_same_channel_) return new_channel();
            retrying_same_channel_ = true;
            return same_channel();
        }
        // The channel worked: whatever the code, try it again first.
        retrying_same_channel_ = true;
        return same_channel();
    }

    /// True while the last decision was "same channel again" after a close
    /// of an open socket, and no socket has lasted since (for tests and logs).
    bool retrying_same_channel() const noexcept { return retrying_same_channel_; }

    /// The local server's close reasons (examples/genesys_local_server):
    /// a short cut, not relied on (real Genesys documents none).
    static bool channel_gone(std::string_view reason) noexcept {
        return starts_with_ci(reason, "channel expired") ||
               starts_with_ci(reason, "channel deleted") ||
               starts_with_ci(reason, "channel not found");
    }

private:
    reconnect_decision handshake_refused(const close_event& ev) {
        const int s = ev.http_status;
        if (s == 408 || s == 429 || (s >= 500 && s <= 599)) {
            auto d = reconnect_decision::reconnect(failure_class::overload);
            d.min_delay = ev.retry_after;
            return d;
        }
        if (s >= 400 && s <= 499)
            return new_channel(); // 401/404/410...: the channel is not accepted
        if (s >= 300 && s <= 399) return reconnect_decision::stop(error::handshake_refused);
        return same_channel(); // 1xx/2xx without an upgrade: a confused proxy
    }

    reconnect_decision not_reached(const close_event& ev) const {
        if (ev.error == error::tls_verification_failed || ev.error == error::invalid_url ||
            ev.error == error::insecure_transport || ev.error == error::invalid_upgrade_request ||
            ev.error == error::proxy_auth_required || ev.error == error::proxy_denied)
            return reconnect_decision::stop(ev.error);
        return reconnect_decision::reconnect(failure_class::network);
    }

    reconnect_decision new_channel() {
        retrying_same_channel_ = false;
        return reconnect_decision::refresh_token();
    }
    static reconnect_decision same_channel() {
        return reconnect_decision::reconnect(failure_class::network);
    }

    static bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
        return s.size() >= prefix.size() && detail::iequals(s.substr(0, prefix.size()), prefix);
    }

    options opts_;
    bool retrying_same_channel_ = false;
};

} // namespace genesys
TETHER_NAMESPACE_END

#endif
