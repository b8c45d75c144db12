// The default plugin set end to end: schedule pods one by one, assuming each placement.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/scheduler/plugins/plugins.h"
#include "services/scheduler/plugins/testing.h"

namespace capstan::scheduler::plugins {
namespace {

using scheduler::testing::MakeNode;
using scheduler::testing::MakePod;
using scheduler::testing::MakeSnapshot;
using scheduler::testing::On;
using scheduler::testing::ScoreAll;

void ExpectWithinAllocatable(const Snapshot& snapshot) {
  for (const NodeInfo& node : snapshot.nodes()) {
    EXPECT_LE(node.requested().milli_cpu, node.allocatable().milli_cpu) << node.name();
    EXPECT_LE(node.requested().memory, node.allocatable().memory) << node.name();
    EXPECT_LE(node.pod_count(), node.allowed_pods()) << node.name();
  }
}

TEST(Scheduling, FiftyPodsOntoFiveNodesFillCapacityExactly) {
  // 20 cpu in all, uneven nodes; every pod asks 400m, so exactly 50 fit.
  Snapshot snapshot;
  snapshot.AddNode(MakeNode("n1", "2", "4Gi"));
  snapshot.AddNode(MakeNode("n2", "4", "8Gi"));
  snapshot.AddNode(MakeNode("n3", "6", "16Gi"));
  snapshot.AddNode(MakeNode("n4", "4", "8Gi"));
  snapshot.AddNode(MakeNode("n5", "4", "8Gi"));
  Framework framework(DefaultPlugins(), std::make_unique<SeededRng>(42));
  for (int i = 0; i < 50; ++i) {
    Pod pod = MakePod("p" + std::to_string(i), "400m", "256Mi");
    ScheduleResult result = framework.Schedule(pod, snapshot);
    ASSERT_TRUE(result.scheduled()) << i << ": " << result.message;
    ASSERT_TRUE(snapshot.AssumePod(pod, result.node_name));
    ExpectWithinAllocatable(snapshot);
  }
  std::map<std::string, int64_t> per_node;
  for (const NodeInfo& node : snapshot.nodes()) {
    per_node[node.name()] = node.pod_count();
    EXPECT_EQ(node.requested().milli_cpu, node.allocatable().milli_cpu) << node.name();
  }
  EXPECT_EQ(per_node, (std::map<std::string, int64_t>{{"n1", 5}, {"n2", 10}, {"n3", 15}, {"n4", 10}, {"n5", 10}}));
  ScheduleResult full = framework.Schedule(MakePod("extra", "400m", "256Mi"), snapshot);
  EXPECT_FALSE(full.scheduled());
  EXPECT_EQ(full.message, "0/5 nodes are available: 5 Insufficient cpu.");
  // A pod that asks for nothing still fits.
  EXPECT_TRUE(framework.Schedule(MakePod("free"), snapshot).scheduled());
}

TEST(Scheduling, LeastAllocatedSpreadsEqualNodes) {
  Snapshot snapshot;
  for (int i = 1; i <= 5; ++i) snapshot.AddNode(MakeNode("n" + std::to_string(i), "4", "8Gi"));
  Framework framework(DefaultPlugins(), std::make_unique<SeededRng>(7));
  for (int i = 0; i < 25; ++i) {
    Pod pod = MakePod("p" + std::to_string(i), "100m", "128Mi");
    ScheduleResult result = framework.Schedule(pod, snapshot);
    ASSERT_TRUE(result.scheduled());
    snapshot.AssumePod(pod, result.node_name);
  }
  for (const NodeInfo& node : snapshot.nodes()) EXPECT_EQ(node.pod_count(), 5) << node.name();
}

TEST(Scheduling, MixedReasonsMessage) {
  Snapshot snapshot;
  snapshot.AddNode(MakeNode("n1", "1", "8Gi"));
  snapshot.AddNode(MakeNode("n2", "1", "8Gi"));
  snapshot.AddNode(MakeNode("n3", "1", "8Gi"));
  snapshot.AddNode(MakeNode("m1", "8", "8Gi", "110", {},
                            "spec { taints { key: 'node-role' value: 'master' effect: 'NoSchedule' } }"));
  snapshot.AddNode(MakeNode("m2", "8", "8Gi", "110", {},
                            "spec { taints { key: 'node-role' value: 'master' effect: 'NoSchedule' } }"));
  Framework framework(DefaultPlugins(), std::make_unique<SeededRng>(1));
  ScheduleResult result = framework.Schedule(MakePod("big", "2", "1Gi"), snapshot);
  EXPECT_FALSE(result.scheduled());
  EXPECT_EQ(result.message,
            "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint "
            "{node-role: master}.");
  Pod tolerant = MakePod("big", "2", "1Gi", {}, "tolerations { key: 'node-role' operator: 'Exists' }");
  result = framework.Schedule(tolerant, snapshot);
  EXPECT_TRUE(result.node_name == "m1" || result.node_name == "m2") << result.node_name;
}

TEST(Scheduling, HardSpreadAndAntiAffinity) {
  Snapshot snapshot;
  for (int i = 1; i <= 5; ++i) {
    snapshot.AddNode(MakeNode("n" + std::to_string(i), "8", "16Gi", "110",
                              {{kLabelZone, i <= 3 ? "a" : "b"}}));
  }
  Framework framework(DefaultPlugins(), std::make_unique<SeededRng>(3));
  const std::string spread =
      "topology_spread_constraints { max_skew: 1 topology_key: 'topology.kubernetes.io/zone' "
      "when_unsatisfiable: 'DoNotSchedule' label_selector { match_labels { key: 'app' value: 'web' } } }";
  std::map<std::string, int> per_zone;
  for (int i = 0; i < 10; ++i) {
    Pod pod = MakePod("web" + std::to_string(i), "100m", "64Mi", {{"app", "web"}}, spread);
    ScheduleResult result = framework.Schedule(pod, snapshot);
    ASSERT_TRUE(result.scheduled()) << result.message;
    snapshot.AssumePod(pod, result.node_name);
    ++per_zone[snapshot.Get(result.node_name)->node().metadata().labels().at(kLabelZone)];
    EXPECT_LE(std::abs(per_zone["a"] - per_zone["b"]), 1);
  }
  // One per host: five fit, the sixth does not.
  const std::string anti =
      "affinity { pod_anti_affinity { required_during_scheduling_ignored_during_execution { "
      "label_selector { match_labels { key: 'app' value: 'db' } } topology_key: 'kubernetes.io/hostname' } } }";
  std::map<std::string, int> per_host;
  for (int i = 0; i < 5; ++i) {
    Pod pod = MakePod("db" + std::to_string(i), "100m", "64Mi", {{"app", "db"}}, anti);
    ScheduleResult result = framework.Schedule(pod, snapshot);
    ASSERT_TRUE(result.scheduled()) << result.message;
    EXPECT_EQ(++per_host[result.node_name], 1);
    snapshot.AssumePod(pod, result.node_name);
  }
  ScheduleResult result =
      framework.Schedule(MakePod("db5", "100m", "64Mi", {{"app", "db"}}, anti), snapshot);
  EXPECT_FALSE(result.scheduled());
  EXPECT_EQ(result.message, "0/5 nodes are available: 5 node(s) didn't match pod anti-affinity rules.");
}

// A plugin may skip a pod only when skipping changes nothing: its filter would pass every node,
// its normalized scores would be equal on every node. Checked for every default plugin over pods
// with and without each kind of constraint, on nodes and bound pods that exercise them.
TEST(Scheduling, PluginsSkipOnlyWhereTheyWouldChangeNothing) {
  const std::vector<Node> nodes = {
      MakeNode("n1", "4", "8Gi", "110", {{kLabelZone, "a"}, {"disk", "ssd"}}),
      MakeNode("n2", "4", "8Gi", "110", {{kLabelZone, "a"}}, "spec { taints { key: 'k' effect: 'PreferNoSchedule' } }"),
      MakeNode("n3", "2", "4Gi", "110", {{kLabelZone, "b"}}, "spec { unschedulable: true }"),
      MakeNode("n4", "8", "16Gi", "110", {{kLabelZone, "b"}, {"disk", "ssd"}}),
  };
  const std::string anti_web =
      "affinity { pod_anti_affinity { required_during_scheduling_ignored_during_execution { "
      "label_selector { match_labels { key: 'app' value: 'web' } } topology_key: 'kubernetes.io/hostname' } } }";
  const std::string prefer_db =
      "affinity { pod_affinity { preferred_during_scheduling_ignored_during_execution { weight: 10 "
      "pod_affinity_term { label_selector { match_labels { key: 'app' value: 'db' } } "
      "topology_key: 'topology.kubernetes.io/zone' } } } }";
  const std::vector<std::vector<Pod>> clusters = {
      {},
      {On(MakePod("db", "1", "1Gi", {{"app", "db"}}), "n4"), On(MakePod("web0", "1", "1Gi", {{"app", "web"}}), "n1")},
      {On(MakePod("guard", "1", "1Gi", {{"app", "guard"}}, anti_web), "n1"),
       On(MakePod("fan", "", "", {{"app", "fan"}}, prefer_db), "n2")},
  };
  const std::vector<Pod> pods = {
      MakePod("plain", "500m", "256Mi"),
      MakePod("web", "500m", "256Mi", {{"app", "web"}}),
      MakePod("selector", "", "", {}, "node_selector { key: 'disk' value: 'ssd' }"),
      MakePod("preferred", "", "", {},
              "affinity { node_affinity { preferred_during_scheduling_ignored_during_execution { "
              "weight: 5 preference { match_expressions { key: 'disk' operator: 'In' values: 'ssd' } } } } }"),
      MakePod("named", "", "", {}, "node_name: 'n4'"),
      MakePod("anti", "", "", {{"app", "web"}}, anti_web),
      MakePod("near-db", "", "", {}, prefer_db),
      MakePod("spread", "", "", {{"app", "web"}},
              "topology_spread_constraints { max_skew: 1 topology_key: 'topology.kubernetes.io/zone' "
              "when_unsatisfiable: 'DoNotSchedule' label_selector { match_labels { key: 'app' value: 'web' } } }"),
      MakePod("soft-spread", "", "", {{"app", "web"}},
              "topology_spread_constraints { max_skew: 1 topology_key: 'topology.kubernetes.io/zone' "
              "when_unsatisfiable: 'ScheduleAnyway' label_selector { match_labels { key: 'app' value: 'web' } } }"),
  };
  const Plugins plugins = DefaultPlugins();
  int filter_skips = 0, score_skips = 0, filter_runs = 0, score_runs = 0;
  for (const std::vector<Pod>& bound : clusters) {
    const Snapshot snapshot = MakeSnapshot(nodes, bound);
    for (const Pod& pod : pods) {
      for (const auto& filter : plugins.filters) {
        if (!filter->SkipsFilter(pod, snapshot)) {
          ++filter_runs;
          continue;
        }
        ++filter_skips;
        for (const NodeInfo& node : snapshot.nodes()) {
          EXPECT_TRUE(filter->Filter(pod, node, snapshot).ok())
              << filter->name() << " skipped pod " << pod.metadata().name() << " but rejects "
              << node.name() << " with " << bound.size() << " pods bound";
        }
      }
      for (const WeightedScorePlugin& weighted : plugins.scores) {
        if (!weighted.plugin->SkipsScore(pod, snapshot)) {
          ++score_runs;
          continue;
        }
        ++score_skips;
        std::vector<int64_t> scores = ScoreAll(*weighted.plugin, pod, snapshot);
        for (int64_t score : scores) {
          EXPECT_EQ(score, scores.front())
              << weighted.plugin->name() << " skipped pod " << pod.metadata().name()
              << " but scores nodes differently with " << bound.size() << " pods bound";
        }
      }
    }
  }
  // Both kinds happen in this table, so the checks above are not vacuous.
  EXPECT_GT(filter_skips, 0);
  EXPECT_GT(score_skips, 0);
  EXPECT_GT(filter_runs, 0);
  EXPECT_GT(score_runs, 0);
}

}  // namespace
}  // namespace capstan::scheduler::plugins
