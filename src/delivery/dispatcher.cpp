// The dispatcher's loop: takes what other threads handed over, renews the lease, claims due
// deliveries, hands jobs to the lanes and the sender, turns answers into outcomes and records
// them in batches. The parts live in internal/: lanes, sender, request, outcomes,
// subscription_cache, store_writes, inbox.
#include "delivery/dispatcher.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <utility>

#include "core/random.h"
#include "core/thread_name.h"
#include "delivery/internal/claims.h"
#include "delivery/internal/inbox.h"
#include "delivery/internal/lanes.h"
#include "delivery/internal/outcomes.h"
#include "delivery/internal/request.h"
#include "delivery/internal/sender.h"
#include "delivery/internal/store_writes.h"
#include "delivery/internal/subscription_cache.h"

namespace outbound::delivery {
namespace {

using core::DeliveryRowId;
using core::SubscriptionId;
using core::UnixMs;
using internal::Inbox;
using std::chrono::milliseconds;
using TimePoint = core::MonotonicClock::TimePoint;

// How long Stop() waits for the store to confirm the last writes before it gives up.
constexpr auto kStopWriteWait = std::chrono::seconds(15);
// Pause before a failed store write (outcomes, releases) is tried again.
constexpr auto kWriteRetryDelay = std::chrono::milliseconds(200);
// Rows claimed or offered for a subscription whose lane is full (max_queued_per_subscription)
// are given back due this much later: its lane has that much work at least, and the claims in
// between take other subscriptions' rows (issue 8's isolation: without it every claim took the
// hung lane's oldest rows back and gave them back again, in a loop on the writer). Sooner for an
// answering endpoint, later for a hung one (below).
constexpr core::UnixMs kFullLaneDeferMs = 5000;
// ... unless its endpoint is answering (a success within the last second, no failure since): it
// is working a backlog off, as during a drain or after a burst of fan-out, and its rows come
// back due this much later. With 5 s for every full lane, the last 20,000-40,000 rows of a
// recovered million came back over the 5 s after the last recover call, at a fifth to a half of
// the drain's rate; with 5 s for an answering lane that was only long while the dispatcher was
// down to the short lanes' reserve, a K=10 burst's last deliveries waited 5 s with the machine
// idle (issue 8, docs/PERFORMANCE.md). A failing endpoint fails (5 s for it), and a hung one
// answers nothing (below).
constexpr core::UnixMs kBusyLaneDeferMs = 1000;
// ... and a hung endpoint's (its last attempts timed out, none answered since: Lanes::HungFor)
// about as much later as it has hung: the largest of 5 s, 10 s, 20 s, ... up to this that the
// hang has reached (a few distinct delays, so a flush makes a few deferral writes). While an
// endpoint hangs its deferred rows come due again, are claimed and deferred again: at a fixed 5 s
// that cycle cost a claim and a deferral for every waiting row every 5 s, work that grew with
// the hung endpoint's backlog, and on SQLite (whose claim takes the oldest due rows first) the
// cycling rows came before other subscriptions' rows given back or due for a retry, which then
// waited the longer, the larger the backlog (`e2e_bench --isolation --isolation-window 40
// --phase-timeout 150`, two runs: 38,970 and 33,396 healthy deliveries had not arrived when the
// bench gave up after 10 s without one; none missing with this rule; docs/PERFORMANCE.md). Now
// a row comes back about once per doubling of the hang and then once per kMaxHungLaneDeferMs:
// the cycle's work is about the hung endpoint's own rate for its first minutes, and its
// backlog / 5 min after; it still grows with the backlog past that, sixty times slower than at
// 5 s. The price: after a long hang the rows that waited go out up to this much after the
// endpoint answers again (new deliveries at once while its lane has room), as a retry
// schedule's later steps would.
constexpr core::UnixMs kMaxHungLaneDeferMs = 300'000;
constexpr milliseconds kAnsweringWindow(1000);

// Claims fill at most this much of max_queued; the rest is kept for what fan-out hands over.
// Without it a recovered backlog (claimed oldest due first) filled the dispatcher, every new
// delivery of another subscription was given back to the store on arrival and then waited
// behind the whole backlog for its claim (issue 8: a healthy client's p99 of seconds during a
// drain). Claimed and offered jobs together still never exceed max_queued.
std::size_t ClaimRoom(std::size_t max_queued) {
  return std::max<std::size_t>(1, max_queued - max_queued / 10);
}

// The rest of max_queued, beyond ClaimRoom, is kept for short lanes: a job for a lane that
// queues this many already is given back due later (DispatcherImpl::DeferralFor) once the
// dispatcher holds ClaimRoom. Without it the failing endpoints
// of one client, whose offered deliveries pile up in their lanes (a failing lane sends 2 at once),
// filled max_queued whenever the writer took publishes in faster than their attempts were settled,
// and a healthy subscription's new delivery was given back on arrival to wait for a claim behind
// them (issue 8: the backlog fill's healthy p99 of seconds). A healthy endpoint's lane stays short:
// its jobs are sent as they come.
std::size_t LongLane(std::size_t max_queued) {
  return std::max<std::size_t>(1, (max_queued - ClaimRoom(max_queued)) / 8);
}

class DispatcherImpl final : public Dispatcher {
 public:
  // `steady` and `random` may be null: the real ones are used.
  DispatcherImpl(store::Store& store, const core::Clock& clock, const core::MonotonicClock* steady,
                 core::Random* random, DispatcherOptions options,
                 std::unique_ptr<internal::Sender> sender)
      : own_steady_(steady != nullptr ? nullptr : std::make_unique<core::SteadyClock>()),
        own_random_(random != nullptr ? nullptr : std::make_unique<core::DefaultRandom>()),
        store_(store),
        clock_(clock),
        steady_(steady != nullptr ? *steady : *own_steady_),
        options_(std::move(options)),
        inbox_(std::make_shared<Inbox>()),
        sender_(std::move(sender)),
        writes_(store, clock, inbox_,
                {std::string(store.Owner()), options_.lease_ms, options_.disable_after_ms,
                 options_.disable_min_attempts}),
        random_(random != nullptr ? *random : *own_random_),
        subscriptions_(internal::SubscriptionCache::FromStore(
            store, options_.default_max_concurrency, options_.max_in_flight)),
        lanes_(subscriptions_, options_.max_queued_per_subscription,
               options_.failing_max_concurrency, options_.max_in_flight,
               std::max(internal::Lanes::kDefaultHangGap,
                        milliseconds(2 * options_.request_timeout_ms))),
        claims_(ClaimRoom(options_.max_queued), options_.claim_batch, options_.claim_interval_ms) {
    inbox_->sender = sender_.get();
  }

  ~DispatcherImpl() override {
    Stop();
    std::lock_guard lock(inbox_->mu);
    inbox_->sender = nullptr;  // the sender goes with the members below
  }

  void Start() override {
    std::lock_guard lock(lifecycle_mu_);
    if (started_ || stopped_) return;
    started_ = true;
    // Another process changed subscriptions, clients or keys (PostgreSQL's NOTIFY): look at
    // the change versions now instead of at the next poll. The inbox outlives the store's call.
    std::shared_ptr<Inbox> inbox = inbox_;
    store_.SetChangeHint([inbox] { inbox->ConfigChanged(); });
    // Another process left deliveries due (an `api` process's publish, a recover): claim now
    // instead of at the next poll, up to claim_interval_ms later.
    store_.SetDueHint([inbox] { inbox->DueAnnounced(); });
    thread_ = std::thread([this] {
      core::NameThisThread("ob-dispatch");
      Run();
    });
  }

  void Stop() override {
    std::lock_guard lock(lifecycle_mu_);
    if (stopped_) return;
    stopped_ = true;
    inbox_->RequestStop();
    if (thread_.joinable()) thread_.join();
    // Never started, or jobs offered while the thread was finishing: give them back.
    std::vector<DeliveryRowId> orphans = inbox_->Close();
    if (!orphans.empty()) writes_.ReleaseUnacknowledged(std::move(orphans));
  }

  void Offer(std::vector<store::DeliveryJob> jobs) override {
    if (jobs.empty() || inbox_->Offer(jobs)) return;
    std::vector<DeliveryRowId> ids;
    ids.reserve(jobs.size());
    for (auto& job : jobs) ids.push_back(job.id);
    writes_.ReleaseUnacknowledged(std::move(ids));
  }

  void Wake() override { inbox_->Wake(); }

  void InvalidateSubscription(SubscriptionId id) override { inbox_->Invalidate(id); }

  Memory Held() const override {
    return {held_.load(std::memory_order_relaxed), peak_held_.load(std::memory_order_relaxed)};
  }

 private:
  // ---- the dispatcher thread ----

  void Run() {
    spdlog::info("dispatcher: started (max_in_flight {}, max_queued {})", options_.max_in_flight,
                 options_.max_queued);
    claims_.Start(steady_.Now());
    next_renewal_ = steady_.Now();
    lease_renewed_at_ = steady_.Now();  // nothing is held yet; the first renewal starts now
    next_config_poll_ = steady_.Now();
    while (true) {
      HandleCompletions();
      if (DrainInbox()) break;
      Maintain();
      MaybeClaim();
      StartTransfers();
      FlushWrites();
      NoteHeld();
      sender_->Poll(PollTimeoutMs());
    }
    Shutdown();
    NoteHeld();
    spdlog::info("dispatcher: stopped");
  }

  // Takes what other threads handed over. Returns true when Stop() was asked.
  bool DrainInbox() {
    Inbox::Drained drained = inbox_->Drain();
    for (SubscriptionId id : drained.invalidated) {
      subscriptions_.Invalidate(id);
      // A new URL, say, may answer. (Changes made through other processes reach the cache at
      // the config poll, which restarts no hang: their lanes' delays start over at the next
      // answer or after the hang gap.)
      lanes_.RestartHang(id, steady_.Now());
    }
    if (drained.wake) claims_.Request();
    if (drained.config_changed) next_config_poll_ = steady_.Now();
    if (drained.due_announced) claims_.Announced(steady_.Now());
    for (auto& item : drained.items) HandleItem(item);
    return drained.stop;
  }

  void HandleItem(Inbox::Item& item) {
    switch (item.kind) {
      case Inbox::Kind::kOffered:
        for (auto& job : item.jobs) Accept(std::move(job), /*offered=*/true);
        break;
      case Inbox::Kind::kClaimed: {
        std::size_t accepted = 0;
        for (auto& job : item.jobs) accepted += Accept(std::move(job)) ? 1 : 0;
        // Leased rows whose rendering did not unpack: due again later (StoreWrites::Claim).
        for (DeliveryRowId id : item.ids) {
          if (known_.insert(id).second) deferred_[kFullLaneDeferMs].push_back(id);
        }
        claims_.Claimed(steady_.Now(), item.requested, item.jobs.size() + item.ids.size(),
                        accepted);
        break;
      }
      case Inbox::Kind::kClaimFailed:
        claims_.Failed(steady_.Now());
        break;
      case Inbox::Kind::kSettled:
        if (item.outcome_write) outcomes_writing_ = false;
        for (DeliveryRowId id : item.ids) known_.erase(id);
        if (item.claim_after && !stopping_) claims_.Request();
        break;
      case Inbox::Kind::kOutcomesFailed:
        outcomes_writing_ = false;
        for (auto& o : item.outcomes) outcomes_.push_back(std::move(o));
        write_not_before_ = steady_.Now() + kWriteRetryDelay;
        break;
      case Inbox::Kind::kReleaseFailed:
        // Tried again as what it was: a failed deferral retried as a release would make its
        // rows due at once, and the next claim would take the long lane's rows straight back;
        // and as long as it was (an answering lane's rows due 1 s later, not 5 s).
        for (DeliveryRowId id : item.ids) {
          if (!item.deferral_ms) {
            releases_.push_back(id);
          } else {
            deferred_[*item.deferral_ms].push_back(id);
          }
        }
        write_not_before_ = steady_.Now() + kWriteRetryDelay;
        break;
      case Inbox::Kind::kRenewed:
        renewal_in_flight_ = false;
        if (item.renewed) lease_renewed_at_ = renewal_submitted_at_;
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
    const TimePoint steady_now = steady_.Now();
    if (!renewal_in_flight_ && steady_now >= next_renewal_) {
      next_renewal_ = steady_now + milliseconds(std::max<UnixMs>(options_.lease_ms / 3, 1));
      renewal_in_flight_ = true;
      renewal_submitted_at_ = steady_now;
      // A commit of unknown outcome may have leased rows to this process that it never
      // learnt of: give back whatever it does not hold and leased before now.
      if (const std::uint64_t uncertain = store_.UncertainCommits();
          uncertain != uncertain_commits_seen_) {
        uncertain_commits_seen_ = uncertain;
        std::vector<DeliveryRowId> held(known_.begin(), known_.end());
        std::sort(held.begin(), held.end());
        writes_.ReleaseUnheld(clock_.Now() + options_.lease_ms, std::move(held));
      }
      writes_.RenewLease(options_.shed_idle_subscriptions ? lanes_.Idle()
                                                          : std::vector<SubscriptionId>{});
    }
    if (steady_now >= next_config_poll_) {
      next_config_poll_ = steady_now + milliseconds(options_.config_poll_ms);
      subscriptions_.FollowChanges(store_);
    }
  }

  // The lease was lost (this process was paused longer than it): the store gave every row it
  // held to others. Queued jobs are dropped, not released; attempts in flight finish, and their
  // outcomes are fenced off by the store.
  void DropQueued() {
    const std::vector<DeliveryRowId> dropped = lanes_.Clear();
    for (DeliveryRowId id : dropped) known_.erase(id);
    spdlog::warn("dispatcher: the lease expired and was taken over; dropped {} queued deliveries",
                 dropped.size());
    claims_.Request();
  }

  // ---- taking work in ----

  // Jobs queued in lanes or in flight.
  std::size_t HeldNow() const {
    return lanes_.queued() + static_cast<std::size_t>(sender_->in_flight());
  }

  // Publishes HeldNow() for Held(): after every job taken in (where the count grows) and at
  // every turn of the loop (where it shrinks).
  void NoteHeld() {
    const std::size_t held = HeldNow();
    held_.store(held, std::memory_order_relaxed);
    if (held > peak_held_.load(std::memory_order_relaxed)) {
      peak_held_.store(held, std::memory_order_relaxed);  // only this thread writes it
    }
  }

  // Takes a leased job into memory, or gives its lease back. Returns true when it was queued.
  bool Accept(store::DeliveryJob job, bool offered = false) {
    if (!known_.insert(job.id).second) {
      // Already held (or its outcome is being committed): the copy we have owns the lease.
      return false;
    }
    const std::size_t held = HeldNow();
    if (stopping_ || held >= options_.max_queued) {
      Release(job.id);
      return false;
    }
    const DeliveryRowId id = job.id;
    const bool reserve = held >= ClaimRoom(options_.max_queued) &&
                         lanes_.Queued(job.subscription) >= LongLane(options_.max_queued);
    if (reserve || lanes_.Full(job.subscription)) {
      // Its lane has work for a while (a slow or hung endpoint): given back due later, so that
      // the claims meanwhile take other subscriptions' rows instead of these again.
      deferred_[DeferralFor(job.subscription)].push_back(id);
      return false;
    }
    if (!lanes_.Enqueue(std::move(job), offered)) {
      Release(id);
      return false;
    }
    NoteHeld();
    return true;
  }

  void Release(DeliveryRowId id) { releases_.push_back(id); }

  // How much later a row of `sub`'s full or long lane is given back due: sooner for a lane that
  // is answering, whether full or long while the dispatcher is down to the short lanes' reserve
  // (it is working its queue off); for a hung one, the largest of kFullLaneDeferMs doubled that
  // its hang has reached, at most kMaxHungLaneDeferMs.
  core::UnixMs DeferralFor(SubscriptionId sub) const {
    const TimePoint now = steady_.Now();
    if (lanes_.AnsweringNow(sub, now, kAnsweringWindow)) return kBusyLaneDeferMs;
    core::UnixMs delay = kFullLaneDeferMs;
    if (std::optional<milliseconds> hung = lanes_.HungFor(sub, now)) {
      while (delay < kMaxHungLaneDeferMs &&
             hung->count() >= std::min(2 * delay, kMaxHungLaneDeferMs)) {
        delay = std::min(2 * delay, kMaxHungLaneDeferMs);
      }
    }
    return delay;
  }

  void MaybeClaim() {
    if (std::optional<int> limit = claims_.Next(HeldNow(), steady_.Now(), clock_.Now())) {
      writes_.Claim(*limit);
    }
  }

  // ---- sending ----

  // Two renewals in a row did not get through (the database is away, or this process was
  // stalled): the lease may run out while an attempt is under way, and another process would
  // then send the same deliveries. Attempts wait until a renewal succeeds (or the lease is
  // found lost, and the queue dropped).
  bool LeaseInDoubt() const {
    return steady_.Now() > lease_renewed_at_ + milliseconds(options_.lease_ms * 2 / 3);
  }

  void StartTransfers() {
    if (LeaseInDoubt()) return;
    lanes_.UnparkRateLimited(steady_.Now());
    while (sender_->in_flight() < options_.max_in_flight) {
      std::optional<internal::Lanes::Next> next = lanes_.TakeNext(steady_.Now(), releases_);
      if (!next) break;
      Send(std::move(next->job), *next->info);
    }
  }

  // Starts one attempt (or records its immediate failure).
  void Send(store::DeliveryJob job, const internal::SubInfo& info) {
    const UnixMs now = clock_.Now();
    std::string delivery_id = "del_" + ids_.Next(now);
    std::optional<std::string> error = internal::RefusalOf(info, options_.allow_private_networks);
    if (!error) {
      internal::Request request = internal::BuildRequest(info, job, delivery_id, now);
      internal::Attempt attempt{std::move(job), std::move(delivery_id), now, steady_.Now()};
      error = sender_->Start(std::move(request), attempt);
      if (!error) return;
      job = std::move(attempt.job);
      delivery_id = std::move(attempt.delivery_id);
    }
    // Never sent: the lane's slot is free again at once.
    lanes_.Finished(job.subscription);
    store::AttemptRecord record =
        internal::UnsentAttempt(job, std::move(delivery_id), now, std::move(*error));
    Conclude(std::move(job), std::move(record), false, std::nullopt);
  }

  void HandleCompletions() {
    for (internal::Response& response : sender_->Perform()) Complete(std::move(response));
  }

  void Complete(internal::Response response) {
    const std::int64_t duration_ms =
        std::chrono::duration_cast<milliseconds>(steady_.Now() - response.attempt.started).count();
    internal::AttemptResult result =
        internal::ReadResponse(response, duration_ms, clock_.Now(), options_.response_store_limit);
    // A timeout says nothing about the dispatcher's turns: a hung endpoint holds its slots
    // (bounded by its maxConcurrency; after its first timeout, by 2 once half of max_in_flight
    // is open: Lanes::Cap) but costs no work meanwhile. An answered failure (a 503 in a
    // millisecond) or a refused connection lowers the lane's concurrency (Lanes::Finished).
    std::optional<bool> succeeded = result.success;
    const bool timed_out =
        !result.success && response.http_status == 0 && response.error == "timeout";
    if (timed_out) succeeded = std::nullopt;
    lanes_.Finished(response.attempt.job.subscription, succeeded, steady_.Now(), timed_out);
    Conclude(std::move(response.attempt.job), std::move(result.record), result.success,
             result.retry_after);
  }

  // Turns one attempt into the delivery's new state and buffers it for the next batch. The job
  // leaves memory; its id stays in known_ until the store confirms, so a claim that raced with
  // the commit cannot hand it out a second time.
  void Conclude(store::DeliveryJob job, store::AttemptRecord attempt, bool success,
                std::optional<UnixMs> retry_after) {
    store::Outcome o = internal::Conclude(std::move(job), std::move(attempt), success, retry_after,
                                          options_.retry, random_, clock_.Now());
    if (o.next_attempt_at) claims_.HintDue(*o.next_attempt_at);
    outcomes_.push_back(std::move(o));
  }

  // ---- recording ----

  // One Submit for the outcomes, one for the released leases. One outcome write at a time: the
  // outcomes that come while it commits go in the next one. A write per loop turn filled the
  // store's queue with small transactions under fast-failing endpoints (60 in
  // DispatcherTest.OutcomesWaitForTheWriteUnderWay), each with its own overhead, and this
  // dispatcher's claims and lease renewals queued behind them (issue 8: fewer, larger outcome
  // writes cost the writer 5 % less per drained delivery; docs/PERFORMANCE.md).
  void FlushWrites() {
    if (steady_.Now() < write_not_before_) return;
    if (!outcomes_.empty() && !outcomes_writing_) {
      bool claim_after = false;
      for (const auto& o : outcomes_) {
        const internal::SubInfo* info = subscriptions_.Peek(o.subscription);
        if (info != nullptr && info->ordered) claim_after = true;
      }
      writes_.RecordOutcomes(std::exchange(outcomes_, {}), claim_after);
      outcomes_writing_ = true;
    }
    if (!releases_.empty()) {
      writes_.ReleaseLeases(std::exchange(releases_, {}));
      // Work was given back to the store: claim it again once there is room.
      if (!stopping_) claims_.Request();
    }
    // No claim requested: these are due again only after their delay.
    for (auto& [delay_ms, ids] : std::exchange(deferred_, {})) {
      writes_.DeferLeases(std::move(ids), delay_ms);
    }
  }

  int PollTimeoutMs() const {
    auto timeout = milliseconds(options_.claim_interval_ms);
    const TimePoint steady_now = steady_.Now();
    if ((!outcomes_.empty() && !outcomes_writing_) || !releases_.empty() || !deferred_.empty()) {
      timeout = std::min(timeout,
                         std::chrono::duration_cast<milliseconds>(write_not_before_ - steady_now));
    }
    if (std::optional<TimePoint> token = lanes_.NextTokenAt()) {
      timeout = std::min(
          timeout, std::chrono::duration_cast<milliseconds>(*token - steady_now) + milliseconds(1));
    }
    timeout = claims_.LimitWait(timeout, HeldNow(), steady_now, clock_.Now());
    return static_cast<int>(std::clamp<std::int64_t>(timeout.count(), 0, 1000));
  }

  // Stop(): lets requests in flight finish within stop_grace_ms, records what they came to,
  // releases everything else and waits for the store to confirm. These waits are measured in
  // real time whatever `steady_` is: they bound how long Stop() blocks its caller, and nobody
  // could step a fake clock meanwhile.
  void Shutdown() {
    using RealClock = std::chrono::steady_clock;
    stopping_ = true;
    claims_.Stop();
    for (DeliveryRowId id : lanes_.Clear()) Release(id);

    const auto deadline = RealClock::now() + milliseconds(options_.stop_grace_ms);
    while (sender_->in_flight() > 0 && RealClock::now() < deadline) {
      HandleCompletions();
      DrainInbox();
      FlushWrites();
      if (sender_->in_flight() == 0) break;
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - RealClock::now()).count();
      sender_->Poll(static_cast<int>(std::clamp<std::int64_t>(left, 0, 50)));
    }
    if (sender_->in_flight() > 0) {
      spdlog::warn("dispatcher: abandoning {} requests in flight; their deliveries stay pending",
                   sender_->in_flight());
    }
    for (internal::Attempt& abandoned : sender_->Abandon()) Release(abandoned.job.id);

    // Wait for the store to confirm every write, including claims that were under way (their
    // jobs are released as they arrive).
    const auto write_deadline = RealClock::now() + kStopWriteWait;
    while (true) {
      write_not_before_ = {};
      FlushWrites();
      std::vector<Inbox::Item> items;
      {
        std::unique_lock lock(inbox_->mu);
        if (inbox_->items.empty() && inbox_->pending_writes == 0) break;
        if (RealClock::now() >= write_deadline) {
          spdlog::error("dispatcher: the store did not confirm {} writes at shutdown",
                        inbox_->pending_writes);
          break;
        }
        if (inbox_->items.empty()) {
          inbox_->cv.wait_for(lock, milliseconds(100));
        }
        items.swap(inbox_->items);
      }
      for (auto& item : items) HandleItem(item);
      if (!outcomes_.empty() || !releases_.empty() || !deferred_.empty()) {
        std::this_thread::sleep_for(kWriteRetryDelay);  // a failed write is retried, not spun
      }
    }
    // Hand back what is left (subscriptions owned, rows leased by fan-out meanwhile), so that
    // the other processes take over at once rather than after the lease.
    if (auto released = writes_.ReleaseOwner(); !released) {
      spdlog::warn(
          "dispatcher: handing back the lease failed (others take over after it "
          "expires): {}",
          released.error().message);
    }
  }

  // The defaults when Create() was not given steady time or randomness. Declared first: they
  // outlive the references below.
  const std::unique_ptr<core::MonotonicClock> own_steady_;
  const std::unique_ptr<core::Random> own_random_;

  // Constant after construction.
  store::Store& store_;
  const core::Clock& clock_;
  const core::MonotonicClock& steady_;
  const DispatcherOptions options_;
  const std::shared_ptr<Inbox> inbox_;
  const std::unique_ptr<internal::Sender> sender_;  // used by the dispatcher thread only
  internal::StoreWrites writes_;                    // thread-safe

  std::mutex lifecycle_mu_;
  bool started_ = false;  // guarded by lifecycle_mu_
  bool stopped_ = false;  // guarded by lifecycle_mu_
  std::thread thread_;

  // State below is owned by the dispatcher thread.
  core::Random& random_;
  core::UlidGenerator ids_;
  internal::SubscriptionCache subscriptions_;
  internal::Lanes lanes_;
  std::unordered_set<DeliveryRowId> known_;  // held, or outcome/release not yet committed
  std::vector<store::Outcome> outcomes_;
  bool outcomes_writing_ = false;  // a RecordOutcomes not yet answered (FlushWrites)
  std::vector<DeliveryRowId> releases_;
  // Rows of full or long lanes to give back due later (Accept), by how much later.
  std::map<core::UnixMs, std::vector<DeliveryRowId>> deferred_;
  internal::ClaimPacer claims_;
  bool renewal_in_flight_ = false;
  TimePoint renewal_submitted_at_{};  // of the renewal in flight
  std::uint64_t uncertain_commits_seen_ = 0;
  TimePoint lease_renewed_at_{};  // when the last renewal that got through was submitted
  bool stopping_ = false;
  TimePoint next_renewal_{};
  TimePoint next_config_poll_{};
  TimePoint write_not_before_{};
  // NoteHeld() writes them; Held() reads them from any thread.
  std::atomic<std::size_t> held_{0};
  std::atomic<std::size_t> peak_held_{0};
};

// `steady` and `random` may be null: the real ones are used.
core::Result<std::unique_ptr<Dispatcher>> CreateDispatcher(store::Store& store,
                                                           const core::Clock& clock,
                                                           const core::MonotonicClock* steady,
                                                           core::Random* random,
                                                           DispatcherOptions options) {
  if (options.max_in_flight < 1 || options.max_queued < 1 || options.claim_batch < 1 ||
      options.default_max_concurrency < 1 || options.max_queued_per_subscription < 1 ||
      options.failing_max_concurrency < 0) {
    return core::Fail(core::Error::Invalid("dispatcher", "invalid_dispatcher_options",
                                           "queue sizes and concurrency limits must be positive"));
  }
  if (options.retry.delays.empty()) {
    return core::Fail(core::Error::Invalid("retry_schedule", "invalid_retry_schedule",
                                           "the retry schedule needs at least one attempt"));
  }
  internal::SenderOptions sending;
  sending.connect_timeout_ms = options.connect_timeout_ms;
  sending.request_timeout_ms = options.request_timeout_ms;
  sending.response_read_limit = options.response_read_limit;
  sending.response_store_limit = options.response_store_limit;
  sending.user_agent = options.user_agent;
  sending.ca_file = options.ca_file;
  sending.debug_resolve = options.debug_resolve;
  sending.allow_private_networks = options.allow_private_networks;
  sending.proxy = options.proxy;
  sending.max_in_flight = options.max_in_flight;
  auto sender = internal::Sender::Create(std::move(sending));
  if (!sender) return core::Fail(sender.error());
  return std::unique_ptr<Dispatcher>(std::make_unique<DispatcherImpl>(
      store, clock, steady, random, std::move(options), std::move(*sender)));
}

}  // namespace

core::Result<std::unique_ptr<Dispatcher>> Dispatcher::Create(store::Store& store,
                                                             const core::Clock& clock,
                                                             DispatcherOptions options) {
  return CreateDispatcher(store, clock, nullptr, nullptr, std::move(options));
}

core::Result<std::unique_ptr<Dispatcher>> Dispatcher::Create(store::Store& store,
                                                             const core::Clock& clock,
                                                             const core::MonotonicClock& steady,
                                                             core::Random& random,
                                                             DispatcherOptions options) {
  return CreateDispatcher(store, clock, &steady, &random, std::move(options));
}

std::optional<std::string> CaFileProblem(const std::string& path) {
  // OpenSSL's own loader, which libcurl's OpenSSL backend uses for CURLOPT_CAINFO.
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), &X509_STORE_free);
  if (!store) return "out of memory while reading " + path;
  bool certificate = false;
  if (X509_STORE_load_file(store.get(), path.c_str()) == 1) {
    STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store.get());
    for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
      if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objects, i)) == X509_LU_X509) {
        certificate = true;
      }
    }
  }
  ERR_clear_error();  // this thread's queue: the reason is told below
  if (certificate) return std::nullopt;
  return "cannot read CA certificates from " + path +
         " (missing, unreadable, or no PEM certificate in it)";
}

}  // namespace outbound::delivery
