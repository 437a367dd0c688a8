// Shared by every part of e2e_bench: clocks, /proc readings (CPU, memory, loopback bytes), the
// CPU meter of a phase and small formatting helpers.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bench {

using std::int64_t;
using std::uint64_t;

inline constexpr const char* kOperatorToken = "bench-operator-token-0123456789abcdef";

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
inline double Secs(int64_t ns) { return static_cast<double>(ns) / 1e9; }
inline void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// ------------------------------------------------------------------------------------------
// CPU accounting from /proc (user+system seconds), to tell who used the two cores.

double ProcCpuSeconds(const std::string& stat_path);

// The fields of /proc/PID/stat the scale-out phase needs: parent, own CPU seconds (utime+stime)
// and the CPU seconds of its waited-for children (cutime+cstime). ok = false: no such process.
struct ProcStat {
  bool ok = false;
  int ppid = 0;
  double self = 0, children = 0;
};
ProcStat ReadProcStat(pid_t pid);
std::string ProcComm(pid_t pid);
// CPU seconds of a process tree of depth one (a PostgreSQL postmaster and its children): the
// parent's own time, the time of its children that have exited (its cutime+cstime: the
// postmaster waits for every child) and the time of the children alive now. NAN: no such process.
double TreeCpuSeconds(pid_t parent);
// Bytes received on the loopback interface so far (machine-wide: every process's traffic).
uint64_t LoopbackBytes();
// Per-thread CPU seconds of a process: tid -> (name, seconds).
std::unordered_map<int, std::pair<std::string, double>> ThreadCpu(pid_t pid);
// Per-thread seconds spent runnable but waiting for a core: tid -> seconds (the second field of
// /proc/PID/task/TID/schedstat). Empty without the file; zeros on a kernel that keeps the file
// but not the figure. Threads that ended during a window are not in the printed totals.
std::unordered_map<int, double> ThreadWait(pid_t pid);

struct MachineCpu {
  uint64_t busy = 0, total = 0;
  uint64_t steal = 0;  // time the hypervisor gave to others (in total and in busy)
};
MachineCpu ReadMachineCpu();
long ProcStatusKb(pid_t pid, const char* key);

// The string value of the first `"key": "..."` in a JSON text (no unescaping; ids need none).
std::string_view JsonStringField(std::string_view text, std::string_view key);

std::string Fmt(const char* f, double v);
double Percentile(const std::vector<double>& sorted, double q);

struct CpuWindow {
  double outbound = 0, bench = 0, receiver = 0, machine_busy_pct = 0, wall = 0;
  std::vector<std::pair<std::string, double>>
      threads;  // outbound's busiest threads: "name/tid", seconds
  size_t thread_count = 0;
  // Seconds that threads were runnable but waited for a core (/proc/.../schedstat; NAN where the
  // kernel keeps no such figure): all of outbound's, each of `threads`' (same order), the bench's.
  double outbound_wait = NAN, bench_wait = NAN;
  std::vector<double> thread_waits;
};
class CpuMeter {
 public:
  CpuMeter(pid_t child, pid_t rx_tid) : child_(child), rx_tid_(rx_tid) { Begin(); }
  void Begin() {
    o_ = ChildCpu();
    threads_ = ThreadCpu(child_);
    waits_ = ThreadWait(child_);
    bench_waits_ = ThreadWait(getpid());
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
    const auto waits = ThreadWait(child_);
    if (!waits.empty()) {
      w.outbound_wait = WaitedSince(waits, waits_);
      for (const auto& [name, sec] : w.threads) {
        const int tid = std::atoi(name.c_str() + name.rfind('/') + 1);
        auto it = waits.find(tid);
        w.thread_waits.push_back(it == waits.end() ? 0.0 : WaitOf(*it, waits_));
      }
      w.bench_wait = WaitedSince(ThreadWait(getpid()), bench_waits_);
    }
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
  // The waits of threads now minus those of the same threads at Begin (a thread that started
  // since counts whole; one that ended is not counted).
  static double WaitOf(const std::pair<const int, double>& now,
                       const std::unordered_map<int, double>& before) {
    auto was = before.find(now.first);
    return was == before.end() ? now.second : now.second - was->second;
  }
  static double WaitedSince(const std::unordered_map<int, double>& now,
                            const std::unordered_map<int, double>& before) {
    double sum = 0;
    for (const auto& entry : now) sum += WaitOf(entry, before);
    return sum;
  }
  std::unordered_map<int, std::pair<std::string, double>> threads_;
  std::unordered_map<int, double> waits_, bench_waits_;
  double o_ = 0, b_ = 0, r_ = 0;
  MachineCpu m_;
  int64_t t_ = 0;
};

void PrintCpu(const CpuWindow& c);

}  // namespace bench
