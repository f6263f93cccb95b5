// tether::genesys pieces that need no network: regions, topic validation,
// timestamps, message parsing, the close policy.
#include <tether/genesys/channel_token_policy.hpp>
#include <tether/genesys/close_policy.hpp>
#include <tether/genesys/notification.hpp>
#include <tether/genesys/region.hpp>

#include <tether/genesys/rest_client.hpp>

#include <catch2/catch.hpp>

namespace gen = tether::genesys;
using namespace std::chrono_literals;

TEST_CASE("genesys: a known region gives login and api hosts; an unknown one is refused") {
    const auto e = gen::endpoints::for_region("mypurecloud.ie");
    CHECK(e.login_base == "https://login.mypurecloud.ie");
    CHECK(e.api_base == "https://api.mypurecloud.ie");
    CHECK(gen::endpoints::for_region("https://api.usw2.pure.cloud/").api_base ==
          "https://api.usw2.pure.cloud");
    CHECK_THROWS_WITH(gen::endpoints::for_region("mypurecloud.evil.example"),
                      Catch::Contains("unknown region") && Catch::Contains("mypurecloud.com.au"));
    CHECK(gen::endpoints::explicit_urls("http://127.0.0.1:8080/", "http://127.0.0.1:8080")
              .login_base == "http://127.0.0.1:8080");
}

TEST_CASE("genesys: topic lists are checked before anything is sent") {
    std::vector<std::string> ok(1000, "v2.users.x.presence");
    CHECK_NOTHROW(gen::validate_topics(ok));
    ok.push_back("one.too.many");
    CHECK_THROWS_WITH(gen::validate_topics(ok), Catch::Contains("1001 topics"));
    CHECK_THROWS_WITH(gen::validate_topics({}), Catch::Contains("no topics"));
    CHECK_NOTHROW(gen::validate_topics({std::string(200, 'a')}));
    CHECK_THROWS_WITH(gen::validate_topics({"ok", std::string(201, 'a')}),
                      Catch::Contains("topic 1") && Catch::Contains("201 characters"));
    CHECK_THROWS_WITH(gen::validate_topics({"ok", ""}), Catch::Contains("topic 1 is empty"));
    CHECK_THROWS_AS(gen::validate_topics({"a\nb"}), std::system_error);
}

TEST_CASE("genesys: channel expiry timestamps") {
    const auto t = gen::parse_utc_timestamp("2024-05-01T12:00:00.250Z");
    REQUIRE(t);
    CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count() ==
          1714564800250LL);
    CHECK(gen::parse_utc_timestamp("1970-01-01T00:00:00Z")->time_since_epoch().count() == 0);
    CHECK_FALSE(gen::parse_utc_timestamp("2024-05-01 12:00:00Z"));
    CHECK_FALSE(gen::parse_utc_timestamp("2024-05-01T12:00:00+02:00"));
    CHECK_FALSE(gen::parse_utc_timestamp("2024-13-01T12:00:00Z"));
    CHECK_FALSE(gen::parse_utc_timestamp(""));
    // issue 12 #3: past 2262 the nanosecond clock overflows; clamp, never wrap into the past
    const auto far = gen::parse_utc_timestamp("9999-12-31T23:59:59Z");
    REQUIRE(far);
    CHECK(*far > std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 200));
}

TEST_CASE("genesys: socket messages are typed") {
    gen::notification n;
    CHECK(gen::parse_notification(
              R"({"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}})",
              n) == gen::message_type::heartbeat);
    CHECK(gen::parse_notification(
              R"({"topicName":"channel.metadata","eventBody":{"message":"pong"}})", n) ==
          gen::message_type::pong);
    CHECK(gen::parse_notification(
              R"({"topicName":"v2.system.socket_closing","eventBody":{"message":"bye"}})", n) ==
          gen::message_type::socket_closing);
    CHECK(
        gen::parse_notification(
            R"({"topicName":"v2.users.u.presence","eventBody":{"sequence":7},"metadata":{"CorrelationId":"c"}})",
            n) == gen::message_type::event);
    CHECK(n.topic == "v2.users.u.presence");
    CHECK(n.body["sequence"] == 7);
    CHECK(n.metadata["CorrelationId"] == "c");
    CHECK(gen::parse_notification("not json", n) == gen::message_type::malformed);
    CHECK(gen::parse_notification(R"({"eventBody":{}})", n) == gen::message_type::malformed);
    CHECK(gen::parse_notification(R"([1,2])", n) == gen::message_type::malformed);
}

TEST_CASE("genesys: close policy: a gone channel means a new one, a forced close the same one") {
    gen::genesys_close_policy p;
    tether::close_event ev;
    ev.http_status = 404;
    CHECK(p.decide(ev).action == tether::close_action::refresh_token_then_reconnect);
    for (const char* reason : {"Channel expired", "Channel deleted", "Channel not found"}) {
        tether::close_event c;
        c.code = 1001;
        c.reason = reason;
        c.was_open = true;
        CHECK(p.decide(c).action == tether::close_action::refresh_token_then_reconnect);
    }
    tether::close_event forced;
    forced.code = 1001;
    forced.reason = "Socket closing";
    CHECK(p.decide(forced).action == tether::close_action::reconnect);
    tether::close_event drop;
    drop.error = tether::make_error_code(tether::error::idle_timeout);
    CHECK(p.decide(drop).action == tether::close_action::reconnect);
    tether::close_event bad; // stops under default_close_policy; a notification socket tries again
    bad.code = 1008;
    bad.was_open = true;
    bad.uptime = 1h;
    CHECK(p.decide(bad).action == tether::close_action::reconnect);
}

TEST_CASE("genesys: channel errors are permanent where retrying cannot help") {
    CHECK(tether::is_permanent_token_error(tether::error::channel_creation_limit));
    CHECK(tether::is_permanent_token_error(tether::error::subscription_rejected));
    CHECK(tether::is_permanent_token_error(tether::error::request_forbidden));
    CHECK_FALSE(tether::is_permanent_token_error(tether::error::channel_request_failed));
    CHECK(tether::make_error_code(tether::error::channel_creation_limit)
              .message()
              .find("channel creation limit") != std::string::npos);
}

// ---------------------------------------------------------------- issue 13

TEST_CASE(
    "genesys: the envelope's version is kept; system topics are typed with or without their id") {
    gen::notification n;
    CHECK(gen::parse_notification(
              R"({"topicName":"v2.users.u.presence","version":"2","eventBody":{}})", n) ==
          gen::message_type::event);
    CHECK(n.version == "2");
    CHECK(
        gen::parse_notification(R"({"topicName":"v2.users.u.presence","version":3,"eventBody":{}})",
                                n) == gen::message_type::event);
    CHECK(n.version == "3");
    CHECK(gen::parse_notification(R"({"topicName":"v2.users.u.presence","eventBody":{}})", n) ==
          gen::message_type::event);
    CHECK(n.version.empty());
    CHECK(gen::parse_notification(R"({"topicName":"v2.system.token_revoked.abc-1","eventBody":{}})",
                                  n) == gen::message_type::token_revoked);
    CHECK(gen::parse_notification(R"({"topicName":"v2.system.token_revoked","eventBody":{}})", n) ==
          gen::message_type::token_revoked);
    CHECK(gen::parse_notification(R"({"topicName":"v2.system.token_revokedX","eventBody":{}})",
                                  n) == gen::message_type::event);
    CHECK(gen::parse_notification(
              R"({"topicName":"v2.system.no_longer_subscribed.c-9","eventBody":{}})", n) ==
          gen::message_type::no_longer_subscribed);
    REQUIRE(
        gen::parse_notification(
            R"({"topicName":"v2.system.socket_closing","eventBody":{"channelId":"streaming-0-x","reason":"ROLLING_UPDATE","message":"bye"}})",
            n) == gen::message_type::socket_closing);
    const auto sm = gen::parse_system_message(n.body);
    CHECK(sm.channel_id == "streaming-0-x");
    CHECK(sm.reason == "ROLLING_UPDATE");
    CHECK(sm.message == "bye");
    CHECK(gen::parse_system_message(nlohmann::json("text")).message.empty());
}

TEST_CASE("genesys: socket replies carry a result status") {
    gen::notification n;
    REQUIRE(gen::parse_notification(R"({"result":"404","message":"Channel not found"})", n) ==
            gen::message_type::reply);
    CHECK(gen::reply_status(n.body) == 404);
    REQUIRE(gen::parse_notification(R"({"result":200,"status":"subscribed","correlationId":"c1"})",
                                    n) == gen::message_type::reply);
    CHECK(gen::reply_status(n.body) == 200);
    CHECK(gen::parse_notification(R"({"result":"4x4"})", n) == gen::message_type::malformed);
    CHECK(gen::parse_notification(R"({"result":"99"})", n) == gen::message_type::malformed);
}

TEST_CASE("genesys: frames over the size or depth limit are not parsed") {
    gen::notification n;
    gen::parse_limits small;
    small.max_bytes = 64;
    small.max_depth = 4;
    CHECK(gen::parse_notification(std::string(65, ' '), n, small) == gen::message_type::too_large);
    CHECK(gen::parse_notification(R"({"topicName":"t","eventBody":{"a":[{}]}})", n, small) ==
          gen::message_type::event); // depth 4
    CHECK(gen::parse_notification(R"({"topicName":"t","eventBody":{"a":[[{}]]}})", n, small) ==
          gen::message_type::too_deep); // depth 5
    // Brackets inside strings (with escaped quotes) do not count.
    CHECK(gen::json_depth(R"({"a":"[[[[\"[[[[","b":[1]})", 10) == 2);
    // The attack from the issue, at the default limits: a quarter MiB of '['
    // is refused by the depth scan, without a DOM.
    const std::string nested(gen::parse_limits().max_bytes, '[');
    CHECK(gen::parse_notification(nested, n) == gen::message_type::too_deep);
    CHECK(gen::parse_notification(nested + "[", n) == gen::message_type::too_large);
}

TEST_CASE("genesys: channel ids from the server are checked; ids and server text are made safe for "
          "logs") {
    CHECK(gen::is_valid_channel_id("streaming-0-abcDEF0123456789"));
    CHECK_FALSE(gen::is_valid_channel_id(""));
    CHECK_FALSE(gen::is_valid_channel_id("x/subscriptions HTTP/1.1\r\nX-Injected: yes"));
    CHECK_FALSE(gen::is_valid_channel_id("a b"));
    CHECK_FALSE(gen::is_valid_channel_id("a%2F"));
    CHECK_FALSE(gen::is_valid_channel_id(std::string(129, 'a')));
    CHECK(gen::shorten_id("streaming-0-0123456789abcdef") == "streaming-0-012345...");
    CHECK(gen::shorten_id("short") == "short");
    CHECK(gen::printable("line\r\nforged [0.000] entry\x1b[31m") ==
          "line  forged [0.000] entry [31m");
    CHECK(gen::rest_client::loggable_target(
              "/api/v2/notifications/channels/streaming-0-0123456789abcdef/subscriptions") ==
          "/api/v2/notifications/channels/streaming-0-012345.../subscriptions");
}

TEST_CASE("genesys: 18 regions, edee1.eusc-pure.cloud among them") {
    CHECK(gen::known_regions.size() == 18);
    CHECK(gen::endpoints::for_region("edee1.eusc-pure.cloud").api_base ==
          "https://api.edee1.eusc-pure.cloud");
}

namespace {
tether::close_event closed_open(std::uint16_t code, std::chrono::milliseconds uptime,
                                std::string reason = {}) {
    tether::close_event e;
    e.code = code;
    e.reason = std::move(reason);
    e.was_open = true;
    e.uptime = uptime;
    return e;
}
tether::close_event refused(int status) {
    tether::close_event e;
    e.http_status = status;
    return e;
}
tether::close_event failed(tether::error err) {
    tether::close_event e;
    e.error = tether::make_error_code(err);
    return e;
}
} // namespace

TEST_CASE(
    "genesys: close policy: every code of an open socket reconnects to the same channel first") {
    using tether::close_action;
    // 1000 included: the decision must not depend on default_close_policy's 1000.
    for (std::uint16_t code : {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011,
                               1012, 1013, 1014, 1015, 3000, 4000, 4001, 4999}) {
        INFO("code " << code);
        gen::genesys_close_policy p;
        const auto d = p.decide(closed_open(code, 10min));
        CHECK(d.action == close_action::reconnect);
        CHECK(p.retrying_same_channel());
        // ... and if the server refuses the retry, a new channel.
        CHECK(p.decide(refused(404)).action == close_action::refresh_token_then_reconnect);
        CHECK_FALSE(p.retrying_same_channel());
    }
    gen::genesys_close_policy p;
    tether::close_event drop;
    drop.was_open = true;
    drop.uptime = 1h;
    drop.error = tether::make_error_code(tether::error::idle_timeout);
    CHECK(p.decide(drop).action == close_action::reconnect);
}

TEST_CASE("genesys: close policy: a retry that the server answers by closing at once means a new "
          "channel") {
    using tether::close_action;
    gen::genesys_close_policy p;
    CHECK(p.decide(closed_open(1000, 30min)).action == close_action::reconnect); // same channel
    CHECK(p.decide(closed_open(1000, 50ms)).action ==
          close_action::refresh_token_then_reconnect); // it failed
    // A fresh channel closed at once: once is a hiccup, twice is a dead channel.
    CHECK(p.decide(closed_open(1011, 10ms)).action == close_action::reconnect);
    CHECK(p.decide(closed_open(1011, 10ms)).action == close_action::refresh_token_then_reconnect);
    // A socket that lasted resets the count.
    CHECK(p.decide(closed_open(1011, 10ms)).action == close_action::reconnect);
    CHECK(p.decide(closed_open(1011, 5s)).action == close_action::reconnect);
}

TEST_CASE("genesys: close policy: handshake refusals and failures before the server answered") {
    using tether::close_action;
    gen::genesys_close_policy p;
    for (int s : {400, 401, 403, 404, 410}) {
        INFO("status " << s);
        CHECK(p.decide(refused(s)).action == close_action::refresh_token_then_reconnect);
    }
    for (int s : {408, 429, 500, 503}) {
        INFO("status " << s);
        auto e = refused(s);
        e.retry_after = 7s;
        const auto d = p.decide(e);
        CHECK(d.action == close_action::reconnect);
        CHECK(d.cls == tether::failure_class::overload);
        CHECK(d.min_delay == std::chrono::milliseconds(7000));
    }
    CHECK(p.decide(refused(302)).action == close_action::stop);
    // The network failed: the channel is untested, keep it (a new one costs quota).
    CHECK(p.decide(failed(tether::error::connection_failed)).action == close_action::reconnect);
    CHECK(p.decide(failed(tether::error::handshake_timeout)).action == close_action::reconnect);
    CHECK(p.decide(failed(tether::error::tls_verification_failed)).action == close_action::stop);
    CHECK(p.decide(failed(tether::error::insecure_transport)).action == close_action::stop);
    // Our own size limit is not the channel's fault.
    auto big = closed_open(1009, 10ms);
    big.error = tether::make_error_code(tether::error::message_too_large);
    CHECK(p.decide(big).action == close_action::reconnect);
    CHECK(p.decide(big).action == close_action::reconnect);
}
