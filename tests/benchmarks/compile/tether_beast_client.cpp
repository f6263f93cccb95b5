// Compile-cost benchmark (item 6), tether on Boost.Beast: the core and the
// Beast transport in Boost mode (compiled with -DTETHER_USE_BOOST_ASIO), the
// same wss:// client as tether_wss_only_client.cpp.
#include <tether/core.hpp>
#include <tether/transport/beast_transport.hpp>

#include <cstdio>

int main() {
    boost::asio::io_context io;
    tether::client_options o;
    o.url = "wss://127.0.0.1:9443/v2/analytics/events";
    tether::basic_reconnecting_client<tether::beast_transport, tether::static_token> c(
        o, tether::beast_transport(io), tether::static_token(tether::secret("token")));
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
