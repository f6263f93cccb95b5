// tether-cli: command-line parsing (no network, no websocketpp: cheap to test).
#include "cli_options.hpp"

#include <tether/detail/ascii.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

namespace tether_cli {

namespace {

struct usage_error {
    std::string what;
};

[[noreturn]] void fail(const std::string& what) { throw usage_error{what}; }

bool is_token(std::string_view s) { return tether::detail::is_http_token(s); }

std::uint64_t parse_count(const std::string& opt, const std::string& v, std::uint64_t max) {
    if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
        fail(opt + " expects a whole number, got '" + v + "'");
    errno = 0;
    const unsigned long long n = std::strtoull(v.c_str(), nullptr, 10);
    if (errno == ERANGE || n > max)
        fail(opt + " is too large (at most " + std::to_string(max) + ")");
    return n;
}

/// Seconds, fraction allowed ("0.25"), as milliseconds.
std::chrono::milliseconds parse_seconds(const std::string& opt, const std::string& v) {
    const bool plain = !v.empty() && v.find_first_not_of("0123456789.") == std::string::npos &&
                       v.find('.') == v.rfind('.') && v != ".";
    if (!plain) fail(opt + " expects seconds (e.g. 30 or 0.5), got '" + v + "'");
    const double s = std::strtod(v.c_str(), nullptr);
    if (!std::isfinite(s) || s > 1e9) fail(opt + " is too large, got '" + v + "'");
    return std::chrono::milliseconds(static_cast<long long>(std::llround(s * 1000.0)));
}

std::chrono::milliseconds parse_millis(const std::string& opt, const std::string& v) {
    return std::chrono::milliseconds(
        static_cast<long long>(parse_count(opt, v, 24ULL * 3600 * 1000 * 365)));
}

code_range parse_code_range(const std::string& opt, const std::string& v) {
    const auto dash = v.find('-');
    const std::string a = v.substr(0, dash);
    const std::string b = dash == std::string::npos ? a : v.substr(dash + 1);
    if (a.empty() || b.empty() || a.find_first_not_of("0123456789") != std::string::npos ||
        b.find_first_not_of("0123456789") != std::string::npos || a.size() > 5 || b.size() > 5)
        fail(opt + " expects CODE or CODE-CODE, got '" + v + "'");
    const unsigned long first = std::stoul(a);
    const unsigned long last = std::stoul(b);
    if (first < 1000 || last > 4999) fail(opt + ": close codes are 1000-4999, got '" + v + "'");
    if (first > last) fail(opt + ": range '" + v + "' is empty");
    return {static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last)};
}

std::pair<std::string, std::string> parse_header(const std::string& v) {
    const auto colon = v.find(':');
    if (colon == std::string::npos) fail("--header expects NAME:VALUE, got '" + v + "'");
    std::string name = v.substr(0, colon);
    std::string value = v.substr(colon + 1);
    const auto start = value.find_first_not_of(" \t");
    value = start == std::string::npos ? std::string() : value.substr(start);
    if (!is_token(name)) fail("--header: '" + name + "' is not a valid header name");
    for (char c : value)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
            fail("--header: the value of '" + name + "' contains a control character");
    return {name, value};
}

void parse_auth(cli_options& o, const std::string& v) {
    if (v == "header") {
        o.auth = token_location::header;
    } else if (v == "none") {
        o.auth = token_location::none;
    } else if (v == "subprotocol" || v.rfind("subprotocol:", 0) == 0) {
        o.auth = token_location::subprotocol;
        o.auth_name = v.size() > 12 ? v.substr(12) : std::string();
        if (v.size() > 12 && !is_token(o.auth_name))
            fail("--auth subprotocol:PREFIX: '" + o.auth_name + "' is not a valid token");
    } else if (v.rfind("query:", 0) == 0 && v.size() > 6) {
        o.auth = token_location::query;
        o.auth_name = v.substr(6);
    } else {
        fail("--auth expects header, query:NAME, subprotocol[:PREFIX] or none, got '" + v + "'");
    }
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

} // namespace

std::vector<tether::close_code_rule> cli_options::close_rules() const {
    std::vector<tether::close_code_rule> rules;
    const auto& expiry =
        expiry_codes.empty() ? std::vector<code_range>{{4001, 4001}} : expiry_codes;
    for (const auto& r : expiry)
        rules.emplace_back(r.first, r.last, tether::close_action::refresh_token_then_reconnect,
                           tether::failure_class::auth);
    for (const auto& r : stop_codes)
        rules.emplace_back(r.first, r.last, tether::close_action::stop);
    for (const auto& r : reconnect_codes)
        rules.emplace_back(r.first, r.last, tether::close_action::reconnect,
                           tether::failure_class::network);
    return rules;
}

tether::close_code_table<> cli_options::close_policy() const {
    tether::default_close_policy::options fallback;
    fallback.reconnect_on_normal_close = false;
    return tether::close_code_table<>(close_rules(), tether::default_close_policy(fallback));
}

parse_result parse_arguments(const std::vector<std::string>& args) {
    parse_result out;
    cli_options& o = out.options;
    std::vector<std::string> positional;
    bool any_token_option = false;
    try {
        for (std::size_t i = 0; i < args.size(); ++i) {
            std::string arg = args[i];
            if (arg == "--") {
                positional.insert(positional.end(),
                                  args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
                break;
            }
            if (!starts_with(arg, "--") || arg == "-") {
                if (starts_with(arg, "-") && arg != "-") {
                    if (arg == "-h") {
                        o.show_help = true;
                        continue;
                    }
                    fail("unknown option '" + arg + "'");
                }
                positional.push_back(arg);
                continue;
            }
            std::optional<std::string> inline_value;
            if (const auto eq = arg.find('='); eq != std::string::npos) {
                inline_value = arg.substr(eq + 1);
                arg.resize(eq);
            }
            const auto flag = [&]() {
                if (inline_value) fail(arg + " takes no value");
            };
            const auto value = [&]() -> std::string {
                if (inline_value) return *inline_value;
                if (i + 1 >= args.size()) fail(arg + " needs a value");
                return args[++i];
            };

            if (arg == "--help") {
                flag();
                o.show_help = true;
            } else if (arg == "--version") {
                flag();
                o.show_version = true;
            } else if (arg == "--token-url") {
                o.token_url = value();
            } else if (arg == "--client-id") {
                o.client_id = value();
                any_token_option = true;
            } else if (arg == "--client-secret-file") {
                o.client_secret_file = value();
                any_token_option = true;
            } else if (arg == "--client-secret")
                fail("--client-secret is not accepted (command lines are visible to other users); "
                     "set TETHER_CLIENT_SECRET or use --client-secret-file");
            else if (arg == "--scope") {
                o.scope = value();
                any_token_option = true;
            } else if (arg == "--token-auth") {
                const std::string v = value();
                any_token_option = true;
                if (v == "basic")
                    o.token_auth = token_endpoint_auth::basic;
                else if (v == "post")
                    o.token_auth = token_endpoint_auth::post;
                else
                    fail("--token-auth expects basic or post, got '" + v + "'");
            } else if (arg == "--auth") {
                parse_auth(o, value());
            } else if (arg == "--expiry-code") {
                o.expiry_codes.push_back(parse_code_range(arg, value()));
            } else if (arg == "--stop-code") {
                o.stop_codes.push_back(parse_code_range(arg, value()));
            } else if (arg == "--reconnect-code") {
                o.reconnect_codes.push_back(parse_code_range(arg, value()));
            } else if (arg == "--send") {
                o.send_on_open.push_back(value());
            } else if (arg == "--header") {
                o.headers.push_back(parse_header(value()));
            } else if (arg == "--subprotocol") {
                const std::string v = value();
                if (!is_token(v)) fail("--subprotocol: '" + v + "' is not a valid token");
                o.subprotocols.push_back(v);
            } else if (arg == "--ca-file") {
                o.ca_file = value();
            } else if (arg == "--insecure-skip-tls-verify-i-know-what-i-am-doing") {
                flag();
                o.insecure_skip_verify = true;
            } else if (arg == "--allow-insecure-token-transport") {
                flag();
                o.allow_insecure_token_transport = true;
            } else if (arg == "--proxy") {
                o.proxy_url = value();
            } else if (arg == "--no-proxy") {
                flag();
                o.no_proxy = true;
            } else if (arg == "--allow-plain-http-token-url") {
                flag();
                o.allow_plain_http_token_url = true;
            } else if (arg == "--ping-interval") {
                o.ping_interval = parse_seconds(arg, value());
            } else if (arg == "--pong-timeout") {
                o.pong_timeout = parse_seconds(arg, value());
            } else if (arg == "--idle-timeout") {
                o.idle_timeout = parse_seconds(arg, value());
            } else if (arg == "--handshake-timeout") {
                o.handshake_timeout = parse_seconds(arg, value());
            } else if (arg == "--renew-before") {
                o.renew_before = parse_seconds(arg, value());
            } else if (arg == "--backoff-initial") {
                o.backoff_initial = parse_millis(arg, value());
            } else if (arg == "--backoff-max") {
                o.backoff_max = parse_millis(arg, value());
            } else if (arg == "--auth-failure-limit") {
                o.auth_failure_limit = static_cast<unsigned>(parse_count(arg, value(), 1000000));
                if (o.auth_failure_limit == 0) fail("--auth-failure-limit must be at least 1");
            } else if (arg == "--max-attempts") {
                o.max_attempts = static_cast<unsigned>(parse_count(arg, value(), 1000000000));
            } else if (arg == "--max-messages") {
                o.max_messages =
                    parse_count(arg, value(), std::numeric_limits<std::uint64_t>::max());
            } else if (arg == "--duration") {
                o.duration = parse_seconds(arg, value());
            } else if (arg == "--quiet") {
                flag();
                o.quiet = true;
            } else if (arg == "--verbose") {
                flag();
                o.verbose = true;
            } else
                fail("unknown option '" + arg + "'");
        }
        if (o.show_help || o.show_version) return out;

        if (positional.empty()) fail("missing URL (ws://... or wss://...)");
        if (positional.size() > 1) fail("expected one URL, got '" + positional[1] + "' as well");
        o.url = positional[0];
        if (!starts_with(o.url, "ws://") && !starts_with(o.url, "wss://"))
            fail("URL must start with ws:// or wss://, got '" + o.url.substr(0, 64) + "'");
        if (o.url.find_first_of(" \t\r\n") != std::string::npos) fail("URL contains white space");

        if (o.token_url.empty()) {
            if (any_token_option)
                fail(
                    "--client-id, --client-secret-file, --scope and --token-auth need --token-url");
        } else {
            if (!starts_with(o.token_url, "https://") && !starts_with(o.token_url, "http://"))
                fail("--token-url must start with https:// or http://");
            if (o.client_id.empty()) fail("--token-url needs --client-id");
            if (o.auth == token_location::none)
                fail(
                    "--auth none sends no token: drop --token-url, or choose where the token goes");
        }
        if (o.backoff_initial && o.backoff_max && *o.backoff_initial > *o.backoff_max)
            fail("--backoff-initial exceeds --backoff-max");
        if (o.ping_interval && o.ping_interval->count() > 0 && o.pong_timeout &&
            o.pong_timeout->count() == 0)
            fail("--pong-timeout must be positive when pings are enabled");
        if (o.handshake_timeout && o.handshake_timeout->count() == 0)
            fail("--handshake-timeout must be positive");
        if (o.renew_before && o.token_url.empty()) fail("--renew-before needs --token-url");
    } catch (const usage_error& e) {
        out.error = e.what;
    }
    return out;
}

tether::secret load_client_secret(const cli_options& o,
                                  const std::function<const char*(const char*)>& getenv,
                                  std::string& error) {
    std::string value;
    if (!o.client_secret_file.empty()) {
        std::ifstream in(o.client_secret_file, std::ios::binary);
        if (!in) {
            error = "cannot read --client-secret-file '" + o.client_secret_file + "'";
            return {};
        }
        value.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        // A file written by `echo` ends with a line break that is no part of the secret.
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r'))
            value.pop_back();
        if (value.empty()) {
            error = "--client-secret-file '" + o.client_secret_file + "' is empty";
            return {};
        }
    } else {
        const char* env = getenv("TETHER_CLIENT_SECRET");
        if (!env || !*env) {
            error = "--token-url needs the client secret: set TETHER_CLIENT_SECRET or use "
                    "--client-secret-file";
            return {};
        }
        value = env;
    }
    return tether::secret(std::move(value));
}

const char* usage_text() {
    return R"(Usage: tether-cli [options] URL
A WebSocket client for token-protected streams: refreshes the OAuth token,
reconnects with backoff, and says why, as JSON lines on stdout.

URL is ws://... or wss://...

Token (omit --token-url for none):
  --token-url URL          OAuth2 client_credentials endpoint (https://; http:// only to loopback)
  --client-id ID           the client id
  --client-secret-file F   read the client secret from F (else $TETHER_CLIENT_SECRET)
  --scope S                requested scope
  --token-auth basic|post  client authentication at the token endpoint (default basic)
  --auth WHERE             where the token goes on the upgrade: header (default),
                           query:NAME, subprotocol[:PREFIX], or none
  --renew-before S         open a new connection with a new token S seconds before
                           the token expires, then close the old one (default: off)

Close codes (CODE or FIRST-LAST, 1000-4999, repeatable; checked in this order):
  --expiry-code CODE       token expired: refresh, then reconnect (default 4001)
  --stop-code CODE         stop (exit 3)
  --reconnect-code CODE    reconnect
  Anything else: 1000 stops, 1001/1006/1011-1014 reconnect, other 3000-4999 reconnect,
  HTTP 401 refreshes the token, 403/404 stop, 429/5xx back off.

Messages:
  --send TEXT              send TEXT on every open (repeatable, in order)
  Lines read from stdin are sent as text messages when stdin is a pipe or file.
  --header NAME:VALUE      extra upgrade header (repeatable)
  --subprotocol P          offer subprotocol P (repeatable)

TLS and clear text:
  --ca-file PATH           trust these CA certificates (default: the system store)
  --insecure-skip-tls-verify-i-know-what-i-am-doing
                           accept any certificate for any host: anyone on the path
                           can read the token. Throwaway test setups only.
  --allow-insecure-token-transport
                           allow the token over ws:// to a non-loopback host
  --allow-plain-http-token-url
                           allow the client secret over http:// to a non-loopback host

HTTP proxy (CONNECT tunnel; TLS still goes to, and is verified against, the server):
  --proxy URL              http://[user:password@]host:port for the WebSocket and the
                           token endpoint (no_proxy from the environment still applies)
  --no-proxy               ignore https_proxy, http_proxy and no_proxy (default: honoured)

Liveness and retries:
  --ping-interval S        ping every S seconds (default 20; 0: never)
  --pong-timeout S         dead when nothing arrives S seconds after a ping (default 10)
  --idle-timeout S         dead when no frame arrives for S seconds (default 0: off)
  --handshake-timeout S    connect + TLS + upgrade limit (default 10)
  --backoff-initial MS     first retry delay cap, every failure class
  --backoff-max MS         largest retry delay, every failure class
  --auth-failure-limit N   stop after N fresh tokens rejected in a row (default 3)
  --max-attempts N         stop after N failed attempts in a row (default 0: never)

Stopping:
  --max-messages N         close with 1000 after N messages
  --duration S             close with 1000 after S seconds
  Ctrl-C (SIGINT) or SIGTERM closes gracefully; a second one exits at once.

Output:
  stdout: one JSON object per line, each with "event" and "t_ms"; the last is "stats".
  stderr: human-readable diagnostics (--quiet: none; --verbose: token endpoint steps).
  Never a token or the client secret on either.
  --help, --version

Exit status: 0 stopped by --max-messages, --duration, a signal, a normal close
from the server, or a closed stdout (`| head`); 2 bad usage; 3 permanent failure (credentials rejected, a stop
code, TLS verification failure, attempts exhausted).
)";
}

} // namespace tether_cli
