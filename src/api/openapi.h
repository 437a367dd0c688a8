// The OpenAPI 3.1 document of the API, served at GET /openapi.json (CONTRACT.md §13). Its source
// is src/api/openapi/openapi.json (routes, parameters, request and answer schemas, errors),
// compiled into the binary; the `webhooks` (the payload of each of the 13 catalog types, the
// operational types and test events) are generated here from core/catalog, the same catalog that
// validates publishing, so the two cannot drift. Built once; thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <string>

namespace outbound::api {

// The whole document, serialised.
const std::string& OpenApiDocument();
// The same as a value (its examples are core::RawJson: serialise it with core::ToJson).
const boost::json::object& OpenApiObject();

}  // namespace outbound::api
