// The controller work queue: client-go's util/workqueue (the plain, delaying and rate-limiting
// queues in one class), for string keys ("namespace/name").
//
// Event handlers only Add keys; worker threads loop:
//
//   while (std::optional<std::string> key = queue.Get()) {
//     absl::Status s = Reconcile(*key);
//     if (s.ok()) queue.Forget(*key); else queue.AddRateLimited(*key);
//     queue.Done(*key);
//   }
//
// Guarantees, as client-go's:
//   - A key is queued at most once: adding a key that is already waiting to be processed is a
//     no-op, so a burst of events for one object costs one reconcile.
//   - A key is never processed by two workers at once: Get() hands a key out, and a key Added
//     again while it is being processed is held back and queued when Done(key) is called.
//   - Keys are handed out in the order they were first added (FIFO).
//   - After ShutDown() new adds are ignored, but Get() still hands out the keys already queued;
//     it returns std::nullopt only once the queue is empty ("shutdown drains").
//
// Delays use an injectable Clock (lib/client/clock.h). There is no timer thread for AddAfter: a
// delayed key is moved into the queue by the first queue call after it is due, and a Get() that is
// waiting sleeps until the earliest delayed key is due. The metrics, when enabled, get one
// background thread that refreshes the unfinished-work gauges every 500 ms (as client-go does),
// so that a stuck worker shows even when nothing else happens.
//
// Thread-safe. The queue must outlive every call into it: shut it down and join the workers
// before destroying it.
#ifndef CAPSTAN_LIB_CLIENT_WORKQUEUE_H_
#define CAPSTAN_LIB_CLIENT_WORKQUEUE_H_

#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/client/clock.h"
#include "lib/client/rate_limiter.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace capstan::client {

struct WorkQueueOptions {
  // Used as the `name` label of the metrics; should be unique per registry (two queues with the
  // same name in one registry share their metric series).
  std::string name;
  // Where the workqueue_* metrics are registered; null for no metrics. Not owned; must outlive
  // the queue.
  prometheus::Registry* registry = nullptr;
  // Not owned; must outlive the queue. Also used by the default rate limiter's token bucket.
  Clock* clock = Clock::Real();
  // Used by AddRateLimited/Forget/NumRequeues; null means DefaultControllerRateLimiter(clock).
  std::unique_ptr<RateLimiter> rate_limiter;
};

class WorkQueue {
 public:
  explicit WorkQueue(WorkQueueOptions options = {});
  // Shuts the queue down. No call may be in progress or follow.
  ~WorkQueue();

  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `key` unless it is already queued; if it is being processed, it is queued when
  // Done(key) is called. Ignored after shutdown.
  void Add(absl::string_view key);

  // Blocks until a key is available and returns it; the caller must call Done(key) when it has
  // finished with it. Returns std::nullopt once the queue is shut down and empty.
  std::optional<std::string> Get();

  // Marks `key` as no longer being processed; if it was added meanwhile, queues it now. A key
  // that is not being processed (never handed out, or already Done) is ignored.
  void Done(absl::string_view key);

  // Keys queued and ready to be handed out (not those being processed, nor those whose
  // AddAfter delay has not passed).
  int Len();

  // Ignores new adds from now on and wakes every Get() waiting on an empty queue; Get() keeps
  // handing out queued keys until the queue is empty. Delayed keys not yet due are dropped.
  // Also releases a pending ShutDownWithDrain() without waiting for its drain.
  void ShutDown();

  // ShutDown(), then blocks until every key handed out has been Done. The workers must keep
  // calling Get()/Done() until Get() returns std::nullopt, or this blocks forever.
  void ShutDownWithDrain();

  bool ShuttingDown();

  // Adds `key` once `delay` has passed on the queue's clock (at once if delay <= 0). If `key` is
  // already waiting for a delayed add, the earlier of the two times is kept. Ignored after
  // shutdown.
  void AddAfter(absl::string_view key, absl::Duration delay);

  // AddAfter(key, rate_limiter->When(key)): the retry path for a key whose reconcile failed.
  void AddRateLimited(absl::string_view key);

  // Resets the key's rate-limiter backoff (call after a successful reconcile). Does not remove
  // the key from the queue.
  void Forget(absl::string_view key);

  // How many times the key was AddRateLimited since its last Forget.
  int NumRequeues(absl::string_view key);

 private:
  struct Metrics;
  // The queue's series in `registry`; null when registry is null.
  static std::unique_ptr<Metrics> NewMetrics(prometheus::Registry* registry,
                                             const std::string& name);

  // Queues `key` (dedup, held back while processing) and wakes one Get().
  void AddLocked(absl::string_view key, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves delayed keys whose time has come into the queue.
  void PromoteDueLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ShutDownLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateUnfinishedWorkLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The metrics thread: refreshes the unfinished-work gauges until the queue is destroyed.
  void MetricsLoop();

  // Constant after construction.
  Clock* const clock_;
  const std::unique_ptr<RateLimiter> rate_limiter_;  // Thread-safe on its own.
  const std::unique_ptr<Metrics> metrics_;           // Null without a registry.

  absl::Mutex mu_;
  // Signalled when a key becomes available, when the earliest delayed key changes and at shutdown.
  absl::CondVar key_available_;
  // Signalled when the last processed key is Done (for ShutDownWithDrain) and at destruction (for
  // the metrics thread).
  absl::CondVar state_changed_;

  // Keys ready to hand out, oldest first. Each is also in dirty_ and not in processing_.
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  // Keys that need processing: those in queue_ plus those added while being processed. A key in
  // dirty_ is never queued a second time.
  absl::flat_hash_set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  // Keys handed out by Get() and not yet Done, with the time they were handed out (for the
  // metrics; absl::InfinitePast() without metrics, to skip reading the clock).
  absl::flat_hash_map<std::string, absl::Time> processing_ ABSL_GUARDED_BY(mu_);
  // When each dirty key was first added, for queue_duration_seconds. Only kept with metrics.
  absl::flat_hash_map<std::string, absl::Time> add_times_ ABSL_GUARDED_BY(mu_);

  // Delayed adds: the due time of each waiting key, and the same pairs ordered by due time
  // (earliest first) so the next due key is found without a scan.
  absl::flat_hash_map<std::string, absl::Time> waiting_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, std::string>> waiting_by_time_ ABSL_GUARDED_BY(mu_);

  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // True while ShutDownWithDrain waits; ShutDown() clears it to release that wait.
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  // Set by the destructor to stop the metrics thread.
  bool destroying_ ABSL_GUARDED_BY(mu_) = false;

  std::thread metrics_thread_;  // Started in the constructor when metrics are on; joined in ~.
};

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_WORKQUEUE_H_
