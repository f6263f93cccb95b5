// The model checker for basic_reconnecting_client (issue 11): exhaustive
// exploration to a bounded depth from several start states, then random
// walks, with every invariant of model.hpp checked after every step and a
// liveness check from every state reached. A failing trace is minimised and
// printed as a ready-to-paste Catch2 test case (see regressions.cpp).
//
// CI mode by default (well under two minutes in a Release build). Long mode,
// TETHER_MC_LONG=1: every option set from every start state at depth 6
// without the CI caps, and 120,000 random walks of depth 40. Overrides:
// TETHER_MC_DEPTH (DFS events after the prefix), TETHER_MC_WALKS,
// TETHER_MC_WALK_DEPTH, TETHER_MC_SEED.
#include "explorer.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <iostream>

namespace {

using mc::config;
using mc::explorer;

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

bool long_mode() { return env_or("TETHER_MC_LONG", 0) != 0; }

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Minimises and prints every finding; fails the test once per finding.
void report(explorer& x) {
    for (const auto& [id, f] : x.findings) {
        const config c = mc::config_named(f.config_name);
        const auto t0 = std::chrono::steady_clock::now();
        const auto minimal = explorer::minimise(f.trace, c, id);
        const auto r = mc::run(minimal, c, true);
        std::ostringstream os;
        os << id << ": broken at " << x.hits[id] << " nodes/walks; first trace " << f.trace.size()
           << " events, minimised to " << minimal.size() << " in " << seconds_since(t0) << " s\n"
           << r.report() << "\n"
           << mc::as_test_case(id, f.config_name, minimal);
        std::cout << os.str() << std::endl;
        FAIL_CHECK(os.str());
    }
}

} // namespace

TEST_CASE("model check: exhaustive from every start state", "[model]") {
    const bool lng = long_mode();
    mc::bounds b;
    b.depth = env_or("TETHER_MC_DEPTH", 6);
    if (!lng) {
        // CI: fewer repetitions of the events that only add volume
        b.max_sends = 1;
        b.max_waits = 1;
        b.after_finish = false;
    }
    explorer x;
    const auto t0 = std::chrono::steady_clock::now();
    // CI: the base options from every start state (depth 6; 5 from
    // draining, the widest), the other option sets from the start states
    // where they differ (depth 5). Long: everything at full depth.
    for (const auto& c : config::all()) {
        for (const auto& s : mc::start_states(c)) {
            mc::bounds sb = b;
            if (!lng) {
                const bool chosen = c.name == "base" || s.name == "open" || s.name == "renew_due" ||
                                    (c.name == "drain0" && s.name == "draining");
                if (!chosen) continue;
                if (c.name != "base" || s.name == "draining")
                    sb.depth = std::min<std::size_t>(b.depth, 5);
            }
            const auto n0 = x.nodes;
            const auto t1 = std::chrono::steady_clock::now();
            x.dfs(c, s.prefix, sb);
            std::cout << "model check: config " << c.name << ", from " << s.name << " (depth "
                      << sb.depth << "): " << (x.nodes - n0) << " states in " << seconds_since(t1)
                      << " s" << std::endl;
        }
    }
    std::cout << "model check: exhaustive: " << x.nodes << " states (each followed by a liveness "
              << "and stop check) in " << seconds_since(t0) << " s, " << x.findings.size()
              << " invariants broken" << std::endl;
    report(x);
    CHECK(x.nodes > 0);
}

TEST_CASE("model check: random walks", "[model]") {
    const bool lng = long_mode();
    const std::uint64_t walks = env_or("TETHER_MC_WALKS", lng ? 120000 : 20000);
    const std::size_t depth = env_or("TETHER_MC_WALK_DEPTH", lng ? 40 : 30);
    std::mt19937_64 rng(env_or("TETHER_MC_SEED", 11));
    const auto configs = config::all();
    explorer x;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < walks; ++i)
        x.walk(configs[i % configs.size()], rng, depth);
    std::cout << "model check: " << x.walks << " random walks of depth " << depth << " ("
              << x.walk_steps << " steps, each walk followed by a liveness and stop check) in "
              << seconds_since(t0) << " s, " << x.findings.size() << " invariants broken"
              << std::endl;
    report(x);
    CHECK(x.walks == walks);
}
