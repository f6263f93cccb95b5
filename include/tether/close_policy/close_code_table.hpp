// tether: close codes and ranges mapped to actions, as data.
#ifndef TETHER_CLOSE_POLICY_CLOSE_CODE_TABLE_HPP
#define TETHER_CLOSE_POLICY_CLOSE_CODE_TABLE_HPP

#include <tether/close_policy/default_close_policy.hpp>
#include <tether/error.hpp>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN

/// One row: close codes [first, last] lead to `action` on ladder `cls`.
struct close_code_rule {
    std::uint16_t first;
    std::uint16_t last;
    close_action action;
    failure_class cls = failure_class::network;

    close_code_rule(std::uint16_t code, close_action a, failure_class c = failure_class::network)
        : first(code), last(code), action(a), cls(c) {}
    close_code_rule(std::uint16_t from, std::uint16_t to, close_action a,
                    failure_class c = failure_class::network)
        : first(from), last(to), action(a), cls(c) {}
};

/// A ClosePolicy whose close-code decisions are a table; the first matching
/// row wins. Everything the table does not match (other codes, HTTP statuses,
/// transport errors) goes to Fallback. The seed's service, for example:
///
///     tether::close_code_table<> policy{
///         {4001, tether::close_action::refresh_token_then_reconnect}, // token expired
///         {4000, 4499, tether::close_action::reconnect},
///         {4500, 4999, tether::close_action::stop},
///     };
template <class Fallback = default_close_policy> class close_code_table {
public:
    close_code_table(std::initializer_list<close_code_rule> rules, Fallback fallback = Fallback())
        : close_code_table(std::vector<close_code_rule>(rules), std::move(fallback)) {}

    /// Rules built at run time (from a configuration file or command line).
    explicit close_code_table(std::vector<close_code_rule> rules, Fallback fallback = Fallback())
        : rules_(std::move(rules)), fallback_(std::move(fallback)) {
        for (const auto& r : rules_) {
            if (r.first > r.last)
                throw detail::invalid_option("tether: close_code_table: range " +
                                             std::to_string(r.first) + "-" +
                                             std::to_string(r.last) + " is empty");
            if (r.first < 1000 || r.last > 4999)
                throw detail::invalid_option(
                    "tether: close_code_table: close codes are 1000-4999, got " +
                    std::to_string(r.first) + "-" + std::to_string(r.last));
        }
    }

    reconnect_decision decide(const close_event& ev) {
        if (ev.http_status == 0 && ev.code != close_code::none) {
            for (const auto& r : rules_) {
                if (ev.code < r.first || ev.code > r.last) continue;
                switch (r.action) {
                case close_action::stop: return reconnect_decision::stop(error::stop_close_code);
                case close_action::refresh_token_then_reconnect:
                    return reconnect_decision::refresh_token();
                case close_action::reconnect: return reconnect_decision::reconnect(r.cls);
                }
            }
        }
        return fallback_.decide(ev);
    }

    const std::vector<close_code_rule>& rules() const noexcept { return rules_; }
    Fallback& fallback() noexcept { return fallback_; }

private:
    std::vector<close_code_rule> rules_;
    Fallback fallback_;
};

TETHER_NAMESPACE_END

#endif
