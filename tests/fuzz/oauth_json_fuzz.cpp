// Fuzzes the OAuth token response JSON (parse_token_response) directly, with
// the input as the body of a 200, 400 and 503 answer: a success always has a
// header-safe token and a bounded lifetime; no detail quotes a redacted string.
#include <tether/detail/ascii.hpp>
#include <tether/token_policy/oauth2_response.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    tether::oauth2_response_rules rules;
    rules.redact.push_back("client-secret-FUZZ");
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
    for (int status : {200, 400, 503}) {
        tether::detail::http_response resp;
        resp.status = status;
        resp.body.assign(reinterpret_cast<const char*>(data), size);
        const auto r = tether::parse_token_response(resp, rules, now);
        if (r.detail.find("client-secret-FUZZ") != std::string::npos) std::abort();
        if (!r.error) {
            if (status != 200 || !tether::detail::is_credential_text(r.value.value.reveal()))
                std::abort();
            if (!r.value.lifetime || r.value.lifetime->count() <= 0 ||
                *r.value.lifetime > rules.max_lifetime)
                std::abort();
        } else if (r.detail.empty()) {
            std::abort();
        }
    }
    return 0;
}
