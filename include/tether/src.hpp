// tether: separate compilation. Include this file in exactly one C++17 source
// file of a program whose every file defines TETHER_SEPARATE_COMPILATION (the
// tether::compiled CMake target and the meson option do both). That file
// compiles the websocketpp transport once; every other file of the program
// sees only its declaration, without websocketpp, and may be C++20.
//
//     // tether_compiled.cpp, built with -std=c++17 -DTETHER_SEPARATE_COMPILATION
//     #include <tether/src.hpp>
//
// The three schemes' transports (websocketpp_transport, websocketpp_wss_transport,
// websocketpp_ws_transport) are all compiled here. The clients, policies,
// token sources and Genesys layer stay templates in the application's files:
// they are cheap to compile and need no websocketpp.
#ifndef TETHER_SRC_HPP
#define TETHER_SRC_HPP

#if !defined(TETHER_SEPARATE_COMPILATION)
// clang-format off
#error "tether: <tether/src.hpp> is for separate compilation: define TETHER_SEPARATE_COMPILATION in every file of the program (the tether::compiled target does)"
// clang-format on
#else

#include <tether/transport/websocketpp_transport.hpp>

#include <tether/transport/impl/websocketpp_transport.ipp>

#ifndef TETHER_DETAIL_NO_WEBSOCKETPP
TETHER_NAMESPACE_BEGIN
template class basic_websocketpp_transport<websocket_schemes::ws_and_wss>;
template class basic_websocketpp_transport<websocket_schemes::wss_only>;
template class basic_websocketpp_transport<websocket_schemes::ws_only>;
TETHER_NAMESPACE_END
#endif

#endif // TETHER_SEPARATE_COMPILATION

#endif
