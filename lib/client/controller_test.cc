#include "lib/client/controller.h"

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace capstan::client {
namespace {

// Fails each key a set number of times, then succeeds; records concurrency per key.
class FlakyReconciler : public Reconciler {
 public:
  explicit FlakyReconciler(int failures) : failures_(failures) {}
  absl::StatusOr<ReconcileResult> Reconcile(const std::string& key) override {
    {
      absl::MutexLock lock(&mu_);
      if (++active_[key] > 1) overlapped_ = true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    absl::MutexLock lock(&mu_);
    --active_[key];
    ++calls_[key];
    if (calls_[key] <= failures_) return absl::UnavailableError("not yet");
    ++successes_;
    return ReconcileResult{};
  }
  int calls(const std::string& key) {
    absl::MutexLock lock(&mu_);
    return calls_[key];
  }
  int successes() {
    absl::MutexLock lock(&mu_);
    return successes_;
  }
  bool overlapped() {
    absl::MutexLock lock(&mu_);
    return overlapped_;
  }

 private:
  const int failures_;
  absl::Mutex mu_;
  std::map<std::string, int> active_, calls_;
  int successes_ = 0;
  bool overlapped_ = false;
};

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 2000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return done();
}

TEST(ControllerTest, ErrorsAreRetriedUntilTheyPass) {
  FlakyReconciler reconciler(/*failures=*/3);
  Controller controller({"flaky", 4}, &reconciler);
  std::thread run([&] { controller.Run({}); });
  for (int i = 0; i < 10; ++i) controller.Enqueue(absl::StrCat("default/p", i));
  ASSERT_TRUE(WaitFor([&] { return reconciler.successes() == 10; }));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(reconciler.calls(absl::StrCat("default/p", i)), 4);
  controller.Stop();
  run.join();
}

TEST(ControllerTest, NoKeyIsReconciledByTwoWorkersAtOnce) {
  FlakyReconciler reconciler(0);
  Controller controller({"busy", 8}, &reconciler);
  std::thread run([&] { controller.Run({}); });
  for (int round = 0; round < 300; ++round) controller.Enqueue(absl::StrCat("k", round % 3));
  ASSERT_TRUE(WaitFor([&] { return controller.queue().Len() == 0; }));
  controller.Stop();
  run.join();
  EXPECT_FALSE(reconciler.overlapped());
  EXPECT_GE(reconciler.calls("k0"), 1);
}

TEST(ControllerTest, WorkersWaitForCachesToSync) {
  FlakyReconciler reconciler(0);
  Controller controller({"sync", 1}, &reconciler);
  std::atomic<bool> synced{false};
  controller.Enqueue("a");
  std::thread run([&] { controller.Run({[&] { return synced.load(); }}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(reconciler.calls("a"), 0);
  synced = true;
  ASSERT_TRUE(WaitFor([&] { return reconciler.calls("a") == 1; }));
  controller.Stop();
  run.join();
}

TEST(ControllerTest, StopBeforeSyncReturnsFalse) {
  FlakyReconciler reconciler(0);
  Controller controller({"never", 1}, &reconciler);
  bool result = true;
  std::thread run([&] { result = controller.Run({[] { return false; }}); });
  controller.Stop();
  run.join();
  EXPECT_FALSE(result);
}

TEST(ControllerTest, Keys) {
  EXPECT_EQ(ObjectKey("default", "web"), "default/web");
  EXPECT_EQ(ObjectKey("", "node-1"), "node-1");
  EXPECT_EQ(SplitObjectKey("default/web"), std::make_pair(std::string("default"), std::string("web")));
  EXPECT_EQ(SplitObjectKey("node-1"), std::make_pair(std::string(""), std::string("node-1")));
}

}  // namespace
}  // namespace capstan::client
