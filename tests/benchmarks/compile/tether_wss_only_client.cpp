// Compile-cost benchmark (item 6), tether side, compile-conscious: the core and
// the transport header only, and the wss-only transport (one websocketpp endpoint).
#include <tether/core.hpp>
#include <tether/transport/websocketpp_transport.hpp>

#include <cstdio>

int main() {
    asio::io_context io;
    tether::client_options o;
    o.url = "wss://127.0.0.1:9443/v2/analytics/events";
    tether::basic_reconnecting_client<tether::websocketpp_wss_transport, tether::static_token> c(
        o, tether::websocketpp_wss_transport(io), tether::static_token(tether::secret("token")));
    c.on_open([](const tether::open_event&) { std::puts("open"); });
    c.on_message([](const tether::message_view& m) {
        std::fwrite(m.data.data(), 1, m.data.size(), stdout);
    });
    c.on_close([](const tether::close_event& ev, const tether::reconnect_decision&) {
        std::puts(ev.detail.c_str());
    });
    c.start();
    io.run();
}
