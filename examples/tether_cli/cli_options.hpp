// tether-cli: the command line, parsed and checked without touching the network.
#ifndef TETHER_EXAMPLES_TETHER_CLI_CLI_OPTIONS_HPP
#define TETHER_EXAMPLES_TETHER_CLI_CLI_OPTIONS_HPP

#include <tether/close_policy/close_code_table.hpp>
#include <tether/secret.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tether_cli {

enum class token_location { header, query, subprotocol, none };
enum class token_endpoint_auth { basic, post };

struct code_range {
    std::uint16_t first;
    std::uint16_t last;
    bool operator==(const code_range& o) const { return first == o.first && last == o.last; }
};

struct cli_options {
    std::string url;

    // token
    std::string token_url; ///< empty: no token
    std::string client_id;
    std::string client_secret_file; ///< else TETHER_CLIENT_SECRET
    std::string scope;
    token_endpoint_auth token_auth = token_endpoint_auth::basic;
    token_location auth = token_location::header;
    std::string auth_name; ///< query parameter name, or subprotocol prefix

    // close codes
    std::vector<code_range> expiry_codes; ///< empty after parsing means the default, 4001
    std::vector<code_range> stop_codes;
    std::vector<code_range> reconnect_codes;

    // upgrade request
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<std::string> subprotocols;
    std::vector<std::string> send_on_open;
    bool binary = false; ///< stdin lines go out as binary messages

    // TLS and clear-text opt-outs
    std::string ca_file;
    bool insecure_skip_verify = false;
    bool allow_insecure_token_transport = false;
    bool allow_plain_http_token_url = false;

    // HTTP proxy: --proxy URL, else https_proxy/http_proxy/no_proxy unless --no-proxy
    std::string proxy_url;
    bool no_proxy = false;

    // liveness and retry
    std::optional<std::chrono::milliseconds> ping_interval, pong_timeout, idle_timeout,
        handshake_timeout;
    std::optional<std::chrono::milliseconds> backoff_initial, backoff_max;
    std::optional<std::chrono::milliseconds> renew_before;
    unsigned auth_failure_limit = 3;
    unsigned max_attempts = 0;

    // when to stop
    std::uint64_t max_messages = 0;        ///< 0: no limit
    std::chrono::milliseconds duration{0}; ///< 0: no limit

    bool raw = false;     ///< stdout: payloads only, one per line (see format_raw)
    bool quiet = false;   ///< no diagnostics on stderr
    bool verbose = false; ///< token endpoint trace on stderr
    bool show_help = false;
    bool show_version = false;

    /// The close-code table's rows: expiry codes first, then stop, then reconnect.
    std::vector<tether::close_code_rule> close_rules() const;
    /// The CLI's close policy: close_rules(), then default_close_policy except
    /// that a server's 1000 stops (a command-line tool ends when the server
    /// says it is done; the library's default reconnects).
    tether::close_code_table<> close_policy() const;
};

/// What an option takes after its name.
enum class arg_kind {
    flag,    ///< nothing
    text,    ///< a string, checked by the setter
    seconds, ///< seconds, fractions allowed ("2.5"); the setter gets milliseconds
    count,   ///< a whole number from 0 to option_spec::max
};

/// One option's value as the setter gets it: the name the user typed (for
/// error messages), the text, and the text converted as the kind says.
struct option_value {
    std::string_view name;
    std::string text;
    std::chrono::milliseconds duration{0}; ///< arg_kind::seconds (and its millisecond alias)
    std::uint64_t count = 0;               ///< arg_kind::count
};

/// A row of the option table: the parser and --help both read it.
struct option_spec {
    const char* name;                 ///< "--header"
    char short_name;                  ///< 'H'; 0: none
    std::vector<const char*> aliases; ///< other names, same argument ("--protocol")
    const char* millis_alias;         ///< seconds only: an old flag taking milliseconds
    arg_kind kind;                    ///< what follows the name
    const char* metavar;              ///< the argument's name in --help ("NAME:VALUE")
    const char* help;                 ///< one sentence (wrapped by --help)
    const char* default_text;         ///< shown as "(default ...)"; nullptr: none
    const char* section;              ///< --help heading the row is listed under
    const char* example;              ///< a valid argument (tests, fuzz seeds)
    std::uint64_t max;                ///< arg_kind::count: the largest value
    void (*set)(cli_options&, const option_value&); ///< throws usage errors via fail()
};

/// Every option tether-cli takes, in --help order.
const std::vector<option_spec>& option_table();

/// The outcome of parsing: options, or a one-line reason for the usage error.
struct parse_result {
    cli_options options;
    std::string error; ///< empty on success
    bool ok() const { return error.empty(); }
};

/// Parses argv (without argv[0]). Checks everything that needs no I/O.
parse_result parse_arguments(const std::vector<std::string>& args);

/// Where the client secret comes from: --client-secret-file wins over the
/// environment variable TETHER_CLIENT_SECRET (`getenv` is injectable for tests).
/// Returns the secret, or sets `error` to a one-line reason.
tether::secret load_client_secret(const cli_options& o,
                                  const std::function<const char*(const char*)>& getenv,
                                  std::string& error);

/// The --help text, generated from option_table().
std::string usage_text();

/// Seconds as the duration flags take them ("30", "2.5", ".25"): milliseconds,
/// or a one-line reason naming `flag` (negative, not a number, too large,
/// below the 1 ms resolution).
std::optional<std::chrono::milliseconds> parse_seconds(std::string_view flag, const std::string& v,
                                                       std::string& error);

/// Standard base64 with padding (RFC 4648).
std::string base64(std::string_view data);

/// A message as --raw writes it, without the line break that follows: a text
/// payload with each CR and LF byte replaced by a space (one message, one
/// line); a binary payload as base64.
std::string format_raw(std::string_view payload, bool binary);

} // namespace tether_cli

#endif
