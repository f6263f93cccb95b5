// URL parsing, loopback detection, percent-encoding, Retry-After, TLS settings.
// No network, no websocketpp: a cheap translation unit.
#include <tether/detail/retry_after.hpp>
#include <tether/detail/url.hpp>
#include <tether/tls_options.hpp>

#include <catch2/catch.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>

#include <chrono>
#include <memory>
#include <string>

using namespace std::chrono_literals;
using tether::detail::parse_ws_url;

TEST_CASE("parse_ws_url splits scheme, host, port and target", "[url]") {
    std::string why;
    auto u = parse_ws_url("wss://streaming.example.com/channels/abc?x=1", why);
    REQUIRE(u);
    CHECK(u->secure);
    CHECK(u->host == "streaming.example.com");
    CHECK(u->port == 443);
    CHECK(u->target == "/channels/abc?x=1");

    u = parse_ws_url("ws://127.0.0.1:8080", why);
    REQUIRE(u);
    CHECK_FALSE(u->secure);
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == 8080);
    CHECK(u->target == "/");

    u = parse_ws_url("WS://[::1]:9000?q", why);
    REQUIRE(u);
    CHECK(u->ipv6_literal);
    CHECK(u->host == "::1");
    CHECK(u->port == 9000);
    CHECK(u->target == "/?q");

    u = parse_ws_url("ws://localhost", why);
    REQUIRE(u);
    CHECK(u->port == 80);
}

TEST_CASE("parse_ws_url rejects malformed URLs with a reason", "[url]") {
    const char* bad[] = {
        "http://example.com/", // wrong scheme
        "example.com/ws",      // no scheme
        "ws://",               // no host
        "ws://host:/",         // empty port
        "ws://host:0/",        // port 0
        "ws://host:65536/",    // port too large
        "ws://host:12ab/",     // not a number
        "ws://user:pw@host/",  // user info
        "ws://host/path#frag", // fragment (RFC 6455 3)
        "ws://ho st/",         // white space
        "ws://host/\r\nX: y",  // header injection attempt
        "ws://[::1/",          // unterminated IPv6
        "ws://[::1]x/",        // junk after IPv6
        "ws://ex%41mple.com/", // percent in host
    };
    for (const char* url : bad) {
        std::string why;
        INFO(url);
        CHECK_FALSE(parse_ws_url(url, why));
        CHECK_FALSE(why.empty());
    }
}

TEST_CASE("loopback hosts are recognised and nothing else", "[url]") {
    using tether::detail::is_loopback_host;
    for (const char* h : {"localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.1.2.3", "::1"})
        CHECK(is_loopback_host(h));
    for (const char* h : {"localhost.example.com", "127.0.0.1.example.com", "128.0.0.1", "10.0.0.1",
                          "127.0.0", "127.0.0.256", "example.com", "::2", "", "127..0.1"})
        CHECK_FALSE(is_loopback_host(h));
}

TEST_CASE("a token never travels over plain ws:// to a remote host without opt-in", "[url]") {
    using tether::detail::token_transport_allowed;
    std::string why;
    const auto remote_plain = *parse_ws_url("ws://api.example.com/", why);
    const auto remote_tls = *parse_ws_url("wss://api.example.com/", why);
    const auto local_plain = *parse_ws_url("ws://127.0.0.1:1234/", why);
    CHECK_FALSE(token_transport_allowed(remote_plain, false));
    CHECK(token_transport_allowed(remote_plain, true));
    CHECK(token_transport_allowed(remote_tls, false));
    CHECK(token_transport_allowed(local_plain, false));
}

TEST_CASE("percent_encode keeps unreserved characters only", "[url]") {
    using tether::detail::percent_encode;
    CHECK(percent_encode("abcXYZ019-._~") == "abcXYZ019-._~");
    CHECK(percent_encode("a b+c/d=e&f?") == "a%20b%2Bc%2Fd%3De%26f%3F");
    CHECK(percent_encode(std::string("\x00\xff", 2)) == "%00%FF");

    std::string target = "/events";
    tether::detail::append_query_parameter(target, "access_token", "t+k/=");
    CHECK(target == "/events?access_token=t%2Bk%2F%3D");
    tether::detail::append_query_parameter(target, "x", "1");
    CHECK(target == "/events?access_token=t%2Bk%2F%3D&x=1");
}

TEST_CASE("header values and tokens are checked for injection", "[url]") {
    using tether::detail::is_http_token;
    using tether::detail::is_safe_header_value;
    CHECK(is_http_token("chat.v2"));
    CHECK_FALSE(is_http_token("a b"));
    CHECK_FALSE(is_http_token("a,b"));
    CHECK_FALSE(is_http_token(""));
    CHECK(is_safe_header_value("Bearer abc.def-ghi"));
    CHECK_FALSE(is_safe_header_value("abc\r\nX-Injected: 1"));
    CHECK_FALSE(is_safe_header_value(std::string("a\0b", 3)));
}

TEST_CASE("Retry-After: delta-seconds", "[retry-after]") {
    using tether::detail::parse_retry_after;
    const auto now = std::chrono::system_clock::now();
    CHECK(parse_retry_after("120", now) == std::chrono::milliseconds(120000));
    CHECK(parse_retry_after(" 0 ", now) == std::chrono::milliseconds(0));
    CHECK(parse_retry_after("99999999999999999999", now) == std::chrono::milliseconds(24h));
    CHECK_FALSE(parse_retry_after("", now));
    CHECK_FALSE(parse_retry_after("-5", now));
    CHECK_FALSE(parse_retry_after("12s", now));
    CHECK_FALSE(parse_retry_after("soon", now));
}

TEST_CASE("Retry-After: the three HTTP-date forms", "[retry-after]") {
    using tether::detail::parse_http_date;
    using tether::detail::parse_retry_after;
    // 1994-11-06 08:49:37 UTC = 784111777 s after the epoch
    const std::chrono::system_clock::time_point expected(std::chrono::seconds(784111777));
    CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == expected);
    CHECK(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == expected);
    CHECK(parse_http_date("Sun Nov  6 08:49:37 1994") == expected);
    CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"));
    CHECK_FALSE(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"));

    const auto now = expected - std::chrono::seconds(30);
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) ==
          std::chrono::milliseconds(30000));
    // a date in the past means: now
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", expected + 1h) ==
          std::chrono::milliseconds(0));
    // leap day
    CHECK(parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT") ==
          std::chrono::system_clock::time_point(std::chrono::seconds(1709164800)));
}

TEST_CASE("tls_options: bad trust settings fail at construction with the option's name", "[tls]") {
    tether::tls_options o;
    o.ca_file = "/nonexistent/tether-ca.pem";
    try {
        tether::make_tls_client_context(o);
        FAIL("expected an exception");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).find("ca_file '/nonexistent/tether-ca.pem'") !=
              std::string::npos);
    }
    tether::tls_options p;
    p.ca_pem = "not a certificate";
    CHECK_THROWS_AS(tether::make_tls_client_context(p), std::system_error);
    tether::tls_options q;
    q.client_certificate_chain_file = "/x.pem"; // without the key
    CHECK_THROWS_WITH(tether::make_tls_client_context(q), Catch::Contains("must be set together"));
}

TEST_CASE("tls_options: defaults verify peers and refuse TLS before 1.2", "[tls]") {
    const auto ctx = tether::make_tls_client_context({});
    CHECK(SSL_CTX_get_verify_mode(ctx->native_handle()) == SSL_VERIFY_PEER);
    CHECK(SSL_CTX_get_min_proto_version(ctx->native_handle()) == TLS1_2_VERSION);

    tether::tls_options insecure;
    insecure.insecure_skip_verify_i_know_what_i_am_doing = true;
    CHECK(SSL_CTX_get_verify_mode(tether::make_tls_client_context(insecure)->native_handle()) ==
          SSL_VERIFY_NONE);
}

TEST_CASE("tls_options: equal settings share one client context while it lives", "[tls]") {
    tether::tls_options a;
    auto first = tether::shared_tls_client_context(a);
    auto again = tether::shared_tls_client_context(a);
    CHECK(first.get() == again.get());

    tether::tls_options b;
    b.min_version = tether::tls_version::tls1_3;
    auto other = tether::shared_tls_client_context(b);
    CHECK(other.get() != first.get());
    CHECK(SSL_CTX_get_min_proto_version(other->native_handle()) == TLS1_3_VERSION);
    CHECK(SSL_CTX_get_min_proto_version(first->native_handle()) == TLS1_2_VERSION);

    // bad settings still fail, and are never cached
    tether::tls_options bad;
    bad.ca_file = "/nonexistent/ca.pem";
    CHECK_THROWS_AS(tether::shared_tls_client_context(bad), std::system_error);
    CHECK_THROWS_AS(tether::shared_tls_client_context(bad), std::system_error);

    // once every holder is gone, the next call loads a new context
    const void* old = first.get();
    first.reset();
    again.reset();
    auto fresh = tether::shared_tls_client_context(a);
    CHECK(fresh != nullptr);
    CHECK(fresh.use_count() == 1);
    (void)old;
}

// ---- issue 12: defects found in review ---------------------------------------

TEST_CASE("HTTP dates past 2262 are capped, not wrapped into 'retry now' (issue 12 #3)",
          "[retry-after]") {
    using tether::detail::parse_http_date;
    using tether::detail::parse_retry_after;
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(784111777));
    // 253402300799 s do not fit in int64 nanoseconds: the conversion must clamp
    const auto far = parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT");
    REQUIRE(far);
    CHECK(*far > now);
    CHECK(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now, 1h) ==
          std::chrono::milliseconds(1h));
    CHECK(parse_retry_after("Mon, 01 Jan 2263 00:00:00 GMT", now, 1h) ==
          std::chrono::milliseconds(1h));
    CHECK(parse_retry_after("Fri Dec 31 23:59:59 9999", now, 2h) == std::chrono::milliseconds(2h));
}

TEST_CASE("SNI failure still installs verification and is reported (issue 12 #5)", "[tls]") {
    asio::io_context io;
    const auto ctx = tether::make_tls_client_context({});
    asio::ssl::stream<asio::ip::tcp::socket> s(io, *ctx);
    // OpenSSL refuses SNI names longer than 255 bytes
    const std::string host = std::string(250, 'a') + ".example.com";
    auto report = std::make_shared<tether::tls_handshake_report>();
    CHECK_FALSE(tether::prepare_tls_client_stream(s, host, tether::tls_options{}, report));
    // verification (chain and host name) is in place whatever happened to SNI
    CHECK(SSL_get_verify_mode(s.native_handle()) == SSL_VERIFY_PEER);
    CHECK(SSL_get_verify_callback(s.native_handle()) != nullptr);
}
