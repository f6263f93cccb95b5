// A websocketpp server on 127.0.0.1 (ephemeral port) that plays the seed's
// service for the transport tests: it checks the upgrade request, can refuse
// it with any status, echoes messages, closes on command or when a token
// expires, and can stop answering without closing.
//
// Commands a client can send as text: "close <code> <reason>", "big <bytes>",
// "pause" (stop reading: pings go unanswered), "silent" (stop echoing).
#ifndef TETHER_TESTS_TRANSPORT_WSPP_TEST_SERVER_HPP
#define TETHER_TESTS_TRANSPORT_WSPP_TEST_SERVER_HPP

#include <asio/io_context.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include <websocketpp/config/asio.hpp>
#include <websocketpp/server.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace test_support {

struct handshake_verdict {
    int status = 101; ///< 101 accepts; anything else refuses with that status
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string subprotocol; ///< selected when accepting
    /// When accepting: close with `expiry_code` after this long (token lifetime).
    std::optional<std::chrono::milliseconds> close_after;
    std::uint16_t expiry_code = 4001;
    std::string expiry_reason = "Token expired";
};

/// What the server saw on one upgrade request.
struct seen_request {
    std::string resource;
    std::string authorization;
    std::string user_agent;
    std::string protocols;
    std::map<std::string, std::string> extra; ///< X-* headers
};

template <class Config> class wspp_test_server {
public:
    using server_type = websocketpp::server<Config>;
    using connection_ptr = typename server_type::connection_ptr;
    using clock = std::chrono::steady_clock;

    /// Decides every handshake; the default accepts.
    std::function<handshake_verdict(const seen_request&)> decide;
    /// Called when the server closes a connection on expiry (for timing).
    std::function<void()> on_expiry_close;
    std::function<void()> on_open;

    int handshakes = 0;
    int accepted = 0;
    int refused = 0;
    int opens = 0;
    int failed = 0; ///< TCP/TLS/upgrade failures seen by the server
    int closes = 0;
    int pings_received = 0;
    std::vector<seen_request> requests;
    std::vector<std::string> messages;

    /// `tls`: the server's TLS context, or null for plain ws://.
    wspp_test_server(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls = nullptr)
        : io_(io), tls_(std::move(tls)) {
        server_.clear_access_channels(websocketpp::log::alevel::all);
        server_.clear_error_channels(websocketpp::log::elevel::all);
        server_.init_asio(&io);
        if constexpr (is_tls) {
            server_.set_tls_init_handler([this](websocketpp::connection_hdl) { return tls_; });
        }
        server_.set_validate_handler([this](websocketpp::connection_hdl h) { return validate(h); });
        server_.set_open_handler([this](websocketpp::connection_hdl h) { opened(h); });
        server_.set_fail_handler([this](websocketpp::connection_hdl) { ++failed; });
        server_.set_close_handler([this](websocketpp::connection_hdl) { ++closes; });
        server_.set_ping_handler([this](websocketpp::connection_hdl, std::string) {
            ++pings_received;
            return true;
        });
        server_.set_message_handler([this](websocketpp::connection_hdl h,
                                           typename server_type::message_ptr m) { message(h, m); });
        server_.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        server_.start_accept();
        std::error_code ec;
        port_ = server_.get_local_endpoint(ec).port();
    }

    ~wspp_test_server() {
        std::error_code ec;
        server_.stop_listening(ec);
    }

    std::uint16_t port() const { return port_; }
    std::string url(const std::string& path = "/") const {
        return std::string(is_tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(port_) + path;
    }

    /// Closes every open connection with `code` (as a server restart would).
    void close_all(std::uint16_t code, const std::string& reason) {
        for (auto& entry : live_) {
            std::error_code ec;
            if (auto c = server_.get_con_from_hdl(entry.first, ec)) c->close(code, reason, ec);
        }
    }

private:
    static constexpr bool is_tls = std::is_same_v<Config, websocketpp::config::asio_tls>;

    bool validate(websocketpp::connection_hdl h) {
        auto con = server_.get_con_from_hdl(h);
        ++handshakes;
        seen_request r;
        r.resource = con->get_resource();
        r.authorization = con->get_request_header("Authorization");
        r.user_agent = con->get_request_header("User-Agent");
        r.protocols = con->get_request_header("Sec-WebSocket-Protocol");
        for (const auto& hdr : con->get_request().get_headers())
            if (hdr.first.rfind("X-", 0) == 0) r.extra[hdr.first] = hdr.second;
        requests.push_back(r);
        const handshake_verdict v = decide ? decide(r) : handshake_verdict{};
        if (v.status == 101) {
            ++accepted;
            if (!v.subprotocol.empty()) con->select_subprotocol(v.subprotocol);
            pending_expiry_[h.lock().get()] = v;
            return true;
        }
        ++refused;
        con->set_status(static_cast<websocketpp::http::status_code::value>(v.status));
        for (const auto& hdr : v.headers)
            con->append_header(hdr.first, hdr.second);
        if (!v.body.empty()) con->set_body(v.body);
        return false;
    }

    void opened(websocketpp::connection_hdl h) {
        ++opens;
        live_[h] = true;
        const auto it = pending_expiry_.find(h.lock().get());
        if (it != pending_expiry_.end()) {
            const handshake_verdict v = it->second;
            pending_expiry_.erase(it);
            if (v.close_after) {
                auto timer = std::make_shared<asio::steady_timer>(io_, *v.close_after);
                timer->async_wait([this, h, timer, v](const std::error_code& ec) {
                    if (ec) return;
                    std::error_code e;
                    auto con = server_.get_con_from_hdl(h, e);
                    if (!con || con->get_state() != websocketpp::session::state::open) return;
                    if (on_expiry_close) on_expiry_close();
                    con->close(v.expiry_code, v.expiry_reason, e);
                });
            }
        }
        if (on_open) on_open();
    }

    void message(websocketpp::connection_hdl h, const typename server_type::message_ptr& m) {
        auto con = server_.get_con_from_hdl(h);
        const std::string& p = m->get_payload();
        messages.push_back(p);
        std::error_code ec;
        if (p.rfind("close ", 0) == 0) {
            const auto sp = p.find(' ', 6);
            const auto code = static_cast<std::uint16_t>(std::stoi(p.substr(6, sp - 6)));
            con->close(code, sp == std::string::npos ? "" : p.substr(sp + 1), ec);
        } else if (p.rfind("big ", 0) == 0) {
            con->send(std::string(std::stoul(p.substr(4)), 'x'),
                      websocketpp::frame::opcode::binary);
        } else if (p == "pause") {
            // with no read pending nothing else holds the connection: keep it
            // alive, silent and open, like a peer that vanished without a FIN
            paused_.push_back(con);
            con->pause_reading();
        } else if (p == "silent") {
            silent_ = true;
        } else if (!silent_) {
            con->send(p, m->get_opcode());
        }
    }

    asio::io_context& io_;
    std::shared_ptr<asio::ssl::context> tls_;
    server_type server_;
    std::uint16_t port_ = 0;
    bool silent_ = false;
    std::map<const void*, handshake_verdict> pending_expiry_;
    std::vector<connection_ptr> paused_;
    std::map<websocketpp::connection_hdl, bool, std::owner_less<websocketpp::connection_hdl>> live_;
};

using plain_test_server = wspp_test_server<websocketpp::config::asio>;
using tls_test_server = wspp_test_server<websocketpp::config::asio_tls>;

/// A server-side TLS context with the given certificate and key (PEM text).
inline std::shared_ptr<asio::ssl::context> server_tls_context(const std::string& cert_pem,
                                                              const std::string& key_pem,
                                                              bool tls12_max = false) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->use_certificate_chain(asio::buffer(cert_pem));
    ctx->use_private_key(asio::buffer(key_pem), asio::ssl::context::pem);
    if (tls12_max) SSL_CTX_set_max_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    return ctx;
}

} // namespace test_support

#endif
