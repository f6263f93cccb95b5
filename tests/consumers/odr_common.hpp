// Included by both ODR test translation units: the whole library, and one
// function template both instantiate identically.
#ifndef TETHER_TESTS_CONSUMERS_ODR_COMMON_HPP
#define TETHER_TESTS_CONSUMERS_ODR_COMMON_HPP

#include <tether/genesys.hpp>
#include <tether/testing.hpp>
#include <tether/tether.hpp>

#include <chrono>
#include <cstdio>

namespace odr {

// A client on the simulated transport opens once and stops on request.
// Returns the number of failures.
inline int run_client(const char* unit) {
    using namespace std::chrono_literals;
    tether::testing::simulation sim;
    tether::testing::simulated_server server;
    tether::client_options opts;
    opts.url = "wss://odr.invalid/";
    tether::basic_reconnecting_client<tether::testing::simulated_transport, tether::static_token>
        client(opts, tether::testing::simulated_transport(sim, server),
               tether::static_token("odr"));
    int opens = 0;
    bool stopped = false;
    client.on_open([&](const tether::open_event&) { ++opens; });
    client.on_stopped([&](const tether::stopped_event&) { stopped = true; });
    client.start();
    sim.run_until([&] { return opens == 1; }, 10s);
    client.stop();
    sim.run_for(10s);
    if (opens != 1 || !stopped) {
        std::fprintf(stderr, "odr: client in unit %s: %d opens, stopped=%d\n", unit, opens,
                     stopped);
        return 1;
    }
    return 0;
}

} // namespace odr

#endif
