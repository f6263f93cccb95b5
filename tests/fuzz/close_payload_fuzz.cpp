// Fuzzes close payloads: what tether puts into a close frame it sends
// (detail/close_payload.hpp: the code is sendable, the reason fits 123 bytes
// and stays valid UTF-8 when it was), and what websocketpp extracts from one
// it receives, which the transport reports as code and reason.
#include <tether/detail/close_payload.hpp>

#include <websocketpp/close.hpp>
#include <websocketpp/utf8_validator.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {
void require(bool ok) {
    if (!ok) std::abort();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string payload(reinterpret_cast<const char*>(data), size);

    // outgoing: code from the first two bytes, reason from the rest
    if (size >= 2) {
        const auto code = static_cast<std::uint16_t>((data[0] << 8) | data[1]);
        const std::string reason = payload.substr(2);
        const std::string bounded = tether::detail::bounded_close_reason(reason);
        require(bounded.size() <= 123);
        require(reason.compare(0, bounded.size(), bounded) == 0);
        if (websocketpp::utf8_validator::validate(reason))
            require(websocketpp::utf8_validator::validate(bounded));
        if (tether::detail::is_sendable_close_code(code))
            require(!websocketpp::close::status::invalid(code) &&
                    !websocketpp::close::status::reserved(code));
    }

    // incoming: websocketpp's extraction of a received close frame's payload
    websocketpp::lib::error_code ec;
    const auto code = websocketpp::close::extract_code(payload, ec);
    if (!ec) {
        if (size >= 2) require(!websocketpp::close::status::invalid(code));
        websocketpp::lib::error_code rec;
        const std::string reason = websocketpp::close::extract_reason(payload, rec);
        if (!rec)
            require(websocketpp::utf8_validator::validate(reason) && reason.size() + 2 <= size + 2);
    }
    return 0;
}
