// Test-only: a throw-away CA and server certificates, generated at test time
// with the OpenSSL API (no openssl binary needed).
#ifndef TETHER_TESTS_TOKEN_TEST_PKI_HPP
#define TETHER_TESTS_TOKEN_TEST_PKI_HPP

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

namespace tether_test {

struct key_and_cert {
    std::string key_pem;
    std::string cert_pem;
};

namespace pki_detail {

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_free {
    void operator()(X509* p) const { X509_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

inline void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test PKI: ") + what + " failed");
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

inline std::string to_pem(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
}

inline std::string to_pem(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
}

inline x509_ptr make_cert(EVP_PKEY* key, const char* cn, long serial) {
    x509_ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 24 * 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    return cert;
}

} // namespace pki_detail

/// A CA plus leaf certificates it signs; the CA is written to a temp file so
/// it can be handed to tls_options::ca_file.
class test_pki {
public:
    test_pki() {
        using namespace pki_detail;
        ca_key_.reset(EVP_EC_gen("P-256"));
        check(ca_key_ != nullptr, "EVP_EC_gen");
        ca_ = make_cert(ca_key_.get(), "tether test CA", 1);
        X509_set_issuer_name(ca_.get(), X509_get_subject_name(ca_.get()));
        add_ext(ca_.get(), ca_.get(), NID_basic_constraints, "critical,CA:TRUE");
        add_ext(ca_.get(), ca_.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(ca_.get(), ca_.get(), NID_subject_key_identifier, "hash");
        check(X509_sign(ca_.get(), ca_key_.get(), EVP_sha256()) > 0, "X509_sign CA");

        char dir[] = "/tmp/tether-test-pki-XXXXXX";
        check(mkdtemp(dir) != nullptr, "mkdtemp");
        dir_ = dir;
        ca_file_ = dir_ + "/ca.pem";
        std::ofstream(ca_file_) << pki_detail::to_pem(ca_.get());
    }
    ~test_pki() {
        for (const auto& f : files_)
            std::remove(f.c_str());
        std::remove(ca_file_.c_str());
        rmdir(dir_.c_str());
    }
    test_pki(const test_pki&) = delete;
    test_pki& operator=(const test_pki&) = delete;

    const std::string& ca_file() const { return ca_file_; }

    /// Writes a leaf to PEM files (for peers that load files); returns {cert, key}.
    std::pair<std::string, std::string> write(const key_and_cert& leaf) {
        const std::string stem = dir_ + "/leaf" + std::to_string(files_.size() / 2);
        files_.push_back(stem + ".crt");
        files_.push_back(stem + ".key");
        std::ofstream(files_[files_.size() - 2]) << leaf.cert_pem;
        std::ofstream(files_.back()) << leaf.key_pem;
        return {files_[files_.size() - 2], files_.back()};
    }

    /// A server certificate for `subject_alt_names` (e.g. "DNS:localhost,IP:127.0.0.1").
    key_and_cert issue(const char* subject_alt_names) {
        using namespace pki_detail;
        pkey_ptr key(EVP_EC_gen("P-256"));
        check(key != nullptr, "EVP_EC_gen");
        x509_ptr cert = make_cert(key.get(), "tether test server", ++serial_);
        X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_.get()));
        add_ext(cert.get(), ca_.get(), NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert.get(), ca_.get(), NID_key_usage, "critical,digitalSignature");
        add_ext(cert.get(), ca_.get(), NID_ext_key_usage, "serverAuth");
        add_ext(cert.get(), ca_.get(), NID_subject_alt_name, subject_alt_names);
        add_ext(cert.get(), ca_.get(), NID_authority_key_identifier, "keyid");
        check(X509_sign(cert.get(), ca_key_.get(), EVP_sha256()) > 0, "X509_sign leaf");
        return {to_pem(key.get()), to_pem(cert.get())};
    }

private:
    pki_detail::pkey_ptr ca_key_;
    pki_detail::x509_ptr ca_;
    std::string dir_;
    std::string ca_file_;
    std::vector<std::string> files_;
    long serial_ = 1;
};

} // namespace tether_test

#endif
