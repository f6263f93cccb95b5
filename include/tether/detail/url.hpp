// tether: parsing ws:// and wss:// URLs, loopback detection, percent-encoding.
#ifndef TETHER_DETAIL_URL_HPP
#define TETHER_DETAIL_URL_HPP

#include <tether/detail/ascii.hpp>
#include <tether/version.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// The parts of a WebSocket URL a transport needs.
struct ws_url {
    bool secure = false;    ///< wss://
    std::string host;       ///< without the brackets of an IPv6 literal
    std::uint16_t port = 0; ///< explicit or the scheme's default
    std::string target;     ///< path and query, always starting with '/'
    bool ipv6_literal = false;
};

/// Parses `url`; on failure returns nothing and says why in `why`.
/// Rejects what RFC 6455 section 3 forbids (fragments, other schemes) and what
/// would be ambiguous on the wire (user info, white space, control characters).
inline std::optional<ws_url> parse_ws_url(std::string_view url, std::string& why) {
    for (const char c : url) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) {
            why = "the URL contains white space or a control character";
            return std::nullopt;
        }
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
    auto rest = url.substr(sep + 3);
    if (rest.find('#') != std::string_view::npos) {
        why = "WebSocket URLs must not contain a fragment ('#')";
        return std::nullopt;
    }
    const auto authority_end = rest.find_first_of("/?");
    const auto authority = rest.substr(0, authority_end);
    if (authority.find('@') != std::string_view::npos) {
        why = "user information in the URL is not supported (put credentials in the token)";
        return std::nullopt;
    }
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            why = "unterminated IPv6 literal";
            return std::nullopt;
        }
        out.host = std::string(authority.substr(1, close - 1));
        out.ipv6_literal = true;
        const auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                why = "unexpected characters after the IPv6 literal";
                return std::nullopt;
            }
            port_text = after.substr(1);
            if (port_text.empty()) {
                why = "empty port";
                return std::nullopt;
            }
        }
    } else {
        const auto colon = authority.find(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            if (port_text.empty()) {
                why = "empty port";
                return std::nullopt;
            }
        }
    }
    if (out.host.empty()) {
        why = "the URL has no host";
        return std::nullopt;
    }
    for (const char c : out.host) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                        (out.ipv6_literal && (c == ':' || c == '%'));
        if (!ok) {
            why = "the host contains a character that is not allowed";
            return std::nullopt;
        }
    }
    if (port_text.empty()) {
        out.port = out.secure ? 443 : 80;
    } else {
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
    if (authority_end == std::string_view::npos)
        out.target = "/";
    else if (rest[authority_end] == '?')
        out.target = "/" + std::string(rest.substr(authority_end));
    else
        out.target = std::string(rest.substr(authority_end));
    return out;
}

/// True for "localhost", 127.0.0.0/8 and ::1: names that never leave the machine.
inline bool is_loopback_host(std::string_view host) noexcept {
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    if (iequals(host, "localhost")) return true;
    if (host == "::1" || host == "0:0:0:0:0:0:0:1") return true;
    // dotted IPv4 with first octet 127
    if (host.size() < 7 || host.substr(0, 4) != "127.") return false;
    int dots = 0;
    int digits = 0;
    int value = 0;
    for (const char c : host) {
        if (c == '.') {
            if (digits == 0) return false;
            ++dots;
            digits = 0;
            value = 0;
        } else if (c >= '0' && c <= '9') {
            value = value * 10 + (c - '0');
            if (++digits > 3 || value > 255) return false;
        } else {
            return false;
        }
    }
    return dots == 3 && digits > 0;
}

/// A credential may travel over `url` when the channel is encrypted, when it
/// never leaves the machine, or when the user opted in by name.
inline bool token_transport_allowed(const ws_url& url,
                                    bool allow_insecure_token_transport) noexcept {
    return url.secure || is_loopback_host(url.host) || allow_insecure_token_transport;
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

/// RFC 7230 `tchar`: what header names and subprotocol tokens may contain.
inline bool is_http_token_char(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~': return true;
    default: return false;
    }
}

inline bool is_http_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (const char c : s)
        if (!is_http_token_char(c)) return false;
    return true;
}

/// A header value may hold visible characters, spaces and tabs, but never a
/// line break or another control character (that would inject headers).
inline bool is_safe_header_value(std::string_view s) noexcept {
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
    }
    return true;
}

} // namespace detail
TETHER_NAMESPACE_END

#endif
