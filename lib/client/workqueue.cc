#include "lib/client/workqueue.h"

#include <algorithm>
#include <utility>

#include "lib/metrics/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace capstan::client {

// How often the metrics thread refreshes the unfinished-work gauges (client-go's period).
constexpr absl::Duration kUnfinishedWorkUpdatePeriod = absl::Milliseconds(500);

// The series of one queue (label name=<queue name>), with client-go's names and help texts.
struct WorkQueue::Metrics {
  prometheus::Gauge& depth;
  prometheus::Counter& adds;
  prometheus::Histogram& queue_duration;
  prometheus::Histogram& work_duration;
  prometheus::Counter& retries;
  prometheus::Gauge& unfinished_work;
  prometheus::Gauge& longest_running_processor;
};

namespace {

prometheus::Gauge& AddGauge(prometheus::Registry& registry, const char* name, const char* help,
                            const prometheus::Labels& labels) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(labels);
}

prometheus::Counter& AddCounter(prometheus::Registry& registry, const char* name, const char* help,
                                const prometheus::Labels& labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add(labels);
}

prometheus::Histogram& AddHistogram(prometheus::Registry& registry, const char* name,
                                    const char* help, const prometheus::Labels& labels) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add(
      labels, prometheus::Histogram::BucketBoundaries(metrics::LatencyBuckets()));
}

}  // namespace

std::unique_ptr<WorkQueue::Metrics> WorkQueue::NewMetrics(prometheus::Registry* registry,
                                                          const std::string& name) {
  if (registry == nullptr) return nullptr;
  prometheus::Registry& r = *registry;
  const prometheus::Labels labels{{"name", name}};
  return std::unique_ptr<Metrics>(new Metrics{
      AddGauge(r, "workqueue_depth", "Current depth of workqueue", labels),
      AddCounter(r, "workqueue_adds_total", "Total number of adds handled by workqueue", labels),
      AddHistogram(r, "workqueue_queue_duration_seconds",
                   "How long in seconds an item stays in workqueue before being requested.",
                   labels),
      AddHistogram(r, "workqueue_work_duration_seconds",
                   "How long in seconds processing an item from workqueue takes.", labels),
      AddCounter(r, "workqueue_retries_total", "Total number of retries handled by workqueue",
                 labels),
      AddGauge(r, "workqueue_unfinished_work_seconds",
               "How many seconds of work has done that is in progress and hasn't been observed "
               "by work_duration. Large values indicate stuck threads. One can deduce the number "
               "of stuck threads by observing the rate at which this increases.",
               labels),
      AddGauge(r, "workqueue_longest_running_processor_seconds",
               "How many seconds has the longest running processor for workqueue been running.",
               labels),
  });
}

WorkQueue::WorkQueue(WorkQueueOptions options)
    : clock_(options.clock),
      rate_limiter_(options.rate_limiter != nullptr ? std::move(options.rate_limiter)
                                                    : DefaultControllerRateLimiter(options.clock)),
      metrics_(NewMetrics(options.registry, options.name)) {
  if (metrics_ != nullptr) metrics_thread_ = std::thread([this] { MetricsLoop(); });
}

WorkQueue::~WorkQueue() {
  {
    absl::MutexLock lock(&mu_);
    draining_ = false;
    ShutDownLocked();
    destroying_ = true;
    state_changed_.SignalAll();
  }
  if (metrics_thread_.joinable()) metrics_thread_.join();
}

void WorkQueue::Add(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  // The clock is only read for the metrics: it is the one cost an Add of a new key has beyond
  // the hash set and the deque.
  AddLocked(key, metrics_ != nullptr ? clock_->Now() : absl::InfinitePast());
}

void WorkQueue::AddLocked(absl::string_view key, absl::Time now) {
  if (shutting_down_) return;
  if (dirty_.contains(key)) return;  // Already queued, or queued again once its worker is Done.
  dirty_.emplace(key);
  if (metrics_ != nullptr) {
    metrics_->adds.Increment();
    metrics_->depth.Set(static_cast<double>(dirty_.size()));
    add_times_.try_emplace(key, now);
  }
  // A worker has it: Done() queues it, so that no second worker takes it meanwhile.
  if (processing_.contains(key)) return;
  queue_.emplace_back(key);
  key_available_.Signal();
}

std::optional<std::string> WorkQueue::Get() {
  absl::MutexLock lock(&mu_);
  while (true) {
    absl::Time deadline = absl::InfiniteFuture();
    if (!waiting_by_time_.empty()) {
      PromoteDueLocked(clock_->Now());
      if (!waiting_by_time_.empty()) deadline = waiting_by_time_.begin()->first;
    }
    if (!queue_.empty()) break;
    if (shutting_down_) return std::nullopt;
    clock_->WaitWithDeadline(&key_available_, &mu_, deadline);
  }
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  dirty_.erase(key);
  absl::Time start = absl::InfinitePast();
  if (metrics_ != nullptr) {
    start = clock_->Now();
    metrics_->depth.Set(static_cast<double>(dirty_.size()));
    if (auto it = add_times_.find(key); it != add_times_.end()) {
      metrics_->queue_duration.Observe(absl::ToDoubleSeconds(start - it->second));
      add_times_.erase(it);
    }
  }
  processing_.emplace(key, start);
  if (metrics_ != nullptr) UpdateUnfinishedWorkLocked(start);
  return key;
}

void WorkQueue::Done(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = processing_.find(key);
  if (it == processing_.end()) return;
  const absl::Time start = it->second;
  processing_.erase(it);
  if (dirty_.contains(key)) {
    queue_.emplace_back(key);
    key_available_.Signal();
  }
  if (processing_.empty() && queue_.empty()) state_changed_.SignalAll();  // Drained.
  if (metrics_ != nullptr) {
    const absl::Time now = clock_->Now();
    metrics_->work_duration.Observe(absl::ToDoubleSeconds(now - start));
    UpdateUnfinishedWorkLocked(now);
  }
}

int WorkQueue::Len() {
  absl::MutexLock lock(&mu_);
  if (!waiting_by_time_.empty()) PromoteDueLocked(clock_->Now());
  return static_cast<int>(queue_.size());
}

void WorkQueue::ShutDown() {
  absl::MutexLock lock(&mu_);
  draining_ = false;
  ShutDownLocked();
  state_changed_.SignalAll();
}

void WorkQueue::ShutDownWithDrain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  ShutDownLocked();
  // Also waits for queued keys (client-go waits only for those being processed): workers keep
  // taking them until Get() returns nullopt, so "drained" means all of them are Done.
  while (draining_ && !(processing_.empty() && queue_.empty())) state_changed_.Wait(&mu_);
}

void WorkQueue::ShutDownLocked() {
  shutting_down_ = true;
  // Nothing can be added any more, so delayed keys would never be queued.
  waiting_.clear();
  waiting_by_time_.clear();
  key_available_.SignalAll();
}

bool WorkQueue::ShuttingDown() {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

void WorkQueue::AddAfter(absl::string_view key, absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  if (metrics_ != nullptr) metrics_->retries.Increment();
  const absl::Time now = clock_->Now();
  if (delay <= absl::ZeroDuration()) {
    AddLocked(key, now);
    return;
  }
  const absl::Time ready = now + delay;
  auto [it, inserted] = waiting_.try_emplace(key, ready);
  if (!inserted) {
    if (ready >= it->second) return;  // The earlier add wins.
    waiting_by_time_.erase({it->second, it->first});
    it->second = ready;
  }
  const bool earliest = waiting_by_time_.empty() || ready < waiting_by_time_.begin()->first;
  waiting_by_time_.emplace(ready, it->first);
  // Waiting Get() calls sleep until the previous earliest due time; make them recompute.
  if (earliest) key_available_.SignalAll();
}

void WorkQueue::PromoteDueLocked(absl::Time now) {
  while (!waiting_by_time_.empty() && waiting_by_time_.begin()->first <= now) {
    auto node = waiting_by_time_.extract(waiting_by_time_.begin());
    waiting_.erase(node.value().second);
    // Its wait in the queue starts when it was due, not when a queue call noticed.
    AddLocked(node.value().second, node.value().first);
  }
}

void WorkQueue::AddRateLimited(absl::string_view key) {
  AddAfter(key, rate_limiter_->When(key));
}

void WorkQueue::Forget(absl::string_view key) { rate_limiter_->Forget(key); }

int WorkQueue::NumRequeues(absl::string_view key) { return rate_limiter_->NumRequeues(key); }

void WorkQueue::UpdateUnfinishedWorkLocked(absl::Time now) {
  double total = 0;
  double longest = 0;
  for (const auto& [key, start] : processing_) {
    const double age = absl::ToDoubleSeconds(now - start);
    total += age;
    longest = std::max(longest, age);
  }
  metrics_->unfinished_work.Set(total);
  metrics_->longest_running_processor.Set(longest);
}

void WorkQueue::MetricsLoop() {
  absl::MutexLock lock(&mu_);
  absl::Time next = absl::InfinitePast();  // Refresh at once: the thread may start late.
  while (!destroying_) {
    if (!clock_->WaitWithDeadline(&state_changed_, &mu_, next)) continue;
    const absl::Time now = clock_->Now();
    // Also keeps depth current when no Get() is waiting to promote due keys.
    if (!waiting_by_time_.empty()) PromoteDueLocked(now);
    UpdateUnfinishedWorkLocked(now);
    next = now + kUnfinishedWorkUpdatePeriod;
  }
}

}  // namespace capstan::client
