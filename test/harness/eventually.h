// Waiting for a condition in tests that drive real processes: polls every 50 ms up to a bound.
// The bound is a generous limit against hanging, not a timing assertion.
#ifndef CAPSTAN_TEST_HARNESS_EVENTUALLY_H_
#define CAPSTAN_TEST_HARNESS_EVENTUALLY_H_

#include <chrono>
#include <functional>
#include <thread>

namespace capstan::testing {

inline bool Eventually(const std::function<bool()>& condition, int seconds = 30) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

}  // namespace capstan::testing

#endif  // CAPSTAN_TEST_HARNESS_EVENTUALLY_H_
