#include "lib/client/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace capstan::client {

ItemExponentialFailureRateLimiter::ItemExponentialFailureRateLimiter(absl::Duration base_delay,
                                                                     absl::Duration max_delay)
    : base_delay_(base_delay), max_delay_(max_delay) {}

absl::Duration ItemExponentialFailureRateLimiter::When(absl::string_view key) {
  int exponent;
  {
    absl::MutexLock lock(&mu_);
    int& failures = failures_[key];
    exponent = failures;
    // Saturate rather than overflow for a key that fails forever; the delay is capped long
    // before 2^exponent matters.
    if (failures < 1'000'000) ++failures;
  }
  // In floating point, as client-go does, so that a large exponent saturates at the cap instead
  // of overflowing a 64-bit nanosecond count.
  const double delay_ns = absl::ToDoubleNanoseconds(base_delay_) * std::ldexp(1.0, exponent);
  if (!(delay_ns < absl::ToDoubleNanoseconds(max_delay_))) return max_delay_;
  return absl::Nanoseconds(static_cast<int64_t>(delay_ns));
}

void ItemExponentialFailureRateLimiter::Forget(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  failures_.erase(key);
}

int ItemExponentialFailureRateLimiter::NumRequeues(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

BucketRateLimiter::BucketRateLimiter(double qps, int burst, Clock* clock)
    : qps_(qps), burst_(std::max(burst, 1)), clock_(clock), tokens_(burst_), last_(clock->Now()) {}

absl::Duration BucketRateLimiter::When(absl::string_view key) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  // Refill for the time since the last reservation (never backwards), up to the bucket's size.
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + absl::ToDoubleSeconds(now - last_) * qps_);
    last_ = now;
  }
  tokens_ -= 1;
  if (tokens_ >= 0) return absl::ZeroDuration();
  // The reserved token appears once the deficit has been refilled.
  return absl::Seconds(-tokens_ / qps_);
}

MaxOfRateLimiter::MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters)
    : limiters_(std::move(limiters)) {}

absl::Duration MaxOfRateLimiter::When(absl::string_view key) {
  absl::Duration longest = absl::ZeroDuration();
  for (const auto& limiter : limiters_) longest = std::max(longest, limiter->When(key));
  return longest;
}

void MaxOfRateLimiter::Forget(absl::string_view key) {
  for (const auto& limiter : limiters_) limiter->Forget(key);
}

int MaxOfRateLimiter::NumRequeues(absl::string_view key) {
  int most = 0;
  for (const auto& limiter : limiters_) most = std::max(most, limiter->NumRequeues(key));
  return most;
}

std::unique_ptr<RateLimiter> DefaultControllerRateLimiter(Clock* clock) {
  std::vector<std::unique_ptr<RateLimiter>> limiters;
  limiters.push_back(std::make_unique<ItemExponentialFailureRateLimiter>(
      absl::Milliseconds(5), absl::Seconds(1000)));
  limiters.push_back(std::make_unique<BucketRateLimiter>(10, 100, clock));
  return std::make_unique<MaxOfRateLimiter>(std::move(limiters));
}

}  // namespace capstan::client
