// tether: which Asio. tether's own networking code is written once against the
// namespace alias `tether::net`: standalone Asio (`::asio`) by default,
// Boost.Asio (`::boost::asio`) when TETHER_USE_BOOST_ASIO is defined in every
// file of the program (Boost mode, for the Beast transport). The same idiom as
// Beast's own `net`.
//
// Boost mode changes types (an executor, a timer), so it is part of the ABI
// tag (version.hpp): files built in the two modes name different symbols.
// What works in Boost mode: everything but the websocketpp transport (which
// needs standalone Asio and says so in one line): <tether/core.hpp>,
// <tether/testing.hpp>, beast_transport, OAuth 2.0 and Genesys.
//
// tether reports errors as std::error_code everywhere. Boost.Asio hands its
// handlers boost::system::error_code, which converts to std::error_code (the
// system and generic categories map onto the standard ones), so a handler
// taking std::error_code works in both modes; `detail::net_error(e)` makes the
// std::error_code an Asio error enum stands for, the same in both modes.
#ifndef TETHER_DETAIL_NET_HPP
#define TETHER_DETAIL_NET_HPP

#include <tether/version.hpp>

#include <system_error>

#if defined(TETHER_USE_BOOST_ASIO)
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#else
#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#endif

TETHER_NAMESPACE_BEGIN

#if defined(TETHER_USE_BOOST_ASIO)
namespace net = ::boost::asio;
#else
namespace net = ::asio;
#endif

namespace detail {

/// The error_code type the selected Asio's functions take by reference.
#if defined(TETHER_USE_BOOST_ASIO)
using net_error_code = ::boost::system::error_code;
#else
using net_error_code = std::error_code;
#endif

/// The std::error_code an Asio error enum (net::error::...) stands for.
template <class Enum> std::error_code net_error(Enum e) {
    return std::error_code(net_error_code(e));
}

} // namespace detail

TETHER_NAMESPACE_END

#endif
