// tether-cli: a command-line client for token-protected WebSockets, built
// from tether's public API only. JSON lines on stdout, diagnostics on stderr.
//
// The WebSocket transport is websocketpp_transport; built in Boost mode
// (TETHER_USE_BOOST_ASIO, CMake: -DTETHER_EXAMPLES_TRANSPORT=beast) it is
// beast_transport, and the program's own I/O runs on Boost.Asio.
#include "cli_options.hpp"

#include <tether/backoff/exponential_backoff.hpp>
#include <tether/basic_reconnecting_client.hpp>
#include <tether/close_policy/close_code_table.hpp>
#include <tether/token_policy/no_token.hpp>
#include <tether/token_policy/oauth2_client_credentials.hpp>
#include <tether/token_policy/shared_token_source.hpp>
#include <tether/version.hpp>

#if defined(TETHER_USE_BOOST_ASIO)
#include <tether/transport/beast_transport.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/system/error_code.hpp>
#else
#include <tether/transport/websocketpp_transport.hpp>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read_until.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#endif

#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using json = nlohmann::ordered_json;
using namespace tether_cli;

// The transport, and the Asio the program's own I/O uses (tether::net).
namespace net = tether::net;
#if defined(TETHER_USE_BOOST_ASIO)
using cli_transport = tether::beast_transport;
using io_error_code = boost::system::error_code;
#else
using cli_transport = tether::websocketpp_transport;
using io_error_code = std::error_code;
#endif

constexpr int exit_ok = 0;
constexpr int exit_usage = 2;
constexpr int exit_failure = 3;
constexpr int exit_interrupted = 130;

/// Every credential the program has seen. Each output line is scrubbed of
/// them before it is written: a server that echoes the Authorization header
/// in a close reason must not get the token onto our output.
class redactor {
public:
    void add(std::string s) {
        if (s.size() < 4) return; // too short to scrub without mangling ordinary text
        std::lock_guard<std::mutex> lock(mutex_);
        if (std::find(known_.begin(), known_.end(), s) != known_.end()) return;
        if (known_.size() == 64) known_.erase(known_.begin());
        known_.push_back(std::move(s));
    }
    std::string scrub(std::string line) const {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto& k : known_)
            for (auto at = line.find(k); at != std::string::npos; at = line.find(k, at))
                line.replace(at, k.size(), "[redacted]");
        return line;
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> known_;
};

/// JSON lines on stdout (with --raw: payloads only), diagnostics on stderr;
/// all scrubbed.
class output {
public:
    output(std::shared_ptr<redactor> r, bool quiet, bool raw)
        : redact_(std::move(r)), quiet_(quiet), raw_(raw) {}

    void event(const char* name, const json& fields = json::object()) {
        if (raw_) return; // --raw: stdout carries payloads only
        json line;
        line["event"] = name;
        line["t_ms"] =
            std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start_).count();
        for (const auto& item : fields.items())
            line[item.key()] = item.value();
        // Server text is not always valid UTF-8; replace rather than throw.
        write(redact_->scrub(line.dump(-1, ' ', false, json::error_handler_t::replace)) + "\n");
    }

    /// A received message: a "message" event, or with --raw its payload on a line.
    void message(const tether::message_view& m) {
        const bool binary = m.kind == tether::message_kind::binary;
        if (raw_) {
            // A binary payload is scrubbed before it is encoded: base64 would hide a token.
            write(binary ? format_raw(redact_->scrub(std::string(m.data)), true) + "\n"
                         : redact_->scrub(format_raw(m.data, false)) + "\n");
            return;
        }
        json f{{"bytes", m.data.size()}};
        if (binary)
            f["base64"] = base64(redact_->scrub(std::string(m.data)));
        else
            f["text"] = std::string(m.data);
        event("message", f);
    }

    /// Called once when stdout cannot be written any more.
    std::function<void()> on_broken;

    void diag(const std::string& what) {
        if (quiet_) return;
        const std::string text = redact_->scrub("tether-cli: " + what) + "\n";
        std::fwrite(text.data(), 1, text.size(), stderr);
    }

private:
    void write(const std::string& text) {
        const bool written = std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
        // one complete line at a time for `jq` and `tail -f`
        if ((!written || std::fflush(stdout) != 0) && !broken_) {
            broken_ = true; // the reader went away (`| head`): nobody wants more
            if (on_broken) on_broken();
        }
    }

    using clock = std::chrono::steady_clock;
    std::shared_ptr<redactor> redact_;
    bool quiet_;
    bool raw_;
    bool broken_ = false;
    clock::time_point start_ = clock::now();
};

/// The lifetime each token had when the issuer handed it out. The shared
/// token source announces a cached token's remaining life instead (so that
/// --renew-before counts from now); the token event shows both.
class issued_lifetimes {
public:
    using lifetime = std::optional<std::chrono::seconds>;

    void issued(const tether::secret& t, lifetime life) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (known_.size() == 16) known_.erase(known_.begin());
        known_.emplace_back(key(t), life); // a hash: no further copy of the token
    }
    /// A token was handed to the client: remember its issued lifetime for the
    /// token event that follows (one request at a time per client).
    void handed_out(const tether::secret& t) {
        std::lock_guard<std::mutex> lock(mutex_);
        last_ = std::nullopt;
        for (const auto& k : known_)
            if (k.first == key(t)) last_ = k.second;
    }
    lifetime last() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return last_;
    }

private:
    static std::size_t key(const tether::secret& t) {
        return std::hash<std::string_view>{}(t.reveal());
    }
    mutable std::mutex mutex_;
    std::vector<std::pair<std::size_t, lifetime>> known_;
    lifetime last_;
};

/// A TokenPolicy decorator that shows every token it passes on to `seen`
/// (the redactor, the issued lifetimes).
template <class Inner> class recording_token_policy {
public:
    recording_token_policy(Inner inner, std::function<void(const tether::token&)> seen)
        : inner_(std::move(inner)), seen_(std::move(seen)) {}

    template <class Handler> void async_get_token(Handler&& handler) {
        inner_.async_get_token(
            [seen = seen_, h = std::forward<Handler>(handler)](tether::token_result res) mutable {
                if (!res.error) seen(res.value);
                h(std::move(res));
            });
    }
    void invalidate(const tether::secret& s) { inner_.invalidate(s); }
    void cancel() { inner_.cancel(); }

private:
    Inner inner_;
    std::function<void(const tether::token&)> seen_;
};

/// The URL without query or fragment, for diagnostics (a query may carry a credential).
std::string display_url(const std::string& url) { return url.substr(0, url.find_first_of("?#")); }

long long to_ms(std::chrono::nanoseconds d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

/// The `stopped` event's reason for a final error code.
const char* stop_reason_name(const std::error_code& ec) {
    using tether::error;
    if (ec == error::unauthorized || ec == error::invalid_credentials ||
        ec == error::token_rejected || ec == error::token_unavailable)
        return "credentials_rejected";
    if (ec == error::stop_close_code) return "stop_code";
    if (ec == error::handshake_refused) return "handshake_refused";
    if (ec == error::tls_verification_failed) return "tls_verification_failed";
    if (ec == error::proxy_auth_required) return "proxy_auth_required";
    if (ec == error::proxy_denied) return "proxy_denied";
    if (ec == error::retries_exhausted) return "attempts_exhausted";
    if (ec == error::insecure_transport) return "insecure_transport";
    if (ec == error::invalid_url) return "invalid_url";
    return "failed";
}

/// --proxy URL, else the environment (https_proxy, http_proxy, no_proxy)
/// unless --no-proxy. Throws std::system_error (error::invalid_option) for a bad proxy URL.
tether::proxy_options cli_proxy(const cli_options& o) {
    const auto env = [](const char* name) -> const char* { return std::getenv(name); };
    if (o.proxy_url.empty())
        return o.no_proxy ? tether::proxy_options{} : tether::proxy_options::from_environment(env);
    auto p = tether::proxy_options::from_url(o.proxy_url);
    if (!o.no_proxy) {
        const char* np = env("no_proxy");
        if (!np || !*np) np = env("NO_PROXY");
        p.no_proxy = tether::no_proxy_list(np ? np : "");
    }
    return p;
}

cli_transport::options transport_options(const cli_options& o) {
    cli_transport::options t;
    t.proxy = cli_proxy(o);
    switch (o.auth) {
    case token_location::header:
    case token_location::none: t.token_in = tether::token_placement::authorization_header; break;
    case token_location::query:
        t.token_in = tether::token_placement::query_parameter;
        t.token_query_parameter = o.auth_name;
        break;
    case token_location::subprotocol:
        t.token_in = tether::token_placement::subprotocol;
        t.token_subprotocol_prefix = o.auth_name;
        break;
    }
    t.user_agent = "tether-cli/" + std::to_string(TETHER_VERSION_MAJOR) + "." +
                   std::to_string(TETHER_VERSION_MINOR) + "." +
                   std::to_string(TETHER_VERSION_PATCH);
    t.tls.ca_file = o.ca_file;
    t.tls.insecure_skip_verify_i_know_what_i_am_doing = o.insecure_skip_verify;
    t.allow_insecure_token_transport = o.allow_insecure_token_transport;
    if (o.ping_interval) t.ping_interval = *o.ping_interval;
    if (o.pong_timeout) t.pong_timeout = *o.pong_timeout;
    if (o.idle_timeout) t.idle_timeout = *o.idle_timeout;
    if (o.handshake_timeout) t.handshake_timeout = *o.handshake_timeout;
    return t;
}

tether::client_options client_options(const cli_options& o) {
    tether::client_options c;
    c.url = o.url;
    c.headers = o.headers;
    c.subprotocols = o.subprotocols;
    c.auth_failure_limit = o.auth_failure_limit;
    c.max_attempts = o.max_attempts;
    // Room for a file piped to stdin while the connection is not open yet.
    c.queue_capacity = 65536;
    if (o.renew_before) c.renew_before_expiry = *o.renew_before;
    return c;
}

tether::exponential_backoff backoff(const cli_options& o) {
    tether::backoff_ladders ladders;
    for (tether::backoff_ladder* l : {&ladders.network, &ladders.auth, &ladders.overload}) {
        if (o.backoff_initial) l->initial = *o.backoff_initial;
        if (o.backoff_max) l->max = *o.backoff_max;
        if (l->initial > l->max) { // only one of the two was given
            if (o.backoff_max)
                l->initial = l->max;
            else
                l->max = l->initial;
        }
    }
    return tether::exponential_backoff(ladders);
}

/// Reads stdin lines and sends them. A pipe or socket is read asynchronously
/// on the io_context; a regular file is read at once (epoll cannot watch it).
template <class Client> class stdin_reader {
public:
    stdin_reader(net::io_context& io, Client& client, output& out, tether::message_kind kind)
        : descriptor_(io), client_(client), out_(out), kind_(kind) {}

    /// Returns the lines of a regular file to queue before start(), and
    /// starts reading a pipe.
    std::vector<std::string> start() {
        std::vector<std::string> lines;
        if (::isatty(STDIN_FILENO)) return lines;
        struct stat st {};
        if (::fstat(STDIN_FILENO, &st) != 0) return lines;
        if (S_ISREG(st.st_mode)) {
            std::string line;
            while (std::getline(std::cin, line))
                lines.push_back(trim(std::move(line)));
            return lines;
        }
        if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode)) return lines; // e.g. /dev/null
        const int fd = ::dup(STDIN_FILENO);
        if (fd < 0) return lines;
        io_error_code ec;
        descriptor_.assign(fd, ec);
        if (ec) {
            ::close(fd);
            out_.diag("cannot read stdin: " + ec.message());
            return lines;
        }
        read_next();
        return lines;
    }

    void cancel() {
        io_error_code ignored;
        descriptor_.close(ignored);
    }

private:
    static std::string trim(std::string line) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
    }

    void read_next() {
        net::async_read_until(descriptor_, buffer_, '\n', [this](io_error_code ec, std::size_t n) {
            if (!ec) {
                std::string line(net::buffers_begin(buffer_.data()),
                                 net::buffers_begin(buffer_.data()) +
                                     static_cast<std::ptrdiff_t>(n) - 1);
                buffer_.consume(n);
                send(trim(std::move(line)));
                return read_next();
            }
            if (ec == net::error::operation_aborted) return;
            if (buffer_.size() > 0) { // a last line without a line break
                std::string rest(net::buffers_begin(buffer_.data()),
                                 net::buffers_end(buffer_.data()));
                buffer_.consume(buffer_.size());
                send(trim(std::move(rest)));
            }
            if (ec != net::error::eof) out_.diag("stdin: " + ec.message());
        });
    }

    void send(std::string line) {
        if (line.empty()) return;
        if (const auto ec = client_.send(std::move(line), kind_))
            out_.diag("a line from stdin was not sent: " + ec.message());
    }

    net::posix::stream_descriptor descriptor_;
    net::streambuf buffer_;
    Client& client_;
    output& out_;
    tether::message_kind kind_;
};

template <class TokenPolicy>
int run(const cli_options& o, net::io_context& io, TokenPolicy token_policy, bool has_token,
        std::function<std::uint64_t()> token_fetches, const issued_lifetimes& lifetimes,
        output& out) {
    using client_type =
        tether::basic_reconnecting_client<cli_transport, TokenPolicy, tether::close_code_table<>,
                                          tether::exponential_backoff>;
    tether::client_options copts = client_options(o);
    tether::close_code_table<> close_policy = o.close_policy();
    client_type client(copts, cli_transport(io, transport_options(o)), std::move(token_policy),
                       std::move(close_policy), backoff(o));

    int exit_code = exit_failure;
    const char* local_stop = nullptr; // why we called stop(), if we did
    std::uint64_t messages = 0;
    bool stopped = false;

    net::signal_set signals(io, SIGINT, SIGTERM);
    net::steady_timer deadline(io);
    const auto stdin_kind = o.binary ? tether::message_kind::binary : tether::message_kind::text;
    stdin_reader<client_type> input(io, client, out, stdin_kind);

    const auto request_stop = [&](const char* why) {
        if (local_stop || stopped) return;
        local_stop = why;
        client.stop();
    };

    out.on_broken = [&] { request_stop("stdout_closed"); };

    client.on_state_change([&](const tether::state_change_event& e) {
        if (e.to != tether::client_state::connecting) return;
        const auto attempt = client.counters().connects + 1; // counted right after this event
        out.event("connecting", {{"attempt", attempt}});
        out.diag("connecting to " + display_url(o.url) + " (attempt " + std::to_string(attempt) +
                 ")");
    });
    client.on_token([&](const tether::token_event& e) {
        if (!has_token) return;
        json f{{"source", e.fresh ? "fetch" : "cache"}};
        // expires_in_s: the lifetime as issued (OAuth expires_in); time_left_s:
        // what was left of it when the client got it (the library's token_event).
        const auto issued = lifetimes.last();
        f["expires_in_s"] = issued ? json(issued->count()) : json(nullptr);
        f["time_left_s"] = e.lifetime ? json(e.lifetime->count()) : json(nullptr);
        if (e.after_rejection) f["after_rejection"] = true;
        out.event("token", f);
        out.diag(std::string("token ") + (e.fresh ? "fetched" : "from cache") +
                 (issued ? ", issued for " + std::to_string(issued->count()) + " s" : "") +
                 (e.lifetime ? ", " + std::to_string(e.lifetime->count()) + " s left" : ""));
    });
    client.on_token_failure([&](const tether::token_failure_event& e) {
        out.event("token_error",
                  {{"error", e.error.message()}, {"detail", e.detail}, {"permanent", e.permanent}});
        out.diag("token request failed: " + e.error.message() +
                 (e.detail.empty() ? "" : " (" + e.detail + ")"));
    });
    client.on_open([&](const tether::open_event& e) {
        json f{{"attempt", e.attempt}, {"downtime_ms", to_ms(e.downtime)}};
        if (!e.subprotocol.empty()) f["subprotocol"] = e.subprotocol;
        if (e.handover) f["handover"] = true;
        out.event("open", f);
        out.diag(std::string(e.handover ? "handed over to a new connection" : "open") +
                 " (attempt " + std::to_string(e.attempt) + ")");
    });
    client.on_message([&](const tether::message_view& m) {
        if (o.max_messages != 0 && messages >= o.max_messages) return; // closing already
        ++messages;
        out.message(m);
        if (o.max_messages != 0 && messages == o.max_messages) request_stop("max_messages");
    });
    client.on_close([&](const tether::close_event& e, const tether::reconnect_decision& d) {
        json f{{"code", e.code}, {"reason", e.reason}, {"http_status", e.http_status}};
        if (e.error) f["error"] = e.error.message();
        if (!e.detail.empty()) f["detail"] = e.detail;
        f["action"] = tether::to_string(d.action);
        f["was_open"] = e.was_open;
        f["uptime_ms"] = to_ms(e.uptime);
        out.event("close", f);
        std::string what = "closed";
        if (e.http_status != 0)
            what = "handshake refused with HTTP " + std::to_string(e.http_status);
        else if (e.code != 0)
            what = "closed with " + std::to_string(e.code) +
                   (e.reason.empty() ? "" : " \"" + e.reason + "\"");
        if (e.error)
            what += ": " + e.error.message() + (e.detail.empty() ? "" : " (" + e.detail + ")");
        out.diag(what + " -> " + tether::to_string(d.action));
    });
    client.on_retry([&](const tether::retry_event& e) {
        out.event("retry", {{"delay_ms", e.delay.count()},
                            {"class", tether::to_string(e.cls)},
                            {"next_attempt", e.next_attempt}});
        out.diag("retrying in " + std::to_string(e.delay.count()) + " ms (" +
                 tether::to_string(e.cls) + ")");
    });
    client.on_dropped([&](const tether::dropped_message& d) {
        out.diag("message of " + std::to_string(d.data.size()) +
                 " bytes not sent: " + d.reason.message());
    });
    client.on_stopped([&](const tether::stopped_event& e) {
        stopped = true;
        const char* reason = nullptr;
        json error = nullptr;
        const bool server_normal_close =
            e.reason == tether::error::stop_close_code && e.last_close &&
            e.last_close->code == tether::close_code::normal && e.last_close->http_status == 0;
        const bool listed = [&] {
            for (const auto& r : o.stop_codes)
                if (r.first <= tether::close_code::normal && tether::close_code::normal <= r.last)
                    return true;
            return false;
        }();
        if (e.reason == tether::error::stopped_by_user && local_stop) {
            reason = local_stop;
            exit_code = exit_ok;
        } else if (server_normal_close && !listed) {
            reason = "closed_by_server";
            exit_code = exit_ok;
        } else {
            reason = stop_reason_name(e.reason);
            error = e.reason.message();
            exit_code = exit_failure;
        }
        out.event("stopped", {{"reason", reason}, {"error", error}});
        out.diag(std::string("stopped: ") + reason +
                 (error.is_null() ? "" : " (" + e.reason.message() + ")"));
        const auto c = client.counters();
        out.event("stats", {{"connects", c.connects},
                            {"opens", c.opens},
                            {"token_fetches", token_fetches()},
                            {"rejected_handshakes", c.rejected_handshakes},
                            {"messages", messages},
                            {"messages_sent", c.messages_sent},
                            {"retries", c.retries}});
        // Nothing of ours is left to do; pending timers (token refresh,
        // signals, stdin) must not keep the program alive.
        io.stop();
    });

    for (const auto& m : o.send_on_open)
        client.send_on_open(m);
    for (auto& line : input.start())
        if (!line.empty()) client.send(std::move(line), stdin_kind);

    signals.async_wait([&](std::error_code ec, int) {
        if (ec) return;
        out.diag("stopping (again to exit at once)");
        request_stop("signal");
        signals.async_wait([&](std::error_code ec2, int) {
            if (ec2) return;
            out.diag("interrupted");
            exit_code = exit_interrupted;
            io.stop();
        });
    });
    if (o.duration.count() > 0) {
        deadline.expires_after(o.duration);
        deadline.async_wait([&](std::error_code ec) {
            if (!ec) request_stop("duration");
        });
    }

    client.start();
    io.run();
    out.on_broken = nullptr; // it refers to this frame
    if (!stopped && exit_code != exit_interrupted) exit_code = exit_failure;
    return exit_code;
}

int usage_error(const std::string& why) {
    std::fprintf(stderr, "tether-cli: %s (see tether-cli --help)\n", why.c_str());
    return exit_usage;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    const parse_result parsed = parse_arguments(args);
    if (!parsed.ok()) return usage_error(parsed.error);
    const cli_options& o = parsed.options;
    if (o.show_help) {
        std::fputs(usage_text().c_str(), stdout);
        return exit_ok;
    }
    if (o.show_version) {
        std::printf("tether-cli %d.%d.%d\n", TETHER_VERSION_MAJOR, TETHER_VERSION_MINOR,
                    TETHER_VERSION_PATCH);
        return exit_ok;
    }

    auto redact = std::make_shared<redactor>();
    output out(redact, o.quiet, o.raw);
    issued_lifetimes lifetimes;
    if (o.insecure_skip_verify)
        out.diag(
            "WARNING: TLS verification is OFF: anyone on the path can read and change the traffic, "
            "token included");

    // A closed pipe on stdout must end the program with EPIPE, not a signal.
    std::signal(SIGPIPE, SIG_IGN);

    net::io_context io;
    try {
        {
            const tether::proxy_options proxy = cli_proxy(o);
            for (const auto* p : {&proxy.https, &proxy.http})
                if (*p && (*p)->has_credentials())
                    redact->add(std::string((*p)->password.reveal()));
            if (o.verbose && proxy.enabled()) out.diag("proxy: " + proxy.to_string());
        }
        if (o.token_url.empty())
            return run(
                o, io, tether::no_token{}, false, [] { return std::uint64_t(0); }, lifetimes, out);

        std::string why;
        tether::secret client_secret = load_client_secret(
            o, [](const char* name) { return std::getenv(name); }, why);
        if (!why.empty()) return usage_error(why);
        redact->add(std::string(client_secret.reveal()));

        tether::oauth2_options oauth;
        oauth.token_url = o.token_url;
        oauth.client_id = o.client_id;
        oauth.client_secret = std::move(client_secret);
        oauth.scope = o.scope;
        oauth.auth = o.token_auth == token_endpoint_auth::post ? tether::client_auth::request_body
                                                               : tether::client_auth::http_basic;
        oauth.tls.ca_file = o.ca_file;
        oauth.tls.insecure_skip_verify_i_know_what_i_am_doing = o.insecure_skip_verify;
        oauth.allow_plain_http_to_non_loopback_host = o.allow_plain_http_token_url;
        oauth.proxy = cli_proxy(o);
        if (o.verbose)
            oauth.trace = [&out](std::string_view note) {
                out.diag("token endpoint: " + std::string(note));
            };

        // The fetcher is wrapped to learn each token's lifetime as issued, the
        // handle to learn which token the client got.
        using fetcher = recording_token_policy<tether::oauth2_client_credentials>;
        tether::shared_token_source<fetcher> source(
            fetcher(tether::oauth2_client_credentials(io.get_executor(), std::move(oauth)),
                    [redact, &lifetimes](const tether::token& t) {
                        redact->add(std::string(t.value.reveal()));
                        lifetimes.issued(t.value, t.lifetime);
                    }),
            tether::steady_timing(io.get_executor()));
        recording_token_policy<tether::shared_token<fetcher>> policy(
            source.handle(), [redact, &lifetimes](const tether::token& t) {
                redact->add(std::string(t.value.reveal()));
                lifetimes.handed_out(t.value);
            });
        return run(
            o, io, std::move(policy), true, [&source] { return source.stats().fetches; }, lifetimes,
            out);
    } catch (const std::system_error& e) {
        // Options only the library can check (a CA file that does not load, a bad header for the
        // transport...)
        if (e.code() == tether::error::invalid_option) return usage_error(e.what());
        out.diag(std::string("error: ") + e.what());
        return exit_failure;
    } catch (const std::exception& e) {
        out.diag(std::string("error: ") + e.what());
        return exit_failure;
    }
}
