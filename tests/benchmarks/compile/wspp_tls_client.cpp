// Compile-cost benchmark (item 6), baseline: only websocketpp's TLS client
// headers and the same connection (wss://, peer and host name verified,
// bearer token header, handlers for open, message, close and failure).
#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_client.hpp>

#include <cstdio>

using client = websocketpp::client<websocketpp::config::asio_tls_client>;

int main() {
    client c;
    c.clear_access_channels(websocketpp::log::alevel::all);
    c.init_asio();
    c.set_tls_init_handler([](websocketpp::connection_hdl) {
        auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
        ctx->set_default_verify_paths();
        ctx->set_verify_mode(asio::ssl::verify_peer);
        ctx->set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
        return ctx;
    });
    c.set_open_handler([](websocketpp::connection_hdl) { std::puts("open"); });
    c.set_message_handler([](websocketpp::connection_hdl, client::message_ptr m) {
        std::fwrite(m->get_payload().data(), 1, m->get_payload().size(), stdout);
    });
    c.set_close_handler([](websocketpp::connection_hdl) { std::puts("closed"); });
    c.set_fail_handler([](websocketpp::connection_hdl) { std::puts("failed"); });
    std::error_code ec;
    auto con = c.get_connection("wss://127.0.0.1:9443/v2/analytics/events", ec);
    if (ec) return 1;
    con->append_header("Authorization", "Bearer token");
    c.connect(con);
    c.run();
}
