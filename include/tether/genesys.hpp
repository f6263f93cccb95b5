// tether: Genesys Cloud notifications (umbrella header).
#ifndef TETHER_GENESYS_HPP
#define TETHER_GENESYS_HPP

#include <tether/genesys/channel_token_policy.hpp>
#include <tether/genesys/close_policy.hpp>
#include <tether/genesys/notification.hpp>
#include <tether/genesys/notification_client.hpp>
#include <tether/genesys/notification_stream.hpp>
#include <tether/genesys/region.hpp>
#include <tether/genesys/rest_client.hpp>

#endif
