#include "services/scheduler/queue/scheduling_queue.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/client/clock.h"
#include "proto/core_v1.pb.h"

namespace capstan::scheduler {
namespace {

using capstan::core::v1::Pod;

Pod MakePod(const std::string& name, std::optional<int32_t> priority = std::nullopt) {
  Pod pod;
  pod.mutable_metadata()->set_namespace_("default");
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_uid("uid-" + name);
  if (priority) pod.mutable_spec()->set_priority(*priority);
  return pod;
}

std::string PopName(SchedulingQueue& q) {
  std::optional<QueuedPodInfo> info = q.Pop();
  if (!info) return "<closed>";
  return info->pod->metadata().name();
}

// Checks that every known pod is counted in exactly one place.
void ExpectSizes(const SchedulingQueue& q, size_t active, size_t backoff, size_t unschedulable) {
  EXPECT_EQ(q.ActiveSize(), active);
  EXPECT_EQ(q.BackoffSize(), backoff);
  EXPECT_EQ(q.UnschedulableSize(), unschedulable);
}

class SchedulingQueueTest : public ::testing::Test {
 protected:
  // Pops `name` (which must be next) and reports it unschedulable in its own cycle.
  QueuedPodInfo PopAndFail(const std::string& name) {
    std::optional<QueuedPodInfo> info = q_.Pop();
    EXPECT_TRUE(info.has_value());
    if (!info) return {};
    EXPECT_EQ(info->pod->metadata().name(), name);
    EXPECT_TRUE(q_.AddUnschedulable(*info, info->scheduling_cycle));
    return *info;
  }

  client::FakeClock clock_;
  SchedulingQueue q_{&clock_};
};

TEST_F(SchedulingQueueTest, PriorityDescendingThenFifo) {
  q_.Add(MakePod("low"));
  q_.Add(MakePod("high1", 10));
  q_.Add(MakePod("mid", 5));
  q_.Add(MakePod("high2", 10));
  clock_.Advance(absl::Seconds(1));
  q_.Add(MakePod("high3", 10));
  q_.Add(MakePod("negative", -1));
  ExpectSizes(q_, 6, 0, 0);
  EXPECT_EQ(PopName(q_), "high1");
  EXPECT_EQ(PopName(q_), "high2");
  EXPECT_EQ(PopName(q_), "high3");
  EXPECT_EQ(PopName(q_), "mid");
  EXPECT_EQ(PopName(q_), "low");
  EXPECT_EQ(PopName(q_), "negative");
  ExpectSizes(q_, 0, 0, 0);
  EXPECT_EQ(q_.InFlightSize(), 6u);
}

TEST_F(SchedulingQueueTest, OlderTimestampFirstAmongEqualPriority) {
  q_.Add(MakePod("a", 1));
  clock_.Advance(absl::Seconds(1));
  q_.Add(MakePod("b", 1));
  // "a" fails and comes back later than "b" was added: "b" goes first.
  PopAndFail("a");
  q_.MoveAllToActiveOrBackoff("NodeAdd");
  clock_.Advance(absl::Seconds(2));
  q_.Flush();
  ExpectSizes(q_, 2, 0, 0);
  EXPECT_EQ(PopName(q_), "b");
  EXPECT_EQ(PopName(q_), "a");
}

TEST_F(SchedulingQueueTest, PopSetsAttemptsCycleAndInitialAttemptTime) {
  const absl::Time t0 = clock_.Now();
  q_.Add(MakePod("p"));
  clock_.Advance(absl::Seconds(3));
  std::optional<QueuedPodInfo> info = q_.Pop();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->attempts, 1);
  EXPECT_EQ(info->timestamp, t0);
  EXPECT_EQ(info->initial_attempt_time, t0 + absl::Seconds(3));
  EXPECT_EQ(info->scheduling_cycle, 1);
  EXPECT_EQ(q_.SchedulingCycle(), 1);
  EXPECT_EQ(q_.Where(MakePod("p")), "inflight");

  ASSERT_TRUE(q_.AddUnschedulable(*info, info->scheduling_cycle));
  q_.MoveAllToActiveOrBackoff("NodeAdd");
  clock_.Advance(absl::Seconds(5));
  info = q_.Pop();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->attempts, 2);
  EXPECT_EQ(info->initial_attempt_time, t0 + absl::Seconds(3));
  EXPECT_EQ(info->scheduling_cycle, 2);
  q_.Done(*info->pod);
  EXPECT_EQ(q_.InFlightSize(), 0u);
  EXPECT_EQ(q_.Where(MakePod("p")), "");
}

TEST_F(SchedulingQueueTest, BackoffDurationDoublesAndCaps) {
  EXPECT_EQ(q_.BackoffDuration(1), absl::Seconds(1));
  EXPECT_EQ(q_.BackoffDuration(2), absl::Seconds(2));
  EXPECT_EQ(q_.BackoffDuration(3), absl::Seconds(4));
  EXPECT_EQ(q_.BackoffDuration(4), absl::Seconds(8));
  EXPECT_EQ(q_.BackoffDuration(5), absl::Seconds(10));
  EXPECT_EQ(q_.BackoffDuration(6), absl::Seconds(10));
  EXPECT_EQ(q_.BackoffDuration(100), absl::Seconds(10));
}

// Each failure with a move request during its cycle goes to backoffQ for 1 s, 2 s, 4 s, 8 s,
// 10 s, 10 s: the pod stays in backoffQ until just before the expiry and is active at it.
TEST_F(SchedulingQueueTest, BackoffExpiryPerAttempt) {
  q_.Add(MakePod("p"));
  const std::vector<int> expected_seconds = {1, 2, 4, 8, 10, 10};
  for (size_t i = 0; i < expected_seconds.size(); ++i) {
    std::optional<QueuedPodInfo> info = q_.Pop();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->attempts, static_cast<int>(i + 1));
    q_.MoveAllToActiveOrBackoff("NodeUpdate");  // during the cycle
    ASSERT_TRUE(q_.AddUnschedulable(*info, info->scheduling_cycle));
    ExpectSizes(q_, 0, 1, 0);
    clock_.Advance(absl::Seconds(expected_seconds[i]) - absl::Milliseconds(1));
    q_.Flush();
    ExpectSizes(q_, 0, 1, 0);
    clock_.Advance(absl::Milliseconds(1));
    q_.Flush();
    ExpectSizes(q_, 1, 0, 0);
  }
}

TEST_F(SchedulingQueueTest, FailedPodIsUnschedulableUntilNodeAddThenBackoffThenActive) {
  q_.Add(MakePod("p"));
  PopAndFail("p");
  ExpectSizes(q_, 0, 0, 1);
  EXPECT_EQ(q_.Where(MakePod("p")), "unschedulable");
  // Nothing moves it before a cluster event (or the max stay).
  clock_.Advance(absl::Milliseconds(500));
  q_.Flush();
  ExpectSizes(q_, 0, 0, 1);

  q_.MoveAllToActiveOrBackoff("NodeAdd");
  ExpectSizes(q_, 0, 1, 0);  // 500 ms of its 1 s backoff left
  EXPECT_EQ(q_.Where(MakePod("p")), "backoff");
  clock_.Advance(absl::Milliseconds(499));
  q_.Flush();
  ExpectSizes(q_, 0, 1, 0);
  clock_.Advance(absl::Milliseconds(1));
  q_.Flush();
  ExpectSizes(q_, 1, 0, 0);
  EXPECT_EQ(PopName(q_), "p");
}

TEST_F(SchedulingQueueTest, MoveAfterBackoffExpiredGoesStraightToActive) {
  q_.Add(MakePod("p"));
  PopAndFail("p");
  clock_.Advance(absl::Seconds(2));
  q_.MoveAllToActiveOrBackoff("NodeAdd");
  ExpectSizes(q_, 1, 0, 0);
}

TEST_F(SchedulingQueueTest, MoveRequestDuringCycleSendsToBackoff) {
  q_.Add(MakePod("a"));
  q_.Add(MakePod("b"));
  // A move request before "a" is popped does not concern it.
  q_.MoveAllToActiveOrBackoff("NodeAdd");
  std::optional<QueuedPodInfo> a = q_.Pop();
  ASSERT_TRUE(a);
  ASSERT_TRUE(q_.AddUnschedulable(*a, a->scheduling_cycle));
  ExpectSizes(q_, 1, 0, 1);

  std::optional<QueuedPodInfo> b = q_.Pop();
  ASSERT_TRUE(b);
  q_.MoveAllToActiveOrBackoff("NodeAdd");  // moves "a" (to backoff), and marks b's cycle
  ExpectSizes(q_, 0, 1, 0);
  ASSERT_TRUE(q_.AddUnschedulable(*b, b->scheduling_cycle));
  ExpectSizes(q_, 0, 2, 0);
  EXPECT_EQ(q_.Where(MakePod("b")), "backoff");
}

TEST_F(SchedulingQueueTest, MoveRequestInLaterCycleAlsoCountsForEarlierPod) {
  q_.Add(MakePod("a"));
  q_.Add(MakePod("b"));
  std::optional<QueuedPodInfo> a = q_.Pop();
  std::optional<QueuedPodInfo> b = q_.Pop();  // cycle 2 (two scheduling goroutines' worth)
  ASSERT_TRUE(a && b);
  q_.MoveAllToActiveOrBackoff("PodDelete");  // move request at cycle 2 >= a's cycle 1
  ASSERT_TRUE(q_.AddUnschedulable(*a, a->scheduling_cycle));
  EXPECT_EQ(q_.Where(MakePod("a")), "backoff");
}

TEST_F(SchedulingQueueTest, MaxUnschedulableStayIsFiveMinutes) {
  q_.Add(MakePod("p"));
  PopAndFail("p");
  clock_.Advance(absl::Minutes(5));
  q_.Flush();
  ExpectSizes(q_, 0, 0, 1);
  clock_.Advance(absl::Seconds(1));
  q_.Flush();
  ExpectSizes(q_, 1, 0, 0);
  EXPECT_EQ(PopName(q_), "p");
}

TEST_F(SchedulingQueueTest, BlockedPopWakesForBackoffExpiryAndMaxStay) {
  q_.Add(MakePod("b"));
  q_.Add(MakePod("u"));
  std::optional<QueuedPodInfo> b = q_.Pop();
  std::optional<QueuedPodInfo> u = q_.Pop();
  ASSERT_TRUE(b && u);
  ASSERT_TRUE(q_.AddUnschedulable(*u, u->scheduling_cycle));
  q_.MoveAllToActiveOrBackoff("NodeAdd");  // u -> backoff (1 s)
  ASSERT_TRUE(q_.AddUnschedulable(*b, b->scheduling_cycle));  // b -> backoff (move in its cycle)
  ExpectSizes(q_, 0, 2, 0);

  std::atomic<int> popped{0};
  std::thread t([&] {
    while (q_.Pop()) ++popped;
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(popped.load(), 0);
  clock_.Advance(absl::Seconds(1));
  for (int i = 0; i < 5000 && popped.load() < 2; ++i) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(popped.load(), 2);
  q_.Close();
  t.join();
}

TEST_F(SchedulingQueueTest, BlockedPopWakesAtMaxStay) {
  q_.Add(MakePod("p"));
  PopAndFail("p");
  std::optional<QueuedPodInfo> got;
  absl::Notification done;
  std::thread t([&] {
    got = q_.Pop();
    done.Notify();
  });
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(done.HasBeenNotified());
  clock_.Advance(absl::Minutes(5) + absl::Seconds(1));
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  t.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->pod->metadata().name(), "p");
}

TEST_F(SchedulingQueueTest, PopBlocksUntilAdd) {
  std::optional<QueuedPodInfo> got;
  absl::Notification done;
  std::thread t([&] {
    got = q_.Pop();
    done.Notify();
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(done.HasBeenNotified());
  q_.Add(MakePod("p"));
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  t.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->pod->metadata().name(), "p");
}

TEST_F(SchedulingQueueTest, PopBlocksUntilClose) {
  std::optional<QueuedPodInfo> got = QueuedPodInfo{};
  absl::Notification done;
  std::thread t([&] {
    got = q_.Pop();
    done.Notify();
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(done.HasBeenNotified());
  q_.Close();
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  t.join();
  EXPECT_FALSE(got.has_value());
  q_.Add(MakePod("late"));
  EXPECT_FALSE(q_.Pop().has_value());
}

TEST_F(SchedulingQueueTest, UpdateInActiveReordersByPriority) {
  q_.Add(MakePod("a", 1));
  q_.Add(MakePod("b", 1));
  Pod b2 = MakePod("b", 100);
  q_.Update(MakePod("b", 1), b2);
  ExpectSizes(q_, 2, 0, 0);
  std::optional<QueuedPodInfo> info = q_.Pop();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->pod->metadata().name(), "b");
  EXPECT_EQ(PodPriority(*info->pod), 100);
  EXPECT_EQ(PopName(q_), "a");
}

TEST_F(SchedulingQueueTest, UpdateInBackoffUpdatesInPlace) {
  q_.Add(MakePod("p"));
  std::optional<QueuedPodInfo> info = q_.Pop();
  ASSERT_TRUE(info);
  q_.MoveAllToActiveOrBackoff("NodeAdd");
  ASSERT_TRUE(q_.AddUnschedulable(*info, info->scheduling_cycle));
  Pod p2 = MakePod("p");
  (*p2.mutable_metadata()->mutable_labels())["x"] = "y";
  q_.Update(MakePod("p"), p2);
  ExpectSizes(q_, 0, 1, 0);  // still backing off
  clock_.Advance(absl::Seconds(1));
  info = q_.Pop();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->pod->metadata().labels().at("x"), "y");
}

TEST_F(SchedulingQueueTest, UpdateOfUnschedulablePod) {
  q_.Add(MakePod("p"));
  PopAndFail("p");
  // A status-only update cannot make it schedulable: it stays.
  Pod status_only = MakePod("p");
  status_only.mutable_status()->set_phase("Pending");
  status_only.mutable_metadata()->set_resource_version("7");
  q_.Update(MakePod("p"), status_only);
  ExpectSizes(q_, 0, 0, 1);

  // A spec/label change moves it: to backoff while backing off...
  Pod labelled = status_only;
  (*labelled.mutable_metadata()->mutable_labels())["a"] = "b";
  q_.Update(status_only, labelled);
  ExpectSizes(q_, 0, 1, 0);

  // ...and to active once the backoff is over.
  clock_.Advance(absl::Seconds(1));
  std::optional<QueuedPodInfo> info = q_.Pop();
  ASSERT_TRUE(info);
  ASSERT_TRUE(q_.AddUnschedulable(*info, info->scheduling_cycle));
  ExpectSizes(q_, 0, 0, 1);
  clock_.Advance(absl::Seconds(3));  // attempts 2: 2 s backoff, over
  Pod relabelled = labelled;
  (*relabelled.mutable_metadata()->mutable_labels())["a"] = "c";
  q_.Update(labelled, relabelled);
  ExpectSizes(q_, 1, 0, 0);
  info = q_.Pop();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->pod->metadata().labels().at("a"), "c");
}

TEST_F(SchedulingQueueTest, UpdateWhileInFlightIsKeptAndSendsToBackoff) {
  q_.Add(MakePod("p"));
  std::optional<QueuedPodInfo> info = q_.Pop();
  ASSERT_TRUE(info);
  Pod p2 = MakePod("p", 7);
  q_.Update(MakePod("p"), p2);
  ExpectSizes(q_, 0, 0, 0);  // not duplicated into activeQ
  ASSERT_TRUE(q_.AddUnschedulable(*info, info->scheduling_cycle));
  ExpectSizes(q_, 0, 1, 0);
  clock_.Advance(absl::Seconds(1));
  info = q_.Pop();
  ASSERT_TRUE(info);
  EXPECT_EQ(PodPriority(*info->pod), 7);
}

TEST_F(SchedulingQueueTest, UpdateOfUnknownPodAddsIt) {
  q_.Update(MakePod("p"), MakePod("p"));
  ExpectSizes(q_, 1, 0, 0);
}

TEST_F(SchedulingQueueTest, DeleteFromEachSubQueue) {
  q_.Add(MakePod("backoff"));
  std::optional<QueuedPodInfo> b = q_.Pop();
  ASSERT_TRUE(b);
  q_.MoveAllToActiveOrBackoff("NodeAdd");  // during b's cycle
  ASSERT_TRUE(q_.AddUnschedulable(*b, b->scheduling_cycle));
  q_.Add(MakePod("unsched"));
  PopAndFail("unsched");  // later cycle than the move request: unschedulable
  q_.Add(MakePod("inflight"));
  std::optional<QueuedPodInfo> f = q_.Pop();
  ASSERT_TRUE(f);
  q_.Add(MakePod("active"));
  EXPECT_EQ(q_.Where(MakePod("backoff")), "backoff");
  EXPECT_EQ(q_.Where(MakePod("unsched")), "unschedulable");
  EXPECT_EQ(q_.Where(MakePod("inflight")), "inflight");
  EXPECT_EQ(q_.Where(MakePod("active")), "active");
  ExpectSizes(q_, 1, 1, 1);
  EXPECT_EQ(q_.InFlightSize(), 1u);

  q_.Delete(MakePod("active"));
  ExpectSizes(q_, 0, 1, 1);
  q_.Delete(MakePod("backoff"));
  ExpectSizes(q_, 0, 0, 1);
  q_.Delete(MakePod("unsched"));
  ExpectSizes(q_, 0, 0, 0);
  q_.Delete(MakePod("inflight"));
  EXPECT_EQ(q_.InFlightSize(), 0u);
  EXPECT_FALSE(q_.AddUnschedulable(*f, f->scheduling_cycle));  // deleted while in flight
  ExpectSizes(q_, 0, 0, 0);
  for (const char* name : {"active", "backoff", "unsched", "inflight"}) {
    EXPECT_EQ(q_.Where(MakePod(name)), "") << name;
  }
  // Nothing comes back on events or time.
  q_.MoveAllToActiveOrBackoff("NodeAdd");
  clock_.Advance(absl::Minutes(10));
  q_.Flush();
  ExpectSizes(q_, 0, 0, 0);
}

TEST_F(SchedulingQueueTest, DeleteFromUnschedulable) {
  q_.Add(MakePod("p"));
  PopAndFail("p");
  ExpectSizes(q_, 0, 0, 1);
  q_.Delete(MakePod("p"));
  ExpectSizes(q_, 0, 0, 0);
  q_.MoveAllToActiveOrBackoff("NodeAdd");
  ExpectSizes(q_, 0, 0, 0);
}

TEST_F(SchedulingQueueTest, AddUnschedulableRejectsPodsNotInFlight) {
  q_.Add(MakePod("p"));
  QueuedPodInfo fake;
  fake.pod = std::make_shared<const Pod>(MakePod("p"));
  EXPECT_FALSE(q_.AddUnschedulable(fake, 0));  // queued, not popped
  fake.pod = std::make_shared<const Pod>(MakePod("never"));
  EXPECT_FALSE(q_.AddUnschedulable(fake, 0));
  ExpectSizes(q_, 1, 0, 0);
}

TEST_F(SchedulingQueueTest, AddOfQueuedPodMovesItToActiveWithoutDuplicate) {
  q_.Add(MakePod("p"));
  PopAndFail("p");
  ExpectSizes(q_, 0, 0, 1);
  q_.Add(MakePod("p"));
  ExpectSizes(q_, 1, 0, 0);
  q_.Add(MakePod("p"));
  ExpectSizes(q_, 1, 0, 0);
}

TEST_F(SchedulingQueueTest, KeysByNamespaceNameWithoutUid) {
  Pod a = MakePod("a");
  a.mutable_metadata()->clear_uid();
  EXPECT_EQ(PodKey(a), "default/a");
  q_.Add(a);
  q_.Delete(a);
  ExpectSizes(q_, 0, 0, 0);
}

// Producers add, update and delete while a consumer pops and fails pods and events move them;
// afterwards every pod is in exactly one place.
TEST(SchedulingQueueConcurrencyTest, NoPodInTwoPlaces) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  client::FakeClock clock;
  SchedulingQueue q(&clock);
  constexpr int kPods = 200;
  std::thread consumer([&] {
    int n = 0;
    while (std::optional<QueuedPodInfo> info = q.Pop()) {
      if (++n % 3 == 0) {
        q.Done(*info->pod);
      } else {
        q.AddUnschedulable(*info, info->scheduling_cycle);
      }
    }
  });
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&, t] {
      for (int i = t; i < kPods; i += 4) {
        Pod p = MakePod("p" + std::to_string(i), i % 5);
        q.Add(p);
        if (i % 7 == 0) {
          Pod p2 = p;
          p2.mutable_spec()->set_priority(100);
          q.Update(p, p2);
        }
        if (i % 11 == 0) q.Delete(p);
        if (i % 13 == 0) q.MoveAllToActiveOrBackoff("NodeAdd");
        if (i % 17 == 0) clock.Advance(absl::Milliseconds(300));
      }
    });
  }
  for (std::thread& t : producers) t.join();
  clock.Advance(absl::Minutes(6));
  q.Close();
  consumer.join();
  // The consumer may have failed pods after the first advance: their stay starts then.
  clock.Advance(absl::Minutes(6));
  q.Flush();
  size_t places = 0;
  for (int i = 0; i < kPods; ++i) {
    const std::string where = q.Where(MakePod("p" + std::to_string(i)));
    if (!where.empty()) ++places;
  }
  EXPECT_EQ(places, q.ActiveSize() + q.BackoffSize() + q.UnschedulableSize() + q.InFlightSize());
  EXPECT_EQ(q.UnschedulableSize(), 0u);  // the max stay has passed for all
}

}  // namespace
}  // namespace capstan::scheduler
