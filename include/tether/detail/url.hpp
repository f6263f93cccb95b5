// tether: the one URL and host grammar: ws://, wss://, http:// and https://
// URLs, the Host field, loopback classification and the guard that keeps a
// credential off plain transports to other machines; percent-encoding.
#ifndef TETHER_DETAIL_URL_HPP
#define TETHER_DETAIL_URL_HPP

#include <tether/detail/ascii.hpp>
#include <tether/version.hpp>

#include <tether/detail/net.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// host[:port] of a URL, checked: a registered name (letters, digits, '-', '.',
/// '_'; lower-cased) or a bracketed IPv6 literal that parses as an address.
struct url_authority {
    std::string host;       ///< lower case, without the brackets of an IPv6 literal
    std::uint16_t port = 0; ///< explicit or `default_port`
    bool ipv6_literal = false;
};

/// Host and port as the Host field (and logs) write them: brackets around
/// an IPv6 literal, the port only when it is not the scheme's default.
inline std::string format_authority(std::string_view host, std::uint16_t port,
                                    std::uint16_t default_port) {
    std::string out;
    const bool v6 = host.find(':') != std::string_view::npos;
    if (v6) out += '[';
    out += host;
    if (v6) out += ']';
    if (port != default_port) {
        out += ':';
        out += std::to_string(port);
    }
    return out;
}

/// Parses the authority part of a URL (between "//" and the path).
inline std::optional<url_authority> parse_authority(std::string_view authority,
                                                    std::uint16_t default_port, std::string& why) {
    if (authority.find('@') != std::string_view::npos) {
        why = "user information in the URL is not supported (pass credentials as options or in the "
              "token)";
        return std::nullopt;
    }
    url_authority out;
    std::string_view host = authority;
    std::string_view port_text;
    bool has_port = false;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            why = "unterminated IPv6 literal";
            return std::nullopt;
        }
        host = authority.substr(1, close - 1);
        out.ipv6_literal = true;
        const auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                why = "unexpected characters after the IPv6 literal";
                return std::nullopt;
            }
            has_port = true;
            port_text = after.substr(1);
        }
        detail::net_error_code ec;
        net::ip::make_address_v6(std::string(host), ec);
        if (ec) {
            why = "invalid IPv6 literal";
            return std::nullopt;
        }
    } else {
        const auto colon = authority.find(':');
        if (colon != std::string_view::npos) {
            host = authority.substr(0, colon);
            port_text = authority.substr(colon + 1);
            has_port = true;
        }
        for (const char c : host) {
            const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
            if (!ok) {
                why = "the host contains a character that is not allowed";
                return std::nullopt;
            }
        }
    }
    if (host.empty()) {
        why = "the URL has no host";
        return std::nullopt;
    }
    if (has_port && port_text.empty()) {
        why = "empty port";
        return std::nullopt;
    }
    out.port = default_port;
    if (has_port) {
        unsigned long value = 0;
        for (const char c : port_text) {
            if (c < '0' || c > '9' || value > 65535) {
                why = "the port is not a number between 1 and 65535";
                return std::nullopt;
            }
            value = value * 10 + static_cast<unsigned long>(c - '0');
        }
        if (value == 0 || value > 65535) {
            why = "the port is not a number between 1 and 65535";
            return std::nullopt;
        }
        out.port = static_cast<std::uint16_t>(value);
    }
    out.host.reserve(host.size());
    for (const char c : host)
        out.host += ascii_lower(c);
    return out;
}

/// Splits "scheme://authority/path?query" after the caller has checked the
/// whole string; `rest` is everything after "://".
inline bool split_after_scheme(std::string_view rest, std::string_view& authority,
                               std::string& target) {
    const auto authority_end = rest.find_first_of("/?");
    authority = rest.substr(0, authority_end);
    if (authority_end == std::string_view::npos)
        target = "/";
    else if (rest[authority_end] == '?')
        target = "/" + std::string(rest.substr(authority_end));
    else
        target = std::string(rest.substr(authority_end));
    return true;
}

/// White space, control characters and bytes above 0x7e have no place in a
/// URL we put on the wire (they would be ambiguous or inject headers).
inline bool url_has_forbidden_char(std::string_view url) noexcept {
    for (const char c : url) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) return true;
    }
    return false;
}

/// The parts of a WebSocket URL a transport needs.
struct ws_url {
    bool secure = false;    ///< wss://
    std::string host;       ///< lower case, without the brackets of an IPv6 literal
    std::uint16_t port = 0; ///< explicit or the scheme's default
    std::string target;     ///< path and query, always starting with '/'
    bool ipv6_literal = false;

    /// The Host field: "[::1]:9000", "example.com".
    std::string authority() const { return format_authority(host, port, secure ? 443 : 80); }
};

/// Parses `url`; on failure returns nothing and says why in `why`.
/// Rejects what RFC 6455 section 3 forbids (fragments, other schemes) and what
/// would be ambiguous on the wire (user info, white space, control characters).
inline std::optional<ws_url> parse_ws_url(std::string_view url, std::string& why) {
    if (url_has_forbidden_char(url)) {
        why = "the URL contains white space, a control character or a non-ASCII byte";
        return std::nullopt;
    }
    ws_url out;
    const auto sep = url.find("://");
    if (sep == std::string_view::npos) {
        why = "the URL has no scheme (expected ws:// or wss://)";
        return std::nullopt;
    }
    const auto scheme = url.substr(0, sep);
    if (iequals(scheme, "wss"))
        out.secure = true;
    else if (!iequals(scheme, "ws")) {
        why = "unsupported scheme '" + std::string(scheme.substr(0, 16)) + "' (expected ws or wss)";
        return std::nullopt;
    }
    const auto rest = url.substr(sep + 3);
    if (rest.find('#') != std::string_view::npos) {
        why = "WebSocket URLs must not contain a fragment ('#')";
        return std::nullopt;
    }
    std::string_view authority;
    split_after_scheme(rest, authority, out.target);
    auto a = parse_authority(authority, out.secure ? 443 : 80, why);
    if (!a) return std::nullopt;
    out.host = std::move(a->host);
    out.port = a->port;
    out.ipv6_literal = a->ipv6_literal;
    return out;
}

/// An http:// or https:// URL, split for a request.
struct http_url {
    bool tls = true;
    std::string host; ///< lower case, IPv6 without brackets
    std::uint16_t port = 443;
    std::string target; ///< path and query, at least "/"

    /// The Host field: host, [v6], plus the port when it is not the default.
    std::string host_field() const { return format_authority(host, port, tls ? 443 : 80); }
    /// For logs: no query, which is where people hide secrets in URLs.
    std::string display() const {
        const auto q = target.find('?');
        return std::string(tls ? "https://" : "http://") + host_field() + target.substr(0, q);
    }
};

/// Parses `url`; on failure returns nullopt and says why in `why`. Strict:
/// no user info (a password in a URL ends up in logs), no fragments, no
/// spaces or control characters.
inline std::optional<http_url> parse_http_url(std::string_view url, std::string& why) {
    http_url out;
    const auto sep = url.find("://");
    const auto scheme = sep == std::string_view::npos ? std::string_view{} : url.substr(0, sep);
    if (iequals(scheme, "https")) {
        out.tls = true;
    } else if (iequals(scheme, "http")) {
        out.tls = false;
    } else {
        why = "the URL must start with https:// or http://";
        return std::nullopt;
    }
    if (url_has_forbidden_char(url)) {
        why = "invalid character (white space, control or non-ASCII) in the URL";
        return std::nullopt;
    }
    const auto rest = url.substr(sep + 3);
    if (rest.find('#') != std::string_view::npos) {
        why = "a fragment (#...) has no meaning in a request URL";
        return std::nullopt;
    }
    std::string_view authority;
    split_after_scheme(rest, authority, out.target);
    auto a = parse_authority(authority, out.tls ? 443 : 80, why);
    if (!a) return std::nullopt;
    out.host = std::move(a->host);
    out.port = a->port;
    return out;
}

inline bool is_loopback_address(const net::ip::address& a) noexcept {
    if (a.is_loopback()) return true;
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).is_loopback();
    return false;
}

/// True for names that never leave the machine: "localhost" (also as the
/// absolute "localhost."), 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8.
/// Callers that resolve the name check the addresses again before
/// connecting (see plain_endpoint_allowed), so a hosts file cannot send
/// "localhost" elsewhere.
inline bool is_loopback_host(std::string_view host) noexcept {
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    if (iequals(host, "localhost")) return true;
    if (host.empty() || host.size() > 64) return false;
    char text[65];
    host.copy(text, host.size());
    text[host.size()] = '\0';
    detail::net_error_code ec;
    const auto a = net::ip::make_address(static_cast<const char*>(text), ec);
    return !ec && is_loopback_address(a);
}

/// The one guard for credentials on an unencrypted connection (ws://,
/// http://): only to a loopback host, unless the user opted in by name.
inline bool plain_transport_allowed(std::string_view host, bool opted_in) noexcept {
    return opted_in || is_loopback_host(host);
}

/// Second half of that guard, after name resolution: an address a plain
/// connection carrying a credential may go to.
inline bool plain_endpoint_allowed(const net::ip::address& a, bool opted_in) noexcept {
    return opted_in || is_loopback_address(a);
}

/// A credential may travel over `url` when the channel is encrypted, when it
/// never leaves the machine, or when the user opted in by name.
inline bool token_transport_allowed(const ws_url& url,
                                    bool allow_insecure_token_transport) noexcept {
    return url.secure || plain_transport_allowed(url.host, allow_insecure_token_transport);
}

/// Percent-encodes everything except RFC 3986 unreserved characters, so a
/// value is safe as a query parameter whatever it contains.
inline std::string percent_encode(std::string_view in) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(in.size() * 3);
    for (const char c : in) {
        const auto u = static_cast<unsigned char>(c);
        const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                                c == '~';
        if (unreserved) {
            out += c;
        } else {
            out += '%';
            out += hex[u >> 4];
            out += hex[u & 0x0f];
        }
    }
    return out;
}

/// Appends name=value (both percent-encoded) to a request target.
inline void append_query_parameter(std::string& target, std::string_view name,
                                   std::string_view value) {
    target += target.find('?') == std::string::npos ? '?' : '&';
    target += percent_encode(name);
    target += '=';
    target += percent_encode(value);
}

} // namespace detail
TETHER_NAMESPACE_END

#endif
