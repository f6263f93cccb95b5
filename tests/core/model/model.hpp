// The model checker's vocabulary: the events it can choose, the world they
// act on, the invariants checked after every step, and replay().
//
// A world is one client (basic_reconnecting_client on scripted_transport and
// scripted_token_policy) plus everything outside it. Nothing happens unless
// an event says so; after each event the executor is drained (poll()), so a
// step is "one thing happened outside, and the client reacted to it".
//
// Invariants (each violation has an id, "I<n>.<what>"; all are observed from
// outside the client: its handlers, state(), and what reached the transport and
// the token policy):
//
// I1 tokens. I1.rejected_token: no handshake carries a token the server
//    rejected before (a 401 handshake or an expiry close 4001 with it).
//    I1.stale_after_expiry: after an expiry close of a connection that carried
//    tok-k, no handshake carries tok-j with j <= k (tokens are issued in order
//    tok-1, tok-2, ...; a token obtained no later than the expired one is as
//    stale as it). This is issue 11's "never a token obtained before that
//    close", narrowed to what a correct client can know: an expiry close of a
//    connection retired by a handover says nothing about the newer token
//    the current connection carries.
// I2 single flight. I2.token_overlap: at most one token request outstanding
//    (not completed, not cancelled). I2.connections: at most two connections
//    live (handshaking or open) that the client has not asked to close.
// I3 state() agrees with the connections. Let "held" be the connections live
//    and not asked to close; a held open connection is "draining" when an
//    on_open(handover = true) replaced it at t and now <= t + handover_drain
//    (the documented window in which a retired connection keeps delivering).
//    I3.open:           open       => the held open non-draining connections
//                                     are exactly the last one reported by on_open.
//    I3.connecting:     connecting => exactly one held handshaking connection
//                                     and no held open non-draining one.
//    I3.not_connected:  idle, acquiring_token, waiting_to_retry => no held
//                                     handshaking and no held open non-draining one.
//    I3.closing:        closing    => nothing held.
//    I3.stopped:        stopped    => nothing held (draining ones included).
// Runs. start() after a stop begins a new run (a restart): at once when the
// client had stopped, after its on_stopped when it was still closing (unless
// another stop() came first). I4 and I6 hold per run.
// I4 stopping. I4.stopped_twice: on_stopped at most once. I4.handler_after_stopped,
//    I4.handler_after_destroy: no handler runs after on_stopped or after the
//    client object was destroyed. At quiescence after a stop (stop(), destroy,
//    or the client's own decision; the world then answers every close):
//    I4.stopped_count: exactly one on_stopped (unless destroyed first);
//    I4.timer_armed: no timer armed; I4.token_request_left: no token request
//    outstanding; I4.connection_left: no connection held; I4.connection_abandoned:
//    no connection the transport still had live and not asked to close when
//    the client let the transport go.
// I5 messages. I5.lost: every message send() accepted (returned no error) was
//    accepted by transport.send() on an open connection, or reported through
//    on_dropped. Checked at quiescence (after the liveness check and after the
//    stop); not after destruction. For async_send: I5.async_lost: it completes
//    (also after destruction: a completion is not a client handler);
//    I5.async_twice: exactly once; I5.async_wrong: with success exactly when
//    the message reached transport.send() on a connection.
// I6 delays. I6.out_of_bounds: every retry_event delay is within [0, max of
//    its class's ladder] (or up to the Retry-After injected in that step).
//    I6.below_retry_after: never below a Retry-After injected in the same
//    step (a 429 handshake's header, a rate-limited token result).
//    I6.early: after on_retry(delay) at t, the next connect() or token request
//    happens at t + delay or later.
// I7 liveness. From the state reached, with a healthy world (every handshake
//    accepted, every token request answered with a fresh token, closes
//    answered, no faults), within 30 virtual minutes: unless the client
//    stopped, I7.not_open_again: it is open with exactly one held connection,
//    open, the one on_open reported last, and no token request outstanding;
//    I7.message_not_delivered: a server message on it reaches on_message;
//    I7.send_not_written: a send() reaches transport.send() on it.
// I8 delivery (beyond issue 11's list). I8.message_not_delivered: a server message
//    on a held open connection that on_open reported last, or on a draining
//    one, reaches on_message in the same step (unless the client was destroyed).
// I9 expiry (defect 3 of issue 11). I9.expiry_counted_as_rejection: an expiry
//    close (4001) of a connection whose token was issued fresh at t with
//    lifetime L, arriving at t + L or later, is a normal expiry: in that step
//    the client neither announces a backoff (on_retry) nor stops.
#pragma once

#include "scripted_world.hpp"

#include <algorithm>
#include <initializer_list>
#include <map>
#include <sstream>

namespace mc {

// ---- events ---------------------------------------------------------------

enum class kind : unsigned char {
    start,
    // a handshaking connection
    accept,
    reject_401,
    reject_403,
    reject_429,
    reject_503,
    handshake_timeout,
    // an open connection the client has not asked to close
    close_expiry,     // 4001, mapped to refresh_token_then_reconnect
    close_normal,     // 1000
    close_going_away, // 1001
    close_policy,     // 1008
    drop,             // no close frame, connection_reset
    server_message,
    // an open connection the client asked to close
    peer_answers_close,
    // the outstanding token request
    token_fresh,
    token_cached,
    token_transient,
    token_permanent,
    token_rate_limited,
    token_late, // a cancelled request completes anyway (the concept allows it)
    // time
    advance, // move to the earliest armed timer and fire it
    wait,    // let 3 s pass (firing what comes due)
    // the application
    send,
    async_send, // with a completion callback
    stop,
    reconnect,
    handover,
    destroy,
};

struct event {
    kind what;
    int conn;
    friend bool operator==(const event& a, const event& b) {
        return a.what == b.what && a.conn == b.conn;
    }
};

/// Events as test cases spell them: ev::accept(1), ev::reconnect, ...
namespace ev {
inline constexpr event start{kind::start, 0};
constexpr event accept(int c) { return {kind::accept, c}; }
constexpr event reject_401(int c) { return {kind::reject_401, c}; }
constexpr event reject_403(int c) { return {kind::reject_403, c}; }
constexpr event reject_429(int c) { return {kind::reject_429, c}; }
constexpr event reject_503(int c) { return {kind::reject_503, c}; }
constexpr event handshake_timeout(int c) { return {kind::handshake_timeout, c}; }
constexpr event close_expiry(int c) { return {kind::close_expiry, c}; }
constexpr event close_normal(int c) { return {kind::close_normal, c}; }
constexpr event close_going_away(int c) { return {kind::close_going_away, c}; }
constexpr event close_policy(int c) { return {kind::close_policy, c}; }
constexpr event drop(int c) { return {kind::drop, c}; }
constexpr event server_message(int c) { return {kind::server_message, c}; }
constexpr event peer_answers_close(int c) { return {kind::peer_answers_close, c}; }
inline constexpr event token_fresh{kind::token_fresh, 0};
inline constexpr event token_cached{kind::token_cached, 0};
inline constexpr event token_transient{kind::token_transient, 0};
inline constexpr event token_permanent{kind::token_permanent, 0};
inline constexpr event token_rate_limited{kind::token_rate_limited, 0};
inline constexpr event token_late{kind::token_late, 0};
inline constexpr event advance{kind::advance, 0};
inline constexpr event wait{kind::wait, 0};
inline constexpr event send{kind::send, 0};
inline constexpr event async_send{kind::async_send, 0};
inline constexpr event stop{kind::stop, 0};
inline constexpr event reconnect{kind::reconnect, 0};
inline constexpr event handover{kind::handover, 0};
inline constexpr event destroy{kind::destroy, 0};
} // namespace ev

inline const char* name(kind k) {
    switch (k) {
    case kind::start: return "start";
    case kind::accept: return "accept";
    case kind::reject_401: return "reject_401";
    case kind::reject_403: return "reject_403";
    case kind::reject_429: return "reject_429";
    case kind::reject_503: return "reject_503";
    case kind::handshake_timeout: return "handshake_timeout";
    case kind::close_expiry: return "close_expiry";
    case kind::close_normal: return "close_normal";
    case kind::close_going_away: return "close_going_away";
    case kind::close_policy: return "close_policy";
    case kind::drop: return "drop";
    case kind::server_message: return "server_message";
    case kind::peer_answers_close: return "peer_answers_close";
    case kind::token_fresh: return "token_fresh";
    case kind::token_cached: return "token_cached";
    case kind::token_transient: return "token_transient";
    case kind::token_permanent: return "token_permanent";
    case kind::token_rate_limited: return "token_rate_limited";
    case kind::token_late: return "token_late";
    case kind::advance: return "advance";
    case kind::wait: return "wait";
    case kind::send: return "send";
    case kind::async_send: return "async_send";
    case kind::stop: return "stop";
    case kind::reconnect: return "reconnect";
    case kind::handover: return "handover";
    case kind::destroy: return "destroy";
    }
    return "?";
}

inline bool takes_conn(kind k) { return k >= kind::accept && k <= kind::peer_answers_close; }

inline std::string to_string(const event& e) {
    std::string s = std::string("ev::") + name(e.what);
    if (takes_conn(e.what)) s += "(" + std::to_string(e.conn) + ")";
    return s;
}

inline std::string to_string(const std::vector<event>& t) {
    std::string s;
    for (std::size_t i = 0; i < t.size(); ++i)
        s += (i ? ", " : "") + to_string(t[i]);
    return s;
}

// ---- configurations ---------------------------------------------------------

inline constexpr std::chrono::milliseconds retry_after_429{7000};
inline constexpr std::chrono::milliseconds retry_after_token{9000};
inline constexpr std::chrono::minutes healthy_limit{30};

/// Client options and backoff ladders of one world; `name` is how a printed
/// test case spells it (mc::config::<name>()).
struct config {
    std::string name;
    tether::client_options options;
    tether::backoff_ladders ladders; ///< the client's backoff, and I6's bounds
    /// When set, the client's backoff uses these instead of `ladders` (I6
    /// still checks `ladders`): the checker's own test that I6 can fail.
    std::optional<tether::backoff_ladders> client_ladders;
    /// The lifetime every token announces.
    std::chrono::seconds token_lifetime{60};
    /// How much time ev::wait lets pass.
    std::chrono::milliseconds wait_step{3000};

    static config base() {
        config c;
        c.name = "base";
        c.options.url = "wss://model.test/stream";
        c.options.queue_capacity = 4;
        c.ladders.network = {std::chrono::milliseconds(1000), std::chrono::milliseconds(8000), 2.0};
        c.ladders.auth = {std::chrono::milliseconds(2000), std::chrono::milliseconds(16000), 2.0};
        c.ladders.overload = {std::chrono::milliseconds(3000), std::chrono::milliseconds(30000),
                              2.0};
        return c;
    }
    /// The renew_before_expiry timer fires 40 s after a token is obtained.
    static config renew() {
        config c = base();
        c.name = "renew";
        c.options.renew_before_expiry = std::chrono::seconds(20);
        return c;
    }
    /// A handover closes the old connection at once.
    static config drain0() {
        config c = base();
        c.name = "drain0";
        c.options.handover_drain = std::chrono::milliseconds(0);
        return c;
    }
    static config max_attempts() {
        config c = base();
        c.name = "max_attempts";
        c.options.max_attempts = 3;
        return c;
    }
    static config renew_drain0() {
        config c = renew();
        c.name = "renew_drain0";
        c.options.handover_drain = std::chrono::milliseconds(0);
        return c;
    }
    /// Tokens that live 1 s, and waits of 1.5 s: an expiry close after one
    /// wait comes after the token's expiry but sooner than
    /// auth_failure_uptime (2 s) after open (defect 3 of issue 11).
    static config short_tokens() {
        config c = base();
        c.name = "short_tokens";
        c.token_lifetime = std::chrono::seconds(1);
        c.wait_step = std::chrono::milliseconds(1500);
        return c;
    }
    static std::vector<config> all() {
        return {base(), renew(), drain0(), max_attempts(), renew_drain0(), short_tokens()};
    }
};

struct violation {
    std::string id;
    std::string what;
    std::size_t step; ///< events applied when it was seen (trace length + 1: in the final check)
};

inline int token_number(const std::string& t) {
    return t.rfind("tok-", 0) == 0 ? std::stoi(t.substr(4)) : 0;
}

// ---- the world ----------------------------------------------------------------

class world {
public:
    explicit world(config c)
        : cfg_(std::move(c)), net_(std::make_shared<network>()),
          tokens_(std::make_shared<token_service>()) {
        net_->sim = &sim_;
        net_->on_connect = [this](const connection& c) { connected(c); };
        tokens_->on_request = [this] { token_requested(); };
        tether::default_close_policy::options cp;
        cp.application_codes = tether::close_action::refresh_token_then_reconnect;
        client_.emplace(cfg_.options, scripted_transport(net_), scripted_token_policy(tokens_),
                        tether::default_close_policy(cp),
                        tether::exponential_backoff(cfg_.client_ladders.value_or(cfg_.ladders),
                                                    tether::jitter_rng(7)));
        attach();
    }
    ~world() { client_.reset(); }
    world(const world&) = delete;
    world& operator=(const world&) = delete;

    const config& cfg() const { return cfg_; }
    const std::vector<violation>& violations() const { return violations_; }
    bool has(const std::string& id) const {
        return std::any_of(violations_.begin(), violations_.end(),
                           [&](const violation& v) { return v.id == id; });
    }
    std::size_t steps() const { return steps_; }
    /// The client reported on_stopped or was destroyed.
    bool finished() const { return destroyed_ || stopped_count_ > 0; }

    /// Every event possible in the current state, in a fixed order.
    std::vector<event> enabled() const {
        std::vector<event> out;
        if (!started_) {
            if (client_) out.push_back(ev::start);
            return out;
        }
        if (tokens_->outstanding() > 0) {
            out.push_back(ev::token_fresh);
            const std::string last = tokens_->last_issued();
            if (!last.empty() && !tokens_->invalidated.count(last)) out.push_back(ev::token_cached);
            out.push_back(ev::token_transient);
            out.push_back(ev::token_permanent);
            out.push_back(ev::token_rate_limited);
        }
        if (tokens_->first_cancelled() != nullptr) out.push_back(ev::token_late);
        if (net_->transport_alive) {
            for (const auto& c : net_->conns) {
                if (c.state == conn_state::handshaking && !c.close_requested) {
                    for (kind k : {kind::accept, kind::reject_401, kind::reject_403,
                                   kind::reject_429, kind::reject_503, kind::handshake_timeout})
                        out.push_back({k, c.id});
                } else if (c.state == conn_state::open && !c.close_requested) {
                    for (kind k : {kind::close_expiry, kind::close_normal, kind::close_going_away,
                                   kind::close_policy, kind::drop, kind::server_message})
                        out.push_back({k, c.id});
                } else if (c.state == conn_state::open) {
                    out.push_back(ev::peer_answers_close(c.id));
                }
            }
        }
        if (sim_.armed_timers() > 0) out.push_back(ev::advance);
        out.push_back(ev::wait);
        if (client_) {
            out.push_back(ev::send);
            out.push_back(ev::async_send);
            if (stop_issued_ || stopped_count_ > 0) out.push_back(ev::start); // a restart
            if (stopped_count_ == 0) {
                out.push_back(ev::stop);
                out.push_back(ev::reconnect);
                out.push_back(ev::handover);
            }
            out.push_back(ev::destroy);
        }
        return out;
    }

    bool is_enabled(const event& e) const {
        const auto en = enabled();
        return std::find(en.begin(), en.end(), e) != en.end();
    }

    /// Applies one enabled event, lets the client react, checks the invariants.
    void apply(const event& e) {
        ++steps_;
        step_retry_after_.reset();
        step_normal_expiry_ = false;
        switch (e.what) {
        case kind::start:
            if (started_ && stopped_count_ > 0)
                new_run(); // stopped: the new run begins now
            else if (started_ && stop_issued_)
                restart_pending_ = true; // closing: a new run after on_stopped
            started_ = true;
            client_->start();
            break;
        case kind::accept: net_->deliver_open(e.conn); break;
        case kind::reject_401:
            rejected_.insert(net_->at(e.conn).token);
            net_->deliver_close(e.conn, refused(401));
            break;
        case kind::reject_403: net_->deliver_close(e.conn, refused(403)); break;
        case kind::reject_429: {
            auto ev = refused(429);
            ev.retry_after = retry_after_429;
            step_retry_after_ = retry_after_429;
            net_->deliver_close(e.conn, std::move(ev));
            break;
        }
        case kind::reject_503: net_->deliver_close(e.conn, refused(503)); break;
        case kind::handshake_timeout: {
            tether::close_event ev;
            ev.error = make_error_code(tether::error::handshake_timeout);
            net_->deliver_close(e.conn, std::move(ev));
            break;
        }
        case kind::close_expiry: {
            const std::string& t = net_->at(e.conn).token;
            const auto issued = issued_at_.find(t);
            step_normal_expiry_ =
                issued != issued_at_.end() && sim_.now() >= issued->second + cfg_.token_lifetime;
            rejected_.insert(t);
            stale_upto_ = std::max(stale_upto_, token_number(t));
            server_close(e.conn, 4001, "Token expired");
            break;
        }
        case kind::close_normal: server_close(e.conn, tether::close_code::normal, ""); break;
        case kind::close_going_away:
            server_close(e.conn, tether::close_code::going_away, "");
            break;
        case kind::close_policy:
            server_close(e.conn, tether::close_code::policy_violation, "");
            break;
        case kind::drop: {
            tether::close_event ev;
            ev.was_open = true;
            ev.error = tether::detail::net_error(tether::net::error::connection_reset);
            net_->deliver_close(e.conn, std::move(ev));
            break;
        }
        case kind::server_message: {
            const connection& c = net_->at(e.conn);
            must_deliver_ =
                client_ && stopped_count_ == 0 && (e.conn == current_ || draining(c)) ? e.conn : 0;
            net_->deliver_message(e.conn, "s" + std::to_string(++server_messages_));
            break;
        }
        case kind::peer_answers_close: {
            tether::close_event ev;
            ev.code = net_->at(e.conn).close_code;
            ev.was_open = true;
            ev.initiated_locally = true;
            net_->deliver_close(e.conn, std::move(ev));
            break;
        }
        case kind::token_fresh: complete(*tokens_->first_outstanding(), fresh_token()); break;
        case kind::token_cached:
            complete(*tokens_->first_outstanding(),
                     tether::token_result::success(tether::token(
                         tether::secret(tokens_->last_issued()), cfg_.token_lifetime, false)));
            break;
        case kind::token_transient:
            complete(*tokens_->first_outstanding(),
                     tether::token_result::failure(tether::error::token_request_failed));
            break;
        case kind::token_permanent:
            complete(*tokens_->first_outstanding(),
                     tether::token_result::failure(tether::error::invalid_credentials));
            break;
        case kind::token_rate_limited: {
            auto r = tether::token_result::failure(tether::error::rate_limited);
            r.retry_after = retry_after_token;
            step_retry_after_ = retry_after_token;
            complete(*tokens_->first_outstanding(), std::move(r));
            break;
        }
        case kind::token_late: complete(*tokens_->first_cancelled(), fresh_token()); break;
        case kind::advance: fire_next_timer(sim_.now() + std::chrono::hours(24)); break;
        case kind::wait: sim_.run_for(cfg_.wait_step); break;
        case kind::send: {
            const std::string m = "m" + std::to_string(++sends_);
            if (!client_->send(m)) accepted_.push_back(m);
            break;
        }
        case kind::async_send: {
            const std::string m = "a" + std::to_string(++sends_);
            async_.push_back({m, 0, {}});
            const std::size_t k = async_.size() - 1;
            client_->async_send(m, [this, k](std::error_code ec) {
                ++async_[k].completions;
                async_[k].result = ec;
            });
            break;
        }
        case kind::stop:
            stop_issued_ = true;
            restart_pending_ = false; // a stop while closing cancels a pending restart
            client_->stop();
            break;
        case kind::reconnect: client_->reconnect(); break;
        case kind::handover: client_->handover(); break;
        case kind::destroy:
            destroyed_ = true;
            client_.reset();
            break;
        }
        const std::size_t delivered_before = delivered_.size();
        sim_.poll();
        if (must_deliver_ != 0 && delivered_.size() == delivered_before)
            fail("I8.message_not_delivered",
                 "a server message on #" + std::to_string(must_deliver_) +
                     ", the current or a draining connection, did not reach on_message: " +
                     describe());
        must_deliver_ = 0;
        check_step();
    }

    /// Liveness from here (I7), then the stop and its quiescence (I4, I5).
    /// Leaves the world used up.
    void check_final() {
        if (!started_) return;
        in_final_ = true;
        step_retry_after_.reset();
        step_normal_expiry_ = false;
        if (restart_pending_) // let the stop complete: the new run is checked like any other
            run_healthy([this] { return !restart_pending_; }, healthy_limit);
        if (!destroyed_ && !stop_issued_ && stopped_count_ == 0) {
            const bool serving =
                run_healthy([this] { return stopped_count_ > 0 || is_serving(); }, healthy_limit);
            if (stopped_count_ == 0) {
                if (!serving) {
                    fail("I7.not_open_again",
                         "with a healthy world for 30 virtual minutes: " + describe());
                } else {
                    live_check();
                }
                stop_issued_ = true;
                client_->stop();
            }
        }
        settle();
    }

    /// One line: time, state, connections, tokens.
    std::string describe() const {
        std::ostringstream os;
        os << "t=" << std::chrono::duration<double>(sim_.elapsed()).count() << "s state=";
        os << (client_ ? tether::to_string(client_->state()) : "destroyed");
        os << " current=#" << current_ << " live connections:";
        int closed = 0;
        for (const auto& c : net_->conns) {
            if (!c.live() && !c.abandoned) {
                ++closed;
                continue;
            }
            os << " #" << c.id << "(" << c.token << ","
               << (c.state == conn_state::handshaking ? "handshaking"
                   : c.state == conn_state::open      ? "open"
                                                      : "closed");
            if (c.close_requested && c.live()) os << ",close asked";
            if (draining(c)) os << ",draining";
            if (c.abandoned) os << ",abandoned";
            os << ")";
        }
        os << " (" << closed << " closed) token requests outstanding=" << tokens_->outstanding()
           << " timers=" << sim_.armed_timers() << " on_stopped=" << stopped_count_;
        return os.str();
    }

private:
    static tether::close_event refused(int status) {
        tether::close_event ev;
        ev.http_status = status;
        return ev;
    }

    void server_close(int id, std::uint16_t code, const char* reason) {
        tether::close_event ev;
        ev.code = code;
        ev.reason = reason;
        ev.was_open = true;
        net_->deliver_close(id, std::move(ev));
    }

    tether::token_result fresh_token() {
        ++tokens_->issued;
        issued_at_[tokens_->last_issued()] = sim_.now();
        return tether::token_result::success(
            tether::token(tether::secret(tokens_->last_issued()), cfg_.token_lifetime, true));
    }

    void complete(token_request& r, tether::token_result result) {
        r.done = true;
        auto h = std::move(r.handler);
        h(std::move(result)); // the concept allows inline completion
    }

    void fail(const char* id, std::string what) {
        if (has(id)) return;
        violations_.push_back({id, std::move(what), in_final_ ? steps_ + 1 : steps_});
    }

    // Fires the earliest armed timer when it is due by `end`; false when none is.
    // A sentinel timer of our own just after `end` tells the two apart.
    bool fire_next_timer(time_point end) {
        if (sim_.armed_timers() == 0) return false;
        bool sentinel = false;
        {
            simulation::timer t = sim_.make_timer();
            t.expires_at(end + std::chrono::nanoseconds(1));
            t.async_wait([&sentinel](std::error_code ec) { sentinel = !ec; });
            int calls = 0;
            sim_.run_until([&calls] { return calls++ > 0; },
                           (end - sim_.now()) + std::chrono::hours(1));
        }
        sim_.poll(); // the sentinel's cancellation
        return !sentinel;
    }

    // ---- observation --------------------------------------------------------

    void handler_ran(const char* which) {
        if (destroyed_)
            fail("I4.handler_after_destroy",
                 std::string(which) + " ran after the client was destroyed");
        if (stopped_count_ > 0)
            fail("I4.handler_after_stopped", std::string(which) + " ran after on_stopped");
    }

    void attach() {
        auto& c = *client_;
        c.on_state_change(
            [this](const tether::state_change_event&) { handler_ran("on_state_change"); });
        c.on_open([this](const tether::open_event& e) {
            handler_ran("on_open");
            if (e.handover && current_ != 0) retired_at_[current_] = sim_.now();
            current_ = net_->delivering;
        });
        c.on_message([this](const tether::message_view& m) {
            handler_ran("on_message");
            delivered_.emplace_back(m.data);
        });
        c.on_close([this](const tether::close_event&, const tether::reconnect_decision&) {
            handler_ran("on_close");
        });
        c.on_retry([this](const tether::retry_event& e) {
            handler_ran("on_retry");
            retried(e);
        });
        c.on_token([this](const tether::token_event&) { handler_ran("on_token"); });
        c.on_token_failure(
            [this](const tether::token_failure_event&) { handler_ran("on_token_failure"); });
        c.on_dropped([this](const tether::dropped_message& d) {
            handler_ran("on_dropped");
            dropped_.insert(d.data);
        });
        c.on_stopped([this](const tether::stopped_event& e) {
            handler_ran("on_stopped");
            if (stopped_count_ > 0) fail("I4.stopped_twice", "on_stopped ran twice");
            if (step_normal_expiry_)
                fail("I9.expiry_counted_as_rejection",
                     "an expiry close after the token's announced expiry stopped the client: " +
                         e.reason.message());
            ++stopped_count_;
            if (restart_pending_) new_run(); // the client starts again right after this
        });
    }

    void retried(const tether::retry_event& e) {
        const auto cap = cfg_.ladders[e.cls].max;
        const auto ra = step_retry_after_.value_or(std::chrono::milliseconds(0));
        std::ostringstream os;
        os << "retry delay " << e.delay.count() << " ms on the " << tether::to_string(e.cls)
           << " ladder (max " << cap.count() << " ms, Retry-After " << ra.count() << " ms)";
        if (e.delay < ra) fail("I6.below_retry_after", os.str());
        if (e.delay.count() < 0 || e.delay > std::max(cap, ra)) fail("I6.out_of_bounds", os.str());
        retry_not_before_ = sim_.now() + e.delay;
        if (step_normal_expiry_)
            fail("I9.expiry_counted_as_rejection",
                 "an expiry close after the token's announced expiry was answered with a "
                 "backoff: " +
                     os.str());
    }

    void not_early(const char* what) {
        if (retry_not_before_ && sim_.now() < *retry_not_before_) {
            std::ostringstream os;
            os << what << " at t=" << std::chrono::duration<double>(sim_.elapsed()).count()
               << "s, before the announced retry at t="
               << std::chrono::duration<double>(retry_not_before_->time_since_epoch()).count()
               << "s";
            fail("I6.early", os.str());
        }
        retry_not_before_.reset();
    }

    void connected(const connection& c) {
        if (rejected_.count(c.token))
            fail("I1.rejected_token", "handshake #" + std::to_string(c.id) + " carries " + c.token +
                                          ", which the server rejected");
        if (token_number(c.token) <= stale_upto_)
            fail("I1.stale_after_expiry", "handshake #" + std::to_string(c.id) + " carries " +
                                              c.token + " after tok-" +
                                              std::to_string(stale_upto_) + " expired");
        not_early("connect()");
    }

    void token_requested() {
        if (tokens_->outstanding() > 1)
            fail("I2.token_overlap", "a second token request while one is outstanding");
        not_early("a token request");
    }

    bool draining(const connection& c) const {
        auto it = retired_at_.find(c.id);
        return it != retired_at_.end() && c.state == conn_state::open && !c.close_requested &&
               sim_.now() <= it->second + cfg_.options.handover_drain;
    }

    void check_step() {
        if (tokens_->outstanding() > 1)
            fail("I2.token_overlap", "two token requests outstanding: " + describe());
        std::vector<int> held_open, held_handshaking;
        int held = 0;
        for (const auto& c : net_->conns) {
            if (!c.held()) continue;
            ++held;
            if (c.state == conn_state::handshaking)
                held_handshaking.push_back(c.id);
            else if (!draining(c))
                held_open.push_back(c.id);
        }
        if (held > 2) fail("I2.connections", "more than two connections held: " + describe());
        if (!client_) return;
        using tether::client_state;
        switch (client_->state()) {
        case client_state::open:
            if (held_open.size() != 1 || held_open[0] != current_)
                fail("I3.open", "state open but " + describe());
            break;
        case client_state::connecting:
            if (held_handshaking.size() != 1 || !held_open.empty())
                fail("I3.connecting", "state connecting but " + describe());
            break;
        case client_state::idle:
        case client_state::acquiring_token:
        case client_state::waiting_to_retry:
            if (!held_handshaking.empty() || !held_open.empty())
                fail("I3.not_connected", describe());
            break;
        case client_state::closing:
            if (held > 0) fail("I3.closing", "state closing but " + describe());
            break;
        case client_state::stopped:
            if (held > 0) fail("I3.stopped", "state stopped but " + describe());
            break;
        }
    }

    // ---- the healthy world ----------------------------------------------------

    bool is_serving() const {
        if (!client_ || client_->state() != tether::client_state::open) return false;
        if (tokens_->outstanding() > 0) return false;
        int held = 0;
        for (const auto& c : net_->conns)
            held += c.held() ? 1 : 0;
        return held == 1 && current_ != 0 && net_->at(current_).held() &&
               net_->at(current_).state == conn_state::open;
    }

    // Answers everything the client asks for, then lets timers fire, until
    // `done` or `limit` of virtual time.
    template <class Done> bool run_healthy(Done done, std::chrono::nanoseconds limit) {
        const time_point end = sim_.now() + limit;
        for (int guard = 0; guard < 100000; ++guard) {
            sim_.poll();
            check_step();
            if (done()) return true;
            step_retry_after_.reset(); // the healthy world sends no Retry-After
            if (token_request* r = tokens_->first_outstanding()) {
                complete(*r, fresh_token());
                continue;
            }
            bool acted = false;
            if (net_->transport_alive) {
                for (const auto& c : net_->conns) {
                    if (c.state == conn_state::handshaking && !c.close_requested) {
                        net_->deliver_open(c.id);
                        acted = true;
                        break;
                    }
                    if (c.state == conn_state::open && c.close_requested) {
                        tether::close_event ev;
                        ev.code = c.close_code;
                        ev.was_open = true;
                        ev.initiated_locally = true;
                        net_->deliver_close(c.id, std::move(ev));
                        acted = true;
                        break;
                    }
                }
            }
            if (acted) continue;
            if (sim_.now() < end && fire_next_timer(end)) continue;
            sim_.poll();
            return done();
        }
        return done();
    }

    void live_check() {
        const int c = current_;
        const std::size_t before = delivered_.size();
        net_->deliver_message(c, "s-live");
        sim_.poll();
        if (delivered_.size() == before || delivered_.back() != "s-live")
            fail("I7.message_not_delivered", "a server message on #" + std::to_string(c) +
                                                 " did not reach on_message: " + describe());
        const std::string m = "m-live";
        if (const auto ec = client_->send(m)) {
            fail("I7.send_not_written", "send() refused while open: " + ec.message());
        } else {
            accepted_.push_back(m);
            sim_.poll();
            const auto& w = net_->at(c).written;
            if (std::find(w.begin(), w.end(), m) == w.end())
                fail("I7.send_not_written",
                     "send() while open did not reach transport.send() on #" + std::to_string(c) +
                         ": " + describe());
        }
        check_messages();
    }

    // A stop ended the last run and start() began a new one: what I4 counts
    // and what I6 announced start over.
    void new_run() {
        stopped_count_ = 0;
        stop_issued_ = false;
        restart_pending_ = false;
        retry_not_before_.reset();
    }

    void check_messages() {
        for (const auto& a : async_) {
            bool written = false;
            for (const auto& c : net_->conns)
                written = written ||
                          std::find(c.written.begin(), c.written.end(), a.data) != c.written.end();
            if (a.completions > 1)
                fail("I5.async_twice", "async_send(\"" + a.data + "\") completed twice");
            if (a.completions == 1 && !a.result && !written)
                fail("I5.async_wrong",
                     "async_send(\"" + a.data + "\") completed with success but was never written");
            if (a.completions == 1 && a.result && written)
                fail("I5.async_wrong", "async_send(\"" + a.data +
                                           "\") was written but completed with " +
                                           a.result.message());
            if (a.completions == 0)
                fail("I5.async_lost",
                     "async_send(\"" + a.data + "\") never completed: " + describe());
        }
        if (destroyed_) return;
        for (const auto& m : accepted_) {
            bool written = dropped_.count(m) > 0;
            for (const auto& c : net_->conns)
                written =
                    written || std::find(c.written.begin(), c.written.end(), m) != c.written.end();
            if (!written)
                fail("I5.lost", "send(\"" + m +
                                    "\") was accepted, never written to a connection and never "
                                    "reported to on_dropped: " +
                                    describe());
        }
    }

    void settle() {
        run_healthy([] { return false; }, healthy_limit);
        if (client_ && stopped_count_ != 1)
            fail("I4.stopped_count", "on_stopped ran " + std::to_string(stopped_count_) +
                                         " times after a stop: " + describe());
        if (sim_.armed_timers() != 0)
            fail("I4.timer_armed", "a timer is still armed after the stop: " + describe());
        if (tokens_->outstanding() != 0)
            fail("I4.token_request_left",
                 "a token request is outstanding after the stop: " + describe());
        for (const auto& c : net_->conns) {
            if (c.held())
                fail("I4.connection_left",
                     "#" + std::to_string(c.id) + " is still held after the stop: " + describe());
            if (c.abandoned)
                fail("I4.connection_abandoned",
                     "#" + std::to_string(c.id) +
                         " was live and never asked to close when the transport went: " +
                         describe());
        }
        check_messages();
    }

    config cfg_;
    simulation sim_;
    std::shared_ptr<network> net_;
    std::shared_ptr<token_service> tokens_;
    std::optional<client_type> client_;

    std::vector<violation> violations_;
    std::size_t steps_ = 0;
    bool in_final_ = false;
    bool started_ = false;
    bool stop_issued_ = false;
    bool destroyed_ = false;
    int stopped_count_ = 0;
    int current_ = 0;                      // the connection on_open reported last
    std::map<int, time_point> retired_at_; // replaced by on_open(handover = true)
    std::set<std::string> rejected_;       // I1
    int stale_upto_ = 0;                   // I1: tok-1 .. tok-<this> expired
    std::optional<std::chrono::milliseconds> step_retry_after_; // I6
    std::optional<time_point> retry_not_before_;                // I6
    std::map<std::string, time_point> issued_at_;               // I9: fresh tokens
    bool step_normal_expiry_ = false; // I9: this step closed a connection for expiry, in time
    int must_deliver_ = 0;            // I8: the connection of this step's server message
    int sends_ = 0;
    int server_messages_ = 0;
    std::vector<std::string> accepted_; // I5
    struct async_op {
        std::string data;
        int completions;
        std::error_code result;
    };
    std::vector<async_op> async_;   // I5: async_send and its completions
    bool restart_pending_ = false;  // start() while closing: a new run after on_stopped
    std::set<std::string> dropped_; // I5
    std::vector<std::string> delivered_;
};

// ---- replay -------------------------------------------------------------------

struct result {
    std::string config_name;
    std::vector<event> trace;
    std::vector<std::size_t> skipped; ///< events not enabled when their turn came
    std::vector<std::size_t> applied; ///< the others, in order
    std::vector<violation> violations;

    bool ok() const { return violations.empty(); }
    bool valid() const { return skipped.empty(); }
    bool has(const std::string& id) const {
        return std::any_of(violations.begin(), violations.end(),
                           [&](const violation& v) { return v.id == id; });
    }
    std::string report() const {
        std::ostringstream os;
        os << "config " << config_name << ", trace {" << to_string(trace) << "}\n";
        for (auto i : skipped)
            os << "  skipped (not enabled): " << to_string(trace[i]) << "\n";
        if (violations.empty()) os << "  all invariants hold\n";
        for (const auto& v : violations) {
            os << "  " << v.id << " after ";
            if (v.step > applied.size())
                os << "the whole trace, in the final check";
            else
                os << "step " << applied[v.step - 1] + 1 << " ("
                   << to_string(trace[applied[v.step - 1]]) << ")";
            os << ": " << v.what << "\n";
        }
        return os.str();
    }
};

/// Replays `trace` in a fresh world. `strict`: stop at the first event that is
/// not enabled (the checker's use); otherwise skip it and go on (regression
/// tests: a fixed client may not offer the same events). `final_check`: then
/// check liveness and the stop (I4, I5, I7).
inline result run(const std::vector<event>& trace, const config& c, bool strict,
                  bool final_check = true) {
    result r;
    r.config_name = c.name;
    r.trace = trace;
    world w(c);
    for (std::size_t i = 0; i < trace.size(); ++i) {
        if (!w.is_enabled(trace[i])) {
            r.skipped.push_back(i);
            if (strict) {
                r.violations = w.violations();
                return r;
            }
            continue;
        }
        r.applied.push_back(i);
        w.apply(trace[i]);
    }
    if (final_check) w.check_final();
    r.violations = w.violations();
    return r;
}

/// Replays a trace through a fresh world, then checks liveness and the stop.
inline result replay(std::initializer_list<event> trace, const config& c = config::base()) {
    return run(std::vector<event>(trace), c, false);
}

} // namespace mc
