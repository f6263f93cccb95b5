// tether: delays written out as data.
#ifndef TETHER_BACKOFF_DELAY_TABLE_HPP
#define TETHER_BACKOFF_DELAY_TABLE_HPP

#include <tether/backoff/ladder.hpp>
#include <tether/error.hpp>

#include <initializer_list>
#include <stdexcept>
#include <vector>

TETHER_NAMESPACE_BEGIN

/// Step n of a ladder waits table[n]; past the end, the last entry repeats.
/// One table for every class, or one per class.
class delay_table {
public:
    using table = std::vector<std::chrono::milliseconds>;

    delay_table(std::initializer_list<std::chrono::milliseconds> all) : delay_table(table(all)) {}
    explicit delay_table(table all) : delay_table(all, all, all) {}
    delay_table(table network, table auth, table overload)
        : tables_{std::move(network), std::move(auth), std::move(overload)} {
        for (const auto& t : tables_) {
            if (t.empty()) throw detail::invalid_option("tether: delay_table: a table is empty");
            for (auto d : t)
                if (d.count() < 0)
                    throw detail::invalid_option(
                        "tether: delay_table: delays must not be negative");
        }
    }

    std::chrono::milliseconds next_delay(failure_class c) {
        const auto& t = tables_[static_cast<std::size_t>(c)];
        unsigned& step = steps_[c];
        const auto d = t[std::min<std::size_t>(step, t.size() - 1)];
        if (step < t.size()) ++step;
        return d;
    }
    void reset() noexcept { steps_.reset(); }

private:
    std::array<table, failure_class_count> tables_;
    detail::ladder_steps steps_;
};

TETHER_NAMESPACE_END

#endif
