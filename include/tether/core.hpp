// tether: everything that needs neither websocketpp nor OpenSSL.
#ifndef TETHER_CORE_HPP
#define TETHER_CORE_HPP

#include <tether/version.hpp>
#include <tether/error.hpp>
#include <tether/secret.hpp>
#include <tether/token.hpp>
#include <tether/message.hpp>
#include <tether/close_event.hpp>
#include <tether/connect_request.hpp>
#include <tether/events.hpp>
#include <tether/client_options.hpp>

#include <tether/transport/concept.hpp>
#include <tether/token_policy/concept.hpp>
#include <tether/close_policy/concept.hpp>
#include <tether/backoff/concept.hpp>

#include <tether/backoff/exponential_backoff.hpp>
#include <tether/backoff/decorrelated_jitter.hpp>
#include <tether/backoff/constant_backoff.hpp>
#include <tether/backoff/delay_table.hpp>
#include <tether/close_policy/default_close_policy.hpp>
#include <tether/close_policy/close_code_table.hpp>
#include <tether/token_policy/no_token.hpp>
#include <tether/token_policy/static_token.hpp>
#include <tether/token_policy/callback_token.hpp>

#include <tether/basic_reconnecting_client.hpp>

#endif
