// tether: the layer between Beast's WebSocket stream and the socket (or TLS
// stream) in beast_transport, which shows every byte read to a
// ws_frame_scanner. docs/transports.md, "Buffered messages".
#ifndef TETHER_DETAIL_BEAST_SCANNING_STREAM_HPP
#define TETHER_DETAIL_BEAST_SCANNING_STREAM_HPP

#include <tether/detail/ws_frame_scanner.hpp>
#include <tether/version.hpp>

#include <boost/asio/associator.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// A read handler that shows the bytes read to the scanner first. Beast's
/// operation it wraps keeps its executor, allocator and cancellation slot
/// (the associator specialisation below).
template <class Buffers, class Handler> struct scanning_read_handler {
    ws_frame_scanner* scanner;
    Buffers buffers;
    Handler handler;

    void operator()(const boost::system::error_code& ec, std::size_t n) {
        std::size_t left = n;
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             left > 0 && it != boost::asio::buffer_sequence_end(buffers); ++it) {
            const boost::asio::const_buffer b(*it);
            const std::size_t k = b.size() < left ? b.size() : left;
            scanner->feed(b.data(), k);
            left -= k;
        }
        std::move(handler)(ec, n);
    }
};

/// The layer between Beast's WebSocket stream and the socket (or TLS
/// stream): passes everything through and shows what is read to a
/// ws_frame_scanner (detail/ws_frame_scanner.hpp), which tells the transport
/// when the next message is already whole in Beast's read buffer. The
/// transport then reads it with Beast's synchronous read, which takes it from
/// that buffer and touches no socket. Synchronous I/O reaching this layer
/// would mean the scanner was wrong: it fails rather than blocks.
template <class Next> class scanning_stream {
public:
    using next_layer_type = Next;
    using executor_type = typename Next::executor_type;

    template <class... Args>
    explicit scanning_stream(std::uint16_t limit, Args&&... args)
        : next_(std::forward<Args>(args)...), scanner_(limit) {}

    Next& next_layer() noexcept { return next_; }
    const Next& next_layer() const noexcept { return next_; }
    executor_type get_executor() noexcept { return next_.get_executor(); }
    ws_frame_scanner& scanner() noexcept { return scanner_; }

    template <class Buffers, class Handler>
    void async_read_some(const Buffers& buffers, Handler&& handler) {
        next_.async_read_some(buffers, scanning_read_handler<Buffers, std::decay_t<Handler>>{
                                           &scanner_, buffers, std::forward<Handler>(handler)});
    }
    template <class Buffers, class Handler>
    void async_write_some(const Buffers& buffers, Handler&& handler) {
        next_.async_write_some(buffers, std::forward<Handler>(handler));
    }

    template <class Buffers> std::size_t read_some(const Buffers&, boost::system::error_code& ec) {
        ec = boost::asio::error::would_block;
        return 0;
    }
    template <class Buffers> std::size_t read_some(const Buffers& b) {
        boost::system::error_code ec;
        read_some(b, ec);
        throw boost::system::system_error(ec);
    }
    template <class Buffers> std::size_t write_some(const Buffers&, boost::system::error_code& ec) {
        ec = boost::asio::error::would_block;
        return 0;
    }
    template <class Buffers> std::size_t write_some(const Buffers& b) {
        boost::system::error_code ec;
        write_some(b, ec);
        throw boost::system::system_error(ec);
    }

private:
    Next next_;
    ws_frame_scanner scanner_;
};

template <class Next, class Handler>
void async_teardown(boost::beast::role_type role, scanning_stream<Next>& s, Handler&& handler) {
    async_teardown(role, s.next_layer(), std::forward<Handler>(handler));
}

/// Beast's synchronous read fails a connection with this: closes at once.
template <class Next>
void teardown(boost::beast::role_type, scanning_stream<Next>& s, boost::system::error_code& ec) {
    auto& socket = boost::beast::get_lowest_layer(s);
    boost::system::error_code ignored;
    socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    ec = {};
}

} // namespace detail
TETHER_NAMESPACE_END

namespace boost {
namespace asio {
/// The wrapped handler's associations (executor, allocator, cancellation
/// slot) are the scanning handler's.
template <template <class, class> class Associator, class Buffers, class Handler,
          class DefaultCandidate>
struct associator<Associator, tether::detail::scanning_read_handler<Buffers, Handler>,
                  DefaultCandidate> : Associator<Handler, DefaultCandidate> {
    static typename Associator<Handler, DefaultCandidate>::type
    get(const tether::detail::scanning_read_handler<Buffers, Handler>& h,
        const DefaultCandidate& c = DefaultCandidate()) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler, c);
    }
};
} // namespace asio
} // namespace boost

#endif
