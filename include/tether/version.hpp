// tether: versioning and the ABI-tagged inline namespace.

// The version check is amalgamate.py's text, kept as it writes it.
// clang-format off
// BEGIN version check (tests/tools/amalgamate.py rewrites this block from the numbers below)
// Before the include guard on purpose: warns when <tether/version.hpp> of tether 0.1.0
// comes after another tether version in one translation unit.
// clang-format off
#if defined(TETHER_VERSION_MAJOR) && !defined(TETHER_DETAIL_MIXED_VERSIONS_WARNED) && \
    (TETHER_VERSION_MAJOR != 0 || TETHER_VERSION_MINOR != 1 || TETHER_VERSION_PATCH != 0)
#define TETHER_DETAIL_MIXED_VERSIONS_WARNED
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC warning "tether 0.1.0 is included after another tether version in this translation unit: the headers of the version included first are used"
#elif defined(_MSC_VER)
#pragma message("warning: tether 0.1.0 is included after another tether version in this translation unit: the headers of the version included first are used")
#endif
#endif
// clang-format on
// END version check
// clang-format on

#ifndef TETHER_VERSION_HPP
#define TETHER_VERSION_HPP

// The one place the version is written: CMake reads it from here, and
// tests/tools/amalgamate.py copies it into meson.build and the checks.
#define TETHER_VERSION_MAJOR 0
#define TETHER_VERSION_MINOR 1
#define TETHER_VERSION_PATCH 0

#include <atomic>
#include <cstdint>

#define TETHER_DETAIL_CAT_IMPL(a, b, c, d) a##b##_##c##_##d
#define TETHER_DETAIL_CAT(a, b, c, d) TETHER_DETAIL_CAT_IMPL(a, b, c, d)
#define TETHER_DETAIL_STR_IMPL(x) #x
#define TETHER_DETAIL_STR(x) TETHER_DETAIL_STR_IMPL(x)

// Every macro that changes a type's layout or behaviour becomes part of this
// tag, so translation units built from different versions (or configured
// differently) name different symbols instead of silently violating the ODR.
// Boost mode (TETHER_USE_BOOST_ASIO: Boost.Asio instead of standalone Asio,
// detail/net.hpp) changes executor and timer types: abi_boost_vX_Y_Z.
#if defined(TETHER_USE_BOOST_ASIO)
#define TETHER_ABI_TAG                                                                             \
    TETHER_DETAIL_CAT(abi_boost_v, TETHER_VERSION_MAJOR, TETHER_VERSION_MINOR, TETHER_VERSION_PATCH)
#else
#define TETHER_ABI_TAG                                                                             \
    TETHER_DETAIL_CAT(abi_v, TETHER_VERSION_MAJOR, TETHER_VERSION_MINOR, TETHER_VERSION_PATCH)
#endif

#define TETHER_NAMESPACE_BEGIN                                                                     \
    namespace tether {                                                                             \
    inline namespace TETHER_ABI_TAG {
#define TETHER_NAMESPACE_END                                                                       \
    }                                                                                              \
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

// Two tether versions linked into one program do not break the ODR (their
// symbols differ by ABI tag), but they share nothing: a token fetched by one is
// invisible to the other. This registry is how they notice each other; nothing
// is printed (a library writes nothing to stderr on its own): the program asks
// check_single_version(). It is deliberately unversioned, so every copy in the
// program (per shared object with default visibility) resolves to the same
// one; neither function may ever change.
namespace tether {
namespace unversioned {
/// The FNV-1a hash of the first ABI tag registered in this program (0: none yet).
inline std::atomic<std::uint64_t>& first_linked_abi() noexcept {
    static std::atomic<std::uint64_t> abi{0};
    return abi;
}
/// Set by every copy that finds another ABI registered before its own.
inline std::atomic<bool>& other_abi_linked() noexcept {
    static std::atomic<bool> seen{false};
    return seen;
}
} // namespace unversioned
} // namespace tether

TETHER_NAMESPACE_BEGIN
namespace detail {
inline constexpr const char* abi_tag = TETHER_DETAIL_STR(TETHER_ABI_TAG);

constexpr std::uint64_t fnv1a(const char* s) noexcept {
    std::uint64_t h = 14695981039346656037ull;
    for (; *s; ++s)
        h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
    return h;
}

/// Records this ABI in the program-wide registry, silently; true when a
/// different tether ABI got there first. Idempotent.
inline bool note_linked_abi() noexcept {
    std::uint64_t first = 0;
    if (unversioned::first_linked_abi().compare_exchange_strong(first, fnv1a(abi_tag)))
        return false;
    if (first == fnv1a(abi_tag)) return false;
    unversioned::other_abi_linked().store(true);
    return true;
}

/// Evaluated once per ABI per program, during static initialisation.
inline const bool linked_abi_conflict = note_linked_abi();
} // namespace detail

/// True when this program holds a single tether version (and configuration);
/// false when another one is linked in too, for instance through a library
/// built against another tether. The copies then work side by side but share
/// nothing (each has its own token cache). Prints nothing: report it as your
/// program sees fit. Meaningful once static initialisation is over (from
/// main() on); copies in shared libraries that hide their symbols are not seen.
/// See docs/packaging.md, "Versions".
inline bool check_single_version() noexcept {
    const bool another_came_first = detail::note_linked_abi();
    return !another_came_first && !unversioned::other_abi_linked().load();
}
TETHER_NAMESPACE_END

#endif
