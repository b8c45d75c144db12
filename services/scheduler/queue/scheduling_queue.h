// The scheduler's queue of pending pods, after kube-scheduler's PriorityQueue
// (pkg/scheduler/internal/queue/scheduling_queue.go).
//
// Three sub-queues; a pod is in at most one of them, or "in flight" (popped, being scheduled):
//  * activeQ: pods ready to be tried, ordered by priority (spec.priority, default 0) descending,
//    then by QueuedPodInfo::timestamp (when the pod was added to the queue, or last failed)
//    ascending, then by insertion order (FIFO).
//  * backoffQ: pods that failed and wait out their per-pod exponential backoff (initial 1 s,
//    doubling per attempt, max 10 s) counted from QueuedPodInfo::timestamp; ordered by expiry.
//  * unschedulablePods: pods no node fits. They leave on MoveAllToActiveOrBackoff (a cluster
//    event that may make them fit) or after a maximum stay of 5 minutes (Flush).
//
//   SchedulingQueue queue(clock);
//   informer: on pending pod add/update/delete -> queue.Add / Update / Delete
//   informer: on node add/update, assigned pod delete -> queue.MoveAllToActiveOrBackoff("NodeAdd")
//   scheduler loop:
//     std::optional<QueuedPodInfo> info = queue.Pop();   // blocks; nullopt after Close()
//     if (!info) return;
//     if (fits) { bind; queue.Done(*info); }
//     else queue.AddUnschedulable(*info, info->scheduling_cycle);
//
// Scheduling cycles (Kubernetes' moveRequestCycle): every Pop starts a new cycle. When a move
// request (MoveAllToActiveOrBackoff) happens at or after the cycle in which a pod was popped, the
// failure may be stale, so AddUnschedulable sends the pod to backoffQ (or activeQ when its backoff
// is over) instead of unschedulablePods. An Update of a pod while it is in flight counts the same.
//
// Flush moves expired backoff pods to activeQ and pods unschedulable for longer than the max stay
// to backoffQ/activeQ. The owner may call it periodically (kube-scheduler: every 1 s and 30 s);
// Pop also flushes, and a blocked Pop wakes at the next backoff expiry or max-stay deadline.
//
// Pods are keyed by metadata.uid (namespace/name when the uid is empty). Thread-safe.
#ifndef CAPSTAN_SERVICES_SCHEDULER_QUEUE_SCHEDULING_QUEUE_H_
#define CAPSTAN_SERVICES_SCHEDULER_QUEUE_SCHEDULING_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/client/clock.h"
#include "proto/core_v1.pb.h"

namespace capstan::scheduler {

using PodPtr = std::shared_ptr<const capstan::core::v1::Pod>;

struct QueuedPodInfo {
  PodPtr pod;
  // Scheduling attempts so far (incremented by each Pop).
  int attempts = 0;
  // When the pod was first popped (the first scheduling attempt); InfinitePast() before that.
  absl::Time initial_attempt_time = absl::InfinitePast();
  // When the pod was added to the queue or, after a failure, when it was put back. Orders activeQ
  // (after priority) and is the start of the backoff and of the unschedulable max stay.
  absl::Time timestamp = absl::InfinitePast();
  // The scheduling cycle in which the pod was last popped (set by Pop).
  int64_t scheduling_cycle = 0;
};

struct SchedulingQueueOptions {
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration max_unschedulable_stay = absl::Minutes(5);
};

// The queue key of a pod: metadata.uid, or namespace/name when the uid is empty.
std::string PodKey(const capstan::core::v1::Pod& pod);

// spec.priority, 0 when unset.
int32_t PodPriority(const capstan::core::v1::Pod& pod);

class SchedulingQueue {
 public:
  // `clock` must outlive the queue; nullptr means Clock::Real().
  explicit SchedulingQueue(client::Clock* clock = nullptr, SchedulingQueueOptions options = {});
  ~SchedulingQueue();

  SchedulingQueue(const SchedulingQueue&) = delete;
  SchedulingQueue& operator=(const SchedulingQueue&) = delete;

  // A new pending pod: into activeQ (timestamp now). A pod already queued is replaced and moved to
  // activeQ; a pod in flight only has its object replaced.
  void Add(PodPtr pod);
  void Add(const capstan::core::v1::Pod& pod);

  // Updates the pod in place wherever it is (activeQ is reordered if the priority changed). An
  // unschedulable pod whose update may make it schedulable (anything but status, resourceVersion,
  // generation, managedFields changed) moves to backoffQ if still backing off, else activeQ. A pod
  // in flight has its object replaced and its cycle counts as having seen a move request. A pod
  // not known at all is added to activeQ. `old_pod` may be null; the key is taken from it if set.
  void Update(PodPtr old_pod, PodPtr new_pod);
  void Update(const capstan::core::v1::Pod& old_pod, const capstan::core::v1::Pod& new_pod);

  // Removes the pod from whichever sub-queue holds it, or forgets it if in flight (a later
  // AddUnschedulable for it is then dropped).
  void Delete(const capstan::core::v1::Pod& pod);

  // Blocks until a pod is in activeQ (flushing due backoff/unschedulable pods meanwhile) or the
  // queue is closed. Returns the highest-priority pod, now in flight, with attempts incremented and
  // scheduling_cycle set to a new cycle; nullopt once closed.
  std::optional<QueuedPodInfo> Pop();

  // The pod `info` (as popped in `pod_scheduling_cycle`) could not be scheduled. It goes to
  // unschedulablePods, or, if a move request happened at or after that cycle, to backoffQ (activeQ
  // if its backoff is already over). The timestamp is set to now; the pod object is the latest
  // seen by Update. Returns false (and does nothing) if the pod is not in flight: never popped,
  // deleted since, or already queued.
  bool AddUnschedulable(QueuedPodInfo info, int64_t pod_scheduling_cycle);

  // The pod was scheduled (or given up on): it is no longer in flight.
  void Done(const capstan::core::v1::Pod& pod);

  // A cluster event (node added/updated, pod deleted...) that may make unschedulable pods fit:
  // every unschedulable pod moves to backoffQ if still backing off, else to activeQ; and the move
  // request is recorded against the current scheduling cycle. `event` is a label for logs.
  void MoveAllToActiveOrBackoff(absl::string_view event);

  // Moves backoff pods whose backoff has expired to activeQ, and pods unschedulable for longer
  // than the max stay to backoffQ/activeQ.
  void Flush();

  // Wakes every blocked Pop (they return nullopt); later Pops return nullopt at once.
  void Close();

  // The scheduling cycle of the latest Pop (0 before any).
  int64_t SchedulingCycle() const;

  // The backoff a pod with `attempts` attempts waits: initial * 2^(attempts-1), capped at max.
  absl::Duration BackoffDuration(int attempts) const;

  // Sizes for metrics.
  size_t ActiveSize() const;
  size_t BackoffSize() const;
  size_t UnschedulableSize() const;
  size_t InFlightSize() const;
  // Which sub-queue holds the pod: "active", "backoff", "unschedulable", "inflight" or "" (none).
  std::string Where(const capstan::core::v1::Pod& pod) const;

 private:
  enum class Location { kActive, kBackoff, kUnschedulable };
  struct Entry {
    QueuedPodInfo info;
    Location location = Location::kActive;
    uint64_t seq = 0;                   // insertion order, the FIFO tie-break
    int32_t priority = 0;               // as keyed in active_
    absl::Time backoff_expiry;          // as keyed in backoff_
  };
  struct InFlight {
    PodPtr pod;  // latest object seen
    bool updated = false;
  };
  // (-priority, timestamp, seq, key): begin() is the next pod to pop.
  using ActiveKey = std::tuple<int64_t, absl::Time, uint64_t, std::string>;
  // (expiry, seq, key).
  using BackoffKey = std::tuple<absl::Time, uint64_t, std::string>;

  // Removes `key`'s entry from its ordered index (not from entries_).
  void UnindexLocked(const std::string& key, const Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts an entry (already in entries_) into `where`, re-indexing it.
  void PlaceLocked(const std::string& key, Entry& e, Location where, bool new_seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Inserts or moves `info` under `key` into `where`.
  void PutLocked(const std::string& key, QueuedPodInfo info, Location where)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MoveToActiveOrBackoffLocked(const std::string& key, Entry& e, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time BackoffExpiry(const QueuedPodInfo& info) const;
  void FlushLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time NextFlushDeadlineLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  client::Clock* const clock_;
  const SchedulingQueueOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar cond_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::set<ActiveKey> active_ ABSL_GUARDED_BY(mu_);
  std::set<BackoffKey> backoff_ ABSL_GUARDED_BY(mu_);
  size_t unschedulable_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t scheduling_cycle_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t move_request_cycle_ ABSL_GUARDED_BY(mu_) = -1;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace capstan::scheduler

#endif  // CAPSTAN_SERVICES_SCHEDULER_QUEUE_SCHEDULING_QUEUE_H_
