// tether: Genesys Cloud regions and the three hosts each one has.
#ifndef TETHER_GENESYS_REGION_HPP
#define TETHER_GENESYS_REGION_HPP

#include <tether/error.hpp>
#include <tether/version.hpp>

#include <array>
#include <stdexcept>
#include <string>
#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace genesys {

/// The region hosts Genesys publishes (docs/genesys.md). A region is named by
/// its host; `login.`, `api.` and `streaming.` are prefixed to it.
inline constexpr std::array<std::string_view, 18> known_regions = {
    "mypurecloud.com",  "mypurecloud.ie",        "mypurecloud.com.au",     "mypurecloud.jp",
    "mypurecloud.de",   "usw2.pure.cloud",       "cac1.pure.cloud",        "apne2.pure.cloud",
    "euw2.pure.cloud",  "aps1.pure.cloud",       "use2.us-gov-pure.cloud", "sae1.pure.cloud",
    "mec1.pure.cloud",  "apne3.pure.cloud",      "euc2.pure.cloud",        "mxc1.pure.cloud",
    "apse1.pure.cloud", "edee1.eusc-pure.cloud",
};

inline bool is_known_region(std::string_view region) noexcept {
    for (auto r : known_regions)
        if (r == region) return true;
    return false;
}

/// Where the REST calls go. The socket URL is not here: each channel's
/// `connectUri` says where to connect.
struct endpoints {
    std::string login_base; ///< `https://login.<region>`: POST /oauth/token
    std::string api_base;   ///< `https://api.<region>`: /api/v2/notifications/...

    /// The hosts of a published region. Throws std::system_error (error::invalid_option) for a
    /// region not in known_regions (a typo would otherwise send the client
    /// secret to whoever owns that name); use explicit() for anything else.
    static endpoints for_region(std::string_view region) {
        std::string r(region);
        // Accept what people paste: "https://api.mypurecloud.ie/" -> "mypurecloud.ie".
        for (std::string_view prefix : {"https://", "login.", "api.", "apps.", "streaming."})
            if (r.compare(0, prefix.size(), prefix) == 0) r.erase(0, prefix.size());
        while (!r.empty() && r.back() == '/')
            r.pop_back();
        if (!is_known_region(r)) {
            std::string list;
            for (auto k : known_regions)
                list += (list.empty() ? "" : ", ") + std::string(k);
            throw detail::invalid_option(
                "tether: genesys: unknown region '" + std::string(region).substr(0, 64) +
                "'; known regions: " + list + " (pass explicit base URLs for anything else)");
        }
        return {"https://login." + r, "https://api." + r};
    }

    /// Explicit base URLs (a local server: both `http://127.0.0.1:PORT`).
    /// They are checked when the client is built (scheme, loopback for http://).
    static endpoints explicit_urls(std::string login, std::string api) {
        auto trim = [](std::string s) {
            while (!s.empty() && s.back() == '/')
                s.pop_back();
            return s;
        };
        return {trim(std::move(login)), trim(std::move(api))};
    }
};

} // namespace genesys
TETHER_NAMESPACE_END

#endif
