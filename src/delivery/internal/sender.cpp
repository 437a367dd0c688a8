// libcurl's multi interface behind internal::Sender: a pool of easy handles (kept-alive
// connections), response callbacks that never throw, the connect-time private-address check.
#include "delivery/internal/sender.h"

#include <curl/curl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <string_view>
#include <utility>

#include "delivery/internal/http1_sender.h"
#include "delivery/internal/http_util.h"

namespace outbound::delivery::internal {
namespace {

std::once_flag g_curl_init;
CURLcode g_curl_init_result = CURLE_OK;

// One request in flight (or an idle pooled easy handle). Address-stable: curl holds pointers
// into it (error buffer, body, private pointer).
struct Transfer {
  CURL* easy = nullptr;
  // The request's header lines and the list curl reads them from (CURLOPT_HTTPHEADER): nodes of
  // our own pointing into the lines, instead of curl_slist_append's copy of each line (two
  // allocations a line, about 2 % of the dispatcher's CPU per delivery; issue 8). curl only
  // reads the list, until the transfer is removed; both stay unchanged until then.
  std::vector<std::string> header_lines;
  std::vector<curl_slist> header_nodes;
  bool active = false;
  Attempt attempt;
  std::string body;
  // Response, filled by the callbacks.
  std::string response;
  std::size_t received = 0;
  bool read_limit_hit = false;
  bool blocked_address = false;
  std::string retry_after;  // raw header value of the last response
  // Constant after construction.
  std::size_t store_limit = 0;
  std::size_t read_limit = 0;
  bool allow_private = false;
  char errbuf[CURL_ERROR_SIZE] = {};

  void ResetResponse() {
    response.clear();
    received = 0;
    read_limit_hit = false;
    blocked_address = false;
    retry_after.clear();
    errbuf[0] = '\0';
  }
};

// curl callbacks: noexcept, no allocation failures escape.
size_t OnBody(char* data, size_t size, size_t nmemb, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  t->received += n;
  // One byte past the store limit: a body longer than the limit stays longer than it, so that
  // TruncateUtf8 cuts it again on a character boundary (a body cut at exactly the limit could
  // end inside a character, and would be stored so).
  const std::size_t keep = t->store_limit + 1;
  if (t->response.size() < keep) {
    try {
      t->response.append(data, std::min(n, keep - t->response.size()));
    } catch (...) {
      return 0;
    }
  }
  if (t->received > t->read_limit) {
    // Enough: the status line has decided already. Aborting costs the connection, which is why
    // the limit is well above what is stored.
    t->read_limit_hit = true;
    return 0;
  }
  return n;
}

size_t OnHeader(char* data, size_t size, size_t nitems, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nitems;
  std::string_view line(data, n);
  if (line.size() >= 5 && line.substr(0, 5) == "HTTP/") {
    t->retry_after.clear();  // a new response (after a 1xx) starts over
    return n;
  }
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (std::size_t i = 0; i < kName.size() && match; ++i) {
      match = std::tolower(static_cast<unsigned char>(line[i])) == kName[i];
    }
    if (match) {
      try {
        t->retry_after.assign(line.substr(kName.size()));
      } catch (...) {
        return 0;
      }
    }
  }
  return n;
}

curl_socket_t OnOpenSocket(void* user, curlsocktype purpose, curl_sockaddr* address) noexcept {
  auto* t = static_cast<Transfer*>(user);
  if (purpose == CURLSOCKTYPE_IPCXN && !t->allow_private && IsPrivateAddress(&address->addr)) {
    t->blocked_address = true;
    return CURL_SOCKET_BAD;
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

bool IsTlsError(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return true;
    default:
      return false;
  }
}

// The attempt's error text for a transfer that got no status line. Never includes secrets: curl's
// messages name the host and port at most.
std::string TransportError(CURLcode code, const Transfer& t) {
  const std::string detail = t.errbuf[0] != '\0' ? t.errbuf : curl_easy_strerror(code);
  if (t.blocked_address) return "private_address";
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
      return "dns_error: " + detail;
    case CURLE_COULDNT_CONNECT:
      return "connect_error: " + detail;
    case CURLE_UNSUPPORTED_PROTOCOL:
      return "unsupported_protocol";
    case CURLE_URL_MALFORMAT:
      return "invalid_url";
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
      return "connection_error: " + detail;
    default:
      break;
  }
  if (IsTlsError(code)) return "tls_error: " + detail;
  return "request_error: " + detail;
}

class CurlSender final : public Sender {
 public:
  CurlSender(SenderOptions options, CURLM* multi) : options_(std::move(options)), multi_(multi) {
    for (const auto& entry : options_.debug_resolve) {
      if (curl_slist* n = curl_slist_append(resolve_, entry.c_str())) resolve_ = n;
    }
  }

  ~CurlSender() override {
    for (auto& t : transfers_) {
      if (t->active) curl_multi_remove_handle(multi_, t->easy);
      curl_easy_cleanup(t->easy);
    }
    curl_multi_cleanup(multi_);
    curl_slist_free_all(resolve_);
  }

  std::optional<std::string> Start(Request request, Attempt& attempt) override {
    Transfer* t = AcquireTransfer();
    if (t == nullptr) return "internal_error: no curl handle";
    t->header_lines = std::move(request.header_lines);
    t->header_nodes.resize(t->header_lines.size());
    for (std::size_t i = 0; i < t->header_lines.size(); ++i) {
      t->header_nodes[i].data = t->header_lines[i].data();
      t->header_nodes[i].next = i + 1 < t->header_nodes.size() ? &t->header_nodes[i + 1] : nullptr;
    }
    t->body = std::move(request.body);

    CURL* e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER,
                     t->header_nodes.empty() ? nullptr : t->header_nodes.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.data());
    t->ResetResponse();
    t->active = true;
    if (CURLMcode rc = curl_multi_add_handle(multi_, e); rc != CURLM_OK) {
      ReturnTransfer(t);
      return std::string("internal_error: ") + curl_multi_strerror(rc);
    }
    t->attempt = std::move(attempt);
    ++in_flight_;
    return std::nullopt;
  }

  std::vector<Response> Perform() override {
    int running = 0;
    curl_multi_perform(multi_, &running);
    std::vector<Response> done;
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* e = msg->easy_handle;
      const CURLcode result = msg->data.result;
      Transfer* t = nullptr;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      curl_multi_remove_handle(multi_, e);
      if (t == nullptr) continue;
      done.push_back(Finish(t, result));
    }
    return done;
  }

  void Poll(int timeout_ms) override {
    curl_waitfd extra{};
    extra.fd = extra_fd_;
    extra.events = CURL_WAIT_POLLIN;
    curl_multi_poll(multi_, extra_fd_ >= 0 ? &extra : nullptr, extra_fd_ >= 0 ? 1 : 0, timeout_ms,
                    nullptr);
  }

  // A descriptor Poll() also waits on (the plain-HTTP sender's epoll set).
  void WatchToo(int fd) { extra_fd_ = fd; }

  void Wakeup() override { curl_multi_wakeup(multi_); }

  std::vector<Attempt> Abandon() override {
    std::vector<Attempt> abandoned;
    for (auto& t : transfers_) {
      if (!t->active) continue;
      curl_multi_remove_handle(multi_, t->easy);
      abandoned.push_back(std::move(t->attempt));
      ReturnTransfer(t.get());
      --in_flight_;
    }
    return abandoned;
  }

  int in_flight() const override { return in_flight_; }

 private:
  Response Finish(Transfer* t, CURLcode result) {
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    Response r;
    // An interim answer (1xx) that was all the endpoint sent before the transfer failed is not
    // the attempt's status: the failure (a timeout, a reset) is.
    if (code >= 200 || (code > 0 && result == CURLE_OK)) {
      r.http_status = static_cast<int>(code);
    } else {
      r.error = TransportError(result, *t);
    }
    r.retry_after = std::move(t->retry_after);
    r.body = std::move(t->response);
    r.attempt = std::move(t->attempt);
    ReturnTransfer(t);
    --in_flight_;
    return r;
  }

  Transfer* AcquireTransfer() {
    if (!free_.empty()) {
      Transfer* t = free_.back();
      free_.pop_back();
      return t;
    }
    auto t = std::make_unique<Transfer>();
    t->easy = curl_easy_init();
    if (t->easy == nullptr) return nullptr;
    t->store_limit = options_.response_store_limit;
    t->read_limit = std::max(options_.response_read_limit, options_.response_store_limit);
    t->allow_private = options_.allow_private_networks;
    CURL* e = t->easy;
    // Options that never change for this handle.
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout_ms));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 15L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    if (!options_.proxy.empty()) {
      // Every delivery through the egress proxy (fixed egress addresses for a fleet). The
      // connection made here is to the proxy, which the operator trusts to enforce where
      // traffic may go; the URL checks at subscription time still apply.
      curl_easy_setopt(e, CURLOPT_PROXY, options_.proxy.c_str());
      // For every host, whatever no_proxy in the environment exempts: a delivery sent direct
      // would pass neither the proxy's egress rules nor the connect-time check below.
      curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    } else {
      // Direct, as docs/CONFIGURATION.md says, whatever the environment holds: "" keeps libcurl
      // from following http_proxy, HTTPS_PROXY or ALL_PROXY, which would carry deliveries
      // through a proxy nobody configured (and past the connect-time check below, which would
      // see the proxy's address). It also spares a getenv per transfer.
      curl_easy_setopt(e, CURLOPT_PROXY, "");
      if (!options_.allow_private_networks) {
        // Checked at connect time too, whatever the name resolved to (DNS rebinding).
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &OnOpenSocket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t.get());
      }
    }
    if (!options_.ca_file.empty()) {
      curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
    }
    if (resolve_ != nullptr) curl_easy_setopt(e, CURLOPT_RESOLVE, resolve_);  // tests only
    transfers_.push_back(std::move(t));
    return transfers_.back().get();
  }

  void ReturnTransfer(Transfer* t) {
    t->active = false;
    t->header_lines.clear();
    t->header_nodes.clear();
    t->body.clear();
    t->body.shrink_to_fit();
    t->ResetResponse();
    if (t->response.capacity() > 2 * options_.response_store_limit) t->response.shrink_to_fit();
    t->attempt = {};
    free_.push_back(t);
  }

  // Constant after construction.
  const SenderOptions options_;
  CURLM* const multi_;
  curl_slist* resolve_ = nullptr;  // options_.debug_resolve (tests only); set in the constructor
  int extra_fd_ = -1;              // WatchToo()

  // State below is owned by the thread that owns the sender.
  std::vector<std::unique_ptr<Transfer>> transfers_;
  std::vector<Transfer*> free_;
  int in_flight_ = 0;
};

// Plain-HTTP deliveries to Http1Sender, the rest (HTTPS; everything through a proxy) to libcurl;
// one Poll() waits on both.
class RoutingSender final : public Sender {
 public:
  RoutingSender(std::unique_ptr<CurlSender> curl, std::unique_ptr<Http1Sender> http1)
      : curl_(std::move(curl)), http1_(std::move(http1)) {
    curl_->WatchToo(http1_->fd());
  }

  std::optional<std::string> Start(Request request, Attempt& attempt) override {
    if (http1_->Handles(request.url)) return http1_->Start(std::move(request), attempt);
    return curl_->Start(std::move(request), attempt);
  }

  std::vector<Response> Perform() override {
    std::vector<Response> done = http1_->Perform();
    if (curl_->in_flight() > 0) {
      std::vector<Response> more = curl_->Perform();
      if (done.empty()) return more;
      for (Response& r : more) done.push_back(std::move(r));
    }
    return done;
  }

  void Poll(int timeout_ms) override {
    const int deadline = http1_->MsToNextDeadline();
    if (deadline >= 0 && (timeout_ms < 0 || deadline < timeout_ms)) timeout_ms = deadline;
    curl_->Poll(timeout_ms);
  }

  void Wakeup() override { curl_->Wakeup(); }

  std::vector<Attempt> Abandon() override {
    std::vector<Attempt> abandoned = curl_->Abandon();
    for (Attempt& a : http1_->Abandon()) abandoned.push_back(std::move(a));
    return abandoned;
  }

  int in_flight() const override { return curl_->in_flight() + http1_->in_flight(); }

 private:
  const std::unique_ptr<CurlSender> curl_;
  const std::unique_ptr<Http1Sender> http1_;
};

}  // namespace

core::Result<std::unique_ptr<Sender>> Sender::Create(SenderOptions options) {
  std::call_once(g_curl_init, [] { g_curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (g_curl_init_result != CURLE_OK) {
    return core::Fail(core::Error::Internal(std::string("libcurl initialisation failed: ") +
                                            curl_easy_strerror(g_curl_init_result)));
  }
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return core::Fail(core::Error::Internal("curl_multi_init failed"));
  // Lanes cap concurrency per subscription; a per-host cap inside curl would only queue
  // transfers where their timeout already runs.
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
                    static_cast<long>(std::max(64, options.max_in_flight * 2)));
  if (!options.proxy.empty()) {
    // Through the egress proxy, every delivery: libcurl speaks to proxies.
    return std::unique_ptr<Sender>(std::make_unique<CurlSender>(std::move(options), multi));
  }
  auto http1 = Http1Sender::Create(options);
  if (!http1) {
    curl_multi_cleanup(multi);
    return core::Fail(http1.error());
  }
  auto curl = std::make_unique<CurlSender>(std::move(options), multi);
  return std::unique_ptr<Sender>(
      std::make_unique<RoutingSender>(std::move(curl), std::move(*http1)));
}

}  // namespace outbound::delivery::internal
