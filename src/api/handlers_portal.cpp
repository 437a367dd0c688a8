// The portal (CONTRACT §13, docs/API.md "Portal"): the page at GET /portal/ and the routes that
// sign its users in without handing out keys.
//
// A portal link (POST /v1/clients/{id}/portal-link, tenant) is <base>/portal/#link=obl_...: the
// token sits in the fragment, which browsers never send to a server, so it stays out of access
// logs, proxies and Referer headers. It is stored only as its SHA-256, lasts one hour and is used
// once: the page exchanges it (POST /v1/portal/sessions, no other credential) for a session token
// obs_... of 8 hours, also stored only as its hash, that the API takes like a client key of that
// client on the portal's routes (PortalSessionMayUse). Neither token is ever logged.
#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "api/errors.h"
#include "api/handlers.h"
#include "api/input.h"
#include "api/portal/assets.h"
#include "api/render.h"
#include "core/signing.h"

namespace outbound::api {

namespace json = boost::json;

namespace {

constexpr core::UnixMs kLinkLifetimeMs = 3600LL * 1000;         // CONTRACT §13: one hour
constexpr core::UnixMs kSessionLifetimeMs = 8LL * 3600 * 1000;  // a working day, as Svix's

// The page's security headers. Text that others control (descriptions, receivers' answers) is
// rendered by portal.js as text only; the policy is the second line of defence: no inline script
// or style, nothing from elsewhere, no plugins, no <base>, no form posts, and framing only by the
// configured ancestors.
void AddPageHeaders(const Context& ctx, Response& r) {
  r.headers.emplace_back(
      "Content-Security-Policy",
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
      "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors " +
          ctx.options.portal_frame_ancestors);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
  if (ctx.options.portal_frame_ancestors == "'none'") {
    r.headers.emplace_back("X-Frame-Options", "DENY");  // for browsers without CSP level 2
  }
}

std::string_view ContentType(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

core::Result<Response> ServeAsset(const Context& ctx, std::string_view name) {
  const std::optional<std::string_view> asset = embedded::portal_file(name);
  if (!asset) return core::Fail(NotFound("portal file"));
  Response r;
  r.content_type = std::string(ContentType(name));
  r.body = std::string(*asset);
  AddPageHeaders(ctx, r);
  return r;
}

// Host header values that may become part of a link: a DNS name or address and a port.
bool IsPlainHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

// Where the holder of a link reaches this server: --public-url, else the Host the tenant's own
// request came to (plain http; behind a TLS proxy set --public-url), else the listen address.
std::string PublicBase(const Context& ctx, const Request& request) {
  if (!ctx.options.public_url.empty()) return ctx.options.public_url;
  if (IsPlainHost(request.host)) return "http://" + request.host;
  return "http://" + ctx.options.listen;
}

core::Result<Response> CreatePortalLink(Context& ctx, const Call& call) {
  auto id = PathId(call, 0, "client");
  if (!id) return core::Fail(std::move(id.error()));
  if (auto st = RequireNoFields(call.request.body); !st) return core::Fail(std::move(st.error()));

  core::ClientId client{*id};
  core::UnixMs now = ctx.clock.Now();
  core::UnixMs expires = now + kLinkLifetimeMs;
  std::string token = NewToken(kPortalLinkPrefix);
  std::string hash = core::Sha256Hex(token);
  auto made = InWrite(ctx.store, [&](store::Txn& tx) -> core::Result<bool> {
    auto c = tx.GetClient(call.caller.tenant, client);
    if (!c) return core::Fail(std::move(c.error()));
    if (!*c) return core::Fail(NotFound("client"));
    if (auto st = tx.CreatePortalLink(call.caller.tenant, client, hash, now, expires); !st) {
      return core::Fail(std::move(st.error()));
    }
    return true;
  });
  if (!made) return core::Fail(std::move(made.error()));
  return JsonResponse(
      201, json::object{{"url", PublicBase(ctx, call.request) + "/portal/#link=" + token},
                        {"expiresAtUtc", core::FormatUtc(expires)},
                        {"clientId", client.value}});
}

core::Result<Response> StartSession(Context& ctx, const Call& call) {
  auto body = ParseJsonObject(call.request.body, false);
  if (!body) return core::Fail(std::move(body.error()));
  std::vector<core::FieldError> errors;
  ObjectReader reader(*body, errors);
  auto link = reader.String("link", Need::kRequired, 512);
  reader.RejectUnknown();
  if (auto st = Check(errors); !st) return core::Fail(std::move(st.error()));
  if (link->rfind(kPortalLinkPrefix, 0) != 0) {
    return ErrorResponse(401, "invalid_link", "this is not a portal link; ask for a new one");
  }
  core::UnixMs now = ctx.clock.Now();
  core::UnixMs expires = now + kSessionLifetimeMs;
  std::string session = NewToken(kPortalSessionPrefix);
  std::string link_hash = core::Sha256Hex(*link);
  std::string session_hash = core::Sha256Hex(session);
  auto redeemed = InWrite(ctx.store, [&](store::Txn& tx) {
    return tx.RedeemPortalLink(link_hash, session_hash, now, expires);
  });
  if (!redeemed) return core::Fail(std::move(redeemed.error()));
  switch (redeemed->outcome) {
    case store::PortalRedeem::kRedeemed:
      break;
    case store::PortalRedeem::kUsed:
      return ErrorResponse(410, "link_used",
                           "this portal link was used already; links work once, ask for a new one");
    case store::PortalRedeem::kExpired:
      return ErrorResponse(410, "link_expired",
                           "this portal link has expired (links last one hour); ask for a new one");
    case store::PortalRedeem::kUnknown:
      return ErrorResponse(401, "invalid_link", "this portal link is not valid; ask for a new one");
  }
  return JsonResponse(201, json::object{{"token", session},
                                        {"expiresAtUtc", core::FormatUtc(expires)},
                                        {"clientId", redeemed->session->client.value}});
}

core::Result<Response> EndSession(Context& ctx, const Call& call) {
  if (!call.caller.portal_session) return NoContent();  // a key: nothing to end server-side
  std::string hash = core::Sha256Hex(BearerToken(call.request.authorization));
  auto ended = InWrite(ctx.store, [&](store::Txn& tx) { return tx.DeletePortalSession(hash); });
  if (!ended) return core::Fail(std::move(ended.error()));
  return NoContent();
}

// Who the page is signed in as: a tenant (it lets the user choose a client) or one client.
core::Result<Response> Me(Context& ctx, const Call& call) {
  json::object out{{"kind", IsClient(call.caller) ? "client" : "tenant"},
                   {"tenantId", call.caller.tenant.value},
                   {"portalSession", call.caller.portal_session}};
  if (!call.caller.client) {
    out["client"] = nullptr;
    return JsonResponse(200, out);
  }
  auto client = InRead(ctx.store, [&](store::Txn& tx) {
    return tx.GetClient(call.caller.tenant, *call.caller.client);
  });
  if (!client) return core::Fail(std::move(client.error()));
  if (!*client) return core::Fail(NotFound("client"));
  out["client"] = ClientJson(**client);
  return JsonResponse(200, out);
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

bool PortalSessionMayUse(const Route& route) {
  const std::string& p = route.pattern;
  return StartsWith(p, "/v1/subscriptions") || p == "/v1/events" ||
         StartsWith(p, "/v1/events/{eventId}") || p == "/v1/event-types" ||
         StartsWith(p, "/v1/portal/");
}

void AddPortalRoutes(Router& router, Context& ctx) {
  router.Add("GET", "/portal", kPublic, [](const Call&) -> core::Result<Response> {
    Response r;
    r.status = 308;
    r.content_type.clear();
    r.headers.emplace_back("Location", "/portal/");
    return r;
  });
  router.Add("GET", "/portal/", kPublic,
             [&ctx](const Call&) { return ServeAsset(ctx, "index.html"); });
  router.Add("GET", "/portal/{file}", kPublic,
             [&ctx](const Call& call) { return ServeAsset(ctx, call.params.at(0)); });
  router.Add("POST", "/v1/clients/{id}/portal-link", kTenant, Bind(ctx, CreatePortalLink));
  router.Add("POST", "/v1/portal/sessions", kPublic, Bind(ctx, StartSession));
  router.Add("DELETE", "/v1/portal/session", kTenant | kClient, Bind(ctx, EndSession));
  router.Add("GET", "/v1/portal/me", kTenant | kClient, Bind(ctx, Me));
}

}  // namespace outbound::api
