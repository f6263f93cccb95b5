// tether: HTTP proxies (CONNECT tunnels): where the proxy is, its Basic
// credentials, which hosts bypass it, and the curl-style environment.
//
// Only http:// proxies: the connection to the proxy is plain TCP, and
// everything the library sends through it travels in a CONNECT tunnel to
// the origin (for wss:// and https://, TLS to the origin inside the tunnel,
// verified against the origin's name, never the proxy's).
//
// The library uses a proxy only when given one (proxy_options is empty by
// default); proxy_options::from_environment() reads the usual variables for
// programs that want to honour them (tether-cli does).
//
//     auto p = tether::proxy_options::from_url("http://user:pass@proxy.corp:3128");
//     p.no_proxy = tether::no_proxy_list("localhost,.internal.corp");
//     transport_options.proxy = p;  // and oauth2_options::proxy, genesys::rest_options::proxy
#ifndef TETHER_PROXY_HPP
#define TETHER_PROXY_HPP

#include <tether/detail/ascii.hpp>
#include <tether/detail/url.hpp>
#include <tether/error.hpp>
#include <tether/secret.hpp>
#include <tether/version.hpp>

#include <tether/detail/net.hpp>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN

/// One HTTP proxy: where it is, and the Basic credentials it wants (none
/// when `username` is empty). Streams without its credentials.
struct proxy_server {
    std::string host;       ///< lower case; an IPv6 literal without brackets
    std::uint16_t port = 0; ///< 80 when the URL names none
    secret username;        ///< Basic auth user (empty: no Proxy-Authorization)
    secret password;

    bool has_credentials() const noexcept { return !username.empty(); }
    /// "host:port" ("[::1]:3128"): what logs and errors show. Never credentials.
    std::string authority() const { return detail::format_authority(host, port, 0); }

    friend std::ostream& operator<<(std::ostream& os, const proxy_server& p) {
        os << "http://";
        if (p.has_credentials()) os << "[redacted]@";
        return os << p.authority();
    }
};

namespace detail {

inline int hex_digit_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// Percent-decodes URL user information; false on a broken %XX.
inline bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out.push_back(in[i]);
            continue;
        }
        if (i + 2 >= in.size()) return false;
        const int hi = hex_digit_value(in[i + 1]);
        const int lo = hex_digit_value(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return true;
}

/// Parses a proxy URL: `http://[user[:password]@]host[:port][/]`. A URL
/// without a scheme is taken as http:// (as curl does with environment
/// variables). On failure returns nothing and says why in `why`, which
/// never quotes the URL (it may hold a password).
inline std::optional<proxy_server> parse_proxy_url(std::string_view url, std::string& why) {
    if (url.empty()) {
        why = "the proxy URL is empty";
        return std::nullopt;
    }
    if (url_has_forbidden_char(url)) {
        why = "the proxy URL contains white space, a control character or a non-ASCII byte";
        return std::nullopt;
    }
    std::string_view rest = url;
    const auto sep = url.find("://");
    if (sep != std::string_view::npos) {
        const auto scheme = url.substr(0, sep);
        if (!iequals(scheme, "http")) {
            why = "unsupported proxy scheme '" + std::string(scheme.substr(0, 16)) +
                  "': only http:// proxies are supported (the tunnel carries TLS to the origin)";
            return std::nullopt;
        }
        rest = url.substr(sep + 3);
    }
    const auto end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    if (end != std::string_view::npos && rest.substr(end) != "/") {
        why = "a proxy URL has no path, query or fragment (expected http://host:port)";
        return std::nullopt;
    }
    proxy_server out;
    const auto at = authority.rfind('@');
    if (at != std::string_view::npos) {
        const auto info = authority.substr(0, at);
        authority = authority.substr(at + 1);
        const auto colon = info.find(':');
        std::string user, pass;
        if (!percent_decode(info.substr(0, colon), user) ||
            (colon != std::string_view::npos && !percent_decode(info.substr(colon + 1), pass))) {
            detail::wipe(user);
            detail::wipe(pass);
            why = "invalid percent-encoding in the proxy URL's user information";
            return std::nullopt;
        }
        if (user.empty() || user.find(':') != std::string::npos || !is_safe_header_value(user) ||
            !is_safe_header_value(pass)) {
            detail::wipe(user);
            detail::wipe(pass);
            why = "the proxy URL's user name is empty, contains ':' or a control character";
            return std::nullopt;
        }
        out.username = secret(std::move(user));
        out.password = secret(std::move(pass));
    }
    auto a = parse_authority(authority, 80, why);
    if (!a) {
        why = "proxy URL: " + why;
        return std::nullopt;
    }
    out.host = std::move(a->host);
    out.port = a->port;
    return out;
}

/// IPv4 or IPv6 literal (brackets allowed) as an address.
inline std::optional<net::ip::address> parse_ip_literal(std::string_view s) {
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
    if (s.empty() || s.size() > 64) return std::nullopt;
    detail::net_error_code ec;
    auto a = net::ip::make_address(std::string(s), ec);
    if (ec) return std::nullopt;
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        return net::ip::address(net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()));
    return a;
}

/// True when the first `bits` bits of a and b agree (same family).
inline bool same_prefix(const net::ip::address& a, const net::ip::address& b,
                        unsigned bits) noexcept {
    if (a.is_v4() != b.is_v4()) return false;
    unsigned char x[16] = {}, y[16] = {};
    std::size_t n = 0;
    if (a.is_v4()) {
        const auto p = a.to_v4().to_bytes(), q = b.to_v4().to_bytes();
        for (n = 0; n < 4; ++n) {
            x[n] = p[n];
            y[n] = q[n];
        }
    } else {
        const auto p = a.to_v6().to_bytes(), q = b.to_v6().to_bytes();
        for (n = 0; n < 16; ++n) {
            x[n] = p[n];
            y[n] = q[n];
        }
    }
    if (bits > n * 8) return false;
    for (std::size_t i = 0; bits > 0; ++i) {
        const unsigned take = bits >= 8 ? 8 : bits;
        const auto mask = static_cast<unsigned char>(0xff << (8 - take));
        if ((x[i] & mask) != (y[i] & mask)) return false;
        bits -= take;
    }
    return true;
}

} // namespace detail

/// Hosts that bypass the proxy, in the format of the no_proxy variable:
/// comma-separated (white space around entries ignored), case-insensitive.
///
/// | entry                        | matches                                          |
/// |------------------------------|--------------------------------------------------|
/// | `*`                          | every host                                       |
/// | `example.com`, `.example.com`, `*.example.com` | example.com and every name under it |
/// | `example.com:8443`           | the same names, on port 8443 only                |
/// | `10.1.2.3`, `[::1]`, `::1`   | that address written as a literal (also `:port`) |
/// | `10.0.0.0/8`, `fd00::/8`     | address literals in that range                   |
///
/// Names are not resolved: `127.0.0.1` does not match `localhost`.
class no_proxy_list {
public:
    no_proxy_list() = default;
    /// Parses a no_proxy value. Entries that mean nothing (a bad port, a bad
    /// range) are ignored, as curl does, never an error.
    explicit no_proxy_list(std::string_view value) {
        std::size_t i = 0;
        while (i <= value.size()) {
            auto comma = value.find(',', i);
            if (comma == std::string_view::npos) comma = value.size();
            add(value.substr(i, comma - i));
            i = comma + 1;
        }
    }

    /// True when `host` (a name or an IP literal, brackets optional) on
    /// `port` must be reached directly.
    bool matches(std::string_view host, std::uint16_t port) const {
        if (all_) return true;
        if (!host.empty() && host.back() == '.') host.remove_suffix(1);
        std::string h;
        for (char c : host)
            h += detail::ascii_lower(c);
        const auto ip = detail::parse_ip_literal(h);
        for (const auto& e : entries_) {
            if (e.port != 0 && e.port != port) continue;
            if (e.ip) {
                if (ip && detail::same_prefix(*ip, *e.ip, e.prefix_bits)) return true;
                continue;
            }
            if (ip) continue;
            if (h == e.name) return true;
            if (h.size() > e.name.size() &&
                h.compare(h.size() - e.name.size(), e.name.size(), e.name) == 0 &&
                h[h.size() - e.name.size() - 1] == '.')
                return true;
        }
        return false;
    }

    bool empty() const noexcept { return !all_ && entries_.empty(); }
    bool bypasses_everything() const noexcept { return all_; }
    /// The entries as understood (normalised), comma-separated.
    const std::string& text() const noexcept { return text_; }

private:
    struct entry {
        std::string name; // a host name suffix (no leading dot)
        std::optional<net::ip::address> ip;
        unsigned prefix_bits = 0; // for ip: 32/128 unless a range
        std::uint16_t port = 0;   // 0: any port
    };

    static bool parse_port(std::string_view s, std::uint16_t& out) {
        if (s.empty() || s.size() > 5) return false;
        unsigned v = 0;
        for (char c : s) {
            if (c < '0' || c > '9') return false;
            v = v * 10 + static_cast<unsigned>(c - '0');
        }
        if (v == 0 || v > 65535) return false;
        out = static_cast<std::uint16_t>(v);
        return true;
    }

    void add(std::string_view raw) {
        while (!raw.empty() && (raw.front() == ' ' || raw.front() == '\t'))
            raw.remove_prefix(1);
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t'))
            raw.remove_suffix(1);
        if (raw.empty()) return;
        std::string s;
        for (char c : raw)
            s += detail::ascii_lower(c);
        if (s == "*") {
            all_ = true;
            note("*");
            return;
        }
        entry e;
        std::string_view v = s;
        // the port: "[v6]:p", "v4:p", "name:p"; a bare IPv6 literal has several colons
        if (!v.empty() && v.front() == '[') {
            const auto close = v.find(']');
            if (close == std::string_view::npos) return;
            const auto after = v.substr(close + 1);
            if (!after.empty() && (after.front() != ':' || !parse_port(after.substr(1), e.port)))
                return;
            v = v.substr(1, close - 1);
        } else if (v.find(':') == v.rfind(':') && v.find(':') != std::string_view::npos) {
            const auto colon = v.find(':');
            if (!parse_port(v.substr(colon + 1), e.port)) return;
            v = v.substr(0, colon);
        }
        const auto slash = v.find('/');
        if (slash != std::string_view::npos) {
            const auto a = detail::parse_ip_literal(v.substr(0, slash));
            if (!a) return;
            unsigned bits = 0;
            const auto b = v.substr(slash + 1);
            if (b.empty() || b.size() > 3) return;
            for (char c : b) {
                if (c < '0' || c > '9') return;
                bits = bits * 10 + static_cast<unsigned>(c - '0');
            }
            if (bits > (a->is_v4() ? 32u : 128u)) return;
            e.ip = a;
            e.prefix_bits = bits;
        } else if (const auto a = detail::parse_ip_literal(v)) {
            e.ip = a;
            e.prefix_bits = a->is_v4() ? 32 : 128;
        } else {
            if (v.size() >= 2 && v.substr(0, 2) == "*.") v.remove_prefix(2);
            while (!v.empty() && v.front() == '.')
                v.remove_prefix(1);
            if (!v.empty() && v.back() == '.') v.remove_suffix(1);
            if (v.empty()) return;
            e.name = std::string(v);
        }
        note(s);
        entries_.push_back(std::move(e));
    }

    void note(const std::string& s) {
        if (!text_.empty()) text_ += ',';
        text_ += s;
    }

    std::vector<entry> entries_;
    bool all_ = false;
    std::string text_;
};

/// Proxy configuration of one transport or HTTP client. Empty (the default)
/// means direct connections. Streams with credentials redacted.
struct proxy_options {
    /// For wss:// and https:// origins (https_proxy).
    std::optional<proxy_server> https;
    /// For ws:// and http:// origins (http_proxy).
    std::optional<proxy_server> http;
    /// Origins reached directly even when a proxy is set.
    no_proxy_list no_proxy;

    /// One proxy for every origin. Throws std::system_error (error::invalid_option) (the URL is
    /// never quoted: it may hold a password).
    static proxy_options from_url(std::string_view url, std::string_view no_proxy = {}) {
        proxy_options o;
        o.https = parse_or_throw(url, "proxy URL");
        o.http = o.https;
        o.no_proxy = no_proxy_list(no_proxy);
        return o;
    }

    /// What curl and most tools read: https_proxy (then HTTPS_PROXY) for
    /// TLS origins, http_proxy (then HTTP_PROXY) for plain ones, no_proxy
    /// (then NO_PROXY). Empty variables count as unset. Throws
    /// std::system_error (error::invalid_option) naming the variable for a bad proxy URL.
    static proxy_options from_environment() {
        return from_environment([](const char* name) { return std::getenv(name); });
    }
    /// The same with another source of variables (for tests).
    static proxy_options
    from_environment(const std::function<const char*(const char*)>& getenv_fn) {
        const auto get = [&](const char* lower, const char* upper,
                             const char*& which) -> std::string_view {
            for (const char* name : {lower, upper}) {
                const char* v = getenv_fn(name);
                if (v && *v) {
                    which = name;
                    return v;
                }
            }
            return {};
        };
        proxy_options o;
        const char* which = nullptr;
        if (const auto v = get("https_proxy", "HTTPS_PROXY", which); !v.empty())
            o.https = parse_or_throw(v, which);
        if (const auto v = get("http_proxy", "HTTP_PROXY", which); !v.empty())
            o.http = parse_or_throw(v, which);
        o.no_proxy = no_proxy_list(get("no_proxy", "NO_PROXY", which));
        return o;
    }

    bool enabled() const noexcept { return https || http; }

    /// True when an origin `host`:`port` is reached directly (no_proxy).
    bool bypass(std::string_view host, std::uint16_t port) const {
        return no_proxy.matches(host, port);
    }

    /// The proxy for an origin, or nullptr for a direct connection.
    const proxy_server* select(bool tls, std::string_view host, std::uint16_t port) const {
        const auto& p = tls ? https : http;
        if (!p || bypass(host, port)) return nullptr;
        return &*p;
    }

    friend std::ostream& operator<<(std::ostream& os, const proxy_options& o) {
        os << "proxy_options{https=";
        if (o.https)
            os << *o.https;
        else
            os << "none";
        os << ", http=";
        if (o.http)
            os << *o.http;
        else
            os << "none";
        return os << ", no_proxy=" << o.no_proxy.text() << "}";
    }

    /// Throws std::system_error (error::invalid_option) for a proxy_server filled in by hand with
    /// an empty host, port 0, or a user name HTTP Basic cannot carry. `owner`
    /// names the options in the message.
    void validate(const std::string& owner) const {
        for (const auto* p : {&https, &http}) {
            if (!*p) continue;
            const proxy_server& s = **p;
            const auto fail = [&](const char* why) {
                throw detail::invalid_option("tether: " + owner + "::proxy: " + why);
            };
            if (s.host.empty()) fail("the proxy host is empty");
            if (s.port == 0) fail("the proxy port is 0");
            if (s.host.find_first_of(" \t\r\n/@") != std::string::npos)
                fail("the proxy host contains a character that is not allowed");
            if (s.username.reveal().find(':') != std::string_view::npos ||
                !detail::is_safe_header_value(s.username.reveal()) ||
                !detail::is_safe_header_value(s.password.reveal()))
                fail("the proxy user name contains ':' or a control character");
            if (s.username.empty() && !s.password.empty())
                fail("a proxy password without a user name");
        }
    }

    std::string to_string() const {
        std::ostringstream s;
        s << *this;
        return s.str();
    }

private:
    static proxy_server parse_or_throw(std::string_view url, const char* what) {
        std::string why;
        auto p = detail::parse_proxy_url(url, why);
        if (!p) throw detail::invalid_option(std::string("tether: ") + what + ": " + why);
        return std::move(*p);
    }
};

TETHER_NAMESPACE_END

#endif
