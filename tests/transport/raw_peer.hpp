// A scripted WebSocket "server" speaking raw bytes on 127.0.0.1, for what a
// well-behaved library refuses to send: invalid close frames, unoffered
// subprotocols, a handshake that never comes, a close that is never answered.
// Written once over an Asio flavour (`Net`): standalone Asio here
// (test_support::raw_peer); the Beast tests instantiate it over Boost.Asio.
#ifndef TETHER_TESTS_TRANSPORT_RAW_PEER_HPP
#define TETHER_TESTS_TRANSPORT_RAW_PEER_HPP

#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

namespace test_support {

/// base64(SHA-1(key + RFC 6455 GUID)), the Sec-WebSocket-Accept value.
inline std::string websocket_accept(const std::string& key) {
    const std::string in = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(in.data(), in.size(), digest, &n, EVP_sha1(), nullptr);
    unsigned char out[64];
    const int len = EVP_EncodeBlock(out, digest, static_cast<int>(n));
    return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
}

/// One unmasked server frame (payload under 126 bytes).
inline std::string server_frame(unsigned char opcode, const std::string& payload) {
    std::string f;
    f += static_cast<char>(0x80 | opcode);
    f += static_cast<char>(payload.size());
    return f + payload;
}

inline std::string close_frame(std::uint16_t code, const std::string& reason) {
    std::string p;
    p += static_cast<char>(code >> 8);
    p += static_cast<char>(code & 0xff);
    return server_frame(0x8, p + reason);
}

/// Standalone Asio for basic_raw_peer. A flavour names the io_context, the
/// TCP protocol, the error code, the stream buffer, make_address and buffer;
/// async_read_until, async_write and buffers_begin are found by ADL.
struct standalone_asio {
    using io_context = asio::io_context;
    using tcp = asio::ip::tcp;
    using error_code = std::error_code;
    using streambuf = asio::streambuf;
    static auto make_address(const std::string& a) { return asio::ip::make_address(a); }
    template <class T> static auto buffer(T& data) { return asio::buffer(data); }
};

template <class Net> class basic_raw_peer {
    using tcp = typename Net::tcp;
    using error_code = typename Net::error_code;

public:
    explicit basic_raw_peer(typename Net::io_context& io, const std::string& address = "127.0.0.1")
        : acceptor_(io, typename tcp::endpoint(Net::make_address(address), 0)) {
        accept();
    }

    /// Raw bytes written as soon as a connection is accepted (e.g. a TLS alert).
    std::string greeting;
    /// false: read the upgrade request and never answer it.
    bool answer_handshake = true;
    /// When set: the whole answer to the upgrade request instead of a 101
    /// (e.g. a refusal with its body), written at once.
    std::string response;
    /// Appended to the 101 response's headers, each ending in "\r\n".
    std::string extra_response_headers;
    /// Raw bytes written right after the 101 response.
    std::string after_handshake;

    int connections = 0;
    std::string request;  ///< the upgrade request as received
    std::string received; ///< bytes received after the request
    bool peer_closed = false;

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::string url() const {
        const auto a = acceptor_.local_endpoint().address();
        const std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
        return "ws://" + host + ":" + std::to_string(port()) + "/";
    }

private:
    void accept() {
        acceptor_.async_accept([this](const error_code& ec, typename tcp::socket s) {
            if (ec) return;
            ++connections;
            socket_ = std::make_shared<typename tcp::socket>(std::move(s));
            if (!greeting.empty())
                async_write(*socket_, Net::buffer(greeting),
                            [s = socket_](const error_code&, std::size_t) {});
            read_request();
        });
    }

    void read_request() {
        async_read_until(*socket_, buf_, "\r\n\r\n",
                         [this, s = socket_](const error_code& ec, std::size_t n) {
                             if (ec) {
                                 peer_closed = true;
                                 return;
                             }
                             const auto data = buf_.data();
                             const std::string all(buffers_begin(data), buffers_end(data));
                             request = all.substr(0, n);
                             received = all.substr(n);
                             buf_.consume(buf_.size());
                             if (answer_handshake) respond();
                             read_rest();
                         });
    }

    void respond() {
        std::string key;
        const auto at = request.find("Sec-WebSocket-Key: ");
        if (at != std::string::npos)
            key = request.substr(at + 19, request.find("\r\n", at) - at - 19);
        if (!response.empty())
            response_ = response;
        else
            response_ =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " +
                websocket_accept(key) + "\r\n" + extra_response_headers + "\r\n" + after_handshake;
        async_write(*socket_, Net::buffer(response_),
                    [s = socket_](const error_code&, std::size_t) {});
    }

    void read_rest() {
        socket_->async_read_some(Net::buffer(chunk_),
                                 [this, s = socket_](const error_code& ec, std::size_t n) {
                                     if (ec) {
                                         peer_closed = true;
                                         return;
                                     }
                                     received.append(chunk_.data(), n);
                                     read_rest();
                                 });
    }

    typename tcp::acceptor acceptor_;
    std::shared_ptr<typename tcp::socket> socket_;
    typename Net::streambuf buf_;
    std::string response_;
    std::array<char, 4096> chunk_{};
};

using raw_peer = basic_raw_peer<standalone_asio>;

} // namespace test_support

#endif
