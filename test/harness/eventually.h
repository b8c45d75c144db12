// Waiting for a condition in tests that drive real processes: polls every 50 ms up to a bound.
// The bound is a generous limit against hanging, not a timing assertion.
#ifndef CAPSTAN_TEST_HARNESS_EVENTUALLY_H_
#define CAPSTAN_TEST_HARNESS_EVENTUALLY_H_

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace capstan::testing {

inline bool Eventually(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return condition();
}

inline bool Eventually(const std::function<bool()>& condition, int seconds = 60) {
  return Eventually(condition, absl::Seconds(seconds));
}

}  // namespace capstan::testing

#endif  // CAPSTAN_TEST_HARNESS_EVENTUALLY_H_
