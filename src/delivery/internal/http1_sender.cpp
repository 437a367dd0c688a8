// Http1Sender (http1_sender.h): plain-HTTP/1.1 POSTs over kept-alive connections, one epoll set,
// Beast's parser for the answers, names resolved on threads of its own.
#include "delivery/internal/http1_sender.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "delivery/internal/http_util.h"

namespace outbound::delivery::internal {
namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

// What a URL comes to: where to connect and what to write. Cached per URL string.
struct Endpoint {
  std::string host;  // name or address, without brackets
  std::string port;  // decimal
  std::uint16_t port_number = 80;
  std::string host_header;  // the Host header's value
  std::string target;       // path and query
  std::string pool_key;     // host + ' ' + port: kept-alive connections are shared by it
};

std::optional<Endpoint> ParseEndpoint(const std::string& url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return std::nullopt;
  const boost::urls::url_view& u = *parsed;
  if (u.scheme_id() != boost::urls::scheme::http || u.has_userinfo()) return std::nullopt;
  Endpoint e;
  if (u.host_type() == boost::urls::host_type::ipv6) {
    e.host = u.host_address();
  } else {
    e.host = u.host();  // percent-decoded
  }
  if (e.host.empty()) return std::nullopt;
  if (u.has_port() && !u.port().empty()) {
    // Any run of digits parses as a URL's port; one outside 1-65535 is libcurl's to refuse
    // ("invalid_url"), as before this sender.
    const std::string_view digits = u.port();
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || end != digits.data() + digits.size() || value == 0 || value > 65535) {
      return std::nullopt;
    }
    e.port_number = static_cast<std::uint16_t>(value);
  }
  e.port = std::to_string(e.port_number);
  // As libcurl writes it: the port only when it is not HTTP's own.
  e.host_header = std::string(u.encoded_host());
  if (e.port_number != 80) e.host_header += ':' + e.port;
  e.target = u.encoded_path().empty() ? "/" : std::string(u.encoded_path());
  if (u.has_query()) {
    e.target += '?';
    e.target += u.encoded_query();
  }
  e.pool_key = e.host + ' ' + e.port;
  return e;
}

// A name's addresses, or why it has none. Only addresses are kept (names_), until `expires`.
struct Resolution {
  std::vector<sockaddr_storage> addresses;  // port 0; set per connection
  std::string error;
  Clock::time_point expires{};
};

// getaddrinfo on threads of its own, so that a slow name server never stalls the dispatcher's
// loop (libcurl's threaded resolver does the same). Results wake the epoll set through an
// eventfd.
class Resolver {
 public:
  explicit Resolver(int wake_fd) : wake_fd_(wake_fd) {
    for (int i = 0; i < kThreads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~Resolver() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  void Ask(const std::string& host) {
    {
      std::lock_guard lock(mu_);
      asked_.push_back(host);
    }
    cv_.notify_one();
  }
  std::vector<std::pair<std::string, Resolution>> Take() {
    std::lock_guard lock(mu_);
    return std::exchange(answered_, {});
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || !asked_.empty(); });
      if (stop_) return;
      std::string host = std::move(asked_.front());
      asked_.pop_front();
      lock.unlock();
      Resolution r = Resolve(host);
      lock.lock();
      answered_.emplace_back(std::move(host), std::move(r));
      const std::uint64_t one = 1;
      [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
    }
  }

  static Resolution Resolve(const std::string& host) {
    Resolution r;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (rc != 0 || found == nullptr) {
      // libcurl's words, which attempts logged before this sender existed.
      r.error = "dns_error: Could not resolve host: " + host;
      return r;
    }
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
      if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
      sockaddr_storage s{};
      std::memcpy(&s, a->ai_addr, a->ai_addrlen);
      r.addresses.push_back(s);
    }
    ::freeaddrinfo(found);
    if (r.addresses.empty()) r.error = "dns_error: Could not resolve host: " + host;
    return r;
  }

  // Names resolve side by side: one whose name server does not answer (getaddrinfo waits
  // seconds) holds up at most one thread. Each name is asked once at a time (asking_ in the
  // sender).
  static constexpr int kThreads = 4;
  const int wake_fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> asked_;
  std::vector<std::pair<std::string, Resolution>> answered_;
  bool stop_ = false;
  std::vector<std::thread> threads_;  // last: they start once the members above exist
};

std::optional<sockaddr_storage> ParseAddress(const std::string& text) {
  sockaddr_storage s{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&s);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    return s;
  }
  s = {};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&s);
  if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    return s;
  }
  return std::nullopt;
}

socklen_t LengthOf(const sockaddr_storage& s) {
  return s.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

void SetPort(sockaddr_storage& s, std::uint16_t port) {
  if (s.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&s)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&s)->sin_port = htons(port);
  }
}

struct Conn;

// One attempt in flight.
struct Transfer {
  Attempt attempt;
  const Endpoint* endpoint = nullptr;  // in the URL cache, cleared only with nothing in flight
  std::string head;
  std::string body;
  std::size_t sent = 0;                  // bytes of head + body written
  Clock::time_point deadline{};          // the request timeout
  Clock::time_point connect_deadline{};  // resolution and connect
  Conn* conn = nullptr;
  bool resent = false;  // sent again once on a fresh connection already
  // The answer.
  std::optional<http::response_parser<http::buffer_body>> parser;
  bool got_bytes = false;
  int status = 0;  // a final status (>= 200) once its header is read
  std::string retry_after;
  std::string response;  // the body's first store_limit + 1 bytes
  std::size_t received = 0;
  std::string unparsed;   // bytes the parser left for the next read
  std::size_t index = 0;  // in Http1SenderImpl::transfers_
};

// kClosed: its descriptor closed, the object kept until the end of Perform() (an event of the
// same epoll batch may still point at it).
enum class ConnState { kConnecting, kSending, kReceiving, kIdle, kClosed };

struct Conn {
  int fd = -1;
  ConnState state = ConnState::kConnecting;
  std::string pool_key;
  Transfer* transfer = nullptr;
  bool reused = false;                      // served a request before the current one
  bool listed_idle = false;                 // in idle_[pool_key]
  std::vector<sockaddr_storage> addresses;  // still to try, when connecting
  std::size_t next_address = 0;
  std::size_t index = 0;      // in Http1SenderImpl::conns_
  std::uint32_t watched = 0;  // the events its descriptor is in the epoll set for (Watch)
};

constexpr std::size_t kReadChunk = std::size_t{64} * 1024;
constexpr std::size_t kBodyChunk = std::size_t{16} * 1024;
constexpr std::size_t kHeaderLimit =
    std::size_t{100} * 1024;                              // libcurl's limit of a response's headers
constexpr auto kNameLifetime = std::chrono::seconds(60);  // libcurl's DNS cache timeout

class Http1SenderImpl final : public Http1Sender {
 public:
  Http1SenderImpl(const SenderOptions& options, int epoll_fd, int wake_fd)
      : options_(options),
        ep_(epoll_fd),
        wake_fd_(wake_fd),
        read_limit_(std::max(options.response_read_limit, options.response_store_limit)),
        resolver_(std::make_unique<Resolver>(wake_fd)) {
    // --debug-resolve entries ("host:port:address"), as CURLOPT_RESOLVE takes them (tests).
    for (const std::string& entry : options_.debug_resolve) {
      const auto first = entry.find(':');
      const auto second = first == std::string::npos ? first : entry.find(':', first + 1);
      if (second == std::string::npos) continue;
      std::string address = entry.substr(second + 1);
      if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
        address = address.substr(1, address.size() - 2);
      }
      if (auto a = ParseAddress(address)) {
        fixed_[entry.substr(0, first) + ' ' + entry.substr(first + 1, second - first - 1)] = *a;
      }
    }
    buffer_.resize(kReadChunk);
    body_buffer_.resize(kBodyChunk);
  }

  ~Http1SenderImpl() override {
    resolver_.reset();  // joins its threads, which write to wake_fd_
    for (auto& c : conns_) {
      if (c->fd >= 0) ::close(c->fd);
    }
    ::close(wake_fd_);
    ::close(ep_);
  }

  Http1SenderImpl(const Http1SenderImpl&) = delete;
  Http1SenderImpl& operator=(const Http1SenderImpl&) = delete;

  bool Handles(const std::string& url) override { return EndpointOf(url) != nullptr; }

  std::optional<std::string> Start(Request request, Attempt& attempt) override {
    const Endpoint* e = EndpointOf(request.url);
    if (e == nullptr) return "internal_error: not a plain HTTP URL";
    auto owned = std::make_unique<Transfer>();
    Transfer* t = owned.get();
    t->endpoint = e;
    t->body = std::move(request.body);
    BuildHead(*e, request.header_lines, t->body.size(), t->head);
    const auto now = Clock::now();
    t->deadline = now + std::chrono::milliseconds(options_.request_timeout_ms);
    t->connect_deadline =
        std::min(t->deadline, now + std::chrono::milliseconds(options_.connect_timeout_ms));
    t->attempt = std::move(attempt);
    t->index = transfers_.size();
    transfers_.push_back(std::move(owned));
    next_check_ = std::min(next_check_, t->connect_deadline);
    Dispatch(t);
    return std::nullopt;
  }

  std::vector<Response> Perform() override {
    std::array<epoll_event, 64> events{};
    while (true) {
      const int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 0);
      if (n <= 0) break;
      for (int i = 0; i < n; ++i) {
        const epoll_event& ev = events[static_cast<std::size_t>(i)];
        if (ev.data.ptr == nullptr) {
          TakeResolutions();
        } else {
          OnEvent(static_cast<Conn*>(ev.data.ptr), ev.events);
        }
      }
      if (n < static_cast<int>(events.size())) break;
    }
    if (Clock::now() >= next_check_) Expire();
    TrimIdle();
    closed_.clear();  // no event of the batches above is left to point at them
    return std::exchange(ended_, {});
  }

  int fd() const override { return ep_; }

  int MsToNextDeadline() const override {
    if (!ended_.empty()) return 0;
    if (transfers_.empty()) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(next_check_ - Clock::now());
    return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 60'000));
  }

  std::vector<Attempt> Abandon() override {
    std::vector<Attempt> abandoned;
    for (Response& r : ended_) abandoned.push_back(std::move(r.attempt));
    ended_.clear();
    for (auto& t : transfers_) {
      abandoned.push_back(std::move(t->attempt));
      if (t->conn != nullptr) CloseConn(t->conn);
    }
    transfers_.clear();
    waiting_.clear();
    return abandoned;
  }

  // Ended transfers whose responses the next Perform() returns count as in flight.
  int in_flight() const override { return static_cast<int>(transfers_.size() + ended_.size()); }

 private:
  const Endpoint* EndpointOf(const std::string& url) {
    if (SchemeOf(url) != UrlScheme::kHttp) return nullptr;  // not cached: libcurl's
    auto it = endpoints_.find(url);
    if (it == endpoints_.end()) {
      // Bounded: a process sees as many URLs as it has subscriptions; a cache that outgrows
      // that starts over (every pointer into it belongs to a transfer in flight, kept below).
      if (endpoints_.size() >= 100'000 && transfers_.empty()) endpoints_.clear();
      it = endpoints_.emplace(url, ParseEndpoint(url)).first;
    }
    return it->second ? &*it->second : nullptr;
  }

  void BuildHead(const Endpoint& e, const std::vector<std::string>& lines, std::size_t body_size,
                 std::string& head) const {
    head.reserve(256 + e.target.size() + options_.user_agent.size());
    head += "POST ";
    head += e.target;
    head += " HTTP/1.1\r\nHost: ";
    head += e.host_header;
    if (!options_.user_agent.empty()) {
      head += "\r\nUser-Agent: ";
      head += options_.user_agent;
    }
    // As libcurl takes a header list: a line of the list replaces libcurl's own header of its
    // name (Accept), and "Name:" with nothing after it removes one and sends nothing (the
    // builder's "Expect:"). libcurl's own come first.
    auto blank = [](const std::string& line, std::size_t colon) {
      return line.find_first_not_of(" \t", colon + 1) == std::string::npos;
    };
    bool accept = false;
    for (const std::string& line : lines) {
      const auto colon = line.find(':');
      if (colon == 6 && EqualsIgnoreCase(std::string_view(line).substr(0, 6), "accept")) {
        accept = true;
      }
    }
    if (!accept) head += "\r\nAccept: */*";
    for (const std::string& line : lines) {
      const auto colon = line.find(':');
      if (colon == std::string::npos || blank(line, colon)) continue;
      head += "\r\n";
      head += line;
    }
    head += "\r\nContent-Length: ";
    head += std::to_string(body_size);
    head += "\r\n\r\n";
  }

  // Sends `t` on a kept-alive connection of its endpoint, or a new one once its name resolves.
  void Dispatch(Transfer* t) {
    const Endpoint& e = *t->endpoint;
    if (!t->resent) {
      auto& idle = idle_[e.pool_key];
      while (!idle.empty()) {
        Conn* c = idle.back();
        idle.pop_back();
        c->listed_idle = false;
        --idle_count_;
        // As libcurl checks a cached connection: one the server closed, or that holds bytes
        // nobody asked for (an answer longer than it said), is not used again.
        char byte = 0;
        const ssize_t n = ::recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
          CloseConn(c);
          continue;
        }
        c->reused = true;
        Attach(c, t);
        return;
      }
    }
    std::vector<sockaddr_storage> addresses;
    if (auto fixed = fixed_.find(e.pool_key); fixed != fixed_.end()) {
      addresses.push_back(fixed->second);
    } else if (auto literal = ParseAddress(e.host)) {
      addresses.push_back(*literal);
    } else {
      auto known = names_.find(e.host);
      if (known == names_.end() || known->second.expires <= Clock::now()) {
        waiting_[e.host].push_back(t);
        // Once at a time per name: a retry of an attempt that timed out waiting for it does
        // not ask again while the first question is out.
        if (asking_.insert(e.host).second) resolver_->Ask(e.host);
        return;
      }
      addresses = known->second.addresses;
    }
    Connect(t, std::move(addresses));
  }

  void TakeResolutions() {
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = ::read(wake_fd_, &count, sizeof count);
    for (auto& [host, resolution] : resolver_->Take()) {
      asking_.erase(host);
      auto queue_it = waiting_.find(host);
      std::vector<Transfer*> queue;
      if (queue_it != waiting_.end()) {
        queue = std::move(queue_it->second);
        waiting_.erase(queue_it);
      }
      resolution.expires = Clock::now() + kNameLifetime;
      if (!resolution.error.empty()) {
        for (Transfer* t : queue) ended_.push_back(Finish(t, resolution.error));
        continue;  // a failure is not kept: the next attempt asks again
      }
      names_[host] = resolution;
      for (Transfer* t : queue) Connect(t, resolution.addresses);
    }
  }

  void Connect(Transfer* t, std::vector<sockaddr_storage> addresses) {
    for (auto& a : addresses) SetPort(a, t->endpoint->port_number);
    auto owned = std::make_unique<Conn>();
    Conn* c = owned.get();
    c->pool_key = t->endpoint->pool_key;
    c->addresses = std::move(addresses);
    c->index = conns_.size();
    conns_.push_back(std::move(owned));
    c->transfer = t;
    t->conn = c;
    TryNextAddress(c);
  }

  // Opens a connection to the next of `c`'s addresses; fails the transfer when none is left.
  void TryNextAddress(Conn* c) {
    Transfer* t = c->transfer;
    std::string last_error;
    while (c->next_address < c->addresses.size()) {
      const sockaddr_storage& a = c->addresses[c->next_address++];
      if (!options_.allow_private_networks &&
          IsPrivateAddress(reinterpret_cast<const sockaddr*>(&a))) {
        last_error = "private_address";
        continue;
      }
      if (c->fd >= 0) {
        ::epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
        ::close(c->fd);
      }
      c->fd = ::socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c->fd < 0) {
        last_error = ConnectError(*t, errno);
        continue;
      }
      SetSocketOptions(c->fd);
      const int rc = ::connect(c->fd, reinterpret_cast<const sockaddr*>(&a), LengthOf(a));
      if (rc != 0 && errno != EINPROGRESS) {
        last_error = ConnectError(*t, errno);
        continue;
      }
      c->state = ConnState::kConnecting;
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.ptr = c;
      c->watched = ::epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev) == 0 ? std::uint32_t{EPOLLOUT} : 0U;
      return;
    }
    if (last_error.empty()) last_error = ConnectError(*t, ECONNREFUSED);
    Fail(t, last_error);
  }

  static void SetSocketOptions(int fd) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    const int idle = 30;
    const int interval = 15;
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  }

  static std::string ConnectError(const Transfer& t, int err) {
    // libcurl's words ("Failed to connect to HOST port PORT …"): they name the host and port.
    return "connect_error: Failed to connect to " + t.endpoint->host + " port " + t.endpoint->port +
           ": " + std::strerror(err);
  }

  // Puts `t` on the idle connection `c` and writes it.
  void Attach(Conn* c, Transfer* t) {
    c->transfer = t;
    t->conn = c;
    Send(c);
  }

  void Send(Conn* c) {
    Transfer* t = c->transfer;
    c->state = ConnState::kSending;
    if (!t->parser) {
      // Ready before the first byte goes: a server may answer before it has read the body.
      t->parser.emplace();
      PrepareParser(*t);
    }
    const std::size_t total = t->head.size() + t->body.size();
    while (t->sent < total) {
      std::array<iovec, 2> iov{};
      int count = 0;
      if (t->sent < t->head.size()) {
        iov[0] = {t->head.data() + t->sent, t->head.size() - t->sent};
        iov[1] = {t->body.data(), t->body.size()};
        count = 2;
      } else {
        const std::size_t off = t->sent - t->head.size();
        iov[0] = {t->body.data() + off, t->body.size() - off};
        count = 1;
      }
      msghdr msg{};
      msg.msg_iov = iov.data();
      msg.msg_iovlen = static_cast<std::size_t>(count);
      const ssize_t n = ::sendmsg(c->fd, &msg, MSG_NOSIGNAL);
      if (n > 0) {
        t->sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        Watch(c, EPOLLOUT | EPOLLIN);
        return;
      }
      LostConnection(c, "connection_error: Send failure: " +
                            std::string(std::strerror(n < 0 ? errno : EPIPE)));
      return;
    }
    c->state = ConnState::kReceiving;
    Watch(c, EPOLLIN | EPOLLRDHUP);
  }

  void PrepareParser(Transfer& t) {
    t.parser->header_limit(static_cast<std::uint32_t>(kHeaderLimit));
    t.parser->body_limit(boost::none);  // counted here: read_limit_
    t.parser->eager(true);
    t.parser->get().body().data = body_buffer_.data();
    t.parser->get().body().size = body_buffer_.size();
  }

  // A connection's events change only when they differ: a kept-alive connection stays on
  // EPOLLIN | EPOLLRDHUP through its requests and idle times, with no epoll_ctl per request
  // (two per delivery before, issue 8).
  void Watch(Conn* c, std::uint32_t events) {
    if (c->watched == events) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = c;
    int rc = ::epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
    if (rc != 0 && errno == ENOENT) rc = ::epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev);
    // Remembered only once set: a failed call (no memory) is tried again by the next Watch.
    if (rc == 0) c->watched = events;
  }

  void OnEvent(Conn* c, std::uint32_t events) {
    switch (c->state) {
      case ConnState::kClosed:
        break;  // closed earlier in this batch
      case ConnState::kIdle:
        // The server closed a kept-alive connection (or wrote to it unasked): not reusable.
        CloseConn(c);
        break;
      case ConnState::kConnecting: {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0 && (events & (EPOLLERR | EPOLLHUP)) != 0) err = ECONNREFUSED;
        if (err != 0) {
          Transfer* t = c->transfer;
          std::string error = ConnectError(*t, err);
          if (c->next_address < c->addresses.size()) {
            TryNextAddress(c);
          } else {
            Fail(t, error);
          }
          break;
        }
        Send(c);
        break;
      }
      case ConnState::kSending:
        if ((events & EPOLLIN) != 0) {
          // An answer before the whole request was written (a 413, a 401): read it, as
          // libcurl does. An error status (300 and above) ends the sending, as libcurl's does
          // (CURLOPT_KEEP_SENDING_ON_ERROR unset); an interim one, or a 2xx whose server reads
          // on, lets it go on.
          Transfer* t = c->transfer;
          c->state = ConnState::kReceiving;
          Receive(c);
          if (c->state == ConnState::kReceiving && c->transfer == t) {
            if (t->status < 300) {
              Send(c);
            } else {
              Watch(c, EPOLLIN | EPOLLRDHUP);  // no more writing: the answer has come
            }
          }
          break;
        }
        if ((events & EPOLLERR) != 0) {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
          LostConnection(c, "connection_error: Send failure: " +
                                std::string(std::strerror(err != 0 ? err : EPIPE)));
          break;
        }
        Send(c);
        break;
      case ConnState::kReceiving:
        Receive(c);
        break;
    }
  }

  void Receive(Conn* c) {
    Transfer* t = c->transfer;
    while (true) {
      const ssize_t n = ::recv(c->fd, buffer_.data(), buffer_.size(), 0);
      if (n > 0) {
        t->got_bytes = true;
        std::string_view data(buffer_.data(), static_cast<std::size_t>(n));
        std::string joined;
        if (!t->unparsed.empty()) {
          joined = std::move(t->unparsed);
          t->unparsed.clear();
          joined.append(data);
          data = joined;
        }
        if (!Feed(c, data)) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n == 0) {
        // The server closed: the end of a body read to the close, or an answer cut short.
        if (t->parser && t->parser->is_header_done() && t->parser->need_eof()) {
          boost::beast::error_code ec;
          t->parser->put_eof(ec);
          if (!ec) {
            Complete(c, /*reusable=*/false);
            return;
          }
        }
        LostConnection(c, t->got_bytes ? "connection_error: Transferred a partial file"
                                       : "connection_error: Empty reply from server");
        return;
      }
      LostConnection(c, "connection_error: Recv failure: " + std::string(std::strerror(errno)));
      return;
    }
  }

  // Feeds the answer's bytes to the parser; false once the transfer has ended.
  bool Feed(Conn* c, std::string_view data) {
    Transfer* t = c->transfer;
    while (true) {
      auto& p = *t->parser;
      boost::beast::error_code ec;
      const std::size_t used = p.put(boost::asio::buffer(data.data(), data.size()), ec);
      data.remove_prefix(used);
      TakeBody(*t);
      if (p.is_header_done() && t->status == 0) NoteHeader(*t);
      if (t->received > read_limit_) return ReadLimitHit(c);
      if (ec == http::error::need_buffer) continue;  // TakeBody gave the buffer back
      if (ec == http::error::need_more) {
        // The parser takes a line (a chunk's size, a header) only whole: what it left goes
        // again in front of the next bytes.
        if (data.size() > kHeaderLimit) {
          // A line without end (a chunk's size): nothing a server sends to be read.
          LostConnection(c, "request_error: Weird server reply");
          return false;
        }
        t->unparsed.assign(data.data(), data.size());
        return true;
      }
      if (ec) {
        // libcurl's CURLE_WEIRD_SERVER_REPLY, which the libcurl sender logs as request_error.
        LostConnection(c, "request_error: Weird server reply");
        return false;
      }
      if (!p.is_done()) {
        if (data.empty()) return true;
        continue;
      }
      if (t->status == 0) {
        // An interim answer (1xx): the final one follows on the same connection.
        t->parser.emplace();
        PrepareParser(*t);
        if (data.empty()) return true;
        continue;
      }
      Complete(c, p.get().keep_alive() && data.empty());
      return false;
    }
  }

  // The status and Retry-After of a final answer (>= 200) once its header is in.
  static void NoteHeader(Transfer& t) {
    const auto& head = t.parser->get();
    const int status = static_cast<int>(head.result_int());
    if (status < 200) return;
    t.status = status;
    t.retry_after.clear();
    for (const auto& field : head) {
      if (field.name() == http::field::retry_after) {
        t.retry_after.assign(field.value().data(), field.value().size());
      }
    }
  }

  void TakeBody(Transfer& t) {
    auto& body = t.parser->get().body();
    if (body.data == nullptr) return;
    const std::size_t written = body_buffer_.size() - body.size;
    if (written == 0) return;
    t.received += written;
    const std::size_t keep = options_.response_store_limit + 1;
    if (t.response.size() < keep) {
      t.response.append(body_buffer_.data(), std::min(written, keep - t.response.size()));
    }
    body.data = body_buffer_.data();
    body.size = body_buffer_.size();
  }

  // Enough of the body: the status line has decided already (as with libcurl, the connection is
  // given up).
  bool ReadLimitHit(Conn* c) {
    Complete(c, /*reusable=*/false);
    return false;
  }

  // The connection ended without a complete answer.
  void LostConnection(Conn* c, std::string error) {
    Transfer* t = c->transfer;
    const bool resend = c->reused && !t->got_bytes && !t->resent;
    CloseConn(c);
    t->conn = nullptr;
    if (resend) {
      // As libcurl does: a reused kept-alive connection that closes before any answer most
      // likely met the server's idle timeout; the request goes once more on a new connection
      // (docs/RECEIVING.md: the one case in which a deliveryId repeats).
      t->resent = true;
      t->sent = 0;
      t->connect_deadline = std::min(
          t->deadline, Clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms));
      next_check_ = std::min(next_check_, t->connect_deadline);
      t->parser.reset();
      t->unparsed.clear();
      Dispatch(t);
      return;
    }
    if (t->status >= 200) {
      // The status line came, then the connection broke: the status decides, as with libcurl.
      ended_.push_back(Finish(t, {}));
      return;
    }
    ended_.push_back(Finish(t, std::move(error)));
  }

  void Complete(Conn* c, bool reusable) {
    Transfer* t = c->transfer;
    t->conn = nullptr;
    c->transfer = nullptr;
    // Answered before the whole request went: the rest of it would be read as the next one.
    if (t->sent < t->head.size() + t->body.size()) reusable = false;
    if (reusable) {
      c->state = ConnState::kIdle;
      c->reused = false;
      Watch(c, EPOLLIN | EPOLLRDHUP);
      idle_[c->pool_key].push_back(c);
      c->listed_idle = true;
      ++idle_count_;  // trimmed at the end of Perform() (TrimIdle)
    } else {
      CloseConn(c);
    }
    ended_.push_back(Finish(t, {}));
  }

  // At most max_in_flight × 2 idle connections, as the libcurl sender's connection cache.
  void TrimIdle() {
    const std::size_t cap = static_cast<std::size_t>(std::max(64, options_.max_in_flight * 2));
    if (idle_count_ <= cap) return;
    for (auto& [key, list] : idle_) {
      while (!list.empty() && idle_count_ > cap) CloseConn(list.front());
      if (idle_count_ <= cap) break;
    }
  }

  void Fail(Transfer* t, std::string error) {
    if (t->conn != nullptr) {
      CloseConn(t->conn);
      t->conn = nullptr;
    }
    ended_.push_back(Finish(t, std::move(error)));
  }

  // Ends `t`: its response, and `t` gone from transfers_.
  Response Finish(Transfer* t, std::string error) {
    Response r;
    if (error.empty()) {
      r.http_status = t->status;
      r.retry_after = std::move(t->retry_after);
      r.body = std::move(t->response);
    } else {
      r.error = std::move(error);
    }
    r.attempt = std::move(t->attempt);
    RemoveTransfer(t);
    return r;
  }

  void RemoveTransfer(Transfer* t) {
    const std::size_t i = t->index;
    if (i + 1 != transfers_.size()) {
      std::swap(transfers_[i], transfers_.back());
      transfers_[i]->index = i;
    }
    transfers_.pop_back();
  }

  // Closes `c`'s descriptor at once; the object goes at the end of Perform() (closed_), since
  // an event later in the batch being handled may point at it.
  void CloseConn(Conn* c) {
    if (c->state == ConnState::kClosed) return;
    if (c->listed_idle) {
      c->listed_idle = false;
      --idle_count_;
      auto it = idle_.find(c->pool_key);
      if (it != idle_.end()) std::erase(it->second, c);
    }
    if (c->fd >= 0) {
      ::epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
      ::close(c->fd);
      c->fd = -1;
    }
    c->state = ConnState::kClosed;
    c->transfer = nullptr;
    const std::size_t i = c->index;
    if (i + 1 != conns_.size()) {
      std::swap(conns_[i], conns_.back());
      conns_[i]->index = i;
    }
    closed_.push_back(std::move(conns_.back()));
    conns_.pop_back();
  }

  // Ends the transfers past a timeout.
  void Expire() {
    const auto now = Clock::now();
    next_check_ = Clock::time_point::max();
    std::vector<Transfer*> late;
    for (auto& owned : transfers_) {
      Transfer* t = owned.get();
      const bool connecting = t->conn == nullptr || t->conn->state == ConnState::kConnecting;
      const auto deadline = connecting ? t->connect_deadline : t->deadline;
      if (deadline <= now) {
        late.push_back(t);
      } else {
        next_check_ = std::min(next_check_, deadline);
      }
    }
    for (Transfer* t : late) {
      if (t->conn == nullptr) {
        for (auto it = waiting_.begin(); it != waiting_.end();) {
          std::erase(it->second, t);
          it = it->second.empty() ? waiting_.erase(it) : std::next(it);
        }
      }
      const bool status_known = t->status >= 200;
      if (t->conn != nullptr) {
        CloseConn(t->conn);
        t->conn = nullptr;
      }
      ended_.push_back(Finish(t, status_known ? std::string() : std::string("timeout")));
    }
  }

  const SenderOptions options_;
  const int ep_;
  const int wake_fd_;
  const std::size_t read_limit_;
  std::unordered_map<std::string, sockaddr_storage> fixed_;  // debug_resolve, by pool key
  std::unordered_map<std::string, std::optional<Endpoint>> endpoints_;
  std::unordered_map<std::string, Resolution> names_;
  std::unordered_map<std::string, std::vector<Transfer*>> waiting_;  // for their name
  std::unordered_set<std::string> asking_;  // names the resolver has been asked and not answered
  std::unordered_map<std::string, std::vector<Conn*>> idle_;
  std::size_t idle_count_ = 0;
  std::vector<std::unique_ptr<Transfer>> transfers_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<std::unique_ptr<Conn>> closed_;  // CloseConn(): freed at the end of Perform()
  std::vector<Response> ended_;                // transfers that ended: Perform() returns them
  Clock::time_point next_check_ = Clock::time_point::max();
  std::vector<char> buffer_;
  std::vector<char> body_buffer_;
  std::unique_ptr<Resolver> resolver_;
};

}  // namespace

core::Result<std::unique_ptr<Http1Sender>> Http1Sender::Create(const SenderOptions& options) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return core::Fail(core::Error::Internal("epoll_create1 failed"));
  const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    ::close(ep);
    return core::Fail(core::Error::Internal("eventfd failed"));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, wake, &ev);
  return std::unique_ptr<Http1Sender>(std::make_unique<Http1SenderImpl>(options, ep, wake));
}

}  // namespace outbound::delivery::internal
