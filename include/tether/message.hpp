// tether: WebSocket messages as the client sees them.
#ifndef TETHER_MESSAGE_HPP
#define TETHER_MESSAGE_HPP

#include <tether/version.hpp>

#include <string_view>

TETHER_NAMESPACE_BEGIN

enum class message_kind : unsigned char { text, binary };

/// A received message. The view is valid only for the duration of the handler.
struct message_view {
    std::string_view data;
    message_kind kind = message_kind::text;
};

TETHER_NAMESPACE_END

#endif
