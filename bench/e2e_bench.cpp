// End-to-end benchmark of Outbound (ARCHITECTURE.md, "Goals"; results in docs/PERFORMANCE.md).
//
// One run measures, against ONE in-process receiver (single-threaded epoll HTTP/1.1 on
// 127.0.0.1, keep-alive, answers 200 with an empty body):
//   1. baseline: a bare single-threaded libcurl multi sender (keep-alive, ~64 transfers in
//      flight, 1 KB JSON bodies, Standard Webhooks signing per request with core::Sign);
//      measured before and after the Outbound runs (the machine is shared and noisy);
//   2. Outbound throughput: the real binary on a fresh SQLite file, K = 1 and K = 10
//      subscriptions to the receiver, N events published as fast as possible over keep-alive
//      connections; deliveries/s = N*K / (first publish sent -> last delivery received), and the
//      ingest rate N / (first publish sent -> last 202);
//   3. Outbound latency: a fresh server, K = 1, a steady 1,000 events/s for a few seconds;
//      percentiles of publish-acknowledged -> received (0 when received before the 202) and of
//      publish-sent -> received.
// Traffic goes to 127.0.0.1 only. Every loop is bounded in count and in time. The exit status is
// non-zero only when the harness itself fails (the server cannot be started or set up, the
// receiver cannot bind...), never because a figure is slow.
//
//   4. with --isolation, instead of 1-3: endpoint isolation (ISSUE 3). K = 20 subscriptions, of
//      which every tenth (s9, s19) hangs: the receiver reads its requests and never answers.
//      The healthy 18's deliveries/s (first publish -> last healthy delivery) is compared with
//      the same 18's in runs where nothing hangs, before and after (goal: ratio >= 0.9).
//
//   5. with --scaleout, instead of 1-3: scale-out on PostgreSQL. In one run, against the same
//      receiver: the bare sender (before and after), then for each K of --scaleout-k: one process
//      on SQLite, one process on PostgreSQL, three `all` processes on PostgreSQL, and one `api`
//      plus two `worker` processes on PostgreSQL, each on a fresh database. For each:
//      deliveries/s and its ratio to the bare sender; CPU per delivery of the Outbound processes
//      (sum of /proc/PID/stat utime+stime) and of the PostgreSQL server (the postmaster and its
//      children, exited ones included through the postmaster's cutime+cstime); round trips to
//      the database per event (outbound_store_round_trips_total from /metrics, summed over the
//      processes). The bench starts its own throwaway cluster (scripts/pg-test-cluster.sh) and
//      always stops it, or uses --pg-dsn (a role with CREATEDB; the server's CPU is read from
//      /proc only when it runs on this machine).
//
//   e2e_bench [--bin PATH] [--events N] [--quick] [--baseline N] [--concurrency C]
//             [--rate R] [--latency-seconds S] [--phase-timeout S] [--total-timeout S]
//             [--only-baseline] [--isolation [--isolation-events N]]
//             [--scaleout [--scaleout-k K,...] [--pg-dsn URL] [--pg-script PATH]]
//             [--tmp DIR] [--keep-logs]
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/signing.h"

namespace {

namespace json = boost::json;
namespace core = outbound::core;
using std::int64_t;
using std::uint64_t;

constexpr const char* kOperatorToken = "bench-operator-token-0123456789abcdef";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
double Secs(int64_t ns) { return static_cast<double>(ns) / 1e9; }
void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// ------------------------------------------------------------------------------------------
// Options

struct Options {
  std::string bin;
  int events = 20000;
  int baseline = 100000;
  int concurrency = 48;       // publish connections
  int base_concurrency = 64;  // baseline transfers in flight
  int rate = 1000;            // latency phase, events/s
  double latency_seconds = 5.0;
  double warmup_seconds = 0.5;
  double phase_timeout = 60.0;   // hard cap per phase (publish + drain), seconds
  double total_timeout = 900.0;  // watchdog for the whole program
  bool only_baseline = false;
  bool isolation = false;  // only the isolation phases
  int iso_events = 2000;   // events per isolation run
  int iso_k = 20;          // subscriptions per isolation run; every tenth hangs
  bool keep_logs = false;
  std::string tmp;
  bool scaleout = false;                  // only the scale-out phases
  std::vector<int> scaleout_k = {1, 10};  // subscriptions per scale-out scenario
  std::string pg_dsn;                     // an existing server; empty: start a throwaway cluster
  std::string pg_script;                  // scripts/pg-test-cluster.sh
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(
      stderr,
      "e2e_bench: %s\nusage: e2e_bench [--bin PATH] [--events N] [--quick] [--baseline N]\n"
      "  [--concurrency C] [--rate R] [--latency-seconds S] [--phase-timeout S]\n"
      "  [--total-timeout S] [--only-baseline] [--isolation [--isolation-events N]]\n"
      "  [--scaleout [--scaleout-k K,...] [--pg-dsn URL] [--pg-script PATH]]\n"
      "  [--tmp DIR] [--keep-logs]\n",
      why);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  if (const char* e = std::getenv("OUTBOUND_BIN")) o.bin = e;
  if (o.bin.empty()) o.bin = "./build/outbound";
  if (const char* t = std::getenv("TMPDIR")) o.tmp = t;
  if (o.tmp.empty()) o.tmp = "/tmp";
#ifdef OUTBOUND_SOURCE_DIR
  o.pg_script = OUTBOUND_SOURCE_DIR "/scripts/pg-test-cluster.sh";
#endif
  bool events_set = false, baseline_set = false, total_set = false, quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    auto num = [&](double lo, double hi) {
      std::string v = next();
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(d >= lo && d <= hi))
        Usage(("bad value for " + a).c_str());
      return d;
    };
    if (a == "--bin")
      o.bin = next();
    else if (a == "--events") {
      o.events = static_cast<int>(num(1, 10'000'000));
      events_set = true;
    } else if (a == "--baseline") {
      o.baseline = static_cast<int>(num(1, 100'000'000));
      baseline_set = true;
    } else if (a == "--concurrency")
      o.concurrency = static_cast<int>(num(1, 1024));
    else if (a == "--rate")
      o.rate = static_cast<int>(num(1, 100000));
    else if (a == "--latency-seconds")
      o.latency_seconds = num(0.1, 600);
    else if (a == "--phase-timeout")
      o.phase_timeout = num(1, 3600);
    else if (a == "--total-timeout") {
      o.total_timeout = num(10, 86400);
      total_set = true;
    } else if (a == "--scaleout")
      o.scaleout = true;
    else if (a == "--scaleout-k") {
      std::string v = next();
      o.scaleout_k.clear();
      std::istringstream in(v);
      std::string one;
      while (std::getline(in, one, ',')) {
        char* end = nullptr;
        long k = std::strtol(one.c_str(), &end, 10);
        if (one.empty() || *end != '\0' || k < 1 || k > 100) Usage("bad value for --scaleout-k");
        o.scaleout_k.push_back(static_cast<int>(k));
      }
      if (o.scaleout_k.empty()) Usage("bad value for --scaleout-k");
    } else if (a == "--pg-dsn")
      o.pg_dsn = next();
    else if (a == "--pg-script")
      o.pg_script = next();
    else if (a == "--tmp")
      o.tmp = next();
    else if (a == "--only-baseline")
      o.only_baseline = true;
    else if (a == "--isolation")
      o.isolation = true;
    else if (a == "--isolation-events")
      o.iso_events = static_cast<int>(num(1, 1'000'000));
    else if (a == "--keep-logs")
      o.keep_logs = true;
    else if (a == "--quick") {
      quick = true;
      if (!events_set) o.events = 2000;
      if (!baseline_set) o.baseline = 20000;
      o.latency_seconds = 2.0;
      o.warmup_seconds = 0.2;
      o.phase_timeout = 30.0;
    } else if (a == "-h" || a == "--help")
      Usage("help");
    else
      Usage(("unknown argument " + a).c_str());
  }
  if (o.scaleout) {
    // Four servers per K and a baseline before and after: smaller defaults than the full run.
    if (!events_set) o.events = quick ? 1000 : 5000;
    if (!baseline_set) o.baseline = quick ? 10000 : 30000;
    if (!total_set) o.total_timeout = 1800;
  }
  return o;
}

// ------------------------------------------------------------------------------------------
// CPU accounting from /proc (user+system seconds), to tell who used the two cores.

double ProcCpuSeconds(const std::string& stat_path) {
  std::ifstream f(stat_path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto rp = s.rfind(')');
  if (rp == std::string::npos) return 0;
  std::istringstream in(s.substr(rp + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 0; i < 13 && (in >> field); ++i) {
    if (i == 11) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 12) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The fields of /proc/PID/stat the scale-out phase needs: parent, own CPU seconds (utime+stime)
// and the CPU seconds of its waited-for children (cutime+cstime). ok = false: no such process.
struct ProcStat {
  bool ok = false;
  int ppid = 0;
  double self = 0, children = 0;
};
ProcStat ReadProcStat(pid_t pid) {
  ProcStat st;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto rp = s.rfind(')');
  if (rp == std::string::npos || rp + 2 > s.size()) return st;
  std::istringstream in(s.substr(rp + 2));
  std::string field;
  uint64_t v[15] = {};
  int i = 0;
  for (; i < 15 && (in >> field); ++i) v[i] = std::strtoull(field.c_str(), nullptr, 10);
  if (i < 15) return st;
  const double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  st.ok = true;
  st.ppid = static_cast<int>(v[1]);
  st.self = static_cast<double>(v[11] + v[12]) / tck;
  st.children = static_cast<double>(v[13] + v[14]) / tck;
  return st;
}

std::string ProcComm(pid_t pid) {
  std::ifstream c("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(c, name);
  return name;
}

// CPU seconds of a process tree of depth one (a PostgreSQL postmaster and its children): the
// parent's own time, the time of its children that have exited (its cutime+cstime: the
// postmaster waits for every child) and the time of the children alive now. NAN: no such process.
double TreeCpuSeconds(pid_t parent) {
  ProcStat p = ReadProcStat(parent);
  if (!p.ok) return NAN;
  double sum = p.self + p.children;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    ProcStat c = ReadProcStat(std::atoi(name.c_str()));
    if (c.ok && c.ppid == parent) sum += c.self;
  }
  return sum;
}

// Bytes received on the loopback interface so far (machine-wide: every process's traffic).
uint64_t LoopbackBytes() {
  std::ifstream f("/proc/net/dev");
  std::string line;
  while (std::getline(f, line)) {
    size_t c = line.find(':');
    if (c == std::string::npos) continue;
    std::string name = line.substr(0, c);
    name.erase(0, name.find_first_not_of(' '));
    if (name == "lo") return std::strtoull(line.c_str() + c + 1, nullptr, 10);
  }
  return 0;
}

// Per-thread CPU seconds of a process: tid -> (name, seconds).
std::unordered_map<int, std::pair<std::string, double>> ThreadCpu(pid_t pid) {
  std::unordered_map<int, std::pair<std::string, double>> out;
  std::error_code ec;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string tdir = it->path().string();
    std::ifstream c(tdir + "/comm");
    std::string name;
    std::getline(c, name);
    out[std::atoi(it->path().filename().c_str())] = {name, ProcCpuSeconds(tdir + "/stat")};
  }
  return out;
}

struct MachineCpu {
  uint64_t busy = 0, total = 0;
};
MachineCpu ReadMachineCpu() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  f >> cpu;
  MachineCpu m;
  uint64_t v[10] = {};
  for (int i = 0; i < 10 && (f >> v[i]); ++i) {
  }
  for (int i = 0; i < 8; ++i) m.total += v[i];  // guest time is already in user
  m.busy = m.total - v[3] - v[4];               // minus idle and iowait
  return m;
}

long ProcStatusKb(pid_t pid, const char* key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0)
      return std::strtol(line.c_str() + std::strlen(key) + 1, nullptr, 10);
  }
  return -1;
}

// The string value of the first `"key": "..."` in a JSON text (no unescaping; ids need none).
std::string_view JsonStringField(std::string_view text, std::string_view key) {
  std::string quoted = "\"" + std::string(key) + "\"";
  size_t k = text.find(quoted);
  if (k == std::string_view::npos) return {};
  size_t p = k + quoted.size();
  while (p < text.size() &&
         (text[p] == ' ' || text[p] == '\t' || text[p] == '\n' || text[p] == '\r'))
    p++;
  if (p >= text.size() || text[p] != ':') return {};
  p++;
  while (p < text.size() &&
         (text[p] == ' ' || text[p] == '\t' || text[p] == '\n' || text[p] == '\r'))
    p++;
  if (p >= text.size() || text[p] != '"') return {};
  p++;
  size_t e = text.find('"', p);
  if (e == std::string_view::npos) return {};
  return text.substr(p, e - p);
}

// ------------------------------------------------------------------------------------------
// Receiver: single-threaded epoll HTTP/1.1 server.

struct Received {
  int64_t t_ns = 0;
  int32_t path = -1;  // N for "/sN", -1 otherwise
  uint32_t body_len = 0;
  uint32_t head_len = 0;      // request line and headers, with the empty line
  std::array<char, 32> id{};  // "eventId" of the body, NUL-terminated
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
  // Isolation phase: requests to "/sN" with N % every == every - 1 are read and never answered
  // (the connection stays open and silent). 0: answer everything.
  void SetHangEvery(int every) { hang_every_ = every; }

  // Starts a new phase: forgets what was received so far.
  void Reset() {
    std::lock_guard<std::mutex> l(mu_);
    records_.clear();
    sample_.clear();
    count_ = 0;
    expect100_ = 0;
    chunked_ = 0;
    accepted_ = 0;
    hung_ = 0;
  }
  std::vector<Received> Take() {
    std::lock_guard<std::mutex> l(mu_);
    return records_;
  }
  std::string Sample() {
    std::lock_guard<std::mutex> l(mu_);
    return sample_;
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
        pos = end;
        continue;
      }
      int64_t t = NowNs();
      std::string_view b = is_chunked
                               ? std::string_view(body)
                               : std::string_view(c.in.data() + body_start, end - body_start);
      Received rec;
      rec.t_ns = t;
      rec.path = path;
      rec.body_len = static_cast<uint32_t>(b.size());
      rec.head_len = static_cast<uint32_t>(body_start - pos);
      std::string_view id = JsonStringField(b, "eventId");
      std::memcpy(rec.id.data(), id.data(), std::min<size_t>(id.size(), rec.id.size() - 1));
      if (expect) expect100_++;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (sample_.empty()) sample_.assign(c.in, pos, body_start - pos).append(b);
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
  std::string sample_;
  std::atomic<uint64_t> count_{0}, expect100_{0}, chunked_{0}, accepted_{0}, hung_{0};
  std::atomic<int> hang_every_{0};
};

// ------------------------------------------------------------------------------------------
// A pool of easy handles on one curl multi handle, single-threaded.

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

size_t DiscardWrite(char*, size_t size, size_t n, void*) { return size * n; }
size_t KeepAll(char* p, size_t size, size_t n, void* ud) {
  auto* s = static_cast<std::string*>(ud);
  if (s->size() < (16u << 20)) s->append(p, size * n);
  return size * n;
}
size_t KeepWrite(char* p, size_t size, size_t n, void* ud) {
  auto* s = static_cast<std::string*>(ud);
  if (s->size() < 4096) s->append(p, std::min<size_t>(size * n, 4096 - s->size()));
  return size * n;
}

// Two ways to drive libcurl multi: curl_multi_perform + curl_multi_poll (the simple loop most
// senders write; libcurl then checks every transfer's socket on each call), or
// curl_multi_socket_action with our own epoll (libcurl's event-driven API: work per ready socket).
enum class CurlLoop { kPerform, kSocket };
const char* LoopName(CurlLoop l) {
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
  void Wait(int ms) {
    if (loop_ == CurlLoop::kPerform) {
      curl_multi_poll(multi_, nullptr, 0, ms, nullptr);
      return;
    }
    if (timer_ns_ >= 0) {
      int64_t until = timer_ns_ - NowNs();
      ms = until <= 0 ? 0 : std::min<int>(ms, static_cast<int>((until + 999'999) / 1'000'000));
    }
    std::array<epoll_event, 256> evs;
    int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), ms);
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
  CurlLoop loop_;
  int ep_ = -1;
  int64_t timer_ns_ = -1;
  std::unordered_set<int> registered_;
};

// ------------------------------------------------------------------------------------------
// Baseline: a bare libcurl multi sender with Standard Webhooks signing per request.

struct BaselineResult {
  uint64_t ok = 0, failed = 0, received = 0, connections = 0;
  double seconds = 0, rps = 0;
  double bench_cpu = 0, receiver_cpu = 0, machine_busy_pct = 0;
  size_t body_bytes = 0;
  bool timed_out = false;
  CurlLoop loop = CurlLoop::kSocket;
};

std::string Pad(size_t n) {
  std::string s;
  static const char* words[] = {"pump",  "seal",  "sensor",  "cold",     "room",   "compressor",
                                "spare", "parts", "checked", "customer", "report", "signed"};
  for (size_t i = 0; s.size() < n; ++i) {
    if (!s.empty()) s.push_back(' ');
    s += words[i % 12];
  }
  s.resize(n);
  return s;
}

std::string BaselineBody(int64_t seq, const std::string& pad) {
  char id[40];
  std::snprintf(id, sizeof id, "evt_%026" PRId64, seq);
  char del[40];
  std::snprintf(del, sizeof del, "del_%026" PRId64, seq);
  std::string b;
  b.reserve(1100);
  b += "{\"eventId\":\"";
  b += id;
  b += "\",\"eventType\":\"appointment.problem_reported\",\"eventVersion\":\"v1\",\"tenantId\":1,"
       "\"occurredAtUtc\":\"2026-06-25T14:31:00Z\",\"deliveryId\":\"";
  b += del;
  b += "\",\"source\":\"ordinavo\",\"data\":{\"targetId\":991,\"externalId\":\"DEL-2026-000918\","
       "\"sourceSystem\":\"logistics_erp\",\"appointmentId\":";
  b += std::to_string(seq);
  b += ",\"problem\":{\"code\":\"PART_MISSING\",\"description\":\"";
  b += pad;
  b += "\"},\"status\":\"ProblemReported\"}}";
  return b;
}

BaselineResult RunBaseline(Receiver& rx, int n, int concurrency, double time_limit, CurlLoop loop) {
  BaselineResult r;
  r.loop = loop;
  rx.Reset();
  std::string key = core::DecodeSecret(core::NewSecret()).value();
  std::string url = "http://127.0.0.1:" + std::to_string(rx.port()) + "/base";
  std::string pad = Pad(1024 - BaselineBody(0, "").size());
  MultiPool pool(concurrency, loop);
  for (auto& s : pool.slots()) {
    curl_easy_setopt(s.easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, DiscardWrite);
  }
  int64_t next = 0;
  auto prepare = [&](Slot* s) {
    s->seq = next++;
    s->body = BaselineBody(s->seq, pad);
    int64_t ts = static_cast<int64_t>(std::time(nullptr));
    char id[40];
    std::snprintf(id, sizeof id, "evt_%026" PRId64, s->seq);
    std::string sig = core::Sign(key, id, ts, s->body);
    if (s->headers) curl_slist_free_all(s->headers);
    s->headers = nullptr;
    s->headers = curl_slist_append(s->headers, "Content-Type: application/json");
    s->headers = curl_slist_append(s->headers, "User-Agent: Outbound-baseline/0.1");
    s->headers = curl_slist_append(s->headers, (std::string("webhook-id: ") + id).c_str());
    s->headers =
        curl_slist_append(s->headers, ("webhook-timestamp: " + std::to_string(ts)).c_str());
    s->headers = curl_slist_append(s->headers, ("webhook-signature: " + sig).c_str());
    s->headers = curl_slist_append(s->headers, "ordinavo-event-type: appointment.problem_reported");
    s->headers = curl_slist_append(s->headers,
                                   (std::string("ordinavo-delivery-id: del_") + (id + 4)).c_str());
    s->headers = curl_slist_append(s->headers, "ordinavo-attempt: 1");
    s->headers = curl_slist_append(s->headers, "Expect:");
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body.data());
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(s->body.size()));
  };
  r.body_bytes = BaselineBody(0, pad).size();
  double cpu0 = ProcCpuSeconds("/proc/self/stat");
  double rcpu0 = ProcCpuSeconds("/proc/self/task/" + std::to_string(rx.tid()) + "/stat");
  MachineCpu m0 = ReadMachineCpu();
  int64_t t0 = NowNs(), deadline = t0 + static_cast<int64_t>(time_limit * 1e9), t_last = t0;
  while (next < n && pool.busy() < concurrency) {
    Slot* s = pool.Free();
    prepare(s);
    pool.Start(s);
  }
  uint64_t done = 0;
  while (done < static_cast<uint64_t>(n)) {
    if (NowNs() > deadline) {
      r.timed_out = true;
      break;
    }
    pool.Pump([&](Slot* s, CURLcode rc, long status) {
      done++;
      t_last = NowNs();
      if (rc == CURLE_OK && status == 200)
        r.ok++;
      else
        r.failed++;
      if (next < n) {
        Slot* f = pool.Free();
        (void)s;
        prepare(f);
        pool.Start(f);
      }
    });
    if (done < static_cast<uint64_t>(n)) pool.Wait(100);
  }
  r.seconds = Secs(t_last - t0);
  r.rps = r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
  r.bench_cpu = ProcCpuSeconds("/proc/self/stat") - cpu0;
  r.receiver_cpu = ProcCpuSeconds("/proc/self/task/" + std::to_string(rx.tid()) + "/stat") - rcpu0;
  MachineCpu m1 = ReadMachineCpu();
  r.machine_busy_pct = 100.0 * static_cast<double>(m1.busy - m0.busy) /
                       static_cast<double>(std::max<uint64_t>(1, m1.total - m0.total));
  for (int i = 0; i < 100 && rx.count() < r.ok; ++i) SleepMs(10);
  r.received = rx.count();
  r.connections = rx.connections();
  return r;
}

// ------------------------------------------------------------------------------------------
// The outbound child process.

// A child started by the bench gets the default signal mask (main blocks the stop signals for
// its signal thread, and a blocked mask survives execve).
void UnblockSignalsInChild() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// How one `outbound serve` is started.
struct ServerSpec {
  std::string name = "outbound";  // the log is <dir>/<name>.log
  std::string db;                 // empty: sqlite:<dir>/outbound.db
  std::string role = "all";       // all, api, worker
  std::string secrets_key;        // required with PostgreSQL
};

class Server {
 public:
  ~Server() { Stop(); }

  bool Start(const std::string& bin, const std::string& dir, std::string* err) {
    return Start(bin, dir, ServerSpec{}, err);
  }

  bool Start(const std::string& bin, const std::string& dir, const ServerSpec& spec,
             std::string* err) {
    dir_ = dir;
    log_path_ = dir + "/" + spec.name + ".log";
    db_path_ = spec.db.empty() ? dir + "/outbound.db" : std::string();
    std::vector<std::string> args = {bin,
                                     "serve",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--db",
                                     spec.db.empty() ? "sqlite:" + db_path_ : spec.db,
                                     "--operator-token",
                                     kOperatorToken,
                                     "--allow-private-networks",
                                     "--retry-schedule",
                                     "0s,1s",
                                     "--retry-jitter",
                                     "0"};
    if (spec.role != "all") {
      args.push_back("--role");
      args.push_back(spec.role);
    }
    if (!spec.secrets_key.empty()) {
      args.push_back("--secrets-key");
      args.push_back(spec.secrets_key);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int logfd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logfd < 0) {
      *err = "open log: " + std::string(std::strerror(errno));
      return false;
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      *err = "fork: " + std::string(std::strerror(errno));
      close(logfd);
      return false;
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      UnblockSignalsInChild();
      dup2(devnull, 0);
      dup2(logfd, 1);
      dup2(logfd, 2);
      close_range(3, ~0U, 0);
      execv(argv[0], argv.data());
      const char msg[] = "e2e_bench: exec failed\n";
      ssize_t ignored = write(2, msg, sizeof msg - 1);
      (void)ignored;
      _exit(127);
    }
    close(logfd);
    close(devnull);
    pid_ = pid;
    // Wait for "listening on http://127.0.0.1:PORT", bounded.
    int64_t deadline = NowNs() + 30'000'000'000LL;
    while (NowNs() < deadline) {
      if (!Alive()) {
        *err = "outbound exited before listening (" + ExitText() + "):\n" + LogTail(40);
        return false;
      }
      std::string log = ReadLog();
      size_t k = log.find("listening on http://");
      if (k != std::string::npos) {
        size_t colon = log.find(':', k + 20);
        if (colon != std::string::npos) {
          port_ = std::atoi(log.c_str() + colon + 1);
          if (port_ > 0) break;
        }
      }
      SleepMs(20);
    }
    if (port_ <= 0) {
      *err = "outbound did not log its listening address within 30 s:\n" + LogTail(40);
      return false;
    }
    base_ = "http://127.0.0.1:" + std::to_string(port_);
    return true;
  }

  bool Alive() {
    if (pid_ <= 0) return false;
    if (exited_) return false;
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = st;
      return false;
    }
    return true;
  }

  // SIGTERM, then SIGKILL after `grace`. Returns the seconds SIGTERM took (or -1 if killed).
  double Stop(double grace = 15.0) {
    if (pid_ <= 0 || !Alive()) {
      pid_ = -1;
      return 0;
    }
    int64_t t0 = NowNs();
    kill(pid_, SIGTERM);
    double took = -1;
    while (Secs(NowNs() - t0) < grace) {
      if (!Alive()) {
        took = Secs(NowNs() - t0);
        break;
      }
      SleepMs(10);
    }
    if (took < 0) {
      kill(pid_, SIGKILL);
      int st = 0;
      waitpid(pid_, &st, 0);
      exited_ = true;
      status_ = st;
      killed_ = true;
    }
    pid_ = -1;
    return took;
  }

  std::string ExitText() const {
    if (!exited_) return "running";
    if (WIFEXITED(status_)) return "exit status " + std::to_string(WEXITSTATUS(status_));
    if (WIFSIGNALED(status_))
      return std::string("killed by signal ") + strsignal(WTERMSIG(status_));
    return "unknown";
  }
  bool clean_exit() const {
    return exited_ && !killed_ && WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
  }

  std::string ReadLog() const {
    std::ifstream f(log_path_);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  std::string LogTail(int lines) const {
    std::string log = ReadLog();
    size_t p = log.size();
    for (int i = 0; i <= lines && p > 0; ++i) {
      p = log.rfind('\n', p - 1);
      if (p == std::string::npos) {
        p = 0;
        break;
      }
    }
    return log.substr(p);
  }

  pid_t pid() const { return pid_; }
  const std::string& base() const { return base_; }
  const std::string& db_path() const { return db_path_; }

 private:
  std::string dir_, log_path_, db_path_, base_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false, killed_ = false;
  int status_ = 0;
};

// ------------------------------------------------------------------------------------------
// Blocking API calls for the set-up.

struct Resp {
  long status = 0;
  std::string body;
  std::string error;
};

class Api {
 public:
  explicit Api(std::string base) : base_(std::move(base)) { easy_ = curl_easy_init(); }
  ~Api() { curl_easy_cleanup(easy_); }
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  Resp Call(const char* method, const std::string& path, const std::string& token,
            const std::string* body, long timeout_ms = 20000) {
    Resp r;
    curl_easy_reset(easy_);
    std::string url = base_ + path;
    curl_easy_setopt(easy_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy_, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, KeepAll);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &r.body);
    curl_slist* h = nullptr;
    if (!token.empty()) h = curl_slist_append(h, ("Authorization: Bearer " + token).c_str());
    h = curl_slist_append(h, "Expect:");
    if (body) {
      h = curl_slist_append(h, "Content-Type: application/json");
      curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    }
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(easy_);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) r.error = curl_easy_strerror(rc);
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &r.status);
    return r;
  }

 private:
  std::string base_;
  CURL* easy_ = nullptr;
};

struct Fixture {
  std::string tenant_key, client_key;
  std::vector<int64_t> targets;
  std::vector<std::string> secrets;
};

std::optional<json::value> ParseJson(const std::string& s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  if (ec) return std::nullopt;
  return v;
}

// Creates tenant, client, directory records, targets and K subscriptions to the receiver.
bool SetUp(Server& srv, int rx_port, int k, int n_targets, Fixture* fx, std::string* err) {
  Api api(srv.base());
  // healthz, bounded
  bool healthy = false;
  for (int i = 0; i < 200 && !healthy; ++i) {
    Resp r = api.Call("GET", "/healthz", "", nullptr);
    healthy = r.status == 200;
    if (!healthy) SleepMs(25);
  }
  if (!healthy) {
    *err = "/healthz never answered 200";
    return false;
  }
  auto expect = [&](const Resp& r, std::initializer_list<long> ok, const char* what) {
    for (long s : ok)
      if (r.status == s) return true;
    *err = std::string(what) + ": HTTP " + std::to_string(r.status) + " " + r.error + " " +
           r.body.substr(0, 500);
    return false;
  };
  auto get_str = [&](const std::string& body, const char* key, std::string* out) {
    auto v = ParseJson(body);
    if (!v || !v->is_object() || !v->as_object().contains(key) ||
        !v->as_object().at(key).is_string())
      return false;
    *out = std::string(v->as_object().at(key).as_string());
    return true;
  };
  std::string body = R"({"name":"Bench Tenant"})";
  Resp r = api.Call("POST", "/v1/tenants", kOperatorToken, &body);
  if (!expect(r, {201}, "POST /v1/tenants") || !get_str(r.body, "apiKey", &fx->tenant_key)) {
    if (err->empty()) *err = "POST /v1/tenants: no apiKey in " + r.body;
    return false;
  }
  body = R"({"name":"Bench ERP","sourceSystem":"bench_erp"})";
  r = api.Call("POST", "/v1/clients", fx->tenant_key, &body);
  if (!expect(r, {201}, "POST /v1/clients")) return false;
  auto cv = ParseJson(r.body);
  if (!cv || !cv->is_object() || !cv->as_object().contains("clientId")) {
    *err = "POST /v1/clients: no clientId in " + r.body;
    return false;
  }
  std::string client_id = json::serialize(cv->as_object().at("clientId"));
  if (!client_id.empty() && client_id.front() == '"')
    client_id = client_id.substr(1, client_id.size() - 2);
  r = api.Call("POST", ("/v1/clients/" + client_id + "/keys").c_str(), fx->tenant_key, nullptr);
  if (!expect(r, {201}, "POST /v1/clients/{id}/keys")) return false;
  if (!get_str(r.body, "apiKey", &fx->client_key)) {
    *err = "client key: no apiKey in " + r.body;
    return false;
  }
  // Directory records with realistic-length names so that a webhook body is about 1 KB.
  body =
      R"({"customerNumber":"RRM-001","name":"Rhein-Ruhr Medical Supply GmbH & Co. KG, Zentrallager und Kundendienst Nordrhein-Westfalen","internalNotes":"bench","externalIds":{"bench_erp":"CUST-10042"}})";
  r = api.Call("PUT", "/v1/customers/12", fx->tenant_key, &body);
  if (!expect(r, {200, 201}, "PUT /v1/customers/12")) return false;
  body =
      R"({"customerId":12,"name":"Essen Center, Huyssenallee, Gebaeude C, Kuehlraum 2","address":"Huyssenallee 1, Essen","externalIds":{"bench_erp":"LOC-ESSEN-01"}})";
  r = api.Call("PUT", "/v1/locations/34", fx->tenant_key, &body);
  if (!expect(r, {200, 201}, "PUT /v1/locations/34")) return false;
  body =
      R"({"customerId":12,"displayName":"Anna Weber","phone":"+49 201 555 0100","email":"anna.weber@example.com","externalIds":{"bench_erp":"CONT-44"}})";
  r = api.Call("PUT", "/v1/contacts/56", fx->tenant_key, &body);
  if (!expect(r, {200, 201}, "PUT /v1/contacts/56")) return false;
  // Targets (before the subscriptions, so their target.imported events go nowhere).
  json::array items;
  for (int i = 0; i < n_targets; ++i) {
    items.push_back(json::object{{"externalId", "DEL-2026-" + std::to_string(100000 + i)},
                                 {"customerExternalId", "CUST-10042"},
                                 {"locationExternalId", "LOC-ESSEN-01"},
                                 {"contactExternalId", "CONT-44"},
                                 {"title", "Deliver cold-room spare parts"},
                                 {"durationMinutes", 45}});
  }
  body = json::serialize(json::object{{"targets", items}});
  r = api.Call("POST", "/v1/imports/targets", fx->client_key, &body);
  if (!expect(r, {200}, "POST /v1/imports/targets")) return false;
  auto iv = ParseJson(r.body);
  try {
    for (auto& res : iv.value().as_object().at("results").as_array()) {
      auto& o = res.as_object();
      if (o.at("result").as_string() != "imported") {
        *err = "import: item not imported: " + json::serialize(res);
        return false;
      }
      fx->targets.push_back(o.at("targetId").to_number<int64_t>());
    }
  } catch (const std::exception& e) {
    *err = std::string("import: unexpected answer (") + e.what() + "): " + r.body.substr(0, 500);
    return false;
  }
  if (fx->targets.empty()) {
    *err = "import: no targets";
    return false;
  }
  for (int i = 0; i < k; ++i) {
    body = json::serialize(json::object{
        {"url", "http://127.0.0.1:" + std::to_string(rx_port) + "/s" + std::to_string(i)},
        {"eventTypes", json::array{"appointment.*"}},
        {"description", "bench subscription " + std::to_string(i)}});
    r = api.Call("POST", "/v1/subscriptions", fx->client_key, &body);
    if (!expect(r, {201}, "POST /v1/subscriptions")) return false;
    std::string secret;
    if (!get_str(r.body, "secret", &secret)) {
      *err = "POST /v1/subscriptions: no secret in " + r.body.substr(0, 300);
      return false;
    }
    fx->secrets.push_back(secret);
  }
  return true;
}

// Checks one received webhook's Standard Webhooks signature against the subscription's secret.
std::string CheckSample(const std::string& raw, const std::string& secret) {
  if (raw.empty()) return "no sample";
  size_t hend = raw.find("\r\n\r\n");
  if (hend == std::string::npos) return "malformed sample";
  std::string head = raw.substr(0, hend), body = raw.substr(hend + 4);
  auto header = [&](const char* name) -> std::string {
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    std::string key = std::string("\r\n") + name + ":";
    size_t k = lower.find(key);
    if (k == std::string::npos) return "";
    size_t v = k + key.size();
    size_t e = head.find("\r\n", v);
    std::string val = head.substr(v, e == std::string::npos ? std::string::npos : e - v);
    while (!val.empty() && val.front() == ' ') val.erase(0, 1);
    return val;
  };
  std::string id = header("webhook-id"), ts = header("webhook-timestamp"),
              sig = header("webhook-signature");
  auto key = core::DecodeSecret(secret);
  if (!key) return "undecodable secret";
  std::string want = core::Sign(*key, id, std::strtoll(ts.c_str(), nullptr, 10), body);
  std::istringstream parts(sig);
  std::string one;
  while (parts >> one) {
    if (one == want) return "ok";
  }
  return "MISMATCH (webhook-id '" + id + "', timestamp '" + ts + "')";
}

// ------------------------------------------------------------------------------------------
// Publishing.

const std::string& Description() {
  static const std::string d = Pad(300);
  return d;
}

std::string EventBody(int64_t seq, int64_t target) {
  std::string b;
  b.reserve(600);
  b += R"({"eventType":"appointment.problem_reported","targetId":)";
  b += std::to_string(target);
  b += R"(,"occurredAtUtc":"2026-06-25T14:31:00Z","data":{"appointmentId":)";
  b += std::to_string(seq + 1);
  b += R"(,"problem":{"code":"PART_MISSING","description":")";
  b += Description();
  b += R"("}}})";
  return b;
}

struct PublishLog {
  std::vector<int64_t> sent, acked;   // per seq; 0 = never
  std::vector<std::string> event_id;  // per seq
  uint64_t accepted = 0, failed = 0, retried = 0, status503 = 0;
  std::vector<std::string> errors;  // first few error samples
  int64_t t_first_send = 0, t_last_ack = 0;
  int64_t max_late_ns = 0;  // latency phase: worst lateness of a send against its schedule
  bool timed_out = false, server_died = false;
  void Init(int n) {
    sent.assign(static_cast<size_t>(n), 0);
    acked.assign(static_cast<size_t>(n), 0);
    event_id.assign(static_cast<size_t>(n), std::string());
  }
};

// Publishes `n` events through `pool`. When `rate` > 0, event i is sent at t0 + i/rate (as close
// as the loop gets); otherwise as fast as the pool allows. Bounded by `deadline_ns`. With several
// servers, the connections are shared out among them (slot i publishes to servers[i % n]).
void Publish(const std::vector<Server*>& servers, const Fixture& fx, int n, int concurrency,
             double rate, int64_t deadline_ns, PublishLog* log, int seq_offset = 0) {
  int64_t next_alive_check = NowNs() + 100'000'000;
  MultiPool pool(concurrency, CurlLoop::kSocket);
  std::vector<std::string> urls;
  for (Server* srv : servers) urls.push_back(srv->base() + "/v1/events");
  curl_slist* common = nullptr;
  common = curl_slist_append(common, ("Authorization: Bearer " + fx.tenant_key).c_str());
  common = curl_slist_append(common, "Content-Type: application/json");
  common = curl_slist_append(common, "Expect:");
  size_t slot_index = 0;
  for (auto& s : pool.slots()) {
    curl_easy_setopt(s.easy, CURLOPT_URL, urls[slot_index++ % urls.size()].c_str());
    curl_easy_setopt(s.easy, CURLOPT_HTTPHEADER, common);
    curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, KeepWrite);
    curl_easy_setopt(s.easy, CURLOPT_WRITEDATA, &s.resp);
  }
  struct Retry {
    int64_t seq;
    int64_t not_before;
    int attempt;
  };
  std::deque<Retry> retries;
  int64_t next = 0;
  uint64_t finished = 0;
  auto start = [&](Slot* s, int64_t seq, int attempt) {
    s->seq = seq;
    s->attempt = attempt;
    s->body = EventBody(seq + seq_offset, fx.targets[static_cast<size_t>(seq) % fx.targets.size()]);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body.data());
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(s->body.size()));
    int64_t now = NowNs();
    s->t_sent = now;
    if (log->sent[static_cast<size_t>(seq)] == 0) log->sent[static_cast<size_t>(seq)] = now;
    if (log->t_first_send == 0) log->t_first_send = now;
    pool.Start(s);
  };
  auto error = [&](std::string e) {
    if (log->errors.size() < 8) log->errors.push_back(std::move(e));
  };
  const int64_t t0 = NowNs();
  auto sched = [&](int64_t i) {
    return t0 + static_cast<int64_t>(static_cast<double>(i) * 1e9 / rate);
  };
  while (finished < static_cast<uint64_t>(n)) {
    int64_t now = NowNs();
    if (now > deadline_ns) {
      log->timed_out = true;
      break;
    }
    if (now > next_alive_check) {
      next_alive_check = now + 100'000'000;
      if (std::any_of(servers.begin(), servers.end(), [](Server* srv) { return !srv->Alive(); })) {
        log->server_died = true;
        break;
      }
    }
    // retries first (503 / transport errors), then new events
    while (!retries.empty() && retries.front().not_before <= now) {
      Slot* s = pool.Free();
      if (!s) break;
      Retry r = retries.front();
      retries.pop_front();
      start(s, r.seq, r.attempt);
    }
    while (next < n && (rate <= 0 || sched(next) <= now)) {
      Slot* s = pool.Free();
      if (!s) break;
      if (rate > 0) log->max_late_ns = std::max(log->max_late_ns, now - sched(next));
      start(s, next++, 1);
    }
    pool.Pump([&](Slot* s, CURLcode rc, long status) {
      int64_t t = NowNs();
      size_t i = static_cast<size_t>(s->seq);
      if (rc == CURLE_OK && status == 202) {
        log->acked[i] = t;
        log->t_last_ack = std::max(log->t_last_ack, t);
        log->event_id[i] = std::string(JsonStringField(s->resp, "eventId"));
        if (log->event_id[i].empty()) error("202 without eventId: " + s->resp.substr(0, 200));
        log->accepted++;
        finished++;
        return;
      }
      bool retryable = (rc != CURLE_OK) || status == 503 || status == 429;
      if (status == 503) log->status503++;
      if (retryable && s->attempt < 20) {
        log->retried++;
        if (rc != CURLE_OK) error(std::string("transport error: ") + curl_easy_strerror(rc));
        retries.push_back({s->seq, t + 100'000'000LL, s->attempt + 1});  // 100 ms back-off
        return;
      }
      error("HTTP " + std::to_string(status) +
            (rc != CURLE_OK ? std::string(" ") + curl_easy_strerror(rc) : "") + ": " +
            s->resp.substr(0, 300));
      log->failed++;
      finished++;
    });
    if (finished >= static_cast<uint64_t>(n)) break;
    int wait_ms = 5;
    if (rate > 0 && next < n) {
      int64_t until = sched(next) - NowNs();
      wait_ms = until <= 0 ? 0 : static_cast<int>(std::min<int64_t>(5, until / 1'000'000));
    } else if (next >= n && pool.busy() == 0 && !retries.empty()) {
      wait_ms = 10;
    }
    if (pool.busy() > 0)
      pool.Wait(wait_ms);
    else if (wait_ms > 0)
      SleepMs(wait_ms);
    else if (rate > 0 && next < n)
      std::this_thread::yield();
  }
  curl_slist_free_all(common);
}

void Publish(Server& srv, const Fixture& fx, int n, int concurrency, double rate,
             int64_t deadline_ns, PublishLog* log, int seq_offset = 0) {
  Publish(std::vector<Server*>{&srv}, fx, n, concurrency, rate, deadline_ns, log, seq_offset);
}

// ------------------------------------------------------------------------------------------
// Phases against the real service.

struct CpuWindow {
  double outbound = 0, bench = 0, receiver = 0, machine_busy_pct = 0, wall = 0;
  std::vector<std::pair<std::string, double>>
      threads;  // outbound's busiest threads: "name/tid", seconds
  size_t thread_count = 0;
};
class CpuMeter {
 public:
  CpuMeter(pid_t child, pid_t rx_tid) : child_(child), rx_tid_(rx_tid) { Begin(); }
  void Begin() {
    o_ = ChildCpu();
    threads_ = ThreadCpu(child_);
    b_ = ProcCpuSeconds("/proc/self/stat");
    r_ = ProcCpuSeconds("/proc/self/task/" + std::to_string(rx_tid_) + "/stat");
    m_ = ReadMachineCpu();
    t_ = NowNs();
  }
  CpuWindow End() {
    CpuWindow w;
    double child_now = ChildCpu();
    w.outbound = child_now >= o_ ? child_now - o_ : NAN;  // NAN: the child is gone
    auto now = ThreadCpu(child_);
    w.thread_count = now.size();
    for (auto& [tid, v] : now) {
      double before = threads_.count(tid) ? threads_[tid].second : 0;
      w.threads.emplace_back(v.first + "/" + std::to_string(tid), v.second - before);
    }
    std::sort(w.threads.begin(), w.threads.end(),
              [](auto& a, auto& b) { return a.second > b.second; });
    if (w.threads.size() > 6) w.threads.resize(6);
    w.bench = ProcCpuSeconds("/proc/self/stat") - b_;
    w.receiver = ProcCpuSeconds("/proc/self/task/" + std::to_string(rx_tid_) + "/stat") - r_;
    MachineCpu m = ReadMachineCpu();
    w.machine_busy_pct = 100.0 * static_cast<double>(m.busy - m_.busy) /
                         static_cast<double>(std::max<uint64_t>(1, m.total - m_.total));
    w.wall = Secs(NowNs() - t_);
    return w;
  }

 private:
  double ChildCpu() const { return ProcCpuSeconds("/proc/" + std::to_string(child_) + "/stat"); }
  pid_t child_, rx_tid_;
  std::unordered_map<int, std::pair<std::string, double>> threads_;
  double o_ = 0, b_ = 0, r_ = 0;
  MachineCpu m_;
  int64_t t_ = 0;
};

struct ThroughputResult {
  int k = 0;
  int events = 0;
  uint64_t accepted = 0, failed = 0, retried = 0, status503 = 0;
  uint64_t expected = 0, delivered = 0, unique = 0, duplicates = 0, unknown = 0;
  double ingest_rate = 0, ingest_seconds = 0;
  double deliveries_per_s = 0, e2e_seconds = 0, mid_rate = 0, drain_after_last_ack = 0;
  double avg_body = 0;
  bool complete = false, publish_timed_out = false, server_died = false;
  std::vector<std::string> errors;
  CpuWindow cpu;
  long rss_kb = -1, hwm_kb = -1;
  std::string signature_check;
  uint64_t rx_connections = 0, expect100 = 0;
};

struct IsolationResult {
  bool hang = false;
  uint64_t accepted = 0, healthy_expected = 0, healthy_unique = 0, hung = 0;
  double healthy_per_s = 0, seconds = 0;
  bool complete = false, server_died = false;
  std::vector<std::string> errors;
};

struct LatencyResult {
  uint64_t published = 0, accepted = 0, failed = 0, delivered = 0, missing = 0,
           received_before_ack = 0;
  double ack_p[5] = {}, sent_p[5] = {};  // p50 p90 p99 p99.9 max, milliseconds
  double achieved_rate = 0, max_late_ms = 0;
  bool server_died = false;
  std::vector<std::string> errors;
  CpuWindow cpu;
  uint64_t rx_connections = 0, expect100 = 0;
};

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  size_t idx = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  if (idx > 0) idx--;
  return sorted[std::min(idx, sorted.size() - 1)];
}

// Waits until the receiver holds `expected` deliveries, the deadline passes, nothing arrives for
// `stall_s`, or a server dies.
void AwaitDeliveries(Receiver& rx, const std::vector<Server*>& servers, uint64_t expected,
                     int64_t deadline_ns, double stall_s, bool* died) {
  uint64_t last = rx.count();
  int64_t last_change = NowNs();
  while (rx.count() < expected && NowNs() < deadline_ns) {
    if (std::any_of(servers.begin(), servers.end(), [](Server* srv) { return !srv->Alive(); })) {
      *died = true;
      return;
    }
    SleepMs(5);
    uint64_t c = rx.count();
    if (c != last) {
      last = c;
      last_change = NowNs();
    } else if (Secs(NowNs() - last_change) > stall_s) {
      return;
    }
  }
}

void AwaitDeliveries(Receiver& rx, Server& srv, uint64_t expected, int64_t deadline_ns,
                     double stall_s, bool* died) {
  AwaitDeliveries(rx, std::vector<Server*>{&srv}, expected, deadline_ns, stall_s, died);
}

// What the receiver got in one phase, against the events accepted: deliveries to "/s0".."/sK-1"
// of accepted events, unique (eventId, subscription) pairs, duplicates and the rest ("unknown").
struct Tally {
  uint64_t delivered = 0, unique = 0, duplicates = 0, unknown = 0;
  double avg_body = 0, avg_head = 0;  // bytes per delivery received
  std::vector<int64_t> times;         // receive times of the deliveries, sorted
};

Tally CountDeliveries(const std::vector<Received>& recs, const PublishLog& log, int k) {
  Tally t;
  std::unordered_set<std::string> accepted_ids;
  accepted_ids.reserve(log.accepted * 2);
  for (auto& id : log.event_id)
    if (!id.empty()) accepted_ids.insert(id);
  std::unordered_set<std::string> seen;
  seen.reserve(recs.size() * 2);
  t.times.reserve(recs.size());
  double body = 0, head = 0;
  for (auto& rec : recs) {
    std::string id(rec.id.data());
    if (rec.path < 0 || rec.path >= k || !accepted_ids.count(id)) {
      t.unknown++;
      continue;
    }
    t.delivered++;
    body += rec.body_len;
    head += rec.head_len;
    t.times.push_back(rec.t_ns);
    if (!seen.insert(id + "/" + std::to_string(rec.path)).second) t.duplicates++;
  }
  t.unique = seen.size();
  if (t.delivered) {
    t.avg_body = body / static_cast<double>(t.delivered);
    t.avg_head = head / static_cast<double>(t.delivered);
  }
  std::sort(t.times.begin(), t.times.end());
  return t;
}

struct ServerReport {
  std::string label;
  double stop_seconds = 0;
  bool was_dead = false;
  std::string exit_text;
  bool clean = false;
  size_t log_lines = 0, log_errors = 0, log_warnings = 0;
  std::vector<std::string> log_samples;
  uint64_t db_bytes = 0;
};

void Inspect(Server& srv, ServerReport* rep) {
  std::string log = srv.ReadLog();
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    rep->log_lines++;
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    bool err = lower.find("error") != std::string::npos ||
               lower.find("[critical]") != std::string::npos ||
               lower.find("fatal") != std::string::npos || lower.find("abort") != std::string::npos;
    bool warn = lower.find("warn") != std::string::npos;
    if (err) rep->log_errors++;
    if (warn) rep->log_warnings++;
    if ((err || warn) && rep->log_samples.size() < 5)
      rep->log_samples.push_back(line.substr(0, 300));
  }
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (srv.db_path().empty()) break;  // PostgreSQL
    auto sz = std::filesystem::file_size(srv.db_path() + suffix, ec);
    if (!ec) rep->db_bytes += sz;
  }
}

std::string MakeTempDir(const std::string& parent, const char* tag) {
  std::string tmpl = parent + "/outbound-bench-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) return "";
  return buf.data();
}

struct Harness {
  Options opt;
  Receiver rx;
  std::vector<ServerReport> servers;
  std::vector<std::string> dirs;
  std::string failure;

  ~Harness() {
    std::error_code ec;
    for (auto& d : dirs) {
      if (!opt.keep_logs) std::filesystem::remove_all(d, ec);
    }
  }

  // Starts a fresh server with K subscriptions; on failure sets `failure`.
  bool Fresh(Server& srv, const char* tag, int k, Fixture* fx) {
    std::string dir = MakeTempDir(opt.tmp, tag);
    if (dir.empty()) {
      failure = "mkdtemp in " + opt.tmp + ": " + std::strerror(errno);
      return false;
    }
    dirs.push_back(dir);
    std::string err;
    if (!srv.Start(opt.bin, dir, &err)) {
      failure = std::string(tag) + ": " + err;
      return false;
    }
    if (!SetUp(srv, rx.port(), k, 100, fx, &err)) {
      failure = std::string(tag) + ": set-up failed: " + err + "\n--- server log tail ---\n" +
                srv.LogTail(30);
      return false;
    }
    return true;
  }

  void Finish(Server& srv, const char* label) {
    ServerReport rep;
    rep.label = label;
    rep.was_dead = !srv.Alive();
    rep.stop_seconds = srv.Stop();
    rep.exit_text = srv.ExitText();
    rep.clean = srv.clean_exit();
    Inspect(srv, &rep);
    servers.push_back(rep);
  }

  bool Throughput(int k, ThroughputResult* out) {
    Server srv;
    Fixture fx;
    std::string tag = "k" + std::to_string(k);
    if (!Fresh(srv, tag.c_str(), k, &fx)) return false;
    ThroughputResult& r = *out;
    r.k = k;
    r.events = opt.events;
    rx.Reset();
    PublishLog log;
    log.Init(opt.events);
    CpuMeter cpu(srv.pid(), rx.tid());
    int64_t t0 = NowNs();
    int64_t deadline = t0 + static_cast<int64_t>(opt.phase_timeout * 1e9);
    Publish(srv, fx, opt.events, opt.concurrency, 0, deadline, &log);
    r.accepted = log.accepted;
    r.failed = log.failed;
    r.retried = log.retried;
    r.status503 = log.status503;
    r.errors = log.errors;
    r.publish_timed_out = log.timed_out;
    r.server_died = log.server_died;
    r.expected = log.accepted * static_cast<uint64_t>(k);
    if (!r.server_died) AwaitDeliveries(rx, srv, r.expected, deadline, 10.0, &r.server_died);
    SleepMs(200);  // late duplicates, if any
    r.cpu = cpu.End();
    if (srv.Alive()) {
      r.rss_kb = ProcStatusKb(srv.pid(), "VmRSS:");
      r.hwm_kb = ProcStatusKb(srv.pid(), "VmHWM:");
    } else {
      r.server_died = true;
    }
    r.rx_connections = rx.connections();
    r.expect100 = rx.expect100();
    Tally tally = CountDeliveries(rx.Take(), log, k);
    r.delivered = tally.delivered;
    r.unique = tally.unique;
    r.duplicates = tally.duplicates;
    r.unknown = tally.unknown;
    r.avg_body = tally.avg_body;
    const std::vector<int64_t>& times = tally.times;
    r.complete = r.unique >= r.expected && r.expected > 0;
    if (!times.empty() && log.t_first_send > 0) {
      r.e2e_seconds = Secs(times.back() - log.t_first_send);
      r.deliveries_per_s = r.e2e_seconds > 0 ? static_cast<double>(r.unique) / r.e2e_seconds : 0;
      size_t a = times.size() / 10, b = times.size() * 9 / 10;
      if (b > a && times[b] > times[a])
        r.mid_rate = static_cast<double>(b - a) / Secs(times[b] - times[a]);
      if (log.t_last_ack > 0) r.drain_after_last_ack = Secs(times.back() - log.t_last_ack);
    }
    if (log.t_last_ack > log.t_first_send) {
      r.ingest_seconds = Secs(log.t_last_ack - log.t_first_send);
      r.ingest_rate = static_cast<double>(log.accepted) / r.ingest_seconds;
    }
    r.signature_check = CheckSample(rx.Sample(), fx.secrets.empty() ? "" : fx.secrets[0]);
    // The sample may come from any subscription: check against every secret.
    if (r.signature_check.rfind("MISMATCH", 0) == 0) {
      for (auto& s : fx.secrets)
        if (CheckSample(rx.Sample(), s) == "ok") r.signature_check = "ok";
    }
    Finish(srv, ("throughput K=" + std::to_string(k)).c_str());
    return true;
  }

  // One isolation run: K = opt.iso_k subscriptions; when `hang`, every tenth never answers.
  bool Isolation(bool hang, IsolationResult* out) {
    Server srv;
    Fixture fx;
    const int k = opt.iso_k;
    if (!Fresh(srv, hang ? "iso-hang" : "iso-calm", k, &fx)) return false;
    IsolationResult& r = *out;
    r.hang = hang;
    auto is_hanging = [](int path) { return path % 10 == 9; };  // the same set in every run
    int healthy = 0;
    for (int i = 0; i < k; ++i) healthy += is_hanging(i) ? 0 : 1;
    rx.Reset();
    rx.SetHangEvery(hang ? 10 : 0);
    PublishLog log;
    log.Init(opt.iso_events);
    int64_t deadline = NowNs() + static_cast<int64_t>(opt.phase_timeout * 1e9);
    Publish(srv, fx, opt.iso_events, opt.concurrency, 0, deadline, &log);
    r.accepted = log.accepted;
    r.errors = log.errors;
    r.server_died = log.server_died;
    r.healthy_expected = log.accepted * static_cast<uint64_t>(healthy);
    uint64_t all = hang ? r.healthy_expected : log.accepted * static_cast<uint64_t>(k);
    if (!r.server_died) AwaitDeliveries(rx, srv, all, deadline, 10.0, &r.server_died);
    r.hung = rx.hung();
    std::unordered_set<std::string> accepted_ids(log.event_id.begin(), log.event_id.end());
    std::unordered_set<std::string> seen;
    int64_t last = 0;
    for (auto& rec : rx.Take()) {
      std::string id(rec.id.data());
      if (rec.path < 0 || rec.path >= k || is_hanging(rec.path) || !accepted_ids.count(id)) {
        continue;
      }
      if (seen.insert(id + "/" + std::to_string(rec.path)).second) last = std::max(last, rec.t_ns);
    }
    r.healthy_unique = seen.size();
    r.complete = r.healthy_unique >= r.healthy_expected && r.healthy_expected > 0;
    if (last > log.t_first_send && log.t_first_send > 0) {
      r.seconds = Secs(last - log.t_first_send);
      r.healthy_per_s = static_cast<double>(r.healthy_unique) / r.seconds;
    }
    rx.SetHangEvery(0);
    Finish(srv, hang ? "isolation, hanging" : "isolation, calm");
    return true;
  }

  bool Latency(LatencyResult* out) {
    Server srv;
    Fixture fx;
    if (!Fresh(srv, "latency", 1, &fx)) return false;
    LatencyResult& r = *out;
    // Warm-up at the same rate (not measured): connections, caches, the first WAL pages.
    int warm = static_cast<int>(opt.rate * opt.warmup_seconds);
    if (warm > 0) {
      PublishLog wl;
      wl.Init(warm);
      rx.Reset();
      Publish(srv, fx, warm, 64, opt.rate, NowNs() + static_cast<int64_t>(opt.phase_timeout * 1e9),
              &wl, 10'000'000);
      bool died = false;
      AwaitDeliveries(rx, srv, wl.accepted, NowNs() + 10'000'000'000LL, 5.0, &died);
    }
    int n = static_cast<int>(opt.rate * opt.latency_seconds);
    rx.Reset();
    PublishLog log;
    log.Init(n);
    CpuMeter cpu(srv.pid(), rx.tid());
    int64_t deadline = NowNs() + static_cast<int64_t>(opt.phase_timeout * 1e9);
    Publish(srv, fx, n, 64, opt.rate, deadline, &log);
    r.published = static_cast<uint64_t>(n);
    r.accepted = log.accepted;
    r.failed = log.failed;
    r.errors = log.errors;
    r.max_late_ms = static_cast<double>(log.max_late_ns) / 1e6;
    r.server_died = log.server_died;
    if (log.t_last_ack > log.t_first_send)
      r.achieved_rate = static_cast<double>(log.accepted) / Secs(log.t_last_ack - log.t_first_send);
    if (!r.server_died)
      AwaitDeliveries(rx, srv, log.accepted, std::min(deadline, NowNs() + int64_t{15'000'000'000}),
                      5.0, &r.server_died);
    r.cpu = cpu.End();
    r.rx_connections = rx.connections();
    r.expect100 = rx.expect100();
    std::vector<Received> recs = rx.Take();
    std::unordered_map<std::string, int64_t> first_recv;
    first_recv.reserve(recs.size() * 2);
    for (auto& rec : recs) {
      if (rec.path != 0) continue;
      auto [it, fresh] = first_recv.emplace(std::string(rec.id.data()), rec.t_ns);
      if (!fresh) it->second = std::min(it->second, rec.t_ns);
    }
    std::vector<double> from_ack, from_sent;
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      if (log.acked[i] == 0 || log.event_id[i].empty()) continue;
      auto it = first_recv.find(log.event_id[i]);
      if (it == first_recv.end()) {
        r.missing++;
        continue;
      }
      r.delivered++;
      int64_t d_ack = it->second - log.acked[i];
      if (d_ack < 0) {
        r.received_before_ack++;
        d_ack = 0;
      }
      from_ack.push_back(static_cast<double>(d_ack) / 1e6);
      from_sent.push_back(static_cast<double>(it->second - log.sent[i]) / 1e6);
    }
    std::sort(from_ack.begin(), from_ack.end());
    std::sort(from_sent.begin(), from_sent.end());
    const double qs[5] = {0.5, 0.9, 0.99, 0.999, 1.0};
    for (int i = 0; i < 5; ++i) {
      r.ack_p[i] = Percentile(from_ack, qs[i]);
      r.sent_p[i] = Percentile(from_sent, qs[i]);
    }
    Finish(srv, "latency K=1");
    return true;
  }
};

std::string Fmt(const char* f, double v) {
  if (std::isnan(v)) return "n/a";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void PrintBaseline(const std::string& when, const BaselineResult& b) {
  std::string label = when + ", " + LoopName(b.loop);
  std::printf(
      "  %-42s %8.0f req/s  (%" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64 " received over %" PRIu64
      " connections, %.2f s, body %zu B; CPU: bench %.2f s of which receiver %.2f s, machine busy "
      "%.0f%%%s)\n",
      label.c_str(), b.rps, b.ok, b.failed, b.received, b.connections, b.seconds, b.body_bytes,
      b.bench_cpu, b.receiver_cpu, b.machine_busy_pct, b.timed_out ? ", TIMED OUT" : "");
}

void PrintCpu(const CpuWindow& c) {
  if (std::isnan(c.outbound)) {
    std::printf(
        "      CPU over %.2f s wall: outbound n/a (process gone), bench %.2f s (receiver %.2f s), "
        "machine busy %.0f%%\n",
        c.wall, c.bench, c.receiver, c.machine_busy_pct);
    return;
  }
  std::printf(
      "      CPU over %.2f s wall: outbound %.2f s (%.0f%% of one core), bench %.2f s (receiver "
      "%.2f s, "
      "publisher %.2f s), machine busy %.0f%% of %ld cores (others: ~%.0f%%)\n",
      c.wall, c.outbound, 100 * c.outbound / std::max(1e-9, c.wall), c.bench, c.receiver,
      c.bench - c.receiver, c.machine_busy_pct, sysconf(_SC_NPROCESSORS_ONLN),
      std::max(0.0, c.machine_busy_pct - 100 * (c.outbound + c.bench) / std::max(1e-9, c.wall) /
                                             static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN))));
  if (!c.threads.empty()) {
    std::printf("      outbound threads (%zu), busiest:", c.thread_count);
    for (auto& [name, sec] : c.threads) std::printf(" %s %.2fs", name.c_str(), sec);
    std::printf("\n");
  }
}

// ------------------------------------------------------------------------------------------
// Scale-out on PostgreSQL (--scaleout).

// Base64 of the 32 bytes "bench-secrets-key-0123456789abcd": every process of one database needs
// the same --secrets-key; a throwaway value is fine for a throwaway database.
constexpr const char* kBenchSecretsKey = "YmVuY2gtc2VjcmV0cy1rZXktMDEyMzQ1Njc4OWFiY2Q=";

// Runs args (args[0] a path) with stdout and stderr appended to `log_path`; waits at most
// `timeout_s`, then kills it. The exit status, or -1.
int RunCommand(const std::vector<std::string>& args, const std::string& log_path,
               double timeout_s) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  int logfd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_t pid = fork();
  if (pid < 0) {
    if (logfd >= 0) close(logfd);
    return -1;
  }
  if (pid == 0) {
    UnblockSignalsInChild();
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    if (logfd >= 0) {
      dup2(logfd, 1);
      dup2(logfd, 2);
    }
    close_range(3, ~0U, 0);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (logfd >= 0) close(logfd);
  int64_t deadline = NowNs() + static_cast<int64_t>(timeout_s * 1e9);
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -1;
    if (NowNs() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    SleepMs(20);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The throwaway cluster, reachable from the paths that end the program early (the watchdog,
// SIGINT/SIGTERM/SIGHUP): whoever stops it first runs `pg-test-cluster.sh stop`, once.
std::string g_cluster_script, g_cluster_dir, g_cluster_log;
std::atomic<bool> g_cluster_up{false};

void StopCluster() {
  if (!g_cluster_up.exchange(false)) return;
  int rc = RunCommand({"/bin/bash", g_cluster_script, "stop", g_cluster_dir}, g_cluster_log, 90);
  if (rc != 0)
    std::fprintf(stderr, "e2e_bench: '%s stop %s' failed (status %d); see %s\n",
                 g_cluster_script.c_str(), g_cluster_dir.c_str(), rc, g_cluster_log.c_str());
}

// Starts the cluster in <parent>/cluster with the script; its URL in *dsn.
bool StartCluster(const std::string& script, const std::string& parent, std::string* dsn,
                  std::string* err) {
  if (access(script.c_str(), R_OK) != 0) {
    *err = "no " + script + " (--pg-script PATH, or --pg-dsn URL for an existing server)";
    return false;
  }
  g_cluster_script = script;
  g_cluster_dir = parent + "/cluster";
  g_cluster_log = parent + "/cluster.log";
  g_cluster_up =
      true;  // from here on, stop it whatever happens (stop also cleans up a failed start)
  int rc = RunCommand({"/bin/bash", script, "start", g_cluster_dir}, g_cluster_log, 180);
  std::ifstream f(g_cluster_dir + "/dsn");
  std::getline(f, *dsn);
  if (rc != 0 || dsn->empty()) {
    std::ifstream l(g_cluster_log);
    std::string log((std::istreambuf_iterator<char>(l)), std::istreambuf_iterator<char>());
    *err = "'" + script + " start' failed (status " + std::to_string(rc) + "):\n" + log;
    StopCluster();
    return false;
  }
  return true;
}

// A libpq connection for the bench's own few statements (create and drop databases).
class PgAdmin {
 public:
  explicit PgAdmin(const std::string& dsn) {
    const char* keys[] = {"dbname", "connect_timeout", nullptr};
    const char* values[] = {dsn.c_str(), "10", nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (ok()) (void)Exec("SET statement_timeout = '60s'", nullptr);
  }
  ~PgAdmin() {
    if (conn_) PQfinish(conn_);
  }
  PgAdmin(const PgAdmin&) = delete;
  PgAdmin& operator=(const PgAdmin&) = delete;

  bool ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const { return conn_ ? PQerrorMessage(conn_) : "out of memory"; }

  // One statement; the first column of the first row in *value when asked.
  bool Exec(const std::string& sql, std::string* err, std::string* value = nullptr) {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    bool good = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!good && err) *err = sql + ": " + error();
    if (good && value && PQntuples(r) > 0) *value = PQgetvalue(r, 0, 0);
    PQclear(r);
    return good;
  }

 private:
  PGconn* conn_ = nullptr;
};

// The same postgres:// URL naming another database ("" when it is not a URL).
std::string DsnWithDatabase(const std::string& dsn, const std::string& db) {
  size_t scheme = dsn.find("://");
  if (scheme == std::string::npos ||
      (dsn.rfind("postgres://", 0) != 0 && dsn.rfind("postgresql://", 0) != 0))
    return "";
  size_t p = dsn.find_first_of("/?", scheme + 3);
  if (p == std::string::npos) return dsn + "/" + db;
  if (dsn[p] == '?') return dsn.substr(0, p) + "/" + db + dsn.substr(p);
  size_t q = dsn.find('?', p);
  return dsn.substr(0, p + 1) + db + (q == std::string::npos ? "" : dsn.substr(q));
}

// The postmaster's pid when the server runs on this machine (the parent of our backend), or -1.
pid_t PostmasterPid(PgAdmin& admin, std::string* why) {
  std::string v, err;
  if (!admin.Exec("SELECT pg_backend_pid()", &err, &v)) {
    *why = err;
    return -1;
  }
  pid_t backend = std::atoi(v.c_str());
  ProcStat b = ReadProcStat(backend);
  if (!b.ok || ProcComm(backend) != "postgres") {
    *why = "backend " + v + " is not a local process: the server is on another machine";
    return -1;
  }
  std::string comm = ProcComm(b.ppid);
  if (comm != "postgres" && comm != "postmaster") {
    *why = "the parent of backend " + v + " is '" + comm + "', not a postmaster";
    return -1;
  }
  return b.ppid;
}

// Two counters of GET /metrics (lines "NAME VALUE"): round trips and stale-lease writes; NAN
// when the process does not answer within 5 s (a wedged process must not hold the bench up).
struct StoreCounters {
  double round_trips = NAN, stale = NAN;
};
StoreCounters ScrapeStoreCounters(const std::string& base) {
  StoreCounters c;
  Api api(base);
  Resp r = api.Call("GET", "/metrics", kOperatorToken, nullptr, 5000);
  if (r.status != 200) return c;
  std::string text = "\n" + r.body;
  auto value = [&](const std::string& name) {
    std::string key = "\n" + name + " ";
    size_t k = text.find(key);
    return k == std::string::npos ? NAN : std::strtod(text.c_str() + k + key.size(), nullptr);
  };
  c.round_trips = value("outbound_store_round_trips_total");
  c.stale = value("outbound_stale_lease_writes_total");
  return c;
}

struct ScaleScenario {
  std::string label;
  bool pg = false;
  std::vector<std::string> roles;  // one per process: all, api, worker
};

struct ScaleProc {
  std::string role;
  double cpu = NAN;                                     // CPU seconds over the load window
  double round_trips = NAN, stale = NAN;                // counter deltas over the load window
  std::vector<std::pair<std::string, double>> threads;  // CPU seconds by thread name, busiest first
};

struct ScaleResult {
  std::string label;
  bool pg = false;
  int k = 0, events = 0;
  uint64_t accepted = 0, failed = 0, retried = 0, status503 = 0;
  uint64_t expected = 0, unique = 0, duplicates = 0, unknown = 0;
  double deliveries_per_s = 0, e2e_seconds = 0, ingest_rate = 0, drain_after_last_ack = 0;
  double mid_rate = 0;
  // the load window: first publish sent -> all deliveries in (or given up) + 200 ms
  double wall = 0, outbound_cpu = NAN, pg_cpu = NAN, bench_cpu = 0, receiver_cpu = 0;
  double machine_busy_pct = 0;
  double round_trips = NAN, stale = NAN;  // summed over the processes
  // 2 s before the load, nothing published: the background (claim and config polls, leases)
  double idle_seconds = 0, idle_round_trips = NAN, idle_pg_cpu = NAN, idle_outbound_cpu = NAN;
  double avg_body = 0, avg_head = 0;
  uint64_t loopback_bytes = 0;
  bool complete = false, server_died = false, publish_timed_out = false;
  std::vector<std::string> errors;
  std::vector<ScaleProc> procs;
  std::string signature_check;

  double PerDelivery(double v) const { return unique > 0 ? v / static_cast<double>(unique) : NAN; }
  double PerEvent(double v) const { return accepted > 0 ? v / static_cast<double>(accepted) : NAN; }
  // Round trips per event without the background rate measured while idle.
  double LoadRoundTripsPerEvent() const {
    if (std::isnan(round_trips) || std::isnan(idle_round_trips) || idle_seconds <= 0) return NAN;
    return PerEvent(std::max(0.0, round_trips - idle_round_trips / idle_seconds * wall));
  }
};

// CPU seconds by thread name (the pool's threads share a name), from `before` to now.
std::vector<std::pair<std::string, double>> ThreadCpuByName(
    pid_t pid, const std::unordered_map<int, std::pair<std::string, double>>& before) {
  std::map<std::string, double> by_name;
  for (auto& [tid, v] : ThreadCpu(pid)) {
    auto it = before.find(tid);
    by_name[v.first] += v.second - (it == before.end() ? 0 : it->second.second);
  }
  std::vector<std::pair<std::string, double>> out(by_name.begin(), by_name.end());
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.second > b.second; });
  if (out.size() > 4) out.resize(4);
  return out;
}

// One scale-out scenario: fresh store (a new database on the server, or a new SQLite file), the
// processes of `sc`, K subscriptions, an idle window, then N events published to the processes
// that take the API (all, api) and every delivery awaited. False (h.failure set) only when the
// harness cannot do its job.
bool RunScaleScenario(Harness& h, const ScaleScenario& sc, int k, const std::string& admin_dsn,
                      pid_t postmaster, int index, ScaleResult* out) {
  const Options& opt = h.opt;
  ScaleResult& r = *out;
  r.label = sc.label;
  r.pg = sc.pg;
  r.k = k;
  r.events = opt.events;
  std::string dir = MakeTempDir(opt.tmp, "scale");
  if (dir.empty()) {
    h.failure = "mkdtemp in " + opt.tmp + ": " + std::strerror(errno);
    return false;
  }
  h.dirs.push_back(dir);
  std::string db_name, dsn, err;
  if (sc.pg) {
    db_name = "outbound_bench_" + std::to_string(getpid()) + "_" + std::to_string(index);
    dsn = DsnWithDatabase(admin_dsn, db_name);
    PgAdmin admin(admin_dsn);
    if (dsn.empty() || !admin.ok() || !admin.Exec("CREATE DATABASE " + db_name, &err)) {
      h.failure = sc.label + ": cannot create database " + db_name + " on the server: " +
                  (dsn.empty() ? "--pg-dsn is not a postgres:// URL" : err + admin.error());
      return false;
    }
  }
  auto drop_database = [&] {
    if (!sc.pg) return;
    PgAdmin admin(admin_dsn);
    std::string e;
    if (!admin.ok() || !admin.Exec("DROP DATABASE IF EXISTS " + db_name + " WITH (FORCE)", &e))
      std::fprintf(stderr, "e2e_bench: could not drop database %s: %s%s\n", db_name.c_str(),
                   e.c_str(), admin.ok() ? "" : admin.error().c_str());
  };
  std::vector<std::unique_ptr<Server>> servers;
  std::vector<Server*> all, api;
  for (size_t i = 0; i < sc.roles.size(); ++i) {
    ServerSpec spec;
    spec.name = sc.roles[i] + std::to_string(i + 1);
    spec.role = sc.roles[i];
    if (sc.pg) {
      spec.db = dsn;
      spec.secrets_key = kBenchSecretsKey;
    }
    servers.push_back(std::make_unique<Server>());
    // One after the other: the first migrates the new database (the others would wait for its
    // advisory lock anyway).
    if (!servers.back()->Start(opt.bin, dir, spec, &err)) {
      h.failure = sc.label + ": " + spec.name + ": " + err;
      servers.clear();
      drop_database();
      return false;
    }
    all.push_back(servers.back().get());
    if (spec.role != "worker") api.push_back(servers.back().get());
  }
  Fixture fx;
  if (api.empty() || !SetUp(*api[0], h.rx.port(), k, 100, &fx, &err)) {
    h.failure = sc.label + ": set-up failed: " + err + "\n--- server log tail ---\n" +
                (api.empty() ? std::string("(no API process)") : api[0]->LogTail(30));
    servers.clear();
    drop_database();
    return false;
  }
  // Another process's caches (fan-out lists, subscriptions) follow a change within 2 s.
  if (all.size() > 1) SleepMs(2500);

  auto round_trips = [&](std::vector<double>* per, std::vector<double>* stale) {
    double sum = 0;
    for (Server* s : all) {
      StoreCounters c = sc.pg ? ScrapeStoreCounters(s->base()) : StoreCounters{};
      per->push_back(c.round_trips);
      stale->push_back(c.stale);
      sum += c.round_trips;
    }
    return sum;
  };
  auto outbound_cpu = [&](std::vector<double>* per) {
    double sum = 0;
    for (Server* s : all) {
      double v = ProcCpuSeconds("/proc/" + std::to_string(s->pid()) + "/stat");
      if (per) per->push_back(v);
      sum += v;
    }
    return sum;
  };
  auto pg_cpu = [&] { return sc.pg && postmaster > 0 ? TreeCpuSeconds(postmaster) : NAN; };

  // Idle: what the processes and the server cost with nothing to do.
  {
    std::vector<double> a, b;
    double rt0 = round_trips(&a, &b), pg0 = pg_cpu(), ob0 = outbound_cpu(nullptr);
    int64_t t0 = NowNs();
    SleepMs(2000);
    a.clear();
    b.clear();
    double rt1 = round_trips(&a, &b), pg1 = pg_cpu(), ob1 = outbound_cpu(nullptr);
    r.idle_seconds = Secs(NowNs() - t0);
    r.idle_round_trips = rt1 - rt0;
    r.idle_pg_cpu = pg1 - pg0;
    r.idle_outbound_cpu = ob1 - ob0;
  }

  // The load.
  h.rx.Reset();
  PublishLog log;
  log.Init(opt.events);
  std::vector<double> rt_before, stale_before, cpu_before;
  std::vector<std::unordered_map<int, std::pair<std::string, double>>> threads_before;
  for (Server* s : all) threads_before.push_back(ThreadCpu(s->pid()));
  round_trips(&rt_before, &stale_before);
  outbound_cpu(&cpu_before);
  double pg_before = pg_cpu();
  double bench0 = ProcCpuSeconds("/proc/self/stat");
  double rx0 = ProcCpuSeconds("/proc/self/task/" + std::to_string(h.rx.tid()) + "/stat");
  MachineCpu m0 = ReadMachineCpu();
  uint64_t lo0 = LoopbackBytes();
  int64_t t0 = NowNs();
  int64_t deadline = t0 + static_cast<int64_t>(opt.phase_timeout * 1e9);
  Publish(api, fx, opt.events, opt.concurrency, 0, deadline, &log);
  r.accepted = log.accepted;
  r.failed = log.failed;
  r.retried = log.retried;
  r.status503 = log.status503;
  r.errors = log.errors;
  r.publish_timed_out = log.timed_out;
  r.server_died = log.server_died;
  r.expected = log.accepted * static_cast<uint64_t>(k);
  if (!r.server_died) AwaitDeliveries(h.rx, all, r.expected, deadline, 10.0, &r.server_died);
  SleepMs(200);  // late duplicates, if any
  std::vector<double> cpu_after, rt_after, stale_after;
  r.outbound_cpu = outbound_cpu(&cpu_after);
  double pg_after = pg_cpu();
  r.bench_cpu = ProcCpuSeconds("/proc/self/stat") - bench0;
  r.receiver_cpu = ProcCpuSeconds("/proc/self/task/" + std::to_string(h.rx.tid()) + "/stat") - rx0;
  MachineCpu m1 = ReadMachineCpu();
  r.loopback_bytes = LoopbackBytes() - lo0;
  r.wall = Secs(NowNs() - t0);
  r.machine_busy_pct = 100.0 * static_cast<double>(m1.busy - m0.busy) /
                       static_cast<double>(std::max<uint64_t>(1, m1.total - m0.total));
  r.pg_cpu = pg_after - pg_before;
  r.outbound_cpu -= std::accumulate(cpu_before.begin(), cpu_before.end(), 0.0);
  for (size_t i = 0; i < all.size(); ++i) {
    ScaleProc p;
    p.role = sc.roles[i];
    if (all[i]->Alive()) {
      p.cpu = cpu_after[i] - cpu_before[i];
      p.threads = ThreadCpuByName(all[i]->pid(), threads_before[i]);
    } else {
      r.server_died = true;
    }
    r.procs.push_back(p);
  }
  round_trips(&rt_after, &stale_after);
  if (sc.pg) {
    r.round_trips = 0;
    r.stale = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      r.procs[i].round_trips = rt_after[i] - rt_before[i];
      r.procs[i].stale = stale_after[i] - stale_before[i];
      r.round_trips += r.procs[i].round_trips;  // NAN when a scrape failed
      r.stale += r.procs[i].stale;
    }
  }
  if (r.server_died) r.outbound_cpu = NAN;  // a dead process's CPU is unknown

  Tally tally = CountDeliveries(h.rx.Take(), log, k);
  r.unique = tally.unique;
  r.duplicates = tally.duplicates;
  r.unknown = tally.unknown;
  r.avg_body = tally.avg_body;
  r.avg_head = tally.avg_head;
  r.complete = !r.server_died && log.accepted == static_cast<uint64_t>(opt.events) &&
               r.unique >= r.expected && r.expected > 0;
  const std::vector<int64_t>& times = tally.times;
  if (!times.empty() && log.t_first_send > 0) {
    r.e2e_seconds = Secs(times.back() - log.t_first_send);
    r.deliveries_per_s = r.e2e_seconds > 0 ? static_cast<double>(r.unique) / r.e2e_seconds : 0;
    size_t a = times.size() / 10, b = times.size() * 9 / 10;
    if (b > a && times[b] > times[a])
      r.mid_rate = static_cast<double>(b - a) / Secs(times[b] - times[a]);
    if (log.t_last_ack > 0) r.drain_after_last_ack = Secs(times.back() - log.t_last_ack);
  }
  if (log.t_last_ack > log.t_first_send)
    r.ingest_rate = static_cast<double>(log.accepted) / Secs(log.t_last_ack - log.t_first_send);
  r.signature_check = "no sample";
  for (auto& s : fx.secrets) {
    r.signature_check = CheckSample(h.rx.Sample(), s);
    if (r.signature_check == "ok") break;
  }
  for (size_t i = 0; i < servers.size(); ++i)
    h.Finish(*servers[i],
             (sc.label + ", K=" + std::to_string(k) + ": " + sc.roles[i] + std::to_string(i + 1))
                 .c_str());
  servers.clear();
  drop_database();
  return true;
}

std::string Us(double seconds_per_item) {
  return std::isnan(seconds_per_item) ? "n/a" : Fmt("%.0f", seconds_per_item * 1e6);
}

void PrintScaleResult(const ScaleResult& r) {
  std::printf("  %s, K=%d: accepted %" PRIu64 "/%d (failed %" PRIu64 ", retried %" PRIu64
              ", 503s %" PRIu64 "); deliveries %" PRIu64 " unique of %" PRIu64 " expected, %" PRIu64
              " duplicates, %" PRIu64 " unknown%s\n",
              r.label.c_str(), r.k, r.accepted, r.events, r.failed, r.retried, r.status503,
              r.unique, r.expected, r.duplicates, r.unknown, r.complete ? "" : "; NOT COMPLETE");
  std::printf(
      "      first publish -> last delivery %.2f s; ingest %.0f events/s; last 202 -> last "
      "delivery %.2f s; middle 80%% of deliveries at %.0f/s\n",
      r.e2e_seconds, r.ingest_rate, r.drain_after_last_ack, r.mid_rate);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  double others =
      std::max(0.0, r.machine_busy_pct - 100 *
                                             ((std::isnan(r.outbound_cpu) ? 0 : r.outbound_cpu) +
                                              (std::isnan(r.pg_cpu) ? 0 : r.pg_cpu) + r.bench_cpu) /
                                             std::max(1e-9, r.wall) / static_cast<double>(cores));
  std::printf(
      "      CPU over %.2f s: outbound %s s, PostgreSQL %s s, bench %.2f s (receiver %.2f s = %s "
      "us/delivery); machine busy %.0f%% of %ld cores (others ~%.0f%%)\n",
      r.wall, Fmt("%.2f", r.outbound_cpu).c_str(), r.pg ? Fmt("%.2f", r.pg_cpu).c_str() : "-",
      r.bench_cpu, r.receiver_cpu, Us(r.PerDelivery(r.receiver_cpu)).c_str(), r.machine_busy_pct,
      cores, others);
  for (size_t i = 0; i < r.procs.size(); ++i) {
    const ScaleProc& p = r.procs[i];
    std::printf("      %-7s CPU %s s (%s%% of a core)", (p.role + std::to_string(i + 1)).c_str(),
                Fmt("%.2f", p.cpu).c_str(),
                Fmt("%.0f", 100 * p.cpu / std::max(1e-9, r.wall)).c_str());
    if (r.pg)
      std::printf(", round trips %s, stale-lease writes %s", Fmt("%.0f", p.round_trips).c_str(),
                  Fmt("%.0f", p.stale).c_str());
    std::printf("; threads:");
    for (auto& [name, sec] : p.threads) std::printf(" %s %.2fs", name.c_str(), sec);
    std::printf("\n");
  }
  if (r.pg)
    std::printf(
        "      idle %.1f s before the load: %s round trips/s, PostgreSQL %s%% of a core, outbound "
        "%s%% of a core\n",
        r.idle_seconds, Fmt("%.0f", r.idle_round_trips / std::max(1e-9, r.idle_seconds)).c_str(),
        Fmt("%.1f", 100 * r.idle_pg_cpu / std::max(1e-9, r.idle_seconds)).c_str(),
        Fmt("%.1f", 100 * r.idle_outbound_cpu / std::max(1e-9, r.idle_seconds)).c_str());
  std::printf(
      "      webhook request %.0f B (head %.0f + body %.0f); loopback %.0f B per delivery "
      "(machine-wide: publish, webhook, database); signature of a sampled webhook: %s%s%s\n",
      r.avg_head + r.avg_body, r.avg_head, r.avg_body,
      r.unique ? static_cast<double>(r.loopback_bytes) / static_cast<double>(r.unique) : 0.0,
      r.signature_check.c_str(), r.server_died ? "; SERVER DIED" : "",
      r.publish_timed_out ? "; PUBLISH TIMED OUT" : "");
  std::vector<std::pair<std::string, int>> errors;  // the samples, identical ones counted
  for (auto& e : r.errors) {
    auto it = std::find_if(errors.begin(), errors.end(), [&](auto& x) { return x.first == e; });
    if (it == errors.end())
      errors.emplace_back(e, 1);
    else
      it->second++;
  }
  for (auto& [e, n] : errors)
    std::printf("      error sample%s: %s\n", n > 1 ? Fmt(" (x%.0f)", n).c_str() : "", e.c_str());
}

}  // namespace

int RunIsolation(Harness& h) {
  const Options& opt = h.opt;
  if (access(opt.bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "e2e_bench: %s is not an executable (--bin PATH or OUTBOUND_BIN)\n",
                 opt.bin.c_str());
    return 1;
  }
  std::vector<IsolationResult> runs;
  for (bool hang : {false, true, false}) {
    std::printf("running: isolation, %s, K=%d, %d events...\n", hang ? "hanging" : "calm",
                opt.iso_k, opt.iso_events);
    std::fflush(stdout);
    IsolationResult r;
    if (!h.Isolation(hang, &r)) {
      std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
      return 1;
    }
    runs.push_back(r);
  }
  std::printf("\n================ Outbound isolation benchmark ================\n");
  std::printf(
      "K=%d subscriptions on one receiver; in the hanging run every tenth (s9, s19, ...) "
      "is read and never answered; %d events fanned out to all K\n",
      opt.iso_k, opt.iso_events);
  std::printf("%-22s %16s %22s %10s %8s\n", "run", "healthy deliv./s", "healthy unique/expected",
              "hung reqs", "seconds");
  for (auto& r : runs) {
    std::printf("%-22s %16.0f %11" PRIu64 "/%-10" PRIu64 " %10" PRIu64 " %8.2f%s%s\n",
                r.hang ? "hanging" : "calm", r.healthy_per_s, r.healthy_unique, r.healthy_expected,
                r.hung, r.seconds, r.complete ? "" : "   INCOMPLETE",
                r.server_died ? "   SERVER DIED" : "");
    for (auto& e : r.errors) std::printf("      error sample: %s\n", e.c_str());
  }
  double calm = (runs[0].healthy_per_s + runs[2].healthy_per_s) / 2;
  double ratio = calm > 0 ? runs[1].healthy_per_s / calm : 0;
  std::printf(
      "healthy throughput, hanging / calm (mean of the two calm runs): %.3f   goal >= 0.9: "
      "%s\n",
      ratio, ratio >= 0.9 && runs[1].complete ? "met" : "NOT MET");
  for (auto& s : h.servers) {
    std::string stop = s.was_dead           ? std::string("had already died")
                       : s.stop_seconds < 0 ? std::string("SIGTERM ignored for 15 s, SIGKILLed")
                                            : Fmt("SIGTERM -> exit %.2f s", s.stop_seconds);
    std::printf("  server %-20s %s (%s%s)\n", s.label.c_str(), stop.c_str(), s.exit_text.c_str(),
                s.clean ? ", clean" : ", NOT CLEAN");
  }
  return 0;
}

int RunScaleout(Harness& h, double idle_busy_pct) {
  const Options& opt = h.opt;
  if (access(opt.bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "e2e_bench: %s is not an executable (--bin PATH or OUTBOUND_BIN)\n",
                 opt.bin.c_str());
    return 1;
  }
  // The server: an existing one (--pg-dsn), or a throwaway cluster stopped whatever happens.
  struct ClusterStopper {
    ~ClusterStopper() { StopCluster(); }
  } stopper;
  std::string admin_dsn = opt.pg_dsn, err, where = "the server of --pg-dsn";
  if (admin_dsn.empty()) {
    std::string parent = MakeTempDir(opt.tmp, "pg");
    if (parent.empty()) {
      std::fprintf(stderr, "e2e_bench: mkdtemp in %s: %s\n", opt.tmp.c_str(), std::strerror(errno));
      return 1;
    }
    h.dirs.push_back(parent);
    std::printf("starting a throwaway PostgreSQL cluster (%s start %s/cluster)...\n",
                opt.pg_script.c_str(), parent.c_str());
    std::fflush(stdout);
    if (!StartCluster(opt.pg_script, parent, &admin_dsn, &err)) {
      std::fprintf(stderr, "e2e_bench: %s\n", err.c_str());
      return 1;
    }
    where = "a throwaway cluster of scripts/pg-test-cluster.sh";
  }
  pid_t postmaster = -1;
  std::string why, version = "?", fsync = "?", sync_commit = "?";
  {
    PgAdmin admin(admin_dsn);
    if (!admin.ok()) {
      std::fprintf(stderr, "e2e_bench: cannot connect to PostgreSQL: %s\n", admin.error().c_str());
      return 1;
    }
    postmaster = PostmasterPid(admin, &why);
    admin.Exec("SHOW server_version", nullptr, &version);
    admin.Exec("SHOW fsync", nullptr, &fsync);
    admin.Exec("SHOW synchronous_commit", nullptr, &sync_commit);
  }
  std::printf("PostgreSQL %s: %s; fsync %s, synchronous_commit %s; server CPU from /proc: %s\n",
              version.c_str(), where.c_str(), fsync.c_str(), sync_commit.c_str(),
              postmaster > 0
                  ? ("postmaster " + std::to_string(postmaster) + " and its children").c_str()
                  : ("n/a (" + why + ")").c_str());
  std::fflush(stdout);

  std::vector<BaselineResult> bases;
  auto baseline = [&](const char* when) {
    for (CurlLoop loop : {CurlLoop::kPerform, CurlLoop::kSocket}) {
      bases.push_back(
          RunBaseline(h.rx, opt.baseline, opt.base_concurrency, opt.phase_timeout, loop));
      PrintBaseline(when, bases.back());
      std::fflush(stdout);
    }
  };
  baseline("before");
  if (bases[0].ok == 0 || bases[1].ok == 0) {
    std::fprintf(stderr, "e2e_bench: the baseline sender delivered nothing: harness failure\n");
    return 1;
  }

  const std::vector<ScaleScenario> scenarios = {
      {"SQLite, 1 process", false, {"all"}},
      {"PostgreSQL, 1 process", true, {"all"}},
      {"PostgreSQL, 3 x all", true, {"all", "all", "all"}},
      {"PostgreSQL, 1 api + 2 worker", true, {"api", "worker", "worker"}},
  };
  std::vector<ScaleResult> results;
  int index = 0;
  for (int k : opt.scaleout_k) {
    for (const ScaleScenario& sc : scenarios) {
      std::printf("running: %s, K=%d, %d events...\n", sc.label.c_str(), k, opt.events);
      std::fflush(stdout);
      ScaleResult r;
      if (!RunScaleScenario(h, sc, k, admin_dsn, postmaster, ++index, &r)) {
        std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
        return 1;
      }
      results.push_back(r);
    }
  }
  baseline("after");
  const BaselineResult* ref = &bases[0];
  for (auto& b : bases)
    if (b.rps > ref->rps) ref = &b;
  const double base = ref->rps;
  const double base_cpu =
      ref->ok ? (ref->bench_cpu - ref->receiver_cpu) / static_cast<double>(ref->ok) : NAN;

  std::printf("\n================ Outbound scale-out benchmark ================\n");
  std::printf("machine: %ld cores; busy before the run (other processes): %.0f%%\n",
              sysconf(_SC_NPROCESSORS_ONLN), idle_busy_pct);
  std::printf("PostgreSQL %s (%s), fsync %s, synchronous_commit %s\n", version.c_str(),
              where.c_str(), fsync.c_str(), sync_commit.c_str());
  std::printf("baseline: bare libcurl multi sender, %d in flight, keep-alive, signed 1 KB bodies\n",
              opt.base_concurrency);
  const char* whens[] = {"before", "before", "after", "after"};
  for (size_t i = 0; i < bases.size(); ++i) PrintBaseline(whens[i % 4], bases[i]);
  std::printf(
      "  reference (the highest): %.0f req/s; its sender CPU per request (bench minus receiver): "
      "%s us\n",
      base, Us(base_cpu).c_str());
  std::printf(
      "\nper scenario: N=%d events published over %d connections shared out among the processes "
      "that take the API; CPU per delivery = CPU seconds over the load window / unique "
      "deliveries; round trips = delta of outbound_store_round_trips_total summed over the "
      "processes (SQLite: none, the store is in the process); 'load only' subtracts the rate "
      "measured idle just before\n",
      opt.events, opt.concurrency);
  for (int k : opt.scaleout_k) {
    std::printf("\nK=%d subscription%s\n", k, k == 1 ? "" : "s");
    std::printf("  %-30s %9s %8s %10s %10s %10s %9s %9s  %s\n", "scenario", "deliv/s", "vs bare",
                "outbound", "PostgreSQL", "together", "RT/event", "RT/event", "");
    std::printf("  %-30s %9s %8s %10s %10s %10s %9s %9s  %s\n", "", "", "", "us/deliv", "us/deliv",
                "us/deliv", "", "load only", "status");
    std::printf("  %-30s %9.0f %8.3f %10s %10s %10s %9s %9s  %s\n", "bare libcurl sender", base,
                1.0, Us(base_cpu).c_str(), "-", Us(base_cpu).c_str(), "-", "-",
                "reference (sender only)");
    const ScaleResult* pg1 = nullptr;
    for (auto& r : results) {
      if (r.k != k) continue;
      double ob = r.PerDelivery(r.outbound_cpu), pg = r.pg ? r.PerDelivery(r.pg_cpu) : NAN;
      std::printf("  %-30s %9.0f %8.3f %10s %10s %10s %9s %9s  %s\n", r.label.c_str(),
                  r.deliveries_per_s, base > 0 ? r.deliveries_per_s / base : 0.0, Us(ob).c_str(),
                  r.pg ? Us(pg).c_str() : "-", Us(r.pg ? ob + pg : ob).c_str(),
                  r.pg ? Fmt("%.1f", r.PerEvent(r.round_trips)).c_str() : "-",
                  r.pg ? Fmt("%.1f", r.LoadRoundTripsPerEvent()).c_str() : "-",
                  r.complete ? "complete" : "NOT COMPLETE");
      if (r.pg && r.procs.size() == 1) pg1 = &r;
    }
    for (auto& r : results) {
      if (r.k != k || !r.pg || r.procs.size() < 2 || !pg1) continue;
      std::printf(
          "  %s / PostgreSQL, 1 process: deliveries/s %.2f x, outbound CPU per delivery "
          "%s x%s\n",
          r.label.c_str(),
          pg1->deliveries_per_s > 0 ? r.deliveries_per_s / pg1->deliveries_per_s : 0.0,
          Fmt("%.2f", r.PerDelivery(r.outbound_cpu) / pg1->PerDelivery(pg1->outbound_cpu)).c_str(),
          r.complete && pg1->complete ? "" : " (from NOT COMPLETE data)");
    }
    std::printf("  if CPU were the only limit (1 / CPU per delivery): deliveries/s per core of\n");
    for (auto& r : results) {
      if (r.k != k) continue;
      double ob = r.PerDelivery(r.outbound_cpu), pg = r.pg ? r.PerDelivery(r.pg_cpu) : NAN;
      std::printf("    %-30s Outbound %8s   PostgreSQL %8s%s\n", r.label.c_str(),
                  Fmt("%.0f", 1.0 / ob).c_str(), r.pg ? Fmt("%.0f", 1.0 / pg).c_str() : "-",
                  r.complete ? "" : "   (NOT COMPLETE)");
    }
  }
  std::printf("\n");
  for (auto& r : results) PrintScaleResult(r);
  std::printf("\nservers:\n");
  for (auto& s : h.servers) {
    std::string stop = s.was_dead           ? std::string("had already died")
                       : s.stop_seconds < 0 ? std::string("SIGTERM ignored for 15 s, SIGKILLed")
                                            : Fmt("SIGTERM -> exit %.2f s", s.stop_seconds);
    std::printf("  %-46s %s (%s%s); log %zu lines, %zu error-ish, %zu warning-ish\n",
                s.label.c_str(), stop.c_str(), s.exit_text.c_str(),
                s.clean ? ", clean" : ", NOT CLEAN", s.log_lines, s.log_errors, s.log_warnings);
    for (auto& l : s.log_samples) std::printf("      log: %s\n", l.c_str());
  }
  bool all_complete =
      std::all_of(results.begin(), results.end(), [](const ScaleResult& r) { return r.complete; });
  std::printf("%s\n", all_complete ? "every scenario complete"
                                   : "NOT COMPLETE: some deliveries are missing (see above)");
  if (opt.keep_logs) {
    for (auto& d : h.dirs) std::printf("kept: %s\n", d.c_str());
  }
  return 0;
}

int main(int argc, char** argv) {
  Options opt = ParseOptions(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  // The stop signals go to one thread, which stops the PostgreSQL cluster (if the bench started
  // one: it would outlive us) and exits; blocked before any other thread exists.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::thread([stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "e2e_bench: signal %d: stopping\n", sig);
    StopCluster();
    std::fflush(stdout);
    _exit(128 + sig);
  }).detach();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  // Watchdog: whatever happens, the program ends (the child dies with us: PR_SET_PDEATHSIG).
  std::thread([limit = opt.total_timeout] {
    std::this_thread::sleep_for(std::chrono::duration<double>(limit));
    std::fprintf(stderr, "e2e_bench: watchdog: still running after %.0f s, giving up\n", limit);
    StopCluster();
    std::fflush(stdout);
    _exit(3);
  }).detach();

  Harness h;
  h.opt = opt;
  double idle_busy_pct = 0;
  std::string err;
  if (!h.rx.Start(&err)) {
    std::fprintf(stderr, "e2e_bench: receiver: %s\n", err.c_str());
    return 1;
  }
  std::printf(
      "e2e_bench: receiver on 127.0.0.1:%d; %ld cores; events N=%d, baseline %d requests, publish "
      "concurrency %d, latency %d events/s for %.1f s\n",
      h.rx.port(), sysconf(_SC_NPROCESSORS_ONLN), opt.events, opt.baseline, opt.concurrency,
      opt.rate, opt.latency_seconds);
  std::fflush(stdout);

  {
    MachineCpu m0 = ReadMachineCpu();
    SleepMs(1000);
    MachineCpu m1 = ReadMachineCpu();
    idle_busy_pct = 100.0 * static_cast<double>(m1.busy - m0.busy) /
                    static_cast<double>(std::max<uint64_t>(1, m1.total - m0.total));
    std::printf("machine busy before the run (1 s sample, other processes): %.0f%%\n",
                idle_busy_pct);
  }
  if (opt.isolation) return RunIsolation(h);
  if (opt.scaleout) return RunScaleout(h, idle_busy_pct);
  std::vector<std::pair<std::string, BaselineResult>> bases;
  auto baseline = [&](const char* when) {
    for (CurlLoop loop : {CurlLoop::kPerform, CurlLoop::kSocket}) {
      bases.emplace_back(
          when, RunBaseline(h.rx, opt.baseline, opt.base_concurrency, opt.phase_timeout, loop));
      PrintBaseline(bases.back().first, bases.back().second);
      std::fflush(stdout);
    }
  };
  baseline("before");
  if (bases[0].second.ok == 0 || bases[1].second.ok == 0) {
    std::fprintf(stderr, "e2e_bench: the baseline sender delivered nothing: harness failure\n");
    return 1;
  }
  if (opt.only_baseline) return 0;

  if (access(opt.bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "e2e_bench: %s is not an executable (--bin PATH or OUTBOUND_BIN)\n",
                 opt.bin.c_str());
    return 1;
  }

  std::vector<ThroughputResult> tputs;
  for (int k : {1, 10}) {
    ThroughputResult r;
    std::printf("running: outbound throughput, K=%d, %d events...\n", k, opt.events);
    std::fflush(stdout);
    if (!h.Throughput(k, &r)) {
      std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
      return 1;
    }
    tputs.push_back(r);
  }
  LatencyResult lat;
  std::printf("running: outbound latency, %d events/s for %.1f s (after %.1f s warm-up)...\n",
              opt.rate, opt.latency_seconds, opt.warmup_seconds);
  std::fflush(stdout);
  if (!h.Latency(&lat)) {
    std::fprintf(stderr, "e2e_bench: %s\n", h.failure.c_str());
    return 1;
  }
  baseline("after");
  double base = 0;
  for (auto& [when, b] : bases) base = std::max(base, b.rps);

  std::printf("\n================ Outbound end-to-end benchmark ================\n");
  std::printf("machine: %ld cores; busy before the run (other processes): %.0f%%\n",
              sysconf(_SC_NPROCESSORS_ONLN), idle_busy_pct);
  std::printf("baseline: bare libcurl multi sender, %d in flight, keep-alive, signed 1 KB bodies\n",
              opt.base_concurrency);
  for (auto& [when, b] : bases) PrintBaseline(when, b);
  std::printf("  reference used for ratios (the highest): %.0f req/s\n\n", base);

  std::printf("%-28s %12s %12s %10s %12s\n", "outbound throughput", "deliveries/s", "vs baseline",
              "goal>=0.5", "ingest ev/s");
  for (auto& t : tputs) {
    double ratio = base > 0 ? t.deliveries_per_s / base : 0;
    char label[64];
    std::snprintf(label, sizeof label, "K=%d (%d events)", t.k, t.events);
    std::printf("%-28s %12.0f %12.3f %10s %12.0f%s%s\n", label, t.deliveries_per_s, ratio,
                ratio >= 0.5 ? "met" : "NOT MET", t.ingest_rate, t.complete ? "" : "   INCOMPLETE",
                t.server_died ? "   SERVER DIED" : "");
  }
  std::printf("\n");
  for (auto& t : tputs) {
    std::printf("  K=%d: accepted %" PRIu64 "/%d (failed %" PRIu64 ", retried %" PRIu64
                ", 503s %" PRIu64 "); deliveries %" PRIu64 " unique of %" PRIu64
                " expected, %" PRIu64 " duplicates, %" PRIu64 " unknown; avg body %.0f B\n",
                t.k, t.accepted, t.events, t.failed, t.retried, t.status503, t.unique, t.expected,
                t.duplicates, t.unknown, t.avg_body);
    std::printf(
        "      publish %.2f s (ingest %.0f events/s); first publish -> last delivery %.2f s; last "
        "202 -> last "
        "delivery %.2f s; middle 80%% of deliveries at %.0f/s\n",
        t.ingest_seconds, t.ingest_rate, t.e2e_seconds, t.drain_after_last_ack, t.mid_rate);
    PrintCpu(t.cpu);
    std::printf("      outbound RSS %ld KB (peak %ld KB); new connections to the receiver %" PRIu64
                ", Expect: 100-continue %" PRIu64 "; signature of a sampled webhook: %s%s%s\n",
                t.rss_kb, t.hwm_kb, t.rx_connections, t.expect100, t.signature_check.c_str(),
                t.server_died ? "; SERVER DIED" : "",
                t.publish_timed_out ? "; PUBLISH TIMED OUT" : "");
    for (auto& e : t.errors) std::printf("      error sample: %s\n", e.c_str());
  }

  std::printf("\nlatency at %d events/s, K=1, %.1f s (%" PRIu64 " published, %" PRIu64
              " accepted, %" PRIu64 " delivered, %" PRIu64 " missing, %" PRIu64 " failed):\n",
              opt.rate, opt.latency_seconds, lat.published, lat.accepted, lat.delivered,
              lat.missing, lat.failed);
  std::printf("  %-34s %8s %8s %8s %8s %8s\n", "milliseconds", "p50", "p90", "p99", "p99.9", "max");
  auto row = [](const char* label, const double* p) {
    std::printf("  %-34s %8s %8s %8s %8s %8s\n", label, Fmt("%.3f", p[0]).c_str(),
                Fmt("%.3f", p[1]).c_str(), Fmt("%.3f", p[2]).c_str(), Fmt("%.3f", p[3]).c_str(),
                Fmt("%.3f", p[4]).c_str());
  };
  row("publish acknowledged -> received", lat.ack_p);
  row("publish sent -> received", lat.sent_p);
  std::printf(
      "  goal (ack -> received): p50 < 2 ms %s, p99 < 5 ms %s; received before the 202: %" PRIu64
      "; achieved rate %.0f/s, worst send lateness %.2f ms\n",
      lat.ack_p[0] < 2.0 ? "met" : "NOT MET", lat.ack_p[2] < 5.0 ? "met" : "NOT MET",
      lat.received_before_ack, lat.achieved_rate, lat.max_late_ms);
  PrintCpu(lat.cpu);
  std::printf("      new connections to the receiver %" PRIu64 ", Expect: 100-continue %" PRIu64
              "%s\n",
              lat.rx_connections, lat.expect100, lat.server_died ? "; SERVER DIED" : "");
  for (auto& e : lat.errors) std::printf("  error sample: %s\n", e.c_str());

  std::printf("\nservers:\n");
  for (auto& s : h.servers) {
    std::string stop = s.was_dead           ? std::string("had already died")
                       : s.stop_seconds < 0 ? std::string("SIGTERM ignored for 15 s, SIGKILLed")
                                            : Fmt("SIGTERM -> exit %.2f s", s.stop_seconds);
    std::printf("  %-18s %s (%s%s); log %zu lines, %zu error-ish, %zu warning-ish; db %.1f MB\n",
                s.label.c_str(), stop.c_str(), s.exit_text.c_str(),
                s.clean ? ", clean" : ", NOT CLEAN", s.log_lines, s.log_errors, s.log_warnings,
                static_cast<double>(s.db_bytes) / 1e6);
    for (auto& l : s.log_samples) std::printf("      log: %s\n", l.c_str());
  }
  std::printf("ingest goal (>= 20,000 events/s): %s (best %.0f events/s)\n",
              std::max(tputs[0].ingest_rate, tputs[1].ingest_rate) >= 20000 ? "met" : "NOT MET",
              std::max(tputs[0].ingest_rate, tputs[1].ingest_rate));
  if (opt.keep_logs) {
    for (auto& d : h.dirs) std::printf("kept: %s\n", d.c_str());
  }
  return 0;
}
