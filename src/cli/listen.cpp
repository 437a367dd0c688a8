// `outbound listen`: a local webhook receiver for an integrator developing against Outbound.
// It verifies every request as the receiver's own code must (cli/verify.h), prints it, and
// answers 204 (or a chosen status, to try retries), 401 when the signature does not hold.
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "cli/verify.h"
#include "core/signing.h"

namespace outbound::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Webhook bodies are small (Outbound caps payloads far below this); a larger request is refused.
constexpr std::uint64_t kBodyLimit = std::uint64_t{4} * 1024 * 1024;

struct Options {
  std::string secret;
  std::string host = "127.0.0.1";
  unsigned port = 8787;
  unsigned status = 204;
  bool quiet = false;
};

std::string UtcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Header(const http::request<http::string_body>& req, std::string_view name) {
  auto it = req.find(name);
  return it == req.end() ? std::string() : std::string(it->value());
}

class Printer {
 public:
  void Line(const std::string& text) {
    std::lock_guard lock(mu_);
    std::cout << text << '\n' << std::flush;
  }

 private:
  std::mutex mu_;
};

void Serve(tcp::socket socket, const Options& options, const std::string& key, Printer& out) {
  beast::flat_buffer buffer;
  beast::error_code ec;
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kBodyLimit);
    http::read(socket, buffer, parser, ec);
    if (ec) return;  // closed, or not HTTP: nothing to print
    http::request<http::string_body> req = parser.release();
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    const std::string id = Header(req, "webhook-id");
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    core::Status verified = VerifyWebhook(key, id, Header(req, "webhook-timestamp"),
                                          Header(req, "webhook-signature"), req.body(), now);
    if (verified) {
      std::string line = UtcNow() + "  verified  " + Header(req, "ordinavo-event-type") + "  " +
                         id + "  " + Header(req, "ordinavo-delivery-id") + "  attempt " +
                         Header(req, "ordinavo-attempt") + "  answered " +
                         std::to_string(options.status);
      // The body is printed as received: re-serialising would change its bytes (numbers are
      // passed through exactly, CONTRACT.md §10), and these are the bytes that were signed.
      if (!options.quiet) line += "\n" + req.body();
      out.Line(line);
      res.result(static_cast<http::status>(options.status));
    } else {
      out.Line(UtcNow() + "  REFUSED  " + verified.error().code + ": " + verified.error().message +
               "  (" + std::string(req.method_string()) + " " + std::string(req.target()) +
               (id.empty() ? std::string() : ", webhook-id " + id) + ")");
      res.result(http::status::unauthorized);
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"error":")" + verified.error().code + R"("})";
    }
    res.prepare_payload();
    http::write(socket, res, ec);
    if (ec || !res.keep_alive()) break;
  }
  socket.shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace

int Listen(const std::vector<std::string>& args) {
  Options options;
  CLI::App app{
      "outbound listen: a local receiver that verifies each webhook with the subscription's "
      "secret and prints it"};
  app.add_option("--secret", options.secret,
                 "the subscription's whsec_ secret (or OUTBOUND_LISTEN_SECRET)");
  app.add_option("--host", options.host, "address to listen on (default 127.0.0.1)");
  app.add_option("--port", options.port, "port (default 8787; 0: any free port)");
  app.add_option("--status", options.status, "status to answer verified webhooks (default 204)")
      ->check(CLI::Range(200, 599));
  app.add_flag("--quiet", options.quiet, "print one line per webhook, without its body");
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // bad arguments are 2 (docs/CLI.md); --help is 0
  }
  if (options.secret.empty()) {
    if (const char* env = std::getenv("OUTBOUND_LISTEN_SECRET")) options.secret = env;
  }
  auto key = core::DecodeSecret(options.secret);
  if (!key) {
    std::cerr << "outbound listen: --secret must be the subscription's whsec_ secret\n";
    return 2;
  }
  try {
    asio::io_context io;
    tcp::endpoint endpoint(asio::ip::make_address(options.host),
                           static_cast<unsigned short>(options.port));
    tcp::acceptor acceptor(io, endpoint);
    Printer out;
    out.Line("listening on http://" + options.host + ":" +
             std::to_string(acceptor.local_endpoint().port()) + "/ (Ctrl-C to stop)");
    while (true) {
      tcp::socket socket(io);
      acceptor.accept(socket);
      // One thread a connection: a development tool with a handful of connections at a time
      // (Outbound opens at most maxConcurrency of them per subscription).
      std::thread([s = std::move(socket), &options, &k = *key, &out]() mutable {
        Serve(std::move(s), options, k, out);
      }).detach();
    }
  } catch (const std::exception& e) {
    std::cerr << "outbound listen: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace outbound::cli
