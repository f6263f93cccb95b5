// tether: what the client asks a Transport to open.
#ifndef TETHER_CONNECT_REQUEST_HPP
#define TETHER_CONNECT_REQUEST_HPP

#include <tether/secret.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN

using http_header = std::pair<std::string, std::string>;

/// Identifies one connection of a Transport. Never reused by a transport.
using connection_id = std::uint64_t;

struct connect_request {
    std::string url;                       ///< ws:// or wss://
    secret token;                          ///< empty: send no credential
    std::vector<http_header> headers;      ///< extra upgrade headers
    std::vector<std::string> subprotocols; ///< offered in Sec-WebSocket-Protocol
    std::uint64_t attempt = 0;             ///< 1-based attempt number, for logs
};

/// What the transport learned when the connection opened.
struct open_info {
    std::string subprotocol; ///< the subprotocol the server selected, if any
};

TETHER_NAMESPACE_END

#endif
