// tether: option types shared by the production transports (websocketpp, Beast).
//
// Kept free of any networking include, so each transport header can use it
// without pulling in the other's library.
#ifndef TETHER_TRANSPORT_TRANSPORT_OPTIONS_HPP
#define TETHER_TRANSPORT_TRANSPORT_OPTIONS_HPP

#include <tether/version.hpp>

TETHER_NAMESPACE_BEGIN

/// Where the bearer token goes on the upgrade request.
enum class token_placement : unsigned char {
    authorization_header, ///< `Authorization: Bearer <token>`
    query_parameter,      ///< `?<token_query_parameter>=<percent-encoded token>`
    subprotocol,          ///< a Sec-WebSocket-Protocol entry `<token_subprotocol_prefix><token>`
};

TETHER_NAMESPACE_END

#endif
