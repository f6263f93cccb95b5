// tether: what goes into a close frame we send (RFC 6455 section 5.5.1, 7.4).
// No I/O and no websocketpp, so the fuzzer can reach it cheaply.
#ifndef TETHER_DETAIL_CLOSE_PAYLOAD_HPP
#define TETHER_DETAIL_CLOSE_PAYLOAD_HPP

#include <tether/version.hpp>

#include <cstdint>
#include <string>
#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// The reason text of a close frame: at most 123 bytes, cut on a UTF-8 boundary.
inline std::string bounded_close_reason(std::string_view reason) {
    if (reason.size() <= 123) return std::string(reason);
    std::size_t n = 123;
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80)
        --n;
    return std::string(reason.substr(0, n));
}

/// Close codes an endpoint may put on the wire (RFC 6455 section 7.4).
inline bool is_sendable_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}
} // namespace detail
TETHER_NAMESPACE_END

#endif
