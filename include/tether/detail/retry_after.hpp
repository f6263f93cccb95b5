// tether: parsing an HTTP Retry-After value (RFC 9110 section 10.2.3).
#ifndef TETHER_DETAIL_RETRY_AFTER_HPP
#define TETHER_DETAIL_RETRY_AFTER_HPP

#include <tether/detail/ascii.hpp>
#include <tether/version.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// Days since 1970-01-01 of a proleptic Gregorian date (no time zone, no timegm).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

/// Seconds since the epoch as a system_clock time point, clamped to what the
/// clock can hold: on 64-bit nanosecond clocks anything past 2262-04-11 would
/// overflow (and wrap into the past) when converted.
constexpr std::chrono::system_clock::time_point
sys_time_from_seconds(std::int64_t seconds) noexcept {
    using clock = std::chrono::system_clock;
    constexpr auto max_s =
        std::chrono::duration_cast<std::chrono::seconds>(clock::duration::max()).count();
    constexpr auto min_s =
        std::chrono::duration_cast<std::chrono::seconds>(clock::duration::min()).count();
    if (seconds >= max_s) return clock::time_point(clock::duration::max());
    if (seconds <= min_s) return clock::time_point(clock::duration::min());
    return clock::time_point(
        std::chrono::duration_cast<clock::duration>(std::chrono::seconds(seconds)));
}

namespace retry_after_parse {

/// Reads exactly `n` digits at `pos`.
inline bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) noexcept {
    if (pos + n > s.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

inline int month_index(std::string_view s) noexcept {
    static constexpr std::string_view names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; ++i)
        if (s == names[i]) return i + 1;
    return 0;
}

/// "hh:mm:ss" at `pos`.
inline bool clock_time(std::string_view s, std::size_t pos, int& h, int& m, int& sec) noexcept {
    return pos + 8 <= s.size() && digits(s, pos, 2, h) && s[pos + 2] == ':' &&
           digits(s, pos + 3, 2, m) && s[pos + 5] == ':' && digits(s, pos + 6, 2, sec) && h < 24 &&
           m < 60 && sec <= 60;
}

} // namespace retry_after_parse

/// Parses an HTTP-date in any of the three forms a recipient must accept:
/// IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94
/// 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994".
inline std::optional<std::chrono::system_clock::time_point>
parse_http_date(std::string_view s) noexcept {
    using namespace retry_after_parse;
    s = trim_ows(s);
    int day = 0, month = 0, year = 0, h = 0, m = 0, sec = 0;
    const auto comma = s.find(',');
    if (comma != std::string_view::npos) {
        auto rest = s.substr(comma + 1);
        if (rest.empty() || rest.front() != ' ') return std::nullopt;
        rest.remove_prefix(1);
        if (rest.size() == 24 && rest[2] == ' ' && rest[6] == ' ' && rest[11] == ' ' &&
            rest.substr(20) == " GMT") {
            // IMF-fixdate: "06 Nov 1994 08:49:37 GMT"
            if (!digits(rest, 0, 2, day) || !(month = month_index(rest.substr(3, 3))) ||
                !digits(rest, 7, 4, year) || !clock_time(rest, 12, h, m, sec))
                return std::nullopt;
        } else if (rest.size() == 22 && rest[2] == '-' && rest[6] == '-' && rest[9] == ' ' &&
                   rest.substr(18) == " GMT") {
            // RFC 850: "06-Nov-94 08:49:37 GMT"; two-digit years within 50 years of 2000
            if (!digits(rest, 0, 2, day) || !(month = month_index(rest.substr(3, 3))) ||
                !digits(rest, 7, 2, year) || !clock_time(rest, 10, h, m, sec))
                return std::nullopt;
            year += year < 70 ? 2000 : 1900;
        } else {
            return std::nullopt;
        }
    } else if (s.size() == 24 && s[3] == ' ' && s[7] == ' ' && s[10] == ' ' && s[19] == ' ') {
        // asctime: "Sun Nov  6 08:49:37 1994"
        if (!(month = month_index(s.substr(4, 3)))) return std::nullopt;
        if (s[8] == ' ') {
            if (!digits(s, 9, 1, day)) return std::nullopt;
        } else if (!digits(s, 8, 2, day)) {
            return std::nullopt;
        }
        if (!clock_time(s, 11, h, m, sec) || !digits(s, 20, 4, year)) return std::nullopt;
    } else {
        return std::nullopt;
    }
    if (day < 1 || day > 31) return std::nullopt;
    const auto days =
        days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    const auto seconds = days * 86400 + h * 3600 + m * 60 + sec;
    return sys_time_from_seconds(seconds);
}

/// Retry-After as a delay from `now`: delta-seconds or an HTTP-date (a date in
/// the past means "now"). Nothing when the value is malformed. Delays are
/// capped at `cap` so a hostile or confused server cannot park a client forever.
inline std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now,
                  std::chrono::milliseconds cap = std::chrono::hours(24)) noexcept {
    using namespace retry_after_parse;
    value = trim_ows(value);
    if (value.empty()) return std::nullopt;
    if (value.front() >= '0' && value.front() <= '9') {
        std::uint64_t seconds = 0;
        for (const char c : value) {
            if (c < '0' || c > '9') return std::nullopt;
            if (seconds < 100'000'000) seconds = seconds * 10 + static_cast<std::uint64_t>(c - '0');
        }
        const std::chrono::milliseconds d = std::chrono::seconds(seconds);
        return d < cap ? d : cap;
    }
    const auto when = parse_http_date(value);
    if (!when) return std::nullopt;
    if (*when <= now) return std::chrono::milliseconds(0);
    const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(*when - now);
    return d < cap ? d : cap;
}

} // namespace detail
TETHER_NAMESPACE_END

#endif
