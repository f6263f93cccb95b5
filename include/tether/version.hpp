// tether: versioning and the ABI-tagged inline namespace.
#ifndef TETHER_VERSION_HPP
#define TETHER_VERSION_HPP

#define TETHER_VERSION_MAJOR 0
#define TETHER_VERSION_MINOR 1
#define TETHER_VERSION_PATCH 0

#define TETHER_DETAIL_CAT_IMPL(a, b, c, d) a##b##_##c##_##d
#define TETHER_DETAIL_CAT(a, b, c, d) TETHER_DETAIL_CAT_IMPL(a, b, c, d)

// Every macro that changes a type's layout or behaviour becomes part of this
// tag, so translation units built from different versions (or configured
// differently) name different symbols instead of silently violating the ODR.
#define TETHER_ABI_TAG                                                         \
    TETHER_DETAIL_CAT(abi_v, TETHER_VERSION_MAJOR, TETHER_VERSION_MINOR,        \
                      TETHER_VERSION_PATCH)

#define TETHER_NAMESPACE_BEGIN                                                 \
    namespace tether {                                                         \
    inline namespace TETHER_ABI_TAG {
#define TETHER_NAMESPACE_END                                                   \
    }                                                                          \
    }

TETHER_NAMESPACE_BEGIN
struct version_info {
    int major;
    int minor;
    int patch;
};
inline constexpr version_info version{TETHER_VERSION_MAJOR, TETHER_VERSION_MINOR,
                                      TETHER_VERSION_PATCH};
TETHER_NAMESPACE_END

#endif
