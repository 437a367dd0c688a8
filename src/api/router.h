// Method + path pattern → handler. Patterns are literal segments and "{name}" placeholders
// ("/v1/clients/{id}/keys"); a placeholder matches one non-empty segment. Each route says which
// kinds of caller may use it. Not thread-safe while routes are added; Find is const and
// thread-safe afterwards.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "api/auth.h"
#include "api/request.h"
#include "core/result.h"

namespace outbound::api {

// Who may call a route; a bit set. kPublic routes need no token.
enum Scope : unsigned {
  kPublic = 0,
  kOperator = 1u << 0,
  kTenant = 1u << 1,
  kClient = 1u << 2,
};
unsigned ScopeBit(CallerKind kind);

// Everything a handler gets.
struct Call {
  const Request& request;
  const Caller& caller;                    // kind kOperator with no tenant on public routes
  const std::vector<std::string>& params;  // placeholder values in order, still percent-encoded
  const Query& query;
};

using Handler = std::function<core::Result<Response>(const Call&)>;
// A handler that answers later (a publish answers from its commit): it calls `answered` exactly
// once, on any thread, and keeps nothing of the Call once it returns. It must never block (no
// store read, no waiting for a commit): the server's I/O thread runs it (Api::HandleQuickly).
using Answered = std::function<void(core::Result<Response>)>;
using AsyncHandler = std::function<void(const Call&, Answered answered)>;

struct Route {
  std::string method;
  std::string pattern;
  unsigned scopes = kPublic;
  Handler handler;  // one of the two is set
  AsyncHandler async_handler;
  std::vector<std::string> segments;  // the pattern split at '/'
};

class Router {
 public:
  void Add(std::string method, std::string pattern, unsigned scopes, Handler handler);
  void AddAsync(std::string method, std::string pattern, unsigned scopes, AsyncHandler handler);

  struct Match {
    const Route* route = nullptr;     // null: no route for this method
    bool path_known = false;          // some route has this path (→ 405 rather than 404)
    std::vector<std::string> params;  // placeholder values
    std::string allow;                // "GET, POST" when path_known and no route
  };
  Match Find(std::string_view method, std::string_view path) const;

  // Every route, in the order added: for whatever must cover all of them (the fuzz target).
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace outbound::api
