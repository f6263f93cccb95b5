// Fuzzes Retry-After and HTTP-date parsing (detail/retry_after.hpp): delays
// are never negative and never above the cap; dates never wrap (built with
// -fsanitize=undefined, an overflow aborts).
#include <tether/detail/retry_after.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace std::chrono;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto now = system_clock::time_point(seconds(1700000000));
    for (const auto cap : {milliseconds(0), milliseconds(1500), milliseconds(hours(24))}) {
        if (const auto d = tether::detail::parse_retry_after(input, now, cap))
            if (d->count() < 0 || *d > cap) std::abort();
    }
    if (const auto t = tether::detail::parse_http_date(input)) {
        // four-digit years: from 0000-01-01, never wrapped past the clock's ends
        const auto s = duration_cast<seconds>(t->time_since_epoch()).count();
        if (s < tether::detail::days_from_civil(0, 1, 1) * 86400) std::abort();
    }
    return 0;
}
