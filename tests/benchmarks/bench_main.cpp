// tether benchmarks on loopback: receive throughput, reconnect after an
// expiry close, refresh storm, idle connections. One program with
// subcommands (each TU including websocketpp costs 10-20 s to compile).
// Every subcommand prints JSON lines on stdout (first an "env" line) and
// exits non-zero with a message on stderr when its set-up is broken.
// tests/benchmarks/run.py runs them all and prints the table.
//
// Peer-library baselines (tether_bench_beast, tether_bench_lws: separate
// programs, built only when Boost.Beast / libwebsockets are found) are run
// from here as child processes against this program's server, in the same
// A B A B sequence as the websocketpp and tether runs: `throughput --beast
// PATH --lws PATH` and `idle --variant beast|lws --peer PATH`. tether_bench_beast
// also runs tether's client on beast_transport (Boost mode): throughput
// variant beast_tether, `idle --variant beast_tether --peer PATH` and
// `reconnect --beast PATH`.
#include "bench_server.hpp"
#include "bench_support.hpp"

#include <tether/basic_reconnecting_client.hpp>
#include <tether/close_policy/default_close_policy.hpp>
#include <tether/token_policy/oauth2_client_credentials.hpp>
#include <tether/token_policy/shared_token_source.hpp>
#include <tether/transport/websocketpp_transport.hpp>

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace {

using namespace std::chrono_literals;
using bench::die;
using bench::mono_ns;
using nlohmann::json;

/// The baseline: a plain websocketpp client as its documentation builds one.
using wspp_plain = websocketpp::client<websocketpp::config::asio_client>;

void quiet(wspp_plain& c, asio::io_context& io) {
    c.clear_access_channels(websocketpp::log::alevel::all);
    c.clear_error_channels(websocketpp::log::elevel::all);
    c.init_asio(&io);
}

struct args {
    std::map<std::string, std::string> kv;
    args(int argc, char** argv, int from) {
        for (int i = from; i < argc; ++i) {
            std::string k = argv[i];
            if (k.rfind("--", 0) != 0 || i + 1 >= argc)
                die("bad argument '" + k + "' (expected --name value)");
            kv[k.substr(2)] = argv[++i];
        }
    }
    std::string str(const std::string& k, const std::string& def) const {
        auto it = kv.find(k);
        return it == kv.end() ? def : it->second;
    }
    std::size_t num(const std::string& k, std::size_t def) const {
        auto it = kv.find(k);
        if (it == kv.end()) return def;
        try {
            return static_cast<std::size_t>(std::stoull(it->second));
        } catch (...) {
            die("--" + k + " needs a number");
        }
    }
};

/// Runs `io` to completion, then once more for handlers posted by destructors.
template <class F> void run_scoped(asio::io_context& io, F&& with_objects) {
    with_objects();
    io.restart();
    io.run();
}

// ---------------------------------------------------------------------------
// Peer-library baselines: a separate program, run to completion as a child
// process; its one JSON result line is returned. A failing peer fails the run.

json run_peer(const std::vector<std::string>& argv_strings) {
    std::vector<char*> argv;
    for (const auto& a : argv_strings)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int out[2];
    if (pipe(out) != 0) die("pipe() failed");
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) die("fork() failed");
    if (pid == 0) { // only async-signal-safe calls until exec
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execv(argv[0], argv.data());
        const char msg[] = "tether bench: FAILED: cannot execute the peer program\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(127);
    }
    close(out[1]);
    std::string text;
    char buf[4096];
    for (;;) {
        const ssize_t r = read(out[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        text.append(buf, static_cast<std::size_t>(r));
    }
    close(out[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die(argv_strings[0] + " " + argv_strings[1] + " failed (status " + std::to_string(status) +
            "); its message is above");
    const auto at = text.rfind("\n{");
    const std::string line = text.substr(at == std::string::npos ? 0 : at + 1);
    json j;
    try {
        j = json::parse(line);
    } catch (const std::exception& e) {
        die(argv_strings[0] + " printed no result line ('" + text + "'): " + e.what());
    }
    if (!j.value("optimized", false)) die(argv_strings[0] + " was built without optimisation");
    return j;
}

// ---------------------------------------------------------------------------
// 1. Receive throughput

struct throughput_result {
    double seconds = 0;
    double client_cpu = 0;
};

throughput_result receive_plain(bench::server_process& srv, std::size_t n, std::size_t size) {
    asio::io_context io;
    std::size_t count = 0, bytes = 0;
    std::int64_t t0 = 0, t1 = 0, c0 = 0, c1 = 0;
    bool opened = false;
    run_scoped(io, [&] {
        wspp_plain c;
        quiet(c, io);
        c.set_open_handler([&](websocketpp::connection_hdl) {
            opened = true;
            t0 = mono_ns();
            c0 = bench::thread_cpu_ns();
        });
        c.set_message_handler([&](websocketpp::connection_hdl h, wspp_plain::message_ptr m) {
            bytes += m->get_payload().size();
            if (++count == n) {
                t1 = mono_ns();
                c1 = bench::thread_cpu_ns();
                std::error_code ec;
                c.close(h, websocketpp::close::status::normal, "", ec);
            }
        });
        c.set_fail_handler(
            [&](websocketpp::connection_hdl) { die("plain client: the connection failed"); });
        std::error_code ec;
        auto con = c.get_connection(srv.ws_url("/stream"), ec);
        if (ec) die("plain client: " + ec.message());
        c.connect(con);
        io.run();
    });
    if (!opened) die("plain client: never opened");
    if (count != n || bytes != n * size)
        die("plain client received " + std::to_string(count) + " messages (" +
            std::to_string(bytes) + " bytes), expected exactly " + std::to_string(n));
    return {(t1 - t0) / 1e9, (c1 - c0) / 1e9};
}

throughput_result receive_tether(bench::server_process& srv, std::size_t n, std::size_t size) {
    asio::io_context io;
    std::size_t count = 0, bytes = 0;
    std::int64_t t0 = 0, t1 = 0, c0 = 0, c1 = 0;
    bool opened = false, stopped = false;
    run_scoped(io, [&] {
        tether::websocketpp_transport_options to;
        to.ping_interval =
            0ms; // the server writes raw frames; keep websocketpp from writing pongs among them
        tether::client_options o;
        o.url = srv.ws_url("/stream");
        tether::basic_reconnecting_client<tether::websocketpp_transport> c(
            o, tether::websocketpp_transport(io, to));
        c.on_open([&](const tether::open_event&) {
            opened = true;
            t0 = mono_ns();
            c0 = bench::thread_cpu_ns();
        });
        c.on_message([&](const tether::message_view& m) {
            bytes += m.data.size();
            if (++count == n) {
                t1 = mono_ns();
                c1 = bench::thread_cpu_ns();
                c.stop();
            }
        });
        c.on_close([&](const tether::close_event& ev, const tether::reconnect_decision&) {
            if (count != n)
                die("tether client: closed after " + std::to_string(count) +
                    " messages: " + ev.detail);
        });
        c.on_stopped([&](const tether::stopped_event&) { stopped = true; });
        c.start();
        io.run();
    });
    if (!opened) die("tether client: never opened");
    if (!stopped) die("tether client: did not stop");
    if (count != n || bytes != n * size)
        die("tether client received " + std::to_string(count) + " messages (" +
            std::to_string(bytes) + " bytes), expected exactly " + std::to_string(n));
    return {(t1 - t0) / 1e9, (c1 - c0) / 1e9};
}

/// A peer program's run against `srv`: the figures it measured itself.
throughput_result receive_peer(const bench::server_process& srv, const std::string& program,
                               const std::string& variant, std::size_t n, std::size_t size) {
    std::vector<std::string> argv{
        program,   "throughput",      "--port", std::to_string(srv.ws_port()), "--path", "/stream",
        "--count", std::to_string(n), "--size", std::to_string(size)};
    if (variant.rfind("beast_", 0) == 0) { // beast_async, beast_sync, beast_tether
        argv.push_back("--variant");
        argv.push_back(variant.substr(6));
    }
    const json j = run_peer(argv);
    if (j.value("kind", "") != "throughput" || j.value("variant", "") != variant ||
        j.value("count", std::size_t{0}) != n || j.value("bytes", std::size_t{0}) != n * size)
        die(variant + ": unexpected result " + j.dump());
    return {j.at("seconds").get<double>(), j.at("client_cpu_s").get<double>()};
}

int cmd_throughput(const args& a) {
    const std::size_t size = a.num("size", 64), n = a.num("count", 100000), reps = a.num("reps", 5);
    const std::string only = a.str("only", "all"), beast = a.str("beast", ""),
                      lws = a.str("lws", "");
    // A B A B ...: every variant once per round, in this order.
    std::vector<std::string> variants{"plain", "tether"};
    if (!beast.empty()) {
        variants.push_back("beast_async");
        variants.push_back("beast_sync");
        variants.push_back("beast_tether"); // tether's client on beast_transport
    }
    if (!lws.empty()) variants.push_back("lws");
    if (only != "all" && only != "both" &&
        std::find(variants.begin(), variants.end(), only) == variants.end())
        die("--only is plain, tether, beast_async, beast_sync, beast_tether (with --beast), lws "
            "(with --lws) or all");
    bench::server_process srv({bench::server_config::mode::stream, size, n});
    for (std::size_t rep = 0; rep < reps; ++rep) {
        for (const std::string& variant : variants) {
            if (only != "all" && only != "both" && only != variant) continue;
            bench::watchdog(600, "throughput run");
            throughput_result r;
            if (variant == "plain")
                r = receive_plain(srv, n, size);
            else if (variant == "tether")
                r = receive_tether(srv, n, size);
            else
                r = receive_peer(srv, variant == "lws" ? lws : beast, variant, n, size);
            const std::string sent = srv.read_line(60000);
            std::size_t sent_n = 0;
            long long server_cpu = 0, server_wall = 0;
            if (std::sscanf(sent.c_str(), "sent %zu %lld %lld", &sent_n, &server_cpu,
                            &server_wall) != 3 ||
                sent_n != n)
                die("server: '" + sent + "'");
            alarm(0);
            json j;
            j["kind"] = "throughput";
            j["variant"] = variant;
            j["size"] = size;
            j["count"] = n;
            j["rep"] = rep;
            j["seconds"] = r.seconds;
            j["msgs_per_s"] = static_cast<double>(n) / r.seconds;
            j["client_cpu_s"] = r.client_cpu;
            j["server_cpu_s"] = server_cpu / 1e9;
            j["server_wall_s"] = server_wall / 1e9;
            bench::emit(j);
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------
// 2. Reconnect after an expiry close

std::int64_t close_stamp(const tether::close_event& ev) {
    const auto at = ev.reason.find('@');
    if (ev.code != 4001 || at == std::string::npos)
        die("expected close 4001 'Token expired @<ns>', got " + std::to_string(ev.code) + " '" +
            ev.reason + "' " + ev.detail);
    return std::stoll(ev.reason.substr(at + 1));
}

tether::default_close_policy seed_close_policy() {
    tether::default_close_policy::options o;
    o.application_codes =
        tether::close_action::refresh_token_then_reconnect; // 4001: the seed's token expiry
    return tether::default_close_policy(o);
}

tether::oauth2_options token_options(const bench::server_process& srv) {
    tether::oauth2_options oo;
    oo.token_url = "http://127.0.0.1:" + std::to_string(srv.token_port()) + "/oauth/token";
    oo.client_id = "bench";
    oo.client_secret = tether::secret("bench-secret");
    return oo;
}

/// The baselines, measured between the client's cycles: one token fetch with
/// the same oauth2 policy, one fresh connect with a plain websocketpp client.
class baselines {
public:
    baselines(asio::io_context& io, const bench::server_process& srv)
        : io_(io), fetcher_(io.get_executor(), token_options(srv)), url_(srv.ws_url("/baseline")) {
        quiet(client_, io);
        client_.set_open_handler([this](websocketpp::connection_hdl h) {
            connect_ms.push_back((mono_ns() - t0_) / 1e6);
            std::error_code ec;
            client_.close(h, websocketpp::close::status::normal, "", ec);
        });
        client_.set_close_handler(
            [this](websocketpp::connection_hdl) { asio::post(io_, std::move(done_)); });
        client_.set_fail_handler(
            [](websocketpp::connection_hdl) { die("baseline connect failed"); });
    }

    void fetch(std::function<void()> done, bool timed = true) {
        const std::int64_t t0 = mono_ns();
        fetcher_.async_get_token([this, t0, timed, done = std::move(done)](tether::token_result r) {
            if (r.error) die("baseline token fetch failed: " + r.detail);
            if (timed) fetch_ms.push_back((mono_ns() - t0) / 1e6);
            token_ = std::string(r.value.value.reveal());
            asio::post(io_, done);
        });
    }

    void connect(std::function<void()> done) {
        done_ = std::move(done);
        t0_ = mono_ns();
        std::error_code ec;
        auto con = client_.get_connection(url_, ec);
        if (ec) die("baseline connect: " + ec.message());
        con->append_header("Authorization", "Bearer " + token_);
        client_.connect(con);
    }

    std::vector<double> fetch_ms, connect_ms;

private:
    asio::io_context& io_;
    tether::oauth2_client_credentials fetcher_;
    wspp_plain client_;
    std::string url_, token_;
    std::int64_t t0_ = 0;
    std::function<void()> done_;
};

json summary(const std::vector<double>& v) {
    return {{"median_ms", bench::median(v)}, {"p99_ms", bench::percentile(v, 99)}, {"n", v.size()}};
}

/// Reconnects that need a token fetch: the client's policy is oauth2 itself.
void reconnect_fetching(bench::server_process& srv, std::size_t cycles) {
    asio::io_context io;
    std::vector<double> cycle_ms, sum_ms, close_event_ms;
    run_scoped(io, [&] {
        baselines base(io, srv);
        tether::client_options o;
        o.url = srv.ws_url("/seed/fetch");
        o.auth_failure_uptime =
            0ms; // cycles are short: an expiry close is never a quick rejection here
        using client_t = tether::basic_reconnecting_client<tether::websocketpp_transport,
                                                           tether::oauth2_client_credentials>;
        client_t c(o, tether::websocketpp_transport(io),
                   tether::oauth2_client_credentials(io.get_executor(), token_options(srv)),
                   seed_close_policy());
        std::size_t opens = 0;
        std::int64_t closed_at = 0, close_seen_at = 0;
        std::uint64_t fetches_at_close = 0;
        bool stopping = false;
        std::vector<double> token_ms;
        std::int64_t token_at = 0;
        c.on_token([&](const tether::token_event&) { token_at = mono_ns(); });
        c.on_close([&](const tether::close_event& ev, const tether::reconnect_decision& d) {
            if (stopping) return;
            closed_at = close_stamp(ev);
            close_seen_at = mono_ns();
            fetches_at_close = c.token_policy().requests_started();
            if (d.action != tether::close_action::refresh_token_then_reconnect)
                die("4001 did not mean refresh");
        });
        c.on_open([&](const tether::open_event&) {
            if (++opens > 1) {
                const std::int64_t now = mono_ns();
                cycle_ms.push_back((now - closed_at) / 1e6);
                close_event_ms.push_back((close_seen_at - closed_at) / 1e6);
                token_ms.push_back((token_at - close_seen_at) / 1e6);
                if (c.token_policy().requests_started() != fetches_at_close + 1)
                    die("the reconnect did not fetch exactly one token");
            }
            if (opens > cycles) {
                stopping = true;
                c.stop();
                return;
            }
            // B between the A cycles: one fetch, one connect, then the expiry close
            base.fetch([&] { base.connect([&] { srv.command('x'); }); });
        });
        c.on_stopped([&](const tether::stopped_event& e) {
            if (!stopping) die("client stopped: " + e.reason.message());
        });
        c.start();
        io.run();
        if (cycle_ms.size() != cycles)
            die("only " + std::to_string(cycle_ms.size()) + " reconnects");
        for (std::size_t i = 0; i < cycles; ++i)
            sum_ms.push_back(base.fetch_ms.at(i) + base.connect_ms.at(i));
        json j{{"kind", "reconnect"},
               {"variant", "fetch"},
               {"cycles", cycles},
               {"reconnect", summary(cycle_ms)},
               {"close_frame_to_on_close", summary(close_event_ms)},
               {"on_close_to_on_token", summary(token_ms)},
               {"baseline_fetch", summary(base.fetch_ms)},
               {"baseline_connect", summary(base.connect_ms)},
               {"baseline", summary(sum_ms)}};
        bench::emit(j);
    });
}

/// Reconnects with the token already fresh: a shared source refreshed it in
/// the background (here: forced through a second handle) before the close.
void reconnect_fresh(bench::server_process& srv, std::size_t cycles) {
    asio::io_context io;
    std::vector<double> cycle_ms, close_event_ms;
    run_scoped(io, [&] {
        baselines base(io, srv);
        using source_t = tether::shared_token_source<tether::oauth2_client_credentials>;
        source_t source(tether::oauth2_client_credentials(io.get_executor(), token_options(srv)),
                        tether::steady_timing(io.get_executor()));
        auto other = source.handle();
        tether::client_options o;
        o.url = srv.ws_url("/seed/fresh");
        o.auth_failure_uptime = 0ms;
        using client_t =
            tether::basic_reconnecting_client<tether::websocketpp_transport, source_t::handle_type>;
        client_t c(o, tether::websocketpp_transport(io), source.handle(), seed_close_policy());
        std::size_t opens = 0;
        std::int64_t closed_at = 0, close_seen_at = 0;
        std::uint64_t fetches_at_close = 0;
        bool stopping = false;
        const auto refresh_then_close = [&] {
            // the background refresh: drop the current token, fetch the next
            other.async_get_token([&](tether::token_result r) {
                if (r.error) die("token: " + r.detail);
                asio::post(io, [&, current = r.value.value] {
                    other.invalidate(current);
                    other.async_get_token([&, current](tether::token_result r2) {
                        if (r2.error || r2.value.value == current)
                            die("the background refresh failed");
                        asio::post(io, [&] { srv.command('x'); });
                    });
                });
            });
        };
        c.on_close([&](const tether::close_event& ev, const tether::reconnect_decision&) {
            if (stopping) return;
            closed_at = close_stamp(ev);
            close_seen_at = mono_ns();
            fetches_at_close = source.stats().fetches;
        });
        c.on_open([&](const tether::open_event&) {
            if (++opens > 1) {
                const std::int64_t now = mono_ns();
                cycle_ms.push_back((now - closed_at) / 1e6);
                close_event_ms.push_back((close_seen_at - closed_at) / 1e6);
                if (source.stats().fetches != fetches_at_close)
                    die("the reconnect fetched a token: it was not fresh");
            }
            if (opens > cycles) {
                stopping = true;
                c.stop();
                return;
            }
            base.connect(refresh_then_close);
        });
        c.on_stopped([&](const tether::stopped_event& e) {
            if (!stopping) die("client stopped: " + e.reason.message());
            io.stop(); // the source's refresh timer (an hour away) would keep run() busy
        });
        base.fetch([&] { c.start(); }, false); // a token for the baseline connects
        io.run();
        if (cycle_ms.size() != cycles)
            die("only " + std::to_string(cycle_ms.size()) + " reconnects");
        json j{{"kind", "reconnect"},
               {"variant", "fresh"},
               {"cycles", cycles},
               {"reconnect", summary(cycle_ms)},
               {"close_frame_to_on_close", summary(close_event_ms)},
               {"baseline", summary(base.connect_ms)}};
        bench::emit(j);
    });
}

/// The same as reconnect_fresh with tether's client on beast_transport: run
/// by tether_bench_beast (Boost mode), which sends 'x' on the server's command
/// pipe itself; its baseline is a raw Beast connect.
void reconnect_fresh_beast(bench::server_process& srv, const std::string& program,
                           std::size_t cycles) {
    const std::int64_t closed0 = bench::server_process::field(srv.stats(), "closed_4001");
    json j = run_peer({program, "reconnect", "--port", std::to_string(srv.ws_port()),
                       "--token-port", std::to_string(srv.token_port()), "--command-fd",
                       std::to_string(srv.command_fd()), "--cycles", std::to_string(cycles)});
    if (j.value("kind", "") != "reconnect" || j.value("variant", "") != "beast_fresh" ||
        j.value("cycles", std::size_t{0}) != cycles)
        die("beast reconnect: unexpected result " + j.dump());
    const std::int64_t closes = bench::server_process::field(srv.stats(), "closed_4001") - closed0;
    if (closes != static_cast<std::int64_t>(cycles))
        die("beast reconnect: the server sent " + std::to_string(closes) +
            " 4001 closes, expected " + std::to_string(cycles));
    j.erase("optimized");
    bench::emit(j);
}

int cmd_reconnect(const args& a) {
    const std::size_t cycles = a.num("cycles", 200);
    const std::string beast = a.str("beast", "");
    bench::server_process srv({bench::server_config::mode::seed, 0, 0});
    bench::watchdog(120, "reconnect (token fetch)");
    reconnect_fetching(srv, cycles);
    bench::watchdog(120, "reconnect (token already fresh)");
    reconnect_fresh(srv, cycles);
    if (!beast.empty()) {
        bench::watchdog(120, "reconnect (token already fresh, tether on beast_transport)");
        reconnect_fresh_beast(srv, beast, cycles);
    }
    alarm(0);
    return 0;
}

// ---------------------------------------------------------------------------
// 3. Refresh storm

int cmd_storm(const args& a) {
    const std::size_t k = a.num("clients", 1000), window = a.num("window", 128);
    bench::raise_nofile(static_cast<rlim_t>(2 * k + 1024));
    bench::server_process srv({bench::server_config::mode::seed, 0, 0});
    bench::watchdog(300, "storm");
    asio::io_context io;
    using source_t = tether::shared_token_source<tether::oauth2_client_credentials>;
    using client_t =
        tether::basic_reconnecting_client<tether::websocketpp_transport, source_t::handle_type>;
    source_t source(tether::oauth2_client_credentials(io.get_executor(), token_options(srv)),
                    tether::steady_timing(io.get_executor()));
    std::vector<std::unique_ptr<client_t>> clients;
    std::size_t started = 0, opened = 0, reopened = 0, closes = 0;
    std::int64_t first_close = 0, all_open_again = 0;
    bool storm = false;
    std::int64_t requests_before = 0;
    asio::steady_timer settle(io);
    std::function<void()> start_next = [&] {
        if (started == k) return;
        const std::size_t i = started++;
        tether::client_options o;
        o.url = srv.ws_url("/seed/storm-" + std::to_string(i)); // default auth_failure_uptime (2 s)
        clients.push_back(std::make_unique<client_t>(o, tether::websocketpp_transport(io),
                                                     source.handle(), seed_close_policy()));
        client_t& c = *clients.back();
        c.on_open([&](const tether::open_event&) {
            if (!storm) {
                if (++opened == k) {
                    // older than auth_failure_uptime, so the close is an expiry, not a rejection
                    settle.expires_after(2200ms);
                    settle.async_wait([&](std::error_code) {
                        requests_before =
                            bench::server_process::field(srv.stats(), "token_requests");
                        storm = true;
                        srv.command('x');
                    });
                }
                start_next();
                return;
            }
            if (++reopened == k) {
                all_open_again = mono_ns();
                io.stop();
            }
        });
        c.on_close([&](const tether::close_event& ev, const tether::reconnect_decision&) {
            if (!storm) die("a connection closed before the storm: " + ev.detail);
            const std::int64_t at = close_stamp(ev);
            if (closes++ == 0 || at < first_close) first_close = at;
        });
        c.on_stopped(
            [](const tether::stopped_event& e) { die("a client stopped: " + e.reason.message()); });
        c.start();
    };
    for (std::size_t i = 0; i < window; ++i)
        start_next();
    io.run();
    if (reopened != k || closes != k)
        die("storm: " + std::to_string(reopened) + " of " + std::to_string(k) + " reopened");
    const std::string st = srv.stats();
    json j{{"kind", "storm"},
           {"clients", k},
           {"token_requests", bench::server_process::field(st, "token_requests") - requests_before},
           {"source_fetches", source.stats().fetches},
           {"handshakes_rejected", bench::server_process::field(st, "rejected")},
           {"closes_4001", bench::server_process::field(st, "closed_4001")},
           {"close_spread_ms", bench::server_process::field(st, "close_spread_ns") / 1e6},
           {"all_open_again_ms", (all_open_again - first_close) / 1e6}};
    bench::emit(j);
    alarm(0);
    srv.quit();
    std::_Exit(0); // skip tearing down a thousand clients one by one
}

// ---------------------------------------------------------------------------
// 5. Idle connections

int cmd_idle(const args& a) {
    const std::size_t k = a.num("count", 1000), window = a.num("window", 128);
    const std::string variant = a.str("variant", "plain");
    if (variant != "plain" && variant != "tether" && variant != "beast" &&
        variant != "beast_tether" && variant != "lws")
        die("--variant is plain, tether, beast, beast_tether or lws (the last three with --peer "
            "PATH)");
    bench::raise_nofile(static_cast<rlim_t>(k + 1024));
    bench::server_process srv({bench::server_config::mode::idle, 0, 0});
    bench::watchdog(300, "idle connections");
    if (variant == "beast" || variant == "beast_tether" || variant == "lws") {
        const std::string program = a.str("peer", "");
        if (program.empty()) die("--variant " + variant + " needs --peer PATH");
        std::vector<std::string> argv{program,    "idle",
                                      "--port",   std::to_string(srv.ws_port()),
                                      "--path",   "/idle",
                                      "--count",  std::to_string(k),
                                      "--window", std::to_string(window)};
        if (variant == "beast_tether") { // tether_bench_beast idle --variant tether
            argv.push_back("--variant");
            argv.push_back("tether");
        }
        json j = run_peer(argv);
        if (j.value("kind", "") != "idle" || j.value("variant", "") != variant ||
            j.value("count", std::size_t{0}) != k)
            die(variant + ": unexpected result " + j.dump());
        const std::string st = srv.stats();
        if (bench::server_process::field(st, "opened") != static_cast<std::int64_t>(k))
            die(variant + ": the server saw " + st + ", expected " + std::to_string(k) + " opened");
        j.erase("optimized");
        bench::emit(j);
        alarm(0);
        srv.quit();
        return 0;
    }
    asio::io_context io;
    const std::string url = srv.ws_url("/idle");
    std::size_t started = 0, opened = 0;
    std::int64_t t0 = 0, t1 = 0;
    long rss0 = 0;
    const auto all_open = [&] {
        t1 = mono_ns();
        io.stop();
    };

    wspp_plain plain;
    std::vector<std::unique_ptr<tether::basic_reconnecting_client<tether::websocketpp_transport>>>
        clients;
    std::function<void()> start_next;
    if (variant == "plain") {
        quiet(plain, io);
        plain.set_open_handler([&](websocketpp::connection_hdl) {
            if (++opened == k) return all_open();
            start_next();
        });
        plain.set_fail_handler(
            [](websocketpp::connection_hdl) { die("plain: a connection failed"); });
        plain.set_close_handler(
            [](websocketpp::connection_hdl) { die("plain: an idle connection closed"); });
        start_next = [&] {
            if (started == k) return;
            ++started;
            std::error_code ec;
            auto con = plain.get_connection(url, ec);
            if (ec) die("plain: " + ec.message());
            plain.connect(con);
        };
    } else {
        clients.reserve(k);
        start_next = [&] {
            if (started == k) return;
            ++started;
            tether::client_options o;
            o.url = url;
            clients.push_back(
                std::make_unique<tether::basic_reconnecting_client<tether::websocketpp_transport>>(
                    o, tether::websocketpp_transport(io)));
            auto& c = *clients.back();
            c.on_open([&](const tether::open_event&) {
                if (++opened == k) return all_open();
                start_next();
            });
            c.on_close([](const tether::close_event& ev, const tether::reconnect_decision&) {
                die("tether: an idle connection closed: " + ev.detail);
            });
            c.start();
        };
    }
    rss0 = bench::proc_status_kb("VmRSS");
    const int threads0 = bench::thread_count();
    t0 = mono_ns();
    for (std::size_t i = 0; i < window; ++i)
        start_next();
    io.run();
    if (opened != k)
        die("only " + std::to_string(opened) + " of " + std::to_string(k) + " connections opened");
    io.restart();
    io.run_for(200ms); // let the last handlers settle before reading memory
    const long rss1 = bench::proc_status_kb("VmRSS");
    json j{{"kind", "idle"},
           {"variant", variant},
           {"count", k},
           {"rss_before_kb", rss0},
           {"rss_after_kb", rss1},
           {"kb_per_connection", static_cast<double>(rss1 - rss0) / static_cast<double>(k)},
           {"threads_before", threads0},
           {"threads", bench::thread_count()},
           {"open_all_s", (t1 - t0) / 1e9}};
    bench::emit(j);
    alarm(0);
    srv.quit();
    std::_Exit(0); // skip tearing down thousands of connections one by one
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    const std::string cmd = argc > 1 ? argv[1] : "";
    bench::print_env("tether_bench " + cmd);
    try {
        const args a(argc, argv, 2);
        if (cmd == "throughput") return cmd_throughput(a);
        if (cmd == "reconnect") return cmd_reconnect(a);
        if (cmd == "storm") return cmd_storm(a);
        if (cmd == "idle") return cmd_idle(a);
    } catch (const std::exception& e) {
        die(std::string("exception: ") + e.what());
    }
    die("usage: tether_bench throughput|reconnect|storm|idle [--name value]...");
}
