// tether: what RFC 6455 close codes and HTTP statuses mean for reconnecting.
#ifndef TETHER_CLOSE_POLICY_DEFAULT_CLOSE_POLICY_HPP
#define TETHER_CLOSE_POLICY_DEFAULT_CLOSE_POLICY_HPP

#include <tether/close_event.hpp>

TETHER_NAMESPACE_BEGIN

/// The default ClosePolicy. It sees only closes the application did not ask
/// for: stop(), handover and reconnect() are the client's own business.
///
/// | outcome                                   | action                               | ladder   |
/// |-------------------------------------------|--------------------------------------|----------|
/// | 1000 normal, sent by the server           | reconnect (configurable: stop)       | network  |
/// | 1001, 1005, 1006, 1011, 1012, 1014        | reconnect                            | network  |
/// | 1013 try again later                      | reconnect                            | overload |
/// | 1002, 1003, 1007, 1008, 1009, 1010, 1015  | stop                                 |          |
/// | 3000-4999 (application codes)             | reconnect (configurable)             | network  |
/// | handshake 401                             | refresh token, then reconnect        | auth     |
/// | handshake 403, 404, other 4xx, 3xx        | stop                                 |          |
/// | handshake 408, 429, 5xx                   | reconnect, Retry-After honoured      | overload |
/// | TLS verification failure, bad URL or request, refusing a credential in clear | stop | |
/// | HTTP proxy: 407 (proxy_auth_required), 403 and other refusals (proxy_denied) | stop | |
/// | HTTP proxy: 5xx, bad answer (proxy_error), unreachable | reconnect            | network  |
/// | any other transport failure (DNS, TCP, liveness) | reconnect                     | network  |
class default_close_policy {
public:
    struct options {
        /// A server's 1000 (maintenance, rebalancing, a takeover by a newer
        /// socket) reconnects under the anti-flap rules, like 1001; false makes
        /// it a stop. A stop the application asked for is always a stop.
        bool reconnect_on_normal_close = true;
        close_action application_codes =
            close_action::reconnect; ///< 3000-4999 not otherwise mapped
    };

    default_close_policy() = default;
    explicit default_close_policy(options o) : opts_(o) {}

    reconnect_decision decide(const close_event& ev) const {
        if (ev.http_status != 0) return decide_http(ev);
        if (ev.code != close_code::none) return decide_code(ev.code);
        return decide_error(ev.error);
    }

    const options& get_options() const noexcept { return opts_; }

private:
    static reconnect_decision overload(const close_event& ev) {
        auto d = reconnect_decision::reconnect(failure_class::overload);
        d.min_delay = ev.retry_after;
        return d;
    }

    static reconnect_decision decide_http(const close_event& ev) {
        const int s = ev.http_status;
        if (s == 401) return reconnect_decision::refresh_token();
        if (s == 408 || s == 429 || (s >= 500 && s <= 599)) return overload(ev);
        if (s >= 300 && s <= 499) return reconnect_decision::stop(error::handshake_refused);
        // 1xx/2xx without an upgrade: a confused proxy; try again later
        return reconnect_decision::reconnect(failure_class::network);
    }

    reconnect_decision decide_code(std::uint16_t code) const {
        using namespace close_code;
        switch (code) {
        case normal:
            return opts_.reconnect_on_normal_close
                       ? reconnect_decision::reconnect()
                       : reconnect_decision::stop(error::stop_close_code);
        case going_away:
        case no_status:
        case abnormal:
        case internal_error:
        case service_restart:
        case bad_gateway: return reconnect_decision::reconnect(failure_class::network);
        case try_again_later: return reconnect_decision::reconnect(failure_class::overload);
        default: break;
        }
        if (code >= 3000 && code <= 4999) {
            switch (opts_.application_codes) {
            case close_action::stop: return reconnect_decision::stop(error::stop_close_code);
            case close_action::refresh_token_then_reconnect:
                return reconnect_decision::refresh_token();
            case close_action::reconnect: break;
            }
            return reconnect_decision::reconnect(failure_class::network);
        }
        // 1002, 1003, 1007-1010, 1015 and anything unassigned: retrying cannot help
        return reconnect_decision::stop(error::stop_close_code);
    }

    static reconnect_decision decide_error(const std::error_code& ec) {
        if (ec == error::tls_verification_failed || ec == error::invalid_url ||
            ec == error::insecure_transport || ec == error::invalid_upgrade_request ||
            ec == error::proxy_auth_required || ec == error::proxy_denied)
            return reconnect_decision::stop(ec);
        return reconnect_decision::reconnect(failure_class::network);
    }

    options opts_;
};

TETHER_NAMESPACE_END

#endif
