// The subscribers of one client event. Touched only on the client's executor
// (or before the client runs), so there is no lock; what makes it safe is
// that a handler may add or remove handlers, itself included, while the list
// is being called:
// - an entry lives in its own node, so adding (which may move the vector)
//   never moves the function that is running;
// - removing only marks the entry; the list is compacted when no call is
//   under way;
// - a handler added during a call is not called by that call.
#ifndef TETHER_DETAIL_HANDLER_LIST_HPP
#define TETHER_DETAIL_HANDLER_LIST_HPP

#include <tether/version.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

TETHER_NAMESPACE_BEGIN

/// Names one registered handler, for basic_reconnecting_client::remove_handler().
/// Ids are unique per client; the default value names no handler.
enum class handler_id : std::uint64_t {};

namespace detail {

template <class Signature> class handler_list;

template <class... Args> class handler_list<void(Args...)> {
public:
    using function = std::function<void(Args...)>;

    void add(handler_id id, function f) {
        if (f) entries_.push_back(std::make_unique<entry>(entry{id, std::move(f)}));
    }

    /// True when `id` was registered here (and is now removed).
    bool remove(handler_id id) noexcept {
        for (auto& e : entries_) {
            if (e->live && e->id == id) {
                e->live = false;
                stale_ = true;
                if (calls_ == 0) compact();
                return true;
            }
        }
        return false;
    }

    bool empty() const noexcept { return entries_.empty(); }

    /// Calls every live handler registered before this call began, in
    /// registration order. A handler's exception propagates (the rest are
    /// not called), as from a single handler.
    template <class... A> void operator()(A&&... args) {
        const std::size_t n = entries_.size();
        if (n == 0) return;
        struct call_scope {
            handler_list& l;
            explicit call_scope(handler_list& list) : l(list) { ++l.calls_; }
            ~call_scope() {
                if (--l.calls_ == 0 && l.stale_) l.compact();
            }
        } scope(*this);
        for (std::size_t i = 0; i < n; ++i) {
            entry* e = entries_[i].get(); // entries_ may grow, never shrinks, during a call
            if (e->live) e->f(args...);
        }
    }

private:
    struct entry {
        handler_id id;
        function f;
        bool live = true;
    };

    void compact() noexcept {
        entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                      [](const std::unique_ptr<entry>& e) { return !e->live; }),
                       entries_.end());
        stale_ = false;
    }

    std::vector<std::unique_ptr<entry>> entries_;
    unsigned calls_ = 0;
    bool stale_ = false;
};

} // namespace detail

TETHER_NAMESPACE_END

#endif
