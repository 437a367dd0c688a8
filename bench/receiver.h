// The receiver: a single-threaded epoll HTTP/1.1 server on 127.0.0.1 that records what arrives.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace bench {

struct Received {
  int64_t t_ns = 0;
  int32_t path = -1;  // N for "/sN", -1 otherwise
  uint32_t body_len = 0;
  uint32_t head_len = 0;      // request line and headers, with the empty line
  std::array<char, 32> id{};  // "eventId" of the body, NUL-terminated
  int32_t attempt = 0;        // the ordinavo-attempt header, 0 when absent
};

class Receiver {
 public:
  ~Receiver() { Stop(); }

  bool Start(std::string* err) {
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd_ < 0) return Fail(err, "socket");
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Fail(err, "bind");
    if (listen(lfd_, 4096) != 0) return Fail(err, "listen");
    socklen_t len = sizeof a;
    getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) return Fail(err, "epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd_;
    epoll_ctl(ep_, EPOLL_CTL_ADD, lfd_, &ev);
    records_.reserve(1 << 20);
    thread_ = std::thread([this] { Run(); });
    while (tid_.load() == 0) SleepMs(1);
    return true;
  }

  void Stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
    for (auto& [fd, c] : conns_) close(fd);
    conns_.clear();
    if (ep_ >= 0) close(ep_);
    if (lfd_ >= 0) close(lfd_);
    ep_ = lfd_ = -1;
  }

  int port() const { return port_; }
  pid_t tid() const { return tid_.load(); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t expect100() const { return expect100_.load(); }
  uint64_t chunked() const { return chunked_.load(); }
  uint64_t connections() const { return accepted_.load(); }
  uint64_t hung() const { return hung_.load(); }
  // Raw requests (head and body) kept for signature checks: the 1st, then every `every`th
  // answered request, at most `cap` of them.
  void SetSampling(uint64_t every, size_t cap) {
    std::lock_guard<std::mutex> l(mu_);
    sample_every_ = std::max<uint64_t>(1, every);
    sample_cap_ = cap;
  }
  // Isolation phase: requests to "/sN" with N % every == every - 1 are read and never answered
  // (the connection stays open and silent). 0: answer everything.
  void SetHangEvery(int every) { hang_every_ = every; }
  // Backlog and history modes: requests to "/sN" with lo <= N < hi are answered
  // `503 Service Unavailable` (an endpoint that is down; counted in down(), not recorded).
  // lo = hi: nobody is down.
  void SetDown(int lo, int hi) {
    down_lo_ = lo;
    down_hi_ = hi;
  }
  uint64_t down() const { return down_.load(std::memory_order_relaxed); }
  // Requests to "/sN" with lo <= N < hi answered 200 (a cheap running count for samplers).
  void SetWatch(int lo, int hi) {
    watch_lo_ = lo;
    watch_hi_ = hi;
  }
  uint64_t watched() const { return watched_.load(std::memory_order_relaxed); }

  // Starts a new phase: forgets what was received so far.
  void Reset() {
    std::lock_guard<std::mutex> l(mu_);
    records_.clear();
    hung_records_.clear();
    samples_.clear();
    count_ = 0;
    expect100_ = 0;
    chunked_ = 0;
    accepted_ = 0;
    hung_ = 0;
    down_ = 0;
    watched_ = 0;
  }
  std::vector<Received> Take() {
    std::lock_guard<std::mutex> l(mu_);
    return records_;
  }
  // The requests that were read and never answered (isolation phase): time, path, attempt.
  std::vector<Received> TakeHung() {
    std::lock_guard<std::mutex> l(mu_);
    return hung_records_;
  }
  std::vector<std::string> Samples() {
    std::lock_guard<std::mutex> l(mu_);
    return samples_;
  }

 private:
  struct Conn {
    std::string in;
    std::string out;
    bool sent_continue = false;
    bool close_after = false;
    bool want_out = false;
  };

  static bool Fail(std::string* err, const char* what) {
    *err = std::string(what) + ": " + std::strerror(errno);
    return false;
  }

  void Run() {
    tid_ = static_cast<pid_t>(syscall(SYS_gettid));
    std::array<epoll_event, 256> evs;
    std::vector<char> buf(256 * 1024);
    while (!stop_.load(std::memory_order_relaxed)) {
      int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 50);
      for (int i = 0; i < n; ++i) {
        int fd = evs[i].data.fd;
        if (fd == lfd_) {
          Accept();
          continue;
        }
        auto it = conns_.find(fd);
        if (it == conns_.end()) continue;
        Conn& c = *it->second;
        bool ok = true;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ok = ReadAll(fd, c, buf);
        if (ok && !c.out.empty()) ok = Flush(fd, c);
        if (ok && c.close_after && c.out.empty()) ok = false;
        if (!ok) {
          epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
          close(fd);
          conns_.erase(it);
        }
      }
    }
  }

  void Accept() {
    for (int i = 0; i < 1024; ++i) {
      int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
      conns_[fd] = std::make_unique<Conn>();
      accepted_++;
    }
  }

  bool ReadAll(int fd, Conn& c, std::vector<char>& buf) {
    for (int i = 0; i < 16; ++i) {
      ssize_t r = recv(fd, buf.data(), buf.size(), 0);
      if (r > 0) {
        c.in.append(buf.data(), static_cast<size_t>(r));
        if (static_cast<size_t>(r) < buf.size()) break;
        continue;
      }
      if (r == 0) return false;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return false;
    }
    return Parse(c);
  }

  bool Flush(int fd, Conn& c) {
    while (!c.out.empty()) {
      ssize_t w = send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (w > 0) {
        c.out.erase(0, static_cast<size_t>(w));
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return false;
    }
    bool want = !c.out.empty();
    if (want != c.want_out) {
      epoll_event ev{};
      ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
      ev.data.fd = fd;
      epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
      c.want_out = want;
    }
    return true;
  }

  static bool IEquals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(a[i])) !=
          std::tolower(static_cast<unsigned char>(b[i])))
        return false;
    }
    return true;
  }
  static std::string_view Trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r'))
      v.remove_suffix(1);
    return v;
  }

  // Parses every complete request in c.in; false on a malformed request (closes).
  bool Parse(Conn& c) {
    size_t pos = 0;
    for (int guard = 0; guard < 100000; ++guard) {
      size_t hend = c.in.find("\r\n\r\n", pos);
      if (hend == std::string::npos) {
        if (c.in.size() - pos > 65536) return false;
        break;
      }
      std::string_view head(c.in.data() + pos, hend - pos);
      size_t body_start = hend + 4;
      // request line
      size_t eol = head.find("\r\n");
      std::string_view line = head.substr(0, eol);
      size_t sp1 = line.find(' ');
      size_t sp2 = line.find(' ', sp1 == std::string_view::npos ? 0 : sp1 + 1);
      if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return false;
      std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      int32_t path = -1;
      if (target.size() >= 3 && target[0] == '/' && target[1] == 's' &&
          std::isdigit(static_cast<unsigned char>(target[2]))) {
        path =
            static_cast<int32_t>(std::strtol(std::string(target.substr(2)).c_str(), nullptr, 10));
      }
      int64_t content_length = 0;
      bool is_chunked = false, expect = false, close_req = false;
      int32_t attempt = 0;
      size_t p = (eol == std::string_view::npos) ? head.size() : eol + 2;
      while (p < head.size()) {
        size_t e = head.find("\r\n", p);
        if (e == std::string_view::npos) e = head.size();
        std::string_view h = head.substr(p, e - p);
        p = e + 2;
        size_t colon = h.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = h.substr(0, colon), value = Trim(h.substr(colon + 1));
        if (IEquals(name, "content-length"))
          content_length = std::strtoll(std::string(value).c_str(), nullptr, 10);
        else if (IEquals(name, "transfer-encoding"))
          is_chunked = value.find("chunked") != std::string_view::npos;
        else if (IEquals(name, "expect"))
          expect = IEquals(value, "100-continue");
        else if (IEquals(name, "connection"))
          close_req = IEquals(value, "close");
        else if (IEquals(name, "ordinavo-attempt"))
          attempt = static_cast<int32_t>(std::strtol(std::string(value).c_str(), nullptr, 10));
      }
      std::string body;
      size_t end = 0;
      if (is_chunked) {
        size_t q = body_start;
        bool done = false, incomplete = false;
        for (int k = 0; k < 100000; ++k) {
          size_t le = c.in.find("\r\n", q);
          if (le == std::string::npos) {
            incomplete = true;
            break;
          }
          uint64_t sz = std::strtoull(c.in.substr(q, le - q).c_str(), nullptr, 16);
          q = le + 2;
          if (sz == 0) {
            size_t te = c.in.find("\r\n", q);  // no trailers expected: an empty line ends it
            if (te == std::string::npos) {
              incomplete = true;
              break;
            }
            q = te + 2;
            done = true;
            break;
          }
          if (c.in.size() < q + sz + 2) {
            incomplete = true;
            break;
          }
          body.append(c.in, q, sz);
          q += sz + 2;
        }
        if (!done || incomplete) {
          MaybeContinue(c, expect);
          break;
        }
        end = q;
        chunked_++;
      } else {
        if (content_length < 0) return false;
        if (c.in.size() - body_start < static_cast<uint64_t>(content_length)) {
          MaybeContinue(c, expect);
          break;
        }
        end = body_start + static_cast<size_t>(content_length);
      }
      if (int every = hang_every_.load(); every > 0 && path >= 0 && path % every == every - 1) {
        hung_.fetch_add(1, std::memory_order_relaxed);
        Received rec;
        rec.t_ns = NowNs();
        rec.path = path;
        rec.attempt = attempt;
        {
          std::lock_guard<std::mutex> l(mu_);
          hung_records_.push_back(rec);
        }
        pos = end;
        continue;
      }
      if (path >= 0 && path >= down_lo_.load() && path < down_hi_.load()) {
        down_.fetch_add(1, std::memory_order_relaxed);
        c.out.append("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        if (close_req) c.close_after = true;
        pos = end;
        continue;
      }
      if (path >= 0 && path >= watch_lo_.load() && path < watch_hi_.load())
        watched_.fetch_add(1, std::memory_order_relaxed);
      int64_t t = NowNs();
      std::string_view b = is_chunked
                               ? std::string_view(body)
                               : std::string_view(c.in.data() + body_start, end - body_start);
      Received rec;
      rec.t_ns = t;
      rec.path = path;
      rec.body_len = static_cast<uint32_t>(b.size());
      rec.head_len = static_cast<uint32_t>(body_start - pos);
      rec.attempt = attempt;
      std::string_view id = JsonStringField(b, "eventId");
      std::memcpy(rec.id.data(), id.data(), std::min<size_t>(id.size(), rec.id.size() - 1));
      if (expect) expect100_++;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (records_.size() % sample_every_ == 0 && samples_.size() < sample_cap_)
          samples_.push_back(std::string(c.in, pos, body_start - pos).append(b));
        records_.push_back(rec);
      }
      count_.fetch_add(1, std::memory_order_relaxed);
      c.out.append("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      c.sent_continue = false;
      if (close_req) c.close_after = true;
      pos = end;
    }
    if (pos > 0) c.in.erase(0, pos);
    return true;
  }

  void MaybeContinue(Conn& c, bool expect) {
    if (expect && !c.sent_continue) {
      c.out.append("HTTP/1.1 100 Continue\r\n\r\n");
      c.sent_continue = true;
    }
  }

  int lfd_ = -1, ep_ = -1, port_ = 0;
  std::atomic<pid_t> tid_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;  // receiver thread only
  std::mutex mu_;
  std::vector<Received> records_;
  std::vector<Received> hung_records_;
  std::vector<std::string> samples_;
  uint64_t sample_every_ = 50;  // under mu_
  size_t sample_cap_ = 4000;    // under mu_
  std::atomic<uint64_t> count_{0}, expect100_{0}, chunked_{0}, accepted_{0}, hung_{0};
  std::atomic<int> hang_every_{0};
  std::atomic<int> down_lo_{0}, down_hi_{0}, watch_lo_{0}, watch_hi_{0};
  std::atomic<uint64_t> down_{0}, watched_{0};
};

}  // namespace bench
