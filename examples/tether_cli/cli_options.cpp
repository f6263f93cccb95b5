// tether-cli: command-line parsing (no network, no websocketpp: cheap to test).
#include "cli_options.hpp"

#include <tether/detail/ascii.hpp>
#include <tether/detail/base64.hpp>

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

/// A user's value in an error message: quoted, at most 64 characters, control
/// characters shown as '?' (every reason stays one line).
std::string quoted(std::string_view v) {
    std::string s(v.substr(0, 64));
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return "'" + s + (v.size() > 64 ? "...'" : "'");
}

bool is_token(std::string_view s) { return tether::detail::is_http_token(s); }

code_range parse_code_range(std::string_view flag, const std::string& v) {
    const std::string opt(flag);
    const auto dash = v.find('-');
    const std::string a = v.substr(0, dash);
    const std::string b = dash == std::string::npos ? a : v.substr(dash + 1);
    if (a.empty() || b.empty() || a.find_first_not_of("0123456789") != std::string::npos ||
        b.find_first_not_of("0123456789") != std::string::npos || a.size() > 5 || b.size() > 5)
        fail(opt + " expects CODE or CODE-CODE, got " + quoted(v));
    const unsigned long first = std::stoul(a);
    const unsigned long last = std::stoul(b);
    if (first < 1000 || last > 4999) fail(opt + ": close codes are 1000-4999, got " + quoted(v));
    if (first > last) fail(opt + ": range " + quoted(v) + " is empty");
    return {static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last)};
}

std::pair<std::string, std::string> parse_header(std::string_view flag, const std::string& v) {
    const std::string opt(flag);
    const auto colon = v.find(':');
    if (colon == std::string::npos) fail(opt + " expects NAME:VALUE, got " + quoted(v));
    std::string name = v.substr(0, colon);
    std::string value = v.substr(colon + 1);
    const auto start = value.find_first_not_of(" \t");
    value = start == std::string::npos ? std::string() : value.substr(start);
    if (!is_token(name)) fail(opt + ": " + quoted(name) + " is not a valid header name");
    for (char c : value)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
            fail(opt + ": the value of " + quoted(name) + " contains a control character");
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
            fail("--auth subprotocol:PREFIX: " + quoted(o.auth_name) + " is not a valid token");
    } else if (v.rfind("query:", 0) == 0 && v.size() > 6) {
        o.auth = token_location::query;
        o.auth_name = v.substr(6);
    } else {
        fail("--auth expects header, query:NAME, subprotocol[:PREFIX] or none, got " + quoted(v));
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

namespace {

constexpr std::uint64_t max_millis = 365ULL * 24 * 3600 * 1000; // one year

bool all_digits(const std::string& s) {
    return s.find_first_not_of("0123456789") == std::string::npos;
}

/// A non-empty string of digits as a number; false when it does not fit.
bool to_u64(const std::string& digits, std::uint64_t& n) {
    errno = 0;
    const unsigned long long v = std::strtoull(digits.c_str(), nullptr, 10);
    if (errno == ERANGE || v > std::numeric_limits<std::uint64_t>::max()) return false;
    n = v;
    return true;
}

std::uint64_t parse_count(std::string_view flag, const std::string& v, std::uint64_t max) {
    const std::string f(flag);
    if (!v.empty() && v[0] == '-') fail(f + " must not be negative, got " + quoted(v));
    if (v.empty() || !all_digits(v)) fail(f + " expects a whole number, got " + quoted(v));
    std::uint64_t n = 0;
    if (!to_u64(v, n) || n > max)
        fail(f + " is too large (at most " + std::to_string(max) + "), got " + quoted(v));
    return n;
}

/// The old millisecond flags: a whole number of milliseconds.
std::chrono::milliseconds parse_millis(std::string_view flag, const std::string& v) {
    const std::string f(flag);
    if (!v.empty() && v[0] == '-') fail(f + " must not be negative, got " + quoted(v));
    if (v.empty() || !all_digits(v))
        fail(f +
             " expects whole milliseconds (it is an old flag; the new one takes seconds), got " +
             quoted(v));
    std::uint64_t n = 0;
    if (!to_u64(v, n) || n > max_millis)
        fail(f + " is too large (at most " + std::to_string(max_millis) + " ms), got " + quoted(v));
    return std::chrono::milliseconds(static_cast<long long>(n));
}

} // namespace

std::optional<std::chrono::milliseconds> parse_seconds(std::string_view flag, const std::string& v,
                                                       std::string& error) {
    const std::string f(flag);
    if (!v.empty() && v[0] == '-') {
        error = f + " must not be negative, got " + quoted(v);
        return std::nullopt;
    }
    const auto dot = v.find('.');
    const std::string whole = v.substr(0, dot);
    const std::string frac = dot == std::string::npos ? std::string() : v.substr(dot + 1);
    if ((whole.empty() && frac.empty()) || !all_digits(whole) || !all_digits(frac)) {
        error = f + " expects seconds (e.g. 30 or 2.5), got " + quoted(v);
        return std::nullopt;
    }
    const std::string too_large =
        f + " is too large (at most " + std::to_string(max_millis / 1000) + " s), got " + quoted(v);
    std::uint64_t seconds = 0;
    if (!whole.empty() && (!to_u64(whole, seconds) || seconds > max_millis / 1000)) {
        error = too_large;
        return std::nullopt;
    }
    std::uint64_t ms = seconds * 1000;
    const std::string first = (frac + "0000").substr(0, 4); // milliseconds, then the rounding digit
    ms += std::stoull(first.substr(0, 3)) + (first[3] >= '5' ? 1 : 0);
    if (ms > max_millis) {
        error = too_large;
        return std::nullopt;
    }
    if (ms == 0 && v.find_first_of("123456789") != std::string::npos) {
        error = f + " is below the 1 ms resolution, got " + quoted(v);
        return std::nullopt;
    }
    return std::chrono::milliseconds(static_cast<long long>(ms));
}

std::string base64(std::string_view data) { return tether::detail::base64_encode(data); }

std::string format_raw(std::string_view payload, bool binary) {
    if (binary) return base64(payload);
    std::string line(payload);
    for (char& c : line)
        if (c == '\n' || c == '\r') c = ' ';
    return line;
}

namespace {

using ms = std::chrono::milliseconds;

const char* const s_token = "Token";
const char* const s_close =
    "Close codes (CODE or FIRST-LAST, 1000-4999, repeatable; checked in this order)";
const char* const s_messages = "Messages";
const char* const s_output = "Output";
const char* const s_tls = "TLS and clear text";
const char* const s_proxy = "Proxy";
const char* const s_liveness = "Liveness and retries (durations in seconds, fractions allowed)";
const char* const s_stopping = "Stopping";

/// Prose printed after a section's rows.
const char* section_notes(const char* section) {
    if (section == s_token) return "Omit --token-url for no token.";
    if (section == s_close)
        return "Anything else: 1000 stops, 1001/1006/1011-1014 reconnect, other 3000-4999 "
               "reconnect, HTTP 401 refreshes the token, 403/404 stop, 429/5xx back off.";
    if (section == s_messages)
        return "Lines read from stdin (a pipe or a file) are sent as they arrive, without their "
               "line break; empty lines are skipped.";
    if (section == s_stopping)
        return "Ctrl-C (SIGINT) or SIGTERM closes gracefully; a second one exits at once.";
    return nullptr;
}

option_spec row(const char* name, char short_name, arg_kind kind, const char* metavar,
                const char* help, const char* default_text, const char* section,
                const char* example, void (*set)(cli_options&, const option_value&)) {
    return option_spec{name, short_name,   {},      nullptr, kind, metavar,
                       help, default_text, section, example, 0,    set};
}

option_spec with_alias(option_spec r, const char* alias) {
    r.aliases.push_back(alias);
    return r;
}
option_spec with_millis_alias(option_spec r, const char* alias) {
    r.millis_alias = alias;
    return r;
}
option_spec with_max(option_spec r, std::uint64_t max) {
    r.max = max;
    return r;
}

std::vector<option_spec> make_table() {
    using k = arg_kind;
    using v = const option_value&;
    std::vector<option_spec> t;
    // Token
    t.push_back(row("--token-url", 0, k::text, "URL",
                    "OAuth2 client_credentials endpoint (https://; http:// only to loopback)",
                    nullptr, s_token, "https://login.example/oauth/token",
                    [](cli_options& o, v x) { o.token_url = x.text; }));
    t.push_back(row("--client-id", 0, k::text, "ID", "the client id", nullptr, s_token, "me",
                    [](cli_options& o, v x) { o.client_id = x.text; }));
    t.push_back(row("--client-secret-file", 0, k::text, "FILE",
                    "read the client secret from FILE (else $TETHER_CLIENT_SECRET)", nullptr,
                    s_token, "/run/secrets/client",
                    [](cli_options& o, v x) { o.client_secret_file = x.text; }));
    t.push_back(row("--scope", 0, k::text, "S", "requested scope", nullptr, s_token, "a b",
                    [](cli_options& o, v x) { o.scope = x.text; }));
    t.push_back(
        row("--token-auth", 0, k::text, "basic|post", "client authentication at the token endpoint",
            "basic", s_token, "post", [](cli_options& o, v x) {
                if (x.text == "basic")
                    o.token_auth = token_endpoint_auth::basic;
                else if (x.text == "post")
                    o.token_auth = token_endpoint_auth::post;
                else
                    fail(std::string(x.name) + " expects basic or post, got " + quoted(x.text));
            }));
    t.push_back(row("--auth", 0, k::text, "WHERE",
                    "where the token goes on the upgrade: header, query:NAME, "
                    "subprotocol[:PREFIX], or none",
                    "header", s_token, "query:access_token",
                    [](cli_options& o, v x) { parse_auth(o, x.text); }));
    t.push_back(row("--renew-before", 0, k::seconds, "S",
                    "open a new connection with a new token S seconds before the token expires, "
                    "then close the old one",
                    "off", s_token, "30",
                    [](cli_options& o, v x) { o.renew_before = x.duration; }));
    // Close codes
    t.push_back(row("--expiry-code", 0, k::text, "CODE", "token expired: refresh, then reconnect",
                    "4001", s_close, "4001-4002", [](cli_options& o, v x) {
                        o.expiry_codes.push_back(parse_code_range(x.name, x.text));
                    }));
    t.push_back(
        row("--stop-code", 0, k::text, "CODE", "stop (exit 3)", nullptr, s_close, "4500-4599",
            [](cli_options& o, v x) { o.stop_codes.push_back(parse_code_range(x.name, x.text)); }));
    t.push_back(row("--reconnect-code", 0, k::text, "CODE", "reconnect", nullptr, s_close, "4100",
                    [](cli_options& o, v x) {
                        o.reconnect_codes.push_back(parse_code_range(x.name, x.text));
                    }));
    // Messages
    t.push_back(row("--send", 0, k::text, "TEXT",
                    "send TEXT as a text message on every open (repeatable, in order)", nullptr,
                    s_messages, "{\"op\":\"subscribe\"}",
                    [](cli_options& o, v x) { o.send_on_open.push_back(x.text); }));
    t.push_back(row("--binary", 'b', k::flag, nullptr,
                    "send the lines read from stdin as binary messages, not text", nullptr,
                    s_messages, nullptr, [](cli_options& o, v) { o.binary = true; }));
    t.push_back(row("--header", 'H', k::text, "NAME:VALUE", "extra upgrade header (repeatable)",
                    nullptr, s_messages, "X-Trace: abc", [](cli_options& o, v x) {
                        o.headers.push_back(parse_header(x.name, x.text));
                    }));
    t.push_back(with_alias(row("--subprotocol", 0, k::text, "P", "offer subprotocol P (repeatable)",
                               nullptr, s_messages, "v1",
                               [](cli_options& o, v x) {
                                   if (!is_token(x.text))
                                       fail(std::string(x.name) + ": " + quoted(x.text) +
                                            " is not a valid token");
                                   o.subprotocols.push_back(x.text);
                               }),
                           "--protocol"));
    // Output
    t.push_back(row("--raw", 'r', k::flag, nullptr,
                    "stdout: message payloads only, one per line (a CR or LF in a text message "
                    "becomes a space; a binary message is written as base64); no JSON events",
                    nullptr, s_output, nullptr, [](cli_options& o, v) { o.raw = true; }));
    t.push_back(row("--quiet", 'q', k::flag, nullptr, "no diagnostics on stderr", nullptr, s_output,
                    nullptr, [](cli_options& o, v) { o.quiet = true; }));
    t.push_back(row("--verbose", 'v', k::flag, nullptr,
                    "also trace the token endpoint on stderr (never a secret)", nullptr, s_output,
                    nullptr, [](cli_options& o, v) { o.verbose = true; }));
    t.push_back(row("--help", 'h', k::flag, nullptr, "show this help", nullptr, s_output, nullptr,
                    [](cli_options& o, v) { o.show_help = true; }));
    t.push_back(row("--version", 'V', k::flag, nullptr, "show the version", nullptr, s_output,
                    nullptr, [](cli_options& o, v) { o.show_version = true; }));
    // TLS and clear text
    t.push_back(row("--ca-file", 0, k::text, "PATH",
                    "trust these CA certificates for wss:// and the token endpoint",
                    "the system store", s_tls, "/etc/ssl/certs/ca-certificates.crt",
                    [](cli_options& o, v x) { o.ca_file = x.text; }));
    t.push_back(row("--insecure-skip-tls-verify-i-know-what-i-am-doing", 0, k::flag, nullptr,
                    "accept any certificate for any host: anyone on the path can read the token. "
                    "Throwaway test setups only.",
                    nullptr, s_tls, nullptr,
                    [](cli_options& o, v) { o.insecure_skip_verify = true; }));
    t.push_back(row("--allow-insecure-token-transport", 0, k::flag, nullptr,
                    "allow the token over ws:// to a non-loopback host", nullptr, s_tls, nullptr,
                    [](cli_options& o, v) { o.allow_insecure_token_transport = true; }));
    t.push_back(row("--allow-plain-http-token-url", 0, k::flag, nullptr,
                    "allow the client secret over http:// to a non-loopback host", nullptr, s_tls,
                    nullptr, [](cli_options& o, v) { o.allow_plain_http_token_url = true; }));
    // Proxy
    t.push_back(row("--proxy", 0, k::text, "URL",
                    "http://[user:password@]host:port for the WebSocket and the token endpoint "
                    "(a CONNECT tunnel: TLS still goes to, and is verified against, the server; "
                    "no_proxy from the environment still applies)",
                    nullptr, s_proxy, "http://proxy.example:3128",
                    [](cli_options& o, v x) { o.proxy_url = x.text; }));
    t.push_back(row("--no-proxy", 0, k::flag, nullptr,
                    "ignore https_proxy, http_proxy and no_proxy", "honoured", s_proxy, nullptr,
                    [](cli_options& o, v) { o.no_proxy = true; }));
    // Liveness and retries
    t.push_back(row("--ping-interval", 0, k::seconds, "S", "ping every S seconds; 0: never", "20",
                    s_liveness, "0.5", [](cli_options& o, v x) { o.ping_interval = x.duration; }));
    t.push_back(row("--pong-timeout", 0, k::seconds, "S",
                    "dead when nothing arrives S seconds after a ping", "10", s_liveness, "2",
                    [](cli_options& o, v x) { o.pong_timeout = x.duration; }));
    t.push_back(row("--idle-timeout", 0, k::seconds, "S",
                    "dead when no frame arrives for S seconds; 0: off", "off", s_liveness, "2.5",
                    [](cli_options& o, v x) { o.idle_timeout = x.duration; }));
    t.push_back(row("--handshake-timeout", 0, k::seconds, "S", "connect + TLS + upgrade limit",
                    "10", s_liveness, "4",
                    [](cli_options& o, v x) { o.handshake_timeout = x.duration; }));
    t.push_back(with_millis_alias(row("--retry-initial", 0, k::seconds, "S",
                                      "cap of the first retry delay, every failure class",
                                      "network 1, auth and overload 5", s_liveness, "0.1",
                                      [](cli_options& o, v x) { o.backoff_initial = x.duration; }),
                                  "--backoff-initial"));
    t.push_back(with_millis_alias(row("--retry-max", 0, k::seconds, "S",
                                      "largest retry delay, every failure class",
                                      "network 60, auth and overload 300", s_liveness, "5",
                                      [](cli_options& o, v x) { o.backoff_max = x.duration; }),
                                  "--backoff-max"));
    t.push_back(with_max(row("--auth-failure-limit", 0, k::count, "N",
                             "stop after N fresh tokens rejected in a row", "3", s_liveness, "5",
                             [](cli_options& o, v x) {
                                 if (x.count == 0)
                                     fail(std::string(x.name) + " must be at least 1");
                                 o.auth_failure_limit = static_cast<unsigned>(x.count);
                             }),
                         1000000));
    t.push_back(
        with_max(row("--max-attempts", 0, k::count, "N",
                     "stop after N failed attempts in a row; 0: never", "0", s_liveness, "7",
                     [](cli_options& o, v x) { o.max_attempts = static_cast<unsigned>(x.count); }),
                 1000000000));
    // Stopping
    t.push_back(with_max(row("--max-messages", 'n', k::count, "N",
                             "close with 1000 after N messages; 0: no limit", "0", s_stopping, "10",
                             [](cli_options& o, v x) { o.max_messages = x.count; }),
                         std::numeric_limits<std::uint64_t>::max()));
    t.push_back(row("--duration", 0, k::seconds, "S",
                    "close with 1000 after S seconds; 0: no limit", "0", s_stopping, "1.25",
                    [](cli_options& o, v x) { o.duration = x.duration; }));
    return t;
}

struct lookup {
    const option_spec* spec = nullptr;
    bool millis = false; ///< named by its millisecond alias
};

lookup find_long(const std::string& name) {
    for (const auto& r : option_table()) {
        if (name == r.name) return {&r, false};
        for (const char* a : r.aliases)
            if (name == a) return {&r, false};
        if (r.millis_alias && name == r.millis_alias) return {&r, true};
    }
    return {};
}

const option_spec* find_short(char c) {
    for (const auto& r : option_table())
        if (r.short_name != 0 && r.short_name == c) return &r;
    return nullptr;
}

bool given(const std::vector<const option_spec*>& seen, const char* name) {
    for (const auto* s : seen)
        if (std::string_view(s->name) == name) return true;
    return false;
}

} // namespace

const std::vector<option_spec>& option_table() {
    static const std::vector<option_spec> table = make_table();
    return table;
}

parse_result parse_arguments(const std::vector<std::string>& args) {
    parse_result out;
    cli_options& o = out.options;
    std::vector<std::string> positional;
    std::vector<const option_spec*> seen;
    try {
        std::size_t i = 0;
        const auto apply = [&](const lookup& found, const std::string& name,
                               std::optional<std::string> inline_value) {
            const option_spec& spec = *found.spec;
            option_value value;
            value.name = name;
            if (spec.kind == arg_kind::flag) {
                if (inline_value) fail(name + " takes no value");
            } else {
                if (inline_value)
                    value.text = std::move(*inline_value);
                else if (i + 1 < args.size())
                    value.text = args[++i];
                else
                    fail(name + " needs a value");
                if (spec.kind == arg_kind::seconds) {
                    if (found.millis) {
                        value.duration = parse_millis(name, value.text);
                    } else {
                        std::string error;
                        const auto d = parse_seconds(name, value.text, error);
                        if (!d) fail(error);
                        value.duration = *d;
                    }
                } else if (spec.kind == arg_kind::count) {
                    value.count = parse_count(name, value.text, spec.max);
                }
            }
            spec.set(o, value);
            seen.push_back(&spec);
        };
        for (; i < args.size(); ++i) {
            const std::string& arg = args[i];
            if (arg == "--") {
                positional.insert(positional.end(),
                                  args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
                break;
            }
            if (arg.size() < 2 || arg[0] != '-') { // "-" is no option
                positional.push_back(arg);
                continue;
            }
            if (arg[1] == '-') {
                std::string name = arg;
                std::optional<std::string> inline_value;
                if (const auto eq = name.find('='); eq != std::string::npos) {
                    inline_value = name.substr(eq + 1);
                    name.resize(eq);
                }
                if (name == "--client-secret")
                    fail("--client-secret is not accepted (command lines are visible to other "
                         "users); set TETHER_CLIENT_SECRET or use --client-secret-file");
                const lookup found = find_long(name);
                if (!found.spec) fail("unknown option " + quoted(name));
                apply(found, name, std::move(inline_value));
                continue;
            }
            // One or more short options: "-q", "-qv", "-H X:y", "-HX:y", "-qn5".
            for (std::size_t k = 1; k < arg.size(); ++k) {
                const std::string name{'-', arg[k]};
                const option_spec* spec = find_short(arg[k]);
                if (!spec) fail("unknown option " + quoted(name));
                if (spec->kind == arg_kind::flag) {
                    apply({spec, false}, name, std::nullopt);
                    continue;
                }
                std::optional<std::string> rest;
                if (k + 1 < arg.size()) rest = arg.substr(k + 1);
                apply({spec, false}, name, std::move(rest));
                break;
            }
        }
        if (o.show_help || o.show_version) return out;

        if (positional.empty()) fail("missing URL (ws://... or wss://...)");
        if (positional.size() > 1)
            fail("expected one URL, got " + quoted(positional[1]) + " as well");
        o.url = positional[0];
        if (!starts_with(o.url, "ws://") && !starts_with(o.url, "wss://"))
            fail("URL must start with ws:// or wss://, got " + quoted(o.url));
        if (o.url.find_first_of(" \t\r\n") != std::string::npos) fail("URL contains white space");

        if (o.token_url.empty()) {
            if (given(seen, "--client-id") || given(seen, "--client-secret-file") ||
                given(seen, "--scope") || given(seen, "--token-auth"))
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
            fail("--retry-initial (--backoff-initial) exceeds --retry-max (--backoff-max)");
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

namespace {

constexpr std::size_t help_column = 29;
constexpr std::size_t help_width = 79;

/// Appends `text` word-wrapped to help_width, continuation lines indented by
/// `indent`; `line` is what the current line already holds.
void wrap(std::string& out, std::string line, const std::string& text, std::size_t indent) {
    std::istringstream words(text);
    std::string word;
    bool first = true;
    while (words >> word) {
        if (!first && line.size() + 1 + word.size() > help_width) {
            out += line + "\n";
            line.assign(indent, ' ');
            first = true;
        }
        if (!first) line += ' ';
        line += word;
        first = false;
    }
    out += line + "\n";
}

void option_lines(std::string& out, std::string left, const std::string& text) {
    if (left.size() + 1 >= help_column) {
        out += left + "\n";
        left.clear();
    }
    left.resize(help_column, ' ');
    wrap(out, left, text, help_column);
}

} // namespace

std::string usage_text() {
    std::string out = R"(Usage: tether-cli [options] URL
A WebSocket client for token-protected streams: refreshes the OAuth token,
reconnects with backoff, and says why, as JSON lines on stdout.

URL is ws://... or wss://...
)";
    const char* section = nullptr;
    const auto& table = option_table();
    for (std::size_t r = 0; r < table.size(); ++r) {
        const option_spec& o = table[r];
        if (o.section != section) {
            section = o.section;
            out += std::string("\n") + section + ":\n";
        }
        std::string left = "  ";
        left += o.short_name ? std::string{'-', o.short_name} + ", " : std::string("    ");
        left += o.name;
        for (const char* a : o.aliases)
            left += std::string(", ") + a;
        if (o.metavar) left += std::string(" ") + o.metavar;
        std::string text = o.help;
        if (o.default_text) text += std::string(" (default: ") + o.default_text + ")";
        option_lines(out, left, text);
        if (o.millis_alias)
            option_lines(out, std::string("      ") + o.millis_alias + " MS",
                         std::string("old flag, still accepted: ") + o.name + " in milliseconds");
        const bool last_of_section = r + 1 == table.size() || table[r + 1].section != section;
        if (last_of_section)
            if (const char* notes = section_notes(section)) wrap(out, "  ", notes, 2);
    }
    out += R"(
stdout carries one JSON object per line, each with "event" and "t_ms";
the last is "stats" (with --raw: message payloads only). stderr carries
human-readable diagnostics (--quiet: none; --verbose: token endpoint steps).
Never a token or the client secret on either.

Exit status: 0 stopped by --max-messages, --duration, a signal, a normal close
from the server, or a closed stdout (`| head`); 2 bad usage; 3 permanent
failure (credentials rejected, a stop code, TLS verification failure, attempts
exhausted).
)";
    return out;
}

} // namespace tether_cli
