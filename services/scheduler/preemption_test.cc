#include "services/scheduler/preemption.h"

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "services/scheduler/plugins/plugins.h"
#include "services/scheduler/queue/scheduling_queue.h"

namespace capstan::scheduler {
namespace {

template <typename T>
T Parse(const std::string& text) {
  T message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

Node MakeNode(const std::string& name, const std::string& cpu) {
  return Parse<Node>("metadata { name: '" + name +
                     "' } status { allocatable { key: 'cpu' value { string: '" + cpu +
                     "' } } allocatable { key: 'memory' value { string: '8Gi' } } "
                     "allocatable { key: 'pods' value { string: '110' } } }");
}

// A pod requesting `cpu`, with the given priority, created at `created` (seconds); bound to
// `node` when that is non-empty.
Pod MakePod(const std::string& name, const std::string& cpu, int32_t priority,
            const std::string& node = "", int64_t created = 0) {
  Pod pod = Parse<Pod>("metadata { name: '" + name +
                       "' namespace: 'default' } spec { containers { name: 'c' resources { "
                       "requests { key: 'cpu' value { string: '" + cpu + "' } } } } }");
  pod.mutable_spec()->set_priority(priority);
  pod.mutable_spec()->set_node_name(node);
  pod.mutable_metadata()->mutable_creation_timestamp()->set_seconds(created);
  return pod;
}

std::set<std::string> Names(const std::vector<Pod>& pods) {
  std::set<std::string> names;
  for (const Pod& p : pods) names.insert(p.metadata().name());
  return names;
}

class PreemptionTest : public ::testing::Test {
 protected:
  Framework framework_{plugins::DefaultPlugins(), std::make_unique<SeededRng>(1)};
};

TEST_F(PreemptionTest, PicksTheNodeWithTheLeastImportantVictims) {
  // n1 is full of priority-50 pods, n2 of priority-10 pods: n2 is chosen.
  Snapshot snapshot = Snapshot::FromObjects(
      {MakeNode("n1", "2"), MakeNode("n2", "2")},
      {MakePod("a", "1", 50, "n1"), MakePod("b", "1", 50, "n1"), MakePod("c", "1", 10, "n2"),
       MakePod("d", "1", 10, "n2")});
  std::optional<PreemptionPlan> plan =
      FindPreemption(framework_, MakePod("high", "1", 100), snapshot);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->node_name, "n2");
  ASSERT_EQ(plan->victims.size(), 1u);  // one cpu suffices: the other is reprieved
  EXPECT_EQ(PodPriority(plan->victims[0]), 10);
}

TEST_F(PreemptionTest, PrefersFewerVictimsThenSmallerPrioritySumThenName) {
  // All priority 0. A 1-cpu pod: on n1 (1 + 500m + 500m) `a` is given back and both half-cpu pods
  // must go; on n2 (1 + 1) one pod suffices. n2 wins.
  Snapshot snapshot = Snapshot::FromObjects(
      {MakeNode("n1", "2"), MakeNode("n2", "2")},
      {MakePod("a", "1", 0, "n1"), MakePod("b", "500m", 0, "n1"), MakePod("c", "500m", 0, "n1"),
       MakePod("d", "1", 0, "n2"), MakePod("e", "1", 0, "n2")});
  std::optional<PreemptionPlan> plan = FindPreemption(framework_, MakePod("x", "1", 5), snapshot);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->node_name, "n2");
  EXPECT_EQ(Names(plan->victims), std::set<std::string>({"e"}));

  // A 1500m pod needs two victims on either node (n1: a and c, b is given back; n2: d and e); the
  // highest victim priority is 0 on both, but n2's sum is smaller (e has priority -1).
  snapshot = Snapshot::FromObjects(
      {MakeNode("n1", "2"), MakeNode("n2", "2")},
      {MakePod("a", "1", 0, "n1"), MakePod("b", "500m", 0, "n1"), MakePod("c", "500m", 0, "n1"),
       MakePod("d", "1", 0, "n2"), MakePod("e", "1", -1, "n2")});
  plan = FindPreemption(framework_, MakePod("x", "1500m", 5), snapshot);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->node_name, "n2");
  EXPECT_EQ(Names(plan->victims), std::set<std::string>({"d", "e"}));

  // Everything equal: the node name decides.
  snapshot = Snapshot::FromObjects({MakeNode("n2", "2"), MakeNode("n1", "2")},
                                   {MakePod("a", "2", 0, "n2"), MakePod("b", "2", 0, "n1")});
  plan = FindPreemption(framework_, MakePod("x", "1", 5), snapshot);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->node_name, "n1");
  EXPECT_EQ(Names(plan->victims), std::set<std::string>({"b"}));
}

TEST_F(PreemptionTest, ReprievesVictimsThatAreNotNeeded) {
  // 4 cpu: three low pods (1 cpu each, priorities 1, 2, 3) and 1 cpu free. A 2-cpu pod needs only
  // one evicted: the least important (priority 1) goes, the others are given back.
  Snapshot snapshot = Snapshot::FromObjects(
      {MakeNode("n1", "4")},
      {MakePod("p1", "1", 1, "n1"), MakePod("p2", "1", 2, "n1"), MakePod("p3", "1", 3, "n1")});
  std::optional<PreemptionPlan> plan = FindPreemption(framework_, MakePod("x", "2", 10), snapshot);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->node_name, "n1");
  EXPECT_EQ(Names(plan->victims), std::set<std::string>({"p1"}));

  // At equal priority the older pods are given back first, so the newest is the victim.
  snapshot = Snapshot::FromObjects(
      {MakeNode("n1", "2")},
      {MakePod("old", "1", 0, "n1", 100), MakePod("new", "1", 0, "n1", 200)});
  plan = FindPreemption(framework_, MakePod("x", "1", 10), snapshot);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(Names(plan->victims), std::set<std::string>({"new"}));
  // The snapshot passed in is untouched.
  EXPECT_EQ(snapshot.Get("n1")->pod_count(), 2);
}

TEST_F(PreemptionTest, NeverEvictsEqualOrHigherPriority) {
  Snapshot snapshot = Snapshot::FromObjects(
      {MakeNode("n1", "2")}, {MakePod("same", "1", 10, "n1"), MakePod("higher", "1", 20, "n1")});
  EXPECT_FALSE(FindPreemption(framework_, MakePod("x", "1", 10), snapshot).has_value());

  // Evicting only the lower one is not enough for a 2-cpu pod: no plan, nothing higher touched.
  snapshot = Snapshot::FromObjects(
      {MakeNode("n1", "2")}, {MakePod("low", "1", 0, "n1"), MakePod("same", "1", 10, "n1")});
  EXPECT_FALSE(FindPreemption(framework_, MakePod("x", "2", 10), snapshot).has_value());
  std::optional<PreemptionPlan> plan = FindPreemption(framework_, MakePod("x", "1", 10), snapshot);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(Names(plan->victims), std::set<std::string>({"low"}));
}

TEST_F(PreemptionTest, PolicyNeverAndUnresolvableNodesGiveNoPlan) {
  Snapshot snapshot =
      Snapshot::FromObjects({MakeNode("n1", "2")}, {MakePod("low", "2", 0, "n1")});
  Pod pod = MakePod("x", "1", 100);
  EXPECT_TRUE(FindPreemption(framework_, pod, snapshot).has_value());
  pod.mutable_spec()->set_preemption_policy("Never");
  EXPECT_FALSE(FindPreemption(framework_, pod, snapshot).has_value());
  pod.mutable_spec()->set_preemption_policy("PreemptLowerPriority");
  EXPECT_TRUE(FindPreemption(framework_, pod, snapshot).has_value());

  // A pod pinned elsewhere (spec.nodeName filter: unresolvable) never preempts on this node.
  pod.mutable_spec()->set_node_name("other");
  EXPECT_FALSE(FindPreemption(framework_, pod, snapshot).has_value());
}

}  // namespace
}  // namespace capstan::scheduler
