// Test-only: a scripted HTTP(S) token endpoint on 127.0.0.1, on its own thread.
#ifndef TETHER_TESTS_TOKEN_LOCAL_TOKEN_ENDPOINT_HPP
#define TETHER_TESTS_TOKEN_LOCAL_TOKEN_ENDPOINT_HPP

#include "test_pki.hpp"

#include <tether/connect_request.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tether_test {

struct received_request {
    std::string method;
    std::string target;
    std::vector<tether::http_header> headers;
    std::string body;

    std::string header(const std::string& name) const {
        for (const auto& h : headers) {
            if (h.first.size() != name.size()) continue;
            bool same = true;
            for (std::size_t i = 0; i < name.size(); ++i)
                if (std::tolower(static_cast<unsigned char>(h.first[i])) !=
                    std::tolower(static_cast<unsigned char>(name[i])))
                    same = false;
            if (same) return h.second;
        }
        return {};
    }
};

/// One thing the endpoint does while answering.
struct step {
    enum kind { send, send_filler, delay, reset } what = send;
    std::string data;                  // send
    std::size_t bytes = 0;             // send_filler: this many 'x' bytes
    std::chrono::milliseconds wait{0}; // delay
};
using reply = std::vector<step>;

inline step send(std::string data) { return {step::send, std::move(data), 0, {}}; }
inline step send_filler(std::size_t n) { return {step::send_filler, {}, n, {}}; }
inline step pause(std::chrono::milliseconds d) { return {step::delay, {}, 0, d}; }
inline step reset_connection() { return {step::reset, {}, 0, {}}; }

/// A complete response with Content-Length.
inline reply respond(int status, const std::string& body, const std::string& extra_headers = {},
                     const std::string& content_type = "application/json") {
    return {send("HTTP/1.1 " + std::to_string(status) + " Status\r\nContent-Type: " + content_type +
                 "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers +
                 "Connection: close\r\n\r\n" + body)};
}

inline std::string token_json(const std::string& token, const std::string& expires = "3600") {
    std::string j = R"({"access_token":")" + token + R"(","token_type":"Bearer")";
    if (!expires.empty()) j += R"(,"expires_in":)" + expires;
    return j + "}";
}

class local_token_endpoint {
public:
    using behaviour = std::function<reply(const received_request&, std::size_t request_number)>;

    /// Plain HTTP when `tls` is empty.
    explicit local_token_endpoint(behaviour b, std::optional<key_and_cert> tls = std::nullopt)
        : behaviour_(std::move(b)), acceptor_(io_) {
        if (tls) {
            tls_.emplace(asio::ssl::context::tls_server);
            tls_->use_certificate_chain(asio::buffer(tls->cert_pem));
            tls_->use_private_key(asio::buffer(tls->key_pem), asio::ssl::context::pem);
        }
        const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
        acceptor_.open(ep.protocol());
        acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        accept();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~local_token_endpoint() {
        io_.stop();
        thread_.join();
    }
    local_token_endpoint(const local_token_endpoint&) = delete;
    local_token_endpoint& operator=(const local_token_endpoint&) = delete;

    unsigned short port() const { return port_; }
    std::string url(const std::string& host = "127.0.0.1",
                    const std::string& path = "/oauth/token") const {
        return std::string(tls_ ? "https://" : "http://") + host + ":" + std::to_string(port_) +
               path;
    }
    /// Requests read completely (what "reached the endpoint" means in the tests).
    std::size_t requests() const { return requests_.load(); }
    std::size_t connections() const { return connections_.load(); }
    std::vector<received_request> received() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return received_;
    }
    /// Bytes of filler the endpoint managed to hand to the kernel, last filler reply.
    std::size_t filler_written() const { return filler_written_.load(); }

private:
    template <class Stream> struct session : std::enable_shared_from_this<session<Stream>> {
        local_token_endpoint& owner;
        Stream stream;
        asio::streambuf in;
        received_request request;
        reply steps;
        std::size_t next_step = 0;
        asio::steady_timer timer;
        std::string filler;
        std::size_t filler_left = 0;

        template <class... Args>
        session(local_token_endpoint& o, Args&&... args)
            : owner(o), stream(std::forward<Args>(args)...), timer(o.io_) {}

        asio::ip::tcp::socket& socket() {
            if constexpr (std::is_same_v<Stream, asio::ip::tcp::socket>)
                return stream;
            else
                return stream.next_layer();
        }

        void start() {
            if constexpr (std::is_same_v<Stream, asio::ip::tcp::socket>) {
                read_header();
            } else {
                auto self = this->shared_from_this();
                stream.async_handshake(asio::ssl::stream_base::server, [self](std::error_code ec) {
                    if (!ec) self->read_header();
                });
            }
        }

        void read_header() {
            auto self = this->shared_from_this();
            asio::async_read_until(
                stream, in, "\r\n\r\n", [self](std::error_code ec, std::size_t n) {
                    if (ec) return;
                    std::string head(asio::buffers_begin(self->in.data()),
                                     asio::buffers_begin(self->in.data()) +
                                         static_cast<std::ptrdiff_t>(n));
                    self->in.consume(n);
                    self->parse_head(head);
                    std::size_t length = 0;
                    const std::string cl = self->request.header("Content-Length");
                    if (!cl.empty()) length = std::stoul(cl);
                    const std::size_t have = self->in.size();
                    if (have >= length) {
                        self->take_body(length);
                        return;
                    }
                    asio::async_read(self->stream, self->in, asio::transfer_exactly(length - have),
                                     [self, length](std::error_code ec2, std::size_t) {
                                         if (!ec2) self->take_body(length);
                                     });
                });
        }

        void parse_head(const std::string& head) {
            std::size_t line_end = head.find("\r\n");
            const std::string start = head.substr(0, line_end);
            const auto sp1 = start.find(' ');
            const auto sp2 = start.find(' ', sp1 + 1);
            request.method = start.substr(0, sp1);
            request.target = start.substr(sp1 + 1, sp2 - sp1 - 1);
            std::size_t pos = line_end + 2;
            while (pos < head.size()) {
                const auto end = head.find("\r\n", pos);
                if (end == pos || end == std::string::npos) break;
                const std::string line = head.substr(pos, end - pos);
                const auto colon = line.find(':');
                std::string value = line.substr(colon + 1);
                while (!value.empty() && value.front() == ' ')
                    value.erase(0, 1);
                request.headers.emplace_back(line.substr(0, colon), value);
                pos = end + 2;
            }
        }

        void take_body(std::size_t length) {
            request.body.assign(asio::buffers_begin(in.data()),
                                asio::buffers_begin(in.data()) +
                                    static_cast<std::ptrdiff_t>(length));
            in.consume(length);
            std::size_t number = 0;
            {
                std::lock_guard<std::mutex> lock(owner.mutex_);
                owner.received_.push_back(request);
                number = ++owner.requests_;
            }
            steps = owner.behaviour_(request, number);
            run_step();
        }

        void run_step() {
            auto self = this->shared_from_this();
            if (next_step == steps.size()) {
                finish();
                return;
            }
            step& s = steps[next_step++];
            switch (s.what) {
            case step::send:
                asio::async_write(stream, asio::buffer(s.data),
                                  [self](std::error_code ec, std::size_t) {
                                      if (ec) return self->abort();
                                      self->run_step();
                                  });
                break;
            case step::send_filler:
                filler.assign(64 * 1024, 'x');
                filler_left = s.bytes;
                owner.filler_written_ = 0;
                write_filler();
                break;
            case step::delay:
                timer.expires_after(s.wait);
                timer.async_wait([self](std::error_code ec) {
                    if (!ec) self->run_step();
                });
                break;
            case step::reset: abort(); break;
            }
        }

        void write_filler() {
            auto self = this->shared_from_this();
            const std::size_t n = std::min(filler_left, filler.size());
            asio::async_write(stream, asio::buffer(filler.data(), n),
                              [self](std::error_code ec, std::size_t k) {
                                  self->owner.filler_written_ += k;
                                  if (ec) return self->abort();
                                  self->filler_left -= k;
                                  if (self->filler_left == 0)
                                      self->run_step();
                                  else
                                      self->write_filler();
                              });
        }

        // RST instead of FIN: the peer sees "connection reset".
        void abort() {
            std::error_code ignored;
            socket().set_option(asio::socket_base::linger(true, 0), ignored);
            socket().close(ignored);
        }

        void finish() {
            std::error_code ignored;
            socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
            // Drain until the client closes, so our close never turns into a RST.
            auto self = this->shared_from_this();
            auto buf = std::make_shared<std::array<char, 4096>>();
            socket().async_read_some(asio::buffer(*buf),
                                     [self, buf](std::error_code ec, std::size_t) {
                                         if (ec) {
                                             std::error_code ignored2;
                                             self->socket().close(ignored2);
                                             return;
                                         }
                                         self->finish_drain(buf);
                                     });
        }
        void finish_drain(std::shared_ptr<std::array<char, 4096>> buf) {
            auto self = this->shared_from_this();
            socket().async_read_some(asio::buffer(*buf),
                                     [self, buf](std::error_code ec, std::size_t) {
                                         if (ec) {
                                             std::error_code ignored;
                                             self->socket().close(ignored);
                                             return;
                                         }
                                         self->finish_drain(buf);
                                     });
        }
    };

    void accept() {
        acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
            if (ec) return;
            ++connections_;
            if (tls_) {
                auto s = std::make_shared<session<asio::ssl::stream<asio::ip::tcp::socket>>>(
                    *this, std::move(socket), *tls_);
                s->start();
            } else {
                auto s = std::make_shared<session<asio::ip::tcp::socket>>(*this, std::move(socket));
                s->start();
            }
            accept();
        });
    }

    behaviour behaviour_;
    asio::io_context io_;
    std::optional<asio::ssl::context> tls_;
    asio::ip::tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<received_request> received_;
    std::atomic<std::size_t> requests_{0};
    std::atomic<std::size_t> connections_{0};
    std::atomic<std::size_t> filler_written_{0};
};

} // namespace tether_test

#endif
