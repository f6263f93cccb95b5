// tether: follows the WebSocket frames a client receives (RFC 6455 section
// 5.2) to tell whether the next message is already whole in what was read.
// No I/O and no Boost, so it is tested and fuzzed on its own.
//
// beast_transport reads messages with Beast's asynchronous read. Its
// completion goes through the scheduler even when the message was already in
// Beast's read buffer, and each trip there costs about as much as the message
// (a queue and an epoll_wait per message of 64 bytes). So, after a message,
// the transport reads the ones already here synchronously, and this class
// tells which those are. It sees every byte on its way from the socket to
// Beast, from the start of the HTTP response on, and keeps for each message
// not read yet whether a synchronous read of it is safe:
//   - all its frames are in;
//   - no control frame comes before it or between its frames: Beast's
//     synchronous read answers a ping with a blocking write, which could also
//     interleave with an asynchronous write in progress;
//   - nothing in it can make Beast fail the connection, which a synchronous
//     read does with a blocking close-frame write: every header is one a
//     client accepts (RSV bits clear, a data opcode that fits where it is,
//     unmasked, the length in its shortest form), the payload is within
//     `limit` (at most the transport's max_message_size), and a text
//     message is valid UTF-8 (RFC 3629).
// Anything else goes to the asynchronous read, which handles it as before. A
// frame the scanner cannot follow (one Beast fails the connection on) or a
// close frame stops it: the messages whole before it still count, nothing
// after it is read synchronously.
#ifndef TETHER_DETAIL_WS_FRAME_SCANNER_HPP
#define TETHER_DETAIL_WS_FRAME_SCANNER_HPP

#include <tether/version.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// One step of an RFC 3629 UTF-8 check over a chunk, resumable: `state` is 0
/// between characters. False when the bytes cannot be UTF-8 whatever follows.
inline bool utf8_feed(std::uint8_t& state, const unsigned char* p,
                      const unsigned char* end) noexcept {
    // state: bits 0-1 continuation bytes still needed; bits 2-4 the range of
    // the next one (0: 80-BF, 1: A0-BF after E0, 2: 80-9F after ED,
    // 3: 90-BF after F0, 4: 80-8F after F4)
    static const unsigned char lo[] = {0x80, 0xa0, 0x80, 0x90, 0x80};
    static const unsigned char hi[] = {0xbf, 0xbf, 0x9f, 0xbf, 0x8f};
    unsigned need = state & 3u, range = state >> 2;
    while (p < end) {
        if (need == 0) {
            while (end - p >= 8) { // ASCII, eight bytes at a time
                std::uint64_t w;
                std::memcpy(&w, p, 8);
                if (w & 0x8080808080808080u) break;
                p += 8;
            }
            if (p == end) break;
            const unsigned char c = *p++;
            if (c < 0x80) continue;
            if (c >= 0xc2 && c <= 0xdf) {
                need = 1;
                range = 0;
            } else if (c >= 0xe0 && c <= 0xef) {
                need = 2;
                range = c == 0xe0 ? 1 : c == 0xed ? 2 : 0;
            } else if (c >= 0xf0 && c <= 0xf4) {
                need = 3;
                range = c == 0xf0 ? 3 : c == 0xf4 ? 4 : 0;
            } else {
                return false;
            }
        } else {
            const unsigned char c = *p++;
            if (c < lo[range] || c > hi[range]) return false;
            range = 0;
            --need;
        }
    }
    state = static_cast<std::uint8_t>(need | (range << 2));
    return true;
}

class ws_frame_scanner {
public:
    /// `limit`: the largest payload a message read synchronously may have.
    explicit ws_frame_scanner(std::uint16_t limit = 0) noexcept
        : limit_(limit), front_safe_(false), in_message_(false), text_(false), message_safe_(false),
          control_seen_(false), frame_control_(false), frame_fin_(false), frame_close_(false) {}

    /// Bytes read from the connection, in order, from the first byte of the
    /// HTTP response on.
    void feed(const void* data, std::size_t n) noexcept {
        const auto* p = static_cast<const unsigned char*>(data);
        const auto* end = p + n;
        while (p < end && mode_ != mode::stopped) {
            switch (mode_) {
            case mode::http: p = find_end_of_headers(p, end); break;
            case mode::header: p = take_header(p, end); break;
            case mode::payload: p = take_payload(p, end); break;
            case mode::stopped: break;
            }
        }
    }

    /// True when the next message not read yet is whole and safe to read
    /// synchronously.
    bool next_message_whole() const noexcept { return nruns_ > 0 && front_safe_; }

    /// A message was read (by either read). Reading one the scanner did not
    /// see whole stops it.
    void message_read() noexcept {
        if (nruns_ == 0) {
            mode_ = mode::stopped;
            return;
        }
        if (--runs_[0] != 0) return;
        for (unsigned i = 1; i < nruns_; ++i)
            runs_[i - 1] = runs_[i];
        --nruns_;
        front_safe_ = !front_safe_;
    }

    /// Sees no more frames (the messages whole before still count).
    bool stopped() const noexcept { return mode_ == mode::stopped; }
    /// Whole messages seen and not read yet.
    std::size_t pending() const noexcept {
        std::size_t n = 0;
        for (unsigned i = 0; i < nruns_; ++i)
            n += runs_[i];
        return n;
    }

private:
    enum class mode : unsigned char { http, header, payload, stopped };

    const unsigned char* find_end_of_headers(const unsigned char* p, const unsigned char* end) {
        static const char crlfcrlf[] = "\r\n\r\n";
        while (p < end) {
            const char c = static_cast<char>(*p++);
            if (c == crlfcrlf[matched_])
                ++matched_;
            else
                matched_ = c == '\r' ? 1 : 0;
            if (matched_ == 4) {
                start_header();
                break;
            }
        }
        return p;
    }

    void start_header() noexcept {
        mode_ = mode::header;
        have_ = 0;
    }

    const unsigned char* take_header(const unsigned char* p, const unsigned char* end) {
        // the first two bytes are kept; an extended length builds up in left_
        while (p < end) {
            const unsigned char c = *p++;
            if (have_ == 0) {
                b0_ = c;
            } else if (have_ == 1) {
                b1_ = c;
                if (c & 0x80) return stop(p); // masked: a client fails that
                left_ = (c & 0x7fu) < 126 ? (c & 0x7fu) : 0;
            } else {
                left_ = (left_ << 8) | c;
            }
            ++have_;
            const unsigned len7 = b1_ & 0x7fu;
            if (have_ >= 2 && have_ == (len7 == 126 ? 4 : len7 == 127 ? 10 : 2))
                return end_header(p);
        }
        return p;
    }

    const unsigned char* end_header(const unsigned char* p) {
        const std::uint64_t len = left_;
        const unsigned len7 = b1_ & 0x7fu;
        if (len7 == 126 && len < 126) return stop(p);
        if (len7 == 127 && (len < 65536 || (len >> 63) != 0)) return stop(p);
        const bool fin = (b0_ & 0x80) != 0;
        const unsigned rsv = b0_ & 0x70u, op = b0_ & 0x0fu;
        frame_control_ = op >= 8;
        frame_fin_ = fin;
        if (frame_control_) {
            if (op > 10 || !fin || len > 125 || rsv != 0) return stop(p);
            control_seen_ = true;
            message_safe_ = false;
            frame_close_ = op == 8;
        } else if (op == 1 || op == 2) {
            if (in_message_) return stop(p); // a new message inside one
            in_message_ = true;
            text_ = op == 1;
            message_safe_ = !control_seen_;
            size_ = 0;
            utf8_ = 0;
        } else if (op == 0) {
            if (!in_message_) return stop(p); // a continuation of nothing
        } else {
            return stop(p); // reserved opcode
        }
        if (!frame_control_) {
            if (rsv != 0) message_safe_ = false; // compressed (RSV1), or refused
            if (len > static_cast<std::uint64_t>(limit_ - size_))
                message_safe_ = false;
            else
                size_ = static_cast<std::uint16_t>(size_ + len);
        }
        left_ = len;
        mode_ = mode::payload;
        if (left_ == 0) end_frame();
        return p;
    }

    const unsigned char* take_payload(const unsigned char* p, const unsigned char* end) {
        const std::size_t avail = static_cast<std::size_t>(end - p);
        const std::size_t n = left_ < avail ? static_cast<std::size_t>(left_) : avail;
        if (!frame_control_ && text_ && message_safe_ && !utf8_feed(utf8_, p, p + n))
            message_safe_ = false;
        left_ -= n;
        p += n;
        if (left_ == 0) end_frame();
        return p;
    }

    void end_frame() noexcept {
        if (frame_control_) {
            if (frame_close_) {
                mode_ = mode::stopped; // nothing after a close frame matters
                return;
            }
        } else if (frame_fin_) {
            if (text_ && utf8_ != 0) message_safe_ = false; // ends inside a character
            push(message_safe_);
            in_message_ = false;
            control_seen_ = false;
        }
        start_header();
    }

    /// Messages not read yet, as runs of safe and unsafe ones: runs_[0] is
    /// the front run (safe when front_safe_), and kinds alternate. When the
    /// runs are used up, a later safe message joins an unsafe run: that
    /// only sends it to the asynchronous read.
    void push(bool safe) noexcept {
        if (nruns_ == 0) {
            runs_[0] = 1;
            nruns_ = 1;
            front_safe_ = safe;
            return;
        }
        const unsigned last = nruns_ - 1u;
        const bool last_safe = front_safe_ == ((last & 1u) == 0);
        if (last_safe == safe || (!last_safe && nruns_ == runs_.size())) {
            if (runs_[last] == 0xffff) {
                mode_ = mode::stopped;
                return;
            }
            ++runs_[last];
        } else if (nruns_ < runs_.size()) {
            runs_[nruns_++] = 1;
        } else { // full, a safe run last and an unsafe message: it joins the run before
            const unsigned merged = runs_[last - 1] + runs_[last] + 1u;
            if (merged > 0xffff) {
                mode_ = mode::stopped;
                return;
            }
            runs_[last - 1] = static_cast<std::uint16_t>(merged);
            --nruns_;
        }
    }

    const unsigned char* stop(const unsigned char* p) noexcept {
        mode_ = mode::stopped;
        return p;
    }

    // 32 bytes: there is one in every connection
    std::uint64_t left_ = 0; // payload bytes of the current frame still to come
    std::uint16_t limit_;    // the largest payload read synchronously
    std::uint16_t size_ = 0; // payload of the current message so far (up to limit_)
    std::array<std::uint16_t, 4> runs_{};
    unsigned char b0_ = 0, b1_ = 0; // the current frame header's first two bytes
    unsigned char have_ = 0;        // header bytes seen
    unsigned char matched_ = 0;     // of "\r\n\r\n", in HTTP mode
    unsigned char nruns_ = 0;
    std::uint8_t utf8_ = 0;
    mode mode_ = mode::http;
    // (bit-fields: set by the constructor, C++17 has no initializers for them)
    bool front_safe_ : 1;
    bool in_message_ : 1;
    bool text_ : 1;
    bool message_safe_ : 1;
    bool control_seen_ : 1;
    bool frame_control_ : 1;
    bool frame_fin_ : 1;
    bool frame_close_ : 1;
};

} // namespace detail
TETHER_NAMESPACE_END

#endif
