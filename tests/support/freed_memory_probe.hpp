// Test-only: replaces the global operator new/delete so a test can ask "did
// any block freed while armed still contain these bytes?". Include in exactly
// one translation unit of a test program. Allocation goes through malloc and
// free (so sanitizers still see matched pairs); the scan runs only while armed.
#ifndef TETHER_TESTS_SUPPORT_FREED_MEMORY_PROBE_HPP
#define TETHER_TESTS_SUPPORT_FREED_MEMORY_PROBE_HPP

#include <malloc.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

namespace freed_memory_probe {

inline std::atomic<bool> armed{false};
inline const char* needle = nullptr; // static storage, never freed
inline std::size_t needle_size = 0;
inline std::atomic<int> hits{0};

inline void scan(void* p) noexcept {
    if (!p || !armed.load(std::memory_order_relaxed)) return;
    const std::size_t n = malloc_usable_size(p);
    if (n >= needle_size && memmem(p, n, needle, needle_size)) hits.fetch_add(1);
}

/// Arms the probe for `text` (which must outlive the probe, e.g. a literal).
inline void arm(const char* text) noexcept {
    needle = text;
    needle_size = std::strlen(text);
    hits = 0;
    armed = true;
}
inline int disarm() noexcept {
    armed = false;
    return hits.load();
}

} // namespace freed_memory_probe

// Out of line, so the compiler does not pair an inlined malloc with a
// delete-expression and warn about mismatched allocation functions.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
[[gnu::noinline]] void* operator new(std::size_t n) {
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
// The nothrow forms too: a sanitizer runtime replaces every form it does not
// see replaced here, and pairing its allocation with this delete is a mismatch.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return std::malloc(n ? n : 1);
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
    freed_memory_probe::scan(p);
    std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }

#endif
