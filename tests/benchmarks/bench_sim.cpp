// Virtual-time benchmarks (tether::testing::simulation + simulated_transport,
// no websocketpp). Prints JSON lines like tether_bench.
//
// tether_bench_sim (no arguments), benchmark 4: a credential that is always
// rejected, 10 minutes of virtual time. Counts the handshakes and token
// requests tether attempts, next to a naive loop that fetches a token and
// reconnects one second after every close (the seed's first answer).
//
// tether_bench_sim tenants --variant tenants|shared --count N ..., benchmark
// 8: N clients in one process, each with its own shared_token_source (or all
// on one), tokens issued in the same second; memory per tenant, token
// refreshes per 1-second window, CPU per virtual hour (see cmd_tenants).
// tether_bench_sim sources --count N: heap per token source alone, on the
// simulation's timer and on steady_timing (see cmd_sources).
#include "bench_support.hpp"

#include <tether/basic_reconnecting_client.hpp>
#include <tether/close_policy/close_code_table.hpp>
#include <tether/testing/simulated_transport.hpp>
#include <tether/token_policy/shared_token_source.hpp>

#include <asio/io_context.hpp>

#include <malloc.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

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

int cmd_rejected() {
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

// ---------------------------------------------------------------------------
// Benchmark 8: ten thousand tenants in one process.
//
// Every tenant has its own issuer (token lifetime drawn once per tenant from
// lifetime +- spread, whole seconds; 100 ms virtual latency) and, in variant
// "tenants", its own shared_token_source; in variant "shared" all clients use
// one source (the 1-source case). All clients start at t = 0, so every first
// token is issued in the same second. The server closes a connection with
// 4001 when its token expires (the issuer's clock, read from the token
// itself); the clients hand over to a new connection 60 s before expiry
// (renew_before_expiry), so a steady hour holds one refresh and one handover
// per token.
//
// Reported: resident memory (VmRSS, as benchmark 5) and heap in use
// (mallinfo2) per tenant once all are open; each token refresh's virtual
// start, and the largest number of them in any 1-second window (a sliding
// window: [t, t + 1 s) for every refresh t); process CPU time per virtual
// hour simulated; and checks (4001 closes, rejected handshakes, foreground
// fetches) that must be zero for the figures to mean anything.
namespace tenants {

constexpr auto issuer_latency = 100ms;

struct issuer_log {
    std::vector<std::int64_t> fetch_ns; // virtual time of every fetcher call
};

/// One tenant's token endpoint: a token of `lifetime` after issuer_latency.
/// The token carries its tenant and its expiry on the issuer's clock.
class issuer {
public:
    issuer(simulation& sim, issuer_log& log, std::uint32_t tenant, std::chrono::seconds lifetime)
        : sim_(&sim), log_(&log), tenant_(tenant), lifetime_(lifetime) {}

    template <class Handler> void async_get_token(Handler&& h) {
        log_->fetch_ns.push_back(sim_->elapsed().count());
        sim_->schedule(issuer_latency, [sim = sim_, tenant = tenant_, lifetime = lifetime_,
                                        h = std::forward<Handler>(h)]() mutable {
            const auto expiry = sim->elapsed() + lifetime;
            h(tether::token_result::success(tether::token{
                tether::secret("t" + std::to_string(tenant) + "." + std::to_string(expiry.count())),
                lifetime, true}));
        });
    }
    void invalidate(const tether::secret&) {}
    void cancel() {}

private:
    simulation* sim_;
    issuer_log* log_;
    std::uint32_t tenant_;
    std::chrono::seconds lifetime_;
};

using source_type = tether::shared_token_source<issuer, simulation*>;
using client_type = tether::basic_reconnecting_client<simulated_transport, source_type::handle_type,
                                                      tether::close_code_table<>>;

/// The issuer's expiry, from a token made by issuer (virtual ns).
std::int64_t expiry_of(std::string_view token) {
    const auto dot = token.find('.');
    if (dot == std::string_view::npos) bench::die("tenants: a token the issuer did not make");
    return std::strtoll(std::string(token.substr(dot + 1)).c_str(), nullptr, 10);
}

/// Bytes of heap in use (glibc >= 2.33; elsewhere 0, and the figure reads 0).
std::size_t heap_in_use() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

/// Largest number of `times` (sorted, ns) in any window [t, t + 1 s).
std::size_t peak_per_second(const std::vector<std::int64_t>& times) {
    std::size_t best = 0, lo = 0;
    for (std::size_t hi = 0; hi < times.size(); ++hi) {
        while (times[hi] - times[lo] >= 1'000'000'000)
            ++lo;
        best = std::max(best, hi - lo + 1);
    }
    return best;
}

} // namespace tenants

int cmd_tenants(const std::map<std::string, std::string>& kv) {
    using namespace tenants;
    const auto arg = [&](const std::string& k, const std::string& def) {
        auto it = kv.find(k);
        return it == kv.end() ? def : it->second;
    };
    const std::string variant = arg("variant", "tenants");
    if (variant != "tenants" && variant != "shared") bench::die("--variant is tenants or shared");
    const auto count = static_cast<std::size_t>(std::stoull(arg("count", "10000")));
    const auto hours = static_cast<int>(std::stoi(arg("hours", "4")));
    const double jitter = std::stod(arg("jitter", "0.5"));
    const auto lifetime = std::chrono::seconds(std::stoll(arg("lifetime", "3600")));
    const auto spread = std::stoll(arg("spread", "120"));
    if (count == 0 || hours < 1) bench::die("tenants: --count and --hours must be positive");
    bench::watchdog(1200, "tenants");

    // The harness's own storage, allocated before the first memory reading.
    issuer_log log;
    log.fetch_ns.reserve(count * static_cast<std::size_t>(hours + 3));
    std::vector<std::unique_ptr<source_type>> sources;
    std::vector<std::unique_ptr<client_type>> clients;
    sources.reserve(count);
    clients.reserve(count);
    tether::jitter_rng lifetimes(12345);

    const long rss0 = bench::proc_status_kb("VmRSS");
    const std::size_t heap0 = heap_in_use();
    const std::int64_t cpu0 = bench::process_cpu_ns();

    simulation sim;
    sim.set_handler_limit(std::size_t(1) << 62);
    simulated_server server;
    std::size_t expiry_closes = 0, opens = 0;
    server.on_handshake = [&](const tether::testing::server_handshake& h) {
        server.handshakes.clear(); // the harness keeps no history (it would count as memory)
        const auto expiry = expiry_of(h.token.reveal());
        const auto now = sim.elapsed().count();
        if (now >= expiry) return server_response::reject(401);
        return server_response::accept().then_close(std::chrono::nanoseconds(expiry - now), 4001,
                                                    "Token expired");
    };
    tether::client_options o;
    o.url = "wss://streaming.example.com/v2/notifications";
    o.renew_before_expiry = 60s;
    tether::shared_token_options margins; // defaults: soft 300 s, hard 30 s
    margins.refresh_jitter = jitter;

    const auto tenant_lifetime = [&] {
        if (spread == 0) return lifetime;
        return lifetime +
               std::chrono::seconds(tether::detail::uniform_between(lifetimes, -spread, spread));
    };
    const auto policy = [] {
        return tether::close_code_table<>{
            {4001, tether::close_action::refresh_token_then_reconnect}};
    };
    for (std::size_t i = 0; i < count; ++i) {
        if (variant == "tenants" || i == 0) {
            margins.refresh_jitter_seed = i + 1;
            sources.push_back(std::make_unique<source_type>(
                issuer(sim, log, static_cast<std::uint32_t>(i), tenant_lifetime()), &sim, margins));
        }
        clients.push_back(std::make_unique<client_type>(o, simulated_transport(sim, server),
                                                        sources.back()->handle(), policy()));
        clients.back()->on_open([&](const tether::open_event&) { ++opens; });
        clients.back()->on_close(
            [&](const tether::close_event& e, const tether::reconnect_decision&) {
                if (e.code == 4001) ++expiry_closes;
            });
    }
    for (auto& c : clients)
        c->start();
    if (!sim.run_until([&] { return opens == count; }, 60s))
        bench::die("tenants: only " + std::to_string(opens) + " of " + std::to_string(count) +
                   " clients opened within 60 virtual seconds");
    const std::int64_t cpu_open = bench::process_cpu_ns() - cpu0;
    const long rss1 = bench::proc_status_kb("VmRSS");
    const std::size_t heap1 = heap_in_use();

    // Steady state, one virtual hour at a time.
    std::vector<double> cpu_per_hour;
    for (int h = 0; h < hours; ++h) {
        const std::int64_t c0 = bench::process_cpu_ns();
        sim.run_until(simulation::time_point(std::chrono::hours(h + 1)));
        cpu_per_hour.push_back(static_cast<double>(bench::process_cpu_ns() - c0) / 1e9);
    }

    // Every fetch after each token's first (all at t = 0) is a refresh.
    std::vector<std::int64_t> refreshes;
    for (auto t : log.fetch_ns)
        if (t > 0) refreshes.push_back(t);
    std::sort(refreshes.begin(), refreshes.end());
    std::uint64_t proactive = 0;
    for (auto& s : sources)
        proactive += s->stats().proactive_refreshes;
    std::uint64_t handovers = 0, rejected = 0;
    for (auto& c : clients) {
        const auto k = c->counters();
        handovers += k.handovers;
        rejected += k.rejected_handshakes;
    }
    if (refreshes.size() != proactive)
        bench::die("tenants: " + std::to_string(refreshes.size() - proactive) +
                   " refreshes were not proactive (a client waited for a token)");
    if (expiry_closes != 0 || rejected != 0)
        bench::die("tenants: " + std::to_string(expiry_closes) + " expiry closes and " +
                   std::to_string(rejected) + " rejected handshakes: the hand-overs came too late");
    const std::size_t min_refreshes =
        (variant == "tenants" ? count : 1) * static_cast<std::size_t>(hours - 1);
    if (refreshes.size() < min_refreshes)
        bench::die("tenants: only " + std::to_string(refreshes.size()) + " refreshes in " +
                   std::to_string(hours) + " virtual hours");

    const auto n = static_cast<double>(count);
    bench::emit(
        {{"kind", "tenants"},
         {"variant", variant},
         {"count", count},
         {"sources", sources.size()},
         {"jitter", jitter},
         {"lifetime_s", lifetime.count()},
         {"spread_s", spread},
         {"hours", hours},
         {"rss_before_kb", rss0},
         {"rss_after_kb", rss1},
         {"kb_per_tenant", static_cast<double>(rss1 - rss0) / n},
         {"heap_bytes_per_tenant", (static_cast<double>(heap1) - static_cast<double>(heap0)) / n},
         {"open_cpu_s", static_cast<double>(cpu_open) / 1e9},
         {"cpu_s_per_hour", cpu_per_hour},
         {"refreshes", refreshes.size()},
         {"peak_refreshes_per_s", peak_per_second(refreshes)},
         {"handovers", handovers},
         {"expiry_closes", expiry_closes},
         {"threads", bench::thread_count()}});
    return 0;
}

/// Heap per token source alone, with a cached 1 h token and its refresh
/// timer armed: on the simulation's timer (as in cmd_tenants) and on the
/// production steady_timing (an asio::steady_timer on an io_context).
struct inline_issuer {
    template <class Handler> void async_get_token(Handler&& h) {
        h(tether::token_result::success(tether::token{tether::secret("tok"), 3600s, true}));
    }
    void invalidate(const tether::secret&) {}
    void cancel() {}
};

template <class Timing, class MakeTiming>
double heap_per_source(std::size_t count, MakeTiming make_timing) {
    using source = tether::shared_token_source<inline_issuer, Timing>;
    std::vector<std::unique_ptr<source>> sources;
    std::vector<typename source::handle_type> handles;
    sources.reserve(count);
    handles.reserve(count);
    tether::shared_token_options o;
    const std::size_t heap0 = tenants::heap_in_use();
    for (std::size_t i = 0; i < count; ++i) {
        o.refresh_jitter_seed = i + 1;
        sources.push_back(std::make_unique<source>(inline_issuer{}, make_timing(), o));
        handles.push_back(sources.back()->handle());
        bool got = false;
        handles.back().async_get_token([&got](tether::token_result r) { got = !r.error; });
        if (!got) bench::die("sources: the inline issuer's token did not arrive");
    }
    return (static_cast<double>(tenants::heap_in_use()) - static_cast<double>(heap0)) /
           static_cast<double>(count);
}

int cmd_sources(const std::map<std::string, std::string>& kv) {
    auto it = kv.find("count");
    const std::size_t count = it == kv.end() ? 10000 : std::stoull(it->second);
    simulation sim;
    const double on_sim = heap_per_source<simulation*>(count, [&] { return &sim; });
    asio::io_context io;
    const double on_steady = heap_per_source<tether::steady_timing>(
        count, [&] { return tether::steady_timing(io.get_executor()); });
    bench::emit({{"kind", "sources"},
                 {"count", count},
                 {"heap_bytes_per_source_simulation", on_sim},
                 {"heap_bytes_per_source_steady", on_steady}});
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    bench::print_env("tether_bench_sim");
    if (argc < 2) return cmd_rejected();
    const std::string cmd = argv[1];
    std::map<std::string, std::string> kv;
    for (int i = 2; i < argc; ++i) {
        const std::string k = argv[i];
        if (k.rfind("--", 0) != 0 || i + 1 >= argc)
            bench::die("bad argument '" + k + "' (expected --name value)");
        kv[k.substr(2)] = argv[++i];
    }
    if (cmd == "tenants") return cmd_tenants(kv);
    if (cmd == "sources") return cmd_sources(kv);
    bench::die("unknown subcommand '" + cmd + "' (none, tenants or sources)");
}
