#include "common.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace bench {

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

std::unordered_map<int, double> ThreadWait(pid_t pid) {
  std::unordered_map<int, double> out;
  std::error_code ec;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::ifstream f(it->path().string() + "/schedstat");
    std::uint64_t on_cpu = 0;
    std::uint64_t waited = 0;
    if (f >> on_cpu >> waited) {
      out[std::atoi(it->path().filename().c_str())] = static_cast<double>(waited) / 1e9;
    }
  }
  return out;
}

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
  m.steal = v[7];
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

std::string Fmt(const char* f, double v) {
  if (std::isnan(v)) return "n/a";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  size_t idx = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  if (idx > 0) idx--;
  return sorted[std::min(idx, sorted.size() - 1)];
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
  if (!std::isnan(c.outbound_wait)) {
    // Runnable but not running: on two shared cores every hand-over between threads (and
    // processes) can wait here, which caps a pipeline below what its CPU alone allows.
    std::printf(
        "      waited for a core while runnable (schedstat): outbound %.2f s, bench %.2f s;",
        c.outbound_wait, c.bench_wait);
    for (std::size_t i = 0; i < c.threads.size() && i < c.thread_waits.size(); ++i) {
      std::printf(" %s %.2fs", c.threads[i].first.c_str(), c.thread_waits[i]);
    }
    std::printf("\n");
  }
}

// ------------------------------------------------------------------------------------------
// Scale-out on PostgreSQL (--scaleout).

}  // namespace bench
