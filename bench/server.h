// The outbound child process, blocking API calls, and the set-up of a fresh server (tenant,
// client, directory records, targets, K subscriptions to the receiver).
#pragma once

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common.h"
#include "curl_pool.h"

namespace bench {

// A child started by the bench gets the default signal mask (main blocks the stop signals for
// its signal thread, and a blocked mask survives execve).
void UnblockSignalsInChild();

// How one `outbound serve` is started.
struct ServerSpec {
  std::string name = "outbound";         // the log is <dir>/<name>.log
  std::string db;                        // empty: sqlite:<dir>/outbound.db
  std::string role = "all";              // all, api, worker
  std::string secrets_key;               // required with PostgreSQL
  std::vector<std::string> extra;        // more flags (e.g. --request-timeout 2s)
  std::string retry_schedule = "0s,1s";  // --retry-schedule
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
                                     spec.retry_schedule,
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
    args.insert(args.end(), spec.extra.begin(), spec.extra.end());
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

// The string (or number, as text) of `key` in a JSON object text; "" when absent or not JSON.
std::string Field(const std::string& body, const char* key);

struct Fixture {
  std::string tenant_key, client_key;
  std::vector<int64_t> targets;
  std::vector<std::string> secrets;
  std::vector<int> paths;  // secrets[i] signs the subscription to "/s" + paths[i]
  std::vector<std::string> subscription_ids;  // of the subscription to "/s" + paths[i]
};

// 0, 1, ..., k - 1: the paths ("/sN") of K subscriptions.
std::vector<int> FirstPaths(int k);
// Pauses (or resumes) every subscription of `fx` (PATCH paused, CONTRACT §13): a paused
// subscription's deliveries are stored and held, nothing is sent. A 503 (the store is behind) is
// tried again after a pause, at most 20 times. "" when all answered 200, else what went wrong.
std::string SetPaused(Server& srv, const Fixture& fx, bool paused);
// Creates tenant, client, directory records, targets and K subscriptions to the receiver.
bool SetUp(Server& srv, int rx_port, int k, int n_targets, Fixture* fx, std::string* err);
// The same with one subscription to "/sN" for each N of `paths`, to the event types
// `event_types[i]` (absent or empty: "appointment.*").
bool SetUp(Server& srv, int rx_port, const std::vector<int>& paths, int n_targets, Fixture* fx,
           std::string* err, const std::vector<std::string>& event_types = {});
// Checks one received webhook's Standard Webhooks signature against the subscription's secret.
std::string CheckSample(const std::string& raw, const std::string& secret);

// The Standard Webhooks signatures of the receiver's sampled webhooks (Receiver::Samples), each
// checked with CheckSample against the secret of the subscription its path names.
struct SignatureTally {
  uint64_t verified = 0, failed = 0;
  std::string first_failure;
  bool ok() const { return verified > 0 && failed == 0; }
  // "verified 40 of 40 sampled webhooks", "FAILED 2 of 40 ... (first: ...)", "no sample".
  std::string Text() const;
};
SignatureTally CheckSamples(const std::vector<std::string>& samples, const Fixture& fx);

}  // namespace bench
