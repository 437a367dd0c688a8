// The API's view of one HTTP exchange, free of Beast so that routing, authentication and the
// handlers can be tested without sockets. server.cpp translates to and from Beast.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace outbound::api {

struct Request {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // origin-form, e.g. "/v1/clients?limit=10"
  std::string authorization;                   // the Authorization header; empty when absent
  std::optional<std::string> idempotency_key;  // the Idempotency-Key header
  std::string body;
  std::string host;  // the Host header; empty when absent
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Decoded query parameters; a repeated name keeps its last value.
using Query = std::map<std::string, std::string, std::less<>>;

}  // namespace outbound::api
