// tether: a small, strict, incremental HTTP/1.1 response parser.
//
// Pure code (no I/O) so tests and the fuzzer drive it directly. It accepts
// what RFC 9112 requires a server to send and refuses the rest instead of
// guessing: CRLF line ends only, no obsolete line folding, no bytes that are
// not allowed in a field, Content-Length and chunked never together, no
// transfer coding but chunked. Every size is bounded by http_limits, and the
// body cap is checked before a body is read, not after.
#ifndef TETHER_DETAIL_HTTP_RESPONSE_PARSER_HPP
#define TETHER_DETAIL_HTTP_RESPONSE_PARSER_HPP

#include <tether/connect_request.hpp>
#include <tether/detail/ascii.hpp>
#include <tether/detail/wipe.hpp>
#include <tether/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN
namespace detail {

struct http_limits {
    std::size_t max_body_bytes = 64 * 1024;
    /// Status line and fields together (interim 1xx responses and chunked
    /// trailers count too).
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_header_fields = 100;
};

/// Field value and reason phrase characters: VCHAR, obs-text, SP, HTAB.
inline bool is_field_char(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
}

struct http_response {
    int status = 0;
    std::string reason;
    std::vector<http_header> headers; ///< in arrival order, names as sent
    std::string body;

    /// The first field called `name` (case-insensitive), or nullptr.
    const std::string* header(std::string_view name) const noexcept {
        for (const auto& h : headers)
            if (iequals(h.first, name)) return &h.second;
        return nullptr;
    }
};

class http_response_parser {
public:
    explicit http_response_parser(http_limits limits = {}) : limits_(limits) {}

    /// A parser for the answer to CONNECT (RFC 9110 9.3.6): the message
    /// ends with its header section whatever the status (a 2xx's following
    /// bytes are the tunnel's; a refusal's body is of no use and not read).
    static http_response_parser for_connect(http_limits limits = {}) {
        http_response_parser p(limits);
        p.header_only_ = true;
        return p;
    }

    /// Consumes bytes until the message is complete or an error is found;
    /// returns how many it used. Bytes after the end of the message are not
    /// consumed (the caller closes the connection).
    std::size_t feed(const char* data, std::size_t n) {
        std::size_t i = 0;
        while (i < n && state_ != state::done && state_ != state::failed) {
            switch (state_) {
            case state::status_line:
            case state::field_line:
            case state::chunk_size_line:
            case state::trailer_line: i += take_line(data + i, n - i); break;
            case state::body_length: i += take_body_length(data + i, n - i); break;
            case state::body_until_close: i += take_body_until_close(data + i, n - i); break;
            case state::chunk_data: i += take_chunk_data(data + i, n - i); break;
            case state::chunk_data_cr:
            case state::chunk_data_lf: i += take_chunk_crlf(data[i]); break;
            case state::done:
            case state::failed: break;
            }
        }
        return i;
    }
    std::size_t feed(std::string_view s) { return feed(s.data(), s.size()); }

    /// The peer closed the connection: ends a body delimited by the close,
    /// and is an error anywhere else before the end of the message.
    void feed_eof() {
        if (state_ == state::body_until_close)
            state_ = state::done;
        else if (state_ != state::done && state_ != state::failed)
            fail(tether::error::malformed_http_response,
                 "connection closed before the response was complete");
    }

    bool done() const noexcept { return state_ == state::done; }
    /// The body ends only when the connection does (no length, not chunked).
    bool reading_until_close() const noexcept { return state_ == state::body_until_close; }
    bool failed() const noexcept { return state_ == state::failed; }
    std::error_code error() const noexcept { return error_; }
    /// Why it failed, for logs. Never quotes the response's bytes.
    const std::string& error_detail() const noexcept { return error_detail_; }

    http_response& response() noexcept { return response_; }
    const http_response& response() const noexcept { return response_; }

    /// Overwrites what the parser holds of the response (the body may be a
    /// token): for a response that is abandoned rather than handed on.
    void wipe() noexcept {
        detail::wipe(response_.body);
        detail::wipe(line_);
    }

private:
    enum class state : unsigned char {
        status_line,
        field_line,
        body_length,
        body_until_close,
        chunk_size_line,
        chunk_data,
        chunk_data_cr,
        chunk_data_lf,
        trailer_line,
        done,
        failed,
    };

    // Longest chunk-size line (hex size plus extensions) we accept.
    static constexpr std::size_t max_chunk_line = 1024;

    void fail(tether::error e, std::string why) {
        state_ = state::failed;
        error_ = e;
        error_detail_ = std::move(why);
    }

    // Collects one CRLF-terminated line, then hands it to the current state.
    std::size_t take_line(const char* p, std::size_t n) {
        const bool in_header = state_ != state::chunk_size_line;
        std::size_t i = 0;
        while (i < n) {
            const char c = p[i++];
            if (in_header) {
                if (++header_bytes_ > limits_.max_header_bytes) {
                    fail(tether::error::malformed_http_response,
                         "header section larger than " + std::to_string(limits_.max_header_bytes) +
                             " bytes");
                    return i;
                }
            } else if (line_.size() >= max_chunk_line) {
                fail(tether::error::malformed_http_response, "chunk size line too long");
                return i;
            }
            if (c != '\n') {
                line_.push_back(c);
                continue;
            }
            if (line_.empty() || line_.back() != '\r') {
                fail(tether::error::malformed_http_response, "line not terminated by CRLF");
                return i;
            }
            line_.pop_back();
            std::string line;
            line.swap(line_);
            on_line(line);
            return i;
        }
        return i;
    }

    void on_line(std::string_view line) {
        switch (state_) {
        case state::status_line: on_status_line(line); break;
        case state::field_line: on_field_line(line); break;
        case state::chunk_size_line: on_chunk_size_line(line); break;
        case state::trailer_line: on_trailer_line(line); break;
        default: break;
        }
    }

    void on_status_line(std::string_view line) {
        // HTTP-version SP 3DIGIT SP [reason]; "HTTP/1.1 200" without the
        // second SP is common enough to accept.
        if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !is_digit(line[7]) ||
            line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11])) {
            fail(tether::error::malformed_http_response, "invalid status line");
            return;
        }
        const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        if (status < 100 || status > 599) {
            fail(tether::error::malformed_http_response, "status code out of range");
            return;
        }
        std::string_view reason;
        if (line.size() > 12) {
            if (line[12] != ' ') {
                fail(tether::error::malformed_http_response, "invalid status line");
                return;
            }
            reason = line.substr(13);
            for (char c : reason)
                if (!is_field_char(c)) {
                    fail(tether::error::malformed_http_response,
                         "invalid character in reason phrase");
                    return;
                }
        }
        response_.status = status;
        response_.reason.assign(reason.data(), reason.size());
        state_ = state::field_line;
    }

    bool parse_field(std::string_view line, std::string_view& name, std::string_view& value) {
        if (line.front() == ' ' || line.front() == '\t') {
            fail(tether::error::malformed_http_response, "obsolete line folding in a header field");
            return false;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            fail(tether::error::malformed_http_response, "header field without a name");
            return false;
        }
        name = line.substr(0, colon);
        for (char c : name)
            if (!is_tchar(c)) {
                fail(tether::error::malformed_http_response,
                     "invalid character in a header field name");
                return false;
            }
        value = trim_ows(line.substr(colon + 1));
        for (char c : value)
            if (!is_field_char(c)) {
                fail(tether::error::malformed_http_response,
                     "invalid character in a header field value");
                return false;
            }
        return true;
    }

    void on_field_line(std::string_view line) {
        if (line.empty()) {
            end_of_header();
            return;
        }
        if (response_.headers.size() >= limits_.max_header_fields) {
            fail(tether::error::malformed_http_response,
                 "more than " + std::to_string(limits_.max_header_fields) + " header fields");
            return;
        }
        std::string_view name, value;
        if (!parse_field(line, name, value)) return;
        response_.headers.emplace_back(std::string(name), std::string(value));
    }

    void end_of_header() {
        const int status = response_.status;
        if (status == 101) {
            fail(tether::error::malformed_http_response, "unexpected protocol switch (101)");
            return;
        }
        if (status < 200) {
            // Interim response: the real one follows on the same connection.
            response_ = http_response{};
            state_ = state::status_line;
            return;
        }
        if (header_only_) {
            state_ = state::done;
            return;
        }

        bool has_length = false;
        std::uint64_t length = 0;
        bool chunked = false;
        bool has_transfer_encoding = false;
        for (const auto& [name, value] : response_.headers) {
            if (iequals(name, "Content-Length")) {
                std::uint64_t v = 0;
                if (!parse_decimal(value, v)) {
                    fail(tether::error::malformed_http_response, "invalid Content-Length");
                    return;
                }
                if (has_length && v != length) {
                    fail(tether::error::malformed_http_response,
                         "conflicting Content-Length fields");
                    return;
                }
                has_length = true;
                length = v;
            } else if (iequals(name, "Transfer-Encoding")) {
                // Only "chunked", once: anything else (gzip, a list) we cannot decode.
                if (has_transfer_encoding || !iequals(value, "chunked")) {
                    fail(tether::error::malformed_http_response, "unsupported Transfer-Encoding");
                    return;
                }
                has_transfer_encoding = chunked = true;
            }
        }
        if (has_length && chunked) {
            fail(tether::error::malformed_http_response,
                 "both Content-Length and Transfer-Encoding");
            return;
        }
        if (status == 204 || status == 304) {
            state_ = state::done;
        } else if (chunked) {
            state_ = state::chunk_size_line;
        } else if (has_length) {
            if (length > limits_.max_body_bytes) {
                fail(tether::error::response_too_large,
                     "Content-Length " + std::to_string(length) + " exceeds the limit of " +
                         std::to_string(limits_.max_body_bytes) + " bytes");
                return;
            }
            remaining_ = length;
            response_.body.reserve(static_cast<std::size_t>(length));
            state_ = length == 0 ? state::done : state::body_length;
        } else {
            state_ = state::body_until_close;
        }
    }

    std::size_t take_body_length(const char* p, std::size_t n) {
        const std::size_t k = n < remaining_ ? n : static_cast<std::size_t>(remaining_);
        append_wiping(response_.body, p, k);
        remaining_ -= k;
        if (remaining_ == 0) state_ = state::done;
        return k;
    }

    std::size_t take_body_until_close(const char* p, std::size_t n) {
        if (response_.body.size() + n > limits_.max_body_bytes) {
            fail_too_large();
            return n;
        }
        append_wiping(response_.body, p, n);
        return n;
    }

    void fail_too_large() {
        fail(tether::error::response_too_large,
             "body exceeds the limit of " + std::to_string(limits_.max_body_bytes) + " bytes");
    }

    void on_chunk_size_line(std::string_view line) {
        // chunk-size [ ; chunk-ext ]: extensions are allowed and ignored.
        std::size_t i = 0;
        std::uint64_t size = 0;
        while (i < line.size() && hex_value(line[i]) >= 0) {
            if (i == 15) { // 15 hex digits is far beyond any body we take
                fail(tether::error::malformed_http_response, "chunk size too large");
                return;
            }
            size = size * 16 + static_cast<std::uint64_t>(hex_value(line[i]));
            ++i;
        }
        if (i == 0) {
            fail(tether::error::malformed_http_response, "invalid chunk size");
            return;
        }
        std::string_view rest = line.substr(i);
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t'))
            rest.remove_prefix(1);
        if (!rest.empty()) {
            if (rest.front() != ';') {
                fail(tether::error::malformed_http_response, "invalid chunk size");
                return;
            }
            for (char c : rest)
                if (!is_field_char(c)) {
                    fail(tether::error::malformed_http_response,
                         "invalid character in a chunk extension");
                    return;
                }
        }
        if (size == 0) {
            state_ = state::trailer_line;
            return;
        }
        if (size > limits_.max_body_bytes - response_.body.size()) {
            fail_too_large();
            return;
        }
        remaining_ = size;
        state_ = state::chunk_data;
    }

    std::size_t take_chunk_data(const char* p, std::size_t n) {
        const std::size_t k = n < remaining_ ? n : static_cast<std::size_t>(remaining_);
        append_wiping(response_.body, p, k);
        remaining_ -= k;
        if (remaining_ == 0) state_ = state::chunk_data_cr;
        return k;
    }

    std::size_t take_chunk_crlf(char c) {
        if (state_ == state::chunk_data_cr && c == '\r') {
            state_ = state::chunk_data_lf;
        } else if (state_ == state::chunk_data_lf && c == '\n') {
            state_ = state::chunk_size_line;
        } else {
            fail(tether::error::malformed_http_response, "chunk data not followed by CRLF");
        }
        return 1;
    }

    void on_trailer_line(std::string_view line) {
        if (line.empty()) {
            state_ = state::done;
            return;
        }
        // Trailers are checked for syntax and dropped: nothing we use lives there.
        std::string_view name, value;
        parse_field(line, name, value);
    }

    static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
    static int hex_value(char c) noexcept {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    static bool parse_decimal(std::string_view s, std::uint64_t& out) noexcept {
        if (s.empty() || s.size() > 18) return false; // 18 digits cannot overflow
        std::uint64_t v = 0;
        for (char c : s) {
            if (!is_digit(c)) return false;
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        out = v;
        return true;
    }

    http_limits limits_;
    bool header_only_ = false;
    state state_ = state::status_line;
    std::string line_;
    std::size_t header_bytes_ = 0;
    std::uint64_t remaining_ = 0;
    http_response response_;
    std::error_code error_;
    std::string error_detail_;
};

} // namespace detail
TETHER_NAMESPACE_END

#endif
