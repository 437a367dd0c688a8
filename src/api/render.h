// Resources → JSON, in the shapes of CONTRACT.md §8–9 and docs/API.md. Pure and thread-safe.
// Nothing here ever reads a token hash, signing secret, header value, internal note or access
// secret: the only secret rendered is the signing secret passed in explicitly at creation.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/catalog.h"
#include "core/clock.h"
#include "core/model.h"
#include "store/model.h"

namespace outbound::api {

boost::json::value Time(std::optional<core::UnixMs> ms);  // RFC 3339 UTC or null
boost::json::object ExternalIdsJson(const core::ExternalIds& ids);

boost::json::object ClientJson(const store::Client& c);
boost::json::object KeyJson(const store::ApiKey& k);
boost::json::object CustomerJson(const store::Customer& c);
boost::json::object LocationJson(const store::Location& l);
boost::json::object ContactJson(const store::Contact& c);
boost::json::object TargetJson(const store::Target& t);
// The envelope's fields without deliveryId and data, plus targetId and acceptedAtUtc.
// `test`: a test event (CONTRACT §13), whose eventType may be "ordinavo.test".
boost::json::object EventJson(const store::StoredEvent& e);
boost::json::object OptionsJson(const core::PayloadOptions& o);
// `secret` is given only in the answer to a create.
boost::json::object SubscriptionJson(const store::Subscription& s, bool billing_details_allowed,
                                     const std::optional<std::string>& secret = std::nullopt);
boost::json::object AttemptJson(const store::AttemptRecord& a);
// payload: the body as sent last (deliveryId of the last attempt), or as it will be sent with
// "deliveryId": null when never attempted.
boost::json::object DeliveryJson(const store::StoredEvent& e, const store::DeliveryView& d);
boost::json::object AttemptRowJson(const store::AttemptRow& r);
boost::json::object EventTypeJson(const core::EventTypeInfo& info);

// {"data": [...], "nextCursor": "..."|null}
boost::json::object ListJson(boost::json::array data, const std::optional<std::string>& next);

inline constexpr std::string_view kMasked = "********";

}  // namespace outbound::api
