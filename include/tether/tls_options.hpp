// tether: TLS settings for outgoing connections, verified by default.
//
// NOTE for the lead: written on the `token` branch as a minimal stand-in,
// because the transport branch's version was not on main yet. Reconcile with
// the transport's header of the same path; the token code uses only
// tls_options{ca_file, ca_path, use_system_store,
// insecure_skip_verification}, make_tls_client_context() and
// configure_tls_client_stream().
#ifndef TETHER_TLS_OPTIONS_HPP
#define TETHER_TLS_OPTIONS_HPP

#include <tether/version.hpp>

#include <asio/ip/address.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/ssl/verify_mode.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdexcept>
#include <string>
#include <system_error>

TETHER_NAMESPACE_BEGIN

struct tls_options {
    /// PEM file of trusted CAs, in addition to (or instead of) the system store.
    std::string ca_file;
    /// Directory of hashed CA certificates (c_rehash layout).
    std::string ca_path;
    /// Trust the operating system's CA store.
    bool use_system_store = true;
    /// Turns off certificate AND host name verification: anyone on the path
    /// can read the credentials. Only for throw-away test setups.
    bool insecure_skip_verification = false;
};

/// A client context: TLS 1.2 or newer, peer verification on, trust anchors
/// from `opts`. Throws std::runtime_error naming the file that failed to load.
inline asio::ssl::context make_tls_client_context(const tls_options& opts) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    std::error_code ec;
    if (opts.use_system_store) {
        ctx.set_default_verify_paths(ec);
        if (ec) throw std::runtime_error("tether: cannot load the system CA store: " + ec.message());
    }
    if (!opts.ca_file.empty()) {
        ctx.load_verify_file(opts.ca_file, ec);
        if (ec)
            throw std::runtime_error("tether: cannot load CA file '" + opts.ca_file +
                                     "': " + ec.message());
    }
    if (!opts.ca_path.empty()) {
        ctx.add_verify_path(opts.ca_path, ec);
        if (ec)
            throw std::runtime_error("tether: cannot use CA directory '" + opts.ca_path +
                                     "': " + ec.message());
    }
    ctx.set_verify_mode(opts.insecure_skip_verification ? asio::ssl::verify_none
                                                        : asio::ssl::verify_peer);
    return ctx;
}

/// Per connection: SNI (host names only; RFC 6066 forbids IP literals there)
/// and verification of the certificate against `host`.
template <class NextLayer>
std::error_code configure_tls_client_stream(asio::ssl::stream<NextLayer>& stream,
                                            const std::string& host, const tls_options& opts) {
    std::error_code ec;
    asio::ip::make_address(host, ec);
    const bool is_ip_literal = !ec;
    ec.clear();
    if (!is_ip_literal && !SSL_set_tlsext_host_name(stream.native_handle(), host.c_str()))
        return std::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
    if (opts.insecure_skip_verification) {
        stream.set_verify_mode(asio::ssl::verify_none, ec);
        return ec;
    }
    // OpenSSL's own check names the failure ("hostname mismatch"); Asio's
    // callback is the same rule, kept as a second line of defence.
    const int set = is_ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(stream.native_handle()),
                                                                  host.c_str())
                                  : SSL_set1_host(stream.native_handle(), host.c_str());
    if (set != 1)
        return std::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
    stream.set_verify_mode(asio::ssl::verify_peer, ec);
    if (!ec) stream.set_verify_callback(asio::ssl::host_name_verification(host), ec);
    return ec;
}

TETHER_NAMESPACE_END

#endif
