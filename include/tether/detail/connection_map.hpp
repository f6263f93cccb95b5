// tether: a transport's connections by id, for the few a client's transport holds.
#ifndef TETHER_DETAIL_CONNECTION_MAP_HPP
#define TETHER_DETAIL_CONNECTION_MAP_HPP

#include <tether/connect_request.hpp>
#include <tether/version.hpp>

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// A transport's connections by id: a vector sorted by id (ids only grow, so
/// emplace appends), searched by bisection. A client's transport holds one
/// to three connections; an unordered_map took 56 bytes, a 104-byte bucket
/// array and a node per entry, this 24 bytes and one small buffer. Used by
/// websocketpp_transport and beast_transport.
template <class V> class connection_map {
public:
    using value_type = std::pair<connection_id, V>;
    using iterator = typename std::vector<value_type>::iterator;
    using const_iterator = typename std::vector<value_type>::const_iterator;

    iterator begin() noexcept { return items_.begin(); }
    iterator end() noexcept { return items_.end(); }
    const_iterator begin() const noexcept { return items_.begin(); }
    const_iterator end() const noexcept { return items_.end(); }
    std::size_t size() const noexcept { return items_.size(); }

    iterator find(connection_id id) { return items_.begin() + index_of(id); }
    const_iterator find(connection_id id) const { return items_.begin() + index_of(id); }

    void emplace(connection_id id, V v) {
        const auto at = std::lower_bound(items_.begin(), items_.end(), id, less_id);
        items_.emplace(at, id, std::move(v));
    }
    void erase(connection_id id) {
        const auto it = find(id);
        if (it != items_.end()) items_.erase(it);
    }

private:
    static bool less_id(const value_type& e, connection_id id) noexcept { return e.first < id; }
    std::ptrdiff_t index_of(connection_id id) const {
        const auto it = std::lower_bound(items_.begin(), items_.end(), id, less_id);
        return (it != items_.end() && it->first == id ? it : items_.end()) - items_.begin();
    }

    std::vector<value_type> items_;
};

} // namespace detail
TETHER_NAMESPACE_END

#endif
