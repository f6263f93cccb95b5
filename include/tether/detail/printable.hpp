// tether: text from a peer made safe to print.
#ifndef TETHER_DETAIL_PRINTABLE_HPP
#define TETHER_DETAIL_PRINTABLE_HPP

#include <tether/version.hpp>

#include <string>
#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// Printable, bounded copy of text a server chose (a refusal body, a close
/// reason, a message field) for logs: control characters become spaces, so
/// a peer cannot forge log lines or drive a terminal; never cut inside a
/// UTF-8 sequence.
inline std::string body_excerpt(std::string_view body, std::size_t max) {
    bool cut = false;
    if (body.size() > max) {
        std::size_t n = max;
        while (n > 0 && (static_cast<unsigned char>(body[n]) & 0xC0) == 0x80)
            --n;
        body = body.substr(0, n);
        cut = true;
    }
    std::string out;
    out.reserve(body.size() + 3);
    for (const char c : body) {
        const auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? ' ' : c;
    }
    if (cut) out += "...";
    return out;
}

} // namespace detail
TETHER_NAMESPACE_END

#endif
