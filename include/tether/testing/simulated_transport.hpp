// tether::testing: an in-memory Transport and a scriptable server, on virtual time.
#ifndef TETHER_TESTING_SIMULATED_TRANSPORT_HPP
#define TETHER_TESTING_SIMULATED_TRANSPORT_HPP

#include <tether/close_event.hpp>
#include <tether/connect_request.hpp>
#include <tether/message.hpp>
#include <tether/testing/simulation.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

TETHER_NAMESPACE_BEGIN
namespace testing {

/// What the simulated server does with one handshake.
struct server_response {
    enum class kind { accept, reject, fail, stall };
    kind what = kind::accept;
    // reject
    int status = 0;
    std::optional<std::chrono::milliseconds> retry_after;
    std::string body;
    // fail
    std::error_code error;
    std::string detail;
    // accept: things the server does by itself later
    std::optional<std::chrono::nanoseconds> close_after;
    std::uint16_t close_code = close_code::normal;
    std::string close_reason;
    std::optional<std::chrono::nanoseconds> drop_after;
    std::string subprotocol;

    static server_response accept() { return {}; }
    static server_response reject(int status,
                                  std::optional<std::chrono::milliseconds> retry_after = {}) {
        server_response r;
        r.what = kind::reject;
        r.status = status;
        r.retry_after = retry_after;
        return r;
    }
    static server_response fail(std::error_code ec, std::string detail = {}) {
        server_response r;
        r.what = kind::fail;
        r.error = ec;
        r.detail = std::move(detail);
        return r;
    }
    /// Never answers; the transport's handshake timeout ends the attempt.
    static server_response stall() {
        server_response r;
        r.what = kind::stall;
        return r;
    }
    /// Accept, then close with `code` after `d`.
    server_response& then_close(std::chrono::nanoseconds d, std::uint16_t code,
                                std::string reason = {}) {
        close_after = d;
        close_code = code;
        close_reason = std::move(reason);
        return *this;
    }
    /// Accept, then vanish after `d` without a close frame.
    server_response& then_drop(std::chrono::nanoseconds d) {
        drop_after = d;
        return *this;
    }
};

/// A handshake as the server saw it.
struct server_handshake {
    connection_id id;
    std::string url;
    secret token;
    std::vector<http_header> headers;
    std::vector<std::string> subprotocols;
    std::uint64_t attempt;
    virtual_clock::time_point at;
};

/// A message the client sent, as the server received it.
struct server_received {
    connection_id id;
    std::string data;
    message_kind kind;
};

class simulated_transport;

/// The far end. Script it with `on_handshake`; act on live connections with
/// send(), close() and drop(); read what happened from `handshakes`,
/// `received` and the counters. Default: accept everything.
class simulated_server {
public:
    std::function<server_response(const server_handshake&)> on_handshake;
    /// When false, the server ignores a client's close frame (the transport's
    /// close timeout then ends the connection).
    bool answers_close = true;

    std::vector<server_handshake> handshakes;
    std::vector<server_received> received;
    std::size_t accepted = 0;
    std::size_t rejected = 0;

    /// Connections currently open, oldest first.
    std::vector<connection_id> open_connections() const {
        std::vector<connection_id> ids;
        for (const auto& c : live_)
            if (c.second) ids.push_back(c.first);
        return ids;
    }
    bool is_open(connection_id id) const {
        auto it = live_.find(id);
        return it != live_.end() && it->second;
    }

    inline void send(connection_id id, std::string data, message_kind kind = message_kind::text);
    inline void close(connection_id id, std::uint16_t code, std::string reason = {});
    inline void drop(connection_id id);

    /// Sends to / closes the newest open connection (no-op when none).
    void send(std::string data) {
        if (auto id = newest()) send(*id, std::move(data));
    }
    void close(std::uint16_t code, std::string reason = {}) {
        if (auto id = newest()) close(*id, code, std::move(reason));
    }
    void drop() {
        if (auto id = newest()) drop(*id);
    }
    std::optional<connection_id> newest() const {
        for (auto it = live_.rbegin(); it != live_.rend(); ++it)
            if (it->second) return it->first;
        return std::nullopt;
    }

private:
    friend class simulated_transport;
    server_response answer(const server_handshake& h) {
        handshakes.push_back(h);
        return on_handshake ? on_handshake(h) : server_response::accept();
    }
    // Shared with the transports, so either side may be destroyed first.
    struct registry {
        std::map<connection_id, simulated_transport*> owners;
        std::map<connection_id, bool> live; // id -> open
        connection_id next_id = 0;          // ids are unique per server
    };
    std::shared_ptr<registry> reg_ = std::make_shared<registry>();
    std::map<connection_id, simulated_transport*>& owners_ = reg_->owners;
    std::map<connection_id, bool>& live_ = reg_->live;
};

/// Implements the Transport concept in memory, on a simulation's virtual clock.
class simulated_transport {
public:
    using executor_type = simulation::executor_type;
    using clock_type = virtual_clock;
    using timer_type = simulation::timer;

    struct options {
        std::chrono::nanoseconds latency = std::chrono::milliseconds(1); ///< one way
        std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(10);
        std::chrono::nanoseconds close_timeout = std::chrono::seconds(5);
        /// RFC 6455 lets an endpoint that sent a close frame go on receiving
        /// data until the peer's close arrives; websocketpp drops such frames.
        /// true models websocketpp (the transport tether ships).
        bool drops_data_after_close = true;
    };

    simulated_transport(simulation& sim, simulated_server& server)
        : simulated_transport(sim, server, options{}) {}
    simulated_transport(simulation& sim, simulated_server& server, options o)
        : sim_(&sim), server_(&server), reg_(server.reg_), opts_(o),
          alive_(std::make_shared<bool>(true)) {}
    simulated_transport(simulated_transport&& o) noexcept
        : sim_(o.sim_), server_(o.server_), reg_(o.reg_), opts_(o.opts_),
          alive_(std::move(o.alive_)), conns_(std::move(o.conns_)) {
        for (auto& c : conns_)
            reg_->owners[c.first] = this;
        o.alive_ = std::make_shared<bool>(false);
    }
    simulated_transport& operator=(simulated_transport&&) = delete;
    ~simulated_transport() {
        *alive_ = false;
        for (auto& c : conns_) {
            reg_->owners.erase(c.first);
            reg_->live.erase(c.first);
        }
    }

    executor_type get_executor() noexcept { return sim_->get_executor(); }
    clock_type::time_point now() const noexcept { return sim_->now(); }
    timer_type make_timer() { return sim_->make_timer(); }

    template <class Sink> connection_id connect(const connect_request& req, Sink& sink) {
        const connection_id id = ++reg_->next_id;
        conn& c = conns_[id];
        c.on_open = [&sink, id](const open_info& i) { sink.on_transport_open(id, i); };
        c.on_message = [&sink, id](const message_view& m) { sink.on_transport_message(id, m); };
        c.on_close = [&sink, id](close_event&& e) { sink.on_transport_close(id, std::move(e)); };
        reg_->owners[id] = this;
        server_handshake h{id,          req.url,    req.token, req.headers, req.subprotocols,
                           req.attempt, sim_->now()};
        ++connects_;
        later(opts_.latency, [this, id, h = std::move(h)] { handshake(id, h); });
        c.timeout = later(opts_.handshake_timeout, [this, id] {
            auto it = conns_.find(id);
            if (it == conns_.end() || it->second.state != phase::handshaking) return;
            close_event ev;
            ev.error = make_error_code(error::handshake_timeout);
            finish(id, std::move(ev));
        });
        return id;
    }

    std::error_code send(connection_id id, std::string_view data, message_kind kind) {
        auto it = conns_.find(id);
        if (it == conns_.end() || it->second.state != phase::open)
            return std::make_error_code(std::errc::not_connected);
        ++sent_;
        it->second.in_flight += data.size();
        later(opts_.latency, [this, id, d = std::string(data), kind] {
            auto c = conns_.find(id);
            if (c != conns_.end()) c->second.in_flight -= d.size();
            if (server_->is_open(id)) server_->received.push_back({id, d, kind});
        });
        return {};
    }

    /// Bytes sent on `id` that have not reached the server yet (the latency).
    std::size_t buffered_amount(connection_id id) const {
        auto it = conns_.find(id);
        return it == conns_.end() ? 0 : it->second.in_flight;
    }

    void close(connection_id id, std::uint16_t code, std::string_view reason) {
        auto it = conns_.find(id);
        if (it == conns_.end()) return;
        conn& c = it->second;
        if (c.state == phase::handshaking) {
            // abandon the handshake: the attempt ends now
            close_event ev;
            ev.initiated_locally = true;
            ev.error = detail::net_error(net::error::operation_aborted);
            post_finish(id, std::move(ev));
            c.state = phase::closing;
            return;
        }
        if (c.state != phase::open) return;
        c.state = phase::closing;
        ++client_closes_;
        if (server_->answers_close) {
            later(2 * opts_.latency, [this, id, code, r = std::string(reason)] {
                close_event ev;
                ev.code = code;
                ev.reason = r;
                ev.was_open = true;
                ev.initiated_locally = true;
                finish(id, std::move(ev));
            });
        } else {
            later(opts_.close_timeout, [this, id] {
                close_event ev;
                ev.was_open = true;
                ev.initiated_locally = true;
                ev.error = detail::net_error(net::error::timed_out);
                finish(id, std::move(ev));
            });
        }
    }

    // observation
    std::size_t connects() const noexcept { return connects_; }
    std::size_t messages_sent() const noexcept { return sent_; }
    std::size_t client_closes() const noexcept { return client_closes_; }
    std::size_t live_connections() const noexcept { return conns_.size(); }
    const options& get_options() const noexcept { return opts_; }

private:
    friend class simulated_server;
    enum class phase { handshaking, open, closing };
    struct conn {
        phase state = phase::handshaking;
        std::function<void(const open_info&)> on_open;
        std::function<void(const message_view&)> on_message;
        std::function<void(close_event&&)> on_close;
        std::shared_ptr<simulation::timer> timeout;
        std::size_t in_flight = 0; // bytes sent, not yet at the server
        conn() = default;
        conn(const conn&) = delete;
    };

    std::shared_ptr<simulation::timer> later(std::chrono::nanoseconds d, std::function<void()> f) {
        auto t = std::make_shared<simulation::timer>(*sim_);
        t->expires_after(d);
        t->async_wait(
            [alive = std::weak_ptr<bool>(alive_), f = std::move(f), t](std::error_code ec) {
                auto a = alive.lock();
                if (!ec && a && *a) f();
            });
        return t;
    }
    void post_finish(connection_id id, close_event&& ev) {
        net::post(sim_->context(),
                  [this, alive = std::weak_ptr<bool>(alive_), id, ev = std::move(ev)]() mutable {
                      auto a = alive.lock();
                      if (a && *a) finish(id, std::move(ev));
                  });
    }

    void handshake(connection_id id, const server_handshake& h) {
        auto it = conns_.find(id);
        if (it == conns_.end() || it->second.state != phase::handshaking) return;
        server_response r = server_->answer(h);
        switch (r.what) {
        case server_response::kind::stall: return;
        case server_response::kind::fail: {
            close_event ev;
            ev.error = r.error;
            ev.detail = r.detail;
            later(opts_.latency, [this, id, ev]() mutable { finish(id, std::move(ev)); });
            it->second.state = phase::closing;
            return;
        }
        case server_response::kind::reject: {
            ++server_->rejected;
            close_event ev;
            ev.http_status = r.status;
            ev.retry_after = r.retry_after;
            ev.body_excerpt = r.body.substr(0, 512);
            it->second.state = phase::closing;
            later(opts_.latency, [this, id, ev]() mutable { finish(id, std::move(ev)); });
            return;
        }
        case server_response::kind::accept: break;
        }
        ++server_->accepted;
        reg_->live[id] = true;
        later(opts_.latency, [this, id, r] {
            auto it2 = conns_.find(id);
            if (it2 == conns_.end() || it2->second.state != phase::handshaking) return;
            it2->second.state = phase::open;
            if (it2->second.timeout) it2->second.timeout->cancel();
            open_info info{r.subprotocol};
            it2->second.on_open(info);
            if (r.close_after)
                later(*r.close_after, [this, id, code = r.close_code, reason = r.close_reason] {
                    server_->close(id, code, reason);
                });
            if (r.drop_after) later(*r.drop_after, [this, id] { server_->drop(id); });
        });
    }

    void finish(connection_id id, close_event&& ev) {
        auto it = conns_.find(id);
        if (it == conns_.end()) return;
        auto on_close = std::move(it->second.on_close);
        if (it->second.timeout) it->second.timeout->cancel();
        conns_.erase(it);
        reg_->owners.erase(id);
        reg_->live.erase(id);
        on_close(std::move(ev));
    }

    // called by the server
    void server_send(connection_id id, std::string data, message_kind kind) {
        later(opts_.latency, [this, id, data = std::move(data), kind] {
            auto it = conns_.find(id);
            if (it == conns_.end() || it->second.state == phase::handshaking) return;
            if (it->second.state == phase::closing && opts_.drops_data_after_close) return;
            it->second.on_message(message_view{data, kind});
        });
    }
    void server_close(connection_id id, std::uint16_t code, std::string reason) {
        later(opts_.latency, [this, id, code, reason = std::move(reason)] {
            auto it = conns_.find(id);
            if (it == conns_.end()) return;
            close_event ev;
            ev.code = code;
            ev.reason = reason;
            ev.was_open = true;
            finish(id, std::move(ev));
        });
    }
    void server_drop(connection_id id) {
        later(opts_.latency, [this, id] {
            auto it = conns_.find(id);
            if (it == conns_.end()) return;
            close_event ev;
            ev.was_open = true;
            ev.error = detail::net_error(net::error::connection_reset);
            finish(id, std::move(ev));
        });
    }

    simulation* sim_;
    simulated_server* server_;
    std::shared_ptr<simulated_server::registry> reg_;
    options opts_;
    std::shared_ptr<bool> alive_;
    std::map<connection_id, conn> conns_;
    std::size_t connects_ = 0;
    std::size_t sent_ = 0;
    std::size_t client_closes_ = 0;
};

inline void simulated_server::send(connection_id id, std::string data, message_kind kind) {
    auto it = owners_.find(id);
    if (it != owners_.end() && is_open(id)) it->second->server_send(id, std::move(data), kind);
}
inline void simulated_server::close(connection_id id, std::uint16_t code, std::string reason) {
    auto it = owners_.find(id);
    if (it == owners_.end() || !is_open(id)) return;
    live_[id] = false;
    it->second->server_close(id, code, std::move(reason));
}
inline void simulated_server::drop(connection_id id) {
    auto it = owners_.find(id);
    if (it == owners_.end() || !is_open(id)) return;
    live_[id] = false;
    it->second->server_drop(id);
}

} // namespace testing
TETHER_NAMESPACE_END

#endif
