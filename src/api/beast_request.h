// Beast request → the API's Request. Shared by the server and the fuzz target (fuzz/), so that
// what is fuzzed is what the server runs.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>
#include <utility>

#include "api/request.h"

namespace outbound::api {

// Takes the body out of `req`.
inline Request FromBeast(boost::beast::http::request<boost::beast::http::string_body>& req) {
  namespace http = boost::beast::http;
  Request r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  if (auto it = req.find(http::field::authorization); it != req.end()) {
    r.authorization = std::string(it->value());
  }
  if (auto it = req.find("Idempotency-Key"); it != req.end()) {
    r.idempotency_key = std::string(it->value());
  }
  if (auto it = req.find(http::field::host); it != req.end()) r.host = std::string(it->value());
  r.body = std::move(req.body());
  return r;
}

}  // namespace outbound::api
