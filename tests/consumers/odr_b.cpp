// ODR test, second translation unit and main(): the same headers and the same
// template instantiations as odr_a.cpp must link into one program, and state
// that is meant to be unique (the error category) must be the same object.
#include "odr_common.hpp"

#include <cstdio>

namespace odr {
const std::error_category* category_seen_by_a();
int run_client_in_a();
} // namespace odr

int main() {
    int failures = 0;
    if (odr::category_seen_by_a() != &tether::error_category()) {
        std::fprintf(stderr, "odr: two error_category instances in one program\n");
        ++failures;
    }
    if (std::error_code(tether::error::unauthorized) != tether::error::unauthorized) {
        std::fprintf(stderr, "odr: error_code comparison across translation units fails\n");
        ++failures;
    }
    failures += odr::run_client_in_a();
    failures += odr::run_client("b");
    // One version in two translation units is one version: the documented
    // check says so (and the library printed nothing about it).
    if (!tether::check_single_version() || tether::detail::linked_abi_conflict) {
        std::fprintf(stderr, "odr: one tether version reported as two\n");
        ++failures;
    }
    std::printf("odr: %s\n", failures ? "FAILED" : "ok");
    return failures == 0 ? 0 : 1;
}
