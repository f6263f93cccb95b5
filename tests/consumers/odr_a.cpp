// ODR test, first translation unit: includes the whole library, runs a
// client, and reports addresses of things that must exist once per program.
#include "odr_common.hpp"

namespace odr {

const std::error_category* category_seen_by_a() { return &tether::error_category(); }

int run_client_in_a() { return run_client("a"); }

} // namespace odr
