// Time from expiry close to reopened connection, on loopback.
//
// A websocketpp server (its own thread) plays the seed's service: it accepts
// a handshake only with an unexpired token and closes with 4001 when that
// token expires. The reconnecting client (websocketpp_transport, main thread)
// refreshes and reconnects each time. For every expiry we take
//   server: 4001 close sent -> next connection opened (server's view)
//   client: close reported  -> open reported          (client's view)
// and print the median (and spread) of N samples.
//
//   cmake --build build --target tether_expiry_latency
//   ./build/examples/expiry_latency/tether_expiry_latency [samples=100] [token_lifetime_ms=100]
//
// The token function answers at once, so the figure is the library's and the
// network's share, not an identity provider's.
#include <tether/core.hpp>
#include <tether/transport/websocketpp_transport.hpp>

#include "wspp_test_server.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

struct token_authority {
    std::mutex mutex;
    std::chrono::milliseconds lifetime{100};
    int issued = 0;
    std::map<std::string, steady::time_point> expiry;

    std::string issue() {
        std::lock_guard<std::mutex> lock(mutex);
        const std::string t = "tok-" + std::to_string(++issued);
        expiry[t] = steady::now() + lifetime;
        return t;
    }
    test_support::handshake_verdict verdict(const test_support::seen_request& r) {
        std::lock_guard<std::mutex> lock(mutex);
        test_support::handshake_verdict v;
        const std::string token =
            r.authorization.rfind("Bearer ", 0) == 0 ? r.authorization.substr(7) : "";
        const auto it = expiry.find(token);
        const auto now = steady::now();
        if (it == expiry.end() || it->second <= now) {
            v.status = 401;
            return v;
        }
        v.close_after = std::chrono::duration_cast<std::chrono::milliseconds>(it->second - now);
        return v;
    }
};

double micros(steady::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

void report(const char* what, std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const auto at = [&](double q) {
        return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
    };
    std::printf("%-40s median %8.1f us   p10 %8.1f   p90 %8.1f   min %8.1f   max %8.1f   (n=%zu)\n",
                what, at(0.5), at(0.1), at(0.9), v.front(), v.back(), v.size());
}

} // namespace

int main(int argc, char** argv) {
    const int samples = argc > 1 ? std::atoi(argv[1]) : 100;
    const int lifetime_ms = argc > 2 ? std::atoi(argv[2]) : 100;
    if (samples < 1 || lifetime_ms < 20) {
        std::fprintf(stderr, "usage: %s [samples>=1] [token_lifetime_ms>=20]\n", argv[0]);
        return 2;
    }
    token_authority idp;
    idp.lifetime = std::chrono::milliseconds(lifetime_ms);

    // server on its own thread and io_context
    asio::io_context server_io;
    std::mutex times_mutex;
    std::vector<steady::time_point> server_close_sent, server_opened;
    test_support::plain_test_server server(server_io);
    server.decide = [&](const test_support::seen_request& r) { return idp.verdict(r); };
    server.on_expiry_close = [&] {
        std::lock_guard<std::mutex> lock(times_mutex);
        server_close_sent.push_back(steady::now());
    };
    server.on_open = [&] {
        std::lock_guard<std::mutex> lock(times_mutex);
        server_opened.push_back(steady::now());
    };
    auto server_work = asio::make_work_guard(server_io);
    std::thread server_thread([&] { server_io.run(); });

    // client on this thread
    asio::io_context io;
    tether::client_options opts;
    opts.url = server.url("/v2/events");
    opts.auth_failure_uptime = std::chrono::milliseconds(lifetime_ms / 2);
    tether::websocketpp_transport_options topts;
    topts.ping_interval = std::chrono::milliseconds(0);
    using fetch = std::function<std::string()>;
    tether::basic_reconnecting_client<tether::websocketpp_transport, tether::callback_token<fetch>,
                                      tether::close_code_table<>>
        client(
            opts, tether::websocketpp_transport(io, topts),
            tether::callback_token<fetch>([&] { return idp.issue(); }),
            tether::close_code_table<>{{4001, tether::close_action::refresh_token_then_reconnect}});

    std::vector<double> client_side;
    steady::time_point closed_at{};
    int expiries = 0;
    int other_closes = 0;
    client.on_close([&](const tether::close_event& ev, const tether::reconnect_decision&) {
        if (ev.code == 4001) {
            ++expiries;
            closed_at = steady::now();
        } else if (ev.code != 1000) {
            ++other_closes;
        }
    });
    client.on_open([&](const tether::open_event&) {
        if (expiries > 0) client_side.push_back(micros(steady::now() - closed_at));
        if (expiries >= samples) client.stop();
    });
    bool stopped = false;
    client.on_stopped([&](const tether::stopped_event&) { stopped = true; });
    client.start();
    const auto deadline = steady::now() + std::chrono::seconds(30) +
                          samples * std::chrono::milliseconds(lifetime_ms) * 3;
    while (!stopped && steady::now() < deadline)
        io.run_one_for(std::chrono::milliseconds(100));

    server_work.reset();
    asio::post(server_io, [&] { server_io.stop(); });
    server_thread.join();

    const auto c = client.counters();
    std::vector<double> server_side;
    for (std::size_t i = 0; i < server_close_sent.size() && i + 1 < server_opened.size(); ++i)
        server_side.push_back(micros(server_opened[i + 1] - server_close_sent[i]));
    std::printf("expiry -> reopen on loopback, token lifetime %d ms, %d expiries\n", lifetime_ms,
                expiries);
    std::printf("handshakes: %llu opened, %llu rejected; token requests %llu; other closes %d\n",
                static_cast<unsigned long long>(c.opens),
                static_cast<unsigned long long>(c.rejected_handshakes),
                static_cast<unsigned long long>(c.token_requests), other_closes);
    if (!stopped || static_cast<int>(client_side.size()) < samples || c.rejected_handshakes != 0 ||
        other_closes != 0) {
        std::fprintf(stderr, "FAILED: the run did not complete %d clean expiry cycles\n", samples);
        return 1;
    }
    report("server: 4001 sent -> new connection open", server_side);
    report("client: close reported -> open reported", client_side);
    return 0;
}
