// libFuzzer target: the whole management API on a real SQLite store, fed two ways.
//   - raw HTTP/1.1 bytes through Beast's request parser with the server's limits and the
//     server's own conversion (api/beast_request.h), then Api::Handle;
//   - a structured request: a route chosen from the table below (with real ids of objects that
//     exist), a caller token chosen from the fixture's, and the rest of the input as the body,
//     so the fuzzer reaches the import and publish validators and every handler's reader.
// Invariants checked on every answer (a violation aborts, which libFuzzer reports as a crash):
//   - no 500 (every bad input is a 4xx; a 500 means an unexpected exception or store error),
//   - a JSON answer parses as JSON, an error answer has {"error": {"code", "message"}},
//   - no key or signing secret of the fixture appears in any answer after its creation.
// ASan/UBSan catch the rest. Run: scripts/fuzz.sh [seconds] (docs/RELIABILITY.md).
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "api/api.h"
#include "api/beast_request.h"
#include "core/clock.h"
#include "core/ids.h"
#include "ingest/ingest.h"
#include "store/sqlite/sqlite_store.h"

namespace {

namespace json = boost::json;
namespace http = boost::beast::http;
using outbound::api::Request;
using outbound::api::Response;

constexpr std::string_view kOperatorToken = "fuzz-operator-token-0123456789abcdef";

[[noreturn]] void Die(const std::string& why, const Request& req, const Response& res) {
  std::fprintf(stderr, "INVARIANT: %s\n%s %s\n-> %d %s\n", why.c_str(), req.method.c_str(),
               req.target.c_str(), res.status, res.body.substr(0, 2000).c_str());
  std::abort();
}

struct Fixture {
  std::filesystem::path dir;
  outbound::core::SystemClock clock;
  outbound::core::UlidGenerator ids;
  std::unique_ptr<outbound::store::Store> store;
  std::unique_ptr<outbound::ingest::IngestService> ingest;
  std::unique_ptr<outbound::api::Api> api;
  // Tokens by caller kind: none, operator, tenant A, client A (owner), client A2, tenant B,
  // client B, a bogus one.
  std::vector<std::string> tokens;
  std::vector<std::string> secrets;  // every token and signing secret of the fixture
  // Ids filled into the route table.
  std::string tenant_a, client_a, client_b, target_a, subscription_a, event_a, key_a;

  json::value Call(std::string method, std::string target, const std::string& token,
                   const std::string& body, int want) {
    Request r{std::move(method), std::move(target), "Bearer " + token, std::nullopt, body,
              std::string()};
    Response res = api->Handle(r);
    if (res.status != want) Die("fixture set-up failed", r, res);
    return res.body.empty() ? json::value() : json::parse(res.body);
  }
};

Fixture* MakeFixture() {
  auto* f = new Fixture;
  // tmpfs when there is one: commits are fsynced and the fuzzer writes a lot.
  std::filesystem::path base =
      std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
  f->dir = base / ("outbound-fuzz-" + f->ids.Next(f->clock.Now()));
  std::filesystem::create_directories(f->dir);
  // libFuzzer ends a run with exit(): remove the store then (tmpfs is memory). A crash leaves it
  // behind, with the input that caused it.
  static std::filesystem::path dir_to_remove;
  dir_to_remove = f->dir;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(dir_to_remove, ec);
  });
  outbound::store::SqliteOptions so;
  so.path = (f->dir / "fuzz.db").string();
  auto store = outbound::store::OpenSqlite(so);
  if (!store) std::abort();
  f->store = std::move(*store);
  f->ingest = std::make_unique<outbound::ingest::IngestService>(
      *f->store, f->clock, f->ids, [](std::vector<outbound::store::DeliveryJob>) {});
  outbound::api::ApiOptions ao;
  ao.operator_token = std::string(kOperatorToken);
  f->api = std::make_unique<outbound::api::Api>(ao, *f->store, *f->ingest, f->clock, f->ids,
                                                outbound::api::ApiHooks{});

  const std::string op(kOperatorToken);
  auto ta = f->Call("POST", "/v1/tenants", op, R"({"name":"A"})", 201);
  auto tb = f->Call("POST", "/v1/tenants", op, R"({"name":"B"})", 201);
  std::string ka(ta.at("apiKey").as_string()), kb(tb.at("apiKey").as_string());
  f->tenant_a = std::to_string(ta.at("tenantId").to_number<std::int64_t>());
  auto client = [&](const std::string& key, const char* source) {
    auto c = f->Call("POST", "/v1/clients", key,
                     std::string(R"({"name":"C","sourceSystem":")") + source + "\"}", 201);
    std::string id = std::to_string(c.at("clientId").to_number<std::int64_t>());
    auto k = f->Call("POST", "/v1/clients/" + id + "/keys", key, "", 201);
    return std::pair{id, std::string(k.at("apiKey").as_string())};
  };
  auto [ca, kca] = client(ka, "logistics_erp");
  auto [ca2, kca2] = client(ka, "crm");
  auto [cb, kcb] = client(kb, "logistics_erp");
  f->client_a = ca;
  f->client_b = cb;
  f->Call("PUT", "/v1/customers/1", ka,
          R"({"customerNumber":"C-1","name":"C","externalIds":{"logistics_erp":"C1"}})", 201);
  auto imp =
      f->Call("POST", "/v1/imports/targets", kca,
              R"({"targets":[{"externalId":"T-1","customerExternalId":"C1","title":"T"}]})", 200);
  f->target_a = std::to_string(imp.at("results").at(0).at("targetId").to_number<std::int64_t>());
  auto sub = f->Call("POST", "/v1/subscriptions", kca,
                     R"({"url":"https://receiver.example.com/hook","eventTypes":["*"]})", 201);
  f->subscription_a = std::to_string(sub.at("subscriptionId").to_number<std::int64_t>());
  f->secrets.emplace_back(sub.at("secret").as_string());
  auto ev = f->Call("POST", "/v1/events", ka,
                    R"({"eventType":"appointment.started","targetId":)" + f->target_a +
                        R"(,"occurredAtUtc":"2026-06-25T14:02:00Z","data":{"appointmentId":1,)"
                        R"("startedAtUtc":"2026-06-25T14:02:00Z"}})",
                    202);
  f->event_a = std::string(ev.at("eventId").as_string());
  auto keys = f->Call("GET", "/v1/keys", ka, "", 200);
  f->key_a = std::to_string(keys.at("data").at(0).at("keyId").to_number<std::int64_t>());
  f->tokens = {"", op, ka, kca, kca2, kb, kcb, "obt_not-a-real-token"};
  for (std::size_t i = 2; i + 1 < f->tokens.size(); ++i) f->secrets.push_back(f->tokens[i]);
  return f;
}

Fixture& F() {
  static Fixture* f = MakeFixture();
  return *f;
}

void Check(const Request& req, const Response& res) {
  if (res.status >= 500 && res.status != 503) Die("server error", req, res);
  if (res.status < 200 || res.status > 599) Die("bad status", req, res);
  if (res.content_type == "application/json" && !res.body.empty()) {
    boost::system::error_code ec;
    json::value v = json::parse(res.body, ec);
    if (ec) Die("answer is not JSON", req, res);
    if (res.status >= 400) {
      const auto* err = v.is_object() ? v.as_object().if_contains("error") : nullptr;
      if (err == nullptr || !err->is_object() || !err->as_object().contains("code") ||
          !err->as_object().contains("message")) {
        Die("error answer without error.code/message", req, res);
      }
    }
  }
  // New keys and secrets are shown once by design; the fixture's are never shown again.
  // (Unless the request itself carries it in the path, query or body: errors may quote input.)
  for (const auto& s : F().secrets) {
    if (res.body.find(s) != std::string::npos && req.target.find(s) == std::string::npos &&
        req.body.find(s) == std::string::npos) {
      Die("a secret leaked", req, res);
    }
  }
}

// {0}..{6}: tenant A, client A, client B, target A, subscription A, event A, key A.
struct RouteTemplate {
  const char* method;
  const char* target;
};
constexpr RouteTemplate kRoutes[] = {
    {"POST", "/v1/imports/targets"},
    {"POST", "/v1/events"},
    {"POST", "/v1/subscriptions"},
    {"PATCH", "/v1/subscriptions/{4}"},
    {"PATCH", "/v1/targets/{3}"},
    {"PUT", "/v1/customers/1"},
    {"PUT", "/v1/locations/1"},
    {"PUT", "/v1/contacts/1"},
    {"POST", "/v1/clients"},
    {"PATCH", "/v1/clients/{1}"},
    {"POST", "/v1/tenants"},
    {"POST", "/v1/events/{5}/redeliver"},
    {"POST", "/v1/subscriptions/{4}/recover"},
    {"PUT", "/v1/operations-webhook"},
    {"GET", "/v1/events?"},
    {"GET", "/v1/targets?"},
    {"GET", "/v1/subscriptions/{4}/deliveries?"},
    {"GET", "/v1/subscriptions?"},
    {"GET", "/v1/clients?"},
    {"GET", "/v1/keys?"},
    {"GET", "/v1/events/{5}"},
    {"GET", "/v1/targets/{3}"},
    {"GET", "/v1/clients/{2}"},
    {"DELETE", "/v1/contacts/1"},
    {"POST", "/v1/subscriptions/{4}/rotate-secret"},
    {"GET", "/v1/event-types"},
};

std::string Fill(std::string_view pattern, const Fixture& f) {
  const std::string* ids[] = {&f.tenant_a,       &f.client_a, &f.client_b, &f.target_a,
                              &f.subscription_a, &f.event_a,  &f.key_a};
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '{' && i + 2 < pattern.size() && pattern[i + 2] == '}') {
      out += *ids[pattern[i + 1] - '0'];
      i += 2;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

void RawHttp(std::string_view bytes, const std::string& token) {
  outbound::api::ApiOptions limits;
  http::request_parser<http::string_body> parser;
  parser.body_limit(limits.max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec == http::error::need_more && parser.got_some()) parser.put_eof(ec);
  if (ec || !parser.is_done()) return;
  Request r = outbound::api::FromBeast(parser.get());
  if (r.authorization.empty() && !token.empty()) r.authorization = "Bearer " + token;
  Check(r, F().api->Handle(r));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  F();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  Fixture& f = F();
  const std::string& token = f.tokens[data[0] % f.tokens.size()];
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  if (data[1] == 0xff) {
    RawHttp(rest, token);
    return 0;
  }
  const RouteTemplate& route = kRoutes[data[1] % std::size(kRoutes)];
  Request r;
  r.method = route.method;
  r.target = Fill(route.target, f);
  if (r.target.ends_with('?')) {
    // Query routes: the input up to the first newline is the query string.
    auto nl = rest.find('\n');
    r.target += std::string(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  if (!token.empty()) r.authorization = "Bearer " + token;
  if (data[0] & 0x80) r.idempotency_key = "fuzz-key";
  r.body = std::string(rest);
  Check(r, f.api->Handle(r));
  return 0;
}
