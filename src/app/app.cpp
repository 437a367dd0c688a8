#include "app/app.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/server.h"
#include "app/config.h"
#include "app/logging.h"
#include "app/retention.h"
#include "cli/cli.h"
#include "core/clock.h"
#include "core/ids.h"
#include "delivery/dispatcher.h"
#include "ingest/ingest.h"
#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_store.h"

namespace outbound::app {
namespace {

constexpr const char* kUsage =
    "usage: outbound serve [--listen HOST:PORT] [--db sqlite:PATH|postgres://...]\n"
    "                      [--role all|api|worker] [--config FILE] ...\n"
    "       outbound serve --help       all settings\n"
    "       outbound migrate [--db sqlite:PATH|postgres://...] [--config FILE]\n"
    "                                   apply the schema migrations and exit (--help: settings)\n"
    "       outbound ctl [--url URL] COMMAND  the management API from the command line\n"
    "                                   (--help: commands; docs/CLI.md)\n"
    "       outbound listen --secret whsec_... [--port N]\n"
    "                                   a local receiver that verifies and prints webhooks\n"
    "       outbound version\n";

std::optional<std::string> ProcessEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

// The database for the log: a postgres:// URL may carry a password.
std::string DbForLog(const Config& config) {
  return IsPostgresUrl(config.db) ? std::string("postgres") : config.db;
}

// scheme://host:port of a URL, without user:password@ and without path, for the log.
std::string WithoutCredentials(const std::string& url) {
  auto sep = url.find("://");
  if (sep == std::string::npos) return "(unprintable)";
  std::size_t host = sep + 3;
  // A password may hold an unencoded '/', '?' or '#': the host starts after the last '@'.
  if (auto at = url.rfind('@'); at != std::string::npos && at >= host) host = at + 1;
  std::size_t end = url.find_first_of("/?#", host);
  if (end == std::string::npos) end = url.size();
  return url.substr(0, sep + 3) + url.substr(host, end - host);
}

// Opens the database of a checked Config (ParseConfig / ParseMigrateConfig).
core::Result<std::unique_ptr<store::Store>> OpenStore(const Config& config) {
  if (IsPostgresUrl(config.db)) {
    store::PostgresOptions options;
    options.dsn = config.db;
    options.secrets_keys = config.secrets_keys;
    options.max_queue = config.max_write_queue;
    return store::OpenPostgres(options);
  }
  store::SqliteOptions options;
  options.path = config.db.substr(std::string_view("sqlite:").size());
  options.secrets_key = config.secrets_key;
  if (config.secrets_keys.size() > 1) {
    options.older_secrets_keys.assign(config.secrets_keys.begin() + 1, config.secrets_keys.end());
  }
  options.max_queue = config.max_write_queue;
  return store::OpenSqlite(options);
}

// Prints the help (exit 0) or the error (exit 2) of a failed parse.
int ConfigFailure(const core::Error& error) {
  if (error.code == "help") {
    std::cout << error.message;
    return 0;
  }
  std::cerr << "outbound: " << error.message << "\n";
  return 2;
}

// libcurl (with OpenSSL) writes the secrets of every TLS connection to the file SSLKEYLOGFILE
// names, a debugging aid of browsers and curl; with them, whoever reads the file decrypts every
// delivery's payload and signature. The server never writes a secret to a file, so it takes the
// variable out of its environment before libcurl starts (curl_global_init reads it), while it
// has one thread and the environment may change, and says so.
void IgnoreKeyLogFile() {
  if (std::getenv("SSLKEYLOGFILE") == nullptr) return;
  ::unsetenv("SSLKEYLOGFILE");
  spdlog::warn(
      "SSLKEYLOGFILE is set and ignored: the server does not write TLS session secrets to a "
      "file");
}

int Migrate(const std::vector<std::string>& args) {
  auto config = ParseMigrateConfig(args, ProcessEnv);
  if (!config) return ConfigFailure(config.error());
  SetUpLogging(config->log_level, config->log_format);
  if (IsPostgresUrl(config->db)) {
    if (auto migrated = store::MigratePostgres(config->db); !migrated) {
      spdlog::critical("cannot migrate the database: {}", migrated.error().message);
      return 1;
    }
  } else {
    // The SQLite store migrates its file when it opens.
    auto store = OpenStore(*config);
    if (!store) {
      spdlog::critical("cannot migrate the database: {}", store.error().message);
      return 1;
    }
    (*store)->Close();
  }
  spdlog::info("database {} is migrated", DbForLog(*config));
  return 0;
}

int Serve(const std::vector<std::string>& args) {
  auto config = ParseConfig(args, ProcessEnv);
  if (!config) return ConfigFailure(config.error());
  SetUpLogging(config->log_level, config->log_format);
  IgnoreKeyLogFile();

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

  // --role api sends nothing: no dispatcher, and everything below must do without one.
  std::unique_ptr<delivery::Dispatcher> dispatcher;
  if (config->role != Role::kApi) {
    delivery::DispatcherOptions dispatch;
    dispatch.retry = config->retry;
    dispatch.connect_timeout_ms = config->connect_timeout_ms;
    dispatch.request_timeout_ms = config->request_timeout_ms;
    // SIGTERM lets in-flight attempts finish up to the request timeout (CONTRACT §12).
    dispatch.stop_grace_ms = config->request_timeout_ms;
    dispatch.lease_ms = config->lease_ms;
    // Only a process that fans out nothing may give subscriptions up (see DispatcherOptions).
    dispatch.shed_idle_subscriptions = config->role == Role::kWorker;
    dispatch.proxy = config->proxy;
    dispatch.ca_file = config->ca_file;
    dispatch.allow_private_networks = config->allow_private_networks;
    dispatch.secret_grace_ms = config->secret_grace_ms;
    dispatch.disable_after_ms = config->disable_after_ms;
    dispatch.debug_resolve = config->debug_resolve;  // tests only
    if (!dispatch.debug_resolve.empty()) {
      spdlog::warn("--debug-resolve is set: names are pinned to addresses (for tests only)");
    }
    if (!config->proxy.empty()) {
      spdlog::info("deliveries go through the proxy {}", WithoutCredentials(config->proxy));
    }
    auto created = delivery::Dispatcher::Create(**store, clock, dispatch);
    if (!created) {
      spdlog::critical("cannot start the dispatcher: {}", created.error().message);
      (*store)->Close();
      return 1;
    }
    dispatcher = std::move(*created);
  }
  delivery::Dispatcher* d = dispatcher.get();  // null with --role api

  ingest::IngestOptions ingest_options;
  ingest_options.lease_ms = config->lease_ms;
  ingest_options.lease_to_self = d != nullptr;  // without a dispatcher the workers claim them
  // Single publishes waiting in groups count against the write queue's bound as the tasks they
  // replace did: that many waiting, the next one is answered 503 store_busy.
  ingest_options.max_waiting_publishes = config->max_write_queue;
  ingest::JobSink sink = [](const std::vector<store::DeliveryJob>&) {};
  if (d) sink = [d](std::vector<store::DeliveryJob> jobs) { d->Offer(std::move(jobs)); };
  ingest::IngestService ingest(**store, clock, ids, std::move(sink), ingest_options);

  api::ApiOptions api_options;
  api_options.listen = config->listen;
  api_options.operator_token = config->operator_token;
  api_options.max_body_bytes = config->max_body_bytes;
  api_options.allow_private_networks = config->allow_private_networks;
  api_options.secret_grace_ms = config->secret_grace_ms;
  api_options.worker_only = config->role == Role::kWorker;
  api_options.public_url = config->public_url;
  api_options.portal_frame_ancestors = config->portal_frame_ancestors;
  api::ApiHooks hooks;  // empty hooks are skipped by the handlers
  if (d) {
    hooks.subscription_changed = [d](core::SubscriptionId id) { d->InvalidateSubscription(id); };
    hooks.deliveries_due = [d] { d->Wake(); };
    hooks.dispatcher_held = [d] { return d->Held().held; };
  }
  auto server = api::Server::Create(api_options, **store, ingest, clock, ids, hooks);
  if (!server) {
    spdlog::critical("cannot create the API server: {}", server.error().message);
    (*store)->Close();
    return 1;
  }

  if (d) d->Start();
  // Retention runs in every process that sends (see app/retention.h for why that is safe).
  std::unique_ptr<RetentionService> retention;
  if (d) {
    RetentionOptions retention_options;
    retention_options.retention_ms = config->retention_ms;
    retention = std::make_unique<RetentionService>(**store, clock, retention_options);
    retention->Start();
  }
  if (auto started = (*server)->Start(); !started) {
    spdlog::critical("cannot listen on {}: {}", config->listen, started.error().message);
    if (retention) retention->Stop();
    if (d) d->Stop();
    (*store)->Close();
    return 1;
  }
  std::string host = config->listen.substr(0, config->listen.rfind(':'));
  spdlog::info("outbound listening on http://{}:{} (store {}, role {})", host, (*server)->Port(),
               DbForLog(*config), RoleName(config->role));
  if (config->role == Role::kWorker) {
    spdlog::info("role worker: the API answers only /healthz, /readyz and /metrics");
  }
  if (!config->operator_token) spdlog::info("no operator token configured: operator API is off");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {} received: shutting down", sig);
  // In this order (CONTRACT §12): take no new requests and answer those in flight (they may
  // still hand work to the dispatcher); stop sending (in-flight attempts finish and are
  // recorded, the rest is handed back); close the store once those writes are committed.
  (*server)->Stop();
  if (retention) retention->Stop();
  if (d) d->Stop();
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
  if (args[0] == "ctl") {
    return cli::Ctl(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "listen") {
    return cli::Listen(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "migrate") {
    return Migrate(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::cerr << "outbound: unknown command '" << args[0] << "'\n" << kUsage;
  return 2;
}

}  // namespace outbound::app
