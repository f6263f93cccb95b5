// tether: locale-independent ASCII helpers for protocol text: the one
// token-character check, the one header-value check, the one trim.
#ifndef TETHER_DETAIL_ASCII_HPP
#define TETHER_DETAIL_ASCII_HPP

#include <tether/version.hpp>

#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace detail {

inline char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

/// Case-insensitive comparison of ASCII (header names, schemes, hosts).
inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

/// RFC 9110 `tchar`: what header names, subprotocols and other tokens consist of.
inline bool is_tchar(char c) noexcept {
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

/// A non-empty run of tchar (RFC 9110 `token`).
inline bool is_http_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (const char c : s)
        if (!is_tchar(c)) return false;
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

/// A credential (access token) as it may be placed after "Bearer ": non-empty,
/// visible ASCII only (no space, no control character, no byte above 0x7e).
/// The token endpoint's answer and the transport check with this same rule.
inline bool is_credential_text(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) return false;
    }
    return true;
}

/// Strips optional white space (RFC 9110 OWS: spaces and tabs) at both ends.
inline std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

} // namespace detail
TETHER_NAMESPACE_END

#endif
