// The vendored consumer: this file and a copy of single_include/tether/tether.hpp
// in an otherwise empty folder, built with
//   g++ -std=c++17 -DASIO_STANDALONE main.cpp -o app -lssl -lcrypto -pthread
#include "tether.hpp"

#include <chrono>
#include <cstdio>
#include <string>

int main() {
    int failures = 0;
    auto expect = [&](bool ok, const char* what) {
        if (!ok) {
            std::fprintf(stderr, "vendored: FAILED: %s\n", what);
            ++failures;
        }
    };

    // The policies a client is composed of, as the client would call them.
    tether::default_close_policy close_policy;
    tether::close_event abnormal;
    abnormal.code = tether::close_code::abnormal;
    expect(close_policy.decide(abnormal).action == tether::close_action::reconnect, "1006 reconnects");
    tether::close_event unauthorized;
    unauthorized.http_status = 401;
    expect(close_policy.decide(unauthorized).action == tether::close_action::refresh_token_then_reconnect,
           "401 refreshes the token");

    tether::exponential_backoff backoff;
    for (int i = 0; i < 20; ++i) {
        const auto d = backoff.next_delay(tether::failure_class::network);
        expect(d >= std::chrono::milliseconds(0) && d <= std::chrono::seconds(60), "network delay within cap");
    }

    tether::client_options opts;
    opts.url = "wss://vendored.invalid/";
    opts.validate();

    expect(tether::make_error_code(tether::error::unauthorized).category().name() == std::string("tether"),
           "error category");

    std::printf("vendored: tether %d.%d.%d %s\n", tether::version.major, tether::version.minor,
                tether::version.patch, failures ? "FAILED" : "ok");
    return failures == 0 ? 0 : 1;
}
