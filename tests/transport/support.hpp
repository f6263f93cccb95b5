// Test helpers for the transport tests: a throwaway PKI made with the OpenSSL
// API, a bounded child process (the Python peer), and a loop runner.
#ifndef TETHER_TESTS_TRANSPORT_SUPPORT_HPP
#define TETHER_TESTS_TRANSPORT_SUPPORT_HPP

#include <asio/io_context.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace test_support {

/// Runs `io` until `done()` or `limit` passes; false on timeout. Any Asio
/// flavour's io_context (standalone or Boost).
template <class IoContext, class Pred>
bool run_until(IoContext& io, Pred done,
               std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        if (io.stopped()) io.restart();
        if (io.run_one_for(std::chrono::milliseconds(20)) == 0 && io.stopped()) {
            // no work at all: nothing can change until time passes
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    return true;
}

/// Runs `io` for `d` of wall time (to show that something does NOT happen).
template <class IoContext> void run_for(IoContext& io, std::chrono::milliseconds d) {
    run_until(
        io, [] { return false; }, d);
}

class temp_dir {
public:
    temp_dir() {
        std::string templ =
            (std::filesystem::temp_directory_path() / "tether-test-XXXXXX").string();
        if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
        path_ = templ;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::string write(const std::string& name, const std::string& content) const {
        const auto p = path_ / name;
        std::ofstream(p, std::ios::binary) << content;
        return p.string();
    }

private:
    std::filesystem::path path_;
};

// ---- a throwaway PKI ---------------------------------------------------------

struct key_deleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct cert_deleter {
    void operator()(X509* c) const { X509_free(c); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, key_deleter>;
using cert_ptr = std::unique_ptr<X509, cert_deleter>;

struct issued {
    std::string cert_pem;
    std::string key_pem;
};

inline void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

inline key_ptr new_key() {
    key_ptr k(EVP_EC_gen("P-256"));
    check(k != nullptr, "EVP_EC_gen");
    return k;
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

/// A certificate for `key`; self-signed when issuer is null. Validity in
/// seconds relative to now (negative: in the past).
inline cert_ptr make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key,
                          long not_before, long not_after, bool is_ca, const std::string& san,
                          long serial) {
    cert_ptr c(X509_new());
    X509_set_version(c.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
    X509_gmtime_adj(X509_getm_notBefore(c.get()), not_before);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), not_after);
    X509_set_pubkey(c.get(), key);
    X509_NAME* name = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("tether tests"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509* signer = issuer ? issuer : c.get();
    if (is_ca) {
        add_ext(c.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(c.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(c.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(c.get(), signer, NID_key_usage, "critical,digitalSignature");
        add_ext(c.get(), signer, NID_ext_key_usage, "serverAuth");
    }
    add_ext(c.get(), signer, NID_subject_key_identifier, "hash");
    if (!san.empty()) add_ext(c.get(), signer, NID_subject_alt_name, san.c_str());
    check(X509_sign(c.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
    return c;
}

inline std::string to_pem(X509* c) {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, c);
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
}
inline std::string to_pem(EVP_PKEY* k) {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
}

/// A CA and server certificates signed by it (good, wrong name, expired),
/// plus a self-signed one; all generated now, written as PEM into `dir`.
struct test_pki {
    std::string ca_pem;
    std::string ca_file;
    issued good;       ///< localhost + 127.0.0.1, valid
    issued wrong_name; ///< wrong.example only
    issued expired;    ///< localhost + 127.0.0.1, expired yesterday
    issued self_signed;

    explicit test_pki(const temp_dir& dir) {
        const long day = 86400;
        const auto ca_key = new_key();
        const auto ca = make_cert(ca_key.get(), "tether test CA", nullptr, nullptr, -day, 30 * day,
                                  true, "", 1);
        ca_pem = to_pem(ca.get());
        ca_file = dir.write("ca.pem", ca_pem);
        const auto leaf = [&](const std::string& cn, const std::string& san, long nb, long na,
                              long serial) {
            const auto k = new_key();
            const auto c =
                make_cert(k.get(), cn, ca.get(), ca_key.get(), nb, na, false, san, serial);
            return issued{to_pem(c.get()), to_pem(k.get())};
        };
        good = leaf("localhost", "DNS:localhost,IP:127.0.0.1", -day, 30 * day, 2);
        wrong_name = leaf("wrong.example", "DNS:wrong.example", -day, 30 * day, 3);
        expired = leaf("localhost", "DNS:localhost,IP:127.0.0.1", -10 * day, -day, 4);
        const auto sk = new_key();
        const auto sc = make_cert(sk.get(), "localhost", nullptr, nullptr, -day, 30 * day, false,
                                  "DNS:localhost,IP:127.0.0.1", 5);
        self_signed = issued{to_pem(sc.get()), to_pem(sk.get())};
    }
};

// ---- a bounded child process -------------------------------------------------

/// A child process with its stdout on a pipe. Killed (SIGKILL) and reaped on
/// destruction, so a failing test never leaves it behind.
class child_process {
public:
    explicit child_process(const std::vector<std::string>& argv) {
        int fds[2];
        if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
        posix_spawn_file_actions_addclose(&actions, fds[0]);
        posix_spawn_file_actions_addclose(&actions, fds[1]);
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        close(fds[1]);
        out_ = fds[0];
        if (rc != 0) {
            close(out_);
            throw std::runtime_error("posix_spawn " + argv[0] + " failed");
        }
    }
    ~child_process() {
        kill(pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
        close(out_);
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    /// One line of the child's stdout, or nothing after `limit`.
    std::optional<std::string> read_line(std::chrono::milliseconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            const auto nl = buffer_.find('\n');
            if (nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return line;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd p{out_, POLLIN, 0};
            if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char buf[256];
            const ssize_t n = read(out_, buf, sizeof buf);
            if (n <= 0) return std::nullopt;
            buffer_.append(buf, static_cast<std::size_t>(n));
        }
    }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string buffer_;
};

} // namespace test_support

#endif
