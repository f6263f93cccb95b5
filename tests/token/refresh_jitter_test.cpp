// shared_token_options::refresh_jitter on a virtual clock: where a proactive
// refresh may start, that many sources spread, that the draws are
// reproducible from a seed, that 0 is the old behaviour, and bad values.
#include <tether/testing/simulation.hpp>
#include <tether/token_policy/shared_token_source.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using tether::token_result;
using sim_type = tether::testing::simulation;

namespace {

// A fetcher that notes when it was called; the test completes fetches by hand.
struct timed_log {
    sim_type* sim = nullptr;
    std::vector<sim_type::time_point> calls;
    std::vector<std::function<void(token_result)>> pending;
    void succeed(std::chrono::seconds lifetime) {
        REQUIRE_FALSE(pending.empty());
        auto h = std::move(pending.front());
        pending.erase(pending.begin());
        h(token_result::success(
            tether::token{tether::secret("tok-" + std::to_string(calls.size())), lifetime, true}));
    }
};

struct timed_fetcher {
    std::shared_ptr<timed_log> log;
    template <class Handler> void async_get_token(Handler&& h) {
        log->calls.push_back(log->sim->now());
        log->pending.emplace_back(std::forward<Handler>(h));
    }
    void invalidate(const tether::secret&) {}
    void cancel() {}
};

using source_type = tether::shared_token_source<timed_fetcher, sim_type*>;

tether::shared_token_options options(double jitter, std::optional<std::uint64_t> seed) {
    tether::shared_token_options o;
    o.soft_margin = 60s;
    o.hard_margin = 10s;
    o.refresh_jitter = jitter;
    o.refresh_jitter_seed = seed;
    return o;
}

// One source with its first token (300 s) fetched at t = 0.
struct one_source {
    std::shared_ptr<timed_log> log = std::make_shared<timed_log>();
    source_type src;
    source_type::handle_type h;
    timed_fetcher fetcher_on(sim_type& sim) {
        log->sim = &sim;
        return timed_fetcher{log};
    }
    one_source(sim_type& sim, const tether::shared_token_options& o)
        : src(fetcher_on(sim), &sim, o), h(src.handle()) {
        h.async_get_token([](token_result) {});
        log->succeed(300s);
    }
};

double seconds_since_start(sim_type::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// When each of `n` sources (seeds 1..n, tokens of 300 s issued at t = 0)
// starts its proactive refresh, in seconds.
std::vector<double> first_refreshes(std::size_t n, double jitter) {
    sim_type sim;
    std::vector<std::unique_ptr<one_source>> sources;
    for (std::size_t i = 0; i < n; ++i)
        sources.push_back(std::make_unique<one_source>(sim, options(jitter, i + 1)));
    sim.run_for(300s);
    std::vector<double> at;
    for (auto& s : sources) {
        REQUIRE(s->log->calls.size() == 2);
        at.push_back(seconds_since_start(s->log->calls[1]));
    }
    return at;
}

} // namespace

TEST_CASE("refresh_jitter: spreading is on by default, half the span between the margins") {
    const tether::shared_token_options o;
    CHECK(o.refresh_jitter == 0.5);
    CHECK_FALSE(o.refresh_jitter_seed);
}

TEST_CASE("refresh_jitter: the refresh starts inside the soft margin, well before the hard one") {
    // 300 s tokens, soft 60 s, hard 10 s, jitter 0.5: between 240 s and
    // 240 + 0.5 * 50 = 265 s after the fetch began.
    const auto at = first_refreshes(400, 0.5);
    for (double t : at) {
        CHECK(t >= 240.0);
        CHECK(t <= 265.0);
    }

    SECTION("and different sources spread over the whole window") {
        const std::set<double> distinct(at.begin(), at.end());
        CHECK(distinct.size() == at.size());
        CHECK(*std::min_element(at.begin(), at.end()) < 241.0);
        CHECK(*std::max_element(at.begin(), at.end()) > 264.0);
        // Five slices of 5 s, 80 expected in each.
        std::vector<int> slice(5);
        for (double t : at)
            ++slice[std::min(4, static_cast<int>((t - 240.0) / 5.0))];
        for (int k : slice)
            CHECK(k >= 50);
    }
}

TEST_CASE("refresh_jitter: no source refreshes past the window with any jitter value") {
    for (double jitter : {0.1, 0.5, 0.9, 0.999}) {
        INFO("refresh_jitter " << jitter);
        const double last = 240.0 + jitter * 50.0;
        for (double t : first_refreshes(50, jitter)) {
            CHECK(t >= 240.0);
            CHECK(t <= last);
            CHECK(t < 290.0); // the hard margin
        }
    }
}

TEST_CASE("refresh_jitter: 0 refreshes exactly at the soft margin, as before") {
    for (double t : first_refreshes(20, 0.0))
        CHECK(t == 240.0);
}

TEST_CASE("refresh_jitter: a seed reproduces the draws, unseeded sources differ") {
    CHECK(first_refreshes(30, 0.5) == first_refreshes(30, 0.5));

    sim_type sim;
    std::vector<std::unique_ptr<one_source>> unseeded;
    for (int i = 0; i < 20; ++i)
        unseeded.push_back(std::make_unique<one_source>(sim, options(0.5, std::nullopt)));
    sim.run_for(300s);
    std::set<sim_type::time_point> at;
    for (auto& s : unseeded) {
        REQUIRE(s->log->calls.size() == 2);
        at.insert(s->log->calls[1]);
    }
    CHECK(at.size() > 1); // from std::random_device: equal draws would be a broken device
}

TEST_CASE("refresh_jitter: every token draws again, counted from its own fetch") {
    sim_type sim;
    one_source s(sim, options(0.5, 42));
    std::vector<double> gaps;
    for (int generation = 0; generation < 20; ++generation) {
        const auto began = s.log->calls.back();
        const std::size_t want = static_cast<std::size_t>(generation) + 2;
        REQUIRE(sim.run_until([&] { return s.log->calls.size() == want; }, 300s));
        const auto t = s.log->calls.back() - began;
        gaps.push_back(std::chrono::duration<double>(t).count());
        s.log->succeed(300s);
        // and clients are served the new token from here on
        std::string got;
        s.h.async_get_token([&](token_result r) { got = std::string(r.value.value.reveal()); });
        CHECK(got == "tok-" + std::to_string(s.log->calls.size()));
    }
    for (double g : gaps) {
        CHECK(g >= 240.0);
        CHECK(g <= 265.0);
    }
    CHECK(std::set<double>(gaps.begin(), gaps.end()).size() == gaps.size());
}

TEST_CASE("refresh_jitter: a request inside the soft margin but before the drawn time does "
          "not refresh") {
    double drawn = 0;
    {
        sim_type sim;
        one_source s(sim, options(0.5, 7));
        sim.run_for(300s);
        REQUIRE(s.log->calls.size() == 2);
        drawn = seconds_since_start(s.log->calls[1]);
    }
    REQUIRE(drawn > 241.0); // seed 7's draw leaves room for the check below
    sim_type sim;
    one_source s(sim, options(0.5, 7));
    sim.run_for(241s); // inside the soft margin, before the drawn time
    std::string got;
    s.h.async_get_token([&](token_result r) { got = std::string(r.value.value.reveal()); });
    CHECK(got == "tok-1");
    CHECK(s.log->calls.size() == 1);
    CHECK(s.src.stats().proactive_refreshes == 0);
    sim.run_for(std::chrono::duration_cast<sim_type::duration>(
        std::chrono::duration<double>(drawn - 241.0)));
    CHECK(s.log->calls.size() == 2);
    CHECK(s.src.stats().proactive_refreshes == 1);
}

TEST_CASE("refresh_jitter: short-lived tokens jitter within their capped margins") {
    // 20 s tokens with the default margins: soft 10 s, hard 5 s, so the
    // refresh starts between 10 s and 12.5 s after the fetch began.
    sim_type sim;
    std::vector<double> at;
    for (std::uint64_t seed = 1; seed <= 50; ++seed) {
        tether::shared_token_options o;
        o.refresh_jitter_seed = seed;
        auto log = std::make_shared<timed_log>();
        log->sim = &sim;
        source_type src(timed_fetcher{log}, &sim, o);
        auto h = src.handle();
        h.async_get_token([](token_result) {});
        log->succeed(20s);
        const auto began = log->calls[0];
        sim.run_for(20s);
        REQUIRE(log->calls.size() == 2);
        at.push_back(std::chrono::duration<double>(log->calls[1] - began).count());
    }
    for (double t : at) {
        CHECK(t >= 10.0);
        CHECK(t <= 12.5);
    }
    CHECK(std::set<double>(at.begin(), at.end()).size() > 40);
}

TEST_CASE("refresh_jitter: out of range is an invalid_option naming it") {
    sim_type sim;
    for (double bad : {-0.1, 1.0, 1.5, std::numeric_limits<double>::quiet_NaN(),
                       std::numeric_limits<double>::infinity()}) {
        INFO("refresh_jitter " << bad);
        tether::shared_token_options o;
        o.refresh_jitter = bad;
        try {
            auto log = std::make_shared<timed_log>();
            log->sim = &sim;
            source_type src(timed_fetcher{log}, &sim, o);
            FAIL("no exception");
        } catch (const std::system_error& e) {
            CHECK(e.code() == tether::error::invalid_option);
            CHECK_THAT(e.what(), Catch::Contains("refresh_jitter"));
        }
        std::error_code ec;
        std::string why;
        tether::validate(o, ec, &why);
        CHECK(ec == tether::error::invalid_option);
        CHECK_THAT(why, Catch::Contains("refresh_jitter"));
    }
    for (double good : {0.0, 0.25, 0.999}) {
        tether::shared_token_options o;
        o.refresh_jitter = good;
        CHECK_NOTHROW(o.validate());
    }
}
