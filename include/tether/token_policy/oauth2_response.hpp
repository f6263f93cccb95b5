// tether: turning a token endpoint's HTTP response into a token_result.
//
// A pure function (no I/O, the current time passed in) so that tests and the
// fuzzer exercise exactly what oauth2_client_credentials runs.
//
// | response                                                 | token_result.error             |
// |----------------------------------------------------------|--------------------------------|
// | 2xx, JSON object, non-empty `access_token`               | none (see below)               |
// | 2xx, anything else (not JSON, no token, bad expires_in)  | malformed_token_response       |
// | 429 or 503                                               | rate_limited (see below)       |
// | `error`: invalid_client, invalid_grant, unauthorized_client | invalid_credentials (permanent) |
// | 400, 401 or 403                                          | invalid_credentials (permanent)|
// | any other status (3xx, other 4xx, 5xx)                   | token_request_failed           |
//
// A token's lifetime is `expires_in` (a JSON number or a decimal string),
// else the default; rate_limited carries
// retry_after from the Retry-After header.
#ifndef TETHER_TOKEN_POLICY_OAUTH2_RESPONSE_HPP
#define TETHER_TOKEN_POLICY_OAUTH2_RESPONSE_HPP

#include <tether/detail/ascii.hpp>
#include <tether/detail/http_response_parser.hpp>
#include <tether/detail/retry_after.hpp>
#include <tether/detail/wipe.hpp>
#include <tether/token.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

TETHER_NAMESPACE_BEGIN

struct oauth2_response_rules {
    /// Lifetime when the response has no `expires_in`.
    std::chrono::seconds default_lifetime{3600};
    /// Longer announced lifetimes are cut to this (keeps time arithmetic sane).
    std::chrono::seconds max_lifetime{std::chrono::hours(24 * 366)};
    /// Longer Retry-After values are cut to this.
    std::chrono::seconds max_retry_after{std::chrono::hours(1)};
    /// Strings that must never appear in a detail (the client secret): a
    /// server echoing one in error_description gets it replaced by [redacted].
    std::vector<std::string_view> redact;
};

namespace detail {

/// Text from the server made safe for a log line: redacted strings removed
/// first, then non-printable bytes replaced and the length capped.
inline std::string log_safe(std::string s, const std::vector<std::string_view>& redact,
                            std::size_t max = 200) {
    for (std::string_view r : redact) {
        if (r.empty()) continue;
        for (auto pos = s.find(r); pos != std::string::npos; pos = s.find(r, pos + 10))
            s.replace(pos, r.size(), "[redacted]");
    }
    std::string out;
    for (char c : s) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
    }
    return out;
}

} // namespace detail

/// The token_result for a complete HTTP response from a token endpoint.
/// `detail` never contains the token, the response body or a redacted string.
inline token_result parse_token_response(const detail::http_response& response,
                                         const oauth2_response_rules& rules,
                                         std::chrono::system_clock::time_point now) {
    using nlohmann::json;
    const int status = response.status;
    const std::string where = "token endpoint answered HTTP " + std::to_string(status);
    json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    // The DOM holds a copy of the token: wipe it whatever path we leave by.
    // (nlohmann's lexer keeps short-lived copies of the last tokens it read;
    // tether cannot reach those: see README, "Secrets in memory".)
    struct dom_wiper {
        json& j;
        ~dom_wiper() { wipe_strings(j); }
        static void wipe_strings(json& root) noexcept {
            try {
                std::vector<json*> todo{&root}; // iterative: nesting depth is the server's choice
                while (!todo.empty()) {
                    json* v = todo.back();
                    todo.pop_back();
                    if (v->is_string())
                        detail::wipe(*v->get_ptr<std::string*>());
                    else if (v->is_structured())
                        for (auto& e : *v)
                            todo.push_back(&e);
                }
            } catch (...) { // out of memory for the work list: nothing more can be done
            }
        }
    } wipe_on_exit{body};

    if (status >= 200 && status < 300) {
        auto malformed = [&](const std::string& why) {
            return token_result::failure(make_error_code(error::malformed_token_response),
                                         where + ": " + why);
        };
        if (body.is_discarded()) return malformed("the body is not valid JSON");
        if (!body.is_object()) return malformed("the body is not a JSON object");
        const auto at = body.find("access_token");
        if (at == body.end()) return malformed("no access_token in the response");
        if (!at->is_string()) return malformed("access_token is not a string");
        const auto& value = at->get_ref<const std::string&>();
        if (value.empty()) return malformed("access_token is empty");
        if (!detail::is_credential_text(value))
            return malformed("access_token contains characters not allowed in an HTTP header");
        const auto type = body.find("token_type");
        if (type != body.end() && !type->is_string())
            return malformed("token_type is not a string");

        std::chrono::seconds lifetime = rules.default_lifetime;
        const auto expires = body.find("expires_in");
        if (expires != body.end()) {
            if (expires->is_number_integer()) {
                // Read as signed or unsigned per its JSON representation, so a
                // huge unsigned value cannot wrap into a negative one.
                if (expires->is_number_unsigned()) {
                    const auto v = expires->get<std::uint64_t>();
                    if (v == 0) return malformed("expires_in is 0");
                    lifetime = v > static_cast<std::uint64_t>(rules.max_lifetime.count())
                                   ? rules.max_lifetime
                                   : std::chrono::seconds(static_cast<std::int64_t>(v));
                } else {
                    const auto v = expires->get<std::int64_t>();
                    if (v <= 0)
                        return malformed("expires_in is not positive (" + std::to_string(v) + ")");
                    lifetime = std::chrono::seconds(v) > rules.max_lifetime
                                   ? rules.max_lifetime
                                   : std::chrono::seconds(v);
                }
            } else if (expires->is_number_float()) {
                const double v = expires->get<double>();
                if (!(v >= 1.0)) return malformed("expires_in is less than one second");
                lifetime = v >= static_cast<double>(rules.max_lifetime.count())
                               ? rules.max_lifetime
                               : std::chrono::seconds(static_cast<std::int64_t>(std::floor(v)));
            } else if (expires->is_string()) {
                // Some identity providers send "3600": accept plain decimal digits only.
                const auto& text = expires->get_ref<const std::string&>();
                if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
                    return malformed("expires_in is not a decimal number");
                std::uint64_t v = 0;
                const auto max = static_cast<std::uint64_t>(rules.max_lifetime.count());
                for (const char c : text) {
                    v = v * 10 + static_cast<std::uint64_t>(c - '0');
                    if (v > max) break; // capped below; no overflow
                }
                if (v == 0) return malformed("expires_in is 0");
                lifetime = v > max ? rules.max_lifetime
                                   : std::chrono::seconds(static_cast<std::int64_t>(v));
            } else {
                return malformed(std::string("expires_in is ") + expires->type_name() +
                                 ", not a number");
            }
        }
        token t;
        t.value = secret(value);
        t.lifetime = lifetime;
        t.fresh = true;
        return token_result::success(std::move(t));
    }

    std::string oauth_error;
    std::string description;
    if (body.is_object()) {
        const auto e = body.find("error");
        if (e != body.end() && e->is_string()) oauth_error = e->get<std::string>();
        const auto d = body.find("error_description");
        if (d != body.end() && d->is_string()) description = d->get<std::string>();
    }
    std::string detail = where;
    if (!oauth_error.empty())
        detail += ", error \"" + detail::log_safe(oauth_error, rules.redact, 64) + "\"";
    if (!description.empty()) detail += ": " + detail::log_safe(description, rules.redact);

    std::optional<std::chrono::milliseconds> retry_after;
    if (const std::string* h = response.header("Retry-After")) {
        retry_after = detail::parse_retry_after(*h, now, rules.max_retry_after);
    }

    error code = error::token_request_failed;
    if (status == 429 || status == 503) {
        code = error::rate_limited;
    } else if (oauth_error == "invalid_client" || oauth_error == "invalid_grant" ||
               oauth_error == "unauthorized_client") {
        code = error::invalid_credentials;
    } else if ((status == 400 || status == 401 || status == 403) &&
               oauth_error != "temporarily_unavailable") {
        code = error::invalid_credentials;
    } else if (status >= 300 && status < 400) {
        detail += " (redirects are not followed: they would resend the credentials elsewhere)";
    }
    token_result r = token_result::failure(make_error_code(code), std::move(detail));
    r.retry_after = retry_after;
    return r;
}

TETHER_NAMESPACE_END

#endif
