// The HTTP parser, URL and form encoding, token response classification, and
// oauth2_client_credentials against a scripted endpoint on 127.0.0.1 (HTTP
// and HTTPS with a CA made at test time), plus the log-capture check.
//
// Also built in Boost mode (TETHER_USE_BOOST_ASIO, tests/token/CMakeLists.txt):
// tether's side runs on tether::net (Boost.Asio there), the fixtures (token
// endpoint, tinyproxy probe) stay on standalone Asio in their own threads.
#include "../tinyproxy_fixture.hpp"
#include "local_token_endpoint.hpp"

#include <tether/detail/http_client.hpp>
#include <tether/detail/url.hpp>
#include <tether/genesys/rest_client.hpp>
#include <tether/proxy.hpp>
#include <tether/token_policy/concept.hpp>
#include <tether/token_policy/oauth2_client_credentials.hpp>
#include <tether/token_policy/oauth2_response.hpp>

#include <catch2/catch.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using tether::error;
using tether::detail::http_response_parser;
using tether_test::local_token_endpoint;
using tether_test::received_request;
using tether_test::reply;

namespace {

// Markers that must never show up in any log line, detail or printout.
const std::string secret_marker = "SEC7a1b";
const std::string token_marker = "TKN9f3e";
// Characters that form encoding must escape, to check it is done.
const std::string client_secret_value = secret_marker + "-p@ss w/rd+=&";
const std::string client_id_value = "tether-client";

std::string issued_token(std::size_t n) { return "tok-" + token_marker + "-" + std::to_string(n); }

http_response_parser parse_all(const std::string& bytes, bool eof = false,
                               tether::detail::http_limits limits = {}) {
    http_response_parser p(limits);
    p.feed(bytes);
    if (eof) p.feed_eof();
    return p;
}

// Feeding one byte at a time must give the same result as all at once.
http_response_parser parse_bytewise(const std::string& bytes, bool eof = false) {
    http_response_parser p;
    for (char c : bytes)
        p.feed(&c, 1);
    if (eof) p.feed_eof();
    return p;
}

} // namespace

// --------------------------------------------------------------------------
// HTTP response parser (pure)

TEST_CASE("parser: a Content-Length response, at once and byte by byte") {
    const std::string msg =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
        "X-Empty:\r\n\r\n{\"a\":\"hello\"}";
    for (auto p : {parse_all(msg), parse_bytewise(msg)}) {
        REQUIRE(p.done());
        CHECK(p.response().status == 200);
        CHECK(p.response().reason == "OK");
        CHECK(p.response().body == "{\"a\":\"hello\"}");
        REQUIRE(p.response().header("content-type") != nullptr);
        CHECK(*p.response().header("CONTENT-TYPE") == "application/json");
        REQUIRE(p.response().header("x-empty") != nullptr);
        CHECK(p.response().header("x-empty")->empty());
    }
}

TEST_CASE("parser: chunked body with extensions and trailers") {
    const std::string msg =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4;name=value\r\n{\"a\"\r\nA\r\n:\"0123456\"\r\n1\r\n}\r\n0\r\nTrailer: x\r\n\r\n";
    for (auto p : {parse_all(msg), parse_bytewise(msg)}) {
        REQUIRE(p.done());
        CHECK(p.response().body == "{\"a\":\"0123456\"}");
    }
}

TEST_CASE("parser: interim 1xx responses are skipped; 204 has no body") {
    auto p =
        parse_all("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    REQUIRE(p.done());
    CHECK(p.response().status == 200);
    CHECK(p.response().body == "{}");

    auto q = parse_all("HTTP/1.1 204 No Content\r\n\r\n");
    REQUIRE(q.done());
    CHECK(q.response().body.empty());
}

TEST_CASE("parser: body delimited by the connection close") {
    auto p = parse_all("HTTP/1.0 200 OK\r\n\r\nabc");
    CHECK_FALSE(p.done());
    p.feed_eof();
    REQUIRE(p.done());
    CHECK(p.response().body == "abc");
}

TEST_CASE("parser: bytes after the end of the message are not consumed") {
    http_response_parser p;
    const std::string msg = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}EXTRA";
    CHECK(p.feed(msg) == msg.size() - 5);
    CHECK(p.done());
}

TEST_CASE("parser: reason phrase may be absent") {
    auto p = parse_all("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(p.done());
    CHECK(p.response().reason.empty());
}

TEST_CASE("parser: refuses what a strict reader must refuse") {
    struct bad {
        const char* name;
        std::string bytes;
        bool eof;
        error expected;
    };
    const std::string big_field(20000, 'a');
    std::string many_fields = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 101; ++i)
        many_fields += "X-" + std::to_string(i) + ": v\r\n";
    many_fields += "\r\n";
    const std::vector<bad> cases = {
        {"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false,
         error::malformed_http_response},
        {"not HTTP", "ICY 200 OK\r\n\r\n", false, error::malformed_http_response},
        {"HTTP/2 status line", "HTTP/2 200 OK\r\n\r\n", false, error::malformed_http_response},
        {"status out of range", "HTTP/1.1 999 No\r\n\r\n", false, error::malformed_http_response},
        {"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", false, error::malformed_http_response},
        {"control char in reason", std::string("HTTP/1.1 200 O\x01K\r\n\r\n"), false,
         error::malformed_http_response},
        {"obs-fold", "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", false,
         error::malformed_http_response},
        {"space before colon", "HTTP/1.1 200 OK\r\nA : b\r\n\r\n", false,
         error::malformed_http_response},
        {"no colon", "HTTP/1.1 200 OK\r\nAb\r\n\r\n", false, error::malformed_http_response},
        {"NUL in value", std::string("HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n", 28), false,
         error::malformed_http_response},
        {"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
         false, error::malformed_http_response},
        {"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false,
         error::malformed_http_response},
        {"two TE",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
         false, error::malformed_http_response},
        {"conflicting CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
         false, error::malformed_http_response},
        {"signed CL", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n", false,
         error::malformed_http_response},
        {"huge CL", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", false,
         error::malformed_http_response},
        {"CL over the cap", "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n", false,
         error::response_too_large},
        {"header section too big", "HTTP/1.1 200 OK\r\nA: " + big_field + "\r\n\r\n", false,
         error::malformed_http_response},
        {"too many fields", many_fields, false, error::malformed_http_response},
        {"101", "HTTP/1.1 101 Switching Protocols\r\n\r\n", false, error::malformed_http_response},
        {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false,
         error::malformed_http_response},
        {"chunk over the cap", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA00000\r\n",
         false, error::response_too_large},
        {"chunk size overflow",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n", false,
         error::malformed_http_response},
        {"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX",
         false, error::malformed_http_response},
        {"EOF in the body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", true,
         error::malformed_http_response},
        {"EOF in the header", "HTTP/1.1 200 OK\r\nContent-", true, error::malformed_http_response},
        {"EOF in chunks", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", true,
         error::malformed_http_response},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        auto p = parse_all(c.bytes, c.eof);
        REQUIRE(p.failed());
        CHECK(p.error() == c.expected);
        CHECK_FALSE(p.error_detail().empty());
        auto q = parse_bytewise(c.bytes, c.eof);
        CHECK(q.error() == c.expected);
    }
}

TEST_CASE("parser: a body read until close stops at the cap") {
    tether::detail::http_limits limits;
    limits.max_body_bytes = 100;
    http_response_parser p(limits);
    p.feed("HTTP/1.1 200 OK\r\n\r\n");
    p.feed(std::string(100, 'x'));
    CHECK_FALSE(p.failed());
    p.feed("y");
    REQUIRE(p.failed());
    CHECK(p.error() == error::response_too_large);
}

// --------------------------------------------------------------------------
// URL, form encoding, base64

TEST_CASE("URL parsing") {
    std::string why;
    auto u = tether::detail::parse_http_url("https://Login.Example.com/oauth/token?x=1", why);
    REQUIRE(u);
    CHECK(u->tls);
    CHECK(u->host == "login.example.com");
    CHECK(u->port == 443);
    CHECK(u->target == "/oauth/token?x=1");
    CHECK(u->host_field() == "login.example.com");
    CHECK(u->display() == "https://login.example.com/oauth/token");

    u = tether::detail::parse_http_url("http://127.0.0.1:8080", why);
    REQUIRE(u);
    CHECK_FALSE(u->tls);
    CHECK(u->port == 8080);
    CHECK(u->target == "/");
    CHECK(u->host_field() == "127.0.0.1:8080");

    u = tether::detail::parse_http_url("http://[::1]:9/t", why);
    REQUIRE(u);
    CHECK(u->host == "::1");
    CHECK(u->host_field() == "[::1]:9");

    u = tether::detail::parse_http_url("https://h?q", why);
    REQUIRE(u);
    CHECK(u->target == "/?q");

    for (const char* bad : {"ftp://h/", "h/path", "https://", "https://user:pw@h/", "https://h:0/",
                            "https://h:65536/", "https://h:/", "https://h:12a/", "https://[::1/",
                            "https://[zz]/", "https://h/a b", "https://h/#frag", "https://h!x/"}) {
        INFO(bad);
        CHECK_FALSE(tether::detail::parse_http_url(bad, why));
        CHECK_FALSE(why.empty());
    }
}

TEST_CASE("loopback detection") {
    using tether::detail::is_loopback_host;
    CHECK(is_loopback_host("localhost"));
    CHECK(is_loopback_host("127.0.0.1"));
    CHECK(is_loopback_host("127.8.9.10"));
    CHECK(is_loopback_host("::1"));
    CHECK(is_loopback_host("::ffff:127.0.0.1"));
    CHECK_FALSE(is_loopback_host("192.0.2.1"));
    CHECK_FALSE(is_loopback_host("example.com"));
    CHECK_FALSE(is_loopback_host("localhost.example.com"));
}

TEST_CASE("form encoding and base64") {
    using tether::detail::base64_encode;
    using tether::detail::form_urlencode;
    CHECK(form_urlencode("AZaz09*-._") == "AZaz09*-._");
    CHECK(form_urlencode("a b&c=d/e+f~") == "a+b%26c%3Dd%2Fe%2Bf%7E");
    CHECK(form_urlencode("\xc3\xa9") == "%C3%A9");
    CHECK(form_urlencode(std::string("\0", 1)) == "%00");
    // RFC 4648 section 10
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foob") == "Zm9vYg==");
    CHECK(base64_encode("fooba") == "Zm9vYmE=");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_encode("\xff\xfe") == "//4=");
}

// --------------------------------------------------------------------------
// parse_token_response (pure)

namespace {
tether::detail::http_response make_response(int status, std::string body,
                                            std::vector<tether::http_header> headers = {}) {
    tether::detail::http_response r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return r;
}
const auto fixed_now = std::chrono::system_clock::time_point(
    std::chrono::seconds(784111777)); // 1994-11-06 08:49:37 GMT
} // namespace

TEST_CASE("token response: success and expires_in handling") {
    tether::oauth2_response_rules rules;
    rules.default_lifetime = 1234s;
    auto ok = [&](const std::string& body) {
        return tether::parse_token_response(make_response(200, body), rules, fixed_now);
    };

    auto r = ok(R"({"access_token":"abc","token_type":"Bearer","expires_in":3600})");
    REQUIRE_FALSE(r.error);
    CHECK(std::string(r.value.value.reveal()) == "abc");
    CHECK(r.value.lifetime == 3600s);
    CHECK(r.value.fresh);
    CHECK(r.detail.empty());

    CHECK(ok(R"({"access_token":"abc"})").value.lifetime == 1234s);
    CHECK(ok(R"({"access_token":"abc","expires_in":59.9})").value.lifetime == 59s);
    CHECK(ok(R"({"access_token":"abc","expires_in":18446744073709551615})").value.lifetime ==
          rules.max_lifetime);
    CHECK(ok(R"({"access_token":"abc","expires_in":1e300})").value.lifetime == rules.max_lifetime);
    CHECK(ok(R"({"access_token":"abc","token_type":"bearer","scope":"x","extra":{"n":[1,2]}})")
              .value.lifetime == 1234s);

    struct bad {
        std::string body;
        std::string says;
    };
    for (const auto& b : std::vector<bad>{
             {R"({"access_token":"abc","expires_in":0})", "expires_in is 0"},
             {R"({"access_token":"abc","expires_in":-5})", "not positive (-5)"},
             {R"({"access_token":"abc","expires_in":0.5})", "less than one second"},
             {R"({"access_token":"abc","expires_in":"36x"})", "expires_in is not a decimal number"},
             {R"({"access_token":"abc","expires_in":""})", "expires_in is not a decimal number"},
             {R"({"access_token":"abc","expires_in":"-5"})", "expires_in is not a decimal number"},
             {R"({"access_token":"abc","expires_in":" 60"})", "expires_in is not a decimal number"},
             {R"({"access_token":"abc","expires_in":"0"})", "expires_in is 0"},
             {R"({"access_token":"abc","expires_in":[1]})", "expires_in is array"},
             {R"({"access_token":"abc","expires_in":null})", "expires_in is null"},
             {R"({"access_token":"abc","expires_in":true})", "expires_in is boolean"},
             {R"({"access_token":"","expires_in":10})", "access_token is empty"},
             {R"({"access_token":42})", "access_token is not a string"},
             {R"({"token":"abc"})", "no access_token"},
             {R"({"access_token":"a\r\nX-Injected: 1"})", "not allowed in an HTTP header"},
             {R"({"access_token":"a b"})", "not allowed in an HTTP header"},
             {R"({"access_token":"abc","token_type":1})", "token_type is not a string"},
             {R"(["access_token"])", "not a JSON object"},
             {R"({"access_token":"abc")", "not valid JSON"},
             {"", "not valid JSON"},
             {"<html>oops</html>", "not valid JSON"},
         }) {
        INFO(b.body);
        auto x = ok(b.body);
        CHECK(x.error == error::malformed_token_response);
        CHECK_THAT(x.detail, Catch::Contains(b.says));
        CHECK_THAT(x.detail, !Catch::Contains("abc"));
    }
}

TEST_CASE("token response: expires_in as a decimal string is accepted (issue 12 #8)") {
    tether::oauth2_response_rules rules;
    auto ok = [&](const std::string& body) {
        return tether::parse_token_response(make_response(200, body), rules, fixed_now);
    };
    auto r = ok(R"({"access_token":"abc","expires_in":"3600"})");
    REQUIRE_FALSE(r.error);
    CHECK(r.value.lifetime == 3600s);
    CHECK(ok(R"({"access_token":"abc","expires_in":"1"})").value.lifetime == 1s);
    CHECK(ok(R"({"access_token":"abc","expires_in":"99999999999999999999999"})").value.lifetime ==
          rules.max_lifetime);
}

TEST_CASE("token response: error classification") {
    tether::oauth2_response_rules rules;
    auto classify = [&](int status, const std::string& body,
                        std::vector<tether::http_header> h = {}) {
        return tether::parse_token_response(make_response(status, body, std::move(h)), rules,
                                            fixed_now);
    };
    CHECK(classify(401, R"({"error":"invalid_client"})").error == error::invalid_credentials);
    CHECK(classify(400, R"({"error":"invalid_grant"})").error == error::invalid_credentials);
    CHECK(classify(400, R"({"error":"unauthorized_client"})").error == error::invalid_credentials);
    CHECK(classify(400, R"({"error":"invalid_scope"})").error == error::invalid_credentials);
    CHECK(classify(500, R"({"error":"invalid_client"})").error == error::invalid_credentials);
    CHECK(classify(400, R"({"error":"temporarily_unavailable"})").error ==
          error::token_request_failed);
    CHECK(classify(401, "").error == error::invalid_credentials);
    CHECK(classify(403, "<html>forbidden</html>").error == error::invalid_credentials);
    CHECK(classify(500, "").error == error::token_request_failed);
    CHECK(classify(502, "").error == error::token_request_failed);
    CHECK(classify(404, "").error == error::token_request_failed);
    CHECK_THAT(classify(302, "", {{"Location", "https://elsewhere/"}}).detail,
               Catch::Contains("redirects are not followed"));
    CHECK(tether::is_permanent_token_error(classify(401, "").error));
    CHECK_FALSE(tether::is_permanent_token_error(classify(500, "").error));

    auto r = classify(503, "", {{"Retry-After", "7"}});
    CHECK(r.error == error::rate_limited);
    CHECK(r.retry_after == 7000ms);
    r = classify(429, "", {{"retry-after", " 3 "}});
    CHECK(r.error == error::rate_limited);
    CHECK(r.retry_after == 3000ms);
    r = classify(429, "",
                 {{"Retry-After", "Sun, 06 Nov 1994 08:50:37 GMT"}}); // 60 s after fixed_now
    CHECK(r.retry_after == 60000ms);
    r = classify(429, "", {{"Retry-After", "Sun, 06 Nov 1994 08:00:00 GMT"}}); // in the past
    CHECK(r.retry_after == 0ms);
    r = classify(429, "", {{"Retry-After", "999999"}});
    CHECK(r.retry_after == std::chrono::milliseconds(rules.max_retry_after));
    r = classify(429, "", {{"Retry-After", "soon"}});
    CHECK(r.error == error::rate_limited);
    CHECK_FALSE(r.retry_after);
    CHECK_FALSE(classify(429, "").retry_after);
}

TEST_CASE("token response: error text from the server is made safe and redacted") {
    tether::oauth2_response_rules rules;
    rules.redact.push_back(client_secret_value);
    const std::string long_text(1000, 'd');
    auto r = tether::parse_token_response(
        make_response(401, R"({"error":"invalid_client","error_description":"bad secret )" +
                               client_secret_value + R"( \u0007 )" + long_text + R"("})"),
        rules, fixed_now);
    CHECK(r.error == error::invalid_credentials);
    CHECK_THAT(r.detail, Catch::Contains("invalid_client"));
    CHECK_THAT(r.detail, Catch::Contains("[redacted]"));
    CHECK_THAT(r.detail, !Catch::Contains(secret_marker));
    CHECK_THAT(r.detail, !Catch::Contains("\x07"));
    CHECK(r.detail.size() < 400);
}

// --------------------------------------------------------------------------
// oauth2_client_credentials against a local endpoint

namespace {

struct capture {
    std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();
    std::shared_ptr<std::mutex> mutex = std::make_shared<std::mutex>();
    std::function<void(std::string_view)> sink() const {
        return [l = lines, m = mutex](std::string_view s) {
            std::lock_guard<std::mutex> lock(*m);
            l->emplace_back(s);
        };
    }
    void add(std::string s) const {
        std::lock_guard<std::mutex> lock(*mutex);
        lines->push_back(std::move(s));
    }
    std::string all() const {
        std::lock_guard<std::mutex> lock(*mutex);
        std::string out;
        for (const auto& l : *lines)
            out += l + "\n";
        return out;
    }
};

tether::oauth2_options options_for(const local_token_endpoint& ep,
                                   const std::string& host = "127.0.0.1") {
    tether::oauth2_options o;
    o.token_url = ep.url(host);
    o.client_id = client_id_value;
    o.client_secret = tether::secret(client_secret_value);
    o.scope = "read write";
    o.audience = "https://api.example";
    o.timeout = 5s;
    return o;
}

struct outcome {
    tether::token_result result;
    std::chrono::steady_clock::duration took;
};

// One request on a private io_context, bounded in time.
outcome fetch_once(const tether::oauth2_options& o, const capture* log = nullptr) {
    tether::net::io_context ioc;
    tether::oauth2_client_credentials policy(ioc.get_executor(), o);
    std::optional<tether::token_result> out;
    const auto start = std::chrono::steady_clock::now();
    policy.async_get_token([&](tether::token_result r) { out = std::move(r); });
    ioc.run_for(20s);
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(out.has_value());
    if (log) {
        // Everything a user might print at the most verbose setting.
        std::ostringstream os;
        os << policy << " | " << o << " | " << out->value.value << " | " << out->error.message()
           << " | " << out->detail;
        log->add(os.str());
    }
    return {std::move(*out), took};
}

struct scenario {
    const char* name;
    local_token_endpoint::behaviour endpoint;
    std::function<void(tether::oauth2_options&)> adjust;
    std::function<void(const outcome&, const std::vector<received_request>&)> check;
};

reply chunked_token(std::size_t n) {
    const std::string body = tether_test::token_json(issued_token(n), "120");
    const std::string a = body.substr(0, 10), b = body.substr(10);
    auto hex = [](std::size_t v) {
        std::ostringstream os;
        os << std::hex << v;
        return os.str();
    };
    return {tether_test::send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: "
                              "application/json\r\n\r\n"),
            tether_test::send(hex(a.size()) + "\r\n" + a + "\r\n"),
            tether_test::pause(20ms),
            tether_test::send(hex(b.size()) + ";ext=1\r\n" + b + "\r\n"),
            tether_test::pause(20ms),
            tether_test::send("0\r\n\r\n")};
}

void expect_error(const outcome& o, error e) {
    INFO(o.result.detail);
    CHECK(o.result.error == e);
    CHECK_FALSE(o.result.detail.empty());
}

std::vector<scenario> scenarios() {
    using namespace tether_test;
    auto no_change = [](tether::oauth2_options&) {};
    return {
        {"normal (Basic auth, scope, audience)",
         [](const received_request&, std::size_t n) {
             return respond(200, token_json(issued_token(n)));
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>& rq) {
             REQUIRE_FALSE(o.result.error);
             CHECK(std::string(o.result.value.value.reveal()) == issued_token(1));
             CHECK(o.result.value.lifetime == 3600s);
             CHECK(o.result.value.fresh);
             REQUIRE(rq.size() == 1);
             CHECK(rq[0].method == "POST");
             CHECK(rq[0].target == "/oauth/token");
             CHECK(rq[0].header("Content-Type") == "application/x-www-form-urlencoded");
             CHECK(rq[0].header("Accept") == "application/json");
             CHECK(rq[0].header("Connection") == "close");
             CHECK(rq[0].header("Host").rfind("127.0.0.1:", 0) == 0);
             // RFC 6749 2.3.1: id and secret form-encoded, then base64.
             CHECK(rq[0].header("Authorization") ==
                   "Basic " + tether::detail::base64_encode(
                                  client_id_value + ":" +
                                  tether::detail::form_urlencode(client_secret_value)));
             CHECK(rq[0].body == "grant_type=client_credentials&scope=read+write&audience=https%3A%"
                                 "2F%2Fapi.example");
             CHECK(rq[0].header("Content-Length") == std::to_string(rq[0].body.size()));
         }},
        {"client secret in the body",
         [](const received_request&, std::size_t n) {
             return respond(200, token_json(issued_token(n)));
         },
         [](tether::oauth2_options& o) {
             o.auth = tether::client_auth::request_body;
             o.scope.clear();
             o.audience.clear();
             o.extra_params = {{"resource", "urn:x y"}};
         },
         [](const outcome& o, const std::vector<received_request>& rq) {
             REQUIRE_FALSE(o.result.error);
             REQUIRE(rq.size() == 1);
             CHECK(rq[0].header("Authorization").empty());
             CHECK(rq[0].body ==
                   "grant_type=client_credentials&resource=urn%3Ax+y&client_id=tether-client"
                   "&client_secret=" +
                       tether::detail::form_urlencode(client_secret_value));
         }},
        {"Basic auth without form encoding",
         [](const received_request&, std::size_t n) {
             return respond(200, token_json(issued_token(n)));
         },
         [](tether::oauth2_options& o) { o.auth = tether::client_auth::http_basic_unencoded; },
         [](const outcome& o, const std::vector<received_request>& rq) {
             REQUIRE_FALSE(o.result.error);
             REQUIRE(rq.size() == 1);
             CHECK(rq[0].header("Authorization") ==
                   "Basic " +
                       tether::detail::base64_encode(client_id_value + ":" + client_secret_value));
         }},
        {"chunked response",
         [](const received_request&, std::size_t n) { return chunked_token(n); }, no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             REQUIRE_FALSE(o.result.error);
             CHECK(std::string(o.result.value.value.reveal()) == issued_token(1));
             CHECK(o.result.value.lifetime == 120s);
         }},
        {"expires_in missing -> default lifetime",
         [](const received_request&, std::size_t n) {
             return respond(200, token_json(issued_token(n), ""));
         },
         [](tether::oauth2_options& o) { o.default_lifetime = 777s; },
         [](const outcome& o, const std::vector<received_request>&) {
             REQUIRE_FALSE(o.result.error);
             CHECK(o.result.value.lifetime == 777s);
         }},
        {"expires_in zero",
         [](const received_request&, std::size_t n) {
             return respond(200, token_json(issued_token(n), "0"));
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::malformed_token_response);
             CHECK_THAT(o.result.detail, Catch::Contains("expires_in is 0"));
         }},
        {"expires_in negative",
         [](const received_request&, std::size_t n) {
             return respond(200, token_json(issued_token(n), "-60"));
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::malformed_token_response);
         }},
        {"expires_in a decimal string (issue 12 #8)",
         [](const received_request&, std::size_t n) {
             return respond(200, token_json(issued_token(n), "\"3600\""));
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             REQUIRE_FALSE(o.result.error);
             CHECK(o.result.value.lifetime == 3600s);
         }},
        {"expires_in a string that is not a number",
         [](const received_request&, std::size_t n) {
             return respond(200, token_json(issued_token(n), "\"1h\""));
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::malformed_token_response);
             CHECK_THAT(o.result.detail, Catch::Contains("not a decimal number"));
         }},
        {"malformed JSON",
         [](const received_request&, std::size_t n) {
             return respond(200, "{\"access_token\":\"" + issued_token(n) + "\",");
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::malformed_token_response);
         }},
        {"no access_token",
         [](const received_request&, std::size_t) {
             return respond(200, R"({"token_type":"Bearer"})");
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::malformed_token_response);
         }},
        {"500",
         [](const received_request&, std::size_t) {
             return respond(500, R"({"error":"server_error"})");
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::token_request_failed);
             CHECK_FALSE(tether::is_permanent_token_error(o.result.error));
             CHECK_THAT(o.result.detail, Catch::Contains("HTTP 500"));
         }},
        {"503 with Retry-After",
         [](const received_request&, std::size_t) {
             return respond(503, "", "Retry-After: 7\r\n", "text/plain");
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::rate_limited);
             CHECK(o.result.retry_after == 7000ms);
         }},
        {"429 with Retry-After",
         [](const received_request&, std::size_t) {
             return respond(429, R"({"error":"too_many_requests"})", "Retry-After: 3\r\n");
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::rate_limited);
             CHECK(o.result.retry_after == 3000ms);
         }},
        {"401 invalid_client echoing the secret",
         [](const received_request&, std::size_t) {
             return respond(401,
                            R"({"error":"invalid_client","error_description":"client secret )" +
                                client_secret_value + R"( is wrong"})");
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::invalid_credentials);
             CHECK(tether::is_permanent_token_error(o.result.error));
             CHECK_THAT(o.result.detail, Catch::Contains("invalid_client"));
             CHECK_THAT(o.result.detail, Catch::Contains("[redacted]"));
         }},
        {"400 invalid_grant",
         [](const received_request&, std::size_t) {
             return respond(400, R"({"error":"invalid_grant"})");
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::invalid_credentials);
         }},
        {"403 without a body",
         [](const received_request&, std::size_t) { return respond(403, "", "", "text/plain"); },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::invalid_credentials);
         }},
        {"302 redirect is not followed",
         [](const received_request&, std::size_t) {
             return respond(302, "", "Location: http://127.0.0.1:1/elsewhere\r\n", "text/plain");
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>& rq) {
             expect_error(o, error::token_request_failed);
             CHECK(rq.size() == 1);
         }},
        {"slow endpoint -> timeout",
         [](const received_request&, std::size_t n) {
             reply r{pause(3000ms)};
             for (auto& s : respond(200, token_json(issued_token(n))))
                 r.push_back(s);
             return r;
         },
         [](tether::oauth2_options& o) { o.timeout = 300ms; },
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::token_request_timeout);
             CHECK(o.took < 2500ms);
         }},
        {"10 MB body with Content-Length",
         [](const received_request&, std::size_t) {
             return reply{send("HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n"),
                          send_filler(10485760)};
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::response_too_large);
             CHECK(o.took < 4s);
         }},
        {"10 MB chunked body",
         [](const received_request&, std::size_t) {
             return reply{send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA00000\r\n"),
                          send_filler(10485760), send("\r\n0\r\n\r\n")};
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::response_too_large);
         }},
        {"10 MB body until close",
         [](const received_request&, std::size_t) {
             return reply{send("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"),
                          send_filler(10485760)};
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::response_too_large);
         }},
        {"connection reset mid-body",
         [](const received_request&, std::size_t) {
             return reply{
                 send("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"access_token\":\"" +
                      token_marker),
                 pause(50ms), reset_connection()};
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::token_request_failed);
             CHECK_FALSE(tether::is_permanent_token_error(o.result.error));
         }},
        {"connection closed mid-body",
         [](const received_request&, std::size_t) {
             return reply{
                 send("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"access_token\":\"" +
                      token_marker)};
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::malformed_http_response);
             CHECK_THAT(o.result.detail,
                        Catch::Contains("closed before the response was complete"));
         }},
        {"not HTTP at all",
         [](const received_request&, std::size_t) {
             return reply{send("SSH-2.0-OpenSSH_9.2\r\n")};
         },
         no_change,
         [](const outcome& o, const std::vector<received_request>&) {
             expect_error(o, error::malformed_http_response);
         }},
    };
}

void run_scenario(const scenario& s, const std::optional<tether_test::key_and_cert>& tls,
                  const std::string& ca_file, const capture* log) {
    INFO(s.name);
    local_token_endpoint ep(s.endpoint, tls);
    auto o = options_for(ep);
    if (tls) {
        o.tls.ca_file = ca_file;
    }
    if (log) o.trace = log->sink();
    s.adjust(o);
    const outcome out = fetch_once(o, log);
    s.check(out, ep.received());
}

// One Catch section per scenario.
void run_scenarios(const std::optional<tether_test::key_and_cert>& tls,
                   const std::string& ca_file) {
    for (const auto& s : scenarios())
        DYNAMIC_SECTION(s.name) { run_scenario(s, tls, ca_file, nullptr); }
}

} // namespace

TEST_CASE("oauth2_client_credentials is a TokenPolicy") {
    STATIC_REQUIRE(tether::is_token_policy_v<tether::oauth2_client_credentials>);
}

TEST_CASE("oauth2 over HTTP on loopback: endpoint scenarios") { run_scenarios(std::nullopt, {}); }

TEST_CASE("oauth2 over HTTPS with a test CA: endpoint scenarios") {
    tether_test::test_pki pki;
    const auto cert = pki.issue("DNS:localhost,IP:127.0.0.1");
    run_scenarios(cert, pki.ca_file());
}

TEST_CASE("oauth2 over HTTPS: verification") {
    tether_test::test_pki pki;
    auto ok = [](const received_request&, std::size_t n) {
        return tether_test::respond(200, tether_test::token_json(issued_token(n)));
    };

    SECTION("a host name in the certificate verifies") {
        local_token_endpoint ep(ok, pki.issue("DNS:localhost,IP:127.0.0.1"));
        auto o = options_for(ep, "localhost");
        o.tls.ca_file = pki.ca_file();
        const auto out = fetch_once(o);
        CHECK_FALSE(out.result.error);
        CHECK(ep.requests() == 1);
    }
    SECTION("a CA the client does not trust is refused before any request") {
        local_token_endpoint ep(ok, pki.issue("DNS:localhost,IP:127.0.0.1"));
        auto o = options_for(ep);
        // no ca_file: only the system trust store, where the test CA is not
        const auto out = fetch_once(o);
        expect_error(out, error::tls_verification_failed);
        CHECK_THAT(out.result.detail, Catch::Contains("issuer"));
        CHECK(ep.requests() == 0);
    }
    SECTION("a certificate for another host is refused before any request") {
        local_token_endpoint ep(ok, pki.issue("DNS:other.invalid"));
        auto o = options_for(ep);
        o.tls.ca_file = pki.ca_file();
        const auto out = fetch_once(o);
        expect_error(out, error::tls_verification_failed);
        CHECK_THAT(out.result.detail, Catch::Contains("does not match host '127.0.0.1'"));
        CHECK(ep.requests() == 0);
    }
    SECTION("the loudly named opt-out skips verification") {
        local_token_endpoint ep(ok, pki.issue("DNS:other.invalid"));
        auto o = options_for(ep);
        o.tls.insecure_skip_verify_i_know_what_i_am_doing = true;
        const auto out = fetch_once(o);
        CHECK_FALSE(out.result.error);
        CHECK(ep.requests() == 1);
    }
    SECTION("a CA file that does not exist fails at construction") {
        tether::oauth2_options o;
        o.token_url = "https://127.0.0.1:1/token";
        o.client_id = "id";
        o.client_secret = tether::secret("s");
        o.tls.ca_file = "/nonexistent/ca.pem";
        tether::net::io_context ioc;
        CHECK_THROWS_WITH(tether::oauth2_client_credentials(ioc.get_executor(), o),
                          Catch::Contains("/nonexistent/ca.pem"));
    }
}

TEST_CASE("oauth2: configuration errors fail at construction") {
    tether::net::io_context ioc;
    auto base = [] {
        tether::oauth2_options o;
        o.token_url = "https://login.example.com/oauth/token";
        o.client_id = "id";
        o.client_secret = tether::secret(client_secret_value);
        return o;
    };
    auto construct = [&](const tether::oauth2_options& o) {
        tether::oauth2_client_credentials p(ioc.get_executor(), o);
    };

    CHECK_NOTHROW(construct(base()));
    auto o = base();
    o.token_url = "http://login.example.com/oauth/token";
    CHECK_THROWS_WITH(construct(o), Catch::Contains("allow_plain_http_to_non_loopback_host"));
    o.token_url = "http://192.0.2.1/oauth/token";
    CHECK_THROWS_AS(construct(o), std::system_error);
    o.allow_plain_http_to_non_loopback_host =
        true; // named opt-in: constructs (nothing is sent here)
    CHECK_NOTHROW(construct(o));
    o = base();
    o.token_url = "http://localhost:8080/token";
    CHECK_NOTHROW(construct(o));
    o.token_url = "ftp://x/";
    CHECK_THROWS_AS(construct(o), std::system_error);
    o.token_url = "https://id:" + client_secret_value + "@login.example.com/";
    try {
        construct(o);
        FAIL("user info in the URL was accepted");
    } catch (const std::system_error& e) {
        CHECK_THAT(e.what(), !Catch::Contains(secret_marker));
    }
    o = base();
    o.client_id.clear();
    CHECK_THROWS_WITH(construct(o), Catch::Contains("client_id"));
    o = base();
    o.client_secret = tether::secret();
    CHECK_THROWS_WITH(construct(o), Catch::Contains("client_secret"));
    o = base();
    o.timeout = 0ms;
    CHECK_THROWS_WITH(construct(o), Catch::Contains("timeout"));
    o = base();
    o.auth = tether::client_auth::http_basic_unencoded;
    o.client_id = "a:b";
    CHECK_THROWS_WITH(construct(o), Catch::Contains("':'"));
}

TEST_CASE("ws:// and http:// apply one rule to credentials in the clear (issue 12 #4)") {
    tether::net::io_context ioc;
    for (const std::string host :
         {"localhost", "localhost.", "LOCALHOST", "127.0.0.1", "127.1.2.3", "[::1]",
          "[::ffff:127.0.0.1]", "[0:0:0:0:0:0:0:1]", "example.com", "192.0.2.1",
          "[::ffff:192.0.2.1]", "localhost.example.com", "127.0.0.1.example.com"}) {
        INFO(host);
        std::string why;
        const auto ws = tether::detail::parse_ws_url("ws://" + host + ":9000/", why);
        REQUIRE(ws);
        const bool ws_allows = tether::detail::token_transport_allowed(*ws, false);
        tether::oauth2_options o;
        o.token_url = "http://" + host + ":9000/token";
        o.client_id = "id";
        o.client_secret = tether::secret(client_secret_value);
        bool http_allows = true;
        try {
            tether::oauth2_client_credentials p(ioc.get_executor(), o);
        } catch (const std::system_error&) {
            http_allows = false;
        }
        CHECK(ws_allows == http_allows);
    }
    CHECK(tether::detail::is_loopback_host("localhost.")); // a literal argument is not ambiguous
    CHECK(tether::detail::is_loopback_host("::ffff:127.0.0.1"));
}

TEST_CASE("oauth2: options and policy print without secrets") {
    tether::net::io_context ioc;
    tether::oauth2_options o;
    o.token_url = "https://login.example.com/oauth/token?api_key=" + secret_marker;
    o.client_id = "id";
    o.client_secret = tether::secret(client_secret_value);
    o.extra_params = {{"client_assertion", secret_marker}};
    tether::oauth2_client_credentials p(ioc.get_executor(), o);
    std::ostringstream os;
    os << o << " " << p;
    CHECK_THAT(os.str(), Catch::Contains("client_secret=[redacted]"));
    CHECK_THAT(os.str(), Catch::Contains("client_assertion=[redacted]"));
    CHECK_THAT(os.str(), Catch::Contains("https://login.example.com/oauth/token"));
    CHECK_THAT(os.str(), !Catch::Contains(secret_marker));
}

TEST_CASE("oauth2: connection refused is transient") {
    unsigned short port = 0;
    {
        asio::io_context io;
        asio::ip::tcp::acceptor a(io,
                                  asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        port = a.local_endpoint().port();
    } // closed again: nothing listens there now
    tether::oauth2_options o;
    o.token_url = "http://127.0.0.1:" + std::to_string(port) + "/token";
    o.client_id = "id";
    o.client_secret = tether::secret(client_secret_value);
    const auto out = fetch_once(o);
    expect_error(out, error::token_request_failed);
    CHECK_FALSE(tether::is_permanent_token_error(out.result.error));
}

TEST_CASE("oauth2: cancel() aborts a request in flight") {
    local_token_endpoint ep(
        [](const received_request&, std::size_t) { return reply{tether_test::pause(5000ms)}; });
    tether::net::io_context ioc;
    tether::oauth2_client_credentials policy(ioc.get_executor(), options_for(ep));
    std::optional<tether::token_result> out;
    policy.async_get_token([&](tether::token_result r) { out = std::move(r); });
    const auto start = std::chrono::steady_clock::now();
    while (ep.requests() == 0 && std::chrono::steady_clock::now() - start < 5s)
        ioc.run_for(10ms);
    REQUIRE(ep.requests() == 1);
    policy.cancel();
    ioc.run_for(5s);
    REQUIRE(out);
    CHECK(out->error == error::operation_cancelled);
    CHECK(std::chrono::steady_clock::now() - start < 3s);
}

TEST_CASE("oauth2: a token passed to invalidate() is never handed out again") {
    // An issuer that caches: the same token until it expires.
    local_token_endpoint ep([](const received_request&, std::size_t) {
        return tether_test::respond(200, tether_test::token_json(issued_token(1)));
    });
    tether::net::io_context ioc;
    tether::oauth2_client_credentials policy(ioc.get_executor(), options_for(ep));
    std::vector<tether::token_result> got;
    policy.async_get_token([&](tether::token_result r) { got.push_back(std::move(r)); });
    ioc.run_for(10s);
    REQUIRE(got.size() == 1);
    REQUIRE_FALSE(got[0].error);
    policy.invalidate(got[0].value.value);
    ioc.restart();
    policy.async_get_token([&](tether::token_result r) { got.push_back(std::move(r)); });
    ioc.run_for(10s);
    REQUIRE(got.size() == 2);
    CHECK(got[1].error == error::token_rejected);
    CHECK(policy.requests_started() == 2);
}

TEST_CASE("http client: an oversized body is not read to the end") {
    struct shape {
        const char* name;
        std::string head;
    };
    for (const auto& s :
         {shape{"Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n"},
          shape{"until close", "HTTP/1.1 200 OK\r\n\r\n"}}) {
        INFO(s.name);
        local_token_endpoint ep([&](const received_request&, std::size_t) {
            return reply{tether_test::send(s.head), tether_test::send_filler(10485760)};
        });
        tether::net::io_context ioc;
        std::string why;
        auto url = tether::detail::parse_http_url(ep.url(), why);
        REQUIRE(url);
        tether::detail::http_exchange_options xo;
        xo.timeout = 10s;
        std::optional<tether::detail::http_result> out;
        tether::detail::http_exchange::start(
            ioc.get_executor(), *url,
            tether::secret("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), xo,
            [&](tether::detail::http_result r) { out = std::move(r); });
        ioc.run_for(15s);
        REQUIRE(out);
        CHECK(out->error == error::response_too_large);
        // The cap is 64 KiB and reads are 16 KiB: never anywhere near 10 MB.
        CHECK(out->bytes_received <= 64 * 1024 + 2 * 16 * 1024);
        CHECK(out->bytes_received < 10485760 / 100);
    }
}

#ifdef TETHER_TEST_PYTHON
namespace {
// Runs python_token_endpoint.py; the port is the first line it prints. The
// script exits after its request budget (or 30 s), which pclose() waits for.
class python_endpoint {
public:
    explicit python_endpoint(int requests, const std::string& cert = {},
                             const std::string& key = {}) {
        std::string cmd = std::string(TETHER_TEST_PYTHON) + " '" + TETHER_TEST_PYTHON_ENDPOINT +
                          "' '" + client_id_value + "' '" + client_secret_value + "' " +
                          std::to_string(requests);
        if (!cert.empty()) cmd += " '" + cert + "' '" + key + "'";
        pipe_ = popen(cmd.c_str(), "r");
        REQUIRE(pipe_ != nullptr);
        char line[32] = {};
        REQUIRE(std::fgets(line, sizeof line, pipe_) != nullptr);
        port_ = std::stoi(line);
        REQUIRE(port_ > 0);
    }
    ~python_endpoint() { pclose(pipe_); }
    std::string url(bool tls, const std::string& path) const {
        return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
    }

private:
    FILE* pipe_ = nullptr;
    int port_ = 0;
};

tether::oauth2_options python_options(const std::string& url) {
    tether::oauth2_options o;
    o.token_url = url;
    o.client_id = client_id_value;
    o.client_secret = tether::secret(client_secret_value); // spaces, '&', '=', '+', '/', '@'
    o.scope = "read write";
    o.timeout = 10s;
    return o;
}
} // namespace

TEST_CASE("independent peer: Python http.server decodes our requests") {
    SECTION("HTTP: Basic, form body, chunked answer, wrong secret") {
        python_endpoint py(4);
        auto basic = fetch_once(python_options(py.url(false, "/basic")));
        REQUIRE_FALSE(basic.result.error);
        CHECK(std::string(basic.result.value.value.reveal()) == "py-token-1");
        CHECK(basic.result.value.lifetime == 600s);

        auto o = python_options(py.url(false, "/body"));
        o.auth = tether::client_auth::request_body;
        auto body = fetch_once(o);
        REQUIRE_FALSE(body.result.error);
        CHECK(std::string(body.result.value.value.reveal()) == "py-token-2");

        auto chunked = fetch_once(python_options(py.url(false, "/chunked")));
        REQUIRE_FALSE(chunked.result.error);
        CHECK(std::string(chunked.result.value.value.reveal()) == "py-token-3");

        o = python_options(py.url(false, "/basic"));
        o.client_secret = tether::secret("wrong");
        auto wrong = fetch_once(o);
        CHECK(wrong.result.error == error::invalid_credentials);
        CHECK_THAT(wrong.result.detail, Catch::Contains("invalid_client"));
    }
    SECTION("HTTPS with Python's ssl module and the test CA") {
        tether_test::test_pki pki;
        const auto files = pki.write(pki.issue("IP:127.0.0.1"));
        python_endpoint py(1, files.first, files.second);
        auto o = python_options(py.url(true, "/basic"));
        o.tls.ca_file = pki.ca_file();
        auto out = fetch_once(o);
        INFO(out.result.detail);
        REQUIRE_FALSE(out.result.error);
        CHECK(std::string(out.result.value.value.reveal()) == "py-token-1");
    }
}
#endif

TEST_CASE("log capture: no secret or token in any trace, detail, message or printout") {
    capture log;
    tether_test::test_pki pki;
    const auto cert = pki.issue("DNS:localhost,IP:127.0.0.1");
    // Every scenario, HTTP and HTTPS, into one capture (no sections: one run).
    for (const auto& s : scenarios()) {
        run_scenario(s, std::nullopt, {}, &log);
        run_scenario(s, cert, pki.ca_file(), &log);
    }

    const std::string text = log.all();
    // The capture really holds the verbose trace of every step.
    CHECK_THAT(text, Catch::Contains("connected to 127.0.0.1:"));
    CHECK_THAT(text, Catch::Contains("request sent"));
    CHECK_THAT(text, Catch::Contains("token obtained"));
    CHECK_THAT(text, Catch::Contains("token request failed"));
    CHECK_THAT(text, Catch::Contains("client_secret=[redacted]"));
    CHECK_THAT(text, !Catch::Contains(secret_marker));
    CHECK_THAT(text, !Catch::Contains(token_marker));
    CHECK_THAT(text, !Catch::Contains(tether::detail::base64_encode(client_id_value + ":")));
}

// ---- through an HTTP proxy (a real tinyproxy on 127.0.0.1) ----------------------------------

TEST_CASE("oauth2 through an HTTP proxy: http and https, credentials, refusals, no_proxy") {
    auto ok = [](const received_request&, std::size_t n) {
        return tether_test::respond(200, tether_test::token_json(issued_token(n)));
    };
    const std::string proxy_password = secret_marker + "-proxy";
    capture log;

    SECTION("http:// token endpoint through the proxy, Basic auth") {
        local_token_endpoint ep(ok);
        test_proxy::tinyproxy proxy({{ep.port()}, "tokenuser", proxy_password});
        auto o = options_for(ep);
        o.trace = log.sink();
        o.proxy = tether::proxy_options::from_url(proxy.url("tokenuser", proxy_password));
        const auto out = fetch_once(o, &log);
        INFO(out.result.detail);
        CHECK_FALSE(out.result.error);
        CHECK(out.result.value.value.reveal() == issued_token(1));
        CHECK(ep.requests() == 1);
        CHECK(proxy.connect_requests() == 1);
    }
    SECTION("https:// through the proxy: TLS to the origin, verified by the origin's name") {
        tether_test::test_pki pki;
        local_token_endpoint ep(ok, pki.issue("DNS:localhost"));
        test_proxy::tinyproxy proxy({{ep.port()}, "tokenuser", proxy_password});
        auto o = options_for(ep, "localhost");
        o.trace = log.sink();
        o.tls.ca_file = pki.ca_file();
        o.proxy = tether::proxy_options::from_url(proxy.url("tokenuser", proxy_password));
        auto out = fetch_once(o, &log);
        INFO(out.result.detail);
        CHECK_FALSE(out.result.error);
        CHECK(ep.requests() == 1);
        CHECK(proxy.connect_requests() == 1);
        // the origin by IP: the certificate names only localhost, and the
        // proxy's name (127.0.0.1) must not be what is checked
        o.token_url = ep.url("127.0.0.1");
        out = fetch_once(o, &log);
        expect_error(out, error::tls_verification_failed);
        CHECK_THAT(out.result.detail, Catch::Contains("does not match host '127.0.0.1'"));
        CHECK(ep.requests() == 1);
    }
    SECTION("wrong proxy credentials: proxy_auth_required, permanent, nothing reaches the "
            "endpoint") {
        local_token_endpoint ep(ok);
        test_proxy::tinyproxy proxy({{ep.port()}, "tokenuser", "right"});
        auto o = options_for(ep);
        o.trace = log.sink();
        o.proxy = tether::proxy_options::from_url(proxy.url("tokenuser", proxy_password));
        const auto out = fetch_once(o, &log);
        expect_error(out, error::proxy_auth_required);
        CHECK(tether::is_permanent_token_error(out.result.error));
        CHECK_THAT(out.result.detail, Catch::Contains("token request to"));
        CHECK_THAT(out.result.detail, Catch::Contains("HTTP proxy 127.0.0.1"));
        CHECK(ep.requests() == 0);
    }
    SECTION("403 from the proxy: proxy_denied") {
        local_token_endpoint ep(ok);
        test_proxy::tinyproxy proxy({{1}, "", ""});
        auto o = options_for(ep);
        o.trace = log.sink();
        o.proxy = tether::proxy_options::from_url(proxy.url());
        const auto out = fetch_once(o, &log);
        expect_error(out, error::proxy_denied);
        CHECK(tether::is_permanent_token_error(out.result.error));
        CHECK(ep.requests() == 0);
    }
    SECTION("the proxy refuses the TCP connection: transient") {
        local_token_endpoint ep(ok);
        auto o = options_for(ep);
        o.trace = log.sink();
        o.proxy = tether::proxy_options::from_url("http://u:" + proxy_password + "@127.0.0.1:" +
                                                  std::to_string(test_proxy::unused_port()));
        const auto out = fetch_once(o, &log);
        expect_error(out, error::token_request_failed);
        CHECK_THAT(out.result.detail, Catch::Contains("HTTP proxy 127.0.0.1"));
        CHECK_FALSE(tether::is_permanent_token_error(out.result.error));
        CHECK(ep.requests() == 0);
    }
    SECTION("no_proxy: the endpoint is reached directly; the proxy sees nothing") {
        local_token_endpoint ep(ok);
        test_proxy::tinyproxy proxy({{ep.port()}, "", ""});
        auto o = options_for(ep);
        o.trace = log.sink();
        o.proxy = tether::proxy_options::from_url(proxy.url(), "127.0.0.0/8");
        const auto out = fetch_once(o, &log);
        CHECK_FALSE(out.result.error);
        CHECK(ep.requests() == 1);
        CHECK(proxy.connect_requests() == 0);
    }
    SECTION("the client secret over plain http:// never crosses a proxy that is not loopback") {
        local_token_endpoint ep(ok);
        auto o = options_for(ep);
        o.trace = log.sink();
        o.proxy = tether::proxy_options::from_url("http://192.0.2.10:3128");
        const auto out = fetch_once(o, &log);
        expect_error(out, error::insecure_transport);
        CHECK(ep.requests() == 0);
    }
    // nothing printed above holds the proxy password or the client secret
    CHECK_THAT(log.all(), !Catch::Contains(secret_marker));
}

TEST_CASE("genesys REST calls through an HTTP proxy; the proxy's 407 keeps its code") {
    const std::string proxy_password = secret_marker + "-rest";
    local_token_endpoint ep([](const received_request& r, std::size_t n) {
        if (r.target.rfind("/oauth/token", 0) == 0)
            return tether_test::respond(200, tether_test::token_json(issued_token(n)));
        return tether_test::respond(200, R"({"id":"ch-1"})");
    });
    test_proxy::tinyproxy proxy({{ep.port()}, "restuser", proxy_password});
    tether::net::io_context io;
    auto oauth = options_for(ep);
    oauth.proxy = tether::proxy_options::from_url(proxy.url("restuser", proxy_password));
    tether::genesys::rest_token_source source(
        tether::oauth2_client_credentials(io.get_executor(), oauth),
        tether::steady_timing(io.get_executor()));
    tether::genesys::rest_options ro;
    ro.api_base = "http://127.0.0.1:" + std::to_string(ep.port());
    ro.proxy = oauth.proxy;
    const auto call = [&](const tether::genesys::rest_options& opts) {
        auto rest = tether::genesys::rest_client::create(io.get_executor(), source.handle(), opts);
        std::optional<tether::genesys::rest_outcome> out;
        rest->call("GET", "/api/v2/notifications/channels", "",
                   [&](tether::genesys::rest_outcome o) { out = std::move(o); });
        const auto deadline = std::chrono::steady_clock::now() + 15s;
        while (!out && std::chrono::steady_clock::now() < deadline) {
            if (io.stopped()) io.restart();
            io.run_one_for(20ms);
        }
        REQUIRE(out.has_value());
        return std::move(*out);
    };
    auto out = call(ro);
    INFO(out.detail);
    CHECK_FALSE(out.error);
    CHECK(out.body.value("id", "") == "ch-1");
    CHECK(ep.requests() == 2);            // the token, then the REST call
    CHECK(proxy.connect_requests() == 2); // both through the proxy

    ro.proxy = tether::proxy_options::from_url(proxy.url("restuser", "wrong-" + proxy_password));
    out = call(ro);
    CHECK(out.error == error::proxy_auth_required);
    CHECK(tether::is_permanent_token_error(out.error));
    CHECK_THAT(out.detail, Catch::Contains("HTTP proxy 127.0.0.1"));
    CHECK_THAT(out.detail, !Catch::Contains(secret_marker));
    CHECK(ep.requests() == 2);
}
