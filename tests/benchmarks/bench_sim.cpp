// Benchmark 4: a credential that is always rejected, 10 minutes of virtual
// time (tether::testing::simulation + simulated_transport). Counts the
// handshakes and token requests tether attempts, next to a naive loop that
// fetches a token and reconnects one second after every close (the seed's
// first answer). Prints JSON lines like tether_bench.
#include "bench_support.hpp"

#include <tether/basic_reconnecting_client.hpp>
#include <tether/testing/simulated_transport.hpp>

#include <memory>
#include <string>

namespace {

using namespace std::chrono_literals;
using tether::testing::server_response;
using tether::testing::simulated_server;
using tether::testing::simulated_transport;
using tether::testing::simulation;

constexpr auto token_latency = 50ms; // a token endpoint's answer, in virtual time
constexpr auto window = std::chrono::minutes(10);

/// Issues a new token for every request after token_latency; counts them.
class counting_token_policy {
public:
    counting_token_policy(simulation& sim, std::shared_ptr<std::size_t> count)
        : sim_(&sim), count_(std::move(count)) {}

    template <class Handler> void async_get_token(Handler&& h) {
        const std::size_t n = ++*count_;
        sim_->schedule(token_latency, [n, h = std::forward<Handler>(h)]() mutable {
            h(tether::token_result::success(tether::token{
                tether::secret("always-rejected-" + std::to_string(n)), 3600s, true}));
        });
    }
    void invalidate(const tether::secret&) {}
    void cancel() {}

private:
    simulation* sim_;
    std::shared_ptr<std::size_t> count_;
};

/// The naive loop: on every close, wait a second, fetch a token, connect.
class naive_loop {
public:
    naive_loop(simulation& sim, simulated_server& server) : sim_(sim), transport_(sim, server) {}

    void start() { fetch_and_connect(); }
    std::size_t token_requests = 0;

    void on_transport_open(tether::connection_id, const tether::open_info&) {}
    void on_transport_message(tether::connection_id, const tether::message_view&) {}
    void on_transport_close(tether::connection_id, tether::close_event&&) {
        sim_.schedule(1s, [this] { fetch_and_connect(); });
    }

private:
    void fetch_and_connect() {
        const std::size_t n = ++token_requests;
        sim_.schedule(token_latency, [this, n] {
            tether::connect_request req;
            req.url = "wss://127.0.0.1/v2/analytics/events";
            req.token = tether::secret("always-rejected-" + std::to_string(n));
            transport_.connect(req, *this);
        });
    }

    simulation& sim_;
    simulated_transport transport_;
};

} // namespace

int main() {
    bench::print_env("tether_bench_sim");
    const auto reject_all = [](const tether::testing::server_handshake&) {
        return server_response::reject(401);
    };

    std::size_t tether_handshakes = 0, tether_tokens = 0;
    std::string stop_reason = "not stopped";
    {
        simulation sim;
        simulated_server server;
        server.on_handshake = reject_all;
        auto tokens = std::make_shared<std::size_t>(0);
        tether::client_options o; // defaults: auth_failure_limit 3
        o.url = "wss://127.0.0.1/v2/analytics/events";
        tether::basic_reconnecting_client<simulated_transport, counting_token_policy> c(
            o, simulated_transport(sim, server), counting_token_policy(sim, tokens));
        c.on_stopped([&](const tether::stopped_event& e) { stop_reason = e.reason.message(); });
        c.start();
        sim.run_for(window);
        tether_handshakes = server.handshakes.size();
        tether_tokens = *tokens;
        if (tether_handshakes == 0) bench::die("tether made no handshake at all");
        if (c.state() != tether::client_state::stopped)
            bench::die("tether did not stop within 10 virtual minutes");
        bench::emit({{"kind", "rejected"},
                     {"variant", "tether"},
                     {"auth_failure_limit", o.auth_failure_limit},
                     {"handshakes", tether_handshakes},
                     {"token_requests", tether_tokens},
                     {"stop_reason", stop_reason}});
    }
    {
        simulation sim;
        simulated_server server;
        server.on_handshake = reject_all;
        naive_loop loop(sim, server);
        loop.start();
        sim.run_for(window);
        if (server.handshakes.empty()) bench::die("the naive loop made no handshake at all");
        bench::emit({{"kind", "rejected"},
                     {"variant", "naive"},
                     {"handshakes", server.handshakes.size()},
                     {"token_requests", loop.token_requests}});
    }
    return 0;
}
