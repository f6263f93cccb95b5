// Compile-cost benchmark (item 6), tether side: every public header (what the
// single header will contain; single_include/tether/tether.hpp does not exist
// yet) and one wss:// client, as an application would build it.
#include <tether/core.hpp>
#include <tether/reconnecting_client.hpp>
#include <tether/backoff/ladder.hpp>
#include <tether/tls_options.hpp>
#include <tether/token_policy/oauth2_client_credentials.hpp>
#include <tether/token_policy/shared_token_source.hpp>
#include <tether/transport/websocketpp_transport.hpp>

#include <cstdio>

int main() {
    asio::io_context io;
    tether::client_options o;
    o.url = "wss://127.0.0.1:9443/v2/analytics/events";
    tether::basic_reconnecting_client<tether::websocketpp_transport, tether::static_token> c(
        o, tether::websocketpp_transport(io), tether::static_token(tether::secret("token")));
    c.on_open([](const tether::open_event&) { std::puts("open"); });
    c.on_message([](const tether::message_view& m) { std::fwrite(m.data.data(), 1, m.data.size(), stdout); });
    c.on_close([](const tether::close_event& ev, const tether::reconnect_decision&) { std::puts(ev.detail.c_str()); });
    c.start();
    io.run();
}
