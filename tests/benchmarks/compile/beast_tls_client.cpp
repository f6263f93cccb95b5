// Compile-cost benchmark (item 6), baseline for the Beast row: only Boost.Beast
// and the same connection as Beast's async wss client example makes it
// (wss://, peer and host name verified, SNI, bearer token header, a read loop
// printing messages, the close reported).
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <cstdio>
#include <memory>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

struct session : std::enable_shared_from_this<session> {
    session(net::io_context& io, net::ssl::context& ctx) : resolver(io), ws(io, ctx) {}
    tcp::resolver resolver;
    websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws;
    beast::flat_buffer buf;

    void start() {
        SSL_set_tlsext_host_name(ws.next_layer().native_handle(), "127.0.0.1");
        ws.next_layer().set_verify_callback(net::ssl::host_name_verification("127.0.0.1"));
        resolver.async_resolve(
            "127.0.0.1", "9443",
            [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
                if (ec) return (void)std::puts("failed");
                beast::get_lowest_layer(self->ws).async_connect(r, [self](beast::error_code ec2,
                                                                          const tcp::endpoint&) {
                    if (ec2) return (void)std::puts("failed");
                    self->ws.next_layer().async_handshake(
                        net::ssl::stream_base::client, [self](beast::error_code ec3) {
                            if (ec3) return (void)std::puts("failed");
                            beast::get_lowest_layer(self->ws).expires_never();
                            self->ws.set_option(websocket::stream_base::timeout::suggested(
                                beast::role_type::client));
                            self->ws.set_option(
                                websocket::stream_base::decorator([](websocket::request_type& req) {
                                    req.set(beast::http::field::authorization, "Bearer token");
                                }));
                            self->ws.async_handshake("127.0.0.1:9443", "/v2/analytics/events",
                                                     [self](beast::error_code ec4) {
                                                         if (ec4) return (void)std::puts("failed");
                                                         std::puts("open");
                                                         self->read();
                                                     });
                        });
                });
            });
    }

    void read() {
        ws.async_read(buf, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return (void)std::puts("closed");
            const auto d = self->buf.cdata();
            std::fwrite(d.data(), 1, d.size(), stdout);
            self->buf.consume(self->buf.size());
            self->read();
        });
    }
};

int main() {
    net::io_context io;
    net::ssl::context ctx(net::ssl::context::tls_client);
    ctx.set_default_verify_paths();
    ctx.set_verify_mode(net::ssl::verify_peer);
    std::make_shared<session>(io, ctx)->start();
    io.run();
}
