// `outbound ctl`: the operator's command line, a client of the management API (docs/CLI.md).
// It talks HTTP like any other user, so it works against one process or a balanced fleet and
// needs no access to the database.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "cli/http_client.h"

namespace outbound::cli {
namespace {

namespace json = boost::json;

struct Global {
  std::string url = "http://127.0.0.1:8780";
  std::string key;
  bool raw_json = false;
};

// A failed call: the API's error shape (CONTRACT.md §8) said in one line.
struct CallFailed {
  std::string message;
};

std::string Encode(const std::string& s) {
  return boost::urls::encode(s, boost::urls::unreserved_chars);
}

std::string Str(const json::value* v) {
  if (v == nullptr || v->is_null()) return "-";
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

std::string Field(const json::object& o, std::string_view name) { return Str(o.if_contains(name)); }

class Api {
 public:
  explicit Api(const Global& g) : client_(g.url, g.key) {}

  // The parsed answer of a 2xx; throws CallFailed otherwise.
  json::value Call(std::string_view method, const std::string& path, const std::string& body = {},
                   std::string* raw = nullptr) {
    HttpAnswer a = client_.Call(method, path, body);
    if (a.status == 0) throw CallFailed{"cannot reach Outbound: " + a.error};
    if (raw != nullptr) *raw = a.body;
    boost::system::error_code ec;
    json::value v = a.body.empty() ? json::value() : json::parse(a.body, ec);
    if (a.status >= 200 && a.status < 300) {
      if (ec) throw CallFailed{"the answer is not JSON"};
      return v;
    }
    std::string message = "HTTP " + std::to_string(a.status);
    if (!ec && v.is_object()) {
      if (const auto* e = v.as_object().if_contains("error"); e != nullptr && e->is_object()) {
        message += " " + Field(e->as_object(), "code") + ": " + Field(e->as_object(), "message");
        if (const auto* f = e->as_object().if_contains("field"); f != nullptr && f->is_string())
          message += " (field " + std::string(f->as_string()) + ")";
      }
    }
    throw CallFailed{message};
  }

  // Every row of a cursor-paged list (CONTRACT.md §8), at most max_rows; with `known`, no page
  // after one that holds a row it knows.
  std::vector<json::object> List(const std::string& path, std::size_t max_rows = 10000,
                                 const std::function<bool(const json::object&)>& known = {}) {
    std::vector<json::object> rows;
    const char sep = path.find('?') == std::string::npos ? '?' : '&';
    std::optional<std::string> cursor;
    while (rows.size() < max_rows) {
      std::string page = path + sep + "limit=250";
      if (cursor) page += "&cursor=" + Encode(*cursor);
      json::value v = Call("GET", page);
      bool reached_known = false;
      for (const auto& row : v.at("data").as_array()) {
        if (!row.is_object()) continue;
        rows.push_back(row.as_object());
        if (known && known(rows.back())) reached_known = true;
      }
      if (reached_known) break;
      const auto* next = v.as_object().if_contains("nextCursor");
      if (next == nullptr || !next->is_string()) break;
      cursor = std::string(next->as_string());
    }
    return rows;
  }

 private:
  HttpClient client_;
};

void PrintRaw(const std::string& raw) { std::cout << raw << (raw.ends_with('\n') ? "" : "\n"); }

void PrintAttempt(const json::object& r) {
  std::cout << Field(r, "attemptedAtUtc") << "  " << Field(r, "status") << "  "
            << Field(r, "eventType") << "  " << Field(r, "eventId") << "  attempt "
            << Field(r, "attempt") << "  http " << Field(r, "httpStatus") << "  "
            << Field(r, "durationMs") << " ms";
  if (const auto* e = r.if_contains("error"); e != nullptr && !e->is_null())
    std::cout << "  error " << Str(e);
  std::cout << '\n';
}

void PrintSubscription(const json::object& s) {
  std::cout << Field(s, "subscriptionId") << "  client " << Field(s, "clientId") << "  "
            << (s.contains("enabled") && s.at("enabled").is_bool() && s.at("enabled").as_bool()
                    ? "enabled "
                    : "DISABLED")
            << "  " << Field(s, "url") << "  " << Field(s, "eventTypes");
  if (const auto* b = s.if_contains("backlog"); b != nullptr && b->is_object())
    std::cout << "  backlog " << Field(b->as_object(), "pending");
  if (const auto* f = s.if_contains("failingSinceUtc"); f != nullptr && !f->is_null())
    std::cout << "  failing since " << Str(f);
  if (const auto* r = s.if_contains("disabledReason"); r != nullptr && !r->is_null())
    std::cout << "  (" << Str(r) << ")";
  std::cout << '\n';
}

// How many attempts `tail --follow` remembers, to print each once (bounded memory).
constexpr std::size_t kFollowRemembered = 20000;

// Attempts as the delivery log lists them, newest recorded first; printed oldest first, each once.
// Following, each poll reads from the newest down to the first page that holds an attempt already
// printed: an attempt is listed when it is recorded, so a slow one recorded after a quicker one
// that started later is at the top when it comes (a poll for the attempts that started after the
// newest one printed would never see it), and a quiet subscription costs one page a poll.
int Tail(Api& api, const Global& g, const std::string& sub, const std::string& status, bool follow,
         unsigned lines, unsigned interval_ms, unsigned max_seconds) {
  std::string base = "/v1/subscriptions/" + Encode(sub) + "/deliveries";
  if (!status.empty()) base += "?status=" + Encode(status);
  std::set<std::string> seen;          // deliveryId:attempt of the attempts printed
  std::deque<std::string> seen_order;  // the same, oldest first, to forget the oldest
  auto key_of = [](const json::object& row) {
    return Field(row, "deliveryId") + ":" + Field(row, "attempt");
  };
  auto print_new = [&](std::vector<json::object> rows) {
    for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
      std::string key = key_of(*it);
      if (!seen.insert(key).second) continue;
      seen_order.push_back(std::move(key));
      if (seen_order.size() > kFollowRemembered) {
        seen.erase(seen_order.front());
        seen_order.pop_front();
      }
      if (g.raw_json)
        std::cout << json::serialize(*it) << '\n';
      else
        PrintAttempt(*it);
    }
    std::cout << std::flush;
  };
  std::vector<json::object> first = api.List(base, lines);
  if (first.size() > lines) first.resize(lines);
  print_new(std::move(first));
  if (!follow) return 0;
  const auto known = [&](const json::object& row) { return seen.count(key_of(row)) > 0; };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(max_seconds);
  while (max_seconds == 0 || std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    print_new(api.List(base, kFollowRemembered, known));
  }
  return 0;
}

// With --json (raw_json): the API's answer as it is, and no following (the progress lines are
// not the API's answers).
int Recover(Api& api, const std::string& sub, const std::string& since, bool wait,
            unsigned max_seconds, bool raw_json) {
  json::object body{{"sinceUtc", since}};
  std::string raw;
  json::value v = api.Call("POST", "/v1/subscriptions/" + Encode(sub) + "/recover",
                           json::serialize(body), &raw);
  if (raw_json) return PrintRaw(raw), 0;
  const std::string recovered = Field(v.as_object(), "recovered");
  std::cout << "recover: " << recovered << " deliveries re-queued" << std::endl;
  if (!wait || recovered == "0") return 0;
  const bool tty = isatty(STDOUT_FILENO) == 1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(max_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    json::value s = api.Call("GET", "/v1/subscriptions/" + Encode(sub));
    const auto* backlog = s.as_object().if_contains("backlog");
    if (backlog == nullptr || !backlog->is_object()) {
      std::cout << "recover: this server does not report a backlog; follow it with "
                   "`outbound ctl deliveries tail "
                << sub << " --follow`\n";
      return 0;
    }
    const std::string pending = Field(backlog->as_object(), "pending");
    std::cout << (tty ? "\r" : "") << "recover: " << recovered << " re-queued, " << pending
              << " still waiting" << (tty ? "   " : "\n") << std::flush;
    if (pending == "0") {
      std::cout << (tty ? "\n" : "") << "recover: done" << std::endl;
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::cout << (tty ? "\n" : "") << "recover: still sending after " << max_seconds
            << " s; it goes on in the background" << std::endl;
  return 0;
}

}  // namespace

int Ctl(const std::vector<std::string>& args) {
  Global g;
  if (const char* env = std::getenv("OUTBOUND_URL")) g.url = env;
  if (const char* env = std::getenv("OUTBOUND_KEY")) g.key = env;
  CLI::App app{"outbound ctl: the management API from the command line (docs/CLI.md)"};
  app.require_subcommand(1);
  app.add_option("--url", g.url, "Outbound's base URL (OUTBOUND_URL; default " + g.url + ")");
  app.add_option("--key", g.key,
                 "operator token, tenant or client key (better: OUTBOUND_KEY, which `ps` does not "
                 "show)");
  app.add_flag("--json", g.raw_json, "print the API's JSON answers as they are");
  // --json, --url and --key anywhere, after the command too (`outbound ctl COMMAND [--json]`,
  // docs/CLI.md): subcommands made from here on pass what they do not know to their parent.
  app.fallthrough();

  std::string name, id, source_system, status, since, sub_filter;
  unsigned lines = 20, interval_ms = 1000, max_seconds = 0, wait_seconds = 600;
  bool follow = false, no_wait = false;

  auto* tenants = app.add_subcommand("tenants", "tenants (operator token)");
  tenants->require_subcommand(1);
  auto* tenant_create = tenants->add_subcommand("create", "create a tenant; prints its first key");
  tenant_create->add_option("name", name, "tenant name")->required();
  auto* tenant_key = tenants->add_subcommand("key", "a new key of a tenant (shown once)");
  tenant_key->add_option("tenantId", id)->required();

  auto* clients = app.add_subcommand("clients", "integration clients (tenant key)");
  clients->require_subcommand(1);
  auto* client_list = clients->add_subcommand("list", "list the tenant's clients");
  auto* client_create = clients->add_subcommand("create", "create a client");
  client_create->add_option("name", name)->required();
  client_create->add_option("--source-system", source_system, "the client's source system")
      ->required();
  auto* client_key = clients->add_subcommand("key", "a new key of a client (shown once)");
  client_key->add_option("clientId", id)->required();

  auto* subs = app.add_subcommand("subscriptions", "subscriptions (tenant or client key)");
  subs->require_subcommand(1);
  auto* sub_list = subs->add_subcommand("list", "list subscriptions with their health");
  sub_list->add_option("--client", sub_filter, "only this client's");
  auto* sub_get = subs->add_subcommand("get", "one subscription, as JSON");
  sub_get->add_option("subscriptionId", id)->required();

  auto* deliveries = app.add_subcommand("deliveries", "the delivery log of a subscription");
  deliveries->require_subcommand(1);
  auto* tail = deliveries->add_subcommand("tail", "the latest attempts, oldest first");
  tail->add_option("subscriptionId", id)->required();
  tail->add_option("--status", status, "pending, succeeded, failed, dead or cancelled");
  tail->add_option("-n,--lines", lines, "how many to show first (default 20)");
  tail->add_flag("-f,--follow", follow, "keep printing new attempts as they happen");
  tail->add_option("--interval-ms", interval_ms, "poll interval with --follow (default 1000)")
      ->check(CLI::Range(100U, 60000U));
  tail->add_option("--for", max_seconds, "stop following after this many seconds (default: never)");

  auto* events = app.add_subcommand("events", "events");
  events->require_subcommand(1);
  auto* event_get = events->add_subcommand("get", "an event with its deliveries, as JSON");
  event_get->add_option("eventId", id)->required();

  auto* redeliver = app.add_subcommand("redeliver", "send an event again (a new delivery cycle)");
  redeliver->add_option("eventId", id)->required();
  redeliver->add_option("--subscription", sub_filter, "only to this subscription");

  auto* recover = app.add_subcommand(
      "recover", "re-queue a subscription's dead and cancelled deliveries since a time");
  recover->add_option("subscriptionId", id)->required();
  recover->add_option("--since", since, "ISO 8601 UTC time, e.g. 2026-12-01T00:00:00Z")->required();
  recover->add_flag("--no-wait", no_wait, "do not follow the progress");
  recover->add_option("--wait", wait_seconds,
                      "follow the progress at most this long (default 600)");

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints the error (or the help) and gives its own code; bad arguments are 2
    // (docs/CLI.md).
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    Api api(g);
    std::string raw;
    if (*tenant_create) {
      json::value v =
          api.Call("POST", "/v1/tenants", json::serialize(json::object{{"name", name}}), &raw);
      if (g.raw_json) return PrintRaw(raw), 0;
      std::cout << "tenant " << Field(v.as_object(), "tenantId") << " created\n"
                << "tenant key (shown this once): " << Field(v.as_object(), "apiKey") << '\n';
    } else if (*tenant_key) {
      json::value v = api.Call("POST", "/v1/tenants/" + Encode(id) + "/keys", "{}", &raw);
      if (g.raw_json) return PrintRaw(raw), 0;
      std::cout << "key " << Field(v.as_object(), "keyId")
                << " (shown this once): " << Field(v.as_object(), "apiKey") << '\n';
    } else if (*client_list) {
      for (const auto& c : api.List("/v1/clients")) {
        if (g.raw_json) {
          std::cout << json::serialize(c) << '\n';
          continue;
        }
        std::cout << Field(c, "clientId") << "  " << Field(c, "name") << "  source system "
                  << Field(c, "sourceSystem") << '\n';
      }
    } else if (*client_create) {
      json::object body{{"name", name}, {"sourceSystem", source_system}};
      json::value v = api.Call("POST", "/v1/clients", json::serialize(body), &raw);
      if (g.raw_json) return PrintRaw(raw), 0;
      std::cout << "client " << Field(v.as_object(), "clientId") << " created\n";
    } else if (*client_key) {
      json::value v = api.Call("POST", "/v1/clients/" + Encode(id) + "/keys", "{}", &raw);
      if (g.raw_json) return PrintRaw(raw), 0;
      std::cout << "key " << Field(v.as_object(), "keyId")
                << " (shown this once): " << Field(v.as_object(), "apiKey") << '\n';
    } else if (*sub_list) {
      std::string path = "/v1/subscriptions";
      if (!sub_filter.empty()) path += "?clientId=" + Encode(sub_filter);
      for (const auto& s : api.List(path)) {
        if (g.raw_json)
          std::cout << json::serialize(s) << '\n';
        else
          PrintSubscription(s);
      }
    } else if (*sub_get) {
      api.Call("GET", "/v1/subscriptions/" + Encode(id), {}, &raw);
      PrintRaw(raw);
    } else if (*tail) {
      return Tail(api, g, id, status, follow, lines, interval_ms, max_seconds);
    } else if (*event_get) {
      api.Call("GET", "/v1/events/" + Encode(id), {}, &raw);
      PrintRaw(raw);
    } else if (*redeliver) {
      json::object body;
      if (!sub_filter.empty()) {
        char* end = nullptr;
        long long n = std::strtoll(sub_filter.c_str(), &end, 10);
        if (end == sub_filter.c_str() || *end != '\0' || n <= 0) {
          std::cerr << "outbound ctl: --subscription takes a subscription id (a number)\n";
          return 2;
        }
        body["subscriptionId"] = n;
      }
      api.Call("POST", "/v1/events/" + Encode(id) + "/redeliver", json::serialize(body), &raw);
      if (g.raw_json) return PrintRaw(raw), 0;
      std::cout << "redeliver: " << id << " queued again\n";
    } else if (*recover) {
      return Recover(api, id, since, !no_wait, wait_seconds, g.raw_json);
    }
  } catch (const CallFailed& e) {
    std::cerr << "outbound ctl: " << e.message << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "outbound ctl: unexpected answer: " << e.what() << '\n';
    return 1;
  }
  return 0;
}

}  // namespace outbound::cli
