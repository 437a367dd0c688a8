// libFuzzer target: the whole management API on a real SQLite store, fed two ways.
//   - raw bytes, written to the real server (api::Server: Beast, its limits, its error answers)
//     over a loopback connection, which is then half-closed; every answer that comes back is
//     parsed and checked. Nothing is filtered out before the server sees it.
//   - a structured request: a route of the server's own route table (Api::router(), so a route
//     added tomorrow is fuzzed tomorrow without an edit here), with real ids of objects that
//     exist (or of another tenant's, or ids that do not exist) in its placeholders, a caller
//     token chosen from the fixture's, an optional query line, and the rest of the input as the
//     body, so the fuzzer reaches the import and publish validators and every handler's reader.
// Input layout: data[0] bits 0-5 pick the token, bit 6 says a query line comes first, bit 7 adds
// an Idempotency-Key; data[1] picks the route (0xff: raw mode; 0xfe: the route is named on the
// first line, "METHOD /pattern", which keeps the seeds in fuzz/corpus valid when routes are
// added); data[2] picks the ids. Raw mode: data[0] picks the token (an Authorization header is
// added when the bytes carry none) and the bytes from data[2] on are sent.
// Invariants checked on every answer (a violation aborts, which libFuzzer reports as a crash):
//   - no 5xx, except 503 with the store's unavailable error (code store_unavailable or
//     store_busy, with Retry-After), which a store under load may answer;
//   - every answer is application/json and parses, except 204 (no content type, no body) and
//     the 200 of the routes of kNonJsonRoutes (GET /metrics: Prometheus text; the portal's
//     page and files), and the 308 of GET /portal (to /portal/, no body);
//   - an error answer has {"error": {"code", "message"}} with string code and message;
//   - no key or signing secret of the fixture appears in any answer after its creation;
//   - raw mode: the answers are valid HTTP/1.1, the server answers or closes within 5 s, and a
//     request that Beast parses complete with the server's limits gets an answer.
// At exit it prints how many routes answered a 2xx (and which never did). ASan/UBSan catch the
// rest. Run: scripts/fuzz.sh [seconds] (docs/RELIABILITY.md).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "api/api.h"
#include "api/router.h"
#include "api/server.h"
#include "core/clock.h"
#include "core/ids.h"
#include "ingest/ingest.h"
#include "store/sqlite/sqlite_store.h"

namespace {

namespace json = boost::json;
namespace http = boost::beast::http;
using outbound::api::Request;
using outbound::api::Response;
using outbound::api::Route;

constexpr std::string_view kOperatorToken = "fuzz-operator-token-0123456789abcdef";
// Routes whose success answer is not JSON (their errors still are).
constexpr std::string_view kNonJsonRoutes[] = {"GET /metrics", "GET /portal/",
                                               "GET /portal/{file}"};
// The one answer without a body and content type besides a 204: the portal's redirect to /portal/.
constexpr std::string_view kRedirectRoute = "GET /portal";
// 503 is allowed only as the store's "try again later".
constexpr std::string_view kUnavailableCodes[] = {"store_unavailable", "store_busy"};

// One answer, from either mode.
struct Answer {
  int status = 0;
  std::string content_type;  // empty: no Content-Type
  std::string body;
  bool retry_after = false;
};

// What was asked, for the report of a broken invariant and the exemptions.
struct Asked {
  std::string method;
  std::string target;
  std::string bytes;  // everything the caller sent (a secret it sent may be quoted back)
};

[[noreturn]] void Die(const std::string& why, const Asked& asked, const Answer& a) {
  std::fprintf(stderr, "INVARIANT: %s\n%s %s\n-> %d [%s] %s\n", why.c_str(), asked.method.c_str(),
               asked.target.substr(0, 500).c_str(), a.status, a.content_type.c_str(),
               a.body.substr(0, 2000).c_str());
  std::abort();
}

struct Fixture {
  std::filesystem::path dir;
  outbound::core::SystemClock clock;
  outbound::core::UlidGenerator ids;
  std::unique_ptr<outbound::store::Store> store;
  std::unique_ptr<outbound::ingest::IngestService> ingest;
  std::unique_ptr<outbound::api::Api> api;
  std::unique_ptr<outbound::api::Server> server;  // the raw mode's: same store, real transport
  std::uint16_t port = 0;
  std::vector<const Route*> routes;  // the structured mode's, from the router
  // Tokens by caller kind: none, operator, tenant A, client A (owner), client A2, tenant B,
  // client B, a bogus one.
  std::vector<std::string> tokens;
  std::vector<std::string> secrets;  // every token and signing secret of the fixture
  // Placeholder values by the path segment before the placeholder ("clients" → client ids):
  // tenant A's objects first, then tenant B's. Ids that exist nowhere are added to all.
  std::map<std::string, std::vector<std::string>, std::less<>> ids_by_resource;
  std::vector<std::string> all_ids;  // for a placeholder after a segment not listed above
  // DELETE routes get a fresh object of tenant A made for the call (or an id that exists
  // nowhere), never the fixture's own: deleting those (its keys, its clients) would leave the
  // rest of the run answering 401.
  std::map<std::string, std::function<std::string()>, std::less<>> fresh;
  std::vector<std::string> nowhere;
  int made = 0;

  // Coverage of the route table: answers by route ("METHOD pattern"), and 2xx answers.
  std::mutex report_mu;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> hits;
  std::uint64_t raw_inputs = 0;   // raw mode: inputs sent to the server
  std::uint64_t raw_answers = 0;  // raw mode: final answers it gave

  json::value Call(std::string method, std::string target, const std::string& token,
                   const std::string& body, int want) {
    Request r{std::move(method), std::move(target), "Bearer " + token, std::nullopt, body,
              std::string()};
    Response res = api->Handle(r);
    if (res.status != want) {
      Die("fixture set-up failed", {r.method, r.target, r.body},
          {res.status, res.content_type, res.body, false});
    }
    return res.body.empty() ? json::value() : json::parse(res.body);
  }
};

std::string Id(const json::value& v, std::string_view field) {
  return std::to_string(v.at(field).to_number<std::int64_t>());
}

void PrintRouteReport();

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
    PrintRouteReport();
    std::error_code ec;
    std::filesystem::remove_all(dir_to_remove, ec);
  });
  outbound::store::SqliteOptions so;
  so.path = (f->dir / "fuzz.db").string();
  auto store = outbound::store::OpenSqlite(so);
  if (!store) std::abort();
  f->store = std::move(*store);
  f->ingest = std::make_unique<outbound::ingest::IngestService>(
      *f->store, f->clock, f->ids, [](const std::vector<outbound::store::DeliveryJob>&) {});
  outbound::api::ApiOptions ao;
  ao.operator_token = std::string(kOperatorToken);
  ao.listen = "127.0.0.1:0";
  ao.request_timeout_ms = 5000;
  ao.handler_threads = 1;
  f->api = std::make_unique<outbound::api::Api>(ao, *f->store, *f->ingest, f->clock, f->ids,
                                                outbound::api::ApiHooks{});
  auto server = outbound::api::Server::Create(ao, *f->store, *f->ingest, f->clock, f->ids,
                                              outbound::api::ApiHooks{});
  if (!server || !(*server)->Start()) std::abort();
  f->server = std::move(*server);
  f->port = f->server->Port();
  for (const Route& r : f->api->router().routes()) f->routes.push_back(&r);
  if (f->routes.empty()) std::abort();

  const std::string op(kOperatorToken);
  auto ta = f->Call("POST", "/v1/tenants", op, R"({"name":"A"})", 201);
  auto tb = f->Call("POST", "/v1/tenants", op, R"({"name":"B"})", 201);
  std::string ka(ta.at("apiKey").as_string()), kb(tb.at("apiKey").as_string());
  auto client = [&](const std::string& key, const char* source) {
    auto c = f->Call("POST", "/v1/clients", key,
                     std::string(R"({"name":"C","sourceSystem":")") + source + "\"}", 201);
    std::string id = Id(c, "clientId");
    auto k = f->Call("POST", "/v1/clients/" + id + "/keys", key, "", 201);
    return std::tuple{id, std::string(k.at("apiKey").as_string()), Id(k, "keyId")};
  };
  auto [ca, kca, kca_id] = client(ka, "logistics_erp");
  auto [ca2, kca2, kca2_id] = client(ka, "crm");
  auto [cb, kcb, kcb_id] = client(kb, "logistics_erp");
  f->Call("PUT", "/v1/customers/1", ka,
          R"({"customerNumber":"C-1","name":"C","externalIds":{"logistics_erp":"C1"}})", 201);
  f->Call("PUT", "/v1/locations/1", ka,
          R"({"customerId":1,"name":"L","address":"A","externalIds":{"logistics_erp":"L1"}})", 201);
  f->Call("PUT", "/v1/contacts/1", ka,
          R"({"customerId":1,"displayName":"P","externalIds":{"logistics_erp":"P1"}})", 201);
  f->Call("PUT", "/v1/customers/2", kb, R"({"customerNumber":"C-2","name":"C","externalIds":{}})",
          201);
  auto imp =
      f->Call("POST", "/v1/imports/targets", kca,
              R"({"targets":[{"externalId":"T-1","customerExternalId":"C1","title":"T"}]})", 200);
  const std::string target_a = Id(imp.at("results").at(0), "targetId");
  auto sub = f->Call("POST", "/v1/subscriptions", kca,
                     R"({"url":"https://receiver.example.com/hook","eventTypes":["*"]})", 201);
  const std::string subscription_a = Id(sub, "subscriptionId");
  f->secrets.emplace_back(sub.at("secret").as_string());
  auto sub_b = f->Call("POST", "/v1/subscriptions", kcb,
                       R"({"url":"https://receiver.example.com/b","eventTypes":["*"]})", 201);
  f->secrets.emplace_back(sub_b.at("secret").as_string());
  auto ev = f->Call("POST", "/v1/events", ka,
                    R"({"eventType":"appointment.started","targetId":)" + target_a +
                        R"(,"occurredAtUtc":"2026-06-25T14:02:00Z","data":{"appointmentId":1,)"
                        R"("startedAtUtc":"2026-06-25T14:02:00Z"}})",
                    202);
  const std::string event_a(ev.at("eventId").as_string());
  auto keys = f->Call("GET", "/v1/keys", ka, "", 200);
  const std::string key_a = Id(keys.at("data").at(0), "keyId");

  auto& by = f->ids_by_resource;
  by["tenants"] = {Id(ta, "tenantId"), Id(tb, "tenantId")};
  by["clients"] = {ca, ca2, cb};
  by["keys"] = {key_a, kca_id, kca2_id, kcb_id};
  by["customers"] = {"1", "2"};
  by["locations"] = {"1", "2"};
  by["contacts"] = {"1", "2"};
  by["targets"] = {target_a};
  by["subscriptions"] = {subscription_a, Id(sub_b, "subscriptionId")};
  by["events"] = {event_a};
  for (auto& [resource, values] : by) {
    f->all_ids.insert(f->all_ids.end(), values.begin(), values.end());
  }
  const std::vector<std::string> nowhere = {"0",
                                            "999999",
                                            "-1",
                                            "abc",
                                            "1.5",
                                            "%31",
                                            "99999999999999999999",
                                            "evt_01HZZZZZZZZZZZZZZZZZZZZZZZ"};
  for (auto& [resource, values] : by) values.insert(values.end(), nowhere.begin(), nowhere.end());
  f->all_ids.insert(f->all_ids.end(), nowhere.begin(), nowhere.end());
  f->nowhere = nowhere;
  // Copies captured by the makers (the fixture outlives them; these locals do not).
  std::string created_by_a = ka;
  std::string created_by_ca = kca;
  f->fresh["keys"] = [f, created_by_a] {
    return Id(f->Call("POST", "/v1/keys", created_by_a, "", 201), "keyId");
  };
  f->fresh["clients"] = [f, created_by_a] {
    const std::string n = std::to_string(++f->made);
    return Id(f->Call("POST", "/v1/clients", created_by_a,
                      R"({"name":"F)" + n + R"(","sourceSystem":"fresh_)" + n + "\"}", 201),
              "clientId");
  };
  f->fresh["subscriptions"] = [f, created_by_ca] {
    return Id(f->Call("POST", "/v1/subscriptions", created_by_ca,
                      R"({"url":"https://receiver.example.com/f","eventTypes":["*"]})", 201),
              "subscriptionId");
  };
  f->fresh["customers"] = [f, created_by_a] {
    std::string n = std::to_string(100000 + ++f->made);
    f->Call("PUT", "/v1/customers/" + n, created_by_a,
            R"({"customerNumber":"F-)" + n + R"(","name":"F","externalIds":{}})", 201);
    return n;
  };
  f->fresh["locations"] = [f, created_by_a] {
    std::string n = std::to_string(100000 + ++f->made);
    f->Call("PUT", "/v1/locations/" + n, created_by_a,
            R"({"customerId":1,"name":"F","externalIds":{}})", 201);
    return n;
  };
  f->fresh["contacts"] = [f, created_by_a] {
    std::string n = std::to_string(100000 + ++f->made);
    f->Call("PUT", "/v1/contacts/" + n, created_by_a,
            R"({"customerId":1,"displayName":"F","externalIds":{}})", 201);
    return n;
  };

  f->tokens = {"", op, ka, kca, kca2, kb, kcb, "obt_not-a-real-token"};
  for (std::size_t i = 2; i + 1 < f->tokens.size(); ++i) f->secrets.push_back(f->tokens[i]);
  return f;
}

Fixture& F() {
  static Fixture* f = MakeFixture();
  return *f;
}

void PrintRouteReport() {
  Fixture& f = F();
  std::lock_guard lock(f.report_mu);
  std::size_t answered = 0;
  std::size_t succeeded = 0;
  std::string never;
  for (const Route* r : f.routes) {
    const auto it = f.hits.find(r->method + " " + r->pattern);
    if (it != f.hits.end() && it->second.first > 0) ++answered;
    if (it != f.hits.end() && it->second.second > 0) {
      ++succeeded;
    } else {
      never += "\n  " + r->method + " " + r->pattern;
    }
  }
  std::fprintf(stderr,
               "api_fuzz: %zu routes; %zu answered, %zu with a 2xx. Raw mode: %llu inputs, %llu "
               "answers. Never a 2xx:%s\n",
               f.routes.size(), answered, succeeded, static_cast<unsigned long long>(f.raw_inputs),
               static_cast<unsigned long long>(f.raw_answers),
               never.empty() ? " none" : never.c_str());
}

// The route a request goes to, "METHOD pattern"; empty when none.
std::string RouteOf(const std::string& method, std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  const auto match = F().api->router().Find(method, path);
  return match.route == nullptr ? std::string() : match.route->method + " " + match.route->pattern;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

void Check(const Asked& asked, const Answer& a) {
  const std::string route = RouteOf(asked.method, asked.target);
  if (!route.empty()) {
    std::lock_guard lock(F().report_mu);
    auto& [answered, succeeded] = F().hits[route];
    ++answered;
    if (a.status >= 200 && a.status < 300) ++succeeded;
  }
  if (a.status < 200 || a.status > 599) Die("bad status", asked, a);

  std::optional<json::value> body;
  if (a.content_type == "application/json") {
    boost::system::error_code ec;
    body = json::parse(a.body, ec);
    if (ec) Die("answer is not JSON", asked, a);
  } else if (a.content_type.empty()) {
    const bool redirect = route == kRedirectRoute && a.status == 308;
    if ((a.status != 204 && !redirect) || !a.body.empty()) {
      Die("answer without a content type", asked, a);
    }
  } else {
    const bool non_json_route = std::find(std::begin(kNonJsonRoutes), std::end(kNonJsonRoutes),
                                          route) != std::end(kNonJsonRoutes);
    if (!non_json_route || a.status != 200) Die("answer is not JSON", asked, a);
  }
  if (a.status == 204 && !a.body.empty()) Die("204 with a body", asked, a);

  if (a.status >= 400) {
    if (!body) Die("error answer that is not JSON", asked, a);
    const auto* err = body->is_object() ? body->as_object().if_contains("error") : nullptr;
    const auto* code =
        err != nullptr && err->is_object() ? err->as_object().if_contains("code") : nullptr;
    const auto* message =
        err != nullptr && err->is_object() ? err->as_object().if_contains("message") : nullptr;
    if (code == nullptr || !code->is_string() || message == nullptr || !message->is_string()) {
      Die("error answer without error.code/message", asked, a);
    }
    if (a.status >= 500) {
      const std::string_view c = code->as_string();
      const bool unavailable = a.status == 503 && a.retry_after &&
                               std::find(std::begin(kUnavailableCodes), std::end(kUnavailableCodes),
                                         c) != std::end(kUnavailableCodes);
      if (!unavailable) Die("server error", asked, a);
    }
  }
  // New keys and secrets are shown once by design; the fixture's are never shown again.
  // (Unless the request itself carries it: errors may quote input.)
  for (const auto& s : F().secrets) {
    if (Contains(a.body, s) && !Contains(asked.bytes, s)) Die("a secret leaked", asked, a);
  }
}

Answer FromResponse(const Response& res) {
  Answer a{res.status, res.content_type, res.body, false};
  for (const auto& [name, value] : res.headers) {
    if (name == "Retry-After") a.retry_after = true;
  }
  return a;
}

// ---- raw mode ----

// Sends `bytes` to the server on a new loopback connection, half-closes it and returns all the
// server wrote until it closed. nullopt: neither an answer nor a close within 5 s.
// A connected socket to the server, with 5 s send and receive timeouts.
int Connect() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(F().port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int tries = 1;; ++tries) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) std::abort();
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    // Closed with a reset once the server has closed its side: thousands of connections a
    // minute left in TIME_WAIT would use up the loopback's ephemeral ports.
    const linger reset{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
    const int error = errno;
    ::close(fd);
    if (tries == 50) {
      std::fprintf(stderr, "INVARIANT: cannot connect to the server: %s\n", std::strerror(error));
      std::abort();
    }
    ::usleep(10000);
  }
}

std::optional<std::string> Exchange(std::string_view bytes) {
  const int fd = Connect();
  // A call interrupted by a signal is made again: libFuzzer's -timeout raises SIGALRM every
  // timeout/2 + 1 seconds with a handler installed without SA_RESTART, so a send or recv of
  // this thread could end with EINTR (a request cut short, or an answer not waited for, taken
  // for the server's: "a complete request got no answer" in CI; with -timeout=1 within a minute).
  // The server may answer and close before it has read everything (413, 431): a failed write
  // is not an error here.
  for (std::size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[16384];
  // SO_RCVTIMEO starts again at each recv, so after an EINTR the wait ends 5 s after the
  // half-close or the last bytes received instead (a SIGALRM more often than every 5 s would keep
  // a silent server waited for, until libFuzzer called it a timeout).
  auto answer_by = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      answer_by = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      continue;
    }
    if (n < 0 && errno == EINTR && std::chrono::steady_clock::now() < answer_by) continue;
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
      ::close(fd);
      return std::nullopt;
    }
    break;  // closed, or reset after the last answer
  }
  ::close(fd);
  return out;
}

// The requests in `bytes` that Beast reads complete with the server's limits, in order.
std::vector<Asked> CompleteRequests(std::string_view bytes) {
  outbound::api::ApiOptions limits;
  std::vector<Asked> out;
  while (!bytes.empty()) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(limits.max_body_bytes);
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser.eager(true);
    boost::beast::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec || !parser.is_done()) break;
    out.push_back({std::string(parser.get().method_string()), std::string(parser.get().target()),
                   std::string(bytes)});
    bytes.remove_prefix(used);
  }
  return out;
}

void RawHttp(std::string bytes, const std::string& token) {
  // A token is added when the bytes carry no Authorization header, after the request line.
  std::string lower = bytes;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto eol = bytes.find('\n');
  if (!token.empty() && !Contains(lower, "authorization") && eol != std::string::npos) {
    bytes.insert(eol + 1, "Authorization: Bearer " + token + "\r\n");
  }
  const std::vector<Asked> requests = CompleteRequests(bytes);
  Asked unparsed{"?", "?", bytes};
  const std::optional<std::string> answer = Exchange(bytes);
  if (!answer) Die("the server neither answered nor closed within 5 s", unparsed, {});

  std::string_view rest = *answer;
  std::size_t index = 0;  // of the final (non-1xx) answer
  while (!rest.empty()) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{64} * 1024 * 1024);
    parser.eager(true);
    const Asked& asked = index < requests.size() ? requests[index] : unparsed;
    if (asked.method == "HEAD") parser.skip(true);
    boost::beast::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
    if (ec == http::error::need_more) parser.put_eof(ec);
    if (ec || !parser.is_done()) {
      Die("the answer is not valid HTTP/1.1: " + ec.message(), asked,
          {0, "", std::string(rest.substr(0, 2000)), false});
    }
    rest.remove_prefix(std::min(used, rest.size()));
    const auto& res = parser.get();
    if (res.result_int() < 200) continue;  // 100 Continue
    Answer a;
    a.status = static_cast<int>(res.result_int());
    if (asked.method == "HEAD") {
      // No body comes with the answer to HEAD (RFC 9110 §9.3.2): only the status is checked.
      if (a.status >= 500) Die("server error", asked, a);
      ++index;
      continue;
    }
    if (auto it = res.find(http::field::content_type); it != res.end()) {
      a.content_type = std::string(it->value());
    }
    a.retry_after = res.find(http::field::retry_after) != res.end();
    a.body = res.body();
    Check(asked, a);
    ++index;
  }
  if (index == 0 && !requests.empty()) Die("a complete request got no answer", requests[0], {});
  std::lock_guard lock(F().report_mu);
  ++F().raw_inputs;
  F().raw_answers += index;
}

// ---- structured mode ----

// The value for each placeholder of `route`, picked by `selector` among the ids known for the
// resource named by the segment before it.
std::string Fill(const Route& route, unsigned selector, Fixture& f) {
  std::string out;
  std::string previous;
  unsigned n = 0;
  for (const std::string& segment : route.segments) {
    out += '/';
    if (segment.size() >= 2 && segment.front() == '{' && segment.back() == '}') {
      const unsigned pick = selector + 7 * n++;
      if (route.method == "DELETE") {
        const auto maker = f.fresh.find(previous);
        if (maker != f.fresh.end() && pick % 2 == 0) {
          out += maker->second();
        } else {
          out += f.nowhere[pick % f.nowhere.size()];
        }
      } else {
        const auto it = f.ids_by_resource.find(previous);
        const std::vector<std::string>& ids =
            it != f.ids_by_resource.end() ? it->second : f.all_ids;
        out += ids[pick % ids.size()];
      }
    } else {
      out += segment;
    }
    previous = segment;
  }
  return out;
}

// Takes the first line off `rest`.
std::string_view TakeLine(std::string_view& rest) {
  const auto nl = rest.find('\n');
  const std::string_view line = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  F();
  return 0;
}

// Whether fuzz input carries one of the fixture's secrets. Such an input is not run: it could
// store the secret as a name or a description, and a later answer showing that text would be
// the caller's own input, not a leak, yet "a secret leaked" could not tell the two apart (seen:
// a client renamed to a text holding a fixture token, then listed).
bool CarriesSecret(std::string_view input) {
  for (const auto& s : F().secrets) {
    if (Contains(input, s)) return true;
  }
  return false;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  if (CarriesSecret(std::string_view(reinterpret_cast<const char*>(data), size))) return 0;
  Fixture& f = F();
  const std::string& token = f.tokens[(data[0] & 0x3f) % f.tokens.size()];
  std::string_view rest(reinterpret_cast<const char*>(data + 3), size - 3);
  if (data[1] == 0xff) {
    RawHttp(std::string(reinterpret_cast<const char*>(data + 2), size - 2), token);
    return 0;
  }
  const Route* route = nullptr;
  if (data[1] == 0xfe) {
    const std::string_view name = TakeLine(rest);
    for (const Route* r : f.routes) {
      if (name == r->method + " " + r->pattern) route = r;
    }
    if (route == nullptr) return 0;
  } else {
    route = f.routes[data[1] % f.routes.size()];
  }
  Request r;
  r.method = route->method;
  r.target = Fill(*route, data[2], f);
  if ((data[0] & 0x40) != 0) r.target += "?" + std::string(TakeLine(rest));
  if (!token.empty()) r.authorization = "Bearer " + token;
  if ((data[0] & 0x80) != 0) r.idempotency_key = "fuzz-key";
  r.body = std::string(rest);
  Check({r.method, r.target, r.target + "\n" + r.body}, FromResponse(f.api->Handle(r)));
  return 0;
}
