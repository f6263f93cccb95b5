// tether: overwriting memory that held a credential, before it is released.
#ifndef TETHER_DETAIL_WIPE_HPP
#define TETHER_DETAIL_WIPE_HPP

#include <tether/version.hpp>

#include <algorithm>
#include <cstddef>
#include <string>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// Zeroes `n` bytes at `p`. Volatile writes, so the compiler cannot drop them
/// as dead stores (the same guarantee OPENSSL_cleanse gives, without making
/// every user of secret.hpp link libcrypto).
inline void wipe(void* p, std::size_t n) noexcept {
    volatile unsigned char* b = static_cast<volatile unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = 0;
}

/// Zeroes a string's whole buffer, including the capacity beyond its size
/// (a shorter value may have been written over a longer one), then empties it.
inline void wipe(std::string& s) noexcept {
    s.resize(s.capacity()); // no reallocation: within capacity; noexcept in practice
    wipe(s.data(), s.size());
    s.clear();
}

/// Appends to a string that may hold a credential without leaving a copy
/// behind: when it must grow, the old buffer is wiped before it is freed.
inline void append_wiping(std::string& s, const char* p, std::size_t n) {
    if (s.size() + n > s.capacity()) {
        std::string bigger;
        bigger.reserve(std::max(s.size() + n, 2 * s.capacity()));
        bigger.append(s);
        wipe(s);
        s.swap(bigger);
    }
    s.append(p, n);
}

} // namespace detail
TETHER_NAMESPACE_END

#endif
