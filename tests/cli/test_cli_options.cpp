// tether-cli's command line: parsed values, usage errors, the close-code table
// it builds, and where the client secret comes from.
#include "cli_options.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace tether_cli;

namespace {

parse_result parse(std::vector<std::string> args) { return parse_arguments(args); }

std::string error_of(std::vector<std::string> args) {
    const auto r = parse(std::move(args));
    REQUIRE_FALSE(r.ok());
    return r.error;
}

tether::reconnect_decision decide(const cli_options& o, std::uint16_t code) {
    tether::close_code_table<> table = o.close_policy();
    tether::close_event ev;
    ev.code = code;
    ev.was_open = true;
    return table.decide(ev);
}

} // namespace

TEST_CASE("a full command line is parsed into options") {
    const auto r = parse({"--token-url",
                          "https://login.example/oauth/token",
                          "--client-id",
                          "me",
                          "--scope",
                          "a b",
                          "--token-auth=post",
                          "--auth",
                          "query:access_token",
                          "--expiry-code",
                          "4001",
                          "--expiry-code",
                          "4401",
                          "--stop-code",
                          "4500-4599",
                          "--reconnect-code",
                          "4000-4999",
                          "--send",
                          "one",
                          "--send",
                          "two",
                          "--header",
                          "X-Trace:  abc",
                          "--subprotocol",
                          "v1",
                          "--ping-interval",
                          "0.5",
                          "--pong-timeout",
                          "2",
                          "--idle-timeout",
                          "30",
                          "--backoff-initial",
                          "100",
                          "--backoff-max",
                          "5000",
                          "--auth-failure-limit",
                          "5",
                          "--max-attempts",
                          "7",
                          "--max-messages",
                          "10",
                          "--duration",
                          "1.25",
                          "--quiet",
                          "wss://stream.example/v1?x=1"});
    REQUIRE(r.ok());
    const cli_options& o = r.options;
    CHECK(o.url == "wss://stream.example/v1?x=1");
    CHECK(o.token_url == "https://login.example/oauth/token");
    CHECK(o.client_id == "me");
    CHECK(o.scope == "a b");
    CHECK(o.token_auth == token_endpoint_auth::post);
    CHECK(o.auth == token_location::query);
    CHECK(o.auth_name == "access_token");
    CHECK(o.expiry_codes == std::vector<code_range>{{4001, 4001}, {4401, 4401}});
    CHECK(o.stop_codes == std::vector<code_range>{{4500, 4599}});
    CHECK(o.send_on_open == std::vector<std::string>{"one", "two"});
    REQUIRE(o.headers.size() == 1);
    CHECK(o.headers[0].first == "X-Trace");
    CHECK(o.headers[0].second == "abc");
    CHECK(o.subprotocols == std::vector<std::string>{"v1"});
    CHECK(o.ping_interval == std::chrono::milliseconds(500));
    CHECK(o.pong_timeout == std::chrono::milliseconds(2000));
    CHECK(o.idle_timeout == std::chrono::milliseconds(30000));
    CHECK(o.backoff_initial == std::chrono::milliseconds(100));
    CHECK(o.backoff_max == std::chrono::milliseconds(5000));
    CHECK(o.auth_failure_limit == 5);
    CHECK(o.max_attempts == 7);
    CHECK(o.max_messages == 10);
    CHECK(o.duration == std::chrono::milliseconds(1250));
    CHECK(o.quiet);
}

TEST_CASE(
    "the close-code table: expiry codes first, then stop, then reconnect, then the defaults") {
    const auto r =
        parse({"--stop-code", "4000-4999", "--reconnect-code", "4100", "ws://127.0.0.1/"});
    REQUIRE(r.ok());
    CHECK(decide(r.options, 4001).action ==
          tether::close_action::refresh_token_then_reconnect); // default expiry code
    CHECK(decide(r.options, 4100).action ==
          tether::close_action::stop); // the stop range is listed first
    CHECK(decide(r.options, 4500).action == tether::close_action::stop);
    CHECK(decide(r.options, 1001).action ==
          tether::close_action::reconnect); // default_close_policy
    CHECK(decide(r.options, 1000).action ==
          tether::close_action::stop); // the CLI's own default (README)

    const auto custom =
        parse({"--expiry-code", "4401", "--reconnect-code", "1000", "ws://127.0.0.1/"});
    REQUIRE(custom.ok());
    CHECK(decide(custom.options, 4401).action ==
          tether::close_action::refresh_token_then_reconnect);
    // giving --expiry-code replaces the default 4001, which falls back to "reconnect"
    CHECK(decide(custom.options, 4001).action == tether::close_action::reconnect);
    CHECK(decide(custom.options, 1000).action == tether::close_action::reconnect);
}

TEST_CASE("usage errors name the problem") {
    CHECK(error_of({}).find("missing URL") != std::string::npos);
    CHECK(error_of({"https://x/"}).find("ws://") != std::string::npos);
    CHECK(error_of({"--client-secret", "s", "ws://x/"}).find("TETHER_CLIENT_SECRET") !=
          std::string::npos);
    CHECK(error_of({"--client-secret=s", "ws://x/"}).find("not accepted") != std::string::npos);
    CHECK(error_of({"--token-url", "https://t/", "ws://x/"}).find("--client-id") !=
          std::string::npos);
    CHECK(error_of({"--token-url", "ftp://t/", "--client-id", "c", "ws://x/"}).find("https://") !=
          std::string::npos);
    CHECK(error_of({"--scope", "s", "ws://x/"}).find("--token-url") != std::string::npos);
    CHECK(error_of({"--token-url", "https://t/", "--client-id", "c", "--auth", "none", "ws://x/"})
              .find("--auth none") != std::string::npos);
    CHECK(error_of({"--stop-code", "999", "ws://x/"}).find("1000-4999") != std::string::npos);
    CHECK(error_of({"--stop-code", "4100-4000", "ws://x/"}).find("empty") != std::string::npos);
    CHECK(error_of({"--stop-code", "40x", "ws://x/"}).find("CODE") != std::string::npos);
    CHECK(error_of({"--duration", "-1", "ws://x/"}).find("--duration must not be negative") !=
          std::string::npos);
    CHECK(error_of({"--duration", "1.2.3", "ws://x/"}).find("seconds") != std::string::npos);
    CHECK(error_of({"--max-messages", "99999999999999999999999", "ws://x/"}).find("too large") !=
          std::string::npos);
    CHECK(error_of({"--auth-failure-limit", "0", "ws://x/"}).find("at least 1") !=
          std::string::npos);
    CHECK(
        error_of({"--backoff-initial", "500", "--backoff-max", "100", "ws://x/"}).find("exceeds") !=
        std::string::npos);
    CHECK(error_of({"--header", "Bad Name:v", "ws://x/"}).find("header name") != std::string::npos);
    CHECK(error_of({"--header", std::string("X:a\nb"), "ws://x/"}).find("control character") !=
          std::string::npos);
    CHECK(error_of({"--subprotocol", "a,b", "ws://x/"}).find("token") != std::string::npos);
    CHECK(error_of({"--quiet=yes", "ws://x/"}).find("takes no value") != std::string::npos);
    CHECK(error_of({"ws://x/", "--send"}).find("needs a value") != std::string::npos);
    CHECK(error_of({"-x", "ws://x/"}).find("unknown option") != std::string::npos);
    CHECK(error_of({"ws://a/", "ws://b/"}).find("one URL") != std::string::npos);
    CHECK(error_of({"ws://a b/"}).find("white space") != std::string::npos);
    CHECK(error_of({"--renew-before", "30", "ws://x/"}).find("--token-url") != std::string::npos);
    // every reason is one line
    CHECK(error_of({"--header", "X:\n", "ws://x/"}).find('\n') == std::string::npos);
}

TEST_CASE("help and version need no URL, and a double dash ends the options") {
    CHECK(parse({"--help"}).options.show_help);
    CHECK(parse({"-h"}).options.show_help);
    CHECK(parse({"--version"}).options.show_version);
    const auto r = parse({"--", "ws://x/"});
    REQUIRE(r.ok());
    CHECK(r.options.url == "ws://x/");
}

TEST_CASE("the client secret comes from --client-secret-file, else TETHER_CLIENT_SECRET") {
    cli_options o;
    std::string error;
    const auto env = [](const char* name) -> const char* {
        return std::string(name) == "TETHER_CLIENT_SECRET" ? "from-env" : nullptr;
    };
    const auto no_env = [](const char*) -> const char* { return nullptr; };

    CHECK(load_client_secret(o, env, error).reveal() == "from-env");
    CHECK(error.empty());

    CHECK(load_client_secret(o, no_env, error).empty());
    CHECK(error.find("TETHER_CLIENT_SECRET") != std::string::npos);

    const std::string path = "tether_cli_test_secret.txt";
    {
        std::ofstream f(path);
        f << "from-file\r\n";
    }
    o.client_secret_file = path;
    error.clear();
    CHECK(load_client_secret(o, env, error).reveal() ==
          "from-file"); // the file wins; line break dropped
    CHECK(error.empty());
    {
        std::ofstream f(path, std::ios::trunc);
        f << "\n";
    }
    CHECK(load_client_secret(o, env, error).empty());
    CHECK(error.find("is empty") != std::string::npos);
    std::remove(path.c_str());

    o.client_secret_file = "/nonexistent/secret";
    error.clear();
    CHECK(load_client_secret(o, env, error).empty());
    CHECK(error.find("/nonexistent/secret") != std::string::npos);
}

TEST_CASE("short flags, clusters of them, and values glued to a short flag") {
    const auto r = parse({"-qv", "-r", "-b", "-H", "X-A: 1", "-HX-B:2", "-n5", "ws://x/"});
    REQUIRE(r.ok());
    const cli_options& o = r.options;
    CHECK(o.quiet);
    CHECK(o.verbose);
    CHECK(o.raw);
    CHECK(o.binary);
    REQUIRE(o.headers.size() == 2);
    CHECK(o.headers[0] == std::pair<std::string, std::string>("X-A", "1"));
    CHECK(o.headers[1] == std::pair<std::string, std::string>("X-B", "2"));
    CHECK(o.max_messages == 5);

    const auto cluster =
        parse({"-qn", "3", "ws://x/"}); // the value flag last takes the next argument
    REQUIRE(cluster.ok());
    CHECK(cluster.options.quiet);
    CHECK(cluster.options.max_messages == 3);

    CHECK(parse({"-V"}).options.show_version);
    CHECK(error_of({"-qx", "ws://x/"}).find("unknown option '-x'") != std::string::npos);
    CHECK(error_of({"ws://x/", "-H"}).find("-H needs a value") != std::string::npos);
    CHECK(error_of({"-n", "-1", "ws://x/"}).find("-n must not be negative") != std::string::npos);
    // without a flag, the defaults: JSON lines, text messages, no proxy settings
    const auto plain = parse({"ws://x/"});
    REQUIRE(plain.ok());
    CHECK_FALSE(plain.options.raw);
    CHECK_FALSE(plain.options.binary);
    CHECK(plain.options.proxy_url.empty());
    CHECK_FALSE(plain.options.no_proxy);
}

TEST_CASE("aliases: --protocol, and the old millisecond flags next to the seconds ones") {
    const auto r = parse({"--protocol", "v2", "--proxy", "http://p:3128", "--no-proxy", "ws://x/"});
    REQUIRE(r.ok());
    CHECK(r.options.subprotocols == std::vector<std::string>{"v2"});
    CHECK(r.options.proxy_url == "http://p:3128");
    CHECK(r.options.no_proxy);

    const auto seconds = parse({"--retry-initial", "0.05", "--retry-max", "2", "ws://x/"});
    REQUIRE(seconds.ok());
    CHECK(seconds.options.backoff_initial == std::chrono::milliseconds(50));
    CHECK(seconds.options.backoff_max == std::chrono::milliseconds(2000));

    const auto millis = parse({"--backoff-initial", "50", "--backoff-max=2000", "ws://x/"});
    REQUIRE(millis.ok());
    CHECK(millis.options.backoff_initial == std::chrono::milliseconds(50));
    CHECK(millis.options.backoff_max == std::chrono::milliseconds(2000));

    // the old flags stay whole milliseconds
    CHECK(error_of({"--backoff-initial", "0.5", "ws://x/"})
              .find("--backoff-initial expects whole "
                    "milliseconds") != std::string::npos);
    CHECK(error_of({"--retry-initial", "3", "--backoff-max", "100", "ws://x/"}).find("exceeds") !=
          std::string::npos);
}

TEST_CASE("every duration flag takes seconds, fractions allowed") {
    const auto ms = [](const char* flag, const char* v) -> long long {
        const auto r = parse({"--token-url", "https://t/", "--client-id", "c", flag, v, "ws://x/"});
        REQUIRE(r.ok());
        const cli_options& o = r.options;
        const std::string f = flag;
        if (f == "--idle-timeout") return o.idle_timeout->count();
        if (f == "--ping-interval") return o.ping_interval->count();
        if (f == "--pong-timeout") return o.pong_timeout->count();
        if (f == "--handshake-timeout") return o.handshake_timeout->count();
        if (f == "--renew-before") return o.renew_before->count();
        if (f == "--retry-initial") return o.backoff_initial->count();
        if (f == "--retry-max") return o.backoff_max->count();
        if (f == "--duration") return static_cast<long long>(o.duration.count());
        FAIL("no such duration flag " << f);
        return 0LL;
    };
    for (const char* flag :
         {"--idle-timeout", "--ping-interval", "--pong-timeout", "--handshake-timeout",
          "--renew-before", "--retry-initial", "--retry-max", "--duration"}) {
        INFO(flag);
        CHECK(ms(flag, "2.5") == 2500);
        CHECK(ms(flag, "2") == 2000);
        CHECK(ms(flag, ".25") == 250);
        CHECK(ms(flag, "5.") == 5000);
        CHECK(ms(flag, "0.0005") == 1); // rounded to the nearest millisecond
        CHECK(ms(flag, "1.0004") == 1000);
        CHECK(ms(flag, "007.5") == 7500);
        CHECK(ms(flag, "31536000") == 31536000000LL); // one year, the largest
    }
    // the table knows exactly these as seconds
    std::set<std::string> seconds_rows;
    for (const auto& row : option_table())
        if (row.kind == arg_kind::seconds) seconds_rows.insert(row.name);
    CHECK(seconds_rows == std::set<std::string>{"--idle-timeout", "--ping-interval",
                                                "--pong-timeout", "--handshake-timeout",
                                                "--renew-before", "--retry-initial", "--retry-max",
                                                "--duration"});
}

TEST_CASE("bad durations and counts: one line naming the flag") {
    const auto bad = [](std::vector<std::string> args, const std::string& expected) {
        args.push_back("ws://x/");
        const std::string e = error_of(args);
        INFO(e);
        CHECK(e.find(expected) != std::string::npos);
        CHECK(e.find('\n') == std::string::npos);
    };
    bad({"--idle-timeout", "-2.5"}, "--idle-timeout must not be negative");
    bad({"--idle-timeout", "nan"}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", "NaN"}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", "inf"}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", "1e3"}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", "2s"}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", "."}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", ""}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", "1.2.3"}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", "+1"}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", " 1"}, "--idle-timeout expects seconds");
    bad({"--idle-timeout", "1\n2"}, "--idle-timeout expects seconds");
    bad({"--ping-interval", "31536000.001"}, "--ping-interval is too large");
    bad({"--ping-interval", "99999999999999999999999"}, "--ping-interval is too large");
    bad({"--duration", "0.0004"}, "--duration is below the 1 ms resolution");
    bad({"--backoff-max", "-5"}, "--backoff-max must not be negative");
    bad({"--backoff-max", "99999999999999999999999"}, "--backoff-max is too large");
    bad({"--max-messages", "1.5"}, "--max-messages expects a whole number");
    bad({"-n", "ten"}, "-n expects a whole number");
    bad({"--max-attempts", "1000000001"}, "--max-attempts is too large");
    bad({"--max-messages", "18446744073709551616"}, "--max-messages is too large");
    CHECK(parse({"--max-messages", "18446744073709551615", "ws://x/"}).options.max_messages ==
          18446744073709551615ULL);

    std::string error;
    CHECK_FALSE(parse_seconds("--x", std::string(200, '9'), error));
    CHECK(error.find("--x is too large") != std::string::npos);
    CHECK(error.size() < 160); // the value is shortened
}

TEST_CASE("the help text is generated from the option table: every row is listed and parses") {
    const std::string help = usage_text();
    // the help text with its line breaks and indentation folded: wrapped text is found too
    const std::string flat = std::regex_replace(help, std::regex("\\s+"), " ");
    std::set<std::string> known; // every name the table accepts
    for (const auto& row : option_table()) {
        INFO(row.name);
        known.insert(row.name);
        CHECK(help.find(row.name) != std::string::npos);
        std::istringstream words(row.help);
        for (std::string w; words >> w;)
            CHECK(help.find(w) != std::string::npos);
        if (row.default_text)
            CHECK(flat.find(std::string("(default: ") + row.default_text + ")") !=
                  std::string::npos);
        std::vector<std::string> names{row.name};
        if (row.short_name) {
            const std::string s{'-', row.short_name};
            CHECK(help.find(s + ", " + row.name) != std::string::npos);
            names.push_back(s);
        }
        for (const char* a : row.aliases) {
            known.insert(a);
            CHECK(help.find(std::string(", ") + a) != std::string::npos);
            names.push_back(a);
        }
        if (row.millis_alias) {
            CHECK(row.kind == arg_kind::seconds);
            known.insert(row.millis_alias);
            CHECK(help.find(std::string(row.millis_alias) + " MS") != std::string::npos);
            CHECK(help.find(std::string("old flag, still accepted: ") + row.name) !=
                  std::string::npos);
        }
        if (row.kind != arg_kind::flag) {
            REQUIRE(row.metavar);
            REQUIRE(row.example);
            std::string synopsis = row.name;
            for (const char* a : row.aliases)
                synopsis += std::string(", ") + a;
            CHECK(help.find(synopsis + " " + row.metavar) != std::string::npos);
        }
        if (row.kind == arg_kind::count) CHECK(row.max > 0);
        // every name of the row parses (token options need a token endpoint)
        for (const auto& name : names) {
            std::vector<std::string> args{"--token-url", "https://t/", "--client-id", "c"};
            if (name == "--token-url") args = {"--client-id", "c"};
            if (name == "--client-id") args = {"--token-url", "https://t/"};
            args.push_back(name);
            if (row.kind != arg_kind::flag) args.push_back(row.example);
            args.push_back("ws://x/");
            const auto r = parse(args);
            INFO(name);
            CHECK(r.ok());
            CHECK(r.error == "");
        }
        if (row.millis_alias) {
            const auto r = parse({"--token-url", "https://t/", "--client-id", "c", row.millis_alias,
                                  "1500", "ws://x/"});
            CHECK(r.ok());
        }
    }
    // ... and --help names nothing the table does not know (besides --client-secret's absence)
    const std::regex long_option("--[a-z][a-z-]*[a-z]");
    for (auto it = std::sregex_iterator(help.begin(), help.end(), long_option);
         it != std::sregex_iterator(); ++it) {
        INFO(it->str());
        CHECK(known.count(it->str()) == 1);
    }
    // names and short names are unique
    std::set<std::string> names;
    std::set<char> shorts;
    std::size_t total = 0, total_short = 0;
    for (const auto& row : option_table()) {
        names.insert(row.name);
        ++total;
        for (const char* a : row.aliases) {
            names.insert(a);
            ++total;
        }
        if (row.millis_alias) {
            names.insert(row.millis_alias);
            ++total;
        }
        if (row.short_name) {
            shorts.insert(row.short_name);
            ++total_short;
        }
    }
    CHECK(names.size() == total);
    CHECK(shorts.size() == total_short);
    CHECK(shorts == std::set<char>{'H', 'q', 'v', 'r', 'b', 'n', 'h', 'V'});
    // fits a terminal
    std::istringstream lines(help);
    for (std::string line; std::getline(lines, line);) {
        INFO(line);
        CHECK(line.size() <= 79);
    }
}

TEST_CASE("raw lines (--raw) and base64") {
    CHECK(base64("") == "");
    CHECK(base64("f") == "Zg==");
    CHECK(base64("fo") == "Zm8=");
    CHECK(base64("foo") == "Zm9v");
    CHECK(base64("foobar") == "Zm9vYmFy");
    CHECK(base64(std::string("\x00\xff\xfe\x7f", 4)) == "AP/+fw==");
    CHECK(format_raw("a\nb\r\nc", false) == "a b  c"); // one message, one line, same length
    CHECK(format_raw("plain", false) == "plain");
    CHECK(format_raw(std::string("\x00\n", 2), true) == "AAo=");
}

TEST_CASE("proxy flags: --proxy URL and --no-proxy") {
    auto r = parse({"--proxy", "http://u:p@proxy.example:3128", "wss://x.example/"});
    REQUIRE(r.ok());
    CHECK(r.options.proxy_url == "http://u:p@proxy.example:3128");
    CHECK_FALSE(r.options.no_proxy);
    r = parse({"--no-proxy", "wss://x.example/"});
    REQUIRE(r.ok());
    CHECK(r.options.no_proxy);
    CHECK(r.options.proxy_url.empty());
    CHECK_THAT(error_of({"--proxy"}), Catch::Contains("--proxy"));
}
