#include "services/controller-manager/controllers/nodelifecycle/eviction.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace capstan::controllermanager::nodelifecycle {
namespace {

using capstan::core::v1::Taint;
using capstan::core::v1::Toleration;
using Action = EvictionDecision::Action;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
constexpr char kUnreachable[] = "node.kubernetes.io/unreachable";
constexpr char kNotReady[] = "node.kubernetes.io/not-ready";

// A NoExecute (unless effect says otherwise) taint added at kT0 + since seconds.
TaintSince Tainted(const std::string& key, int since, const std::string& effect = "NoExecute") {
  TaintSince t;
  t.taint.set_key(key);
  t.taint.set_effect(effect);
  t.since = kT0 + absl::Seconds(since);
  return t;
}

// An Exists toleration of key ("" for every key) with NoExecute effect and optional seconds.
Toleration Tolerate(const std::string& key, std::optional<int64_t> seconds,
                    const std::string& effect = "NoExecute") {
  Toleration t;
  t.set_key(key);
  t.set_operator_("Exists");
  t.set_effect(effect);
  if (seconds) t.set_toleration_seconds(*seconds);
  return t;
}

TEST(DecideEvictionTest, Table) {
  struct Case {
    const char* name;
    std::vector<Toleration> tolerations;
    std::vector<TaintSince> taints;
    int now;  // seconds after kT0
    Action action;
    int at = 0;  // kEvictAt: seconds after kT0
  };
  const Case cases[] = {
      {"no taints", {}, {}, 0, Action::kKeep},
      {"only NoSchedule taints", {}, {Tainted(kUnreachable, 0, "NoSchedule")}, 0, Action::kKeep},
      {"untolerated NoExecute: at once", {}, {Tainted(kUnreachable, 0)}, 0, Action::kEvictNow},
      {"tolerated with seconds: at timeAdded + seconds",
       {Tolerate(kUnreachable, 300)},
       {Tainted(kUnreachable, 10)},
       20,
       Action::kEvictAt,
       310},
      {"seconds used up",
       {Tolerate(kUnreachable, 300)},
       {Tainted(kUnreachable, 10)},
       310,
       Action::kEvictNow},
      {"tolerated forever",
       {Tolerate(kUnreachable, std::nullopt)},
       {Tainted(kUnreachable, 0)},
       10000,
       Action::kKeep},
      {"zero seconds: at once",
       {Tolerate(kUnreachable, 0)},
       {Tainted(kUnreachable, 0)},
       0,
       Action::kEvictNow},
      {"negative seconds: at once, even for a taint stamped later",
       {Tolerate(kUnreachable, -5)},
       {Tainted(kUnreachable, 50)},
       10,
       Action::kEvictNow},
      {"one of two taints untolerated",
       {Tolerate(kUnreachable, std::nullopt)},
       {Tainted(kUnreachable, 0), Tainted("example.com/drain", 0)},
       0,
       Action::kEvictNow},
      {"the earliest bound wins",
       {Tolerate(kNotReady, 100), Tolerate(kUnreachable, 30)},
       {Tainted(kNotReady, 0), Tainted(kUnreachable, 50)},
       60,
       Action::kEvictAt,
       80},
      {"a forever toleration does not cancel another's bound",
       {Tolerate(kNotReady, std::nullopt), Tolerate(kUnreachable, 30)},
       {Tainted(kNotReady, 0), Tainted(kUnreachable, 0)},
       5,
       Action::kEvictAt,
       30},
      {"the first matching toleration counts, as Kubernetes",
       {Tolerate("", std::nullopt), Tolerate(kUnreachable, 30)},
       {Tainted(kUnreachable, 0)},
       100,
       Action::kKeep},
      {"a NoSchedule toleration does not tolerate NoExecute",
       {Tolerate(kUnreachable, std::nullopt, "NoSchedule")},
       {Tainted(kUnreachable, 0)},
       0,
       Action::kEvictNow},
  };
  for (const Case& c : cases) {
    google::protobuf::RepeatedPtrField<Toleration> tolerations(c.tolerations.begin(),
                                                               c.tolerations.end());
    EvictionDecision got = DecideEviction(tolerations, c.taints, kT0 + absl::Seconds(c.now));
    EXPECT_EQ(got.action, c.action) << c.name;
    if (c.action == Action::kEvictAt) {
      EXPECT_EQ(got.at, kT0 + absl::Seconds(c.at)) << c.name;
    }
  }
}

TEST(PodStatusTest, MarkPodNotReadyTurnsReadyTrueToFalseOnce) {
  capstan::core::v1::Pod pod;
  auto* ready = pod.mutable_status()->add_conditions();
  ready->set_type("Ready");
  ready->set_status("True");
  EXPECT_TRUE(MarkPodNotReady(&pod, kT0));
  EXPECT_EQ(pod.status().conditions(0).status(), "False");
  EXPECT_EQ(pod.status().conditions(0).last_transition_time().seconds(), absl::ToUnixSeconds(kT0));
  EXPECT_FALSE(MarkPodNotReady(&pod, kT0 + absl::Seconds(1)));
  capstan::core::v1::Pod pending;  // no Ready condition: nothing to say
  EXPECT_FALSE(MarkPodNotReady(&pending, kT0));
  EXPECT_EQ(pending.status().conditions_size(), 0);
}

TEST(PodStatusTest, MarkDisruptionTargetAsKubernetesWritesIt) {
  capstan::core::v1::Pod pod;
  EXPECT_TRUE(MarkDisruptionTarget(&pod, kT0));
  ASSERT_EQ(pod.status().conditions_size(), 1);
  const auto& c = pod.status().conditions(0);
  EXPECT_EQ(c.type(), "DisruptionTarget");
  EXPECT_EQ(c.status(), "True");
  EXPECT_EQ(c.reason(), "DeletionByTaintManager");
  EXPECT_EQ(c.message(), "Taint manager: deleting due to NoExecute taint");
  EXPECT_FALSE(MarkDisruptionTarget(&pod, kT0 + absl::Seconds(1)));
  EXPECT_EQ(pod.status().conditions_size(), 1);
}

}  // namespace
}  // namespace capstan::controllermanager::nodelifecycle
