// tether: TLS client verification on OpenSSL's own handles (SSL*), for any
// Asio flavour.
//
// tls_options.hpp builds the SSL_CTX (trust anchors, versions, client
// certificate, verify mode) through standalone Asio's ssl::context, and
// prepare_tls_client_stream() sets up each stream through standalone Asio's
// stream API. A stream of another Asio (Boost.Asio, for the Beast transport)
// cannot take that verify callback, whose signature names standalone Asio's
// verify_context. So the per-connection part is done here once more, but on
// the SSL* itself, with the same policy and the same report:
//
// - the chain is verified against the context's store (SSL_VERIFY_PEER);
// - the host name or IP literal is checked by OpenSSL during chain
//   verification (X509_VERIFY_PARAM host / IP, the same X509_check_host /
//   X509_check_ip_asc calls, with the same flags, that Asio's
//   host_name_verification makes);
// - failures are recorded into the same tls_handshake_report, in the same
//   words, and alerts through the same info callback;
// - SNI is sent for host names, never for IP literals (RFC 6066).
//
// The SSL_CTX itself is shared, not rebuilt: see adopt_ssl_ctx() in the Beast
// transport, which wraps the very SSL_CTX shared_tls_client_context() made.
#ifndef TETHER_DETAIL_TLS_NATIVE_HPP
#define TETHER_DETAIL_TLS_NATIVE_HPP

#include <tether/tls_options.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <string>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// The host name a stream verifies, for the failure text (the verify callback
/// has no user pointer; it rides in the SSL object and is freed with it).
inline int tls_native_host_index() {
    static const int index = SSL_get_ex_new_index(
        0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
            delete static_cast<std::string*>(ptr);
        });
    return index;
}

inline std::string tls_native_subject_of(X509_STORE_CTX* store) {
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    if (!cert) return {};
    char buf[256];
    if (!X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf)) return {};
    return std::string(" (subject ") + buf + ")";
}

/// OpenSSL's verify callback: keeps OpenSSL's verdict, records the first failure.
inline int tls_native_verify_callback(int preverified, X509_STORE_CTX* store) {
    if (preverified) return 1;
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    if (!ssl) return 0;
    auto* holder = static_cast<std::shared_ptr<tls_handshake_report>*>(
        SSL_get_ex_data(ssl, tls_report_index()));
    if (!holder || !*holder || !(*holder)->verify_failure.empty()) return 0;
    const int err = X509_STORE_CTX_get_error(store);
    if (err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        const auto* host =
            static_cast<const std::string*>(SSL_get_ex_data(ssl, tls_native_host_index()));
        (*holder)->verify_failure = "certificate does not match host '" +
                                    (host ? *host : std::string()) + "'" +
                                    tls_native_subject_of(store);
    } else {
        (*holder)->verify_failure = "certificate verification failed at depth " +
                                    std::to_string(X509_STORE_CTX_get_error_depth(store)) + ": " +
                                    X509_verify_cert_error_string(err) +
                                    tls_native_subject_of(store);
    }
    return 0;
}

/// prepare_tls_client_stream() for a bare SSL*: verification of the peer and
/// of `host` (without IPv6 brackets) unless switched off, the report, SNI for
/// host names. False when OpenSSL refuses the name (then fail the connection).
inline bool prepare_native_tls_client(SSL* ssl, const std::string& host, const tls_options& o,
                                      std::shared_ptr<tls_handshake_report> report) {
    if (report) {
        const int index = tls_report_index();
        delete static_cast<std::shared_ptr<tls_handshake_report>*>(SSL_get_ex_data(ssl, index));
        SSL_set_ex_data(ssl, index, new std::shared_ptr<tls_handshake_report>(std::move(report)));
        SSL_set_info_callback(ssl, &tls_info_callback);
    }
    // an IP literal parses as one here; anything else is a host name
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const bool is_ip_literal = X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
    if (o.insecure_skip_verify_i_know_what_i_am_doing) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    } else {
        const int index = tls_native_host_index();
        delete static_cast<std::string*>(SSL_get_ex_data(ssl, index));
        SSL_set_ex_data(ssl, index, new std::string(host));
        if (!is_ip_literal) {
            // flags 0, as Asio's host_name_verification passes to X509_check_host
            X509_VERIFY_PARAM_set_hostflags(param, 0);
            if (X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) != 1) return false;
        }
        SSL_set_verify(ssl, SSL_VERIFY_PEER, &tls_native_verify_callback);
    }
    if (is_ip_literal) return true;
    return SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
}

} // namespace detail
TETHER_NAMESPACE_END

#endif
