// tether-cli's command line: parsed values, usage errors, the close-code table
// it builds, and where the client secret comes from.
#include "cli_options.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
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
    CHECK(error_of({"--duration", "-1", "ws://x/"}).find("seconds") != std::string::npos);
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

TEST_CASE("--help and --version need no URL; -- ends the options") {
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
