// Fuzzes ws_frame_scanner (detail/ws_frame_scanner.hpp), which tells
// beast_transport when a message may be read synchronously: against a
// reference that parses the whole input at once and checks text with
// websocketpp's UTF-8 validator (an independent implementation), the scanner,
// fed the same bytes in pieces, must never call a message whole and safe that
// is not, and must count the same whole messages. utf8_feed, resumed at a
// split point, must agree with websocketpp's validator too.
//
// Input: byte 0 picks the piece sizes, bytes 1-2 the size limit, the rest
// follows an HTTP response head as the server's frames.
#include <tether/detail/ws_frame_scanner.hpp>

#include <websocketpp/utf8_validator.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {
void require(bool ok) {
    if (!ok) std::abort();
}

struct reference {
    std::vector<std::size_t> end; // offset just past each whole message
    std::vector<bool> safe;
};

/// Frames a client accepts, in order, until the first it would fail on, a
/// close frame or the end of the input.
reference parse(const std::string& s, std::size_t at, std::uint16_t limit) {
    reference r;
    bool in_message = false, text = false, safe = false, control_before = false;
    std::uint64_t size = 0;
    std::string payload;
    while (s.size() - at >= 2) {
        const auto b0 = static_cast<unsigned char>(s[at]),
                   b1 = static_cast<unsigned char>(s[at + 1]);
        if (b1 & 0x80) break; // masked
        std::uint64_t len = b1 & 0x7fu;
        std::size_t head = 2;
        if (len == 126) {
            if (s.size() - at < 4) break;
            len = (std::uint64_t{static_cast<unsigned char>(s[at + 2])} << 8) |
                  static_cast<unsigned char>(s[at + 3]);
            if (len < 126) break;
            head = 4;
        } else if (len == 127) {
            if (s.size() - at < 10) break;
            len = 0;
            for (int i = 2; i < 10; ++i)
                len = (len << 8) | static_cast<unsigned char>(s[at + i]);
            if (len < 65536 || (len >> 63)) break;
            head = 10;
        }
        if (s.size() - at - head < len) break; // not all here
        const bool fin = (b0 & 0x80) != 0;
        const unsigned rsv = b0 & 0x70u, op = b0 & 0x0fu;
        const std::string data = s.substr(at + head, static_cast<std::size_t>(len));
        at += head + static_cast<std::size_t>(len);
        if (op >= 8) {
            if (op > 10 || !fin || len > 125 || rsv) break;
            if (op == 8) break;
            control_before = true;
            safe = false;
            continue;
        }
        if (op == 1 || op == 2) {
            if (in_message) break;
            in_message = true;
            text = op == 1;
            safe = !control_before;
            size = 0;
            payload.clear();
        } else if (op != 0 || !in_message) {
            break;
        }
        if (rsv) safe = false;
        size += len;
        if (size > limit) safe = false;
        payload += data;
        if (fin) {
            if (text && !websocketpp::utf8_validator::validate(payload)) safe = false;
            r.end.push_back(at);
            r.safe.push_back(safe);
            in_message = false;
            control_before = false;
        }
    }
    return r;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const std::string body(reinterpret_cast<const char*>(data) + 3, size - 3);

    // utf8_feed resumed at a split point agrees with websocketpp's validator
    {
        const auto* p = reinterpret_cast<const unsigned char*>(body.data());
        const std::size_t cut = body.empty() ? 0 : data[0] % (body.size() + 1);
        std::uint8_t st = 0;
        const bool ok = tether::detail::utf8_feed(st, p, p + cut) &&
                        tether::detail::utf8_feed(st, p + cut, p + body.size()) && st == 0;
        require(ok == websocketpp::utf8_validator::validate(body));
    }

    const std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    const std::string s = head + body;
    const auto limit = static_cast<std::uint16_t>((data[1] << 8) | data[2]);
    const reference ref = parse(s, head.size(), limit);

    tether::detail::ws_frame_scanner scanner(limit);
    std::uint32_t rng = data[0] * 2654435761u + 1;
    std::size_t fed = 0, read = 0, whole = 0;
    while (fed < s.size() || read < whole) {
        rng = rng * 1103515245u + 12345u;
        if (read < whole && (rng >> 16) % 2 == 0) {
            scanner.message_read();
            ++read;
        } else if (fed < s.size()) {
            std::size_t n = 1 + (rng >> 8) % 64;
            if (n > s.size() - fed) n = s.size() - fed;
            scanner.feed(s.data() + fed, n);
            fed += n;
            while (whole < ref.end.size() && ref.end[whole] <= fed)
                ++whole;
        } else {
            scanner.message_read();
            ++read;
        }
        require(scanner.pending() == whole - read);
        if (scanner.next_message_whole()) require(read < whole && ref.safe[read]);
    }
    return 0;
}
