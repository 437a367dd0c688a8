#include "server.h"

#include <algorithm>
#include <boost/json.hpp>
#include <numeric>
#include <optional>
#include <sstream>

#include "core/signing.h"

namespace bench {

namespace json = boost::json;
namespace core = outbound::core;

void UnblockSignalsInChild() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

std::optional<json::value> ParseJson(const std::string& s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  if (ec) return std::nullopt;
  return v;
}

std::string Field(const std::string& body, const char* key) {
  auto v = ParseJson(body);
  if (!v || !v->is_object() || !v->as_object().contains(key)) return "";
  const json::value& f = v->as_object().at(key);
  if (f.is_string()) return std::string(f.as_string());
  return json::serialize(f);
}

// Creates tenant, client, directory records, targets and K subscriptions to the receiver.
bool SetUp(Server& srv, int rx_port, int k, int n_targets, Fixture* fx, std::string* err) {
  return SetUp(srv, rx_port, FirstPaths(k), n_targets, fx, err);
}

std::vector<int> FirstPaths(int k) {
  std::vector<int> paths(static_cast<size_t>(std::max(k, 0)));
  std::iota(paths.begin(), paths.end(), 0);
  return paths;
}

std::string SetPaused(Server& srv, const Fixture& fx, bool paused) {
  Api api(srv.base());
  const std::string body = paused ? R"({"paused":true})" : R"({"paused":false})";
  std::string errors;
  for (const std::string& id : fx.subscription_ids) {
    Resp resp;
    for (int attempt = 0; attempt < 20; ++attempt) {
      resp = api.Call("PATCH", "/v1/subscriptions/" + id, fx.client_key, &body);
      if (resp.status != 503) break;
      SleepMs(50);
    }
    if (resp.status != 200)
      errors += "PATCH paused " + id + ": HTTP " + std::to_string(resp.status) + " " +
                resp.body.substr(0, 160) + "; ";
  }
  return errors;
}

bool SetUp(Server& srv, int rx_port, const std::vector<int>& paths, int n_targets, Fixture* fx,
           std::string* err, const std::vector<std::string>& event_types) {
  Api api(srv.base());
  // healthz, bounded
  bool healthy = false;
  for (int i = 0; i < 200 && !healthy; ++i) {
    Resp r = api.Call("GET", "/healthz", "", nullptr);
    healthy = r.status == 200;
    if (!healthy) SleepMs(25);
  }
  if (!healthy) {
    *err = "/healthz never answered 200";
    return false;
  }
  auto expect = [&](const Resp& r, std::initializer_list<long> ok, const char* what) {
    for (long s : ok)
      if (r.status == s) return true;
    *err = std::string(what) + ": HTTP " + std::to_string(r.status) + " " + r.error + " " +
           r.body.substr(0, 500);
    return false;
  };
  auto get_str = [&](const std::string& body, const char* key, std::string* out) {
    auto v = ParseJson(body);
    if (!v || !v->is_object() || !v->as_object().contains(key) ||
        !v->as_object().at(key).is_string())
      return false;
    *out = std::string(v->as_object().at(key).as_string());
    return true;
  };
  std::string body = R"({"name":"Bench Tenant"})";
  Resp r = api.Call("POST", "/v1/tenants", kOperatorToken, &body);
  if (!expect(r, {201}, "POST /v1/tenants") || !get_str(r.body, "apiKey", &fx->tenant_key)) {
    if (err->empty()) *err = "POST /v1/tenants: no apiKey in " + r.body;
    return false;
  }
  body = R"({"name":"Bench ERP","sourceSystem":"bench_erp"})";
  r = api.Call("POST", "/v1/clients", fx->tenant_key, &body);
  if (!expect(r, {201}, "POST /v1/clients")) return false;
  auto cv = ParseJson(r.body);
  if (!cv || !cv->is_object() || !cv->as_object().contains("clientId")) {
    *err = "POST /v1/clients: no clientId in " + r.body;
    return false;
  }
  std::string client_id = json::serialize(cv->as_object().at("clientId"));
  if (!client_id.empty() && client_id.front() == '"')
    client_id = client_id.substr(1, client_id.size() - 2);
  r = api.Call("POST", "/v1/clients/" + client_id + "/keys", fx->tenant_key, nullptr);
  if (!expect(r, {201}, "POST /v1/clients/{id}/keys")) return false;
  if (!get_str(r.body, "apiKey", &fx->client_key)) {
    *err = "client key: no apiKey in " + r.body;
    return false;
  }
  // Directory records with realistic-length names so that a webhook body is about 1 KB.
  body =
      R"({"customerNumber":"RRM-001","name":"Rhein-Ruhr Medical Supply GmbH & Co. KG, Zentrallager und Kundendienst Nordrhein-Westfalen","internalNotes":"bench","externalIds":{"bench_erp":"CUST-10042"}})";
  r = api.Call("PUT", "/v1/customers/12", fx->tenant_key, &body);
  if (!expect(r, {200, 201}, "PUT /v1/customers/12")) return false;
  body =
      R"({"customerId":12,"name":"Essen Center, Huyssenallee, Gebaeude C, Kuehlraum 2","address":"Huyssenallee 1, Essen","externalIds":{"bench_erp":"LOC-ESSEN-01"}})";
  r = api.Call("PUT", "/v1/locations/34", fx->tenant_key, &body);
  if (!expect(r, {200, 201}, "PUT /v1/locations/34")) return false;
  body =
      R"({"customerId":12,"displayName":"Anna Weber","phone":"+49 201 555 0100","email":"anna.weber@example.com","externalIds":{"bench_erp":"CONT-44"}})";
  r = api.Call("PUT", "/v1/contacts/56", fx->tenant_key, &body);
  if (!expect(r, {200, 201}, "PUT /v1/contacts/56")) return false;
  // Targets (before the subscriptions, so their target.imported events go nowhere).
  json::array items;
  for (int i = 0; i < n_targets; ++i) {
    items.push_back(json::object{{"externalId", "DEL-2026-" + std::to_string(100000 + i)},
                                 {"customerExternalId", "CUST-10042"},
                                 {"locationExternalId", "LOC-ESSEN-01"},
                                 {"contactExternalId", "CONT-44"},
                                 {"title", "Deliver cold-room spare parts"},
                                 {"durationMinutes", 45}});
  }
  body = json::serialize(json::object{{"targets", items}});
  r = api.Call("POST", "/v1/imports/targets", fx->client_key, &body);
  if (!expect(r, {200}, "POST /v1/imports/targets")) return false;
  auto iv = ParseJson(r.body);
  try {
    for (auto& res : iv.value().as_object().at("results").as_array()) {
      auto& o = res.as_object();
      if (o.at("result").as_string() != "imported") {
        *err = "import: item not imported: " + json::serialize(res);
        return false;
      }
      fx->targets.push_back(o.at("targetId").to_number<int64_t>());
    }
  } catch (const std::exception& e) {
    *err = std::string("import: unexpected answer (") + e.what() + "): " + r.body.substr(0, 500);
    return false;
  }
  if (fx->targets.empty()) {
    *err = "import: no targets";
    return false;
  }
  for (size_t j = 0; j < paths.size(); ++j) {
    const int i = paths[j];
    const std::string types =
        j < event_types.size() && !event_types[j].empty() ? event_types[j] : "appointment.*";
    body = json::serialize(json::object{
        {"url", "http://127.0.0.1:" + std::to_string(rx_port) + "/s" + std::to_string(i)},
        {"eventTypes", json::array{json::string(types)}},
        {"description", "bench subscription " + std::to_string(i)}});
    r = api.Call("POST", "/v1/subscriptions", fx->client_key, &body);
    if (!expect(r, {201}, "POST /v1/subscriptions")) return false;
    std::string secret;
    if (!get_str(r.body, "secret", &secret)) {
      *err = "POST /v1/subscriptions: no secret in " + r.body.substr(0, 300);
      return false;
    }
    const std::string id = Field(r.body, "subscriptionId");
    if (id.empty()) {
      *err = "POST /v1/subscriptions: no subscriptionId in " + r.body.substr(0, 300);
      return false;
    }
    fx->secrets.push_back(secret);
    fx->paths.push_back(i);
    fx->subscription_ids.push_back(id);
  }
  return true;
}

// Checks one received webhook's Standard Webhooks signature against the subscription's secret.
std::string CheckSample(const std::string& raw, const std::string& secret) {
  if (raw.empty()) return "no sample";
  size_t hend = raw.find("\r\n\r\n");
  if (hend == std::string::npos) return "malformed sample";
  std::string head = raw.substr(0, hend), body = raw.substr(hend + 4);
  auto header = [&](const char* name) -> std::string {
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    std::string key = std::string("\r\n") + name + ":";
    size_t k = lower.find(key);
    if (k == std::string::npos) return "";
    size_t v = k + key.size();
    size_t e = head.find("\r\n", v);
    std::string val = head.substr(v, e == std::string::npos ? std::string::npos : e - v);
    while (!val.empty() && val.front() == ' ') val.erase(0, 1);
    return val;
  };
  std::string id = header("webhook-id"), ts = header("webhook-timestamp"),
              sig = header("webhook-signature");
  auto key = core::DecodeSecret(secret);
  if (!key) return "undecodable secret";
  std::string want = core::Sign(*key, id, std::strtoll(ts.c_str(), nullptr, 10), body);
  std::istringstream parts(sig);
  std::string one;
  while (parts >> one) {
    if (one == want) return "ok";
  }
  return "MISMATCH (webhook-id '" + id + "', timestamp '" + ts + "')";
}

SignatureTally CheckSamples(const std::vector<std::string>& samples, const Fixture& fx) {
  SignatureTally t;
  for (const std::string& raw : samples) {
    // "POST /sN HTTP/1.1": the subscription, hence the secret.
    int path = -1;
    size_t sp = raw.find(' ');
    if (sp != std::string::npos && raw.compare(sp + 1, 2, "/s") == 0)
      path = std::atoi(raw.c_str() + sp + 3);
    auto it = std::find(fx.paths.begin(), fx.paths.end(), path);
    std::string verdict =
        it == fx.paths.end()
            ? "no subscription for path /s" + std::to_string(path)
            : CheckSample(raw, fx.secrets[static_cast<size_t>(it - fx.paths.begin())]);
    if (verdict == "ok") {
      t.verified++;
    } else {
      t.failed++;
      if (t.first_failure.empty()) t.first_failure = verdict;
    }
  }
  return t;
}

std::string SignatureTally::Text() const {
  uint64_t n = verified + failed;
  if (n == 0) return "no sample";
  if (failed == 0) return "verified " + std::to_string(verified) + " of " + std::to_string(n);
  return "FAILED " + std::to_string(failed) + " of " + std::to_string(n) +
         " (first: " + first_failure + ")";
}

// ------------------------------------------------------------------------------------------

}  // namespace bench
