// tether: the min-heap of connections by next wake-up behind each transport's
// one deadline timer per io_context (websocketpp_transport, beast_transport).
// Intrusive: an element keeps its own index (`queue_index`, `not_queued` when
// out), so taking one out of the middle is O(log n). No I/O.
#ifndef TETHER_DETAIL_WAKE_HEAP_HPP
#define TETHER_DETAIL_WAKE_HEAP_HPP

#include <tether/version.hpp>

#include <cstdint>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// T has `std::uint32_t queue_index` (not_queued while out) and `wake_at()`.
template <class T> class wake_heap {
public:
    static constexpr std::uint32_t not_queued = ~std::uint32_t(0);

    bool empty() const noexcept { return heap_.empty(); }
    T* front() const noexcept { return heap_.front(); }

    /// Queues t at its wake-up time (again, after it changed).
    void place(T& t) {
        if (t.queue_index == not_queued) {
            t.queue_index = static_cast<std::uint32_t>(heap_.size());
            heap_.push_back(&t);
        }
        sift_down(sift_up(t.queue_index));
    }
    void remove(T& t) noexcept {
        if (t.queue_index == not_queued) return;
        const std::uint32_t i = t.queue_index;
        t.queue_index = not_queued;
        T* last = heap_.back();
        heap_.pop_back();
        if (i == heap_.size()) return; // it was the last
        heap_[i] = last;
        last->queue_index = i;
        sift_down(sift_up(i));
    }

private:
    bool earlier(std::uint32_t a, std::uint32_t b) const noexcept {
        return heap_[a]->wake_at() < heap_[b]->wake_at();
    }
    void swap_entries(std::uint32_t a, std::uint32_t b) noexcept {
        std::swap(heap_[a], heap_[b]);
        heap_[a]->queue_index = a;
        heap_[b]->queue_index = b;
    }
    std::uint32_t sift_up(std::uint32_t i) noexcept {
        while (i > 0 && earlier(i, (i - 1) / 2)) {
            swap_entries(i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
        return i;
    }
    void sift_down(std::uint32_t i) noexcept {
        const auto n = static_cast<std::uint32_t>(heap_.size());
        for (;;) {
            std::uint32_t least = i;
            const std::uint32_t l = 2 * i + 1, r = l + 1;
            if (l < n && earlier(l, least)) least = l;
            if (r < n && earlier(r, least)) least = r;
            if (least == i) return;
            swap_entries(i, least);
            i = least;
        }
    }

    std::vector<T*> heap_;
};

} // namespace detail
TETHER_NAMESPACE_END

#endif
