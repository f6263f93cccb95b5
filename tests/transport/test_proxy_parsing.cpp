// HTTP proxy settings without a network: proxy URLs, no_proxy matching, the
// environment, the CONNECT request and the parsing and judging of answers.
#include <tether/close_policy/default_close_policy.hpp>
#include <tether/detail/proxy_tunnel.hpp>
#include <tether/genesys/close_policy.hpp>
#include <tether/proxy.hpp>
#include <tether/token.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

using tether::no_proxy_list;
using tether::proxy_options;
using tether::proxy_server;

namespace {

std::string reason_of_bad_url(const std::string& url) {
    try {
        proxy_options::from_url(url);
    } catch (const std::system_error& e) {
        return e.what();
    }
    return "accepted";
}

proxy_server proxy_with(std::string user = {}, std::string pass = {}) {
    proxy_server p;
    p.host = "proxy.test";
    p.port = 3128;
    p.username = tether::secret(std::move(user));
    p.password = tether::secret(std::move(pass));
    return p;
}

} // namespace

TEST_CASE("proxy URLs: host, port, credentials", "[proxy]") {
    auto o = proxy_options::from_url("http://proxy.corp.example:3128");
    REQUIRE(o.https);
    REQUIRE(o.http);
    CHECK(o.https->host == "proxy.corp.example");
    CHECK(o.https->port == 3128);
    CHECK_FALSE(o.https->has_credentials());

    o = proxy_options::from_url("http://Alice:p%40ss%3Aword@PROXY:8080/");
    CHECK(o.https->host == "proxy");
    CHECK(o.https->username.reveal() == "Alice");
    CHECK(o.https->password.reveal() == "p@ss:word");

    o = proxy_options::from_url("proxy.example:3128"); // no scheme: http://, as curl does
    CHECK(o.https->port == 3128);
    o = proxy_options::from_url("http://[::1]:3128");
    CHECK(o.https->host == "::1");
    CHECK(o.https->authority() == "[::1]:3128");
    o = proxy_options::from_url("http://proxy.example");
    CHECK(o.https->port == 80);
    o = proxy_options::from_url("http://user@proxy.example:1"); // empty password
    CHECK(o.https->has_credentials());
    CHECK(o.https->password.empty());
}

TEST_CASE("bad proxy URLs are refused with a reason that never quotes them", "[proxy]") {
    CHECK_THAT(reason_of_bad_url("https://proxy:3128"), Catch::Contains("only http:// proxies"));
    CHECK_THAT(reason_of_bad_url("socks5://proxy:1080"), Catch::Contains("only http:// proxies"));
    CHECK_THAT(reason_of_bad_url(""), Catch::Contains("empty"));
    CHECK_THAT(reason_of_bad_url("http://proxy:99999"), Catch::Contains("port"));
    CHECK_THAT(reason_of_bad_url("http://proxy:"), Catch::Contains("port"));
    CHECK_THAT(reason_of_bad_url("http://proxy:3128/path"), Catch::Contains("no path"));
    CHECK_THAT(reason_of_bad_url("http://pro xy:3128"), Catch::Contains("white space"));
    CHECK_THAT(reason_of_bad_url("http://:3128"), Catch::Contains("no host"));
    CHECK_THAT(reason_of_bad_url("http://[::1:3128"), Catch::Contains("IPv6"));
    CHECK_THAT(reason_of_bad_url("http://u:%zz@proxy:1"), Catch::Contains("percent"));
    CHECK_THAT(reason_of_bad_url("http://:secret@proxy:1"), Catch::Contains("user name"));
    // the reason never contains the password, whatever was wrong
    const std::string r = reason_of_bad_url("http://user:hunter2@proxy:99999");
    CHECK_THAT(r, Catch::Contains("tether: proxy URL"));
    CHECK(r.find("hunter2") == std::string::npos);
}

TEST_CASE("proxy options filled in by hand are validated", "[proxy]") {
    proxy_options o;
    CHECK_NOTHROW(o.validate("x"));
    o.https = proxy_with("user", "pw");
    CHECK_NOTHROW(o.validate("x"));
    o.https->port = 0;
    CHECK_THROWS_WITH(
        o.validate("websocketpp_transport_options"),
        Catch::StartsWith("tether: websocketpp_transport_options::proxy: the proxy port is 0"));
    o.https = proxy_with("us:er", "pw");
    CHECK_THROWS_WITH(o.validate("x"), Catch::Contains("user name"));
    o.https = proxy_with("", "pw");
    CHECK_THROWS_WITH(o.validate("x"), Catch::Contains("without a user name"));
    o.https = proxy_with();
    o.https->host.clear();
    CHECK_THROWS_WITH(o.validate("x"), Catch::Contains("host is empty"));
}

TEST_CASE("proxy options stream without credentials", "[proxy]") {
    auto o = proxy_options::from_url("http://alice:hunter2@proxy:3128", "localhost,.corp");
    std::ostringstream s;
    s << o;
    CHECK(s.str() ==
          "proxy_options{https=http://[redacted]@proxy:3128, http=http://[redacted]@proxy:3128, "
          "no_proxy=localhost,.corp}");
    CHECK(o.to_string() == s.str());
    CHECK(s.str().find("alice") == std::string::npos);
    CHECK(s.str().find("hunter2") == std::string::npos);
    CHECK(proxy_options{}.to_string() == "proxy_options{https=none, http=none, no_proxy=}");
}

TEST_CASE("no_proxy: suffixes, *, ports, addresses and ranges", "[proxy]") {
    const no_proxy_list l(" example.com, .corp.test ,*.wild.test,api.test:8443, 10.1.2.3, [::1], "
                          "fd00::7, 192.168.0.0/16, fe80::/10, 127.0.0.1:9000,, bad:port:x ");
    CHECK(l.matches("example.com", 443));
    CHECK(l.matches("a.example.com", 443));
    CHECK(l.matches("A.B.EXAMPLE.COM.", 443));
    CHECK_FALSE(l.matches("notexample.com", 443));
    CHECK_FALSE(l.matches("example.com.evil", 443));
    CHECK(l.matches("corp.test", 80)); // ".corp.test" matches the domain itself too
    CHECK(l.matches("x.corp.test", 80));
    CHECK(l.matches("x.wild.test", 80));
    CHECK(l.matches("api.test", 8443));
    CHECK_FALSE(l.matches("api.test", 443));
    CHECK(l.matches("10.1.2.3", 1));
    CHECK_FALSE(l.matches("10.1.2.4", 1));
    CHECK(l.matches("::1", 1));
    CHECK(l.matches("[::1]", 1));
    CHECK(l.matches("fd00:0::7", 1));
    CHECK(l.matches("192.168.44.5", 1));
    CHECK_FALSE(l.matches("192.169.0.1", 1));
    CHECK(l.matches("fe80::1234", 1));
    CHECK_FALSE(l.matches("fec0::1", 1));
    CHECK(l.matches("127.0.0.1", 9000));
    CHECK_FALSE(l.matches("127.0.0.1", 9001));
    CHECK_FALSE(l.matches("localhost", 9000)); // names are not resolved
    CHECK_FALSE(l.matches("10.1.2.3.example", 1));

    CHECK(no_proxy_list("*").matches("anything.at.all", 1));
    CHECK(no_proxy_list("a.test, *").bypasses_everything());
    CHECK(no_proxy_list("").empty());
    CHECK(no_proxy_list(" , ,").empty());
    CHECK(no_proxy_list("10.0.0.0/33,::/129,x:0").empty()); // meaningless entries are ignored
    CHECK(no_proxy_list("10.0.0.0/8").matches("10.200.1.1", 5));
    CHECK(no_proxy_list("0.0.0.0/0").matches("8.8.8.8", 5));
    CHECK_FALSE(no_proxy_list("0.0.0.0/0").matches("::1", 5));
}

TEST_CASE("from_environment: the usual variables and their precedence", "[proxy]") {
    std::map<std::string, std::string> env;
    const auto get = [&env](const char* name) -> const char* {
        const auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    };
    CHECK_FALSE(proxy_options::from_environment(get).enabled());

    env["HTTPS_PROXY"] = "http://upper:3128";
    env["http_proxy"] = "http://plain:8080";
    env["NO_PROXY"] = "localhost,.internal";
    auto o = proxy_options::from_environment(get);
    REQUIRE(o.https);
    CHECK(o.https->host == "upper");
    REQUIRE(o.http);
    CHECK(o.http->host == "plain");
    CHECK(o.no_proxy.text() == "localhost,.internal");

    env["https_proxy"] = "http://lower:3128"; // lower case wins
    env["no_proxy"] = "*";
    env["HTTP_PROXY"] = "http://ignored:1";
    o = proxy_options::from_environment(get);
    CHECK(o.https->host == "lower");
    CHECK(o.http->host == "plain");
    CHECK(o.no_proxy.bypasses_everything());
    CHECK(o.select(true, "api.example.com", 443) == nullptr);

    env.erase("no_proxy");
    env["NO_PROXY"] = "internal.test";
    env["https_proxy"] = ""; // empty counts as unset: the upper-case one applies
    o = proxy_options::from_environment(get);
    CHECK(o.https->host == "upper");
    // wss:// and https:// use https_proxy, ws:// and http:// use http_proxy
    REQUIRE(o.select(true, "api.example.com", 443));
    CHECK(o.select(true, "api.example.com", 443)->host == "upper");
    CHECK(o.select(false, "api.example.com", 80)->host == "plain");
    CHECK(o.select(true, "x.internal.test", 443) == nullptr);
    CHECK(o.bypass("internal.test", 1));

    env.erase("http_proxy");
    env.erase("HTTP_PROXY");
    o = proxy_options::from_environment(get);
    CHECK(o.select(false, "api.example.com", 80) == nullptr); // no http_proxy: direct

    env["https_proxy"] = "https://user:hunter2@proxy:3128";
    try {
        proxy_options::from_environment(get);
        FAIL("a bad https_proxy was accepted");
    } catch (const std::system_error& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::Contains("https_proxy"));
        CHECK_THAT(what, Catch::Contains("only http:// proxies"));
        CHECK(what.find("hunter2") == std::string::npos);
    }
}

TEST_CASE("the CONNECT request", "[proxy]") {
    auto p = proxy_with();
    CHECK(tether::detail::build_connect_request("api.example.com", 443, p).reveal() ==
          "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n");
    CHECK(tether::detail::build_connect_request("::1", 8443, p, "tether/0.1").reveal() ==
          "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\nUser-Agent: tether/0.1\r\n\r\n");
    p = proxy_with("Aladdin", "open sesame");
    CHECK(tether::detail::build_connect_request("h", 1, p).reveal() ==
          "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n"
          "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n");
}

TEST_CASE("answers to CONNECT: fragmented, refused, oversized, extra bytes", "[proxy]") {
    using tether::detail::connect_reply_reader;
    const auto p = proxy_with("u", "pw");

    SECTION("a 200 fed one byte at a time") {
        connect_reply_reader r(p);
        const std::string answer = "HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n";
        for (std::size_t i = 0; i + 1 < answer.size(); ++i)
            CHECK_FALSE(r.feed(&answer[i], 1));
        CHECK(r.feed(&answer.back(), 1));
        CHECK_FALSE(r.result().error);
        CHECK(r.result().status == 200);
    }
    SECTION("1xx interim answers are skipped; a 200 without a body length is not read to EOF") {
        connect_reply_reader r(p);
        const std::string answer = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n";
        CHECK(r.feed(answer.data(), answer.size()));
        CHECK_FALSE(r.result().error);
    }
    SECTION("407 with a body: proxy_auth_required, the body ignored") {
        connect_reply_reader r(p);
        const std::string answer = "HTTP/1.1 407 Proxy Authentication Required\r\n"
                                   "Proxy-Authenticate: Basic realm=\"x\"\r\n"
                                   "Content-Length: 5000\r\n\r\n<html>";
        CHECK(r.feed(answer.data(), answer.size()));
        CHECK(r.result().error == tether::error::proxy_auth_required);
        CHECK(r.result().status == 407);
        CHECK_THAT(r.result().detail, Catch::Contains("proxy.test:3128"));
        CHECK_THAT(r.result().detail, Catch::Contains("credentials were refused"));
        CHECK(r.result().detail.find("pw") == std::string::npos);
    }
    SECTION("401 to CONNECT is the proxy's too (tinyproxy answers wrong credentials so)") {
        connect_reply_reader r(p);
        const std::string answer = "HTTP/1.1 401 Unauthorized\r\n\r\n";
        CHECK(r.feed(answer.data(), answer.size()));
        CHECK(r.result().error == tether::error::proxy_auth_required);
        CHECK(r.result().status == 401);
    }
    SECTION("403, 405: proxy_denied; 502/503/504: proxy_error with Retry-After") {
        for (const char* status : {"403 Forbidden", "405 Method Not Allowed", "400 Bad"}) {
            connect_reply_reader r(p);
            const std::string answer = std::string("HTTP/1.1 ") + status + "\r\n\r\n";
            CHECK(r.feed(answer.data(), answer.size()));
            CHECK(r.result().error == tether::error::proxy_denied);
        }
        for (const char* status : {"502 Bad Gateway", "503 Unavailable", "504 Timeout"}) {
            connect_reply_reader r(p);
            const std::string answer =
                std::string("HTTP/1.1 ") + status + "\r\nRetry-After: 7\r\n\r\n";
            CHECK(r.feed(answer.data(), answer.size()));
            CHECK(r.result().error == tether::error::proxy_error);
            REQUIRE(r.result().retry_after);
            CHECK(r.result().retry_after->count() == 7000);
        }
    }
    SECTION("bytes after the 200's header section are refused, not lost silently") {
        connect_reply_reader r(p);
        const std::string answer = "HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01";
        CHECK(r.feed(answer.data(), answer.size()));
        CHECK(r.result().error == tether::error::proxy_error);
        CHECK_THAT(r.result().detail, Catch::Contains("3 byte(s) after its 2xx"));
    }
    SECTION("an oversized header section fails within the bound") {
        connect_reply_reader r(p);
        std::string answer = "HTTP/1.1 200 OK\r\n";
        const std::string field = "X-Filler: " + std::string(100, 'a') + "\r\n";
        bool finished = r.feed(answer.data(), answer.size());
        std::size_t fed = answer.size();
        while (!finished && fed < 64 * 1024) {
            finished = r.feed(field.data(), field.size());
            fed += field.size();
        }
        CHECK(finished);
        CHECK(fed <= 8 * 1024 + field.size());
        CHECK(r.result().error == tether::error::proxy_error);
        CHECK_THAT(r.result().detail, Catch::Contains("malformed answer"));
    }
    SECTION("garbage and early close") {
        connect_reply_reader r(p);
        const std::string answer = "SSH-2.0-OpenSSH\r\n";
        CHECK(r.feed(answer.data(), answer.size()));
        CHECK(r.result().error == tether::error::proxy_error);
        connect_reply_reader r2(p);
        CHECK_FALSE(r2.feed("HTTP/1.1 200", 12));
        CHECK(r2.feed_eof());
        CHECK(r2.result().error == tether::error::proxy_error);
    }
    SECTION("407 without configured credentials says so") {
        const auto bare = proxy_with();
        connect_reply_reader r(bare);
        const std::string answer = "HTTP/1.1 407 Auth\r\n\r\n";
        CHECK(r.feed(answer.data(), answer.size()));
        CHECK_THAT(r.result().detail, Catch::Contains("no proxy credentials configured"));
    }
}

TEST_CASE("proxy failures and the close policies", "[proxy]") {
    tether::default_close_policy policy;
    tether::genesys::genesys_close_policy genesys;
    const auto verdict = [&](tether::error e) {
        tether::close_event ev;
        ev.error = e;
        ev.proxy_status = 1;
        return std::make_pair(policy.decide(ev), genesys.decide(ev));
    };
    for (auto e : {tether::error::proxy_auth_required, tether::error::proxy_denied}) {
        const auto [d, g] = verdict(e);
        CHECK(d.action == tether::close_action::stop);
        CHECK(d.stop_reason == e);
        CHECK(g.action == tether::close_action::stop);
    }
    const auto [d, g] = verdict(tether::error::proxy_error);
    CHECK(d.action == tether::close_action::reconnect);
    CHECK(d.cls == tether::failure_class::network);
    CHECK(g.action == tether::close_action::reconnect);

    CHECK(tether::make_error_code(tether::error::proxy_auth_required) ==
          std::errc::permission_denied);
    CHECK(tether::is_permanent_token_error(tether::error::proxy_auth_required));
    CHECK(tether::is_permanent_token_error(tether::error::proxy_denied));
    CHECK_FALSE(tether::is_permanent_token_error(tether::error::proxy_error));
}
