// A real HTTP proxy for the proxy tests: Debian's tinyproxy (package
// tinyproxy-bin, listed in .ci/deps), started on 127.0.0.1 with a generated
// configuration (a free port, `Allow 127.0.0.1`, the CONNECT ports the test
// names, Basic auth when asked) and stopped by the destructor. A missing
// tinyproxy is a test failure with a clear message, never a skip.
#ifndef TETHER_TESTS_TINYPROXY_FIXTURE_HPP
#define TETHER_TESTS_TINYPROXY_FIXTURE_HPP

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace test_proxy {

/// A port on 127.0.0.1 nothing listens on (bound, then released).
inline std::uint16_t unused_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

/// Where tinyproxy is, or "" (PATH, then the Debian locations).
inline std::string find_tinyproxy() {
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH")) {
        std::stringstream s(path);
        std::string d;
        while (std::getline(s, d, ':'))
            if (!d.empty()) dirs.push_back(d);
    }
    dirs.push_back("/usr/bin");
    dirs.push_back("/usr/sbin");
    for (const auto& d : dirs) {
        const std::string p = d + "/tinyproxy";
        if (access(p.c_str(), X_OK) == 0) return p;
    }
    return {};
}

class tinyproxy {
public:
    struct config {
        std::vector<std::uint16_t> connect_ports; ///< CONNECT allowed only to these
        std::string user, password;               ///< BasicAuth when user is not empty
    };

    explicit tinyproxy(const config& c) {
        const std::string exe = find_tinyproxy();
        if (exe.empty())
            throw std::runtime_error(
                "tinyproxy not found: the proxy tests need it (Debian: apt-get install "
                "tinyproxy-bin; it is in .ci/deps)");
        std::string templ =
            (std::filesystem::temp_directory_path() / "tether-proxy-XXXXXX").string();
        if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
        dir_ = templ;
        log_ = (dir_ / "tinyproxy.log").string();
        port_ = unused_port();
        std::ofstream conf(dir_ / "tinyproxy.conf");
        conf << "Port " << port_ << "\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\n"
             << "MaxClients 50\nLogLevel Connect\nLogFile \"" << log_ << "\"\n";
        for (auto p : c.connect_ports)
            conf << "ConnectPort " << p << "\n";
        if (!c.user.empty()) conf << "BasicAuth " << c.user << " " << c.password << "\n";
        conf.close();

        const std::string conf_path = (dir_ / "tinyproxy.conf").string();
        std::vector<std::string> args = {exe, "-d", "-c", conf_path};
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
        const int rc = posix_spawn(&pid_, exe.c_str(), &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) throw std::runtime_error("cannot start tinyproxy");
        // ready when it accepts (bounded)
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            asio::io_context io;
            asio::ip::tcp::socket s(io);
            std::error_code ec;
            s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
            if (!ec) break;
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("tinyproxy exited at start-up; its log: " + log());
            }
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("tinyproxy did not listen within 10 s");
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        // the probe connection above is logged as a connection, not a request
    }

    ~tinyproxy() {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            int status = 0;
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
            while (waitpid(pid_, &status, WNOHANG) != pid_) {
                if (std::chrono::steady_clock::now() > deadline) {
                    kill(pid_, SIGKILL);
                    waitpid(pid_, &status, 0);
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        }
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    tinyproxy(const tinyproxy&) = delete;
    tinyproxy& operator=(const tinyproxy&) = delete;

    std::uint16_t port() const { return port_; }
    /// http://[user:password@]127.0.0.1:port
    std::string url(const std::string& user = {}, const std::string& password = {}) const {
        std::string u = "http://";
        if (!user.empty()) u += user + ":" + password + "@";
        return u + "127.0.0.1:" + std::to_string(port_);
    }

    /// CONNECT requests the proxy has logged so far.
    int connect_requests() const {
        int n = 0;
        std::ifstream in(log_);
        std::string line;
        while (std::getline(in, line))
            if (line.find("Request (file descriptor") != std::string::npos &&
                line.find("CONNECT ") != std::string::npos)
                ++n;
        return n;
    }

    std::string log() const {
        std::ifstream in(log_);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

private:
    std::filesystem::path dir_;
    std::string log_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

} // namespace test_proxy

#endif
