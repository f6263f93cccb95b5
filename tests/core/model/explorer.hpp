// The model checker's search: exhaustive depth-first exploration from fixed
// start states, random walks, and minimisation of failing traces.
//
// Exploration is stateless: every node replays its whole trace in a fresh
// world (a world is cheap, the client is deterministic: fixed jitter seed,
// virtual time), so no snapshot of the client is needed. There is no
// pruning of visited states: the client's state is not observable from
// outside, and a fingerprint that leaves any of it out would be unsound.
#pragma once

#include "model.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace mc {

/// Caps on events that could otherwise repeat without limit in a DFS.
struct bounds {
    std::size_t depth = 6;
    int max_sends = 2;
    int max_server_messages = 1;
    int max_waits = 2;
    int max_restarts = 1; ///< start() events after the first
    /// Explore on after the client stopped or was destroyed (otherwise such
    /// a node gets its final check only: the world then settles every
    /// connection and timer, which is what can still go wrong).
    bool after_finish = true;
};

struct start_state {
    std::string name;
    std::vector<event> prefix;
};

/// The states the DFS starts from, each reached by a fixed prefix.
inline std::vector<start_state> start_states(const config& c) {
    namespace e = mc::ev;
    std::vector<start_state> s = {
        {"acquiring_token", {e::start}},
        {"connecting", {e::start, e::token_fresh}},
        {"open", {e::start, e::token_fresh, e::accept(1)}},
        {"waiting_to_retry", {e::start, e::token_fresh, e::reject_503(1)}},
        {"mid_handover", {e::start, e::token_fresh, e::accept(1), e::handover, e::token_fresh}},
        {"draining",
         {e::start, e::token_fresh, e::accept(1), e::handover, e::token_fresh, e::accept(2)}},
    };
    if (c.options.renew_before_expiry.count() > 0)
        s.push_back({"renew_due", {e::start, e::token_fresh, e::accept(1), e::advance}});
    return s;
}

struct finding {
    violation first;
    std::string config_name;
    std::vector<event> trace;
};

inline config config_named(const std::string& n) {
    for (auto& c : config::all())
        if (c.name == n) return c;
    return config::base();
}

/// A failing trace as a Catch2 test case that replays it.
inline std::string as_test_case(const std::string& id, const std::string& config_name,
                                const std::vector<event>& trace) {
    std::ostringstream os;
    os << "TEST_CASE(\"model check: " << id << " (config " << config_name
       << ")\", \"[model_regression]\") {\n"
       << "    namespace ev = mc::ev;\n"
       << "    const auto r = mc::replay({";
    std::size_t col = 30;
    for (std::size_t i = 0; i < trace.size(); ++i) {
        const std::string s = to_string(trace[i]) + (i + 1 < trace.size() ? "," : "");
        if (i > 0 && col + 1 + s.size() > 96) {
            os << "\n                              ";
            col = 30;
        } else if (i > 0) {
            os << ' ';
            ++col;
        }
        os << s;
        col += s.size();
    }
    os << "},\n                              mc::config::" << config_name << "());\n"
       << "    INFO(r.report());\n"
       << "    CHECK(r.ok());\n"
       << "}\n";
    return os.str();
}

class explorer {
public:
    std::map<std::string, finding> findings;   // the first trace that broke each invariant
    std::map<std::string, std::uint64_t> hits; // nodes or walks that broke it
    std::uint64_t nodes = 0;
    std::uint64_t walks = 0;
    std::uint64_t walk_steps = 0;

    /// Exhaustive: every enabled event at every node, `b.depth` events past the prefix.
    void dfs(const config& c, const std::vector<event>& prefix, const bounds& b) {
        std::vector<event> trace = prefix;
        dfs_node(c, trace, prefix.size(), b);
    }

    /// One random walk of `depth` events after start; terminal events
    /// (stop, destroy, stop-coded closes) are drawn ten times less often.
    void walk(const config& c, std::mt19937_64& rng, std::size_t depth) {
        world w(c);
        std::vector<event> trace{ev::start};
        w.apply(ev::start);
        for (std::size_t i = 0; i < depth; ++i) {
            const auto en = w.enabled();
            if (en.empty()) break;
            std::uint64_t total = 0;
            for (const auto& e : en)
                total += weight(e);
            std::uint64_t x = rng() % total;
            std::size_t k = 0;
            while (x >= weight(en[k]))
                x -= weight(en[k++]);
            trace.push_back(en[k]);
            w.apply(en[k]);
            ++walk_steps;
        }
        w.check_final();
        ++walks;
        record(w.violations(), c, trace, 0);
    }

    /// Delta debugging: drops chunks of events, then single events, as long
    /// as the trace still breaks invariant `id` (strict replay).
    static std::vector<event> minimise(std::vector<event> t, const config& c,
                                       const std::string& id) {
        const auto fails = [&](const std::vector<event>& cand) {
            const auto r = run(cand, c, true);
            return r.valid() && r.has(id);
        };
        std::size_t n = 2;
        while (t.size() >= 2) {
            const std::size_t chunk = (t.size() + n - 1) / n;
            bool reduced = false;
            for (std::size_t i = 0; i < t.size(); i += chunk) {
                std::vector<event> cand(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(i));
                cand.insert(cand.end(),
                            t.begin() + static_cast<std::ptrdiff_t>(std::min(t.size(), i + chunk)),
                            t.end());
                if (fails(cand)) {
                    t = std::move(cand);
                    n = std::max<std::size_t>(n - 1, 2);
                    reduced = true;
                    break;
                }
            }
            if (!reduced) {
                if (n >= t.size()) break;
                n = std::min(n * 2, t.size());
            }
        }
        // Connections are numbered in the order the client opened them:
        // dropping events that made it open one renumbers the later ones.
        // Then try removing every run of up to four events, as it is and
        // with the numbers above those referenced before it shifted down by
        // one or two.
        for (bool progress = true; progress;) {
            progress = false;
            for (std::size_t len = 1; len <= 4 && !progress; ++len) {
                for (std::size_t i = 0; i + len <= t.size() && !progress; ++i) {
                    int seen = 0;
                    for (std::size_t j = 0; j < i; ++j)
                        if (takes_conn(t[j].what)) seen = std::max(seen, t[j].conn);
                    for (int shift = 0; shift <= 2 && !progress; ++shift) {
                        std::vector<event> cand;
                        for (std::size_t j = 0; j < t.size(); ++j) {
                            if (j >= i && j < i + len) continue;
                            event e = t[j];
                            if (j > i && takes_conn(e.what) && e.conn > seen) e.conn -= shift;
                            cand.push_back(e);
                        }
                        if (fails(cand)) {
                            t = std::move(cand);
                            progress = true;
                        }
                    }
                }
            }
        }
        return t;
    }

private:
    static std::uint64_t weight(const event& e) {
        switch (e.what) {
        case kind::stop:
        case kind::destroy:
        case kind::close_normal:
        case kind::close_policy:
        case kind::reject_403:
        case kind::token_permanent: return 1;
        default: return 10;
        }
    }

    static int count(const std::vector<event>& t, kind k) {
        int n = 0;
        for (const auto& e : t)
            n += e.what == k ? 1 : 0;
        return n;
    }

    void dfs_node(const config& c, std::vector<event>& trace, std::size_t prefix_len,
                  const bounds& b) {
        world w(c);
        for (const auto& e : trace)
            w.apply(e);
        ++nodes;
        std::vector<event> next;
        if (trace.size() - prefix_len < b.depth && (b.after_finish || !w.finished())) {
            const int sends = count(trace, kind::send) + count(trace, kind::async_send);
            const int restarts = count(trace, kind::start) - 1;
            const int messages = count(trace, kind::server_message);
            const int waits = count(trace, kind::wait);
            for (const auto& e : w.enabled()) {
                if (((e.what == kind::send || e.what == kind::async_send) &&
                     sends >= b.max_sends) ||
                    (e.what == kind::start && restarts >= b.max_restarts) ||
                    (e.what == kind::server_message && messages >= b.max_server_messages) ||
                    (e.what == kind::wait && waits >= b.max_waits))
                    continue;
                next.push_back(e);
            }
        }
        w.check_final();
        // count what broke at this node (at its last event or in its final check)
        record(w.violations(), c, trace, trace.size());
        for (const auto& e : next) {
            trace.push_back(e);
            dfs_node(c, trace, prefix_len, b);
            trace.pop_back();
        }
    }

    void record(const std::vector<violation>& vs, const config& c, const std::vector<event>& trace,
                std::size_t from_step) {
        for (const auto& v : vs) {
            if (v.step < from_step) continue; // seen at an ancestor already
            ++hits[v.id];
            if (!findings.count(v.id)) findings[v.id] = finding{v, c.name, trace};
        }
    }
};

} // namespace mc
