// tether::genesys pieces that need no network: regions, topic validation,
// timestamps, message parsing, the close policy.
#include <tether/genesys/channel_token_policy.hpp>
#include <tether/genesys/close_policy.hpp>
#include <tether/genesys/notification.hpp>
#include <tether/genesys/region.hpp>

#include <catch2/catch.hpp>

namespace gen = tether::genesys;
using namespace std::chrono_literals;

TEST_CASE("genesys: a known region gives login and api hosts; an unknown one is refused") {
    const auto e = gen::endpoints::for_region("mypurecloud.ie");
    CHECK(e.login_base == "https://login.mypurecloud.ie");
    CHECK(e.api_base == "https://api.mypurecloud.ie");
    CHECK(gen::endpoints::for_region("https://api.usw2.pure.cloud/").api_base == "https://api.usw2.pure.cloud");
    CHECK_THROWS_WITH(gen::endpoints::for_region("mypurecloud.evil.example"),
                      Catch::Contains("unknown region") && Catch::Contains("mypurecloud.com.au"));
    CHECK(gen::endpoints::explicit_urls("http://127.0.0.1:8080/", "http://127.0.0.1:8080").login_base ==
          "http://127.0.0.1:8080");
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
    CHECK_THROWS_AS(gen::validate_topics({"a\nb"}), std::invalid_argument);
}

TEST_CASE("genesys: channel expiry timestamps") {
    const auto t = gen::parse_utc_timestamp("2024-05-01T12:00:00.250Z");
    REQUIRE(t);
    CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count() == 1714564800250LL);
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
    CHECK(gen::parse_notification(R"({"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}})", n) ==
          gen::message_type::heartbeat);
    CHECK(gen::parse_notification(R"({"topicName":"channel.metadata","eventBody":{"message":"pong"}})", n) ==
          gen::message_type::pong);
    CHECK(gen::parse_notification(R"({"topicName":"v2.system.socket_closing","eventBody":{"message":"bye"}})", n) ==
          gen::message_type::socket_closing);
    CHECK(gen::parse_notification(
              R"({"topicName":"v2.users.u.presence","eventBody":{"sequence":7},"metadata":{"CorrelationId":"c"}})", n) ==
          gen::message_type::event);
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
    tether::close_event bad;
    bad.code = 1008;
    CHECK(p.decide(bad).action == tether::close_action::stop);
}

TEST_CASE("genesys: channel errors are permanent where retrying cannot help") {
    CHECK(tether::is_permanent_token_error(tether::error::channel_creation_limit));
    CHECK(tether::is_permanent_token_error(tether::error::subscription_rejected));
    CHECK(tether::is_permanent_token_error(tether::error::request_forbidden));
    CHECK_FALSE(tether::is_permanent_token_error(tether::error::channel_request_failed));
    CHECK(tether::make_error_code(tether::error::channel_creation_limit).message().find("channel creation limit") !=
          std::string::npos);
}
