// The model checker's world: a transport and a token policy where nothing
// happens by itself. Every handshake outcome, server close, server message,
// token completion and timer firing is an event the checker chooses. Test-only
// code, never shipped; it uses the client's public API only.
#pragma once

#include <tether/backoff/exponential_backoff.hpp>
#include <tether/basic_reconnecting_client.hpp>
#include <tether/close_policy/default_close_policy.hpp>
#include <tether/testing/simulation.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace mc {

using tether::testing::simulation;
using tether::testing::virtual_clock;
using time_point = virtual_clock::time_point;

// ---- the network as the server sees it ------------------------------------

enum class conn_state : unsigned char { handshaking, open, closed };

/// One connect() call, numbered 1, 2, ... in the order the client made them.
struct connection {
    int id = 0;
    std::string token; ///< what the handshake carried
    conn_state state = conn_state::handshaking;
    bool close_requested = false;     ///< the client called close() on it
    std::uint16_t close_code = 0;     ///< the code the client asked for
    std::vector<std::string> written; ///< messages transport.send() accepted on it
    /// Still live (and not asked to close) when the transport was destroyed.
    bool abandoned = false;
    std::function<void(const tether::open_info&)> on_open;
    std::function<void(const tether::message_view&)> on_message;
    std::function<void(tether::close_event&&)> on_close;

    bool live() const { return state != conn_state::closed; }
    /// Live and the client has not asked to close it.
    bool held() const { return live() && !close_requested; }
};

/// Shared by the transport (inside the client) and the world, so either may go first.
struct network {
    simulation* sim = nullptr;
    std::deque<connection> conns; // conns[id - 1]; a deque keeps references valid
    bool transport_alive = false;
    int delivering = 0; // the connection whose sink call is running
    /// Called at every connect(), before it returns (invariant checks).
    std::function<void(const connection&)> on_connect;

    connection& at(int id) { return conns[static_cast<std::size_t>(id - 1)]; }
    const connection& at(int id) const { return conns[static_cast<std::size_t>(id - 1)]; }
    bool exists(int id) const { return id >= 1 && static_cast<std::size_t>(id) <= conns.size(); }

    // Sink calls are always posted: a transport never calls its sink inline.
    template <class F> void deliver(int id, F f) {
        tether::net::post(sim->context(), [this, id, f = std::move(f)]() mutable {
            if (!transport_alive) return;
            const int outer = std::exchange(delivering, id);
            f(at(id));
            delivering = outer;
        });
    }
    void deliver_open(int id) {
        deliver(id, [](connection& c) {
            if (c.state != conn_state::handshaking) return;
            c.state = conn_state::open;
            c.on_open(tether::open_info{});
        });
    }
    void deliver_message(int id, std::string data) {
        deliver(id, [data = std::move(data)](connection& c) {
            if (c.state == conn_state::open)
                c.on_message(tether::message_view{data, tether::message_kind::text});
        });
    }
    void deliver_close(int id, tether::close_event ev) {
        deliver(id, [ev = std::move(ev)](connection& c) mutable {
            if (c.state == conn_state::closed) return;
            c.state = conn_state::closed;
            auto sink = std::move(c.on_close);
            sink(std::move(ev));
        });
    }

    void transport_destroyed() {
        transport_alive = false;
        for (auto& c : conns) {
            if (c.held()) c.abandoned = true;
            c.state = conn_state::closed;
        }
    }
};

/// The Transport concept on the simulation's clock and executor, where
/// nothing happens until the checker says so.
class scripted_transport {
public:
    using executor_type = simulation::executor_type;
    using clock_type = virtual_clock;
    using timer_type = simulation::timer;

    explicit scripted_transport(std::shared_ptr<network> net) : net_(std::move(net)) {
        net_->transport_alive = true;
    }
    scripted_transport(scripted_transport&& o) noexcept : net_(std::move(o.net_)) {}
    scripted_transport& operator=(scripted_transport&&) = delete;
    ~scripted_transport() {
        if (net_) net_->transport_destroyed();
    }

    executor_type get_executor() noexcept { return net_->sim->get_executor(); }
    clock_type::time_point now() const noexcept { return net_->sim->now(); }
    timer_type make_timer() { return net_->sim->make_timer(); }

    template <class Sink>
    tether::connection_id connect(const tether::connect_request& req, Sink& sink) {
        connection c;
        c.id = static_cast<int>(net_->conns.size()) + 1;
        c.token = std::string(req.token.reveal());
        const auto id = static_cast<tether::connection_id>(c.id);
        c.on_open = [&sink, id](const tether::open_info& i) { sink.on_transport_open(id, i); };
        c.on_message = [&sink, id](const tether::message_view& m) {
            sink.on_transport_message(id, m);
        };
        c.on_close = [&sink, id](tether::close_event&& e) {
            sink.on_transport_close(id, std::move(e));
        };
        net_->conns.push_back(std::move(c));
        if (net_->on_connect) net_->on_connect(net_->conns.back());
        return id;
    }

    std::error_code send(tether::connection_id id, std::string_view data, tether::message_kind) {
        const int i = static_cast<int>(id);
        if (!net_->exists(i) || net_->at(i).state != conn_state::open ||
            net_->at(i).close_requested)
            return make_error_code(tether::error::not_connected);
        net_->at(i).written.emplace_back(data);
        return {};
    }

    void close(tether::connection_id id, std::uint16_t code, std::string_view) {
        const int i = static_cast<int>(id);
        if (!net_->exists(i)) return;
        connection& c = net_->at(i);
        if (!c.live() || c.close_requested) return;
        c.close_requested = true;
        c.close_code = code;
        if (c.state == conn_state::handshaking) {
            // abandoning a handshake ends the attempt at once
            tether::close_event ev;
            ev.initiated_locally = true;
            ev.error = tether::detail::net_error(tether::net::error::operation_aborted);
            net_->deliver_close(i, std::move(ev));
        }
        // open: the close frame is out; the checker decides when the peer answers
    }

private:
    std::shared_ptr<network> net_;
};

// ---- the token issuer -----------------------------------------------------

struct token_request {
    std::function<void(tether::token_result)> handler;
    bool cancelled = false;
    bool done = false;
};

struct token_service {
    std::vector<token_request> requests;
    int issued = 0;                    ///< tok-1 .. tok-<issued>
    std::set<std::string> invalidated; ///< what the client reported as spent
    int cancels = 0;
    /// Called at every async_get_token(), before it returns.
    std::function<void()> on_request;

    int outstanding() const {
        int n = 0;
        for (const auto& r : requests)
            n += (!r.done && !r.cancelled) ? 1 : 0;
        return n;
    }
    token_request* first_outstanding() {
        for (auto& r : requests)
            if (!r.done && !r.cancelled) return &r;
        return nullptr;
    }
    token_request* first_cancelled() {
        for (auto& r : requests)
            if (!r.done && r.cancelled) return &r;
        return nullptr;
    }
    std::string last_issued() const { return issued ? "tok-" + std::to_string(issued) : ""; }
};

/// The TokenPolicy concept; completes only when the checker says so.
class scripted_token_policy {
public:
    explicit scripted_token_policy(std::shared_ptr<token_service> s) : s_(std::move(s)) {}

    template <class Handler> void async_get_token(Handler&& h) {
        token_request r;
        r.handler = std::function<void(tether::token_result)>(std::forward<Handler>(h));
        s_->requests.push_back(std::move(r));
        if (s_->on_request) s_->on_request();
    }
    void invalidate(const tether::secret& s) { s_->invalidated.insert(std::string(s.reveal())); }
    void cancel() {
        ++s_->cancels;
        for (auto& r : s_->requests)
            if (!r.done) r.cancelled = true;
    }

private:
    std::shared_ptr<token_service> s_;
};

using client_type =
    tether::basic_reconnecting_client<scripted_transport, scripted_token_policy,
                                      tether::default_close_policy, tether::exponential_backoff>;

} // namespace mc
