// Fuzzes tether-cli's option parser (examples/tether_cli/cli_options.hpp):
// the input is split at NUL bytes into arguments. Parsing never throws out,
// and a success has a URL and a consistent close table, a failure a reason.
#include "cli_options.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args(1);
    for (std::size_t i = 0; i < size; ++i) {
        if (data[i] == 0) {
            if (args.size() >= 64) break;
            args.emplace_back();
        } else {
            args.back() += static_cast<char>(data[i]);
        }
    }
    const auto r = tether_cli::parse_arguments(args);
    if (r.ok()) {
        if (!r.options.show_help && !r.options.show_version && r.options.url.empty()) std::abort();
        (void)r.options.close_rules();
    } else if (r.error.empty()) {
        std::abort();
    }
    return 0;
}
