#include "lib/client/rate_limiter.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/client/clock.h"

namespace capstan::client {
namespace {

TEST(ItemExponentialFailureRateLimiterTest, DoublesPerKeyFromBase) {
  ItemExponentialFailureRateLimiter limiter;  // 5 ms .. 1000 s.
  EXPECT_EQ(limiter.When("ns/a"), absl::Milliseconds(5));
  EXPECT_EQ(limiter.When("ns/a"), absl::Milliseconds(10));
  EXPECT_EQ(limiter.When("ns/a"), absl::Milliseconds(20));
  EXPECT_EQ(limiter.When("ns/a"), absl::Milliseconds(40));
  EXPECT_EQ(limiter.When("ns/a"), absl::Milliseconds(80));
  EXPECT_EQ(limiter.NumRequeues("ns/a"), 5);
  // Another key has its own exponent.
  EXPECT_EQ(limiter.When("ns/b"), absl::Milliseconds(5));
  EXPECT_EQ(limiter.NumRequeues("ns/b"), 1);
  EXPECT_EQ(limiter.NumRequeues("ns/never"), 0);
}

TEST(ItemExponentialFailureRateLimiterTest, CappedAtMaxDelayAndNeverOverflows) {
  ItemExponentialFailureRateLimiter limiter(absl::Milliseconds(1), absl::Seconds(1));
  const std::vector<absl::Duration> expected = {
      absl::Milliseconds(1),   absl::Milliseconds(2),   absl::Milliseconds(4),
      absl::Milliseconds(8),   absl::Milliseconds(16),  absl::Milliseconds(32),
      absl::Milliseconds(64),  absl::Milliseconds(128), absl::Milliseconds(256),
      absl::Milliseconds(512), absl::Seconds(1),        absl::Seconds(1)};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(limiter.When("k"), expected[i]) << "requeue " << i;
  }
  // Far past 2^63 ns the delay stays at the cap.
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(limiter.When("k"), absl::Seconds(1)) << i;
}

TEST(ItemExponentialFailureRateLimiterTest, DefaultCapIs1000Seconds) {
  ItemExponentialFailureRateLimiter limiter;
  absl::Duration last;
  for (int i = 0; i < 40; ++i) last = limiter.When("k");
  EXPECT_EQ(last, absl::Seconds(1000));
}

TEST(ItemExponentialFailureRateLimiterTest, ForgetResetsBackoff) {
  ItemExponentialFailureRateLimiter limiter;
  limiter.When("k");
  limiter.When("k");
  EXPECT_EQ(limiter.When("k"), absl::Milliseconds(20));
  limiter.Forget("k");
  EXPECT_EQ(limiter.NumRequeues("k"), 0);
  EXPECT_EQ(limiter.When("k"), absl::Milliseconds(5));
  EXPECT_EQ(limiter.NumRequeues("k"), 1);
}

TEST(BucketRateLimiterTest, BurstThenRefillAtQps) {
  FakeClock clock;
  BucketRateLimiter limiter(/*qps=*/10, /*burst=*/3, &clock);
  // The bucket starts full: the burst goes through without delay.
  EXPECT_EQ(limiter.When("a"), absl::ZeroDuration());
  EXPECT_EQ(limiter.When("b"), absl::ZeroDuration());
  EXPECT_EQ(limiter.When("c"), absl::ZeroDuration());
  // Then each reservation waits for its own token, 100 ms apart, whatever the key.
  EXPECT_EQ(limiter.When("a"), absl::Milliseconds(100));
  EXPECT_EQ(limiter.When("d"), absl::Milliseconds(200));
  // One second refills 10 tokens, but the bucket holds at most `burst`.
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(limiter.When("a"), absl::ZeroDuration());
  clock.Advance(absl::Milliseconds(50));  // 2.5 tokens.
  EXPECT_EQ(limiter.When("a"), absl::ZeroDuration());
  EXPECT_EQ(limiter.When("a"), absl::ZeroDuration());
  EXPECT_EQ(limiter.When("a"), absl::Milliseconds(50));
  // No per-key state.
  EXPECT_EQ(limiter.NumRequeues("a"), 0);
  limiter.Forget("a");
  EXPECT_EQ(limiter.When("a"), absl::Milliseconds(150));
}

TEST(MaxOfRateLimiterTest, TakesLongestDelayAndForgetsInAll) {
  FakeClock clock;
  std::vector<std::unique_ptr<RateLimiter>> limiters;
  limiters.push_back(std::make_unique<ItemExponentialFailureRateLimiter>(absl::Milliseconds(5),
                                                                         absl::Seconds(1000)));
  limiters.push_back(std::make_unique<BucketRateLimiter>(/*qps=*/10, /*burst=*/1, &clock));
  MaxOfRateLimiter limiter(std::move(limiters));

  EXPECT_EQ(limiter.When("k"), absl::Milliseconds(5));    // max(5 ms, 0)
  EXPECT_EQ(limiter.When("k"), absl::Milliseconds(100));  // max(10 ms, 100 ms)
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(limiter.When("k"), absl::Milliseconds(20));  // max(20 ms, 0)
  EXPECT_EQ(limiter.NumRequeues("k"), 3);
  limiter.Forget("k");
  EXPECT_EQ(limiter.NumRequeues("k"), 0);
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(limiter.When("k"), absl::Milliseconds(5));
}

TEST(DefaultControllerRateLimiterTest, PerKeyBackoffThenOverallQps) {
  FakeClock clock;
  std::unique_ptr<RateLimiter> limiter = DefaultControllerRateLimiter(&clock);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(limiter->When(absl::StrCat("ns/k", i)), absl::Milliseconds(5)) << i;
  }
  // The burst of 100 is spent: the 101st retry waits for the bucket (10 qps).
  EXPECT_EQ(limiter->When("ns/k100"), absl::Milliseconds(100));
  EXPECT_EQ(limiter->NumRequeues("ns/k0"), 1);
}

}  // namespace
}  // namespace capstan::client
