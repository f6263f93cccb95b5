// Fuzzes what a token endpoint can send us: the HTTP response parser (fed in
// chunks of a size chosen by the first byte, and checked against a one-shot
// parse of the same bytes) and parse_token_response on the result. The rest
// of the input is also tried directly as a JSON body and as Retry-After / URL
// text. Invariants are checked with abort(), so libFuzzer reports them.
#include <tether/detail/http_response_parser.hpp>
#include <tether/token_policy/oauth2_response.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

const std::string_view redacted_secret = "s3cret-FUZZ";

void require(bool ok) {
    if (!ok) std::abort();
}

void check_result(const tether::token_result& r, const tether::oauth2_response_rules& rules) {
    require(r.detail.find(redacted_secret) == std::string::npos);
    if (!r.error) {
        require(!r.value.value.empty());
        require(r.value.lifetime.has_value());
        require(r.value.lifetime->count() > 0 && *r.value.lifetime <= rules.max_lifetime);
        for (char c : r.value.value.reveal())
            require(c > 0x20 && c < 0x7f);
        require(r.detail.empty());
    } else {
        require(!r.detail.empty());
    }
    if (r.retry_after)
        require(r.retry_after->count() >= 0 && *r.retry_after <= rules.max_retry_after);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t step = data[0] == 0 ? 1 : data[0];
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

    tether::detail::http_limits limits;
    limits.max_body_bytes = 1024; // small, so the fuzzer reaches the cap
    limits.max_header_bytes = 2048;
    limits.max_header_fields = 20;
    tether::oauth2_response_rules rules;
    rules.redact.push_back(redacted_secret);
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));

    tether::detail::http_response_parser whole(limits), pieces(limits);
    const std::size_t used = whole.feed(input.data(), input.size());
    std::size_t used_in_pieces = 0;
    for (std::size_t i = 0; i < input.size() && !pieces.done() && !pieces.failed(); i += step) {
        const std::size_t n = input.size() - i < step ? input.size() - i : step;
        used_in_pieces += pieces.feed(input.data() + i, n);
    }
    require(used <= input.size());
    whole.feed_eof();
    pieces.feed_eof();
    // Chunk boundaries must not change the outcome.
    require(whole.done() == pieces.done());
    require(whole.failed() == pieces.failed());
    require(whole.error() == pieces.error());
    require(used == used_in_pieces);
    if (whole.done()) {
        const auto& resp = whole.response();
        require(resp.body == pieces.response().body);
        require(resp.body.size() <= limits.max_body_bytes);
        require(resp.headers.size() <= limits.max_header_fields);
        require(resp.status >= 200 && resp.status <= 599);
        check_result(tether::parse_token_response(resp, rules, now), rules);
    } else {
        require(whole.failed());
        require(!whole.error_detail().empty());
    }

    // The same bytes as a body, on the success and on the error path.
    for (int status : {200, 401, 429}) {
        tether::detail::http_response resp;
        resp.status = status;
        resp.body.assign(input.data(), input.size());
        resp.headers.emplace_back("Retry-After", std::string(input.substr(0, 40)));
        check_result(tether::parse_token_response(resp, rules, now), rules);
    }

    (void)tether::detail::parse_retry_after(input, now);
    return 0;
}
