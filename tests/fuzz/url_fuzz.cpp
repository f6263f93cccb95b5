// Fuzzes the one URL and host grammar (detail/url.hpp): ws(s):// and
// http(s):// parsing, the Host field, loopback classification, the plain
// transport guard and percent-encoding. Invariants abort().
#include <tether/detail/url.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {
void require(bool ok) {
    if (!ok) std::abort();
}
bool clean(std::string_view s) {
    for (const char c : s)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            return false;
    return true;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string why;
    if (const auto u = tether::detail::parse_ws_url(input, why)) {
        require(!u->host.empty() && u->port != 0 && !u->target.empty() && u->target.front() == '/');
        require(clean(u->host) && clean(u->target));
        require(u->target.find('#') == std::string::npos);
        // the Host field parses back to the same host and port
        std::string again_why;
        const auto again = tether::detail::parse_ws_url(
            std::string(u->secure ? "wss://" : "ws://") + u->authority() + u->target, again_why);
        require(again && again->host == u->host && again->port == u->port &&
                again->target == u->target);
        if (!u->secure && !tether::detail::token_transport_allowed(*u, false))
            require(!tether::detail::is_loopback_host(u->host));
        std::string target = u->target;
        tether::detail::append_query_parameter(target, "access_token", input);
        require(clean(target));
    } else {
        require(!why.empty());
    }
    why.clear();
    if (const auto h = tether::detail::parse_http_url(input, why)) {
        require(!h->host.empty() && h->port != 0 && !h->target.empty() && h->target.front() == '/');
        require(clean(h->host_field()) && clean(h->display()));
        require(h->display().find('?') == std::string::npos);
    } else {
        require(!why.empty());
    }
    (void)tether::detail::is_loopback_host(input);
    return 0;
}
