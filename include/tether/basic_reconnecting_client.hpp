// tether: a WebSocket client that reconnects, refreshes its token exactly when
// needed, backs off per failure class and knows when to stop.
//
// The client is an explicit state machine. Its transition table is written
// in docs/design.md ("The state machine"); every event handler below is a
// switch over client_state that mirrors one column of that table, and every
// close decision is carried out in one place, apply().
#ifndef TETHER_BASIC_RECONNECTING_CLIENT_HPP
#define TETHER_BASIC_RECONNECTING_CLIENT_HPP

#include <tether/backoff/concept.hpp>
#include <tether/backoff/exponential_backoff.hpp>
#include <tether/client_options.hpp>
#include <tether/close_policy/concept.hpp>
#include <tether/close_policy/default_close_policy.hpp>
#include <tether/detail/handler_list.hpp>
#include <tether/detail/policy_storage.hpp>
#include <tether/events.hpp>
#include <tether/token_policy/concept.hpp>
#include <tether/token_policy/no_token.hpp>
#include <tether/transport/concept.hpp>

#include <tether/detail/net.hpp>
#include <tether/detail/shared_copy.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN

namespace detail {
template <class Executor>
using running_in_this_thread_expr =
    decltype(std::declval<const Executor&>().running_in_this_thread());

template <class Executor> bool running_in_this_thread(const Executor& ex) {
    if constexpr (is_detected_v<running_in_this_thread_expr, Executor>)
        return ex.running_in_this_thread();
    else
        return false; // unknown: always post
}

/// True when two clients may share one copy of their options. Compares every
/// field (a field added to client_options must be added here).
inline bool same_client_settings(const client_options& a, const client_options& b) {
    return a.url == b.url && a.headers == b.headers && a.subprotocols == b.subprotocols &&
           a.queue_capacity == b.queue_capacity && a.overflow == b.overflow &&
           a.min_uptime == b.min_uptime && a.auth_failure_limit == b.auth_failure_limit &&
           a.auth_failure_uptime == b.auth_failure_uptime &&
           a.renew_before_expiry == b.renew_before_expiry && a.handover_drain == b.handover_drain &&
           a.max_attempts == b.max_attempts && a.max_elapsed == b.max_elapsed;
}

/// Validated options, shared: while a client made with equal options is
/// alive, its copy is returned again (152 bytes and the URL's buffer per
/// client otherwise; many clients usually share one configuration). Read-only
/// once made. Throws std::system_error (error::invalid_option).
inline std::shared_ptr<const client_options> shared_client_options(client_options o) {
    o.validate();
    return shared_copy(std::move(o), &same_client_settings);
}
} // namespace detail

/// A WebSocket client that stays connected. See README.md for the flow:
/// token -> handshake -> open -> close_event -> ClosePolicy -> (refresh) ->
/// Backoff -> again, or stop with a reason.
///
/// All state lives on the transport's executor and every handler runs there:
/// run it on one thread (the websocketpp transport refuses an io_context run
/// by several). start(), stop(), send(), async_send() and the accessors for
/// state() and counters() may be called from any thread. Register handlers
/// before start() or on the executor.
template <class Transport, class TokenPolicy = no_token, class ClosePolicy = default_close_policy,
          class Backoff = exponential_backoff>
class basic_reconnecting_client {
    // One static_assert per row of each concept table (see the concept
    // headers): a policy missing an expression fails here, naming it.
    static_assert(detail::transport_rows<Transport>::checked);
    static_assert(detail::token_policy_rows<TokenPolicy>::checked);
    static_assert(detail::close_policy_rows<ClosePolicy>::checked);
    static_assert(detail::backoff_rows<Backoff>::checked);

    class impl;
    using completion = std::function<void(std::error_code)>;

public:
    using transport_type = Transport;
    using token_policy_type = TokenPolicy;
    using close_policy_type = ClosePolicy;
    using backoff_type = Backoff;
    using executor_type = typename Transport::executor_type;
    using clock_type = typename Transport::clock_type;

    /// Throws std::system_error (error::invalid_option) when an option is invalid.
    explicit basic_reconnecting_client(client_options options, Transport transport = Transport(),
                                       TokenPolicy token_policy = TokenPolicy(),
                                       ClosePolicy close_policy = ClosePolicy(),
                                       Backoff backoff = Backoff())
        : impl_(std::make_shared<impl>(std::move(options), std::move(transport),
                                       std::move(token_policy), std::move(close_policy),
                                       std::move(backoff))) {}

    basic_reconnecting_client(const basic_reconnecting_client&) = delete;
    basic_reconnecting_client& operator=(const basic_reconnecting_client&) = delete;
    basic_reconnecting_client(basic_reconnecting_client&&) noexcept = default;
    basic_reconnecting_client& operator=(basic_reconnecting_client&&) = delete;

    /// Safe with work in flight: no handler of this client runs after the
    /// destructor returns (when destroyed on the executor's thread, or while
    /// the executor is not running); the open connection is closed gracefully
    /// if the executor keeps running.
    ~basic_reconnecting_client() {
        if (impl_) impl_->detach();
    }

    // --- control (any thread) ---------------------------------------------

    /// Starts connecting. While running it does nothing. After a stop (yours,
    /// or the client's own decision) it starts a new run with the same
    /// policies, handlers and queue settings: the ladders, the breaker and
    /// the retry limits start over; counters keep counting. stop() then
    /// start() restarts once the stop has completed (on_stopped comes first).
    void start() {
        impl_->post([](impl& i) { i.on_start(); });
    }

    /// Closes gracefully (1000), cancels timers and token requests, then
    /// reports on_stopped exactly once. Idempotent.
    void stop() {
        impl_->post([](impl& i) { i.on_stop(make_error_code(error::stopped_by_user)); });
    }

    /// Make-before-break: while open, gets a token and opens a second
    /// connection; when it opens, it becomes the current one (on_open with
    /// `handover == true`) and the old one retires: its messages are still
    /// delivered until the server closes it, or until
    /// `client_options::handover_drain` has passed and we close it with 1000.
    /// If the new connection fails, the old one stays. Does nothing unless
    /// open and no handover is under way.
    void handover() {
        impl_->post([](impl& i) { i.on_handover(); });
    }

    /// Drops the current connection as dead (a liveness check of your own
    /// failed) and reconnects on the network ladder at once, without waiting
    /// for the old socket's close; `why` is reported in the close_event. Does
    /// nothing unless connecting or open.
    void reconnect(std::error_code why = make_error_code(error::idle_timeout)) {
        impl_->post([why](impl& i) { i.on_reconnect(why); });
    }

    /// Sends now when open, otherwise queues (bounded; see client_options).
    /// Returns error::queue_full (reject policy) or error::not_running. A
    /// message accepted here is either written to an open connection or
    /// reported through on_dropped.
    std::error_code send(std::string data, message_kind kind = message_kind::text) {
        return impl_->send(std::move(data), kind, {});
    }

    /// Like send(), with an Asio completion token (a callback
    /// `void(std::error_code)`, `net::use_future`, `net::use_awaitable`,
    /// ...). Completes with no error once the message was written to an open
    /// connection, or with the reason it never will be: error::queue_full,
    /// error::not_running, or the transport's write error. The completion runs
    /// on the handler's associated executor (default: the client's). Its
    /// signature is Asio's: `void(std::error_code)`, and in Boost mode
    /// `void(boost::system::error_code)` (which converts to std::error_code),
    /// so Boost.Asio's tokens treat it as an error.
    template <class CompletionToken>
    auto async_send(std::string data, message_kind kind, CompletionToken&& token) {
        return net::async_initiate<CompletionToken, void(detail::net_error_code)>(
            [](auto handler, impl* i, std::string d, message_kind k) {
                auto ex = net::get_associated_executor(handler, i->transport().get_executor());
                auto h = std::make_shared<decltype(handler)>(std::move(handler));
                completion done = [ex, h](std::error_code ec) {
                    net::post(ex, [h, ec]() { (*h)(detail::net_error_code(ec)); });
                };
                if (const std::error_code ec = i->send(std::move(d), k, done)) done(ec);
            },
            token, impl_.get(), std::move(data), kind);
    }
    template <class CompletionToken> auto async_send(std::string data, CompletionToken&& token) {
        return async_send(std::move(data), message_kind::text,
                          std::forward<CompletionToken>(token));
    }

    /// Registers a message sent first thing on every open, before the queue
    /// (subscriptions). Call before start().
    void send_on_open(std::string data, message_kind kind = message_kind::text) {
        impl_->on_open_messages_.push_back({std::move(data), kind, {}});
    }

    // --- handlers ----------------------------------------------------------
    //
    // Each on_*() adds a subscriber (an event may have several; they run in
    // the order registered) and returns its id for remove_handler(). Register
    // and remove before start(), or on the client's executor: from a handler
    // (a handler may add or remove handlers, itself included; one added
    // during an event is called from the next event on) or from a function
    // posted to get_executor(). Not from another thread while the client runs.

    handler_id on_state_change(std::function<void(const state_change_event&)> f) {
        return impl_->add(impl_->h_.state, std::move(f));
    }
    handler_id on_open(std::function<void(const open_event&)> f) {
        return impl_->add(impl_->h_.open, std::move(f));
    }
    handler_id on_message(std::function<void(const message_view&)> f) {
        return impl_->add(impl_->h_.message, std::move(f));
    }
    handler_id on_close(std::function<void(const close_event&, const reconnect_decision&)> f) {
        return impl_->add(impl_->h_.close, std::move(f));
    }
    handler_id on_retry(std::function<void(const retry_event&)> f) {
        return impl_->add(impl_->h_.retry, std::move(f));
    }
    handler_id on_token(std::function<void(const token_event&)> f) {
        return impl_->add(impl_->h_.token, std::move(f));
    }
    handler_id on_token_failure(std::function<void(const token_failure_event&)> f) {
        return impl_->add(impl_->h_.token_failure, std::move(f));
    }
    handler_id on_dropped(std::function<void(const dropped_message&)> f) {
        return impl_->add(impl_->h_.dropped, std::move(f));
    }
    handler_id on_stopped(std::function<void(const stopped_event&)> f) {
        return impl_->add(impl_->h_.stopped, std::move(f));
    }
    /// Removes one handler registered on this client; false when `id` names
    /// none (already removed, or another client's). Same threading rule as
    /// registration.
    bool remove_handler(handler_id id) noexcept { return impl_ && impl_->h_.remove(id); }

    // --- observation (any thread) ----------------------------------------

    client_state state() const noexcept { return impl_->state_.load(std::memory_order_acquire); }
    client_counters counters() const noexcept { return impl_->counters_.snapshot(); }
    /// Bytes accepted by send()/async_send() and not yet written to the
    /// socket: the client's queue plus what the transport holds unsent on
    /// the current connection (when the Transport reports it; see its
    /// concept). Exact on the executor; from other threads the transport's
    /// part is as of its last write.
    std::size_t buffered_amount() const { return impl_->buffered_amount(); }
    /// The high-water mark: the largest buffered_amount() seen since the
    /// client was made.
    std::size_t buffered_amount_peak() const noexcept {
        return impl_->buffered_peak_.load(std::memory_order_relaxed);
    }
    const client_options& options() const noexcept { return impl_->opts(); }
    executor_type get_executor() const { return impl_->transport().get_executor(); }

    // --- policies (touch only on the executor, or before start()) ----------

    Transport& transport() noexcept { return impl_->transport(); }
    TokenPolicy& token_policy() noexcept { return impl_->token_policy(); }
    ClosePolicy& close_policy() noexcept { return impl_->close_policy(); }
    Backoff& backoff() noexcept { return impl_->backoff(); }

private:
    class impl : public std::enable_shared_from_this<impl> {
    public:
        using time_point = typename clock_type::time_point;
        using duration = typename clock_type::duration;
        using timer_type = typename Transport::timer_type;

        impl(client_options o, Transport t, TokenPolicy tp, ClosePolicy cp, Backoff b)
            : shared_opts_(detail::shared_client_options(std::move(o))), transport_(std::move(t)),
              policies_(std::move(tp), std::move(cp), std::move(b)) {}

        Transport& transport() noexcept { return transport_; }
        TokenPolicy& token_policy() noexcept { return policies_.template get<0>(); }
        ClosePolicy& close_policy() noexcept { return policies_.template get<1>(); }
        Backoff& backoff() noexcept { return policies_.template get<2>(); }

        template <class F> void post(F f) {
            net::post(transport_.get_executor(),
                      [self = this->shared_from_this(), f = std::move(f)]() mutable { f(*self); });
        }

        // ---- any thread --------------------------------------------------

        // Destroyed with async_sends still queued (the client object went while
        // a connection was closing): like any Asio object destroyed with
        // operations pending, they complete with "cancelled". Nothing else
        // runs here: the completions are posted to their executors.
        ~impl() {
            if (const auto left = queue_.take())
                for (outgoing& m : *left)
                    if (m.done) m.done(make_error_code(error::operation_cancelled));
        }

        void detach() {
            detached_.store(true, std::memory_order_release);
            post([](impl& i) { i.on_stop(make_error_code(error::stopped_by_user)); });
        }

        // `done`, when set, learns the message's fate (async_send); the return
        // value is for the caller of send() and means "not accepted".
        std::error_code send(std::string data, message_kind kind, completion done) {
            if (detail::running_in_this_thread(transport_.get_executor()) &&
                state() == client_state::open) {
                std::unique_lock<std::mutex> lock(queue_mutex_);
                if (queue_.empty()) {
                    lock.unlock();
                    const std::error_code ec = transport_.send(current_->id, data, kind);
                    if (ec) return ec; // not accepted: the caller still has the message
                    counters_.messages_sent.fetch_add(1, std::memory_order_relaxed);
                    sample_transport_buffer();
                    if (done) done({});
                    return {};
                }
            }
            std::optional<outgoing> dropped;
            {
                // `closed_` and the queue change together under the lock, so a
                // message is either queued before finish() takes the queue (and
                // reported dropped there) or refused here: never lost.
                std::lock_guard<std::mutex> lock(queue_mutex_);
                if (closed_) return make_error_code(error::not_running);
                if (queue_.size() >= opts().queue_capacity) {
                    if (opts().overflow == overflow_policy::reject)
                        return make_error_code(error::queue_full);
                    dropped = std::move(queue_.front());
                    queue_.pop_front();
                    queued_bytes_ -= dropped->data.size();
                }
                queued_bytes_ += data.size();
                note_buffered(queued_bytes_ + transport_buffered_.load(std::memory_order_relaxed));
                queue_.push_back({std::move(data), kind, std::move(done)});
            }
            post([dropped = std::move(dropped)](impl& i) mutable {
                if (dropped)
                    i.report_dropped(std::move(*dropped), make_error_code(error::queue_full));
                if (i.state() == client_state::open) i.flush();
            });
            return {};
        }

        // ---- events from the API (executor only) ---------------------------

        void on_start() {
            switch (state()) {
            case client_state::idle: return begin_attempt();
            case client_state::stopped: return restart();
            case client_state::closing: restart_after_stop_ = true; return;
            case client_state::acquiring_token:
            case client_state::connecting:
            case client_state::open:
            case client_state::waiting_to_retry: return; // running
            }
        }

        // A new run after a stop: what judged the last run starts over.
        void restart() {
            if (detached_.load(std::memory_order_acquire)) return;
            auth_ = auth_guard{};
            failed_attempts_ = 0;
            failing_since_.reset();
            backoff().reset();
            had_open_ = false;
            last_close_.reset();
            stop_reason_ = {};
            {
                std::lock_guard<std::mutex> lock(queue_mutex_);
                closed_ = false;
            }
            begin_attempt();
        }

        void on_stop(std::error_code why) {
            switch (state()) {
            case client_state::idle:
            case client_state::acquiring_token:
            case client_state::waiting_to_retry: return finish(why);
            case client_state::connecting:
            case client_state::open:
                // Graceful: the current connection's close completes the stop.
                stop_reason_ = why;
                abandon_handover();
                close_retiring(true);
                disarm(renew_timer_);
                set_state(client_state::closing);
                close_slot(*current_, close_code::normal, "");
                return;
            case client_state::closing: restart_after_stop_ = false; return;
            case client_state::stopped: return;
            }
        }

        void on_reconnect(std::error_code why) {
            switch (state()) {
            case client_state::connecting:
            case client_state::open: break;
            case client_state::idle:
            case client_state::acquiring_token:
            case client_state::closing:
            case client_state::waiting_to_retry:
            case client_state::stopped: return;
            }
            // Our own liveness verdict: the connection is dead now. It is
            // retired at once (its close, when the transport reports it, is
            // only counted) and the decision is applied without waiting.
            slot old = take_current();
            close_event ev;
            ev.error = why;
            ev.initiated_locally = true;
            ev.was_open = old.open;
            if (old.open)
                ev.uptime = std::chrono::duration_cast<std::chrono::nanoseconds>(transport_.now() -
                                                                                 old.opened_at);
            retire_now(old, close_code::going_away, "");
            lost_current(reconnect_decision::reconnect(failure_class::network), std::move(ev), old);
        }

        void on_handover() {
            switch (state()) {
            case client_state::open: break;
            case client_state::idle:
            case client_state::acquiring_token:
            case client_state::connecting:
            case client_state::closing:
            case client_state::waiting_to_retry:
            case client_state::stopped: return;
            }
            if (handover_under_way()) return;
            close_retiring(true); // never more than two connections at once
            request_token(token_purpose::handover);
        }

        // ---- events from the Transport (executor only) --------------------

        void on_transport_open(connection_id id, const open_info& info) {
            if (next_ && next_->id == id) return next_opened(info);
            if (!current_ || current_->id != id) return; // retiring: nothing to do
            switch (state()) {
            case client_state::connecting: return current_opened(info);
            case client_state::closing: return; // stop() already closes it
            case client_state::idle:
            case client_state::acquiring_token:
            case client_state::open:
            case client_state::waiting_to_retry:
            case client_state::stopped: return; // cannot happen: no current slot, or opened once
            }
        }

        void on_transport_message(connection_id id, const message_view& m) {
            bool deliver = false;
            switch (state()) {
            case client_state::open: deliver = current_->id == id || is_retiring(id); break;
            case client_state::idle:
            case client_state::acquiring_token:
            case client_state::connecting:
            case client_state::waiting_to_retry: deliver = is_retiring(id); break; // it drains
            case client_state::closing:
            case client_state::stopped: break;
            }
            if (!deliver) return;
            counters_.messages_received.fetch_add(1, std::memory_order_relaxed);
            counters_.bytes_received.fetch_add(m.data.size(), std::memory_order_relaxed);
            emit(h_.message, m);
        }

        void on_transport_close(connection_id id, close_event&& ev) {
            if (std::optional<slot> r = take_retiring(id)) {
                // No decision to take, but what the server said still counts:
                // an expiry close of a draining connection spends its token.
                counters_.closes.fetch_add(1, std::memory_order_relaxed);
                if (state() == client_state::stopped || r->close_sent)
                    return; // ours: nothing to learn
                ev.replaced = true;
                if (r->open)
                    ev.uptime = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        transport_.now() - r->opened_at);
                return apply(close_policy().decide(ev), ev, origin::retiring, *r);
            }
            if (next_ && next_->id == id) {
                counters_.closes.fetch_add(1, std::memory_order_relaxed);
                return next_failed(std::move(ev));
            }
            if (!current_ || current_->id != id) return;
            counters_.closes.fetch_add(1, std::memory_order_relaxed);
            slot s = take_current();
            if (s.open)
                ev.uptime = std::chrono::duration_cast<std::chrono::nanoseconds>(transport_.now() -
                                                                                 s.opened_at);
            switch (state()) {
            case client_state::connecting:
            case client_state::open: {
                if (ev.http_status != 0)
                    counters_.rejected_handshakes.fetch_add(1, std::memory_order_relaxed);
                const reconnect_decision d = close_policy().decide(ev);
                return lost_current(d, std::move(ev), s);
            }
            case client_state::closing:
                if (s.open) closed_at_ = transport_.now();
                emit(h_.close, ev, reconnect_decision::stop(stop_reason_));
                return finish(stop_reason_, std::move(ev));
            case client_state::idle:
            case client_state::acquiring_token:
            case client_state::waiting_to_retry:
            case client_state::stopped: return; // cannot happen: no current slot
            }
        }

    private:
        friend class basic_reconnecting_client;

        struct outgoing {
            std::string data;
            message_kind kind;
            completion done; // async_send's, or empty
        };
        /// The send queue. Its std::deque is made when the first message is
        /// queued: an empty libstdc++ deque already holds a 512-byte block and
        /// its map, and a client that sends only while open never queues.
        /// Once made it stays (a client that queued once will again).
        class send_queue {
        public:
            bool empty() const noexcept { return !q_ || q_->empty(); }
            std::size_t size() const noexcept { return q_ ? q_->size() : 0; }
            outgoing& front() { return q_->front(); }
            void pop_front() { q_->pop_front(); }
            void push_back(outgoing m) {
                if (!q_) q_ = std::make_unique<std::deque<outgoing>>();
                q_->push_back(std::move(m));
            }
            /// Everything queued (null when nothing ever was); the queue is empty after.
            std::unique_ptr<std::deque<outgoing>> take() noexcept { return std::move(q_); }

        private:
            std::unique_ptr<std::deque<outgoing>> q_;
        };
        struct handlers {
            detail::handler_list<void(const state_change_event&)> state;
            detail::handler_list<void(const open_event&)> open;
            detail::handler_list<void(const message_view&)> message;
            detail::handler_list<void(const close_event&, const reconnect_decision&)> close;
            detail::handler_list<void(const retry_event&)> retry;
            detail::handler_list<void(const token_event&)> token;
            detail::handler_list<void(const token_failure_event&)> token_failure;
            detail::handler_list<void(const dropped_message&)> dropped;
            detail::handler_list<void(const stopped_event&)> stopped;

            bool remove(handler_id id) noexcept {
                return state.remove(id) || open.remove(id) || message.remove(id) ||
                       close.remove(id) || retry.remove(id) || token.remove(id) ||
                       token_failure.remove(id) || dropped.remove(id) || stopped.remove(id);
            }
        };
        /// client_counters' atomic twin, generated from the same list.
        struct atomic_counters {
#define TETHER_DETAIL_ATOMIC(name, what) std::atomic<std::uint64_t> name{0};
            TETHER_CLIENT_COUNTERS(TETHER_DETAIL_ATOMIC)
#undef TETHER_DETAIL_ATOMIC
            client_counters snapshot() const noexcept {
                client_counters c;
#define TETHER_DETAIL_LOAD(name, what) c.name = name.load(std::memory_order_relaxed);
                TETHER_CLIENT_COUNTERS(TETHER_DETAIL_LOAD)
#undef TETHER_DETAIL_LOAD
                return c;
            }
        };

        /// One connection and the credential it carries. `current` is the
        /// connection the client stands on (connecting, open, or closing for
        /// stop); `next` is a handover's new connection; `retiring` ones were
        /// replaced and drain until the server closes them or their time is up.
        /// What a connection keeps of its token (its endpoint served to connect).
        struct held_token {
            held_token() = default;
            explicit held_token(token&& t) noexcept
                : value(std::move(t.value)), lifetime(t.lifetime), fresh(t.fresh) {}
            secret value;
            std::optional<std::chrono::seconds> lifetime;
            bool fresh = false;
        };

        struct slot {
            connection_id id = 0;
            held_token tok;           ///< the credential this connection carries
            time_point obtained_at{}; ///< when the client received `tok`
            bool open = false;
            time_point opened_at{};
            time_point close_at{};   ///< retiring: when the drain ends
            bool close_sent = false; ///< we asked the transport to close it
        };

        enum class token_purpose : unsigned char { attempt, handover };
        /// The one token request a client may have in flight.
        struct token_request {
            bool pending = false;
            token_purpose purpose = token_purpose::attempt;
            std::uint64_t gen = 0; ///< completions of earlier requests are ignored
        };

        /// The auth-failure breaker and the rejected-token guard.
        struct auth_guard {
            unsigned strikes = 0;
            bool stale_retry_used = false; ///< a rejected cached token got its free refresh
            bool after_rejection = false;  ///< the next token replaces a rejected one
            bool request_predates_rejection = false;
            bool short_token_retry = false; ///< a nearly expired cached token was sent back once
            std::vector<secret> rejected;   ///< the last few tokens the server refused

            bool is_rejected(const secret& s) const {
                return !s.empty() &&
                       std::find(rejected.begin(), rejected.end(), s) != rejected.end();
            }
            void remember(const secret& s, bool request_pending) {
                if (request_pending) request_predates_rejection = true;
                if (s.empty() || is_rejected(s)) return;
                if (rejected.size() == 8) rejected.erase(rejected.begin());
                rejected.push_back(s);
            }
            void credential_works() {
                strikes = 0;
                stale_retry_used = false;
            }
        };

        /// A timer whose stale completions are told apart by generation. The
        /// timer is made when first armed: an open client has none armed (an
        /// asio::steady_timer is 120 bytes, and a client has three).
        struct guarded_timer {
            std::unique_ptr<timer_type> timer;
            std::uint64_t gen = 0;
        };

        template <class List, class F> handler_id add(List& list, F&& f) {
            const handler_id id{++last_handler_id_};
            list.add(id, std::forward<F>(f));
            return id;
        }

        template <class List, class... Args> void emit(List& list, Args&&... args) {
            if (!list.empty() && !detached_.load(std::memory_order_acquire))
                list(std::forward<Args>(args)...);
        }

        client_state state() const noexcept { return state_.load(std::memory_order_relaxed); }

        std::optional<close_event> last_close() const {
            return last_close_ ? std::optional<close_event>(*last_close_) : std::nullopt;
        }

        void set_state(client_state s) {
            const client_state from = state_.exchange(s, std::memory_order_acq_rel);
            if (from == s) return;
            counters_.state_changes.fetch_add(1, std::memory_order_relaxed);
            emit(h_.state, state_change_event{from, s});
        }

        // The one way this client arms a timer: `fn` runs when it fires,
        // unless it was disarmed or re-armed since.
        void arm(guarded_timer impl::*which, duration d, void (impl::*fn)()) {
            guarded_timer& t = this->*which;
            const std::uint64_t gen = ++t.gen;
            if (!t.timer) t.timer.reset(new timer_type(transport_.make_timer()));
            t.timer->expires_after(d.count() < 0 ? duration(0) : d);
            std::weak_ptr<impl> weak = this->shared_from_this();
            t.timer->async_wait([weak, which, gen, fn](std::error_code ec) {
                auto self = weak.lock();
                if (!self || ec || ((*self).*which).gen != gen) return;
                ((*self).*fn)();
            });
        }
        void disarm(guarded_timer& t) {
            ++t.gen;
            if (t.timer) t.timer->cancel();
        }

        // ---- 1. the token -------------------------------------------------

        void begin_attempt() {
            set_state(client_state::acquiring_token);
            auth_.short_token_retry = false;
            if (parked_) {
                token_result r = std::move(*parked_);
                parked_.reset();
                return attempt_token(std::move(r));
            }
            request_token(token_purpose::attempt);
        }

        // At most one request in flight: if one is under way, its result
        // serves whoever waits when it arrives.
        void request_token(token_purpose purpose) {
            token_req_.purpose = purpose;
            if (token_req_.pending) return;
            const std::uint64_t gen = ++token_req_.gen;
            token_req_.pending = true;
            counters_.token_requests.fetch_add(1, std::memory_order_relaxed);
            std::weak_ptr<impl> weak = this->shared_from_this();
            // The policy may complete inline or on any thread: always come back
            // through the executor, and ignore a completion we no longer wait for.
            token_policy().async_get_token([weak, gen](token_result r) {
                if (auto self = weak.lock())
                    self->post([gen, r = std::move(r)](impl& i) mutable {
                        i.on_token(gen, std::move(r));
                    });
            });
        }

        void cancel_token_request() {
            if (!token_req_.pending) return;
            ++token_req_.gen;
            token_req_.pending = false;
            auth_.request_predates_rejection = false;
            token_policy().cancel();
        }

        void on_token(std::uint64_t gen, token_result r) {
            if (!token_req_.pending || gen != token_req_.gen) return;
            token_req_.pending = false;
            const bool predates_rejection = std::exchange(auth_.request_predates_rejection, false);
            if (!r.error && auth_.is_rejected(r.value.value)) {
                if (predates_rejection)
                    return request_token(token_req_.purpose); // asked before: ask again
                r = token_result::failure(make_error_code(error::token_rejected),
                                          "the token policy offered a token the server rejected");
            }
            switch (token_req_.purpose) {
            case token_purpose::handover: return handover_token(std::move(r));
            case token_purpose::attempt: break;
            }
            switch (state()) {
            case client_state::acquiring_token: return attempt_token(std::move(r));
            case client_state::waiting_to_retry:
                // A request that was in flight when the wait began: its result
                // serves the attempt after the wait, with no second request.
                parked_ = std::make_unique<token_result>(std::move(r));
                return;
            case client_state::idle:
            case client_state::connecting:
            case client_state::open:
            case client_state::closing:
            case client_state::stopped:
                return; // cannot happen: cancelled when the client left these
            }
        }

        void attempt_token(token_result r) {
            if (r.error) return token_failed(std::move(r));
            // A cached token with less life left than a connection needs to
            // prove itself would only be closed for expiry right away: send it
            // back once and ask for a new one (a shared source refreshes once
            // for all its clients).
            if (!r.value.fresh && r.value.lifetime &&
                *r.value.lifetime < opts().auth_failure_uptime && !auth_.short_token_retry) {
                auth_.short_token_retry = true;
                token_policy().invalidate(r.value.value);
                return request_token(token_purpose::attempt);
            }
            counters_.tokens_acquired.fetch_add(1, std::memory_order_relaxed);
            emit(h_.token, token_event{r.value.fresh, std::exchange(auth_.after_rejection, false),
                                       r.value.lifetime});
            connect(std::move(r.value));
        }

        void token_failed(token_result&& r) {
            counters_.token_failures.fetch_add(1, std::memory_order_relaxed);
            const bool permanent = is_permanent_token_error(r.error);
            emit(h_.token_failure, token_failure_event{r.error, r.detail, permanent});
            if (permanent) return finish(r.error);
            reconnect_decision d = reconnect_decision::reconnect(
                r.error == error::rate_limited ? failure_class::overload : failure_class::auth);
            d.min_delay = r.retry_after;
            retry_after_failure(d);
        }

        // ---- 2. the handshake ---------------------------------------------

        connection_id start_connection(const token& t) {
            ++attempt_;
            counters_.connects.fetch_add(1, std::memory_order_relaxed);
            connect_request req;
            req.url = t.endpoint.empty() ? opts().url : t.endpoint;
            req.token = t.value;
            req.headers = opts().headers;
            req.subprotocols = opts().subprotocols;
            req.attempt = attempt_;
            return transport_.connect(req, *this); // never calls us inline
        }

        void connect(token t) {
            set_state(client_state::connecting);
            slot s;
            s.obtained_at = transport_.now();
            s.id = start_connection(t);
            s.tok = held_token(std::move(t));
            current_ = std::move(s);
        }

        // ---- 3. open --------------------------------------------------------

        void current_opened(const open_info& info) {
            const time_point now = transport_.now();
            current_->open = true;
            current_->opened_at = now;
            const auto downtime = had_open_ ? now - closed_at_ : duration(0);
            had_open_ = true;
            counters_.opens.fetch_add(1, std::memory_order_relaxed);
            set_state(client_state::open);
            opened(info, std::chrono::duration_cast<std::chrono::nanoseconds>(downtime), false);
        }

        void opened(const open_info& info, std::chrono::nanoseconds downtime, bool handover) {
            schedule_renewal();
            for (const auto& m : on_open_messages_)
                if (!transport_.send(current_->id, m.data, m.kind))
                    counters_.messages_sent.fetch_add(1, std::memory_order_relaxed);
            flush();
            emit(h_.open, open_event{attempt_, downtime, info.subprotocol, handover});
        }

        // ---- 4./5. a close, and the one place a decision is carried out -----

        // The current connection ended (or reconnect() declared it dead).
        void lost_current(const reconnect_decision& d, close_event&& ev, const slot& s) {
            disarm(renew_timer_);
            if (ev.was_open) {
                closed_at_ = transport_.now();
                if (ev.uptime >= opts().min_uptime) {
                    backoff().reset(); // a stable connection: start the ladders over
                    failed_attempts_ = 0;
                    failing_since_.reset();
                }
                if (ev.uptime >= opts().auth_failure_uptime) auth_.credential_works();
            }
            emit(h_.close, ev, d);
            if (last_close_)
                *last_close_ = ev;
            else
                last_close_ = std::make_unique<close_event>(ev);
            apply(d, ev, origin::current, s);
        }

        // A handover's new connection failed before it opened.
        void next_failed(close_event&& ev) {
            slot s = std::move(*next_);
            next_.reset();
            if (ev.http_status != 0)
                counters_.rejected_handshakes.fetch_add(1, std::memory_order_relaxed);
            const reconnect_decision d = close_policy().decide(ev);
            emit(h_.close, ev, d);
            apply(d, ev, origin::next, s);
        }

        enum class origin : unsigned char { current, next, retiring };

        // Every close decision lands here. `s` is the connection that ended;
        // for origin::next the current connection is still open.
        void apply(const reconnect_decision& d, const close_event& ev, origin from, const slot& s) {
            switch (d.action) {
            case close_action::stop: {
                const std::error_code why =
                    d.stop_reason ? d.stop_reason : make_error_code(error::stop_close_code);
                switch (from) {
                case origin::current: return finish(why, ev);
                case origin::next: return on_stop(why); // closes the current one gracefully
                case origin::retiring: return;          // it was on its way out
                }
                return;
            }
            case close_action::reconnect:
                switch (from) {
                case origin::current: return carry_on(&d);
                case origin::next:             // the current connection carries on
                case origin::retiring: return; // it was on its way out
                }
                return;
            case close_action::refresh_token_then_reconnect:
                spend(s.tok);
                switch (from) {
                case origin::current: return after_rejection(d, ev, s);
                case origin::next:
                case origin::retiring: return; // the token is spent; the current one carries on
                }
                return;
            }
        }

        // The token is spent: report it so it is never offered again.
        void spend(const held_token& t) {
            auth_.remember(t.value, token_req_.pending);
            token_policy().invalidate(t.value);
            counters_.tokens_rejected.fetch_add(1, std::memory_order_relaxed);
            auth_.after_rejection = true;
        }

        // A connection was closed for its token: a normal expiry, or the
        // credential itself is bad (the breaker).
        void after_rejection(const reconnect_decision& d, const close_event& ev, const slot& s) {
            if (next_ && next_->tok.value == s.tok.value)
                abandon_handover(); // carries the same token
            if (is_normal_expiry(ev, s)) {
                auth_.credential_works();
                return carry_on(nullptr); // refresh and go: no delay, no strike
            }
            // Only tokens fetched for this attempt count; a stale cached token
            // gets one immediate refresh (the close and the new token crossed).
            if (s.tok.fresh && ++auth_.strikes >= opts().auth_failure_limit)
                return finish(make_error_code(error::unauthorized), ev);
            if (!s.tok.fresh && !auth_.stale_retry_used) {
                auth_.stale_retry_used = true;
                return carry_on(nullptr);
            }
            if (next_) return promote_next(); // a handshake with another token is already under way
            // A token request in flight (a handover's) keeps going: its result
            // waits for the end of the backoff (parked_).
            token_req_.purpose = token_purpose::attempt;
            retry_after_failure(d);
        }

        // An expiry close is normal when the connection lived long enough to
        // prove the credential, or when it came at (or after) the expiry the
        // issuer announced for the token it carried.
        bool is_normal_expiry(const close_event& ev, const slot& s) const {
            if (!ev.was_open) return false;
            if (ev.uptime >= opts().auth_failure_uptime) return true;
            if (!s.tok.lifetime || *s.tok.lifetime < std::chrono::seconds(1)) return false;
            const auto life = std::chrono::duration_cast<duration>(*s.tok.lifetime);
            return transport_.now() >=
                   s.obtained_at + life - life / 10; // 10%: issuer clock and fetch time
        }

        // Go on after losing the current connection: a handover's connection
        // in progress takes over, a token request in flight serves the next
        // attempt; otherwise wait on the ladder (d) or start at once (no d).
        void carry_on(const reconnect_decision* d) {
            if (next_) return promote_next();
            if (token_req_.pending) {
                token_req_.purpose = token_purpose::attempt;
                auth_.short_token_retry = false;
                return set_state(client_state::acquiring_token);
            }
            if (d) return retry_after_failure(*d);
            begin_attempt();
        }

        void retry_after_failure(const reconnect_decision& d) {
            const time_point now = transport_.now();
            if (!failing_since_) failing_since_ = now;
            ++failed_attempts_;
            if (opts().max_attempts != 0 && failed_attempts_ >= opts().max_attempts)
                return finish(make_error_code(error::retries_exhausted), last_close());
            std::chrono::milliseconds delay = backoff().next_delay(d.cls);
            if (d.min_delay && *d.min_delay > delay) delay = *d.min_delay;
            if (opts().max_elapsed.count() != 0 &&
                (now - *failing_since_) + delay > opts().max_elapsed)
                return finish(make_error_code(error::retries_exhausted), last_close());
            set_state(client_state::waiting_to_retry);
            counters_.retries.fetch_add(1, std::memory_order_relaxed);
            emit(h_.retry, retry_event{delay, d.cls, attempt_ + 1});
            arm(&impl::retry_timer_, std::chrono::duration_cast<duration>(delay), &impl::retry_due);
        }

        void retry_due() {
            switch (state()) {
            case client_state::waiting_to_retry: return begin_attempt();
            case client_state::idle:
            case client_state::acquiring_token:
            case client_state::connecting:
            case client_state::open:
            case client_state::closing:
            case client_state::stopped: return; // disarmed when it left waiting_to_retry
            }
        }

        void finish(std::error_code why, std::optional<close_event> last = std::nullopt) {
            if (state() == client_state::stopped) return;
            disarm(retry_timer_);
            disarm(renew_timer_);
            abandon_handover();
            close_retiring(true);
            if (current_) {
                slot s = take_current();
                retire_now(s, close_code::normal, "");
            }
            cancel_token_request();
            parked_.reset();
            // send() refuses from here on, before anyone can see `stopped`.
            std::unique_ptr<std::deque<outgoing>> left;
            {
                std::lock_guard<std::mutex> lock(queue_mutex_);
                closed_ = true;
                left = queue_.take();
                queued_bytes_ = 0;
            }
            set_state(client_state::stopped);
            if (left)
                for (auto& m : *left)
                    report_dropped(std::move(m), make_error_code(error::not_running));
            counters_.stops.fetch_add(1, std::memory_order_relaxed);
            if (!last) last = last_close();
            emit(h_.stopped, stopped_event{why, std::move(last)});
            if (std::exchange(restart_after_stop_, false)) restart(); // start() during closing
        }

        // ---- make-before-break ------------------------------------------------

        bool handover_under_way() const {
            return next_ != nullptr ||
                   (token_req_.pending && token_req_.purpose == token_purpose::handover);
        }

        void handover_token(token_result r) {
            switch (state()) {
            case client_state::open: break;
            case client_state::idle:
            case client_state::acquiring_token:
            case client_state::connecting:
            case client_state::closing:
            case client_state::waiting_to_retry:
            case client_state::stopped:
                return; // cannot happen: the request changes purpose or is cancelled
            }
            if (r.error) {
                counters_.token_failures.fetch_add(1, std::memory_order_relaxed);
                const bool permanent = is_permanent_token_error(r.error);
                emit(h_.token_failure, token_failure_event{r.error, r.detail, permanent});
                if (permanent) on_stop(r.error);
                return; // the current connection stays
            }
            counters_.tokens_acquired.fetch_add(1, std::memory_order_relaxed);
            emit(h_.token, token_event{r.value.fresh, false, r.value.lifetime});
            slot s;
            s.obtained_at = transport_.now();
            s.id = start_connection(r.value);
            s.tok = held_token(std::move(r.value));
            next_ = std::make_unique<slot>(std::move(s));
        }

        void next_opened(const open_info& info) {
            slot old = take_current();
            current_ = std::move(*next_);
            next_.reset();
            current_->open = true;
            current_->opened_at = transport_.now();
            retire(std::move(old));
            counters_.opens.fetch_add(1, std::memory_order_relaxed);
            counters_.handovers.fetch_add(1, std::memory_order_relaxed);
            opened(info, std::chrono::nanoseconds(0), true);
        }

        // The current connection is gone; the handover's connection becomes
        // the attempt in progress.
        void promote_next() {
            current_ = std::move(*next_);
            next_.reset();
            set_state(client_state::connecting);
        }

        void abandon_handover() {
            if (token_req_.pending && token_req_.purpose == token_purpose::handover)
                cancel_token_request();
            if (next_) {
                slot s = std::move(*next_);
                next_.reset();
                retire_now(s, close_code::normal, "");
            }
        }

        // renew_before_expiry: hand over to a connection with a new token
        // before the current one expires, so the server never has to close
        // us for expiry.
        void schedule_renewal() {
            disarm(renew_timer_);
            if (opts().renew_before_expiry.count() <= 0 || !current_->tok.lifetime) return;
            const auto lifetime = std::chrono::duration_cast<duration>(*current_->tok.lifetime);
            const auto margin = std::chrono::duration_cast<duration>(opts().renew_before_expiry);
            if (lifetime <= margin) return; // nothing sensible to do: the close will come first
            const time_point due = current_->obtained_at + (lifetime - margin);
            arm(&impl::renew_timer_, due - transport_.now(), &impl::renew_due);
        }

        void renew_due() {
            switch (state()) {
            case client_state::open: break;
            case client_state::idle:
            case client_state::acquiring_token:
            case client_state::connecting:
            case client_state::closing:
            case client_state::waiting_to_retry:
            case client_state::stopped: return; // disarmed when the connection was lost
            }
            if (handover_under_way()) return;
            // The token is spent for new handshakes: make the policy fetch a
            // new one (a shared source refreshes once for all its clients).
            token_policy().invalidate(current_->tok.value);
            on_handover();
        }

        // ---- retiring connections ---------------------------------------------

        slot take_current() {
            slot s = std::move(*current_);
            current_.reset();
            transport_buffered_.store(0, std::memory_order_relaxed); // its bytes left with it
            return s;
        }

        void close_slot(slot& s, std::uint16_t code, std::string_view reason) {
            if (s.close_sent) return;
            s.close_sent = true;
            transport_.close(s.id, code, reason);
        }

        // Closed now; its close, when the transport reports it, is only counted.
        void retire_now(slot s, std::uint16_t code, std::string_view reason) {
            close_slot(s, code, reason);
            retiring_.push_back(std::move(s));
        }

        // The connection a handover replaced. websocketpp (like many
        // WebSocket stacks) drops data frames that arrive after it has sent
        // its close frame, so closing at once would lose what the server sent
        // just before it saw the new connection. The old connection drains
        // instead: it delivers until the server closes it (Genesys does, on
        // takeover) or until handover_drain has passed.
        void retire(slot old) {
            if (opts().handover_drain.count() == 0)
                return retire_now(std::move(old), close_code::normal, "handover");
            old.close_at =
                transport_.now() + std::chrono::duration_cast<duration>(opts().handover_drain);
            retiring_.push_back(std::move(old));
            arm_drain_timer();
        }
        void arm_drain_timer() {
            disarm(drain_timer_);
            std::optional<time_point> next;
            for (const auto& r : retiring_)
                if (!r.close_sent && (!next || r.close_at < *next)) next = r.close_at;
            if (next) arm(&impl::drain_timer_, *next - transport_.now(), &impl::drain_due);
        }
        void drain_due() { close_retiring(false); }
        // Closes the retiring connections whose drain is over (all of them
        // when `all`), then waits for the next one.
        void close_retiring(bool all) {
            const time_point now = transport_.now();
            for (std::size_t i = 0; i < retiring_.size(); ++i)
                if (all || retiring_[i].close_at <= now)
                    close_slot(retiring_[i], close_code::normal, "handover");
            if (all) return disarm(drain_timer_);
            arm_drain_timer();
        }
        bool is_retiring(connection_id id) const {
            return std::any_of(retiring_.begin(), retiring_.end(),
                               [id](const slot& r) { return r.id == id; });
        }
        std::optional<slot> take_retiring(connection_id id) {
            auto it = std::find_if(retiring_.begin(), retiring_.end(),
                                   [id](const slot& r) { return r.id == id; });
            if (it == retiring_.end()) return std::nullopt;
            slot r = std::move(*it);
            retiring_.erase(it);
            return r;
        }

        // ---- the send queue -----------------------------------------------------

        void report_dropped(outgoing&& m, std::error_code why) {
            counters_.dropped_messages.fetch_add(1, std::memory_order_relaxed);
            if (m.done) m.done(why);
            emit(h_.dropped, dropped_message{std::move(m.data), m.kind, why});
        }

        // ---- what is buffered ------------------------------------------------

        // The transport's unsent bytes on the current connection, sampled on
        // the executor after each write (what buffered_amount() reports from
        // other threads).
        void sample_transport_buffer() {
            std::size_t n = 0;
            if constexpr (detail::is_detected_v<detail::buffered_amount_expr, Transport>) {
                if (current_ && current_->open) n = transport_.buffered_amount(current_->id);
            }
            transport_buffered_.store(n, std::memory_order_relaxed);
            std::lock_guard<std::mutex> lock(queue_mutex_);
            note_buffered(queued_bytes_ + n);
        }

        void note_buffered(std::size_t total) noexcept {
            std::size_t peak = buffered_peak_.load(std::memory_order_relaxed);
            while (total > peak &&
                   !buffered_peak_.compare_exchange_weak(peak, total, std::memory_order_relaxed)) {
            }
        }

        std::size_t buffered_amount() {
            if (detail::running_in_this_thread(transport_.get_executor()))
                sample_transport_buffer();
            std::lock_guard<std::mutex> lock(queue_mutex_);
            return queued_bytes_ + transport_buffered_.load(std::memory_order_relaxed);
        }

        void flush() {
            for (;;) {
                outgoing m;
                {
                    std::lock_guard<std::mutex> lock(queue_mutex_);
                    if (queue_.empty() || state() != client_state::open) return;
                    m = std::move(queue_.front());
                    queue_.pop_front();
                    queued_bytes_ -= m.data.size();
                }
                if (const std::error_code ec = transport_.send(current_->id, m.data, m.kind))
                    report_dropped(std::move(m), ec); // accepted earlier: never lost silently
                else {
                    counters_.messages_sent.fetch_add(1, std::memory_order_relaxed);
                    sample_transport_buffer();
                    if (m.done) m.done({});
                }
            }
        }

        const client_options& opts() const noexcept { return *shared_opts_; }

        std::shared_ptr<const client_options> shared_opts_; // one copy for all equal options
        Transport transport_;
        detail::policy_storage<TokenPolicy, ClosePolicy, Backoff> policies_;
        guarded_timer retry_timer_; // waiting_to_retry -> acquiring_token
        guarded_timer renew_timer_; // renew_before_expiry
        guarded_timer drain_timer_; // closes retired connections after handover_drain
        handlers h_;
        std::uint64_t last_handler_id_ = 0;
        std::vector<outgoing> on_open_messages_;

        std::atomic<client_state> state_{client_state::idle};
        std::atomic<bool> detached_{false};
        bool closed_ = false; // under queue_mutex_: stopped, send() refuses
        // executor-only flags, here where they fill what would be padding
        bool restart_after_stop_ = false; // start() while closing
        bool had_open_ = false;
        unsigned failed_attempts_ = 0;
        atomic_counters counters_;

        std::mutex queue_mutex_;
        send_queue queue_;
        std::size_t queued_bytes_ = 0; // under queue_mutex_: the payload bytes in queue_
        std::atomic<std::size_t> transport_buffered_{0}; // sampled on the executor
        std::atomic<std::size_t> buffered_peak_{0};

        // executor-only state
        std::optional<slot> current_;
        // Rarely set (a handover under way, a token that arrived during a
        // backoff, the last close): held by pointer, 8 bytes each, where
        // std::optional took 144, 160 and 168 bytes in every client.
        std::unique_ptr<slot> next_;
        std::vector<slot> retiring_;
        token_request token_req_;
        std::unique_ptr<token_result> parked_; // arrived while waiting_to_retry
        auth_guard auth_;
        std::error_code stop_reason_; // closing: why
        std::uint64_t attempt_ = 0;
        std::optional<time_point> failing_since_;
        time_point closed_at_{};
        std::unique_ptr<close_event> last_close_;
    };

    std::shared_ptr<impl> impl_;
};

TETHER_NAMESPACE_END

#endif
