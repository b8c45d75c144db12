#include "lib/client/workqueue.h"

#include <atomic>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/client/clock.h"
#include "lib/client/rate_limiter.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace capstan::client {
namespace {

using ::testing::Test;

TEST(WorkQueueTest, AddDeduplicatesQueuedKeys) {
  WorkQueue queue;
  queue.Add("ns/a");
  queue.Add("ns/a");
  queue.Add("ns/b");
  queue.Add("ns/a");
  EXPECT_EQ(queue.Len(), 2);
  EXPECT_EQ(queue.Get(), "ns/a");
  EXPECT_EQ(queue.Get(), "ns/b");
  EXPECT_EQ(queue.Len(), 0);
}

TEST(WorkQueueTest, HandsOutKeysInOrderOfFirstAdd) {
  WorkQueue queue;
  for (const char* key : {"c", "a", "b", "a", "c"}) queue.Add(key);
  EXPECT_EQ(queue.Get(), "c");
  EXPECT_EQ(queue.Get(), "a");
  EXPECT_EQ(queue.Get(), "b");
}

TEST(WorkQueueTest, KeyAddedWhileProcessingIsHeldBackUntilDone) {
  WorkQueue queue;
  queue.Add("ns/a");
  ASSERT_EQ(queue.Get(), "ns/a");
  queue.Add("ns/a");
  queue.Add("ns/a");
  // Not available to another worker while the first one has it.
  EXPECT_EQ(queue.Len(), 0);
  queue.Done("ns/a");
  EXPECT_EQ(queue.Len(), 1);
  EXPECT_EQ(queue.Get(), "ns/a");
  queue.Done("ns/a");
  EXPECT_EQ(queue.Len(), 0);
}

TEST(WorkQueueTest, KeyBeingProcessedIsNotHandedOutEvenAtShutdown) {
  WorkQueue queue;
  queue.Add("ns/a");
  ASSERT_EQ(queue.Get(), "ns/a");
  queue.Add("ns/a");
  queue.ShutDown();
  // The only key is being processed, so the queue is empty for Get.
  EXPECT_EQ(queue.Get(), std::nullopt);
  // Done queues the pending re-add; the queue still drains it.
  queue.Done("ns/a");
  EXPECT_EQ(queue.Get(), "ns/a");
}

TEST(WorkQueueTest, DoneOfAKeyNotBeingProcessedIsIgnored) {
  WorkQueue queue;
  queue.Done("ns/x");
  EXPECT_EQ(queue.Len(), 0);
  queue.Add("ns/x");
  queue.Done("ns/x");  // Queued, never handed out: must not be queued twice.
  EXPECT_EQ(queue.Len(), 1);
  EXPECT_EQ(queue.Get(), "ns/x");
  EXPECT_EQ(queue.Len(), 0);
}

TEST(WorkQueueTest, ShutDownDrainsQueuedKeysAndIgnoresNewOnes) {
  WorkQueue queue;
  queue.Add("a");
  queue.Add("b");
  EXPECT_FALSE(queue.ShuttingDown());
  queue.ShutDown();
  EXPECT_TRUE(queue.ShuttingDown());
  queue.Add("c");
  queue.AddAfter("d", absl::ZeroDuration());
  EXPECT_EQ(queue.Get(), "a");
  EXPECT_EQ(queue.Get(), "b");
  EXPECT_EQ(queue.Get(), std::nullopt);
  EXPECT_EQ(queue.Get(), std::nullopt);
}

TEST(WorkQueueTest, ShutDownWakesBlockedGets) {
  WorkQueue queue;
  std::vector<std::thread> workers;
  std::atomic<int> returned{0};
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&] {
      EXPECT_EQ(queue.Get(), std::nullopt);
      ++returned;
    });
  }
  queue.ShutDown();
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(returned.load(), 4);
}

TEST(WorkQueueTest, GetBlocksUntilAdd) {
  WorkQueue queue;
  std::optional<std::string> got;
  std::thread worker([&] { got = queue.Get(); });
  queue.Add("ns/a");
  worker.join();
  EXPECT_EQ(got, "ns/a");
}

TEST(WorkQueueTest, ShutDownWithDrainWaitsForEveryKeyToBeDone) {
  WorkQueue queue;
  queue.Add("a");
  queue.Add("b");
  ASSERT_EQ(queue.Get(), "a");  // "a" is being processed, "b" still queued.

  std::atomic<bool> drained{false};
  std::thread shutter([&] {
    queue.ShutDownWithDrain();
    drained = true;
  });
  while (!queue.ShuttingDown()) std::this_thread::yield();
  // The drain must still be waiting. (A short real sleep gives a broken drain time to return;
  // the check cannot flake for a correct queue.)
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(drained.load());
  queue.Done("a");
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(drained.load()) << "returned while \"b\" was still queued";
  EXPECT_EQ(queue.Get(), "b");
  queue.Add("c");  // Ignored: shutting down.
  queue.Done("b");
  shutter.join();
  EXPECT_TRUE(drained.load());
  EXPECT_EQ(queue.Get(), std::nullopt);
}

TEST(WorkQueueTest, ShutDownReleasesAPendingDrain) {
  WorkQueue queue;
  queue.Add("a");
  ASSERT_EQ(queue.Get(), "a");
  std::thread shutter([&] { queue.ShutDownWithDrain(); });
  while (!queue.ShuttingDown()) std::this_thread::yield();
  queue.ShutDown();
  shutter.join();  // Would hang if ShutDown did not release it.
  queue.Done("a");
}

TEST(WorkQueueTest, ShutDownWithDrainOfAnEmptyQueueReturns) {
  WorkQueue queue;
  queue.ShutDownWithDrain();
  EXPECT_TRUE(queue.ShuttingDown());
}

// 8 workers, producers re-adding a few keys all the time: no key is ever processed by two
// workers at once, and every Add is followed by a processing of that key that started after it.
TEST(WorkQueueTest, StressOneWorkerPerKeyAndNoLostAdds) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  constexpr int kWorkers = 8;
  constexpr int kProducers = 4;
  constexpr int kKeys = 32;
  constexpr int kAddsPerProducer = 20'000;
  WorkQueue queue;

  // Bumped by a producer just before it adds the key.
  std::vector<std::atomic<int64_t>> generation(kKeys);
  for (auto& g : generation) g = 0;

  absl::Mutex mu;
  absl::flat_hash_set<int> in_progress;          // Guarded by mu.
  std::vector<int64_t> seen_generation(kKeys);  // Guarded by mu: the newest seen at a Get.
  int overlaps = 0;                             // Guarded by mu.
  std::atomic<int64_t> processed{0};

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (std::optional<std::string> key = queue.Get()) {
        const int k = std::stoi(*key);
        {
          absl::MutexLock lock(&mu);
          if (!in_progress.insert(k).second) ++overlaps;
          seen_generation[k] = std::max(seen_generation[k], generation[k].load());
        }
        std::this_thread::yield();  // Widen the window in which a second worker could take k.
        {
          absl::MutexLock lock(&mu);
          in_progress.erase(k);
        }
        ++processed;
        queue.Done(*key);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(p);
      for (int i = 0; i < kAddsPerProducer; ++i) {
        const int k = static_cast<int>(rng() % kKeys);
        ++generation[k];
        queue.Add(absl::StrCat(k));
      }
    });
  }
  for (std::thread& t : producers) t.join();
  queue.ShutDownWithDrain();
  for (std::thread& t : workers) t.join();

  absl::MutexLock lock(&mu);
  EXPECT_EQ(overlaps, 0);
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(seen_generation[k], generation[k].load()) << "key " << k << " lost an add";
  }
  EXPECT_GE(processed.load(), kKeys);
  EXPECT_LE(processed.load(), kProducers * kAddsPerProducer);
}

// --- delayed adds (fake clock) ---

TEST(WorkQueueTest, AddAfterIsInvisibleUntilDue) {
  FakeClock clock;
  WorkQueueOptions options;
  options.clock = &clock;
  WorkQueue queue(std::move(options));
  queue.AddAfter("ns/a", absl::Seconds(10));
  EXPECT_EQ(queue.Len(), 0);
  clock.Advance(absl::Seconds(9));
  EXPECT_EQ(queue.Len(), 0);
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 1);
  EXPECT_EQ(queue.Get(), "ns/a");
}

TEST(WorkQueueTest, AddAfterWithoutDelayAddsAtOnce) {
  FakeClock clock;
  WorkQueueOptions options;
  options.clock = &clock;
  WorkQueue queue(std::move(options));
  queue.AddAfter("ns/a", absl::ZeroDuration());
  queue.AddAfter("ns/b", -absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 2);
}

TEST(WorkQueueTest, BlockedGetWakesWhenDelayedKeyIsDue) {
  FakeClock clock;
  WorkQueueOptions options;
  options.clock = &clock;
  WorkQueue queue(std::move(options));
  std::optional<std::string> got;
  std::thread worker([&] { got = queue.Get(); });
  queue.AddAfter("ns/late", absl::Minutes(5));
  queue.AddAfter("ns/soon", absl::Seconds(1));  // Earlier than what the worker sleeps for.
  clock.Advance(absl::Seconds(1));
  worker.join();
  EXPECT_EQ(got, "ns/soon");
  EXPECT_EQ(queue.Len(), 0);
}

TEST(WorkQueueTest, EarliestAddAfterWins) {
  FakeClock clock;
  WorkQueueOptions options;
  options.clock = &clock;
  WorkQueue queue(std::move(options));
  queue.AddAfter("ns/a", absl::Seconds(10));
  queue.AddAfter("ns/a", absl::Seconds(5));
  queue.AddAfter("ns/a", absl::Seconds(20));
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(queue.Len(), 1);
  ASSERT_EQ(queue.Get(), "ns/a");
  queue.Done("ns/a");
  // The later times were merged into the earliest: no second add.
  clock.Advance(absl::Seconds(100));
  EXPECT_EQ(queue.Len(), 0);
}

TEST(WorkQueueTest, DelayedKeyAlreadyQueuedIsNotDuplicated) {
  FakeClock clock;
  WorkQueueOptions options;
  options.clock = &clock;
  WorkQueue queue(std::move(options));
  queue.Add("ns/a");
  queue.AddAfter("ns/a", absl::Seconds(1));
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 1);
}

TEST(WorkQueueTest, ShutDownDropsDelayedKeys) {
  FakeClock clock;
  WorkQueueOptions options;
  options.clock = &clock;
  WorkQueue queue(std::move(options));
  queue.AddAfter("ns/a", absl::Seconds(1));
  queue.ShutDown();
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(queue.Get(), std::nullopt);
}

TEST(WorkQueueTest, AddRateLimitedBacksOffUntilForget) {
  FakeClock clock;
  WorkQueueOptions options;
  options.clock = &clock;
  options.rate_limiter = std::make_unique<ItemExponentialFailureRateLimiter>(
      absl::Milliseconds(5), absl::Seconds(1000));
  WorkQueue queue(std::move(options));

  queue.AddRateLimited("ns/a");  // 5 ms
  EXPECT_EQ(queue.NumRequeues("ns/a"), 1);
  clock.Advance(absl::Milliseconds(4));
  EXPECT_EQ(queue.Len(), 0);
  clock.Advance(absl::Milliseconds(1));
  ASSERT_EQ(queue.Get(), "ns/a");
  queue.AddRateLimited("ns/a");  // 10 ms; held back until Done anyway.
  queue.Done("ns/a");
  clock.Advance(absl::Milliseconds(9));
  EXPECT_EQ(queue.Len(), 0);
  clock.Advance(absl::Milliseconds(1));
  ASSERT_EQ(queue.Get(), "ns/a");
  queue.Done("ns/a");
  EXPECT_EQ(queue.NumRequeues("ns/a"), 2);

  queue.Forget("ns/a");
  EXPECT_EQ(queue.NumRequeues("ns/a"), 0);
  queue.AddRateLimited("ns/a");  // Back to 5 ms.
  clock.Advance(absl::Milliseconds(5));
  EXPECT_EQ(queue.Len(), 1);
}

// --- metrics ---

// The value of one series of `family` for the queue called `queue`, or null.
const prometheus::ClientMetric* Series(const std::vector<prometheus::MetricFamily>& families,
                                       const std::string& family, const std::string& queue) {
  for (const prometheus::MetricFamily& f : families) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      for (const prometheus::ClientMetric::Label& label : m.label) {
        if (label.name == "name" && label.value == queue) return &m;
      }
    }
  }
  return nullptr;
}

class WorkQueueMetricsTest : public Test {
 protected:
  double Gauge(const std::string& family) {
    const prometheus::ClientMetric* m = Series(registry_.Collect(), family, "test");
    EXPECT_NE(m, nullptr) << family;
    return m == nullptr ? -1 : m->gauge.value;
  }
  double Counter(const std::string& family) {
    const prometheus::ClientMetric* m = Series(registry_.Collect(), family, "test");
    EXPECT_NE(m, nullptr) << family;
    return m == nullptr ? -1 : m->counter.value;
  }
  prometheus::ClientMetric::Histogram Histogram(const std::string& family) {
    const prometheus::ClientMetric* m = Series(registry_.Collect(), family, "test");
    EXPECT_NE(m, nullptr) << family;
    return m == nullptr ? prometheus::ClientMetric::Histogram{} : m->histogram;
  }

  prometheus::Registry registry_;
  FakeClock clock_;
};

TEST_F(WorkQueueMetricsTest, ValuesAfterAFewOperations) {
  WorkQueueOptions options;
  options.name = "test";
  options.registry = &registry_;
  options.clock = &clock_;
  WorkQueue queue(std::move(options));

  queue.Add("a");
  queue.Add("a");  // Deduplicated: not an add.
  queue.Add("b");
  EXPECT_EQ(Counter("workqueue_adds_total"), 2);
  EXPECT_EQ(Gauge("workqueue_depth"), 2);

  clock_.Advance(absl::Seconds(1));
  ASSERT_EQ(queue.Get(), "a");  // Queued for 1 s.
  EXPECT_EQ(Gauge("workqueue_depth"), 1);
  clock_.Advance(absl::Seconds(2));
  ASSERT_EQ(queue.Get(), "b");  // Queued for 3 s.
  EXPECT_EQ(Gauge("workqueue_depth"), 0);
  prometheus::ClientMetric::Histogram queued = Histogram("workqueue_queue_duration_seconds");
  EXPECT_EQ(queued.sample_count, 2u);
  EXPECT_DOUBLE_EQ(queued.sample_sum, 4.0);
  // "a" has been processed for 2 s, "b" for 0 s.
  EXPECT_DOUBLE_EQ(Gauge("workqueue_unfinished_work_seconds"), 2.0);
  EXPECT_DOUBLE_EQ(Gauge("workqueue_longest_running_processor_seconds"), 2.0);

  clock_.Advance(absl::Seconds(1));
  queue.Done("a");  // Worked on for 3 s.
  prometheus::ClientMetric::Histogram worked = Histogram("workqueue_work_duration_seconds");
  EXPECT_EQ(worked.sample_count, 1u);
  EXPECT_DOUBLE_EQ(worked.sample_sum, 3.0);
  EXPECT_DOUBLE_EQ(Gauge("workqueue_unfinished_work_seconds"), 1.0);
  EXPECT_DOUBLE_EQ(Gauge("workqueue_longest_running_processor_seconds"), 1.0);
  queue.Done("b");
  EXPECT_DOUBLE_EQ(Gauge("workqueue_unfinished_work_seconds"), 0.0);

  EXPECT_EQ(Counter("workqueue_retries_total"), 0);
  queue.AddAfter("c", absl::Seconds(1));
  queue.AddRateLimited("d");
  EXPECT_EQ(Counter("workqueue_retries_total"), 2);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(queue.Len(), 2);
  EXPECT_EQ(Counter("workqueue_adds_total"), 4);
  EXPECT_EQ(Gauge("workqueue_depth"), 2);
  // "c" was due 1 s ago: its time in the queue counts from then.
  ASSERT_EQ(queue.Get(), "d");
  ASSERT_EQ(queue.Get(), "c");
  EXPECT_DOUBLE_EQ(Histogram("workqueue_queue_duration_seconds").sample_sum, 4.0 + 1.995 + 1.0);
}

TEST_F(WorkQueueMetricsTest, UnfinishedWorkIsRefreshedWithoutQueueCalls) {
  WorkQueueOptions options;
  options.name = "test";
  options.registry = &registry_;
  options.clock = &clock_;
  WorkQueue queue(std::move(options));
  queue.Add("stuck");
  ASSERT_EQ(queue.Get(), "stuck");
  clock_.Advance(absl::Seconds(30));
  // The metrics thread notices within a millisecond or so of real time; no deadline here, the
  // test harness's timeout is the limit.
  while (Gauge("workqueue_longest_running_processor_seconds") != 30.0) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_DOUBLE_EQ(Gauge("workqueue_unfinished_work_seconds"), 30.0);
  queue.Done("stuck");
}

}  // namespace
}  // namespace capstan::client
