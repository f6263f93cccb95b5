// tether: one shared, read-only copy of equal values.
#ifndef TETHER_DETAIL_SHARED_COPY_HPP
#define TETHER_DETAIL_SHARED_COPY_HPP

#include <tether/version.hpp>

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// The live copy of a value equal to `v` (by `same(a, b)`), or a new one.
/// While any holder of a copy is alive, equal values share it: thousands of
/// clients are usually made with one configuration, and options are hundreds
/// of bytes each. One registry per (T, Same); entries whose copies are gone
/// are dropped on the next call. Thread-safe; the copies are read-only.
template <class T, class Same> std::shared_ptr<const T> shared_copy(T v, Same same) {
    static std::mutex mutex;
    static std::vector<std::weak_ptr<const T>> made;
    std::lock_guard<std::mutex> lock(mutex);
    for (auto it = made.begin(); it != made.end();) {
        auto found = it->lock();
        if (!found) {
            it = made.erase(it);
            continue;
        }
        if (same(*found, v)) return found;
        ++it;
    }
    auto made_now = std::make_shared<const T>(std::move(v));
    made.push_back(made_now);
    return made_now;
}

} // namespace detail
TETHER_NAMESPACE_END

#endif
