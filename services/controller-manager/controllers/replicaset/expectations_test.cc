#include "services/controller-manager/controllers/replicaset/expectations.h"

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/client/clock.h"

namespace capstan::controllermanager::replicaset {
namespace {

class ExpectationsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  client::FakeClock clock_;
  ControllerExpectations expectations_{&clock_};
};

TEST_F(ExpectationsTest, UnknownKeyIsSatisfied) {
  EXPECT_TRUE(expectations_.Satisfied("default/web"));
}

TEST_F(ExpectationsTest, CreationsMustAllBeObserved) {
  expectations_.ExpectCreations("default/web", 3);
  EXPECT_FALSE(expectations_.Satisfied("default/web"));
  EXPECT_TRUE(expectations_.Satisfied("default/other"));
  expectations_.CreationObserved("default/web");
  expectations_.CreationObserved("default/web");
  EXPECT_FALSE(expectations_.Satisfied("default/web"));
  EXPECT_EQ(expectations_.Get("default/web").creations, 1);
  expectations_.CreationObserved("default/web");
  EXPECT_TRUE(expectations_.Satisfied("default/web"));
  // An extra observation (a create reported failed that happened after all) is harmless.
  expectations_.CreationObserved("default/web");
  EXPECT_TRUE(expectations_.Satisfied("default/web"));
}

TEST_F(ExpectationsTest, DeletionsAreTrackedByPodKey) {
  expectations_.ExpectDeletions("default/web", {"default/a", "default/b"});
  EXPECT_FALSE(expectations_.Satisfied("default/web"));
  expectations_.DeletionObserved("default/web", "default/a");
  // Seen terminating, then seen gone: counts once.
  expectations_.DeletionObserved("default/web", "default/a");
  // Not one we deleted.
  expectations_.DeletionObserved("default/web", "default/zzz");
  EXPECT_FALSE(expectations_.Satisfied("default/web"));
  EXPECT_EQ(expectations_.Get("default/web").deletions, 1);
  expectations_.DeletionObserved("default/web", "default/b");
  EXPECT_TRUE(expectations_.Satisfied("default/web"));
}

TEST_F(ExpectationsTest, ExpiresAfterTheTimeout) {
  expectations_.ExpectCreations("default/web", 2);
  clock_.Advance(kExpectationsTimeout - absl::Seconds(1));
  EXPECT_FALSE(expectations_.Satisfied("default/web"));
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(expectations_.Satisfied("default/web"));
  // A new expectation starts a new timeout.
  expectations_.ExpectCreations("default/web", 1);
  EXPECT_FALSE(expectations_.Satisfied("default/web"));
}

TEST_F(ExpectationsTest, DeleteForgets) {
  expectations_.ExpectCreations("default/web", 2);
  expectations_.Delete("default/web");
  EXPECT_TRUE(expectations_.Satisfied("default/web"));
  expectations_.CreationObserved("default/web");  // no record: nothing happens
  EXPECT_EQ(expectations_.Get("default/web").creations, 0);
}

}  // namespace
}  // namespace capstan::controllermanager::replicaset
