#include "services/scheduler/queue/scheduling_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"

namespace capstan::scheduler {

namespace {

using capstan::core::v1::Pod;

// Kubernetes' isPodUpdated: true unless only status, resourceVersion, generation or managedFields
// changed (those cannot make an unschedulable pod schedulable).
bool PodMayBecomeSchedulable(const Pod& old_pod, const Pod& new_pod) {
  auto strip = [](const Pod& p) {
    Pod c = p;
    c.clear_status();
    c.mutable_metadata()->clear_resource_version();
    c.mutable_metadata()->clear_generation();
    c.mutable_metadata()->clear_managed_fields();
    return c;
  };
  return !google::protobuf::util::MessageDifferencer::Equals(strip(old_pod), strip(new_pod));
}

}  // namespace

std::string PodKey(const Pod& pod) {
  if (!pod.metadata().uid().empty()) return pod.metadata().uid();
  return absl::StrCat(pod.metadata().namespace_(), "/", pod.metadata().name());
}

int32_t PodPriority(const Pod& pod) {
  return pod.spec().has_priority() ? pod.spec().priority() : 0;
}

SchedulingQueue::SchedulingQueue(client::Clock* clock, SchedulingQueueOptions options)
    : clock_(clock != nullptr ? clock : client::Clock::Real()), options_(options) {}

SchedulingQueue::~SchedulingQueue() = default;

absl::Duration SchedulingQueue::BackoffDuration(int attempts) const {
  absl::Duration d = options_.initial_backoff;
  for (int i = 1; i < attempts; ++i) {
    if (d >= options_.max_backoff) break;
    d *= 2;
  }
  return std::min(d, options_.max_backoff);
}

absl::Time SchedulingQueue::BackoffExpiry(const QueuedPodInfo& info) const {
  return info.timestamp + BackoffDuration(info.attempts);
}

void SchedulingQueue::UnindexLocked(const std::string& key, const Entry& e) {
  switch (e.location) {
    case Location::kActive:
      active_.erase(ActiveKey{-static_cast<int64_t>(e.priority), e.info.timestamp, e.seq, key});
      break;
    case Location::kBackoff:
      backoff_.erase(BackoffKey{e.backoff_expiry, e.seq, key});
      break;
    case Location::kUnschedulable:
      --unschedulable_count_;
      break;
  }
}

void SchedulingQueue::PlaceLocked(const std::string& key, Entry& e, Location where,
                                  bool new_seq) {
  if (new_seq) e.seq = next_seq_++;
  e.location = where;
  switch (where) {
    case Location::kActive:
      e.priority = PodPriority(*e.info.pod);
      active_.insert(ActiveKey{-static_cast<int64_t>(e.priority), e.info.timestamp, e.seq, key});
      break;
    case Location::kBackoff:
      e.backoff_expiry = BackoffExpiry(e.info);
      backoff_.insert(BackoffKey{e.backoff_expiry, e.seq, key});
      break;
    case Location::kUnschedulable:
      ++unschedulable_count_;
      break;
  }
}

void SchedulingQueue::PutLocked(const std::string& key, QueuedPodInfo info, Location where) {
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    UnindexLocked(key, it->second);
    it->second.info = std::move(info);
  } else {
    it = entries_.emplace(key, Entry{}).first;
    it->second.info = std::move(info);
  }
  PlaceLocked(key, it->second, where, /*new_seq=*/true);
  cond_.SignalAll();
}

void SchedulingQueue::MoveToActiveOrBackoffLocked(const std::string& key, Entry& e,
                                                  absl::Time now) {
  UnindexLocked(key, e);
  Location where = BackoffExpiry(e.info) > now ? Location::kBackoff : Location::kActive;
  PlaceLocked(key, e, where, /*new_seq=*/true);
  cond_.SignalAll();
}

void SchedulingQueue::Add(const Pod& pod) { Add(std::make_shared<const Pod>(pod)); }

void SchedulingQueue::Add(PodPtr pod) {
  if (pod == nullptr) return;
  const std::string key = PodKey(*pod);
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  if (auto f = in_flight_.find(key); f != in_flight_.end()) {
    f->second.pod = std::move(pod);
    f->second.updated = true;
    return;
  }
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    // Kubernetes' Add of a known pod: replace it and make it active.
    QueuedPodInfo info = it->second.info;
    info.pod = std::move(pod);
    PutLocked(key, std::move(info), Location::kActive);
    return;
  }
  QueuedPodInfo info;
  info.pod = std::move(pod);
  info.timestamp = now;
  PutLocked(key, std::move(info), Location::kActive);
}

void SchedulingQueue::Update(const Pod& old_pod, const Pod& new_pod) {
  Update(std::make_shared<const Pod>(old_pod), std::make_shared<const Pod>(new_pod));
}

void SchedulingQueue::Update(PodPtr old_pod, PodPtr new_pod) {
  if (new_pod == nullptr) return;
  const std::string key = PodKey(old_pod != nullptr ? *old_pod : *new_pod);
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  if (auto f = in_flight_.find(key); f != in_flight_.end()) {
    f->second.pod = std::move(new_pod);
    f->second.updated = true;
    return;
  }
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    QueuedPodInfo info;
    info.pod = std::move(new_pod);
    info.timestamp = now;
    PutLocked(key, std::move(info), Location::kActive);
    return;
  }
  Entry& e = it->second;
  switch (e.location) {
    case Location::kActive:
      // Re-key in place: priority may have changed; timestamp and seq are kept.
      UnindexLocked(key, e);
      e.info.pod = std::move(new_pod);
      PlaceLocked(key, e, Location::kActive, /*new_seq=*/false);
      cond_.SignalAll();
      break;
    case Location::kBackoff:
      // The expiry does not depend on the object: the index stays valid.
      e.info.pod = std::move(new_pod);
      break;
    case Location::kUnschedulable: {
      const bool move = PodMayBecomeSchedulable(*e.info.pod, *new_pod);
      e.info.pod = std::move(new_pod);
      if (move) MoveToActiveOrBackoffLocked(key, e, now);
      break;
    }
  }
}

void SchedulingQueue::Delete(const Pod& pod) {
  const std::string key = PodKey(pod);
  absl::MutexLock lock(&mu_);
  in_flight_.erase(key);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  UnindexLocked(key, it->second);
  entries_.erase(it);
  cond_.SignalAll();
}

std::optional<QueuedPodInfo> SchedulingQueue::Pop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (closed_) return std::nullopt;
    FlushLocked(clock_->Now());
    if (!active_.empty()) break;
    clock_->WaitWithDeadline(&cond_, &mu_, NextFlushDeadlineLocked());
  }
  const std::string key = std::get<3>(*active_.begin());
  active_.erase(active_.begin());
  auto it = entries_.find(key);
  QueuedPodInfo info = std::move(it->second.info);
  entries_.erase(it);
  ++scheduling_cycle_;
  ++info.attempts;
  if (info.attempts == 1) info.initial_attempt_time = clock_->Now();
  info.scheduling_cycle = scheduling_cycle_;
  in_flight_[key] = InFlight{info.pod, false};
  return info;
}

bool SchedulingQueue::AddUnschedulable(QueuedPodInfo info, int64_t pod_scheduling_cycle) {
  if (info.pod == nullptr) return false;
  const std::string key = PodKey(*info.pod);
  absl::MutexLock lock(&mu_);
  auto f = in_flight_.find(key);
  if (f == in_flight_.end() || entries_.contains(key)) return false;
  const bool updated = f->second.updated;
  info.pod = std::move(f->second.pod);
  in_flight_.erase(f);
  const absl::Time now = clock_->Now();
  info.timestamp = now;
  Location where = Location::kUnschedulable;
  if (updated || move_request_cycle_ >= pod_scheduling_cycle) {
    where = BackoffExpiry(info) > now ? Location::kBackoff : Location::kActive;
  }
  PutLocked(key, std::move(info), where);
  return true;
}

void SchedulingQueue::Done(const Pod& pod) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(PodKey(pod));
}

void SchedulingQueue::MoveAllToActiveOrBackoff(absl::string_view /*event*/) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  for (auto& [key, e] : entries_) {
    if (e.location == Location::kUnschedulable) MoveToActiveOrBackoffLocked(key, e, now);
  }
  move_request_cycle_ = scheduling_cycle_;
}

void SchedulingQueue::Flush() {
  absl::MutexLock lock(&mu_);
  FlushLocked(clock_->Now());
}

void SchedulingQueue::FlushLocked(absl::Time now) {
  while (!backoff_.empty() && std::get<0>(*backoff_.begin()) <= now) {
    const std::string key = std::get<2>(*backoff_.begin());
    Entry& e = entries_.find(key)->second;
    UnindexLocked(key, e);
    PlaceLocked(key, e, Location::kActive, /*new_seq=*/true);
    cond_.SignalAll();
  }
  if (unschedulable_count_ == 0) return;
  for (auto& [key, e] : entries_) {
    if (e.location == Location::kUnschedulable &&
        now - e.info.timestamp > options_.max_unschedulable_stay) {
      MoveToActiveOrBackoffLocked(key, e, now);
    }
  }
}

absl::Time SchedulingQueue::NextFlushDeadlineLocked() const {
  absl::Time deadline = absl::InfiniteFuture();
  if (!backoff_.empty()) deadline = std::get<0>(*backoff_.begin());
  if (unschedulable_count_ > 0) {
    for (const auto& [key, e] : entries_) {
      if (e.location == Location::kUnschedulable) {
        // Flush moves a pod once its stay is strictly longer than the max.
        deadline = std::min(deadline, e.info.timestamp + options_.max_unschedulable_stay +
                                          absl::Nanoseconds(1));
      }
    }
  }
  return deadline;
}

void SchedulingQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  cond_.SignalAll();
}

int64_t SchedulingQueue::SchedulingCycle() const {
  absl::MutexLock lock(&mu_);
  return scheduling_cycle_;
}

size_t SchedulingQueue::ActiveSize() const {
  absl::MutexLock lock(&mu_);
  return active_.size();
}

size_t SchedulingQueue::BackoffSize() const {
  absl::MutexLock lock(&mu_);
  return backoff_.size();
}

size_t SchedulingQueue::UnschedulableSize() const {
  absl::MutexLock lock(&mu_);
  return unschedulable_count_;
}

size_t SchedulingQueue::InFlightSize() const {
  absl::MutexLock lock(&mu_);
  return in_flight_.size();
}

std::string SchedulingQueue::Where(const Pod& pod) const {
  const std::string key = PodKey(pod);
  absl::MutexLock lock(&mu_);
  if (in_flight_.contains(key)) return "inflight";
  auto it = entries_.find(key);
  if (it == entries_.end()) return "";
  switch (it->second.location) {
    case Location::kActive:
      return "active";
    case Location::kBackoff:
      return "backoff";
    case Location::kUnschedulable:
      return "unschedulable";
  }
  return "";
}

}  // namespace capstan::scheduler
