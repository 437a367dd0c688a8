#include "app/app.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "api/server.h"
#include "app/config.h"
#include "core/clock.h"
#include "core/ids.h"
#include "delivery/dispatcher.h"
#include "ingest/ingest.h"
#include "store/sqlite/sqlite_store.h"

namespace outbound::app {
namespace {

constexpr const char* kUsage =
    "usage: outbound serve [--listen HOST:PORT] [--db sqlite:PATH|postgres://...] "
    "[--config FILE] ...\n"
    "       outbound serve --help     all settings\n"
    "       outbound version\n";

core::Result<std::unique_ptr<store::Store>> OpenStore(const Config& config) {
  const std::string& db = config.db;
  if (db.rfind("sqlite:", 0) == 0) {
    store::SqliteOptions options;
    options.path = db.substr(7);
    options.secrets_key = config.secrets_key;
    options.max_queue = config.max_write_queue;
    if (options.path.empty()) {
      return core::Fail(core::Error::Invalid("db", "invalid_setting", "db: sqlite: needs a path"));
    }
    return store::OpenSqlite(options);
  }
  if (db.rfind("postgres://", 0) == 0 || db.rfind("postgresql://", 0) == 0) {
    return core::Fail(core::Error::Invalid(
        "db", "not_available",
        "db: the PostgreSQL store is not available in this version yet; use sqlite:PATH"));
  }
  return core::Fail(
      core::Error::Invalid("db", "invalid_setting", "db: expected sqlite:PATH or postgres://..."));
}

int Serve(const std::vector<std::string>& args) {
  auto config = ParseConfig(args, [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  });
  if (!config) {
    if (config.error().code == "help") {
      std::cout << config.error().message;
      return 0;
    }
    std::cerr << "outbound: " << config.error().message << "\n";
    return 2;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("outbound"));
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto store = OpenStore(*config);
  if (!store) {
    spdlog::critical("cannot open the store: {}", store.error().message);
    return 1;
  }
  core::SystemClock clock;
  core::UlidGenerator ids;

  delivery::DispatcherOptions dispatch;
  dispatch.retry = config->retry;
  dispatch.connect_timeout_ms = config->connect_timeout_ms;
  dispatch.request_timeout_ms = config->request_timeout_ms;
  dispatch.ca_file = config->ca_file;
  dispatch.allow_private_networks = config->allow_private_networks;
  dispatch.secret_grace_ms = config->secret_grace_ms;
  dispatch.disable_after_ms = config->disable_after_ms;
  dispatch.debug_resolve = config->debug_resolve;  // tests only
  if (!dispatch.debug_resolve.empty()) {
    spdlog::warn("--debug-resolve is set: names are pinned to addresses (for tests only)");
  }
  auto dispatcher = delivery::Dispatcher::Create(**store, clock, dispatch);
  if (!dispatcher) {
    spdlog::critical("cannot start the dispatcher: {}", dispatcher.error().message);
    return 1;
  }
  delivery::Dispatcher* d = dispatcher->get();

  ingest::IngestService ingest(**store, clock, ids, [d](std::vector<store::DeliveryJob> jobs) {
    d->Offer(std::move(jobs));
  });

  api::ApiOptions api_options;
  api_options.listen = config->listen;
  api_options.operator_token = config->operator_token;
  api_options.max_body_bytes = config->max_body_bytes;
  api_options.allow_private_networks = config->allow_private_networks;
  api_options.secret_grace_ms = config->secret_grace_ms;
  api::ApiHooks hooks;
  hooks.subscription_changed = [d](core::SubscriptionId id) { d->InvalidateSubscription(id); };
  hooks.deliveries_due = [d] { d->Wake(); };
  auto server = api::Server::Create(api_options, **store, ingest, clock, ids, hooks);
  if (!server) {
    spdlog::critical("cannot create the API server: {}", server.error().message);
    return 1;
  }

  d->Start();
  if (auto started = (*server)->Start(); !started) {
    spdlog::critical("cannot listen on {}: {}", config->listen, started.error().message);
    d->Stop();
    (*store)->Close();
    return 1;
  }
  std::string host = config->listen.substr(0, config->listen.rfind(':'));
  spdlog::info("outbound listening on http://{}:{} (store {})", host, (*server)->Port(),
               config->db.rfind("sqlite:", 0) == 0 ? config->db : std::string("postgres"));
  if (!config->operator_token) spdlog::info("no operator token configured: operator API is off");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {} received: shutting down", sig);
  (*server)->Stop();
  d->Stop();
  (*store)->Close();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  if (args[0] == "version" || args[0] == "--version") {
    std::cout << "outbound 0.1.0\n";
    return 0;
  }
  if (args[0] == "serve") {
    return Serve(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::cerr << "outbound: unknown command '" << args[0] << "'\n" << kUsage;
  return 2;
}

}  // namespace outbound::app
