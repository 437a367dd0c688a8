// A sender without libcurl, for reference only (--raw-sender; docs/PERFORMANCE.md, "Session of
// 7 Dec, 17:55–"): the same signed requests as the baseline over the same number of kept-alive
// connections, each written with one writev and its answer read with Beast's parser from an
// epoll loop. It measures what libcurl's own bookkeeping costs per request, which the goals'
// ratios (against the libcurl sender) cannot show. Plain HTTP to the bench's receiver only: no
// DNS, no TLS, no timeouts, no reconnects; a failure ends the run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/beast/http.hpp>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <optional>

#include "baseline.h"
#include "core/signing.h"

namespace bench {
namespace {

namespace core = outbound::core;
namespace http = boost::beast::http;

struct RawConn {
  int fd = -1;
  std::string head;
  std::string body;
  std::optional<http::response_parser<http::empty_body>> parser;
};

}  // namespace

BaselineResult RunRawBaseline(Receiver& rx, int n, int concurrency, double time_limit,
                              size_t body_bytes) {
  BaselineResult r;
  r.raw = true;
  rx.Reset();
  const std::string key = core::DecodeSecret(core::NewSecret()).value();
  const std::string host = "127.0.0.1:" + std::to_string(rx.port());
  const std::string pad = Pad(body_bytes);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<RawConn> conns(static_cast<size_t>(concurrency));
  for (auto& c : conns) {
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(rx.port()));
    if (c.fd < 0 || connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      std::perror("raw sender: connect");
      r.failed = 1;
      break;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c.fd, F_SETFL, O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
  int64_t next = 0;
  uint64_t bytes_sent = 0;
  // The baseline's request, headers as libcurl writes them (Host, User-Agent, Accept and
  // Content-Length of its own, then the list PrepareBaselineRequest gives it).
  auto start = [&](RawConn& c) -> bool {
    const int64_t seq = next++;
    c.body = BaselineBodyOfSize(seq, body_bytes, pad);
    bytes_sent += c.body.size();
    const int64_t ts = static_cast<int64_t>(std::time(nullptr));
    char id[40];
    std::snprintf(id, sizeof id, "evt_%026" PRId64, seq);
    const std::string sig = core::Sign(key, id, ts, c.body);
    c.head.clear();
    c.head += "POST /base HTTP/1.1\r\nHost: ";
    c.head += host;
    c.head +=
        "\r\nAccept: */*\r\nContent-Type: application/json\r\n"
        "User-Agent: Outbound-baseline/0.1\r\nwebhook-id: ";
    c.head += id;
    c.head += "\r\nwebhook-timestamp: " + std::to_string(ts);
    c.head += "\r\nwebhook-signature: " + sig;
    c.head += "\r\nordinavo-event-type: appointment.problem_reported\r\nordinavo-delivery-id: del_";
    c.head += id + 4;
    c.head += "\r\nordinavo-attempt: 1\r\nContent-Length: " + std::to_string(c.body.size());
    c.head += "\r\n\r\n";
    iovec iov[2] = {{c.head.data(), c.head.size()}, {c.body.data(), c.body.size()}};
    // The bench's receiver reads whole requests; 64 × 1.5 KB always fits the socket buffers.
    const ssize_t w = writev(c.fd, iov, 2);
    c.parser.emplace();
    return w == static_cast<ssize_t>(c.head.size() + c.body.size());
  };
  const BaselineMeter meter(rx);
  const int64_t t0 = meter.start_ns();
  const int64_t deadline = t0 + static_cast<int64_t>(time_limit * 1e9);
  int64_t t_last = t0;
  int busy = 0;
  if (r.failed == 0) {
    for (auto& c : conns) {
      if (next >= n) break;
      if (!start(c)) r.failed++;
      ++busy;
    }
  }
  std::array<epoll_event, 64> evs{};
  char buf[16384];
  while (busy > 0 && r.failed == 0) {
    if (NowNs() > deadline) {
      r.timed_out = true;
      break;
    }
    const int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
    for (int i = 0; i < k; ++i) {
      RawConn& c = *static_cast<RawConn*>(evs[static_cast<size_t>(i)].data.ptr);
      const ssize_t got = recv(c.fd, buf, sizeof buf, 0);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) continue;
        r.failed++;
        break;
      }
      boost::beast::error_code ec;
      c.parser->put(boost::asio::buffer(buf, static_cast<size_t>(got)), ec);
      if (ec && ec != http::error::need_more) {
        r.failed++;
        break;
      }
      if (!c.parser->is_done()) continue;
      t_last = NowNs();
      if (c.parser->get().result_int() == 200) {
        r.ok++;
      } else {
        r.failed++;
      }
      --busy;
      if (next < n) {
        if (!start(c)) r.failed++;
        ++busy;
      }
    }
  }
  meter.Finish(r, rx, t_last, next, bytes_sent);
  for (auto& c : conns) {
    if (c.fd >= 0) close(c.fd);
  }
  close(ep);
  return r;
}

}  // namespace bench
