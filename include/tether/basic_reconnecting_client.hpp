// tether: a WebSocket client that reconnects, refreshes its token exactly when
// needed, backs off per failure class and knows when to stop.
#ifndef TETHER_BASIC_RECONNECTING_CLIENT_HPP
#define TETHER_BASIC_RECONNECTING_CLIENT_HPP

#include <tether/backoff/concept.hpp>
#include <tether/backoff/exponential_backoff.hpp>
#include <tether/client_options.hpp>
#include <tether/close_policy/concept.hpp>
#include <tether/close_policy/default_close_policy.hpp>
#include <tether/detail/policy_storage.hpp>
#include <tether/events.hpp>
#include <tether/token_policy/concept.hpp>
#include <tether/token_policy/no_token.hpp>
#include <tether/transport/concept.hpp>

#include <asio/post.hpp>

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
using running_in_this_thread_expr = decltype(std::declval<const Executor&>().running_in_this_thread());

template <class Executor>
bool running_in_this_thread(const Executor& ex) {
    if constexpr (is_detected_v<running_in_this_thread_expr, Executor>)
        return ex.running_in_this_thread();
    else
        return false; // unknown: always post
}
} // namespace detail

/// A WebSocket client that stays connected. See README.md for the flow:
/// token -> handshake -> open -> close_event -> ClosePolicy -> (refresh) ->
/// Backoff -> again, or stop with a reason.
///
/// All state lives on the transport's executor and every handler runs there;
/// run that executor on one thread or give the transport a strand. start(),
/// stop(), send() and the accessors for state() and counters() may be called
/// from any thread. Register handlers before start().
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

public:
    using transport_type = Transport;
    using token_policy_type = TokenPolicy;
    using close_policy_type = ClosePolicy;
    using backoff_type = Backoff;
    using executor_type = typename Transport::executor_type;
    using clock_type = typename Transport::clock_type;

    /// Throws std::invalid_argument when an option is invalid.
    explicit basic_reconnecting_client(client_options options, Transport transport = Transport(),
                                       TokenPolicy token_policy = TokenPolicy(),
                                       ClosePolicy close_policy = ClosePolicy(), Backoff backoff = Backoff())
        : impl_(std::make_shared<impl>(std::move(options), std::move(transport), std::move(token_policy),
                                       std::move(close_policy), std::move(backoff))) {}

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

    /// Starts connecting. A second call, or a call after stop(), does nothing.
    void start() { impl_->post([](impl& i) { i.do_start(); }); }

    /// Closes gracefully (1000), cancels timers and token requests, then
    /// reports on_stopped exactly once. Idempotent.
    void stop() { impl_->post([](impl& i) { i.do_stop(make_error_code(error::stopped_by_user)); }); }

    /// Make-before-break: while open, gets a token and opens a second
    /// connection; when it opens, it becomes the current one (on_open with
    /// `handover == true`) and the old one retires: its messages are still
    /// delivered until the server closes it, or until
    /// `client_options::handover_drain` has passed and we close it with 1000.
    /// If the new connection fails, the old one stays. Does nothing unless
    /// open and no handover is under way.
    void handover() { impl_->post([](impl& i) { i.do_handover(); }); }

    /// Drops the current connection as dead (a liveness check of your own
    /// failed) and reconnects on the network ladder; `why` is reported in the
    /// close_event. Does nothing unless connecting or open.
    void reconnect(std::error_code why = make_error_code(error::idle_timeout)) {
        impl_->post([why](impl& i) { i.do_reconnect(why); });
    }

    /// Sends now when open, otherwise queues (bounded; see client_options).
    /// Returns error::queue_full (reject policy) or error::not_running.
    std::error_code send(std::string data, message_kind kind = message_kind::text) {
        return impl_->send(std::move(data), kind);
    }

    /// Registers a message sent first thing on every open, before the queue
    /// (subscriptions). Call before start().
    void send_on_open(std::string data, message_kind kind = message_kind::text) {
        impl_->on_open_messages_.push_back({std::move(data), kind});
    }

    // --- handlers (register before start()) --------------------------------

    void on_state_change(std::function<void(const state_change_event&)> f) { impl_->h_.state = std::move(f); }
    void on_open(std::function<void(const open_event&)> f) { impl_->h_.open = std::move(f); }
    void on_message(std::function<void(const message_view&)> f) { impl_->h_.message = std::move(f); }
    void on_close(std::function<void(const close_event&, const reconnect_decision&)> f) {
        impl_->h_.close = std::move(f);
    }
    void on_retry(std::function<void(const retry_event&)> f) { impl_->h_.retry = std::move(f); }
    void on_token(std::function<void(const token_event&)> f) { impl_->h_.token = std::move(f); }
    void on_token_failure(std::function<void(const token_failure_event&)> f) {
        impl_->h_.token_failure = std::move(f);
    }
    void on_dropped(std::function<void(const dropped_message&)> f) { impl_->h_.dropped = std::move(f); }
    void on_stopped(std::function<void(const stopped_event&)> f) { impl_->h_.stopped = std::move(f); }

    // --- observation (any thread) ----------------------------------------

    client_state state() const noexcept { return impl_->state_.load(std::memory_order_acquire); }
    client_counters counters() const noexcept { return impl_->counters_.snapshot(); }
    const client_options& options() const noexcept { return impl_->opts_; }
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
        using timer_type = typename Transport::timer_type;

        impl(client_options o, Transport t, TokenPolicy tp, ClosePolicy cp, Backoff b)
            : opts_((o.validate(), std::move(o))), transport_(std::move(t)),
              policies_(std::move(tp), std::move(cp), std::move(b)), timer_(transport_.make_timer()),
              renew_timer_(transport_.make_timer()), drain_timer_(transport_.make_timer()) {}

        Transport& transport() noexcept { return transport_; }
        TokenPolicy& token_policy() noexcept { return policies_.template get<0>(); }
        ClosePolicy& close_policy() noexcept { return policies_.template get<1>(); }
        Backoff& backoff() noexcept { return policies_.template get<2>(); }

        template <class F>
        void post(F f) {
            asio::post(transport_.get_executor(),
                       [self = this->shared_from_this(), f = std::move(f)]() mutable { f(*self); });
        }

        // ---- user-facing entry points ------------------------------------

        void detach() {
            detached_.store(true, std::memory_order_release);
            post([](impl& i) { i.do_stop(make_error_code(error::stopped_by_user)); });
        }

        std::error_code send(std::string data, message_kind kind) {
            if (state_.load(std::memory_order_acquire) == client_state::stopped)
                return make_error_code(error::not_running);
            const bool here = detail::running_in_this_thread(transport_.get_executor());
            if (here && state_.load(std::memory_order_relaxed) == client_state::open && queue_empty()) {
                const std::error_code ec = transport_.send(conn_, data, kind);
                if (!ec) counters_.messages_sent.fetch_add(1, std::memory_order_relaxed);
                return ec;
            }
            std::vector<dropped_message> dropped;
            {
                std::lock_guard<std::mutex> lock(queue_mutex_);
                if (queue_.size() >= opts_.queue_capacity) {
                    if (opts_.overflow == overflow_policy::reject) return make_error_code(error::queue_full);
                    dropped.push_back({std::move(queue_.front().data), queue_.front().kind,
                                       make_error_code(error::queue_full)});
                    queue_.pop_front();
                }
                queue_.push_back({std::move(data), kind});
            }
            post([dropped = std::move(dropped)](impl& i) mutable {
                for (auto& d : dropped) i.report_dropped(std::move(d));
                if (i.state_ == client_state::open) i.flush();
            });
            return {};
        }

        // ---- the state machine (executor only) ---------------------------

        void do_start() {
            if (state_ != client_state::idle) return;
            begin_attempt();
        }

        void do_stop(std::error_code why) {
            if (stopping_ || state_ == client_state::stopped) return;
            stopping_ = true;
            stop_reason_ = why;
            abandon_handover();
            close_retiring(true);
            switch (state_.load(std::memory_order_relaxed)) {
            case client_state::connecting:
            case client_state::open:
                set_state(client_state::closing);
                transport_.close(conn_, close_code::normal, "");
                return; // on_transport_close finishes
            case client_state::closing: return;
            case client_state::acquiring_token:
            case client_state::waiting_to_retry:
            case client_state::idle:
            case client_state::stopped: break;
            }
            finish(why);
        }

        // ---- Transport sink ----------------------------------------------

        void do_reconnect(std::error_code why) {
            if (stopping_ || (state_ != client_state::open && state_ != client_state::connecting)) return;
            abandon_handover();
            forced_reason_ = why;
            transport_.close(conn_, close_code::going_away, "");
        }

        void do_handover() {
            if (stopping_ || state_ != client_state::open || handover_ != handover_phase::none) return;
            close_retiring(true); // never more than two connections at once
            handover_ = handover_phase::acquiring_token;
            request_token();
        }

        void on_transport_open(connection_id id, const open_info& info) {
            if (handover_ == handover_phase::connecting && id == next_conn_) return complete_handover(info);
            if (!has_conn_ || id != conn_) return;
            if (stopping_) return; // do_stop already asked for the close
            opened_at_ = transport_.now();
            const auto downtime = had_open_ ? opened_at_ - closed_at_ : typename clock_type::duration(0);
            had_open_ = true;
            counters_.opens.fetch_add(1, std::memory_order_relaxed);
            set_state(client_state::open);
            schedule_renewal();
            for (const auto& m : on_open_messages_) send_now(m.data, m.kind);
            flush();
            emit(h_.open, open_event{attempt_, std::chrono::duration_cast<std::chrono::nanoseconds>(downtime),
                                     info.subprotocol, false});
        }

        void on_transport_message(connection_id id, const message_view& m) {
            const bool current = has_conn_ && id == conn_ && state_ == client_state::open;
            if (!current && (stopping_ || !is_retiring(id))) return;
            counters_.messages_received.fetch_add(1, std::memory_order_relaxed);
            counters_.bytes_received.fetch_add(m.data.size(), std::memory_order_relaxed);
            emit(h_.message, m);
        }

        void on_transport_close(connection_id id, close_event&& ev) {
            if (forget_retiring(id)) {
                counters_.closes.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            if (handover_ == handover_phase::connecting && id == next_conn_) return handover_failed(std::move(ev));
            if (!has_conn_ || id != conn_) return;
            has_conn_ = false;
            ++renew_gen_;
            renew_timer_.cancel();
            counters_.closes.fetch_add(1, std::memory_order_relaxed);
            const time_point now = transport_.now();
            if (ev.was_open) {
                ev.uptime = std::chrono::duration_cast<std::chrono::nanoseconds>(now - opened_at_);
                closed_at_ = now;
            }
            if (forced_reason_) {
                // reconnect(): our own liveness verdict, not the server's doing
                ev.error = std::exchange(forced_reason_, std::error_code());
                ev.initiated_locally = true;
                if (!stopping_) {
                    const auto d = reconnect_decision::reconnect(failure_class::network);
                    emit(h_.close, ev, d);
                    last_close_ = ev;
                    return retry_after_failure(d);
                }
            }
            if (handover_ == handover_phase::connecting) return old_closed_during_handover(std::move(ev));
            // A handover's token request simply serves the reconnect instead.
            if (handover_ == handover_phase::acquiring_token) handover_ = handover_phase::none;
            if (ev.http_status != 0) counters_.rejected_handshakes.fetch_add(1, std::memory_order_relaxed);
            if (stopping_) {
                emit(h_.close, ev, reconnect_decision::stop(stop_reason_));
                finish(stop_reason_, std::move(ev));
                return;
            }
            reconnect_decision d = close_policy().decide(ev);
            if (ev.was_open && ev.uptime >= opts_.min_uptime) {
                backoff().reset(); // a stable connection: start the ladders over
                failed_attempts_ = 0;
                failing_since_.reset();
            }
            if (ev.was_open && ev.uptime >= opts_.auth_failure_uptime) {
                auth_strikes_ = 0; // the credential works
                stale_retry_used_ = false;
            }
            emit(h_.close, ev, d);
            last_close_ = ev;
            after_close(d, ev);
        }

    private:
        friend class basic_reconnecting_client;

        struct outgoing {
            std::string data;
            message_kind kind;
        };
        struct handlers {
            std::function<void(const state_change_event&)> state;
            std::function<void(const open_event&)> open;
            std::function<void(const message_view&)> message;
            std::function<void(const close_event&, const reconnect_decision&)> close;
            std::function<void(const retry_event&)> retry;
            std::function<void(const token_event&)> token;
            std::function<void(const token_failure_event&)> token_failure;
            std::function<void(const dropped_message&)> dropped;
            std::function<void(const stopped_event&)> stopped;
        };
        struct atomic_counters {
            std::atomic<std::uint64_t> connects{0}, opens{0}, closes{0}, rejected_handshakes{0},
                messages_received{0}, bytes_received{0}, messages_sent{0}, retries{0}, token_requests{0},
                tokens_acquired{0}, token_failures{0}, tokens_rejected{0}, dropped_messages{0},
                state_changes{0}, stops{0}, handovers{0};
            client_counters snapshot() const noexcept {
                const auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
                return {r(connects),      r(opens),         r(closes),         r(rejected_handshakes),
                        r(messages_received), r(bytes_received), r(messages_sent), r(retries),
                        r(token_requests), r(tokens_acquired), r(token_failures), r(tokens_rejected),
                        r(dropped_messages), r(state_changes), r(stops), r(handovers)};
            }
        };

        template <class F, class... Args>
        void emit(const F& f, Args&&... args) {
            if (f && !detached_.load(std::memory_order_acquire)) f(std::forward<Args>(args)...);
        }

        void set_state(client_state s) {
            const client_state from = state_.exchange(s, std::memory_order_acq_rel);
            if (from == s) return;
            counters_.state_changes.fetch_add(1, std::memory_order_relaxed);
            emit(h_.state, state_change_event{from, s});
        }

        // 1. ask the TokenPolicy
        void begin_attempt() {
            set_state(client_state::acquiring_token);
            request_token();
        }

        // At most one request in flight: if one is under way, its result
        // serves whoever waits when it arrives.
        void request_token() {
            if (token_pending_) return;
            const std::uint64_t gen = ++token_gen_;
            token_pending_ = true;
            counters_.token_requests.fetch_add(1, std::memory_order_relaxed);
            std::weak_ptr<impl> weak = this->shared_from_this();
            // The policy may complete inline or on any thread: always come back
            // through the executor, and ignore a completion we no longer wait for.
            token_policy().async_get_token([weak, gen](token_result r) {
                if (auto self = weak.lock())
                    self->post([gen, r = std::move(r)](impl& i) mutable { i.on_token(gen, std::move(r)); });
            });
        }

        void cancel_token_request() {
            ++token_gen_;
            token_pending_ = false;
            token_policy().cancel();
        }

        void on_token(std::uint64_t gen, token_result r) {
            if (gen != token_gen_ || stopping_) return;
            token_pending_ = false;
            const bool predates_rejection = std::exchange(request_predates_rejection_, false);
            if (handover_ == handover_phase::acquiring_token) return on_handover_token(std::move(r));
            if (state_ != client_state::acquiring_token) return; // nobody waits for it now
            if (!r.error && is_known_rejected(r.value.value) && predates_rejection)
                return request_token(); // asked before the rejection: ask again
            if (!r.error && is_known_rejected(r.value.value))
                r = token_result::failure(make_error_code(error::token_rejected),
                                          "the token policy offered a token the server rejected");
            if (r.error) {
                counters_.token_failures.fetch_add(1, std::memory_order_relaxed);
                const bool permanent = is_permanent_token_error(r.error);
                emit(h_.token_failure, token_failure_event{r.error, r.detail, permanent});
                if (permanent) return finish(r.error);
                reconnect_decision d = reconnect_decision::reconnect(
                    r.error == error::rate_limited ? failure_class::overload : failure_class::auth);
                d.min_delay = r.retry_after;
                return retry_after_failure(d);
            }
            counters_.tokens_acquired.fetch_add(1, std::memory_order_relaxed);
            emit(h_.token, token_event{r.value.fresh, after_rejection_, r.value.lifetime});
            after_rejection_ = false;
            token_ = std::move(r.value);
            token_obtained_at_ = transport_.now();
            connect();
        }

        // 2. handshake
        void connect() {
            set_state(client_state::connecting);
            ++attempt_;
            counters_.connects.fetch_add(1, std::memory_order_relaxed);
            connect_request req;
            req.url = token_.endpoint.empty() ? opts_.url : token_.endpoint;
            req.token = token_.value;
            req.headers = opts_.headers;
            req.subprotocols = opts_.subprotocols;
            req.attempt = attempt_;
            has_conn_ = true; // before connect(): a transport never calls the sink inline
            conn_ = transport_.connect(req, *this);
        }

        // 5. act on the ClosePolicy's decision
        void after_close(const reconnect_decision& d, const close_event& ev) {
            switch (d.action) {
            case close_action::stop:
                return finish(d.stop_reason ? d.stop_reason : make_error_code(error::stop_close_code), ev);
            case close_action::reconnect: return retry_after_failure(d);
            case close_action::refresh_token_then_reconnect: break;
            }
            // The token is spent: report it so it is never offered again.
            remember_rejected(token_.value);
            token_policy().invalidate(token_.value);
            counters_.tokens_rejected.fetch_add(1, std::memory_order_relaxed);
            after_rejection_ = true;
            const bool rejected_quickly = !ev.was_open || ev.uptime < opts_.auth_failure_uptime;
            if (!rejected_quickly) {
                // A token that worked for a while expired: refresh and go, no delay.
                token_ = token{};
                return begin_attempt();
            }
            // Auth-failure breaker: only tokens fetched for this attempt count;
            // a stale cached token gets one immediate refresh.
            const bool was_fresh = token_.fresh;
            token_ = token{};
            if (was_fresh && ++auth_strikes_ >= opts_.auth_failure_limit)
                return finish(make_error_code(error::unauthorized), ev);
            if (!was_fresh && !stale_retry_used_) {
                stale_retry_used_ = true;
                return begin_attempt();
            }
            retry_after_failure(d);
        }

        void retry_after_failure(const reconnect_decision& d) {
            const time_point now = transport_.now();
            if (!failing_since_) failing_since_ = now;
            ++failed_attempts_;
            if (opts_.max_attempts != 0 && failed_attempts_ >= opts_.max_attempts)
                return finish(make_error_code(error::retries_exhausted), last_close_);
            std::chrono::milliseconds delay = backoff().next_delay(d.cls);
            if (d.min_delay && *d.min_delay > delay) delay = *d.min_delay;
            if (opts_.max_elapsed.count() != 0 && (now - *failing_since_) + delay > opts_.max_elapsed)
                return finish(make_error_code(error::retries_exhausted), last_close_);
            set_state(client_state::waiting_to_retry);
            counters_.retries.fetch_add(1, std::memory_order_relaxed);
            emit(h_.retry, retry_event{delay, d.cls, attempt_ + 1});
            const std::uint64_t gen = ++timer_gen_;
            timer_.expires_after(delay);
            std::weak_ptr<impl> weak = this->shared_from_this();
            timer_.async_wait([weak, gen](std::error_code ec) {
                auto self = weak.lock();
                if (!self || ec || gen != self->timer_gen_ || self->stopping_ ||
                    self->state_ != client_state::waiting_to_retry)
                    return;
                self->begin_attempt();
            });
        }

        void finish(std::error_code why, std::optional<close_event> last = std::nullopt) {
            if (state_ == client_state::stopped) return;
            stopping_ = true;
            ++timer_gen_;
            timer_.cancel();
            ++renew_gen_;
            renew_timer_.cancel();
            abandon_handover();
            close_retiring(true);
            if (token_pending_) cancel_token_request();
            set_state(client_state::stopped);
            std::deque<outgoing> left;
            {
                std::lock_guard<std::mutex> lock(queue_mutex_);
                left.swap(queue_);
            }
            for (auto& m : left)
                report_dropped({std::move(m.data), m.kind, make_error_code(error::not_running)});
            counters_.stops.fetch_add(1, std::memory_order_relaxed);
            if (!last) last = last_close_;
            emit(h_.stopped, stopped_event{why, std::move(last)});
        }

        // ---- make-before-break -------------------------------------------

        void on_handover_token(token_result r) {
            if (!r.error && is_known_rejected(r.value.value))
                r = token_result::failure(make_error_code(error::token_rejected),
                                          "the token policy offered a token the server rejected");
            if (r.error) {
                handover_ = handover_phase::none;
                counters_.token_failures.fetch_add(1, std::memory_order_relaxed);
                const bool permanent = is_permanent_token_error(r.error);
                emit(h_.token_failure, token_failure_event{r.error, r.detail, permanent});
                if (permanent) do_stop(r.error);
                return; // the current connection stays
            }
            counters_.tokens_acquired.fetch_add(1, std::memory_order_relaxed);
            emit(h_.token, token_event{r.value.fresh, false, r.value.lifetime});
            next_token_ = std::move(r.value);
            next_token_obtained_at_ = transport_.now();
            handover_ = handover_phase::connecting;
            ++attempt_;
            counters_.connects.fetch_add(1, std::memory_order_relaxed);
            connect_request req;
            req.url = next_token_.endpoint.empty() ? opts_.url : next_token_.endpoint;
            req.token = next_token_.value;
            req.headers = opts_.headers;
            req.subprotocols = opts_.subprotocols;
            req.attempt = attempt_;
            next_conn_ = transport_.connect(req, *this);
        }

        void complete_handover(const open_info& info) {
            const connection_id old = conn_;
            conn_ = next_conn_;
            handover_ = handover_phase::none;
            token_ = std::move(next_token_);
            token_obtained_at_ = next_token_obtained_at_;
            next_token_ = token{};
            schedule_renewal();
            retire(old);
            opened_at_ = transport_.now();
            counters_.opens.fetch_add(1, std::memory_order_relaxed);
            counters_.handovers.fetch_add(1, std::memory_order_relaxed);
            for (const auto& m : on_open_messages_) send_now(m.data, m.kind);
            flush();
            emit(h_.open, open_event{attempt_, std::chrono::nanoseconds(0), info.subprotocol, true});
        }

        // The new connection failed; the old one carries on.
        void handover_failed(close_event&& ev) {
            handover_ = handover_phase::none;
            counters_.closes.fetch_add(1, std::memory_order_relaxed);
            if (ev.http_status != 0) counters_.rejected_handshakes.fetch_add(1, std::memory_order_relaxed);
            const reconnect_decision d = close_policy().decide(ev);
            emit(h_.close, ev, d);
            if (d.action == close_action::refresh_token_then_reconnect) {
                remember_rejected(next_token_.value);
                token_policy().invalidate(next_token_.value);
                counters_.tokens_rejected.fetch_add(1, std::memory_order_relaxed);
            }
            next_token_ = token{};
            if (d.action == close_action::stop)
                do_stop(d.stop_reason ? d.stop_reason : make_error_code(error::stop_close_code));
        }

        // The old connection ended before the new one opened: the new one
        // simply becomes the attempt in progress.
        void old_closed_during_handover(close_event&& ev) {
            conn_ = next_conn_;
            has_conn_ = true;
            handover_ = handover_phase::none;
            token_ = std::move(next_token_);
            token_obtained_at_ = next_token_obtained_at_;
            next_token_ = token{};
            const reconnect_decision d = close_policy().decide(ev);
            emit(h_.close, ev, d);
            last_close_ = ev;
            set_state(client_state::connecting);
            if (d.action == close_action::stop)
                do_stop(d.stop_reason ? d.stop_reason : make_error_code(error::stop_close_code));
        }

        // renew_before_expiry: hand over to a connection with a new token
        // before the current one expires, so the server never has to close
        // us for expiry.
        void schedule_renewal() {
            ++renew_gen_;
            renew_timer_.cancel();
            if (opts_.renew_before_expiry.count() <= 0 || !token_.lifetime) return;
            const auto lifetime = std::chrono::duration_cast<typename clock_type::duration>(*token_.lifetime);
            const auto margin = std::chrono::duration_cast<typename clock_type::duration>(opts_.renew_before_expiry);
            if (lifetime <= margin) return; // nothing sensible to do: the close will come first
            const time_point due = token_obtained_at_ + (lifetime - margin);
            const time_point now = transport_.now();
            renew_timer_.expires_after(due > now ? due - now : typename clock_type::duration(0));
            const std::uint64_t gen = renew_gen_;
            std::weak_ptr<impl> weak = this->shared_from_this();
            renew_timer_.async_wait([weak, gen](std::error_code ec) {
                auto self = weak.lock();
                if (!self || ec || gen != self->renew_gen_ || self->stopping_) return;
                self->renew_now();
            });
        }

        void renew_now() {
            if (state_ != client_state::open || handover_ != handover_phase::none) return;
            // The token is spent for new handshakes: make the policy fetch a
            // new one (a shared source refreshes once for all its clients).
            token_policy().invalidate(token_.value);
            do_handover();
        }

        void abandon_handover() {
            if (handover_ == handover_phase::acquiring_token) cancel_token_request();
            if (handover_ == handover_phase::connecting) {
                retiring_.push_back({next_conn_, transport_.now(), true});
                transport_.close(next_conn_, close_code::normal, "");
            }
            handover_ = handover_phase::none;
            next_token_ = token{};
        }

        // The connection a handover replaced. websocketpp (like many
        // WebSocket stacks) drops data frames that arrive after it has sent
        // its close frame, so closing at once would lose what the server sent
        // just before it saw the new connection. The old connection drains
        // instead: it delivers until the server closes it (Genesys does, on
        // takeover) or until handover_drain has passed.
        void retire(connection_id old) {
            const time_point now = transport_.now();
            if (opts_.handover_drain.count() == 0) {
                retiring_.push_back({old, now, true});
                transport_.close(old, close_code::normal, "handover");
                return;
            }
            retiring_.push_back(
                {old, now + std::chrono::duration_cast<typename clock_type::duration>(opts_.handover_drain), false});
            arm_drain_timer();
        }
        void arm_drain_timer() {
            ++drain_gen_;
            drain_timer_.cancel();
            std::optional<time_point> next;
            for (const auto& r : retiring_)
                if (!r.close_sent && (!next || r.close_at < *next)) next = r.close_at;
            if (!next) return;
            const time_point now = transport_.now();
            drain_timer_.expires_after(*next > now ? *next - now : typename clock_type::duration(0));
            const std::uint64_t gen = drain_gen_;
            std::weak_ptr<impl> weak = this->shared_from_this();
            drain_timer_.async_wait([weak, gen](std::error_code ec) {
                auto self = weak.lock();
                if (!self || ec || gen != self->drain_gen_) return;
                self->close_retiring(false);
            });
        }
        // Closes the retiring connections whose drain is over (all of them
        // when `all`), then waits for the next one.
        void close_retiring(bool all) {
            const time_point now = transport_.now();
            std::vector<connection_id> due;
            for (auto& r : retiring_)
                if (!r.close_sent && (all || r.close_at <= now)) {
                    r.close_sent = true;
                    due.push_back(r.id);
                }
            for (auto id : due) transport_.close(id, close_code::normal, "handover");
            if (all) {
                ++drain_gen_;
                drain_timer_.cancel();
            } else {
                arm_drain_timer();
            }
        }
        bool is_retiring(connection_id id) const {
            return std::any_of(retiring_.begin(), retiring_.end(), [id](const retiring& r) { return r.id == id; });
        }
        bool forget_retiring(connection_id id) {
            auto it = std::find_if(retiring_.begin(), retiring_.end(), [id](const retiring& r) { return r.id == id; });
            if (it == retiring_.end()) return false;
            retiring_.erase(it);
            return true;
        }

        void report_dropped(dropped_message&& d) {
            counters_.dropped_messages.fetch_add(1, std::memory_order_relaxed);
            emit(h_.dropped, d);
        }

        bool queue_empty() {
            std::lock_guard<std::mutex> lock(queue_mutex_);
            return queue_.empty();
        }

        void send_now(const std::string& data, message_kind kind) {
            if (!transport_.send(conn_, data, kind)) counters_.messages_sent.fetch_add(1, std::memory_order_relaxed);
        }

        void flush() {
            for (;;) {
                outgoing m;
                {
                    std::lock_guard<std::mutex> lock(queue_mutex_);
                    if (queue_.empty() || state_ != client_state::open) return;
                    m = std::move(queue_.front());
                    queue_.pop_front();
                }
                send_now(m.data, m.kind);
            }
        }

        // The client's own guard against a policy that offers a rejected token
        // again: the last few rejected tokens, compared in full.
        bool is_known_rejected(const secret& s) const {
            if (s.empty()) return false;
            return std::find(rejected_.begin(), rejected_.end(), s) != rejected_.end();
        }
        void remember_rejected(const secret& s) {
            if (token_pending_) request_predates_rejection_ = true;
            if (s.empty() || is_known_rejected(s)) return;
            if (rejected_.size() == 8) rejected_.erase(rejected_.begin());
            rejected_.push_back(s);
        }

        const client_options opts_;
        Transport transport_;
        detail::policy_storage<TokenPolicy, ClosePolicy, Backoff> policies_;
        timer_type timer_;
        timer_type renew_timer_; // renew_before_expiry
        timer_type drain_timer_; // closes retired connections after handover_drain
        handlers h_;
        std::vector<outgoing> on_open_messages_;

        std::atomic<client_state> state_{client_state::idle};
        std::atomic<bool> detached_{false};
        atomic_counters counters_;

        std::mutex queue_mutex_;
        std::deque<outgoing> queue_;

        // executor-only state
        bool stopping_ = false;
        std::error_code stop_reason_;
        bool has_conn_ = false;
        connection_id conn_ = 0;
        std::uint64_t attempt_ = 0;
        std::uint64_t token_gen_ = 0;
        bool token_pending_ = false;
        std::error_code forced_reason_; // set by reconnect() until the close arrives
        std::uint64_t renew_gen_ = 0;
        time_point token_obtained_at_{};
        time_point next_token_obtained_at_{};
        bool request_predates_rejection_ = false;
        std::uint64_t timer_gen_ = 0;
        token token_;
        bool after_rejection_ = false;
        bool stale_retry_used_ = false;
        std::vector<secret> rejected_;
        unsigned auth_strikes_ = 0;
        unsigned failed_attempts_ = 0;
        std::optional<time_point> failing_since_;
        bool had_open_ = false;
        time_point opened_at_{};
        time_point closed_at_{};
        std::optional<close_event> last_close_;

        enum class handover_phase : unsigned char { none, acquiring_token, connecting };
        handover_phase handover_ = handover_phase::none;
        connection_id next_conn_ = 0;
        token next_token_;
        struct retiring {
            connection_id id;
            time_point close_at;
            bool close_sent;
        };
        std::vector<retiring> retiring_; // replaced by a handover; still delivering
        std::uint64_t drain_gen_ = 0;
    };

    std::shared_ptr<impl> impl_;
};

TETHER_NAMESPACE_END

#endif
