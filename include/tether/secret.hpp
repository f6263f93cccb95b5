// tether: a string that never prints.
#ifndef TETHER_SECRET_HPP
#define TETHER_SECRET_HPP

#include <tether/detail/wipe.hpp>
#include <tether/version.hpp>

#include <ostream>
#include <string>
#include <string_view>
#include <utility>

TETHER_NAMESPACE_BEGIN

/// Holds a token or client secret. It has no implicit conversion to a string
/// and streams as "[redacted]", so it cannot end up in a log by accident; the
/// value is reachable only through the deliberately named `reveal()`.
/// The buffer is wiped on destruction and reassignment.
class secret {
public:
    secret() = default;
    explicit secret(std::string value) noexcept : value_(std::move(value)) {}
    secret(const secret&) = default;
    secret(secret&& other) noexcept : value_(std::move(other.value_)) { other.wipe(); }
    secret& operator=(const secret& other) {
        if (this != &other) {
            wipe();
            value_ = other.value_;
        }
        return *this;
    }
    secret& operator=(secret&& other) noexcept {
        if (this != &other) {
            wipe();
            value_ = std::move(other.value_);
            other.wipe();
        }
        return *this;
    }
    ~secret() { wipe(); }

    /// The plain value. Call only where it is sent to its intended peer.
    std::string_view reveal() const noexcept { return value_; }
    bool empty() const noexcept { return value_.empty(); }
    std::size_t size() const noexcept { return value_.size(); }

    friend bool operator==(const secret& a, const secret& b) noexcept {
        return a.value_ == b.value_;
    }
    friend bool operator!=(const secret& a, const secret& b) noexcept { return !(a == b); }
    friend std::ostream& operator<<(std::ostream& os, const secret&) { return os << "[redacted]"; }

private:
    void wipe() noexcept { detail::wipe(value_); }
    std::string value_;
};

TETHER_NAMESPACE_END

#endif
