// tether: locale-independent ASCII helpers for protocol text.
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

} // namespace detail
TETHER_NAMESPACE_END

#endif
