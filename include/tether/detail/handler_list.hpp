// The subscribers of one client event. Touched only on the client's executor
// (or before the client runs), so there is no lock; what makes it safe is
// that a handler may add or remove handlers, itself included, while the list
// is being called:
// - an entry lives in its own node and nodes never move, so adding never
//   moves the function that is running;
// - removing only marks the entry; the list is compacted when no call is
//   under way;
// - a handler added during a call is not called by that call.
//
// A singly linked list headed by one pointer: a client has nine of these and
// most stay empty, so an empty list is a null pointer (a vector of nodes cost
// 32 bytes, plus its own buffer once used). The call depth and the "removed
// entries wait" flag live in the first entry: a call needs a first entry,
// and it is never unlinked while a call is under way (compact() waits), so
// the entry that counted a call is the one that uncounts it.
#ifndef TETHER_DETAIL_HANDLER_LIST_HPP
#define TETHER_DETAIL_HANDLER_LIST_HPP

#include <tether/version.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

TETHER_NAMESPACE_BEGIN

/// Names one registered handler, for basic_reconnecting_client::remove_handler().
/// Ids are unique per client; the default value names no handler.
enum class handler_id : std::uint64_t {};

namespace detail {

template <class Signature> class handler_list;

template <class... Args> class handler_list<void(Args...)> {
public:
    using function = std::function<void(Args...)>;

    handler_list() = default;
    handler_list(const handler_list&) = delete;
    handler_list& operator=(const handler_list&) = delete;
    ~handler_list() {
        // iteratively: a long list must not recurse through unique_ptr destructors
        std::unique_ptr<entry> e = std::move(head_);
        while (e)
            e = std::move(e->next);
    }

    void add(handler_id id, function f) {
        if (!f) return;
        std::unique_ptr<entry>* tail = &head_;
        while (*tail)
            tail = &(*tail)->next;
        *tail = std::make_unique<entry>(id, std::move(f));
    }

    /// True when `id` was registered here (and is now removed).
    bool remove(handler_id id) noexcept {
        for (entry* e = head_.get(); e; e = e->next.get()) {
            if (e->live && e->id == id) {
                e->live = false;
                head_->stale = true;
                if (head_->calls == 0) compact();
                return true;
            }
        }
        return false;
    }

    bool empty() const noexcept { return !head_; }

    /// Calls every live handler registered before this call began, in
    /// registration order. A handler's exception propagates (the rest are
    /// not called), as from a single handler.
    template <class... A> void operator()(A&&... args) {
        if (!head_) return;
        // The last entry now: entries appended by a handler come after it.
        entry* last = head_.get();
        while (last->next)
            last = last->next.get();
        struct call_scope {
            handler_list& l;
            entry& first;
            explicit call_scope(handler_list& list) : l(list), first(*list.head_) { ++first.calls; }
            ~call_scope() {
                if (--first.calls == 0 && first.stale) l.compact();
            }
        } scope(*this);
        // No entry is unlinked during a call (compact() waits), so `e` and
        // `last` stay valid.
        for (entry* e = head_.get();; e = e->next.get()) {
            if (e->live) e->f(args...);
            if (e == last) break;
        }
    }

private:
    struct entry {
        entry(handler_id i, function fn) : id(i), f(std::move(fn)) {}
        std::unique_ptr<entry> next;
        handler_id id;
        function f;
        bool live = true;
        // first entry only (see the top): calls under way, and whether an
        // entry was removed during them
        bool stale = false;
        unsigned calls = 0;
    };

    // Only when no call is under way: every entry's calls and stale are then
    // clear, so whichever becomes first starts clean.
    void compact() noexcept {
        if (head_) head_->stale = false;
        std::unique_ptr<entry>* link = &head_;
        while (*link) {
            if ((*link)->live)
                link = &(*link)->next;
            else
                *link = std::move((*link)->next); // frees the removed entry
        }
    }

    std::unique_ptr<entry> head_;
};

} // namespace detail

TETHER_NAMESPACE_END

#endif
