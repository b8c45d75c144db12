#include "services/scheduler/framework/framework.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace capstan::scheduler {
namespace {

using ::testing::ElementsAre;

template <typename T>
T Parse(const std::string& text) {
  T message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

Node MakeNode(const std::string& name, const std::string& cpu = "4", const std::string& memory = "8Gi") {
  return Parse<Node>("metadata { name: '" + name + "' } status { allocatable { key: 'cpu' value { string: '" +
                     cpu + "' } } allocatable { key: 'memory' value { string: '" + memory +
                     "' } } allocatable { key: 'pods' value { string: '110' } } }");
}

Pod MakePod(const std::string& name, const std::string& cpu, const std::string& memory) {
  return Parse<Pod>("metadata { name: '" + name +
                    "' namespace: 'default' } spec { containers { name: 'c' resources { requests { key: 'cpu' "
                    "value { string: '" + cpu + "' } } requests { key: 'memory' value { string: '" +
                    memory + "' } } } } }");
}

TEST(PodRequests, SumsContainersMaxWithInitContainersPlusOverhead) {
  Pod pod = Parse<Pod>(R"pb(
    spec {
      containers { resources { requests { key: "cpu" value { string: "250m" } }
                               requests { key: "memory" value { string: "64Mi" } } } }
      containers { resources { requests { key: "cpu" value { string: "250m" } } } }
      init_containers { resources { requests { key: "cpu" value { string: "1" } }
                                    requests { key: "memory" value { string: "32Mi" } } } }
      overhead { key: "cpu" value { string: "10m" } }
    })pb");
  Resource r = PodRequests(pod);
  EXPECT_EQ(r.milli_cpu, 1010);
  EXPECT_EQ(r.memory, 64 * 1024 * 1024);
  Resource nz = PodNonZeroRequests(Parse<Pod>("spec { containers { } }"));
  EXPECT_EQ(nz.milli_cpu, kDefaultMilliCpuRequest);
  EXPECT_EQ(nz.memory, kDefaultMemoryRequest);
  EXPECT_EQ(PodRequests(Parse<Pod>("spec { containers { } }")), Resource());
}

TEST(NodeInfo, AddAndRemovePodsTrackRequests) {
  NodeInfo info(MakeNode("n1"));
  EXPECT_EQ(info.allocatable().milli_cpu, 4000);
  EXPECT_EQ(info.allocatable().memory, 8LL << 30);
  EXPECT_EQ(info.allowed_pods(), 110);
  info.AddPod(MakePod("a", "500m", "1Gi"));
  info.AddPod(MakePod("b", "1", "1Gi"));
  EXPECT_EQ(info.requested().milli_cpu, 1500);
  EXPECT_EQ(info.requested().memory, 2LL << 30);
  EXPECT_EQ(info.pod_count(), 2);
  EXPECT_TRUE(info.RemovePod(MakePod("a", "0", "0")));
  EXPECT_FALSE(info.RemovePod(MakePod("a", "0", "0")));
  EXPECT_EQ(info.requested().milli_cpu, 1000);
  EXPECT_EQ(info.pod_count(), 1);

  Pod anti = MakePod("anti", "0", "0");
  anti.mutable_spec()->mutable_affinity()->mutable_pod_anti_affinity()
      ->add_required_during_scheduling_ignored_during_execution()->set_topology_key("k");
  Pod preferred = MakePod("preferred", "0", "0");
  preferred.mutable_spec()->mutable_affinity()->mutable_pod_affinity()
      ->add_preferred_during_scheduling_ignored_during_execution()->set_weight(1);
  info.AddPod(anti);
  info.AddPod(preferred);
  EXPECT_EQ(info.pods_with_required_anti_affinity(), 1);
  EXPECT_EQ(info.pods_with_affinity(), 2);
  EXPECT_TRUE(info.RemovePod(anti));
  EXPECT_EQ(info.pods_with_required_anti_affinity(), 0);
  EXPECT_EQ(info.pods_with_affinity(), 1);
}

TEST(Snapshot, FromObjectsPlacesBoundPodsAndSkipsFinished) {
  Pod bound = MakePod("a", "1", "1Gi");
  bound.mutable_spec()->set_node_name("n2");
  Pod done = MakePod("b", "1", "1Gi");
  done.mutable_spec()->set_node_name("n2");
  done.mutable_status()->set_phase("Succeeded");
  Pod pending = MakePod("c", "1", "1Gi");
  Snapshot snapshot = Snapshot::FromObjects({MakeNode("n1"), MakeNode("n2")}, {bound, done, pending});
  ASSERT_EQ(snapshot.size(), 2u);
  EXPECT_EQ(snapshot.Get("n1")->pod_count(), 0);
  EXPECT_EQ(snapshot.Get("n2")->pod_count(), 1);
  EXPECT_EQ(snapshot.Get("n3"), nullptr);
  EXPECT_TRUE(snapshot.AssumePod(pending, "n1"));
  EXPECT_EQ(snapshot.Get("n1")->pods()[0].pod->spec().node_name(), "n1");
  EXPECT_TRUE(snapshot.ForgetPod(*snapshot.Get("n1")->pods()[0].pod));
  EXPECT_EQ(snapshot.Get("n1")->pod_count(), 0);
}

TEST(Snapshot, FromSharedSharesBoundPodsInsteadOfCopying) {
  auto bound = std::make_shared<Pod>(MakePod("a", "1", "1Gi"));
  bound->mutable_spec()->set_node_name("n2");
  auto done = std::make_shared<Pod>(MakePod("b", "1", "1Gi"));
  done->mutable_spec()->set_node_name("n2");
  done->mutable_status()->set_phase("Failed");
  auto elsewhere = std::make_shared<Pod>(MakePod("c", "1", "1Gi"));
  elsewhere->mutable_spec()->set_node_name("n3");
  auto pending = std::make_shared<Pod>(MakePod("d", "1", "1Gi"));
  Snapshot snapshot = Snapshot::FromShared({MakeNode("n1"), MakeNode("n2")},
                                           {bound, done, elsewhere, pending});
  EXPECT_EQ(snapshot.Get("n1")->pod_count(), 0);
  ASSERT_EQ(snapshot.Get("n2")->pod_count(), 1);
  EXPECT_EQ(snapshot.Get("n2")->pods()[0].pod.get(), bound.get());
  EXPECT_EQ(snapshot.Get("n2")->requested().milli_cpu, 1000);

  EXPECT_FALSE(snapshot.AddBoundPod(pending));
  EXPECT_FALSE(snapshot.AddBoundPod(done));
  EXPECT_TRUE(snapshot.ForgetPod(*bound));
  EXPECT_TRUE(snapshot.AddBoundPod(bound));
  EXPECT_EQ(snapshot.Get("n2")->pods()[0].pod.get(), bound.get());
}

TEST(FitErrorMessage, CountsAndSortsLikeKubernetes) {
  Diagnosis d;
  d.node_to_status["a"] = Status::Unschedulable("Insufficient cpu");
  d.node_to_status["b"] = Status::Unschedulable("Insufficient cpu");
  d.node_to_status["c"] = Status::Unschedulable("Insufficient cpu");
  d.node_to_status["d"] = Status::UnschedulableAndUnresolvable("node(s) had untolerated taint {node-role: master}");
  d.node_to_status["e"] = Status::UnschedulableAndUnresolvable("node(s) had untolerated taint {node-role: master}");
  EXPECT_EQ(FitErrorMessage(5, d),
            "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint "
            "{node-role: master}.");
}

TEST(FitErrorMessage, MultipleReasonsPerNodeAndTiesByText) {
  Diagnosis d;
  d.node_to_status["a"] = Status(StatusCode::kUnschedulable, {"Insufficient memory", "Insufficient cpu"});
  d.node_to_status["b"] = Status::Unschedulable("Too many pods");
  d.node_to_status["c"] = Status::Unschedulable("Too many pods");
  EXPECT_EQ(FitErrorMessage(3, d),
            "0/3 nodes are available: 2 Too many pods, 1 Insufficient cpu, 1 Insufficient memory.");
  EXPECT_EQ(FitErrorMessage(0, Diagnosis()), "no nodes available to schedule pods");
}

// A filter rejecting listed nodes with a fixed reason, counting its calls.
class RejectFilter : public FilterPlugin {
 public:
  RejectFilter(std::string name, std::vector<std::string> nodes, std::string reason,
               bool skips = false)
      : name_(std::move(name)), nodes_(std::move(nodes)), reason_(std::move(reason)),
        skips_(skips) {}
  std::string name() const override { return name_; }
  bool SkipsFilter(const PodToSchedule&, const Snapshot&) const override { return skips_; }
  Status Filter(const PodToSchedule&, const NodeInfo& node, const Snapshot&) const override {
    ++calls;
    for (const std::string& n : nodes_) {
      if (n == node.name()) return Status::Unschedulable(reason_);
    }
    return Status();
  }
  mutable int calls = 0;

 private:
  std::string name_;
  std::vector<std::string> nodes_;
  std::string reason_;
  bool skips_;
};

// Scores from a table by node name.
class TableScore : public ScorePlugin {
 public:
  TableScore(std::string name, std::map<std::string, int64_t> table, bool skips = false)
      : name_(std::move(name)), table_(std::move(table)), skips_(skips) {}
  std::string name() const override { return name_; }
  bool SkipsScore(const PodToSchedule&, const Snapshot&) const override { return skips_; }
  int64_t Score(const PodToSchedule&, const NodeInfo& node, const Snapshot&) const override {
    ++calls;
    auto it = table_.find(node.name());
    return it == table_.end() ? 0 : it->second;
  }
  mutable int calls = 0;

 private:
  std::string name_;
  std::map<std::string, int64_t> table_;
  bool skips_;
};

Snapshot FiveNodes() {
  Snapshot s;
  for (const char* name : {"n1", "n2", "n3", "n4", "n5"}) s.AddNode(MakeNode(name));
  return s;
}

TEST(Framework, StopsAtFirstFailingFilterAndFormatsDiagnosis) {
  auto first = std::make_shared<RejectFilter>("First", std::vector<std::string>{"n1", "n2", "n3"},
                                              "Insufficient cpu");
  auto second = std::make_shared<RejectFilter>(
      "Second", std::vector<std::string>{"n1", "n4", "n5"},
      "node(s) had untolerated taint {node-role: master}");
  Plugins plugins;
  plugins.filters = {first, second};
  Framework fw(plugins, std::make_unique<SeededRng>(1));
  Snapshot snapshot = FiveNodes();
  ScheduleResult result = fw.Schedule(MakePod("p", "1", "1Gi"), snapshot);
  EXPECT_FALSE(result.scheduled());
  EXPECT_EQ(result.feasible_nodes, 0);
  EXPECT_EQ(result.evaluated_nodes, 5);
  EXPECT_EQ(first->calls, 5);
  EXPECT_EQ(second->calls, 2);  // n1..n3 stopped at the first filter
  EXPECT_EQ(result.diagnosis.node_to_plugin.at("n1"), "First");
  EXPECT_EQ(result.diagnosis.node_to_plugin.at("n4"), "Second");
  EXPECT_EQ(result.message,
            "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint "
            "{node-role: master}.");
}

TEST(Framework, WeightedScoresPickTheBest) {
  Plugins plugins;
  plugins.filters = {std::make_shared<RejectFilter>("F", std::vector<std::string>{"n1"}, "x")};
  plugins.scores = {
      {std::make_shared<TableScore>("A", std::map<std::string, int64_t>{{"n2", 100}, {"n3", 0}}), 1},
      {std::make_shared<TableScore>("B", std::map<std::string, int64_t>{{"n2", 0}, {"n3", 60}, {"n1", 100}}), 2},
  };
  Framework fw(plugins, std::make_unique<SeededRng>(1));
  const Snapshot nodes = FiveNodes();  // outlives the result, whose scores point into it
  ScheduleResult result = fw.Schedule(MakePod("p", "1", "1Gi"), nodes);
  EXPECT_EQ(result.node_name, "n3");  // 120 beats 100
  EXPECT_EQ(result.feasible_nodes, 4);
  ASSERT_EQ(result.scores.size(), 4u);
  EXPECT_EQ(result.scores[0].name(), "n2");
  EXPECT_EQ(result.scores[0].total, 100);
  EXPECT_EQ(result.scores[1].total, 120);
  EXPECT_EQ(result.scores[1].by_plugin, (NodeScore::PluginScores{0, 60}));  // A's, then B's
}

TEST(Framework, PluginsThatSkipThePodAreLeftOutOfTheCycle) {
  auto skipped_filter = std::make_shared<RejectFilter>(
      "Skipped", std::vector<std::string>{"n2", "n3"}, "would reject", /*skips=*/true);
  auto filter = std::make_shared<RejectFilter>("F", std::vector<std::string>{"n1"}, "x");
  auto skipped_score = std::make_shared<TableScore>(
      "SkippedScore", std::map<std::string, int64_t>{{"n2", 100}}, /*skips=*/true);
  auto score = std::make_shared<TableScore>("A", std::map<std::string, int64_t>{{"n4", 50}});
  Plugins plugins;
  plugins.filters = {skipped_filter, filter};
  plugins.scores = {{skipped_score, 5}, {score, 1}};
  Framework fw(plugins, std::make_unique<SeededRng>(1));
  const Snapshot nodes = FiveNodes();  // outlives the result, whose scores point into it
  ScheduleResult result = fw.Schedule(MakePod("p", "1", "1Gi"), nodes);
  EXPECT_EQ(skipped_filter->calls, 0);
  EXPECT_EQ(skipped_score->calls, 0);
  EXPECT_EQ(filter->calls, 5);
  EXPECT_EQ(score->calls, 4);
  EXPECT_EQ(result.feasible_nodes, 4);  // n2 and n3 stay feasible: the skipped filter never ran
  EXPECT_EQ(result.node_name, "n4");    // the skipped score's 100 on n2 counts for nothing
  ASSERT_EQ(result.scores.size(), 4u);
  EXPECT_EQ(result.scores[0].name(), "n2");
  EXPECT_EQ(result.scores[0].total, 0);
  EXPECT_EQ(result.scores[2].by_plugin, (NodeScore::PluginScores{0, 50}));
  // RunFilters on its own (preemption's check of a node) runs every filter.
  const Pod pod = MakePod("p", "1", "1Gi");
  EXPECT_FALSE(fw.RunFilters(pod, *nodes.Get("n2"), nodes).ok());
}

TEST(Framework, ScoresAreClampedToZeroToHundred) {
  Plugins plugins;
  plugins.scores = {{std::make_shared<TableScore>(
                         "A", std::map<std::string, int64_t>{{"n1", 500}, {"n2", -5}}),
                     1}};
  Framework fw(plugins, std::make_unique<SeededRng>(1));
  Snapshot s;
  s.AddNode(MakeNode("n1"));
  s.AddNode(MakeNode("n2"));
  std::vector<const NodeInfo*> nodes = {s.Get("n1"), s.Get("n2")};
  std::vector<NodeScore> scores = fw.RunScores(MakePod("p", "1", "1"), nodes, s);
  EXPECT_EQ(scores[0].total, 100);
  EXPECT_EQ(scores[1].total, 0);
}

TEST(Framework, TieBreakIsRandomButSeeded) {
  Plugins plugins;  // no scores: every node ties
  std::set<std::string> picked;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    Framework a(plugins, std::make_unique<SeededRng>(seed));
    Framework b(plugins, std::make_unique<SeededRng>(seed));
    Snapshot snapshot = FiveNodes();
    std::string x = a.Schedule(MakePod("p", "1", "1"), snapshot).node_name;
    EXPECT_EQ(x, b.Schedule(MakePod("p", "1", "1"), snapshot).node_name);
    picked.insert(x);
  }
  EXPECT_GT(picked.size(), 2u);  // not always the first node
}

TEST(Framework, SingleFeasibleNodeSkipsScoring) {
  Plugins plugins;
  plugins.filters = {std::make_shared<RejectFilter>(
      "F", std::vector<std::string>{"n1", "n2", "n3", "n5"}, "nope")};
  Framework fw(plugins, std::make_unique<SeededRng>(7));
  ScheduleResult result = fw.Schedule(MakePod("p", "1", "1"), FiveNodes());
  EXPECT_EQ(result.node_name, "n4");
  EXPECT_TRUE(result.scores.empty());
  EXPECT_TRUE(result.message.empty());
}

TEST(Framework, NoNodes) {
  Framework fw(Plugins(), std::make_unique<SeededRng>(7));
  ScheduleResult result = fw.Schedule(MakePod("p", "1", "1"), Snapshot());
  EXPECT_FALSE(result.scheduled());
  EXPECT_EQ(result.message, "no nodes available to schedule pods");
}

TEST(FrameworkTest, LargeClustersAreSearchedInTurnsForEnoughFeasibleNodes) {
  EXPECT_EQ(NumFeasibleNodesToFind(50), 50);
  EXPECT_EQ(NumFeasibleNodesToFind(1000), 420);   // 42% of 1,000
  EXPECT_EQ(NumFeasibleNodesToFind(5000), 500);   // 10% of 5,000
  EXPECT_EQ(NumFeasibleNodesToFind(100000), 5000);  // never below 5%
  Snapshot snapshot;
  for (int i = 0; i < 1000; ++i) snapshot.AddNode(MakeNode(absl::StrCat("n", i)));
  Framework fw({}, std::make_unique<SeededRng>(1));
  ScheduleResult first = fw.Schedule(MakePod("p", "1", "1Gi"), snapshot);
  EXPECT_EQ(first.evaluated_nodes, 420);
  EXPECT_EQ(first.feasible_nodes, 420);
  // The next cycle starts where this one stopped: another part of the cluster gets its turn.
  ScheduleResult second = fw.Schedule(MakePod("q", "1", "1Gi"), snapshot);
  EXPECT_EQ(second.evaluated_nodes, 420);
  std::set<std::string> firsts, seconds;
  for (const auto& s : first.scores) firsts.insert(std::string(s.name()));
  for (const auto& s : second.scores) seconds.insert(std::string(s.name()));
  for (const auto& name : seconds) EXPECT_EQ(firsts.count(name), 0u) << name;
  // A pod that fits nowhere is checked against every node.
  std::vector<std::string> all;
  for (int i = 0; i < 1000; ++i) all.push_back(absl::StrCat("n", i));
  Plugins rejecting;
  rejecting.filters.push_back(std::make_shared<RejectFilter>("Reject", all, "no"));
  Framework strict(rejecting, std::make_unique<SeededRng>(1));
  ScheduleResult none = strict.Schedule(MakePod("huge", "1", "1Gi"), snapshot);
  EXPECT_EQ(none.evaluated_nodes, 1000);
  EXPECT_FALSE(none.scheduled());
}

}  // namespace
}  // namespace capstan::scheduler
