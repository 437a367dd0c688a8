// The Beast HTTP/1.1 server around Api. The only translation unit that includes Beast.
//
// Threads: `io_threads` run the io_context (accept, read, write; each connection on its own
// strand when there are several, ServerImpl::Accept) and answer there what cannot block
// (Api::HandleQuickly: a single publish with a cached key, which answers from the store's callback
// thread after its commit); `handler_threads` run Api::Handle for the rest, which may block on a
// group commit or a read, and the answer is posted back to the connection's executor. One request
// per connection at a time: pipelined requests are parsed from what the read buffer holds once the
// one before them is answered.
#include "api/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api/api.h"
#include "api/beast_request.h"
#include "api/errors.h"
#include "core/thread_name.h"

namespace outbound::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

class ServerImpl;

// The largest body the I/O thread parses itself (Session::Handle): a webhook event's is about
// 1 KB; parsing 64 KiB of JSON takes some 100 microseconds.
constexpr std::size_t kQuickBodyBytes = std::size_t{64} * 1024;

// Whether an answer with this status has no body (RFC 9110 §6.4.1): 1xx, 204 and 304.
constexpr bool Bodiless(unsigned status) {
  return status / 100 == 1 || status == 204 || status == 304;
}

// The status an answer goes out with: a status line holds three digits; anything else (a defect)
// is a 500 (Beast's `result` threw on it).
unsigned WireStatus(int status) {
  return status >= 100 && status <= 999 ? static_cast<unsigned>(status) : 500;
}

// An answer's status line and header fields as they go on the wire, before its body (Session::
// Write sends the two in one gathered write). Written here instead of by Beast's serializer
// (http::async_write of a response<string_body>): that was a tenth of the I/O thread's CPU per
// publish, besides the system call (issue 8; docs/PERFORMANCE.md). The fields are those the
// serializer wrote: Server, Content-Type (when set), Cache-Control, the response's own headers
// (each replaces a field of the same name, as basic_fields::set did), Connection as
// message::keep_alive sets it for the request's version, and Content-Length as prepare_payload
// sets it: none for a 1xx, 204 or 304 answer, whose body must be empty. The framing is the
// server's alone: a response's own Connection, Content-Length or Transfer-Encoding is dropped
// (no handler sets one).
std::string ResponseHead(const Response& r, unsigned version, bool keep_alive) {
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  fields.reserve(5 + r.headers.size());
  auto set = [&fields](std::string_view name, std::string_view value) {
    std::erase_if(fields, [name](const auto& f) { return beast::iequals(f.first, name); });
    fields.emplace_back(name, value);
  };
  set("Server", "outbound");
  if (!r.content_type.empty()) set("Content-Type", r.content_type);
  set("Cache-Control", "no-store");
  for (const auto& [name, value] : r.headers) {
    if (beast::iequals(name, "Connection") || beast::iequals(name, "Content-Length") ||
        beast::iequals(name, "Transfer-Encoding")) {
      continue;
    }
    set(name, value);
  }
  if (version == 11 && !keep_alive) set("Connection", "close");
  if (version == 10 && keep_alive) set("Connection", "keep-alive");
  const unsigned status = WireStatus(r.status);
  const std::string length = std::to_string(r.body.size());
  if (!Bodiless(status)) set("Content-Length", length);

  std::string head;
  head.reserve(128 + r.headers.size() * 64);
  head += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  head += std::to_string(status);
  head += ' ';
  const std::string_view reason = http::obsolete_reason(http::int_to_status(status));
  head.append(reason.data(), reason.size());
  head += "\r\n";
  for (const auto& [name, value] : fields) {
    head.append(name);
    head += ": ";
    head.append(value);
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

// A parse error (as opposed to a socket error).
bool IsHttpError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

// What a connection's read buffer has room for from the start: a publish or a small request in
// one read (Session's constructor).
constexpr std::size_t kReadRoom = 4096;

// One connection. Owned by the shared_ptrs of its pending operations.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // The read buffer never holds more than `max_header_bytes` (memory per connection stays
  // bounded): a single field larger than that fills it, which is buffer_overflow → 431. Bodies
  // still stream through it (the parser empties it as it goes).
  //
  // It starts with room for a whole ordinary request (issue 8, K=1): Beast reads into what the
  // buffer has room for, at least 512 bytes, and a flat_buffer grows only as far as a read needs.
  // Left to grow, it stayed at 512 bytes, and a publish (about 670 bytes) took two reads. The cost
  // is about 3.5 KB more per connection, idle ones too (an 8 KB reservation was measured and not
  // kept on 5 Dec; the thread's own CPU per publish shows the gain now: docs/PERFORMANCE.md).
  Session(tcp::socket socket, ServerImpl& server, std::size_t max_header_bytes)
      : stream_(std::move(socket)), server_(server), buffer_(max_header_bytes) {
    buffer_.reserve(std::min(max_header_bytes, kReadRoom));
  }
  void Start() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::ReadHeader, shared_from_this()));
  }

 private:
  void ReadHeader();
  void ReadHeaderSome();
  void OnHeaderSome(beast::error_code ec, std::size_t parsed);
  void OnHeader(beast::error_code ec, std::size_t);
  void ReadBody();
  void OnBody(beast::error_code ec, std::size_t);
  void Handle();
  void Write(Response response, bool close);
  void OnWrite(bool close, beast::error_code ec, std::size_t);
  // After an error answer: stop sending, swallow what the client still sends for a moment
  // (so that closing does not reset the connection before it reads the answer), then close.
  void Drain();
  void Close();
  // Answers a problem found while reading and closes.
  void Fail(int status, std::string_view code, std::string_view message);
  // The body limit of the request whose header was read: max_body_bytes, or the batch limit
  // for POST /v1/events/batch.
  std::size_t BodyLimit() const;
  void FailTooLarge() {
    Fail(413, "payload_too_large",
         "the body is larger than " + std::to_string(BodyLimit()) + " bytes");
  }

  beast::tcp_stream stream_;
  ServerImpl& server_;
  beast::flat_buffer buffer_;
  std::size_t header_bytes_ = 0;  // of the request being read
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string response_head_;  // the answer being written (ResponseHead), then its body
  std::string response_body_;
  http::response<http::empty_body> continue_;
  std::array<char, 4096> drain_buffer_{};
  std::size_t drained_ = 0;
  bool counted_ = false;  // this request counts in ServerImpl::in_flight_
};

class ServerImpl final : public Server {
 public:
  ServerImpl(ApiOptions options, store::Store& store, ingest::IngestService& ingest,
             const core::Clock& clock, core::UlidGenerator& ids, ApiHooks hooks)
      : options_(options),
        api_(std::move(options), store, ingest, clock, ids, std::move(hooks)),
        acceptor_(asio::make_strand(ioc_)),
        pool_(static_cast<std::size_t>(std::max(1, options_.handler_threads))) {}

  ~ServerImpl() override { Stop(); }

  core::Status Start() override;
  std::uint16_t Port() const override { return port_.load(); }
  void Stop() override;

  const ApiOptions& options() const { return options_; }
  Api& api() { return api_; }
  asio::thread_pool& pool() { return pool_; }
  bool stopping() const { return stopping_.load(); }
  void RequestStarted() { in_flight_.fetch_add(1); }
  // Answers that Api::Handle has yet to give: a publish answers from the store's callback
  // thread, which must be done with this server (its Session, its Api) before Stop returns.
  // The count goes down under the lock that Stop waits with. Decremented before the lock was
  // taken, the last answer could let Stop see zero, return and destroy this server while the
  // store's thread was still to lock idle_mu_ and notify idle_ (found reading this code while
  // chasing a test's heap corruption, which had another cause). RequestDone does the same for
  // symmetry (its I/O threads are joined before the server goes).
  void AnswerExpected() { answers_due_.fetch_add(1); }
  void AnswerGiven() {
    std::lock_guard lock(idle_mu_);
    if (answers_due_.fetch_sub(1) == 1) idle_.notify_all();
  }
  void RequestDone() {
    std::lock_guard lock(idle_mu_);
    if (in_flight_.fetch_sub(1) == 1) idle_.notify_all();
  }

 private:
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);

  // Constant after construction.
  const ApiOptions options_;
  Api api_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::thread_pool pool_;

  std::atomic<std::uint16_t> port_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<int> answers_due_{0};
  std::optional<asio::steady_timer> accept_retry_;  // used on the acceptor's strand only
  // From Start to Stop (under mu_ in Start; Stop resets it once Start can no longer run).
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;

  std::mutex mu_;
  bool started_ = false;  // guarded by mu_
  bool stopped_ = false;  // guarded by mu_
  // Started by Start() under mu_; joined by the one Stop() call that sets stopped_.
  std::vector<std::thread> io_threads_;

  std::mutex idle_mu_;
  std::condition_variable idle_;  // in_flight_ or answers_due_ reached 0
};

// ---- Session ----

void Session::ReadHeader() {
  parser_.emplace();
  // The larger of the two limits until the header tells which applies (Beast checks a
  // Content-Length against the limit as it finishes the header); OnHeader narrows it.
  parser_->body_limit(
      std::max(server_.options().max_body_bytes, server_.options().max_batch_body_bytes));
  parser_->header_limit(static_cast<std::uint32_t>(server_.options().max_header_bytes));
  header_bytes_ = 0;
  stream_.expires_after(std::chrono::milliseconds(server_.options().request_timeout_ms));
  ReadHeaderSome();
}

// The header is read piece by piece and its size counted here: Beast 1.81's header_limit is
// not decremented by fields parsed in an earlier read, so on its own it lets a header of many
// small fields, arriving in several reads, grow past the limit.
void Session::ReadHeaderSome() {
  http::async_read_some(stream_, buffer_, *parser_,
                        beast::bind_front_handler(&Session::OnHeaderSome, shared_from_this()));
}

void Session::OnHeaderSome(beast::error_code ec, std::size_t parsed) {
  header_bytes_ += parsed;
  if (!ec && header_bytes_ > server_.options().max_header_bytes) ec = http::error::header_limit;
  if (!ec && !parser_->is_header_done()) return ReadHeaderSome();
  OnHeader(ec, header_bytes_);
}

void Session::OnHeader(beast::error_code ec, std::size_t) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted) {
    return Close();
  }
  if (ec == http::error::body_limit) return FailTooLarge();
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return Fail(431, "headers_too_large", "the request headers are too large");
  }
  if (ec) {
    if (IsHttpError(ec)) return Fail(400, "malformed_request", "the request is not valid HTTP/1.1");
    return Close();  // connection reset and the like
  }
  {
    const std::size_t limit = BodyLimit();
    const auto length = parser_->content_length();
    if (length && *length > limit) return FailTooLarge();
    parser_->body_limit(limit);  // nothing of the body was read yet: the whole limit
  }
  server_.RequestStarted();
  counted_ = true;
  auto& req = parser_->get();
  auto expect = req.find(http::field::expect);
  if (expect != req.end() && beast::iequals(expect->value(), "100-continue") &&
      !parser_->is_done()) {
    continue_ = {};
    continue_.version(11);
    continue_.result(http::status::continue_);
    http::async_write(stream_, continue_,
                      [self = shared_from_this()](beast::error_code wec, std::size_t) {
                        if (wec) {
                          self->server_.RequestDone();
                          self->counted_ = false;
                          return self->Close();
                        }
                        self->ReadBody();
                      });
    return;
  }
  ReadBody();
}

void Session::ReadBody() {
  if (parser_->is_done()) return Handle();
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&Session::OnBody, shared_from_this()));
}

void Session::OnBody(beast::error_code ec, std::size_t) {
  if (ec == http::error::body_limit) return FailTooLarge();
  if (ec) {
    // A timed-out stream is closed already; nothing can be answered.
    if (IsHttpError(ec) && ec != beast::error::timeout && ec != http::error::partial_message) {
      return Fail(400, "malformed_request", "the request is not valid HTTP/1.1");
    }
    return Close();
  }
  Handle();
}

void Session::Handle() {
  stream_.expires_never();
  auto& req = parser_->get();
  bool close = !req.keep_alive();
  Request r = FromBeast(req);
  server_.AnswerExpected();
  // A publish replies from the store's callback thread after its commit; the rest before
  // Handle returns. The reply gives up its hold on the session before it counts as given,
  // so that nothing of this server is used or destroyed by that thread after Stop.
  Api::Reply reply = [self = shared_from_this(), close](Response response) mutable {
    std::shared_ptr<Session> session = std::move(self);
    ServerImpl& owner = session->server_;
    // Read before the post: if it throws, the session goes with its handler. Nothing else
    // touches it meanwhile (the session waits for this answer; the store's queue orders it).
    const bool counted = session->counted_;
    // Counted as given however the post ends: it allocates, and an exception (which Api's
    // `finish` catches and logs) would otherwise leave Stop waiting for this answer for ever.
    // Either way the session has left this thread first: moved into the post's handler, or let
    // go with it when the post threw.
    struct Given {
      explicit Given(ServerImpl& s) : server(s) {}
      Given(const Given&) = delete;
      Given& operator=(const Given&) = delete;
      ~Given() { server.AnswerGiven(); }
      ServerImpl& server;
    } given(owner);
    auto executor = session->stream_.get_executor();
    try {
      asio::post(executor, [session = std::move(session), response = std::move(response),
                            close]() mutable { session->Write(std::move(response), close); });
    } catch (...) {
      if (counted) owner.RequestDone();  // the session went unanswered: no longer in flight
      throw;
    }
  };
  // What cannot block (a publish with a cached key: parse, check, queue for the writer) is
  // handled here on the I/O thread: handing it to a handler thread cost two thread wake-ups per
  // publish, more CPU than the work itself (issue 8). Bodies beyond kQuickBodyBytes go to the
  // handler threads, so that no connection's reads wait long behind another's parse.
  if (r.body.size() <= kQuickBodyBytes && server_.api().HandleQuickly(r, reply)) return;
  try {
    asio::post(server_.pool(),
               [self = shared_from_this(), r = std::move(r), reply = std::move(reply)]() mutable {
                 self->server_.api().Handle(r, std::move(reply));
               });
  } catch (...) {
    // The post allocates. Its handler went with the exception, and the reply in it was never
    // called: this request is neither answered nor in flight any more (Stop would wait for it).
    server_.AnswerGiven();
    if (counted_) {
      counted_ = false;
      server_.RequestDone();
    }
    throw;  // to the I/O thread's loop, which logs it; the connection goes with this session
  }
}

void Session::Write(Response response, bool close) {
  close = close || server_.stopping();
  const unsigned version = parser_ && parser_->get().version() == 10 ? 10 : 11;
  response_head_ = ResponseHead(response, version, !close);
  response_body_ = std::move(response.body);
  if ((parser_ && parser_->is_header_done() && parser_->get().method() == http::verb::head) ||
      Bodiless(WireStatus(response.status))) {
    // The answer to HEAD carries the headers of the answer without its body (RFC 9110 §9.3.2);
    // sent, the body would be read as the start of the next answer on this connection. A 1xx,
    // 204 or 304 answer has none either (its head says no Content-Length).
    response_body_.clear();
  }
  stream_.expires_after(std::chrono::milliseconds(server_.options().request_timeout_ms));
  const std::array<asio::const_buffer, 2> wire{asio::buffer(response_head_),
                                               asio::buffer(response_body_)};
  asio::async_write(stream_, wire,
                    beast::bind_front_handler(&Session::OnWrite, shared_from_this(), close));
}

void Session::OnWrite(bool close, beast::error_code ec, std::size_t) {
  if (counted_) {
    counted_ = false;
    server_.RequestDone();
  }
  if (ec) return Close();
  if (close) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    return Drain();
  }
  ReadHeader();
}

std::size_t Session::BodyLimit() const {
  const auto& opts = server_.options();
  // The request line is known once parsed, also when the header ended in a body_limit error.
  if (!parser_) return opts.max_body_bytes;
  const auto& req = parser_->get();
  std::string_view target = req.target();
  target = target.substr(0, target.find('?'));
  // The two batch routes: 1,000 items of realistic size pass 1 MiB (CONTRACT §10: at most
  // 1,000 items per batch), for imports as for events.
  if (req.method() == http::verb::post &&
      (target == "/v1/events/batch" || target == "/v1/imports/targets")) {
    return std::max(opts.max_body_bytes, opts.max_batch_body_bytes);
  }
  return opts.max_body_bytes;
}

void Session::Fail(int status, std::string_view code, std::string_view message) {
  Response r = ErrorResponse(status, code, message);
  Write(std::move(r), true);
}

void Session::Drain() {
  stream_.expires_after(std::chrono::seconds(2));
  stream_.async_read_some(asio::buffer(drain_buffer_),
                          [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                            self->drained_ += n;
                            // Enough to cover a request body of the permitted size, then give up.
                            if (ec || self->drained_ > 4 * self->BodyLimit() + (1 << 20)) {
                              return self->Close();
                            }
                            self->Drain();
                          });
}

void Session::Close() {
  if (counted_) {
    counted_ = false;
    server_.RequestDone();
  }
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
}

// ---- ServerImpl ----

// "host:port", "[v6]:port"; port 0 picks a free one.
core::Result<std::pair<std::string, std::uint16_t>> SplitListen(const std::string& listen) {
  auto bad = [&] {
    return core::Fail(core::Error::Invalid("listen", "invalid_setting",
                                           "listen must be host:port, got '" + listen + "'"));
  };
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) return bad();
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned long port = 0;
  for (char c : listen.substr(colon + 1)) {
    if (c < '0' || c > '9') return bad();
    port = port * 10 + static_cast<unsigned long>(c - '0');
    if (port > 65535) return bad();
  }
  if (host.empty()) host = "0.0.0.0";
  return std::make_pair(host, static_cast<std::uint16_t>(port));
}

core::Status ServerImpl::Start() {
  std::lock_guard lock(mu_);
  if (started_) return {};
  if (stopped_) {
    // Threads started now would never be joined.
    return core::Fail(core::Error::Unavailable("the server was stopped"));
  }
  auto where = SplitListen(options_.listen);
  if (!where) return core::Fail(std::move(where.error()));
  beast::error_code ec;
  tcp::resolver resolver(ioc_);
  auto endpoints = resolver.resolve(where->first, std::to_string(where->second),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return core::Fail(
        MakeError(core::ErrorKind::kInvalid, "invalid_setting",
                  "cannot resolve listen host '" + where->first + "': " + ec.message()));
  }
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  auto fail = [&](const char* what) {
    return core::Fail(MakeError(core::ErrorKind::kUnavailable, "listen_failed",
                                std::string(what) + " " + options_.listen + ": " + ec.message()));
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("cannot open");
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("cannot bind");
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("cannot listen on");
  port_ = acceptor_.local_endpoint(ec).port();

  started_ = true;
  // The I/O threads stay in run() until Stop stops them, whatever work is left: without this,
  // an accept chain that ended (an accept that saw `stopping_`, or one whose handler threw) on a
  // server with no connection open let them return, and Stop's close job would never run.
  work_.emplace(ioc_.get_executor());
  asio::dispatch(acceptor_.get_executor(), [this] { Accept(); });
  int n = std::max(1, options_.io_threads);
  for (int i = 0; i < n; ++i) {
    io_threads_.emplace_back([this] {
      core::NameThisThread("ob-api-io");
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          // Handlers throw only when memory runs out (a post in Session::Handle): log it and
          // keep serving the others.
          spdlog::error("api: I/O handler failed: {}", e.what());
        }
      }
    });
  }
  return {};
}

void ServerImpl::Accept() {
  // A connection's handlers must not run concurrently: with several I/O threads each connection
  // has its own strand; with one (the default) the io_context's executor is enough, and saves the
  // strand's lock, queue and allocation at every handler (issue 8: the I/O thread's CPU per
  // publish 2.6 % lower over 14 alternating pairs, within the noise; docs/PERFORMANCE.md). Nothing
  // configures more than one I/O thread; ServerTest.SeveralIoThreadsServeConnectionsAtOnce runs it.
  asio::any_io_executor executor = ioc_.get_executor();
  if (options_.io_threads > 1) executor = asio::make_strand(ioc_);
  acceptor_.async_accept(executor, beast::bind_front_handler(&ServerImpl::OnAccept, this));
}

void ServerImpl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping_ || !acceptor_.is_open()) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    // Out of file descriptors and the like: wait a little rather than spin.
    spdlog::warn("api: accept failed: {}", ec.message());
    accept_retry_.emplace(acceptor_.get_executor(), std::chrono::milliseconds(50));
    accept_retry_->async_wait([this](beast::error_code) {
      if (!stopping_) Accept();
    });
    return;
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  std::make_shared<Session>(std::move(socket), *this, options_.max_header_bytes)->Start();
  Accept();
}

void ServerImpl::Stop() {
  bool started = false;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    started = started_;
  }
  stopping_ = true;
  if (started) {
    // Runs: `work_` keeps the I/O threads in run() until ioc_.stop() below.
    std::promise<void> closed;
    asio::post(acceptor_.get_executor(), [this, &closed] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      if (accept_retry_) accept_retry_->cancel();
      closed.set_value();
    });
    closed.get_future().wait();
    // Requests being handled finish and are answered; idle connections are dropped.
    std::unique_lock lock(idle_mu_);
    idle_.wait_for(lock, std::chrono::seconds(10), [this] { return in_flight_.load() == 0; });
  }
  // No lock held here: I/O threads may still be finishing a handler that takes idle_mu_.
  work_.reset();
  ioc_.stop();
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();
  pool_.join();
  // Publishes still waiting for their commit (the 10 s above ran out): their answers come from
  // the store's callback thread, which must be done with this server before it goes. (Before
  // publishes answered from their commit, pool_.join() waited for them the same way.)
  std::unique_lock lock(idle_mu_);
  idle_.wait(lock, [this] { return answers_due_.load() == 0; });
}

}  // namespace

core::Result<std::unique_ptr<Server>> Server::Create(ApiOptions options, store::Store& store,
                                                     ingest::IngestService& ingest,
                                                     const core::Clock& clock,
                                                     core::UlidGenerator& ids, ApiHooks hooks) {
  if (options.max_body_bytes == 0 || options.max_header_bytes == 0) {
    return core::Fail(core::Error::Invalid("max_body_bytes", "invalid_setting",
                                           "body and header limits must be above 0"));
  }
  if (options.request_timeout_ms <= 0) {
    return core::Fail(core::Error::Invalid("request_timeout_ms", "invalid_setting",
                                           "the request timeout must be above 0"));
  }
  if (auto where = SplitListen(options.listen); !where) {
    return core::Fail(std::move(where.error()));
  }
  return std::unique_ptr<Server>(
      new ServerImpl(std::move(options), store, ingest, clock, ids, std::move(hooks)));
}

}  // namespace outbound::api
