// A pool of easy handles on one curl multi handle, single-threaded (the baseline sender and the
// publisher).
#pragma once

#include <curl/curl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <ctime>
#include <string>
#include <unordered_set>
#include <vector>

#include "common.h"

namespace bench {

struct Slot {
  CURL* easy = nullptr;
  std::string body;
  std::string resp;
  curl_slist* headers = nullptr;  // owned per slot when per-request headers are used
  int64_t seq = -1;
  int64_t t_sent = 0;
  bool busy = false;
  int attempt = 0;
};

inline size_t DiscardWrite(char*, size_t size, size_t n, void*) { return size * n; }
inline size_t KeepAll(char* p, size_t size, size_t n, void* ud) {
  auto* s = static_cast<std::string*>(ud);
  if (s->size() < (16u << 20)) s->append(p, size * n);
  return size * n;
}
inline size_t KeepWrite(char* p, size_t size, size_t n, void* ud) {
  auto* s = static_cast<std::string*>(ud);
  if (s->size() < 4096) s->append(p, std::min<size_t>(size * n, 4096 - s->size()));
  return size * n;
}

// Two ways to drive libcurl multi: curl_multi_perform + curl_multi_poll (the simple loop most
// senders write; libcurl then checks every transfer's socket on each call), or
// curl_multi_socket_action with our own epoll (libcurl's event-driven API: work per ready socket).
enum class CurlLoop { kPerform, kSocket };
inline const char* LoopName(CurlLoop l) {
  return l == CurlLoop::kPerform ? "multi_perform+poll" : "multi_socket_action+epoll";
}

class MultiPool {
 public:
  explicit MultiPool(int n, CurlLoop loop = CurlLoop::kSocket)
      : slots_(static_cast<size_t>(n)), loop_(loop) {
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(n * 2));
    if (loop_ == CurlLoop::kSocket) {
      ep_ = epoll_create1(EPOLL_CLOEXEC);
      curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &MultiPool::OnSocket);
      curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
      curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &MultiPool::OnTimer);
      curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    }
    for (auto& s : slots_) {
      s.easy = curl_easy_init();
      curl_easy_setopt(s.easy, CURLOPT_PRIVATE, &s);
      curl_easy_setopt(s.easy, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(s.easy, CURLOPT_TCP_NODELAY, 1L);
      curl_easy_setopt(s.easy, CURLOPT_TIMEOUT_MS, 30000L);
      curl_easy_setopt(s.easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
      curl_easy_setopt(s.easy, CURLOPT_PROTOCOLS_STR, "http");
      free_.push_back(&s);
    }
  }
  ~MultiPool() {
    for (auto& s : slots_) {
      if (s.busy) curl_multi_remove_handle(multi_, s.easy);
      curl_easy_cleanup(s.easy);
      if (s.headers) curl_slist_free_all(s.headers);
    }
    curl_multi_cleanup(multi_);
    if (ep_ >= 0) close(ep_);
  }
  MultiPool(const MultiPool&) = delete;
  MultiPool& operator=(const MultiPool&) = delete;

  Slot* Free() {
    if (free_.empty()) return nullptr;
    Slot* s = free_.back();
    free_.pop_back();
    return s;
  }
  void Start(Slot* s) {
    s->busy = true;
    s->resp.clear();
    curl_multi_add_handle(multi_, s->easy);
    busy_++;
  }
  int busy() const { return busy_; }
  std::vector<Slot>& slots() { return slots_; }

  // Drives transfers; calls done(slot, curl_code, http_status) for each finished one. The slot
  // is free again once done() returns unless done() restarted it.
  template <class F>
  void Pump(F&& done) {
    int running = 0;
    if (loop_ == CurlLoop::kPerform) {
      curl_multi_perform(multi_, &running);
    } else if (timer_ns_ >= 0 && NowNs() >= timer_ns_) {
      timer_ns_ = -1;
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* e = m->easy_handle;
      CURLcode rc = m->data.result;
      Slot* s = nullptr;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, reinterpret_cast<char**>(&s));
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      curl_multi_remove_handle(multi_, e);
      s->busy = false;
      busy_--;
      free_.push_back(s);
      done(s, rc, status);
    }
  }
  void Wait(int ms) { WaitNs(int64_t{ms} * 1'000'000); }
  // Waits up to `ns` for a transfer's socket or timer. With the socket loop the wait is as exact
  // as the kernel's timers (epoll_pwait2): a paced sender that waits for its next send less than
  // a millisecond away sleeps instead of spinning (a millisecond-grained wait of 0 spun a core
  // at 1,000 sends/s, which the system under test then lacked).
  void WaitNs(int64_t ns) {
    if (ns < 0) ns = 0;
    if (loop_ == CurlLoop::kPerform) {
      curl_multi_poll(multi_, nullptr, 0, static_cast<int>((ns + 999'999) / 1'000'000), nullptr);
      return;
    }
    if (timer_ns_ >= 0) {
      const int64_t until = timer_ns_ - NowNs();
      ns = std::clamp<int64_t>(until, 0, ns);
    }
    std::array<epoll_event, 256> evs;
    int n = -1;
    if (!no_pwait2_) {
      const timespec timeout{static_cast<time_t>(ns / 1'000'000'000),
                             static_cast<long>(ns % 1'000'000'000)};
      n = epoll_pwait2(ep_, evs.data(), static_cast<int>(evs.size()), &timeout, nullptr);
      // A kernel before 5.11 (or a sandbox that forbids the call): whole milliseconds, rounded
      // up, from then on.
      if (n < 0 && (errno == ENOSYS || errno == EPERM)) no_pwait2_ = true;
    }
    if (no_pwait2_) {
      n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()),
                     static_cast<int>((ns + 999'999) / 1'000'000));
    }
    int running = 0;
    for (int i = 0; i < n; ++i) {
      int mask = 0;
      if (evs[i].events & EPOLLIN) mask |= CURL_CSELECT_IN;
      if (evs[i].events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
      curl_multi_socket_action(multi_, evs[i].data.fd, mask, &running);
    }
    if (timer_ns_ >= 0 && NowNs() >= timer_ns_) {
      timer_ns_ = -1;
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    }
  }

 private:
  static int OnSocket(CURL*, curl_socket_t fd, int what, void* self_ptr, void*) {
    auto* self = static_cast<MultiPool*>(self_ptr);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->ep_, EPOLL_CTL_DEL, fd, nullptr);
      self->registered_.erase(fd);
      return 0;
    }
    epoll_event ev{};
    ev.data.fd = fd;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev.events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev.events |= EPOLLOUT;
    bool known = self->registered_.count(fd) > 0;
    if (epoll_ctl(self->ep_, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0 &&
        errno == EEXIST)
      epoll_ctl(self->ep_, EPOLL_CTL_MOD, fd, &ev);
    self->registered_.insert(fd);
    return 0;
  }
  static int OnTimer(CURLM*, long timeout_ms, void* self_ptr) {
    auto* self = static_cast<MultiPool*>(self_ptr);
    self->timer_ns_ = timeout_ms < 0 ? -1 : NowNs() + timeout_ms * 1'000'000;
    return 0;
  }

  CURLM* multi_ = nullptr;
  std::vector<Slot> slots_;
  std::vector<Slot*> free_;
  int busy_ = 0;
  bool no_pwait2_ = false;  // epoll_pwait2 refused: WaitNs waits with epoll_wait
  CurlLoop loop_;
  int ep_ = -1;
  int64_t timer_ns_ = -1;
  std::unordered_set<int> registered_;
};

// ------------------------------------------------------------------------------------------

}  // namespace bench
