// The seed thread's service, played on virtual time: a token that expires
// every 10 minutes, a 4001 close on expiry, 401 for a stale token on the next
// handshake. Prints what tether does about it, then what it does when the
// credential itself is wrong. Runs in milliseconds; no network.
#include <tether/core.hpp>
#include <tether/testing/simulated_transport.hpp>

#include <cstdio>
#include <set>
#include <string>

using namespace std::chrono_literals;
namespace tt = tether::testing;

namespace {

struct seed_service {
    tt::simulated_server server;
    std::set<std::string> expired;
    bool reject_everything = false;
};

double seconds(const tt::simulation& sim) {
    return std::chrono::duration<double>(sim.elapsed()).count();
}

template <class Client> void log_events(Client& c, tt::simulation& sim) {
    c.on_token([&sim](const tether::token_event& e) {
        std::printf("%9.3fs  token %s%s\n", seconds(sim), e.fresh ? "fetched" : "from cache",
                    e.after_rejection ? " (replacing the rejected one)" : "");
    });
    c.on_open([&sim](const tether::open_event& e) {
        std::printf("%9.3fs  open, attempt %llu, down for %.3fs\n", seconds(sim),
                    static_cast<unsigned long long>(e.attempt),
                    std::chrono::duration<double>(e.downtime).count());
    });
    c.on_close([&sim](const tether::close_event& e, const tether::reconnect_decision& d) {
        std::printf("%9.3fs  closed: code %u '%s' http %d -> %s\n", seconds(sim), e.code,
                    e.reason.c_str(), e.http_status, tether::to_string(d.action));
    });
    c.on_retry([&sim](const tether::retry_event& e) {
        std::printf("%9.3fs  retry in %lld ms (%s ladder)\n", seconds(sim),
                    static_cast<long long>(e.delay.count()), tether::to_string(e.cls));
    });
    c.on_stopped([&sim](const tether::stopped_event& e) {
        std::printf("%9.3fs  stopped: %s\n", seconds(sim), e.reason.message().c_str());
    });
}

template <class Client>
void print_summary(const char* title, const Client& c, const seed_service& svc) {
    const auto n = c.counters();
    std::printf("  summary (%s): handshakes %zu, rejected %zu, token fetches %llu, opens %llu\n\n",
                title, svc.server.handshakes.size(), svc.server.rejected,
                static_cast<unsigned long long>(n.tokens_acquired),
                static_cast<unsigned long long>(n.opens));
}

} // namespace

int main() {
    // A token source that hands out a new token per call, as an OAuth
    // client_credentials endpoint would.
    int issued = 0;
    auto fetch = [&issued] { return "token-" + std::to_string(++issued); };
    using client_t = tether::basic_reconnecting_client<tt::simulated_transport,
                                                       tether::callback_token<decltype(fetch)>,
                                                       tether::close_code_table<>>;
    tether::close_code_table<> seed_codes{
        {4001, tether::close_action::refresh_token_then_reconnect}};

    std::printf("== The seed's service: 4001 on expiry, every 10 minutes, for an hour\n");
    {
        tt::simulation sim;
        seed_service svc;
        svc.server.on_handshake = [&svc](const tt::server_handshake& h) {
            if (svc.expired.count(std::string(h.token.reveal())))
                return tt::server_response::reject(401);
            return tt::server_response::accept();
        };
        tether::client_options o;
        o.url = "wss://streaming.example.test/v2/events";
        client_t client(o, tt::simulated_transport(sim, svc.server), tether::callback_token(fetch),
                        seed_codes);
        log_events(client, sim);
        client.start();
        for (int i = 0; i < 6; ++i) {
            sim.run_for(10min);
            // the server expires the token it accepted and closes with 4001
            auto id = svc.server.newest();
            for (const auto& h : svc.server.handshakes)
                if (id && h.id == *id) svc.expired.insert(std::string(h.token.reveal()));
            svc.server.close(4001, "Token expired");
        }
        sim.run_for(1s);
        client.stop();
        sim.run();
        print_summary("expiry", client, svc);
    }

    std::printf("== A credential that is always rejected (the 401 storm the seed asks about)\n");
    {
        tt::simulation sim;
        seed_service svc;
        svc.server.on_handshake = [](const tt::server_handshake&) {
            return tt::server_response::reject(401);
        };
        tether::client_options o;
        o.url = "wss://streaming.example.test/v2/events";
        client_t client(o, tt::simulated_transport(sim, svc.server), tether::callback_token(fetch),
                        seed_codes);
        log_events(client, sim);
        client.start();
        sim.run_for(10min);
        print_summary("always rejected, 10 minutes", client, svc);
        std::printf("  a naive loop reconnecting every second would have made 600 handshakes\n");
    }
    return 0;
}
