// Compile-cost benchmark (item 6), tether side: the single header (the whole
// library) and one wss:// client, as an application would build it.
#include <tether/tether.hpp>

#include <cstdio>

int main() {
    asio::io_context io;
    tether::client_options o;
    o.url = "wss://127.0.0.1:9443/v2/analytics/events";
    tether::basic_reconnecting_client<tether::websocketpp_transport, tether::static_token> c(
        o, tether::websocketpp_transport(io), tether::static_token(tether::secret("token")));
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
