// Benchmarks: the load generator, a websocketpp server in a forked child
// process (its own core, its own memory and CPU accounting), on 127.0.0.1.
//
// Modes:
//  - stream: every connection gets `count` text messages of `size` bytes.
//    The frames are built once and written straight to the socket in whole
//    frames, about 64 KiB per write, one write in flight (a bounded queue), so
//    the server is never the bottleneck (docs: BENCHMARKING.md). After each
//    stream it reports "sent <n> <cpu_ns> <wall_ns>".
//  - idle: accepts and holds connections.
//  - seed: the seed's service. A token endpoint (/oauth/token) issues tokens;
//    every upgrade needs `Authorization: Bearer <issued, unexpired token>`
//    (else HTTP 401). Command 'x' expires the tokens of the open sockets on
//    /seed paths and closes those sockets with 4001 "Token expired @<ns>", the
//    CLOCK_MONOTONIC time the close was started (so the client can time the
//    reconnect from the moment the close frame left).
//
// Commands from the parent on a pipe: 'x' (above), 's' (reply with a stats
// line), 'q' (exit). The child exits too when the pipe closes.
#ifndef TETHER_TESTS_BENCHMARKS_BENCH_SERVER_HPP
#define TETHER_TESTS_BENCHMARKS_BENCH_SERVER_HPP

#include "bench_support.hpp"

#include "../token/local_token_endpoint.hpp"

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/write.hpp>

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <poll.h>
#include <set>
#include <string>
#include <sys/wait.h>

namespace bench {

struct server_config {
    enum class mode { stream, idle, seed } what = mode::idle;
    std::size_t size = 64; // stream
    std::size_t count = 0; // stream
};

/// One WebSocket text frame from a server (unmasked), `size` bytes of payload.
inline std::string text_frame(std::size_t size) {
    std::string f;
    f.push_back(static_cast<char>(0x81)); // FIN + text
    if (size < 126) {
        f.push_back(static_cast<char>(size));
    } else if (size <= 0xFFFF) {
        f.push_back(static_cast<char>(126));
        f.push_back(static_cast<char>((size >> 8) & 0xFF));
        f.push_back(static_cast<char>(size & 0xFF));
    } else {
        f.push_back(static_cast<char>(127));
        for (int shift = 56; shift >= 0; shift -= 8)
            f.push_back(static_cast<char>((size >> shift) & 0xFF));
    }
    for (std::size_t i = 0; i < size; ++i)
        f.push_back(static_cast<char>('a' + i % 26));
    return f;
}

class server_child {
    using wspp_server = websocketpp::server<websocketpp::config::asio>;

public:
    server_child(const server_config& cfg, int cmd_fd, int res_fd)
        : cfg_(cfg), cmd_(io_, cmd_fd), res_fd_(res_fd) {
        srv_.clear_access_channels(websocketpp::log::alevel::all);
        srv_.clear_error_channels(websocketpp::log::elevel::all);
        srv_.init_asio(&io_);
        srv_.set_reuse_addr(true);
        srv_.set_listen_backlog(4096);
        if (cfg_.what == server_config::mode::stream) {
            const std::string frame = text_frame(cfg_.size);
            const std::size_t per_write = std::max<std::size_t>(1, 65536 / frame.size());
            frames_per_write_ = per_write;
            frame_size_ = frame.size();
            for (std::size_t i = 0; i < per_write; ++i)
                batch_ += frame;
        }
        if (cfg_.what == server_config::mode::seed) {
            tokens_ = std::make_unique<tether_test::local_token_endpoint>(
                [this](const tether_test::received_request&, std::size_t n) {
                    const std::string tok =
                        "bench-" + std::to_string(n) + "-" + std::to_string(mono_ns());
                    {
                        std::lock_guard<std::mutex> lock(valid_mutex_);
                        valid_.insert(tok);
                    }
                    return tether_test::respond(200, tether_test::token_json(tok, "3600"));
                });
            srv_.set_validate_handler(
                [this](websocketpp::connection_hdl h) { return validate(h); });
        }
        srv_.set_open_handler([this](websocketpp::connection_hdl h) { on_open(h); });
        srv_.set_close_handler([this](websocketpp::connection_hdl h) { forget(h); });
        srv_.set_fail_handler([this](websocketpp::connection_hdl h) { forget(h); });
        srv_.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        srv_.start_accept();
    }

    int run() {
        std::error_code ec;
        const auto ep = srv_.get_local_endpoint(ec);
        if (ec) die("server: no local endpoint: " + ec.message());
        reply("ready " + std::to_string(ep.port()) + " " +
              std::to_string(tokens_ ? tokens_->port() : 0));
        read_command();
        io_.run();
        return 0;
    }

private:
    struct stream_state {
        wspp_server::connection_ptr con;
        std::size_t left = 0;
        std::int64_t cpu0 = 0, t0 = 0;
    };

    void reply(const std::string& line) {
        const std::string l = line + "\n";
        if (write(res_fd_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) std::_Exit(3);
    }

    void read_command() {
        cmd_.async_read_some(asio::buffer(&cmd_byte_, 1), [this](std::error_code ec, std::size_t) {
            if (ec) return io_.stop(); // the parent is gone
            switch (cmd_byte_) {
            case 'x': expire_seed_sockets(); break;
            case 's': reply(stats()); break;
            case 'q': io_.stop(); return;
            default: break;
            }
            read_command();
        });
    }

    std::string stats() {
        return "stats token_requests=" + std::to_string(tokens_ ? tokens_->requests() : 0) +
               " handshakes=" + std::to_string(handshakes_) +
               " rejected=" + std::to_string(rejected_) + " opened=" + std::to_string(opened_) +
               " open=" + std::to_string(open_.size()) +
               " closed_4001=" + std::to_string(closed_4001_) +
               " close_spread_ns=" + std::to_string(close_spread_ns_);
    }

    static std::string bearer(const std::string& authorization) {
        const std::string prefix = "Bearer ";
        if (authorization.compare(0, prefix.size(), prefix) != 0) return {};
        return authorization.substr(prefix.size());
    }

    bool validate(websocketpp::connection_hdl h) {
        ++handshakes_;
        auto con = srv_.get_con_from_hdl(h);
        const std::string tok = bearer(con->get_request_header("Authorization"));
        bool ok = false;
        {
            std::lock_guard<std::mutex> lock(valid_mutex_);
            ok = !tok.empty() && valid_.count(tok) != 0;
        }
        if (!ok) {
            ++rejected_;
            con->set_status(websocketpp::http::status_code::unauthorized);
            con->set_body(R"({"error": "unauthorized", "message": "Token expired"})");
        }
        return ok;
    }

    void on_open(websocketpp::connection_hdl h) {
        ++opened_;
        auto con = srv_.get_con_from_hdl(h);
        open_[h] = bearer(con->get_request_header("Authorization"));
        if (cfg_.what == server_config::mode::stream) {
            std::error_code ec;
            con->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
            auto st = std::make_shared<stream_state>();
            st->con = con;
            st->left = cfg_.count;
            st->cpu0 = process_cpu_ns();
            st->t0 = mono_ns();
            write_more(st);
        }
        if (pending_expire_ && con->get_resource().rfind("/seed", 0) == 0) expire_seed_sockets();
    }

    void write_more(const std::shared_ptr<stream_state>& st) {
        if (st->left == 0) {
            reply("sent " + std::to_string(cfg_.count) + " " +
                  std::to_string(process_cpu_ns() - st->cpu0) + " " +
                  std::to_string(mono_ns() - st->t0));
            return;
        }
        const std::size_t n = std::min(st->left, frames_per_write_);
        st->left -= n;
        asio::async_write(st->con->get_raw_socket(), asio::buffer(batch_.data(), n * frame_size_),
                          [this, st](std::error_code ec, std::size_t) {
                              if (ec) return reply("sent-failed " + ec.message());
                              write_more(st);
                          });
    }

    void forget(websocketpp::connection_hdl h) { open_.erase(h); }

    void expire_seed_sockets() {
        std::vector<std::pair<websocketpp::connection_hdl, std::string>> victims;
        for (const auto& entry : open_) {
            auto con = srv_.get_con_from_hdl(entry.first);
            if (con->get_state() == websocketpp::session::state::open &&
                con->get_resource().rfind("/seed", 0) == 0)
                victims.push_back(entry);
        }
        if (victims.empty()) {
            pending_expire_ = true; // the socket's open handler has not run yet
            return;
        }
        pending_expire_ = false;
        {
            std::lock_guard<std::mutex> lock(valid_mutex_);
            for (const auto& v : victims)
                valid_.erase(v.second);
        }
        const std::int64_t first = mono_ns();
        for (const auto& v : victims) {
            std::error_code ec;
            srv_.close(v.first, 4001, "Token expired @" + std::to_string(mono_ns()), ec);
            if (!ec) ++closed_4001_;
        }
        close_spread_ns_ = mono_ns() - first;
    }

    server_config cfg_;
    asio::io_context io_;
    wspp_server srv_;
    asio::posix::stream_descriptor cmd_;
    int res_fd_;
    char cmd_byte_ = 0;

    std::string batch_;
    std::size_t frames_per_write_ = 1, frame_size_ = 0;

    std::unique_ptr<tether_test::local_token_endpoint> tokens_;
    std::mutex valid_mutex_;
    std::set<std::string> valid_;
    std::map<websocketpp::connection_hdl, std::string, std::owner_less<websocketpp::connection_hdl>>
        open_;
    bool pending_expire_ = false;
    std::size_t handshakes_ = 0, rejected_ = 0, opened_ = 0, closed_4001_ = 0;
    std::int64_t close_spread_ns_ = 0;
};

/// The parent's handle on the forked server. Fork it before any thread or
/// io_context exists in the parent.
class server_process {
public:
    explicit server_process(const server_config& cfg) {
        int cmd[2], res[2];
        if (pipe(cmd) != 0 || pipe(res) != 0) die("pipe() failed");
        std::fflush(stdout);
        pid_ = fork();
        if (pid_ < 0) die("fork() failed");
        if (pid_ == 0) {
            close(cmd[1]);
            close(res[0]);
            try {
                server_child child(cfg, cmd[0], res[1]);
                child.run();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "tether bench: FAILED: server: %s\n", e.what());
                std::_Exit(2);
            }
            std::_Exit(0);
        }
        close(cmd[0]);
        close(res[1]);
        cmd_fd_ = cmd[1];
        res_fd_ = res[0];
        const std::string ready = read_line(20000);
        unsigned ws = 0, tok = 0;
        if (std::sscanf(ready.c_str(), "ready %u %u", &ws, &tok) != 2 || ws == 0)
            die("server did not start (said '" + ready + "')");
        ws_port_ = static_cast<unsigned short>(ws);
        token_port_ = static_cast<unsigned short>(tok);
    }
    ~server_process() { quit(); }
    server_process(const server_process&) = delete;
    server_process& operator=(const server_process&) = delete;

    unsigned short ws_port() const { return ws_port_; }
    unsigned short token_port() const { return token_port_; }
    std::string ws_url(const std::string& path) const {
        return "ws://127.0.0.1:" + std::to_string(ws_port_) + path;
    }

    /// The command pipe's write end; a peer program inherits it (no
    /// FD_CLOEXEC) and may send 'x' itself (tether_bench_beast reconnect).
    int command_fd() const { return cmd_fd_; }

    void command(char c) {
        if (write(cmd_fd_, &c, 1) != 1) die("server command pipe broken");
    }

    /// One reply line, or a loud failure after `timeout_ms`.
    std::string read_line(int timeout_ms) {
        std::string line;
        for (;;) {
            const auto nl = buf_.find('\n');
            if (nl != std::string::npos) {
                line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return line;
            }
            pollfd p{res_fd_, POLLIN, 0};
            const int r = poll(&p, 1, timeout_ms);
            if (r <= 0)
                die("no answer from the server within " + std::to_string(timeout_ms) + " ms");
            char tmp[512];
            const ssize_t n = read(res_fd_, tmp, sizeof tmp);
            if (n <= 0) die("the server process died");
            buf_.append(tmp, static_cast<std::size_t>(n));
        }
    }

    /// "stats a=1 b=2": value of `key`.
    static std::int64_t field(const std::string& line, const std::string& key) {
        const auto at = line.find(" " + key + "=");
        if (at == std::string::npos) die("no '" + key + "' in server line '" + line + "'");
        return std::stoll(line.substr(at + key.size() + 2));
    }
    std::string stats() {
        command('s');
        return read_line(10000);
    }

    /// The server goes first, so TIME_WAIT stays on its side and the
    /// client's ephemeral ports are free for the next run.
    void quit() {
        if (pid_ <= 0) return;
        const char q = 'q';
        (void)!write(cmd_fd_, &q, 1); // the child may be gone already: waitpid tells
        close(cmd_fd_);
        int status = 0;
        waitpid(pid_, &status, 0);
        close(res_fd_);
        pid_ = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("the server process failed");
    }

private:
    pid_t pid_ = 0;
    int cmd_fd_ = -1, res_fd_ = -1;
    std::string buf_;
    unsigned short ws_port_ = 0, token_port_ = 0;
};

} // namespace bench

#endif
