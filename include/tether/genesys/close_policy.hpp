// tether: what the ends of a Genesys notification socket mean.
#ifndef TETHER_GENESYS_CLOSE_POLICY_HPP
#define TETHER_GENESYS_CLOSE_POLICY_HPP

#include <tether/close_policy/default_close_policy.hpp>

#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace genesys {

/// ClosePolicy for sockets whose credential is a notification channel
/// (channel_token_policy): "refresh the token" means "make a new channel".
///
/// | outcome                                                    | action                  |
/// |------------------------------------------------------------|-------------------------|
/// | handshake 404 (channel unknown or expired)                 | new channel             |
/// | 1001 "Channel expired" / "Channel deleted" / "Channel not found" | new channel       |
/// | 1001 "Socket closing" (forced close after socket_closing)  | reconnect, same channel |
/// | transport failures (1006, DNS, TCP, liveness)              | reconnect, same channel |
/// | anything else                                              | as default_close_policy |
///
/// The reasons are those of the local server (examples/genesys_local_server);
/// Genesys documents none. An unrecognised 1001 reconnects to the same
/// channel: if the channel is in fact gone, its handshake gets 404 and the
/// next attempt makes a new one.
class genesys_close_policy {
public:
    genesys_close_policy() = default;
    explicit genesys_close_policy(default_close_policy fallback) : fallback_(fallback) {}

    reconnect_decision decide(const close_event& ev) const {
        if (ev.http_status == 404) return reconnect_decision::refresh_token();
        if (ev.http_status == 0 && ev.code != close_code::none && channel_gone(ev.reason))
            return reconnect_decision::refresh_token();
        return fallback_.decide(ev);
    }

    static bool channel_gone(std::string_view reason) noexcept {
        return starts_with_ci(reason, "channel expired") ||
               starts_with_ci(reason, "channel deleted") ||
               starts_with_ci(reason, "channel not found");
    }

private:
    static bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
        if (s.size() < prefix.size()) return false;
        for (std::size_t i = 0; i < prefix.size(); ++i) {
            char c = s[i];
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
            if (c != prefix[i]) return false;
        }
        return true;
    }

    default_close_policy fallback_;
};

} // namespace genesys
TETHER_NAMESPACE_END

#endif
