#include "delivery/dispatcher.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <queue>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/render.h"
#include "core/signing.h"
#include "core/thread_name.h"
#include "core/utf8.h"
#include "delivery/internal/http_util.h"
#include "delivery/internal/operations.h"

namespace outbound::delivery {
namespace {

using core::DeliveryRowId;
using core::SubscriptionId;
using core::UnixMs;
using SteadyClock = std::chrono::steady_clock;

// Hints of due retries kept for an early claim; beyond this the periodic claim covers them.
constexpr std::size_t kMaxDueHints = 10000;
// How long Stop() waits for the store to confirm the last writes before it gives up.
constexpr auto kStopWriteWait = std::chrono::seconds(15);
// Pause before a failed store write (outcomes, releases) is tried again.
constexpr auto kWriteRetryDelay = std::chrono::milliseconds(200);

std::once_flag g_curl_init;
CURLcode g_curl_init_result = CURLE_OK;

// What the dispatcher thread shares with the threads that hand it work (Offer() callers, the
// store's writer thread running Submit callbacks). Held by shared_ptr so that a store callback
// that arrives after Stop() gave up waiting still finds it alive.
struct Inbox {
  enum class Kind {
    kOffered,
    kClaimed,
    kClaimFailed,
    kSettled,
    kOutcomesFailed,
    kReleaseFailed,
    kLeaseLost,  // RenewLease: the lease had expired and the rows were taken back
  };
  struct Item {
    Kind kind = Kind::kOffered;
    std::vector<store::DeliveryJob> jobs;  // kOffered, kClaimed
    std::vector<DeliveryRowId> ids;        // kSettled, kReleaseFailed
    std::vector<store::Outcome> outcomes;  // kOutcomesFailed
    int requested = 0;                     // kClaimed: the claim's limit
    bool claim_after = false;              // kSettled: ordered lanes may have been unblocked
  };

  std::mutex mu;
  std::condition_variable cv;
  // State below is protected by mu.
  std::vector<Item> items;  // in arrival order: a commit's acknowledgement and a later claim's
                            // jobs must be seen in the order the writer committed them
  std::vector<SubscriptionId> invalidated;
  bool wake = false;
  bool stop = false;
  bool closed = false;     // the dispatcher thread is gone; Offer() releases directly
  int pending_writes = 0;  // submitted store tasks whose `done` has not run yet
  CURLM* multi = nullptr;  // for curl_multi_wakeup; null once cleaned up

  // Requires mu.
  void NotifyLocked() {
    if (multi != nullptr) curl_multi_wakeup(multi);
    cv.notify_all();
  }
  void Push(Item item) {
    std::lock_guard lock(mu);
    items.push_back(std::move(item));
    NotifyLocked();
  }
};

// A subscription as the dispatcher needs it, loaded once and cached until invalidated.
struct SubInfo {
  bool usable = false;  // exists and is enabled
  std::string url;
  internal::UrlScheme scheme = internal::UrlScheme::kOther;
  std::optional<std::string> key;  // decoded signing secret; nullopt when it does not decode
  std::optional<std::string> previous_key;
  UnixMs previous_expires_at = 0;
  std::vector<std::string> header_lines;  // "Name: value"
  int max_concurrency = 1;
  bool ordered = false;
  std::optional<double> rate_per_second;
};

struct Lane {
  core::TenantId tenant;
  std::shared_ptr<const SubInfo> info;  // nullptr: (re)load before the next send
  std::deque<store::DeliveryJob> ready;
  int in_flight = 0;
  bool in_ring = false;
  // Token bucket for rateLimitPerSecond (capacity: one second's worth, at least 1).
  double tokens = 0;
  SteadyClock::time_point refilled{};
  bool bucket_started = false;
  bool rate_parked = false;  // waiting in rate_waits_ for a token
};

// One request in flight (or an idle pooled easy handle). Address-stable: curl holds pointers
// into it (error buffer, body, private pointer).
struct Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  bool active = false;
  store::DeliveryJob job;
  std::string delivery_id;
  std::string body;
  UnixMs attempted_at = 0;
  SteadyClock::time_point started;
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
  if (purpose == CURLSOCKTYPE_IPCXN && !t->allow_private &&
      internal::IsPrivateAddress(&address->addr)) {
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

class DispatcherImpl final : public Dispatcher {
 public:
  DispatcherImpl(store::Store& store, const core::Clock& clock, DispatcherOptions options,
                 CURLM* multi)
      : store_(store),
        clock_(clock),
        options_(std::move(options)),
        owner_(store.Owner()),
        multi_(multi),
        inbox_(std::make_shared<Inbox>()),
        rng_(std::random_device{}()) {
    inbox_->multi = multi_;
    for (const auto& entry : options_.debug_resolve) {
      if (curl_slist* n = curl_slist_append(resolve_, entry.c_str())) resolve_ = n;
    }
  }

  ~DispatcherImpl() override {
    Stop();
    {
      std::lock_guard lock(inbox_->mu);
      inbox_->multi = nullptr;
    }
    for (auto& t : transfers_) {
      if (t->active) curl_multi_remove_handle(multi_, t->easy);
      curl_slist_free_all(t->headers);
      curl_easy_cleanup(t->easy);
    }
    curl_multi_cleanup(multi_);
    curl_slist_free_all(resolve_);
  }

  void Start() override {
    std::lock_guard lock(lifecycle_mu_);
    if (started_ || stopped_) return;
    started_ = true;
    thread_ = std::thread([this] {
      core::NameThisThread("ob-dispatch");
      Run();
    });
  }

  void Stop() override {
    std::lock_guard lock(lifecycle_mu_);
    if (stopped_) return;
    stopped_ = true;
    {
      std::lock_guard inbox_lock(inbox_->mu);
      inbox_->stop = true;
      inbox_->NotifyLocked();
    }
    if (thread_.joinable()) thread_.join();
    // Never started, or jobs offered while the thread was finishing: give them back.
    std::vector<DeliveryRowId> orphans;
    {
      std::lock_guard inbox_lock(inbox_->mu);
      inbox_->closed = true;
      for (auto& item : inbox_->items) {
        for (auto& job : item.jobs) orphans.push_back(job.id);
      }
      inbox_->items.clear();
    }
    if (!orphans.empty()) ReleaseDirect(std::move(orphans));
  }

  void Offer(std::vector<store::DeliveryJob> jobs) override {
    if (jobs.empty()) return;
    {
      std::lock_guard lock(inbox_->mu);
      if (!inbox_->closed) {
        inbox_->items.push_back({Inbox::Kind::kOffered, std::move(jobs), {}, {}, 0});
        inbox_->NotifyLocked();
        return;
      }
    }
    std::vector<DeliveryRowId> ids;
    for (auto& job : jobs) ids.push_back(job.id);
    ReleaseDirect(std::move(ids));
  }

  void Wake() override {
    std::lock_guard lock(inbox_->mu);
    inbox_->wake = true;
    inbox_->NotifyLocked();
  }

  void InvalidateSubscription(SubscriptionId id) override {
    std::lock_guard lock(inbox_->mu);
    inbox_->invalidated.push_back(id);
    inbox_->NotifyLocked();
  }

 private:
  // ---- the dispatcher thread ----

  void Run() {
    spdlog::info("dispatcher: started (max_in_flight {}, max_queued {})", options_.max_in_flight,
                 options_.max_queued);
    claim_requested_ = true;
    next_poll_ = SteadyClock::now();
    next_renewal_ = SteadyClock::now();
    next_config_poll_ = SteadyClock::now();
    while (true) {
      int running = 0;
      curl_multi_perform(multi_, &running);
      HandleCompletions();
      if (DrainInbox()) break;
      Maintain();
      MaybeClaim();
      StartTransfers();
      FlushWrites();
      curl_multi_poll(multi_, nullptr, 0, PollTimeoutMs(), nullptr);
    }
    Shutdown();
    spdlog::info("dispatcher: stopped");
  }

  // Takes what other threads handed over. Returns true when Stop() was asked.
  bool DrainInbox() {
    std::vector<Inbox::Item> items;
    std::vector<SubscriptionId> invalidated;
    bool wake = false;
    bool stop = false;
    {
      std::lock_guard lock(inbox_->mu);
      items.swap(inbox_->items);
      invalidated.swap(inbox_->invalidated);
      wake = std::exchange(inbox_->wake, false);
      stop = inbox_->stop;
    }
    for (SubscriptionId id : invalidated) {
      auto it = lanes_.find(id);
      if (it != lanes_.end()) it->second.info = nullptr;
    }
    if (wake) claim_requested_ = true;
    for (auto& item : items) HandleItem(item);
    return stop;
  }

  void HandleItem(Inbox::Item& item) {
    switch (item.kind) {
      case Inbox::Kind::kOffered:
        for (auto& job : item.jobs) Accept(std::move(job), /*offered=*/true);
        break;
      case Inbox::Kind::kClaimed: {
        claim_in_flight_ = false;
        const std::size_t got = item.jobs.size();
        std::size_t accepted = 0;
        for (auto& job : item.jobs) accepted += Accept(std::move(job)) ? 1 : 0;
        if (got >= static_cast<std::size_t>(item.requested) && accepted > 0) {
          claim_requested_ = true;  // probably more due
        } else if (got > 0 && accepted == 0) {
          // Everything claimed went straight back (lanes full): do not spin on it.
          next_poll_ = SteadyClock::now() + std::chrono::seconds(1);
        }
        break;
      }
      case Inbox::Kind::kClaimFailed:
        claim_in_flight_ = false;
        next_poll_ = SteadyClock::now() + std::chrono::seconds(1);
        break;
      case Inbox::Kind::kSettled:
        for (DeliveryRowId id : item.ids) known_.erase(id);
        if (item.claim_after && !stopping_) claim_requested_ = true;
        break;
      case Inbox::Kind::kOutcomesFailed:
        for (auto& o : item.outcomes) outcomes_.push_back(std::move(o));
        write_not_before_ = SteadyClock::now() + kWriteRetryDelay;
        break;
      case Inbox::Kind::kReleaseFailed:
        for (DeliveryRowId id : item.ids) releases_.push_back(id);
        write_not_before_ = SteadyClock::now() + kWriteRetryDelay;
        break;
      case Inbox::Kind::kLeaseLost:
        renewal_in_flight_ = false;
        DropQueued();
        break;
    }
  }

  // ---- leases and other processes' changes ----

  // Renews this process's lease (a third of it at a time) and follows changes that other
  // processes made to subscriptions, clients and keys (CONTRACT §12: in force within 2 s).
  void Maintain() {
    const auto steady_now = SteadyClock::now();
    if (!renewal_in_flight_ && steady_now >= next_renewal_) {
      next_renewal_ =
          steady_now + std::chrono::milliseconds(std::max<UnixMs>(options_.lease_ms / 3, 1));
      renewal_in_flight_ = true;
      auto lost = std::make_shared<bool>(false);
      const core::Clock* clock = &clock_;
      const UnixMs lease_ms = options_.lease_ms;
      std::string owner = owner_;
      std::shared_ptr<Inbox> inbox = inbox_;
      BeginWrite();
      store_.Submit(store::WriteTask{
          [lost, clock, lease_ms, owner](store::Txn& txn) -> core::Status {
            const UnixMs t = clock->Now();
            auto r = txn.RenewLease(owner, t, t + lease_ms);
            if (!r) return core::Fail(r.error());
            *lost = !*r;
            return {};
          },
          [lost, inbox](const core::Status& status) {
            Inbox::Item item;
            item.kind = status && *lost ? Inbox::Kind::kLeaseLost : Inbox::Kind::kSettled;
            if (!status) {
              spdlog::warn("dispatcher: renewing the lease failed: {}", status.error().message);
            }
            FinishWrite(*inbox, std::move(item));
          }});
    }
    if (steady_now >= next_config_poll_) {
      next_config_poll_ = steady_now + std::chrono::milliseconds(options_.config_poll_ms);
      PollConfigChanges();
    }
  }

  void PollConfigChanges() {
    store::ConfigChanges changes;
    auto status = store_.Read([&](store::Txn& txn) -> core::Status {
      auto r = txn.ChangedTenants(config_version_);
      if (!r) return core::Fail(r.error());
      changes = std::move(*r);
      return {};
    });
    if (!status) return;  // the store is away: tried again at the next poll
    if (config_version_ != 0 && !changes.tenants.empty()) {
      std::unordered_set<std::int64_t> tenants;
      for (core::TenantId t : changes.tenants) tenants.insert(t.value);
      for (auto& [id, lane] : lanes_) {
        if (tenants.count(lane.tenant.value) != 0) lane.info = nullptr;
      }
    }
    config_version_ = std::max(config_version_, changes.version);
  }

  // The lease was lost (this process was paused longer than it): the store gave every row it
  // held to others. Queued jobs are dropped, not released; attempts in flight finish, and their
  // outcomes are fenced off by the store.
  void DropQueued() {
    std::size_t dropped = 0;
    for (auto& [id, lane] : lanes_) {
      for (const auto& job : lane.ready) known_.erase(job.id);
      dropped += lane.ready.size();
      held_ -= lane.ready.size();
      lane.ready.clear();
    }
    ring_.clear();
    spdlog::warn("dispatcher: the lease expired and was taken over; dropped {} queued deliveries",
                 dropped);
    claim_requested_ = true;
  }

  // Takes a leased job into memory, or gives its lease back. Returns true when it was queued.
  bool Accept(store::DeliveryJob job, bool offered = false) {
    if (!known_.insert(job.id).second) {
      // Already held (or its outcome is being committed): the copy we have owns the lease.
      return false;
    }
    if (stopping_ || held_ >= options_.max_queued) {
      Release(job.id);
      return false;
    }
    Lane& lane = lanes_[job.subscription];
    lane.tenant = job.tenant;
    if (!EnsureInfo(lane, job.subscription) || !lane.info->usable) {
      Release(job.id);
      return false;
    }
    if (lane.ready.size() >= options_.max_queued_per_subscription) {
      Release(job.id);
      return false;
    }
    if (offered && lane.info->ordered && job.target_id) {
      // Fan-out cannot see whether an earlier event about the target is still open: the claim
      // decides (ClaimDue hands out only the head of each target).
      Release(job.id);
      return false;
    }
    lane.ready.push_back(std::move(job));
    ++held_;
    Ring(lane, lane.ready.back().subscription);
    return true;
  }

  // Loads the subscription when the lane has no (valid) cache entry. False on a store error.
  bool EnsureInfo(Lane& lane, SubscriptionId id) {
    if (lane.info) return true;
    std::optional<store::Subscription> sub;
    auto status = store_.Read([&](store::Txn& txn) -> core::Status {
      auto r = txn.GetSubscription(lane.tenant, id);
      if (!r) return core::Fail(r.error());
      sub = std::move(*r);
      if (!sub) {
        // Perhaps the tenant's (hidden) operations webhook.
        auto ops = txn.GetOperationsWebhook(lane.tenant);
        if (!ops) return core::Fail(ops.error());
        if (*ops && (*ops)->id == id) sub = std::move(*ops);
      }
      return {};
    });
    if (!status) {
      spdlog::warn("dispatcher: cannot load subscription {}: {}", id.value, status.error().message);
      return false;
    }
    auto info = std::make_shared<SubInfo>();
    if (sub && sub->enabled) {
      info->usable = true;
      info->url = sub->url;
      info->scheme = internal::SchemeOf(sub->url);
      if (auto key = core::DecodeSecret(sub->secret)) {
        info->key = std::move(*key);
      } else {
        spdlog::error("dispatcher: subscription {} has a signing secret that does not decode",
                      id.value);
      }
      if (sub->previous_secret && sub->previous_secret_expires_at) {
        if (auto key = core::DecodeSecret(*sub->previous_secret)) {
          info->previous_key = std::move(*key);
          info->previous_expires_at = *sub->previous_secret_expires_at;
        }
      }
      for (const auto& [name, value] : sub->headers) {
        if (internal::IsAllowedStaticHeader(name, value)) {
          info->header_lines.push_back(name + ": " + value);
        } else {
          spdlog::warn("dispatcher: subscription {}: static header \"{}\" is not sent", id.value,
                       internal::IsAllowedStaticHeader(name, "") ? "(invalid value)" : name);
        }
      }
      info->max_concurrency =
          std::clamp(sub->max_concurrency.value_or(options_.default_max_concurrency), 1,
                     std::max(1, options_.max_in_flight));
      info->ordered = sub->ordered;
      if (sub->rate_limit_per_second && *sub->rate_limit_per_second > 0) {
        info->rate_per_second = sub->rate_limit_per_second;
      }
    }
    lane.info = std::move(info);
    return true;
  }

  int Cap(const Lane& lane) const { return lane.info ? lane.info->max_concurrency : 1; }

  void Ring(Lane& lane, SubscriptionId id) {
    if (!lane.in_ring && !lane.rate_parked && !lane.ready.empty() && lane.in_flight < Cap(lane)) {
      lane.in_ring = true;
      ring_.push_back(id);
    }
  }

  void Release(DeliveryRowId id) { releases_.push_back(id); }

  void ReleaseLane(Lane& lane) {
    for (auto& job : lane.ready) Release(job.id);
    held_ -= lane.ready.size();
    lane.ready.clear();
  }

  std::size_t ClaimBatch() const {
    return std::min<std::size_t>(static_cast<std::size_t>(options_.claim_batch),
                                 options_.max_queued);
  }

  // A claim may be submitted now, if one is wanted. Claims come in useful batches rather than a
  // row per freed slot.
  bool CanClaim() const {
    if (claim_in_flight_ || stopping_ || held_ >= options_.max_queued) return false;
    return options_.max_queued - held_ >= std::max<std::size_t>(1, ClaimBatch() / 4);
  }

  void MaybeClaim() {
    if (!CanClaim()) return;
    const std::size_t room = options_.max_queued - held_;
    const std::size_t batch = ClaimBatch();
    const auto steady_now = SteadyClock::now();
    const UnixMs now = clock_.Now();
    const bool hinted = !due_hints_.empty() && due_hints_.top() <= now;
    if (!claim_requested_ && steady_now < next_poll_ && !hinted) return;
    while (!due_hints_.empty() && due_hints_.top() <= now) due_hints_.pop();
    claim_requested_ = false;
    next_poll_ = steady_now + std::chrono::milliseconds(options_.claim_interval_ms);
    claim_in_flight_ = true;

    const int limit = static_cast<int>(std::min(room, batch));
    auto claimed = std::make_shared<std::vector<store::DeliveryJob>>();
    const core::Clock* clock = &clock_;
    const UnixMs lease_ms = options_.lease_ms;
    std::string owner = owner_;
    std::shared_ptr<Inbox> inbox = inbox_;
    BeginWrite();
    store_.Submit(store::WriteTask{
        [claimed, clock, lease_ms, owner, limit](store::Txn& txn) -> core::Status {
          const UnixMs t = clock->Now();
          auto r = txn.ClaimDue(owner, t, t + lease_ms, limit);
          if (!r) return core::Fail(r.error());
          *claimed = std::move(*r);
          return {};
        },
        [claimed, inbox, limit](const core::Status& status) {
          Inbox::Item item;
          if (status) {
            item.kind = Inbox::Kind::kClaimed;
            item.jobs = std::move(*claimed);
            item.requested = limit;
          } else {
            item.kind = Inbox::Kind::kClaimFailed;
            spdlog::warn("dispatcher: claiming due deliveries failed: {}", status.error().message);
          }
          FinishWrite(*inbox, std::move(item));
        }});
  }

  // Takes a token from the lane's bucket, or parks the lane until one is due. Steady time: the
  // limit is about the receiver's experience, not about the wall clock.
  bool TakeToken(Lane& lane, SubscriptionId id) {
    if (!lane.info || !lane.info->rate_per_second) return true;
    const double rate = *lane.info->rate_per_second;
    const double capacity = std::max(1.0, rate);
    const auto now = SteadyClock::now();
    if (!lane.bucket_started) {
      lane.bucket_started = true;
      lane.tokens = capacity;
    } else {
      const double elapsed = std::chrono::duration<double>(now - lane.refilled).count();
      lane.tokens = std::min(capacity, lane.tokens + elapsed * rate);
    }
    lane.refilled = now;
    if (lane.tokens >= 1.0) {
      lane.tokens -= 1.0;
      return true;
    }
    const auto wait = std::chrono::duration_cast<SteadyClock::duration>(
        std::chrono::duration<double>((1.0 - lane.tokens) / rate));
    lane.rate_parked = true;
    rate_waits_.emplace(now + wait, id);
    return false;
  }

  void UnparkRateLimited() {
    const auto now = SteadyClock::now();
    while (!rate_waits_.empty() && rate_waits_.top().first <= now) {
      const SubscriptionId id = rate_waits_.top().second;
      rate_waits_.pop();
      auto it = lanes_.find(id);
      if (it == lanes_.end()) continue;
      it->second.rate_parked = false;
      Ring(it->second, id);
    }
  }

  void StartTransfers() {
    UnparkRateLimited();
    while (in_flight_ < options_.max_in_flight && !ring_.empty()) {
      const SubscriptionId id = ring_.front();
      ring_.pop_front();
      Lane& lane = lanes_[id];
      lane.in_ring = false;
      if (lane.ready.empty()) continue;
      if (!lane.info) {
        if (!EnsureInfo(lane, id)) {
          ReleaseLane(lane);
          continue;
        }
      }
      if (!lane.info->usable) {
        ReleaseLane(lane);  // disabled or deleted meanwhile
        continue;
      }
      if (lane.in_flight >= Cap(lane)) continue;  // back in the ring when one finishes
      if (!TakeToken(lane, id)) continue;         // back in the ring when a token is due
      store::DeliveryJob job = std::move(lane.ready.front());
      lane.ready.pop_front();
      Send(lane, std::move(job));
      Ring(lane, id);
    }
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
    } else if (!options_.allow_private_networks) {
      // Checked at connect time too, whatever the name resolved to (DNS rebinding).
      curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &OnOpenSocket);
      curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t.get());
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
    curl_slist_free_all(t->headers);
    t->headers = nullptr;
    t->body.clear();
    t->body.shrink_to_fit();
    t->ResetResponse();
    if (t->response.capacity() > 2 * options_.response_store_limit) t->response.shrink_to_fit();
    t->job = {};
    free_.push_back(t);
  }

  // Starts one attempt (or records its immediate failure).
  void Send(Lane& lane, store::DeliveryJob job) {
    const SubInfo& info = *lane.info;
    const UnixMs now = clock_.Now();
    std::string delivery_id = "del_" + ids_.Next(now);

    std::optional<std::string> early_error;
    if (info.scheme == internal::UrlScheme::kHttp && !options_.allow_private_networks) {
      early_error = "insecure_url";
    } else if (info.scheme == internal::UrlScheme::kOther) {
      early_error = "invalid_url";
    } else if (!info.key) {
      early_error = "invalid_secret";
    }
    Transfer* t = early_error ? nullptr : AcquireTransfer();
    if (!early_error && t == nullptr) early_error = "internal_error: no curl handle";
    if (early_error) {
      store::AttemptRecord attempt;
      attempt.delivery_id = std::move(delivery_id);
      attempt.attempt = job.attempts + 1;
      attempt.attempted_at = now;
      attempt.error = std::move(early_error);
      --held_;
      Conclude(std::move(job), std::move(attempt), false, std::nullopt);
      return;
    }

    t->job = std::move(job);
    t->delivery_id = std::move(delivery_id);
    t->attempted_at = now;
    const store::DeliveryJob& j = t->job;
    t->body = core::RenderBody(
        {j.event_id, j.event_type, j.tenant.value, j.occurred_at, t->delivery_id}, j.data_json);
    const std::int64_t ts = now / 1000;
    std::string signature = core::Sign(*info.key, j.event_id, ts, t->body);
    if (info.previous_key && info.previous_expires_at > now) {
      signature += ' ';
      signature += core::Sign(*info.previous_key, j.event_id, ts, t->body);
    }

    curl_slist* h = nullptr;
    const auto add = [&h](const std::string& line) {
      if (curl_slist* n = curl_slist_append(h, line.c_str())) h = n;
    };
    add("Content-Type: application/json");
    add("Expect:");
    add("webhook-id: " + j.event_id);
    add("webhook-timestamp: " + std::to_string(ts));
    add("webhook-signature: " + signature);
    add("ordinavo-event-type: " + j.event_type);
    add("ordinavo-delivery-id: " + t->delivery_id);
    add("ordinavo-attempt: " + std::to_string(j.attempts + 1));
    for (const auto& line : info.header_lines) add(line);
    t->headers = h;

    CURL* e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, info.url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.data());
    t->ResetResponse();
    t->started = SteadyClock::now();
    t->active = true;
    if (CURLMcode rc = curl_multi_add_handle(multi_, e); rc != CURLM_OK) {
      store::AttemptRecord attempt;
      attempt.delivery_id = t->delivery_id;
      attempt.attempt = t->job.attempts + 1;
      attempt.attempted_at = now;
      attempt.error = std::string("internal_error: ") + curl_multi_strerror(rc);
      store::DeliveryJob failed = std::move(t->job);
      ReturnTransfer(t);
      --held_;
      Conclude(std::move(failed), std::move(attempt), false, std::nullopt);
      return;
    }
    ++lane.in_flight;
    ++in_flight_;
  }

  void HandleCompletions() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* e = msg->easy_handle;
      const CURLcode result = msg->data.result;
      Transfer* t = nullptr;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      curl_multi_remove_handle(multi_, e);
      if (t == nullptr) continue;
      Complete(t, result);
    }
  }

  void Complete(Transfer* t, CURLcode result) {
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    const UnixMs now = clock_.Now();

    store::AttemptRecord attempt;
    attempt.delivery_id = t->delivery_id;
    attempt.attempt = t->job.attempts + 1;
    attempt.attempted_at = t->attempted_at;
    attempt.duration_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t->started)
            .count();
    // The status line decides, whatever happened to the body afterwards.
    const bool success = code >= 200 && code < 300;
    std::optional<UnixMs> retry_after;
    if (code > 0) {
      attempt.http_status = static_cast<int>(code);
      if (!success) attempt.error = "http_status";
      if ((code == 429 || code == 503) && !t->retry_after.empty()) {
        retry_after = internal::ParseRetryAfter(t->retry_after, now);
      }
    } else {
      attempt.error = TransportError(result, *t);
    }
    if (!t->response.empty()) {
      // A receiver may answer bytes that are not text; the snippet is shown in JSON answers.
      std::string snippet = core::ScrubUtf8(t->response);
      internal::TruncateUtf8(snippet, std::min<std::size_t>(options_.response_store_limit, 4096));
      attempt.response_snippet = std::move(snippet);
    }

    auto it = lanes_.find(t->job.subscription);
    store::DeliveryJob job = std::move(t->job);
    ReturnTransfer(t);
    --in_flight_;
    --held_;
    if (it != lanes_.end()) {
      --it->second.in_flight;
      Ring(it->second, it->first);
    }
    Conclude(std::move(job), std::move(attempt), success, retry_after);
  }

  // Turns one attempt into the delivery's new state and buffers it for the next batch. The job
  // leaves memory; its id stays in known_ until the store confirms, so a claim that raced with
  // the commit cannot hand it out a second time.
  void Conclude(store::DeliveryJob job, store::AttemptRecord attempt, bool success,
                std::optional<UnixMs> retry_after) {
    store::Outcome o;
    o.delivery = job.id;
    o.tenant = job.tenant;
    o.subscription = job.subscription;
    o.event_id = std::move(job.event_id);
    o.event_type = std::move(job.event_type);
    if (success) {
      o.new_status = store::DeliveryStatus::kSucceeded;
    } else {
      // This attempt was number cycle_attempts+1 of its cycle; the schedule is asked about the
      // next one.
      const auto delay =
          options_.retry.DelayBefore(job.cycle_attempts + 2, unit_(rng_), retry_after);
      if (delay) {
        o.new_status = store::DeliveryStatus::kFailed;
        o.next_attempt_at = clock_.Now() + *delay;
        if (due_hints_.size() < kMaxDueHints) due_hints_.push(*o.next_attempt_at);
      } else {
        o.new_status = store::DeliveryStatus::kDead;
      }
    }
    SPDLOG_DEBUG("dispatcher: delivery {} attempt {} -> {} ({})", o.delivery.value, attempt.attempt,
                 store::ToString(o.new_status), attempt.error ? *attempt.error : "ok");
    o.attempt = std::move(attempt);
    outcomes_.push_back(std::move(o));
  }

  void BeginWrite() {
    std::lock_guard lock(inbox_->mu);
    ++inbox_->pending_writes;
  }
  static void FinishWrite(Inbox& inbox, Inbox::Item item) {
    std::lock_guard lock(inbox.mu);
    inbox.items.push_back(std::move(item));
    --inbox.pending_writes;
    inbox.NotifyLocked();
  }

  // One Submit for the outcomes of this loop iteration, one for the released leases.
  void FlushWrites() {
    if (SteadyClock::now() < write_not_before_) return;
    if (!outcomes_.empty()) {
      auto batch = std::make_shared<std::vector<store::Outcome>>(std::move(outcomes_));
      outcomes_.clear();
      bool claim_after = false;
      for (const auto& o : *batch) {
        auto it = lanes_.find(o.subscription);
        if (it != lanes_.end() && it->second.info && it->second.info->ordered) claim_after = true;
      }
      auto effects = std::make_shared<internal::OutcomeEffects>();
      internal::OutcomeEffectOptions effect_options{
          options_.disable_after_ms, options_.disable_min_attempts, owner_, options_.lease_ms};
      std::shared_ptr<core::UlidGenerator> ids = event_ids_;
      const core::Clock* clock = &clock_;
      std::shared_ptr<Inbox> inbox = inbox_;
      BeginWrite();
      store_.Submit(store::WriteTask{
          [batch, effects, effect_options, ids, clock](store::Txn& txn) -> core::Status {
            *effects = {};
            auto stale = txn.RecordOutcomes(effect_options.owner, *batch);
            if (!stale) return core::Fail(stale.error());
            if (*stale > 0) {
              // Rows another process took over while this one was late: its work stands.
              spdlog::warn(
                  "dispatcher: {} outcomes were for deliveries no longer leased to this "
                  "process and were ignored",
                  *stale);
            }
            return internal::ApplyOutcomeEffects(txn, *batch, effect_options, clock->Now(), *ids,
                                                 *effects);
          },
          [batch, effects, inbox, claim_after](const core::Status& status) {
            Inbox::Item item;
            if (status) {
              item.kind = Inbox::Kind::kSettled;
              item.claim_after = claim_after;
              item.ids.reserve(batch->size());
              for (const auto& o : *batch) item.ids.push_back(o.delivery);
              if (!effects->disabled.empty() || !effects->jobs.empty()) {
                std::lock_guard lock(inbox->mu);
                for (SubscriptionId id : effects->disabled) inbox->invalidated.push_back(id);
                if (!effects->jobs.empty()) {
                  Inbox::Item offered;
                  offered.kind = Inbox::Kind::kOffered;
                  offered.jobs = std::move(effects->jobs);
                  inbox->items.push_back(std::move(offered));
                }
              }
            } else {
              spdlog::warn("dispatcher: recording {} outcomes failed (will retry): {}",
                           batch->size(), status.error().message);
              item.kind = Inbox::Kind::kOutcomesFailed;
              item.outcomes = std::move(*batch);
            }
            FinishWrite(*inbox, std::move(item));
          }});
    }
    if (!releases_.empty()) {
      auto ids = std::make_shared<std::vector<DeliveryRowId>>(std::move(releases_));
      releases_.clear();
      std::shared_ptr<Inbox> inbox = inbox_;
      BeginWrite();
      std::string owner = owner_;
      store_.Submit(store::WriteTask{
          [ids, owner](store::Txn& txn) -> core::Status {
            auto stale = txn.ReleaseLeases(owner, *ids);
            if (!stale) return core::Fail(stale.error());
            return {};
          },
          [ids, inbox](const core::Status& status) {
            Inbox::Item item;
            item.kind = status ? Inbox::Kind::kSettled : Inbox::Kind::kReleaseFailed;
            if (!status) {
              spdlog::warn("dispatcher: releasing {} leases failed (will retry): {}", ids->size(),
                           status.error().message);
            }
            item.ids = std::move(*ids);
            FinishWrite(*inbox, std::move(item));
          }});
      // Work was given back to the store: claim it again once there is room.
      if (!stopping_) claim_requested_ = true;
    }
  }

  int PollTimeoutMs() const {
    using std::chrono::milliseconds;
    auto timeout = milliseconds(options_.claim_interval_ms);
    const auto steady_now = SteadyClock::now();
    if (!outcomes_.empty() || !releases_.empty()) {
      timeout = std::min(timeout,
                         std::chrono::duration_cast<milliseconds>(write_not_before_ - steady_now));
    }
    if (!rate_waits_.empty()) {
      timeout = std::min(
          timeout, std::chrono::duration_cast<milliseconds>(rate_waits_.top().first - steady_now) +
                       milliseconds(1));
    }
    if (CanClaim()) {
      timeout =
          std::min(timeout, std::chrono::duration_cast<milliseconds>(next_poll_ - steady_now));
      if (claim_requested_) timeout = milliseconds(0);
      if (!due_hints_.empty()) {
        timeout = std::min(timeout, milliseconds(due_hints_.top() - clock_.Now()));
      }
    }
    return static_cast<int>(std::clamp<std::int64_t>(timeout.count(), 0, 1000));
  }

  void Shutdown() {
    stopping_ = true;
    for (auto& [id, lane] : lanes_) ReleaseLane(lane);
    ring_.clear();

    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(options_.stop_grace_ms);
    while (in_flight_ > 0 && SteadyClock::now() < deadline) {
      int running = 0;
      curl_multi_perform(multi_, &running);
      HandleCompletions();
      DrainInbox();
      FlushWrites();
      if (in_flight_ == 0) break;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now())
              .count();
      curl_multi_poll(multi_, nullptr, 0, static_cast<int>(std::clamp<std::int64_t>(left, 0, 50)),
                      nullptr);
    }
    if (in_flight_ > 0) {
      spdlog::warn("dispatcher: abandoning {} requests in flight; their deliveries stay pending",
                   in_flight_);
    }
    for (auto& t : transfers_) {
      if (!t->active) continue;
      curl_multi_remove_handle(multi_, t->easy);
      Release(t->job.id);
      ReturnTransfer(t.get());
      --in_flight_;
      --held_;
    }

    // Wait for the store to confirm every write, including claims that were under way (their
    // jobs are released as they arrive).
    const auto write_deadline = SteadyClock::now() + kStopWriteWait;
    while (true) {
      write_not_before_ = {};
      FlushWrites();
      std::vector<Inbox::Item> items;
      {
        std::unique_lock lock(inbox_->mu);
        if (inbox_->items.empty() && inbox_->pending_writes == 0) break;
        if (SteadyClock::now() >= write_deadline) {
          spdlog::error("dispatcher: the store did not confirm {} writes at shutdown",
                        inbox_->pending_writes);
          break;
        }
        if (inbox_->items.empty()) {
          inbox_->cv.wait_for(lock, std::chrono::milliseconds(100));
        }
        items.swap(inbox_->items);
      }
      for (auto& item : items) HandleItem(item);
      if (!outcomes_.empty() || !releases_.empty()) {
        std::this_thread::sleep_for(kWriteRetryDelay);  // a failed write is retried, not spun
      }
    }
    // Hand back what is left (subscriptions owned, rows leased by fan-out meanwhile), so that
    // the other processes take over at once rather than after the lease.
    std::string owner = owner_;
    auto released = store_.Write([&owner](store::Txn& txn) { return txn.ReleaseOwner(owner); });
    if (!released) {
      spdlog::warn(
          "dispatcher: handing back the lease failed (others take over after it "
          "expires): {}",
          released.error().message);
    }
  }

  // Releases leases from a thread other than the dispatcher's (after it stopped). Submit, not
  // Write: Offer() may be called from a store `done` callback, which must never wait for a
  // commit. Store::Close() still finishes the queued task.
  void ReleaseDirect(std::vector<DeliveryRowId> ids) {
    auto batch = std::make_shared<std::vector<DeliveryRowId>>(std::move(ids));
    std::string owner = owner_;
    store_.Submit(store::WriteTask{[batch, owner](store::Txn& txn) -> core::Status {
                                     auto stale = txn.ReleaseLeases(owner, *batch);
                                     if (!stale) return core::Fail(stale.error());
                                     return {};
                                   },
                                   [batch](const core::Status& status) {
                                     if (!status) {
                                       spdlog::warn("dispatcher: releasing {} leases failed: {}",
                                                    batch->size(), status.error().message);
                                     }
                                   }});
  }

  // Constant after construction.
  store::Store& store_;
  const core::Clock& clock_;
  const DispatcherOptions options_;
  const std::string owner_;
  CURLM* const multi_;
  const std::shared_ptr<Inbox> inbox_;
  curl_slist* resolve_ = nullptr;  // options_.debug_resolve (tests only); set in the constructor

  std::mutex lifecycle_mu_;
  bool started_ = false;  // guarded by lifecycle_mu_
  bool stopped_ = false;  // guarded by lifecycle_mu_
  std::thread thread_;

  // State below is owned by the dispatcher thread.
  core::UlidGenerator ids_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
  std::unordered_map<SubscriptionId, Lane> lanes_;
  std::deque<SubscriptionId> ring_;          // lanes with ready work and a free slot
  std::unordered_set<DeliveryRowId> known_;  // held, or outcome/release not yet committed
  std::size_t held_ = 0;                     // jobs queued in lanes or in flight
  int in_flight_ = 0;
  std::vector<std::unique_ptr<Transfer>> transfers_;
  std::vector<Transfer*> free_;
  std::vector<store::Outcome> outcomes_;
  std::vector<DeliveryRowId> releases_;
  std::priority_queue<UnixMs, std::vector<UnixMs>, std::greater<>> due_hints_;
  // Rate-limited lanes waiting for a token, earliest first.
  std::priority_queue<std::pair<SteadyClock::time_point, SubscriptionId>,
                      std::vector<std::pair<SteadyClock::time_point, SubscriptionId>>,
                      std::greater<>>
      rate_waits_;
  // Ids of operational events; shared with store tasks that may outlive a Stop() that gave up.
  std::shared_ptr<core::UlidGenerator> event_ids_ = std::make_shared<core::UlidGenerator>();
  bool claim_requested_ = false;
  bool claim_in_flight_ = false;
  bool renewal_in_flight_ = false;
  std::int64_t config_version_ = 0;  // ChangedTenants: the version seen last
  SteadyClock::time_point next_renewal_{};
  SteadyClock::time_point next_config_poll_{};
  bool stopping_ = false;
  SteadyClock::time_point next_poll_{};
  SteadyClock::time_point write_not_before_{};
};

}  // namespace

core::Result<std::unique_ptr<Dispatcher>> Dispatcher::Create(store::Store& store,
                                                             const core::Clock& clock,
                                                             DispatcherOptions options) {
  if (options.max_in_flight < 1 || options.max_queued < 1 || options.claim_batch < 1 ||
      options.default_max_concurrency < 1 || options.max_queued_per_subscription < 1) {
    return core::Fail(core::Error::Invalid("dispatcher", "invalid_dispatcher_options",
                                           "queue sizes and concurrency limits must be positive"));
  }
  if (options.retry.delays.empty()) {
    return core::Fail(core::Error::Invalid("retry_schedule", "invalid_retry_schedule",
                                           "the retry schedule needs at least one attempt"));
  }
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
  return std::unique_ptr<Dispatcher>(
      std::make_unique<DispatcherImpl>(store, clock, std::move(options), multi));
}

}  // namespace outbound::delivery
