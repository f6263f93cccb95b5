// tether: the compositions most users want, by name.
#ifndef TETHER_RECONNECTING_CLIENT_HPP
#define TETHER_RECONNECTING_CLIENT_HPP

#include <tether/basic_reconnecting_client.hpp>
#include <tether/close_policy/close_code_table.hpp>
#include <tether/token_policy/oauth2_client_credentials.hpp>
#include <tether/token_policy/shared_token_source.hpp>
#include <tether/transport/websocketpp_transport.hpp>

#ifndef TETHER_DETAIL_NO_WEBSOCKETPP // C++20 with GCC: the transport said why

TETHER_NAMESPACE_BEGIN

/// A production client over websocketpp (ws:// and wss://, verified TLS).
template <class TokenPolicy = no_token, class ClosePolicy = default_close_policy,
          class Backoff = exponential_backoff>
using reconnecting_client =
    basic_reconnecting_client<websocketpp_transport, TokenPolicy, ClosePolicy, Backoff>;

/// One OAuth2 client-credentials token shared by any number of clients.
using oauth2_token_source = shared_token_source<oauth2_client_credentials>;

/// A client whose token comes from an oauth2_token_source.
template <class ClosePolicy = default_close_policy, class Backoff = exponential_backoff>
using oauth2_reconnecting_client =
    reconnecting_client<oauth2_token_source::handle_type, ClosePolicy, Backoff>;

TETHER_NAMESPACE_END

#endif // TETHER_DETAIL_NO_WEBSOCKETPP

#endif
