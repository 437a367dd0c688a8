#include "api/router.h"

#include <cstdint>
#include <utility>

namespace outbound::api {

namespace {

std::vector<std::string> Split(std::string_view path) {
  std::vector<std::string> out;
  if (path.empty() || path.front() != '/') return out;
  path.remove_prefix(1);
  while (true) {
    auto slash = path.find('/');
    out.emplace_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool IsPlaceholder(const std::string& s) {
  return s.size() >= 2 && s.front() == '{' && s.back() == '}';
}

}  // namespace

unsigned ScopeBit(CallerKind kind) {
  switch (kind) {
    case CallerKind::kOperator:
      return kOperator;
    case CallerKind::kTenant:
      return kTenant;
    case CallerKind::kClient:
      return kClient;
  }
  return 0;
}

void Router::Add(std::string method, std::string pattern, unsigned scopes, Handler handler) {
  Route r;
  r.segments = Split(pattern);
  r.method = std::move(method);
  r.pattern = std::move(pattern);
  r.scopes = scopes;
  r.handler = std::move(handler);
  routes_.push_back(std::move(r));
}

void Router::AddAsync(std::string method, std::string pattern, unsigned scopes,
                      AsyncHandler handler) {
  Add(std::move(method), std::move(pattern), scopes, nullptr);
  routes_.back().async_handler = std::move(handler);
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  Match m;
  std::vector<std::string> segments = Split(path);
  if (segments.empty()) return m;
  // Literal segments win over placeholders (CONTRACT §13: GET /v1/events/batch is 405, not the
  // event "batch"): only the routes with the fewest placeholders among those whose pattern fits
  // the path are considered; among them the first with this method answers.
  std::size_t best = SIZE_MAX;
  for (const Route& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    std::vector<std::string> params;
    bool ok = true;
    for (std::size_t i = 0; i < segments.size() && ok; ++i) {
      if (IsPlaceholder(r.segments[i])) {
        if (segments[i].empty())
          ok = false;
        else
          params.push_back(segments[i]);
      } else if (r.segments[i] != segments[i]) {
        ok = false;
      }
    }
    if (!ok || params.size() > best) continue;
    if (params.size() < best) {
      best = params.size();
      m = Match{};
    }
    m.path_known = true;
    if (r.method == method) {
      if (m.route == nullptr) {
        m.route = &r;
        m.params = std::move(params);
      }
      continue;
    }
    if (m.allow.find(r.method) == std::string::npos) {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += r.method;
    }
  }
  if (m.route != nullptr) m.allow.clear();
  return m;
}

}  // namespace outbound::api
