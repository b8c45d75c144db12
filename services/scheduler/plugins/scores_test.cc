// Each score plugin over a table of nodes -> expected normalized scores.
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/scheduler/plugins/plugins.h"
#include "services/scheduler/plugins/testing.h"

namespace capstan::scheduler::plugins {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using scheduler::testing::MakeNode;
using scheduler::testing::MakePod;
using scheduler::testing::MakeSnapshot;
using scheduler::testing::On;
using scheduler::testing::ScoreAll;

TEST(LeastAllocated, Table) {
  struct ScoreCase {
    std::string name;
    std::string cpu, memory;
    std::vector<Pod> existing;
    int64_t want;
  };
  std::vector<ScoreCase> cases = {
      {"quarter", "1", "2Gi", {}, 75},
      {"defaults for a pod without requests", "", "", {}, 97},  // 100m of 4, 200Mi of 8Gi
      {"with existing pods", "1", "2Gi", {On(MakePod("a", "2", "4Gi"), "n1")}, 25},
      {"cpu and memory averaged", "4", "0", {}, 50},
      {"over capacity is zero", "5", "16Gi", {}, 0},
  };
  NodeResourcesFit plugin;
  for (const ScoreCase& c : cases) {
    Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi")}, c.existing);
    EXPECT_THAT(ScoreAll(plugin, MakePod("p", c.cpu, c.memory), s), ElementsAre(c.want)) << c.name;
  }
}

TEST(BalancedAllocation, Table) {
  struct ScoreCase {
    std::string name;
    std::string cpu, memory;
    std::vector<Pod> existing;
    int64_t want;
  };
  std::vector<ScoreCase> cases = {
      {"balanced", "1", "2Gi", {}, 100},
      {"cpu heavy", "2", "2Gi", {}, 87},  // |0.5 - 0.25| / 2 = 0.125
      {"all cpu", "4", "", {}, 50},
      {"existing pods count", "1", "", {On(MakePod("a", "1", "6Gi"), "n1")}, 87},
      {"empty", "", "", {}, 100},
  };
  BalancedAllocation plugin;
  for (const ScoreCase& c : cases) {
    Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi")}, c.existing);
    EXPECT_THAT(ScoreAll(plugin, MakePod("p", c.cpu, c.memory), s), ElementsAre(c.want)) << c.name;
  }
}

TEST(NodeAffinity, PreferredScoresByWeight) {
  Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi", "110", {{"zone", "a"}}),
                             MakeNode("n2", "4", "8Gi", "110", {{"disk", "ssd"}}),
                             MakeNode("n3", "4", "8Gi", "110", {{"zone", "a"}, {"disk", "ssd"}}),
                             MakeNode("n4")});
  const std::string spec =
      "affinity { node_affinity { "
      "preferred_during_scheduling_ignored_during_execution { weight: 2 preference { match_expressions "
      "{ key: 'zone' operator: 'In' values: 'a' } } } "
      "preferred_during_scheduling_ignored_during_execution { weight: 8 preference { match_expressions "
      "{ key: 'disk' operator: 'Exists' } } } "
      "preferred_during_scheduling_ignored_during_execution { weight: 50 preference { } } } }";
  NodeAffinity plugin;
  EXPECT_THAT(ScoreAll(plugin, MakePod("p", "", "", {}, spec), s), ElementsAre(20, 80, 100, 0));
  EXPECT_THAT(ScoreAll(plugin, MakePod("p"), s), ElementsAre(0, 0, 0, 0));
}

TEST(TaintToleration, ScorePrefersFewerUntoleratedPreferNoSchedule) {
  auto taint = [](const std::string& key) {
    return "taints { key: '" + key + "' value: 'v' effect: 'PreferNoSchedule' } ";
  };
  Snapshot s = MakeSnapshot({MakeNode("n1"),
                             MakeNode("n2", "4", "8Gi", "110", {}, "spec { " + taint("a") + "}"),
                             MakeNode("n3", "4", "8Gi", "110", {}, "spec { " + taint("a") + taint("b") + "}"),
                             MakeNode("n4", "4", "8Gi", "110", {},
                                      "spec { taints { key: 'c' effect: 'NoSchedule' } }")});
  TaintToleration plugin;
  EXPECT_THAT(ScoreAll(plugin, MakePod("p"), s), ElementsAre(100, 50, 0, 100));
  EXPECT_THAT(ScoreAll(plugin, MakePod("p", "", "", {}, "tolerations { key: 'b' operator: 'Exists' }"), s),
              ElementsAre(100, 0, 0, 100));
  // A NoSchedule toleration does not count for PreferNoSchedule taints.
  EXPECT_THAT(ScoreAll(plugin,
                       MakePod("p", "", "", {}, "tolerations { key: 'a' operator: 'Exists' effect: 'NoSchedule' }"),
                       s),
              ElementsAre(100, 50, 0, 100));
  EXPECT_THAT(ScoreAll(plugin, MakePod("p", "", "", {}, "tolerations { operator: 'Exists' }"), s),
              ElementsAre(100, 100, 100, 100));
}

TEST(InterPodAffinity, PreferredTermsScore) {
  const std::string zone = kLabelZone;
  auto nodes = [&] {
    return std::vector<Node>{MakeNode("n1", "4", "8Gi", "110", {{zone, "a"}}),
                             MakeNode("n2", "4", "8Gi", "110", {{zone, "a"}}),
                             MakeNode("n3", "4", "8Gi", "110", {{zone, "b"}})};
  };
  auto weighted = [](const std::string& kind, int weight, const std::string& app, const std::string& key) {
    return "affinity { " + kind + " { preferred_during_scheduling_ignored_during_execution { weight: " +
           std::to_string(weight) + " pod_affinity_term { label_selector { match_labels { key: 'app' value: '" +
           app + "' } } topology_key: '" + key + "' } } } }";
  };
  InterPodAffinity plugin;
  Snapshot s = MakeSnapshot(nodes(), {On(MakePod("db", "", "", {{"app", "db"}}), "n1")});
  EXPECT_THAT(ScoreAll(plugin, MakePod("p", "", "", {}, weighted("pod_affinity", 10, "db", zone)), s),
              ElementsAre(100, 100, 0));
  EXPECT_THAT(ScoreAll(plugin,
                       MakePod("p", "", "", {}, weighted("pod_anti_affinity", 5, "db", kLabelHostname)), s),
              ElementsAre(0, 100, 100));
  EXPECT_THAT(ScoreAll(plugin, MakePod("p"), s), ElementsAre(0, 0, 0));
  // Symmetry: an existing pod's preferred affinity towards the incoming pod.
  Snapshot s2 = MakeSnapshot(
      nodes(), {On(MakePod("cache", "", "", {}, weighted("pod_affinity", 4, "web", kLabelHostname)), "n2")});
  EXPECT_THAT(ScoreAll(plugin, MakePod("p", "", "", {{"app", "web"}}), s2), ElementsAre(0, 100, 0));
  // And an existing pod's required affinity counts with the hard weight.
  Snapshot s3 = MakeSnapshot(
      nodes(), {On(MakePod("cache", "", "", {},
                           "affinity { pod_affinity { required_during_scheduling_ignored_during_execution { "
                           "label_selector { match_labels { key: 'app' value: 'web' } } topology_key: '" +
                               zone + "' } } }"),
                   "n3")});
  EXPECT_THAT(ScoreAll(plugin, MakePod("p", "", "", {{"app", "web"}}), s3), ElementsAre(0, 0, 100));
}

TEST(PodTopologySpread, ScheduleAnywayScore) {
  const std::string zone = kLabelZone;
  auto web = [](const std::string& name, const std::string& node) {
    return On(MakePod(name, "", "", {{"app", "web"}}), node);
  };
  Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi", "110", {{zone, "a"}}),
                             MakeNode("n2", "4", "8Gi", "110", {{zone, "a"}}),
                             MakeNode("n3", "4", "8Gi", "110", {{zone, "b"}}),
                             MakeNode("n4")},
                            {web("a", "n1"), web("b", "n1")});
  auto soft = [](const std::string& key) {
    return "topology_spread_constraints { max_skew: 1 topology_key: '" + key +
           "' when_unsatisfiable: 'ScheduleAnyway' label_selector { match_labels { key: 'app' value: 'web' } } }";
  };
  PodTopologySpread plugin;
  // Zone a holds 2, zone b none; n4 lacks the zone label and is ignored (0).
  EXPECT_THAT(ScoreAll(plugin, MakePod("p", "", "", {{"app", "web"}}, soft(zone)), s),
              ElementsAre(0, 0, 100, 0));
  // Per hostname: n1 holds 2, the others none.
  EXPECT_THAT(ScoreAll(plugin, MakePod("p", "", "", {{"app", "web"}}, soft(kLabelHostname)), s),
              ElementsAre(0, 100, 100, 100));
  // No soft constraints: every node the same.
  EXPECT_THAT(ScoreAll(plugin, MakePod("p"), s), ElementsAre(100, 100, 100, 100));
}

TEST(DefaultPlugins, SetAndWeights) {
  Plugins plugins = DefaultPlugins();
  std::vector<std::string> filters;
  for (const auto& f : plugins.filters) filters.push_back(f->name());
  EXPECT_THAT(filters, ElementsAre("NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity",
                                   "NodeResourcesFit", "PodTopologySpread", "InterPodAffinity"));
  std::map<std::string, int64_t> weights;
  for (const auto& s : plugins.scores) weights[s.plugin->name()] = s.weight;
  EXPECT_EQ(weights, (std::map<std::string, int64_t>{{"TaintToleration", 3},
                                                     {"NodeAffinity", 2},
                                                     {"PodTopologySpread", 2},
                                                     {"InterPodAffinity", 2},
                                                     {"NodeResourcesFit", 1},
                                                     {"NodeResourcesBalancedAllocation", 1}}));
}

}  // namespace
}  // namespace capstan::scheduler::plugins
