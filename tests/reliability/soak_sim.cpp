// Soak on virtual time (issue 12): the seed flow -- open, expiry close 4001,
// the spent token reported, one refresh, reconnect -- repeated
// TETHER_SOAK_CYCLES times (default 10,000), sampling RSS, open file
// descriptors and threads every 1,000 cycles. The figures are printed (and
// copied into tests/reliability/README.md); the assertions bound them.
// Valgrind: TETHER_SOAK_CYCLES=100 valgrind --error-exitcode=1 --leak-check=full ...
#include "../core/sim_fixture.hpp"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

using namespace fixture;

namespace {

using soak_client =
    tether::basic_reconnecting_client<simulated_transport, recording_token_policy,
                                      tether::close_code_table<>, tether::exponential_backoff>;

long rss_kb() {
    std::ifstream f("/proc/self/statm");
    long pages = 0, resident = 0;
    f >> pages >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int open_fds() {
    int n = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (readdir(d))
            ++n;
        closedir(d);
    }
    return n - 3; // ".", ".." and the directory's own descriptor
}

int threads() {
    std::ifstream f("/proc/self/status");
    std::string key;
    while (f >> key)
        if (key == "Threads:") {
            int n = 0;
            f >> n;
            return n;
        }
    return -1;
}

/// Least-squares slope of y over x.
double slope(const std::vector<double>& x, const std::vector<double>& y) {
    const double n = static_cast<double>(x.size());
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        sx += x[i];
        sy += y[i];
        sxx += x[i] * x[i];
        sxy += x[i] * y[i];
    }
    return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

} // namespace

TEST_CASE("soak: 10,000 expiry-refresh-reconnect cycles on virtual time stay flat", "[soak]") {
    long cycles = 10000;
    if (const char* env = std::getenv("TETHER_SOAK_CYCLES")) cycles = std::strtol(env, nullptr, 10);
    REQUIRE(cycles >= 1);

    simulation sim;
    seed_service svc;
    soak_client client(options(), simulated_transport(sim, svc.server), recording_token_policy(sim),
                       seed_close_policy(),
                       tether::exponential_backoff({}, tether::jitter_rng(42)));
    auto& tokens = client.token_policy().st();
    client.start();
    sim.run_for(1s);
    REQUIRE(client.state() == tether::client_state::open);

    std::vector<double> at, rss;
    const int fds0 = open_fds();
    const int threads0 = threads();
    for (long cycle = 1; cycle <= cycles; ++cycle) {
        sim.run_for(10min);
        svc.expire_current();
        sim.run_for(1s);
        REQUIRE(client.state() == tether::client_state::open);
        // the harness's own records grow per cycle; only the client is measured
        svc.server.handshakes.erase(svc.server.handshakes.begin(), svc.server.handshakes.end() - 1);
        svc.expired.clear();
        tokens.issued.clear();
        tokens.invalidated.clear();
        if (cycle % 1000 == 0 || cycle == cycles) {
            at.push_back(static_cast<double>(cycle));
            rss.push_back(static_cast<double>(rss_kb()));
            CHECK(open_fds() == fds0);
            CHECK(threads() == threads0);
        }
    }
    CHECK(tokens.fetches == cycles + 1);
    CHECK(client.counters().connects == static_cast<std::uint64_t>(cycles + 1));
    client.stop();
    sim.run_for(10s);

    std::printf("soak (virtual time): %ld cycles, fds %d, threads %d, RSS %.0f kB -> %.0f kB",
                cycles, fds0, threads0, rss.front(), rss.back());
    if (rss.size() >= 3) {
        // slope after the first sample (allocator warm-up)
        const std::vector<double> x(at.begin() + 1, at.end()), y(rss.begin() + 1, rss.end());
        const double kb_per_1000 = slope(x, y) * 1000.0;
        std::printf(", slope %.2f kB per 1,000 cycles\n", kb_per_1000);
        // a leak of 50 bytes per cycle would be about 49 kB per 1,000 cycles
        CHECK(kb_per_1000 < 16.0);
    } else {
        std::printf("\n");
    }
}
