// tether: TLS client settings and a verified net::ssl::context built from them.
//
// Shared by every TLS client in the library (the WebSocket transport, the
// HTTPS token client). Verification is on unless switched off by a name
// nobody types by accident. Usage:
//
//     tether::tls_options tls;
//     tls.ca_file = "/etc/my-ca.pem";             // or leave empty: system trust store
//     auto ctx = tether::make_tls_client_context(tls);   // throws on bad settings
//     net::ssl::stream<net::ip::tcp::socket> s(io, *ctx);
//     auto report = std::make_shared<tether::tls_handshake_report>();
//     tether::prepare_tls_client_stream(s, "api.example.com", tls, report);
//     s.async_handshake(...);  // on failure, report->describe() says why
#ifndef TETHER_TLS_OPTIONS_HPP
#define TETHER_TLS_OPTIONS_HPP

#include <tether/detail/net.hpp>
#include <tether/error.hpp>
#include <tether/version.hpp>

#if defined(TETHER_USE_BOOST_ASIO)
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/verify_context.hpp>
#else
#include <asio/ssl/context.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/ssl/verify_context.hpp>
#endif

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN

enum class tls_version : unsigned char { tls1_2, tls1_3 };

struct tls_options {
    /// Trust anchors. When all three are empty the system trust store is used.
    std::string ca_file; ///< PEM file with one or more CA certificates
    std::string ca_dir;  ///< directory of hashed CA certificates (c_rehash)
    std::string ca_pem;  ///< CA certificates as PEM text
    /// Also trust the system store when one of the above is set.
    bool also_use_system_trust_store = false;

    /// Client certificate for mutual TLS (both empty: none).
    std::string client_certificate_chain_file;
    std::string client_private_key_file;

    /// Oldest protocol version accepted.
    tls_version min_version = tls_version::tls1_2;

    /// Accept any certificate for any host name. This removes the protection
    /// TLS exists for: anyone on the path can read and change the traffic,
    /// including the bearer token. Only for throwaway test setups.
    bool insecure_skip_verify_i_know_what_i_am_doing = false;
};

namespace detail {

inline std::string openssl_reason(const std::error_code& ec) {
    std::string text = ec.message();
    return text.empty() ? std::string("unknown OpenSSL error") : text;
}

[[noreturn]] inline void throw_tls_setup_error(const std::string& what, const std::error_code& ec) {
    throw detail::invalid_option("tether: tls_options: " + what + ": " + openssl_reason(ec));
}

} // namespace detail

/// A client context that verifies peers: the configured trust anchors (or the
/// system store), TLS 1.2 or newer, no compression. Throws
/// std::system_error (error::invalid_option) naming the setting that could not be applied.
inline std::shared_ptr<net::ssl::context> make_tls_client_context(const tls_options& o) {
    auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
    detail::net_error_code ec;
    ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                         net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                         net::ssl::context::no_tlsv1_1 | net::ssl::context::no_compression,
                     ec);
    if (ec) detail::throw_tls_setup_error("cannot set context options", ec);
    const int min = o.min_version == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx->native_handle(), min) != 1)
        throw detail::invalid_option("tether: tls_options: cannot set the minimum TLS version");

    const bool custom = !o.ca_file.empty() || !o.ca_dir.empty() || !o.ca_pem.empty();
    if (!custom || o.also_use_system_trust_store) {
        ctx->set_default_verify_paths(ec);
        if (ec) detail::throw_tls_setup_error("cannot load the system trust store", ec);
    }
    if (!o.ca_file.empty()) {
        ctx->load_verify_file(o.ca_file, ec);
        if (ec) detail::throw_tls_setup_error("cannot load ca_file '" + o.ca_file + "'", ec);
    }
    if (!o.ca_dir.empty()) {
        ctx->add_verify_path(o.ca_dir, ec);
        if (ec) detail::throw_tls_setup_error("cannot use ca_dir '" + o.ca_dir + "'", ec);
    }
    if (!o.ca_pem.empty()) {
        ctx->add_certificate_authority(net::buffer(o.ca_pem), ec);
        if (ec) detail::throw_tls_setup_error("cannot parse ca_pem", ec);
    }
    if (o.client_certificate_chain_file.empty() != o.client_private_key_file.empty())
        throw detail::invalid_option("tether: tls_options: client_certificate_chain_file and "
                                     "client_private_key_file must be set together");
    if (!o.client_certificate_chain_file.empty()) {
        ctx->use_certificate_chain_file(o.client_certificate_chain_file, ec);
        if (ec)
            detail::throw_tls_setup_error("cannot load client_certificate_chain_file '" +
                                              o.client_certificate_chain_file + "'",
                                          ec);
        ctx->use_private_key_file(o.client_private_key_file, net::ssl::context::pem, ec);
        if (ec)
            detail::throw_tls_setup_error(
                "cannot load client_private_key_file '" + o.client_private_key_file + "'", ec);
    }
    ctx->set_verify_mode(o.insecure_skip_verify_i_know_what_i_am_doing ? net::ssl::verify_none
                                                                       : net::ssl::verify_peer);
    return ctx;
}

namespace detail {
inline bool same_tls_settings(const tls_options& a, const tls_options& b) {
    return a.ca_file == b.ca_file && a.ca_dir == b.ca_dir && a.ca_pem == b.ca_pem &&
           a.also_use_system_trust_store == b.also_use_system_trust_store &&
           a.client_certificate_chain_file == b.client_certificate_chain_file &&
           a.client_private_key_file == b.client_private_key_file &&
           a.min_version == b.min_version &&
           a.insecure_skip_verify_i_know_what_i_am_doing ==
               b.insecure_skip_verify_i_know_what_i_am_doing;
}
} // namespace detail

/// make_tls_client_context, shared: while one context made with equal
/// settings is alive, it is returned again. Loading the system trust store
/// costs about 0.9 MB and tens of milliseconds per context, and a client
/// owns its transport, so a thousand clients would load it a thousand times.
/// Sharing is safe because verification (mode, host name, report) is set on
/// each connection, never on the context. Files are read when the first
/// context for these settings is made.
inline std::shared_ptr<net::ssl::context> shared_tls_client_context(const tls_options& o) {
    static std::mutex mutex;
    static std::vector<std::pair<tls_options, std::weak_ptr<net::ssl::context>>> made;
    std::lock_guard<std::mutex> lock(mutex);
    for (auto it = made.begin(); it != made.end();) {
        auto ctx = it->second.lock();
        if (!ctx) {
            it = made.erase(it);
            continue;
        }
        if (detail::same_tls_settings(it->first, o)) return ctx;
        ++it;
    }
    auto ctx = make_tls_client_context(o);
    made.emplace_back(o, ctx);
    return ctx;
}

/// Why one TLS handshake failed, in words fit for a log (never a secret).
struct tls_handshake_report {
    std::string verify_failure; ///< certificate or host name problem; empty when none
    std::string alert;          ///< first fatal TLS alert sent or received
    std::string library_reason; ///< OpenSSL's reason when the handshake stopped

    bool verification_failed() const noexcept { return !verify_failure.empty(); }

    std::string describe() const {
        if (!verify_failure.empty()) return verify_failure;
        std::string out;
        if (!library_reason.empty()) out = library_reason;
        if (!alert.empty()) out += (out.empty() ? "" : "; ") + alert;
        return out;
    }
};

namespace detail {

/// The verify callback installed on every client stream: OpenSSL's chain
/// verification, then asio's host-name check, recording the first failure.
class recording_verifier {
public:
    recording_verifier(std::string host, std::shared_ptr<tls_handshake_report> report)
        : check_(host), host_(std::move(host)), report_(std::move(report)) {}

    bool operator()(bool preverified, net::ssl::verify_context& vc) const {
        X509_STORE_CTX* store = vc.native_handle();
        if (!preverified) {
            const int err = X509_STORE_CTX_get_error(store);
            record("certificate verification failed at depth " +
                   std::to_string(X509_STORE_CTX_get_error_depth(store)) + ": " +
                   X509_verify_cert_error_string(err) + subject_of(store));
            return false;
        }
        if (!check_(preverified, vc)) {
            record("certificate does not match host '" + host_ + "'" + subject_of(store));
            return false;
        }
        return true;
    }

private:
    static std::string subject_of(X509_STORE_CTX* store) {
        X509* cert = X509_STORE_CTX_get_current_cert(store);
        if (!cert) return {};
        char buf[256];
        if (!X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf)) return {};
        return std::string(" (subject ") + buf + ")";
    }
    void record(std::string text) const {
        if (report_ && report_->verify_failure.empty()) report_->verify_failure = std::move(text);
    }

    net::ssl::host_name_verification check_;
    std::string host_;
    std::shared_ptr<tls_handshake_report> report_;
};

/// Alerts and the failing reason come from OpenSSL's info callback, which has
/// no user pointer: the report rides in the SSL object's ex_data and is
/// released with it.
inline int tls_report_index() {
    static const int index = SSL_get_ex_new_index(
        0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
            delete static_cast<std::shared_ptr<tls_handshake_report>*>(ptr);
        });
    return index;
}

inline void tls_info_callback(const SSL* ssl, int where, int ret) {
    auto* holder = static_cast<std::shared_ptr<tls_handshake_report>*>(
        SSL_get_ex_data(ssl, tls_report_index()));
    if (!holder || !*holder) return;
    tls_handshake_report& report = **holder;
    if ((where & SSL_CB_ALERT) && report.alert.empty() &&
        std::string_view(SSL_alert_type_string(ret)) == "F") {
        report.alert = std::string((where & SSL_CB_READ) ? "received" : "sent") + " fatal alert '" +
                       SSL_alert_desc_string_long(ret) + "'";
    }
    if ((where & SSL_CB_EXIT) && ret <= 0 && report.library_reason.empty()) {
        // ERR_peek keeps the queue intact for asio, which reads it next
        if (const unsigned long e = ERR_peek_last_error())
            if (const char* reason = ERR_reason_error_string(e)) report.library_reason = reason;
    }
}

} // namespace detail

/// Prepares one client stream for a handshake with `host` (the name from the
/// URL, without IPv6 brackets): peer and host-name verification unless
/// switched off, failure recording into `report`, then SNI for host names
/// (never for IP literals, RFC 6066). Verification is installed first, so it
/// is in place whatever happens to SNI. Returns false when OpenSSL refuses the
/// SNI name; the caller must then fail the connection (a server choosing its
/// certificate by SNI would otherwise answer for some other name).
template <class SslStream>
bool prepare_tls_client_stream(SslStream& stream, const std::string& host, const tls_options& o,
                               std::shared_ptr<tls_handshake_report> report) {
    SSL* ssl = stream.native_handle();
    if (report) {
        const int index = detail::tls_report_index();
        delete static_cast<std::shared_ptr<tls_handshake_report>*>(SSL_get_ex_data(ssl, index));
        SSL_set_ex_data(ssl, index, new std::shared_ptr<tls_handshake_report>(report));
        SSL_set_info_callback(ssl, &detail::tls_info_callback);
    }
    if (o.insecure_skip_verify_i_know_what_i_am_doing) {
        stream.set_verify_mode(net::ssl::verify_none);
    } else {
        stream.set_verify_mode(net::ssl::verify_peer);
        stream.set_verify_callback(detail::recording_verifier(host, std::move(report)));
    }
    detail::net_error_code ec;
    net::ip::make_address(host, ec);
    const bool is_ip_literal = !ec;
    if (is_ip_literal) return true;
    return SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
}

TETHER_NAMESPACE_END

#endif
