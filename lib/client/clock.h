// An injectable clock, so that code with delays and backoff (the work queue, rate limiters) can
// be tested without sleeping: production code takes a Clock* and uses Clock::Real(); tests pass a
// FakeClock and move time forward with Advance().
//
// Waiting is part of the interface because a wait "until time T" means something different for a
// fake clock: it must end when the test advances the clock past T, not when T passes on the wall.
#ifndef CAPSTAN_LIB_CLIENT_CLOCK_H_
#define CAPSTAN_LIB_CLIENT_CLOCK_H_

#include <algorithm>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace capstan::client {

class Clock {
 public:
  virtual ~Clock() = default;

  // The current time.
  virtual absl::Time Now() = 0;

  // Waits on `cv` (with `mu` held, as absl::CondVar::Wait) until it is signalled or this clock
  // reaches `deadline` (absl::InfiniteFuture() for no deadline). Returns true when the deadline
  // has passed. May return early (spurious wakeup): callers wait in a loop that rechecks.
  virtual bool WaitWithDeadline(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;

  // The process-wide wall clock (absl::Now()). Never null; never destroyed.
  static Clock* Real();
};

namespace clock_internal {

class RealClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  bool WaitWithDeadline(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return cv->WaitWithDeadline(mu, deadline);
  }
};

}  // namespace clock_internal

inline Clock* Clock::Real() {
  static Clock* const clock = new clock_internal::RealClock();
  return clock;
}

// A clock that only moves when told to. Thread-safe. Starts at an arbitrary fixed instant (not
// the Unix epoch, so that "zero time" bugs show).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}

  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  // Moves the clock forward by `d` (which must not be negative). Waiters whose deadline has been
  // reached notice within a millisecond of real time.
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += std::max(d, absl::ZeroDuration());
  }

  // A fake deadline cannot be handed to the CondVar, so a waiter with a deadline polls this clock
  // every millisecond of real time. Waking waiters from Advance() instead would need this clock
  // to know its callers' CondVars and to signal them without a lost-wakeup race against the
  // caller's own mutex; polling keeps the clock independent of its callers, and it only costs
  // while a test has a finite deadline pending.
  bool WaitWithDeadline(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (Now() >= deadline) return true;
    if (deadline == absl::InfiniteFuture()) {
      cv->Wait(mu);
      return false;
    }
    cv->WaitWithTimeout(mu, absl::Milliseconds(1));
    return Now() >= deadline;
  }

 private:
  absl::Mutex mu_;
  // Guarded because tests advance the clock from one thread while queue threads read it.
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_CLOCK_H_
