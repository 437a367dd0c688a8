#include "harness.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>

namespace bench {

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

Harness::~Harness() {
  std::error_code ec;
  for (auto& d : dirs) {
    if (!opt.keep_logs) std::filesystem::remove_all(d, ec);
  }
}

bool Harness::Fresh(Server& srv, const char* tag, int k, Fixture* fx) {
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

void Harness::Finish(Server& srv, const char* label) {
  ServerReport rep;
  rep.label = label;
  rep.was_dead = !srv.Alive();
  rep.stop_seconds = srv.Stop();
  rep.exit_text = srv.ExitText();
  rep.clean = srv.clean_exit();
  Inspect(srv, &rep);
  servers.push_back(rep);
}

}  // namespace bench
