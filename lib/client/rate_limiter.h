// Rate limiters for the controller work queue (client-go's util/workqueue rate limiters).
//
// A RateLimiter decides how long a key must wait before it is retried: the work queue's
// AddRateLimited(key) adds the key after When(key). A controller calls Forget(key) once the key
// was reconciled successfully, so that its next failure starts again from the shortest delay.
//
//   ItemExponentialFailureRateLimiter  per key: base * 2^failures, capped (5 ms .. 1000 s).
//   BucketRateLimiter                  for all keys together: a token bucket (10 qps, burst 100).
//   MaxOfRateLimiter                   the longest delay of several limiters.
//   DefaultControllerRateLimiter()     max of the two above, as client-go's.
//
// All limiters are thread-safe.
#ifndef CAPSTAN_LIB_CLIENT_RATE_LIMITER_H_
#define CAPSTAN_LIB_CLIENT_RATE_LIMITER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/client/clock.h"

namespace capstan::client {

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;

  // How long `key` should wait before it is processed again. Each call counts as one more
  // requeue of `key` (and, for a token bucket, takes one token).
  virtual absl::Duration When(absl::string_view key) = 0;

  // Stops tracking `key`: its next When() starts from the shortest delay again. Does not undo
  // delays already handed out.
  virtual void Forget(absl::string_view key) = 0;

  // How many times When(key) was called since the last Forget(key).
  virtual int NumRequeues(absl::string_view key) = 0;
};

// Per-key exponential backoff: the n-th When(key) (n counted from 0 since the last Forget) is
// base_delay * 2^n, at most max_delay.
class ItemExponentialFailureRateLimiter final : public RateLimiter {
 public:
  explicit ItemExponentialFailureRateLimiter(absl::Duration base_delay = absl::Milliseconds(5),
                                             absl::Duration max_delay = absl::Seconds(1000));

  absl::Duration When(absl::string_view key) override;
  void Forget(absl::string_view key) override;
  int NumRequeues(absl::string_view key) override;

 private:
  const absl::Duration base_delay_;
  const absl::Duration max_delay_;

  absl::Mutex mu_;
  // Failures per key since its last Forget; guarded because workers retry keys concurrently.
  // Keys are removed by Forget, so the map holds only keys that are currently failing.
  absl::flat_hash_map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
};

// One token bucket shared by all keys (golang.org/x/time/rate's Limiter, as client-go uses it):
// the bucket holds at most `burst` tokens and refills at `qps` tokens per second; each When()
// reserves a token and returns how long until that token exists (zero while tokens remain).
// Per-key bookkeeping does not exist: Forget is a no-op and NumRequeues is always 0.
class BucketRateLimiter final : public RateLimiter {
 public:
  // `qps` must be positive; `burst` at least 1. `clock` is not owned and must outlive this.
  BucketRateLimiter(double qps = 10, int burst = 100, Clock* clock = Clock::Real());

  absl::Duration When(absl::string_view key) override;
  void Forget(absl::string_view key) override {}
  int NumRequeues(absl::string_view key) override { return 0; }

 private:
  const double qps_;
  const double burst_;
  Clock* const clock_;

  absl::Mutex mu_;
  // Tokens in the bucket as of last_; negative when future tokens are already reserved.
  // Guarded because every worker's retry takes from the same bucket.
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time last_ ABSL_GUARDED_BY(mu_);
};

// Combines limiters: When() is the longest of their delays (every limiter is asked, so every one
// counts the requeue), NumRequeues() the largest count, and Forget() forgets in all of them.
class MaxOfRateLimiter final : public RateLimiter {
 public:
  explicit MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters);

  absl::Duration When(absl::string_view key) override;
  void Forget(absl::string_view key) override;
  int NumRequeues(absl::string_view key) override;

 private:
  // Constant after construction; each limiter is thread-safe on its own.
  const std::vector<std::unique_ptr<RateLimiter>> limiters_;
};

// client-go's DefaultControllerRateLimiter: per-key exponential backoff from 5 ms to 1000 s,
// and overall at most 10 retries per second after a burst of 100. `clock` is for the bucket; not
// owned, must outlive the limiter.
std::unique_ptr<RateLimiter> DefaultControllerRateLimiter(Clock* clock = Clock::Real());

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_RATE_LIMITER_H_
