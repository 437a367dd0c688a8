// The plain-HTTP sender (http1_sender.h) through Sender::Create, against servers on 127.0.0.1
// that write exact bytes: what the dispatcher's tests (a well-behaved Beast receiver) do not
// reach. Answers cut anywhere, interim answers, kept-alive connections the server closes, names.
#include "delivery/internal/http1_sender.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "delivery/internal/sender.h"

namespace outbound::delivery::internal {
namespace {

using namespace std::chrono_literals;

// Reads one request (head and Content-Length body) from `fd`; empty when the peer closed.
std::string ReadRequest(int fd) {
  std::string got;
  char buf[4096];
  while (true) {
    const auto end = got.find("\r\n\r\n");
    if (end != std::string::npos) {
      const auto cl = got.find("Content-Length: ");
      const std::size_t length =
          cl == std::string::npos ? 0 : std::stoul(got.substr(cl + 16, got.find('\r', cl) - cl));
      if (got.size() >= end + 4 + length) return got.substr(0, end + 4 + length);
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return {};
    got.append(buf, static_cast<std::size_t>(n));
  }
}

// Reads a request's head only, byte by byte (what follows it stays unread).
void ReadHead(int fd) {
  std::string head;
  char c = 0;
  while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) head += c;
}

void WriteAll(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

// A server on 127.0.0.1: each accepted connection runs `serve(fd, connection_index)` on a
// thread of its own, then is closed.
class RawServer {
 public:
  explicit RawServer(std::function<void(int, int)> serve) : serve_(std::move(serve)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener_, 16) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
    }
    socklen_t len = sizeof a;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accepter_ = std::thread([this] {
      for (int index = 0;; ++index) {
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        ++connections_;
        threads_.emplace_back([this, fd, index] {
          serve_(fd, index);
          ::close(fd);
        });
      }
    });
  }
  ~RawServer() {
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    accepter_.join();
    for (auto& t : threads_) t.join();
  }
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  int port() const { return port_; }
  int connections() const { return connections_; }

 private:
  std::function<void(int, int)> serve_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::thread accepter_;
  std::vector<std::thread> threads_;
};

SenderOptions Options() {
  SenderOptions o;
  o.allow_private_networks = true;
  o.connect_timeout_ms = 2000;
  o.request_timeout_ms = 3000;
  o.user_agent = "Outbound-test/1";
  return o;
}

Request PostTo(const std::string& url, std::string body = R"({"eventId":"evt_1"})") {
  Request r;
  r.url = url;
  r.header_lines = {"Content-Type: application/json", "Expect:", "webhook-id: evt_1"};
  r.body = std::move(body);
  return r;
}

// Starts `request`, then moves the sender along until its answer is in (or 5 s pass).
Response Send(Sender& sender, Request request, std::int64_t id = 1) {
  Attempt attempt;
  attempt.job.id = core::DeliveryRowId(id);
  EXPECT_EQ(sender.Start(std::move(request), attempt), std::nullopt);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<Response> done = sender.Perform();
    if (!done.empty()) return std::move(done.front());
    sender.Poll(50);
  }
  ADD_FAILURE() << "no answer within 5 s";
  return {};
}

std::string Url(int port, const std::string& path = "/hook") {
  return "http://127.0.0.1:" + std::to_string(port) + path;
}

TEST(Http1SenderTest, WritesTheRequestAsLibcurlDid) {
  std::string seen;
  RawServer server([&](int fd, int) {
    seen = ReadRequest(fd);
    WriteAll(fd, "HTTP/1.1 204 No Content\r\n\r\n");
  });
  auto sender = Sender::Create(Options());
  ASSERT_TRUE(sender.has_value());
  const Response r = Send(**sender, PostTo(Url(server.port(), "/hook?a=1")));
  EXPECT_EQ(r.http_status, 204);
  EXPECT_EQ(r.error, "");
  const std::string host = "127.0.0.1:" + std::to_string(server.port());
  EXPECT_EQ(seen, "POST /hook?a=1 HTTP/1.1\r\nHost: " + host +
                      "\r\nUser-Agent: Outbound-test/1\r\nAccept: */*\r\n"
                      "Content-Type: application/json\r\nwebhook-id: evt_1\r\n"
                      "Content-Length: 19\r\n\r\n"
                      R"({"eventId":"evt_1"})");
}

// Every split of a chunked answer with an interim answer before it: the parser gets what it
// left over again in front of the next bytes (a chunk's size line cut in two was once a
// "Weird server reply").
TEST(Http1SenderTest, AnAnswerCutAnywhereIsReadWhole) {
  const std::string answer =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nbusy \r\n4\r\nnow!\r\n0\r\n\r\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{3}, std::size_t{7}, answer.size()}) {
    RawServer server([&](int fd, int) {
      if (ReadRequest(fd).empty()) return;
      for (std::size_t off = 0; off < answer.size(); off += step) {
        WriteAll(fd, answer.substr(off, step));
        std::this_thread::sleep_for(1ms);
      }
    });
    auto sender = Sender::Create(Options());
    ASSERT_TRUE(sender.has_value());
    const Response r = Send(**sender, PostTo(Url(server.port())));
    EXPECT_EQ(r.http_status, 503) << "step " << step;
    EXPECT_EQ(r.retry_after, "120") << "step " << step;
    EXPECT_EQ(r.body, "busy now!") << "step " << step;
    EXPECT_EQ(r.error, "") << "step " << step;
  }
}

// A body without a length ends with the connection, which is then not kept.
TEST(Http1SenderTest, ABodyReadToTheCloseEndsTheAnswer) {
  RawServer server([](int fd, int) {
    if (ReadRequest(fd).empty()) return;
    WriteAll(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nreceived");
  });
  auto sender = Sender::Create(Options());
  ASSERT_TRUE(sender.has_value());
  const Response first = Send(**sender, PostTo(Url(server.port())), 1);
  EXPECT_EQ(first.http_status, 200);
  EXPECT_EQ(first.body, "received");
  const Response second = Send(**sender, PostTo(Url(server.port())), 2);
  EXPECT_EQ(second.http_status, 200);
  EXPECT_EQ(server.connections(), 2);
}

// The server closes a kept-alive connection as the next request arrives (its idle timeout): the
// request goes once more on a new connection, as libcurl does; a new connection that closes
// too is the attempt's error.
TEST(Http1SenderTest, AReusedConnectionClosedBeforeAnyAnswerIsTriedOnceMoreOnANewOne) {
  std::atomic<int> requests{0};
  RawServer server([&](int fd, int index) {
    if (ReadRequest(fd).empty()) return;
    ++requests;
    if (index == 0) {
      WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      ReadRequest(fd);  // the second request, closed without an answer
      ++requests;
      return;
    }
    if (index == 1) {
      WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain");
      return;
    }
    // index 2: a fresh connection closed without an answer.
  });
  auto sender = Sender::Create(Options());
  ASSERT_TRUE(sender.has_value());
  EXPECT_EQ(Send(**sender, PostTo(Url(server.port())), 1).http_status, 200);
  const Response second = Send(**sender, PostTo(Url(server.port())), 2);
  EXPECT_EQ(second.http_status, 200);
  EXPECT_EQ(second.body, "again");
  EXPECT_EQ(requests.load(), 3);
  EXPECT_EQ(server.connections(), 2);
  const Response third = Send(**sender, PostTo(Url(server.port())), 3);
  EXPECT_EQ(third.http_status, 0);
  EXPECT_EQ(third.error, "connection_error: Empty reply from server");
  EXPECT_EQ(server.connections(), 3);
}

TEST(Http1SenderTest, AnAnswerThatIsNoHttpIsARequestError) {
  RawServer server([](int fd, int) {
    if (ReadRequest(fd).empty()) return;
    WriteAll(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  });
  auto sender = Sender::Create(Options());
  ASSERT_TRUE(sender.has_value());
  const Response r = Send(**sender, PostTo(Url(server.port())));
  EXPECT_EQ(r.http_status, 0);
  EXPECT_EQ(r.error, "request_error: Weird server reply");
}

// Names: resolved off the dispatcher's thread (localhost), or as --debug-resolve fixes them;
// the Host header is the URL's.
TEST(Http1SenderTest, NamesAreResolved) {
  std::vector<std::string> hosts;
  std::mutex mu;
  RawServer server([&](int fd, int) {
    while (true) {
      const std::string request = ReadRequest(fd);
      if (request.empty()) return;
      const auto at = request.find("Host: ");
      {
        std::lock_guard lock(mu);
        hosts.push_back(request.substr(at + 6, request.find('\r', at) - at - 6));
      }
      WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
  });
  const std::string port = std::to_string(server.port());
  SenderOptions options = Options();
  options.debug_resolve = {"hooks.example.test:" + port + ":127.0.0.1"};
  auto sender = Sender::Create(options);
  ASSERT_TRUE(sender.has_value());
  EXPECT_EQ(Send(**sender, PostTo("http://hooks.example.test:" + port + "/a"), 1).http_status, 200);
  const Response local = Send(**sender, PostTo("http://localhost:" + port + "/b"), 2);
  EXPECT_EQ(local.http_status, 200) << local.error;
  std::lock_guard lock(mu);
  EXPECT_EQ(hosts, (std::vector<std::string>{"hooks.example.test:" + port, "localhost:" + port}));
}

TEST(Http1SenderTest, ARefusedConnectionNamesHostAndPort) {
  int port = 0;
  {
    RawServer closed([](int, int) {});
    port = closed.port();
  }
  auto sender = Sender::Create(Options());
  ASSERT_TRUE(sender.has_value());
  const Response r = Send(**sender, PostTo(Url(port)));
  EXPECT_EQ(r.http_status, 0);
  EXPECT_EQ(r.error, "connect_error: Failed to connect to 127.0.0.1 port " + std::to_string(port) +
                         ": Connection refused");
}

// One connection serves request after request, past the cap on idle connections (64 here):
// seen failing when taking a connection off the idle list did not count it out, so that after
// the cap's number of requests every connection was closed as soon as it was idle.
TEST(Http1SenderTest, AKeptAliveConnectionServesRequestAfterRequest) {
  RawServer server([](int fd, int) {
    while (!ReadRequest(fd).empty()) WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  });
  SenderOptions options = Options();
  options.max_in_flight = 1;
  auto sender = Sender::Create(options);
  ASSERT_TRUE(sender.has_value());
  for (int i = 1; i <= 100; ++i) {
    ASSERT_EQ(Send(**sender, PostTo(Url(server.port())), i).http_status, 200) << "request " << i;
  }
  EXPECT_EQ(server.connections(), 1);
}

// A port outside 1-65535 is libcurl's to refuse, as before this sender (std::stoi threw on the
// first, and the dispatcher's thread with it; the second connected to port 4464).
TEST(Http1SenderTest, APortOutOfRangeIsAnInvalidUrl) {
  auto sender = Sender::Create(Options());
  ASSERT_TRUE(sender.has_value());
  for (const char* url : {"http://127.0.0.1:99999999999/h", "http://127.0.0.1:70000/h"}) {
    const Response r = Send(**sender, PostTo(url));
    EXPECT_EQ(r.http_status, 0) << url;
    EXPECT_EQ(r.error, "invalid_url") << url;
  }
}

// Bytes a server sends after its answer (more than its Content-Length said) arrive while the
// connection is idle: it is not used again, or they would be read as the next answer. Seen
// failing without the check before reuse: "request_error: Weird server reply".
TEST(Http1SenderTest, AConnectionWithBytesNobodyAskedForIsNotUsedAgain) {
  RawServer server([](int fd, int index) {
    if (ReadRequest(fd).empty()) return;
    if (index == 0) {
      WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      std::this_thread::sleep_for(20ms);
      WriteAll(fd, "HTTP/1.1 500 Stale\r\n\r\n");
      ReadRequest(fd);
      return;
    }
    WriteAll(fd, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  });
  auto sender = Sender::Create(Options());
  ASSERT_TRUE(sender.has_value());
  EXPECT_EQ(Send(**sender, PostTo(Url(server.port())), 1).http_status, 200);
  std::this_thread::sleep_for(100ms);  // the stray bytes are in
  const Response second = Send(**sender, PostTo(Url(server.port())), 2);
  EXPECT_EQ(second.http_status, 201) << second.error;
  EXPECT_EQ(server.connections(), 2);
}

// A server that answers before it has read the whole request (413, and it reads no more): the
// answer is the attempt's status, as with libcurl. Seen failing without reading while sending:
// "timeout".
TEST(Http1SenderTest, AnAnswerBeforeTheWholeRequestWentIsTheStatus) {
  std::atomic<bool> done{false};
  RawServer server([&](int fd, int) {
    ReadHead(fd);
    WriteAll(fd, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!");
    while (!done) std::this_thread::sleep_for(10ms);  // reads nothing more
  });
  auto sender = Sender::Create(Options());
  ASSERT_TRUE(sender.has_value());
  const Response r =
      Send(**sender, PostTo(Url(server.port()), std::string(std::size_t{64} << 20, 'x')));
  done = true;
  EXPECT_EQ(r.http_status, 413) << r.error;
  EXPECT_EQ(r.body, "too big!");
}

// A 2xx head before the server has read the body, the rest of the answer after it: the body
// goes on to its end, as libcurl sends it (only an error status, 300 and above, stops the
// sending). Seen failing when any final status stopped it: the server never got the body, and
// the attempt ended at the request timeout as a 200.
TEST(Http1SenderTest, AnEarlySuccessHeadLetsTheBodyGoOn) {
  constexpr std::size_t kBody = std::size_t{64} << 20;
  std::atomic<std::size_t> body_read{0};
  RawServer server([&](int fd, int) {
    ReadHead(fd);
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n");
    std::vector<char> buf(std::size_t{1} << 16);
    std::size_t got = 0;
    while (got < kBody) {
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    body_read = got;
    WriteAll(fd, "done");
  });
  auto sender = Sender::Create(Options());
  ASSERT_TRUE(sender.has_value());
  const Response r = Send(**sender, PostTo(Url(server.port()), std::string(kBody, 'x')));
  EXPECT_EQ(r.http_status, 200) << r.error;
  EXPECT_EQ(r.body, "done");
  EXPECT_EQ(body_read.load(), kBody);
}

// More idle connections than the cap (64 here): the oldest are closed at the end of a
// Perform(), after the batch of events that may still point at them (closing them while the
// batch was handled freed connections an event later in it pointed at); every endpoint keeps
// answering, the trimmed ones on a new connection.
TEST(Http1SenderTest, IdleConnectionsOverTheCapAreClosedAndEveryEndpointStillAnswers) {
  constexpr int kServers = 70;
  std::vector<std::unique_ptr<RawServer>> servers;
  servers.reserve(kServers);
  for (int i = 0; i < kServers; ++i) {
    servers.push_back(std::make_unique<RawServer>([](int fd, int) {
      while (!ReadRequest(fd).empty()) WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }));
  }
  SenderOptions options = Options();
  options.max_in_flight = 1;
  auto sender = Sender::Create(options);
  ASSERT_TRUE(sender.has_value());
  std::int64_t id = 0;
  for (int round = 0; round < 2; ++round) {
    for (const auto& server : servers) {
      ASSERT_EQ(Send(**sender, PostTo(Url(server->port())), ++id).http_status, 200) << id;
    }
  }
  int connections = 0;
  for (const auto& server : servers) connections += server->connections();
  EXPECT_GT(connections, kServers) << "no idle connection was closed";
  EXPECT_LT(connections, 2 * kServers) << "the idle connections were not kept";
}

}  // namespace
}  // namespace outbound::delivery::internal
