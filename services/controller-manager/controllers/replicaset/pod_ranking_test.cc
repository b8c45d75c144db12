#include "services/controller-manager/controllers/replicaset/pod_ranking.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace capstan::controllermanager::replicaset {
namespace {

using capstan::core::v1::Pod;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// A pod described by what the ranking looks at.
struct PodFacts {
  std::string name = "p";
  std::string node;
  std::string phase = "Running";
  bool ready = true;
  int ready_seconds_ago = 100;  // -1: Ready condition without a transition time
  int restarts = 0;
  int created_seconds_ago = 1000;  // -1: no creationTimestamp
};

Pod MakePod(const PodFacts& s) {
  Pod pod;
  pod.mutable_metadata()->set_name(s.name);
  pod.mutable_metadata()->set_namespace_("default");
  if (s.created_seconds_ago >= 0) {
    *pod.mutable_metadata()->mutable_creation_timestamp() =
        ToMetaTime(kNow - absl::Seconds(s.created_seconds_ago));
  }
  pod.mutable_spec()->set_node_name(s.node);
  pod.mutable_status()->set_phase(s.phase);
  auto* ready = pod.mutable_status()->add_conditions();
  ready->set_type("Ready");
  ready->set_status(s.ready ? "True" : "False");
  if (s.ready_seconds_ago >= 0) {
    *ready->mutable_last_transition_time() = ToMetaTime(kNow - absl::Seconds(s.ready_seconds_ago));
  }
  auto* container = pod.mutable_status()->add_container_statuses();
  container->set_name("app");
  container->set_restart_count(s.restarts);
  return pod;
}

struct RankCase {
  std::string name;
  PodFacts first;   // must be deleted first
  PodFacts second;
};

TEST(PodRankingTest, DeleteBeforeTable) {
  auto with = [](auto change) {
    PodFacts s;
    s.node = "node-1";
    change(s);
    return s;
  };
  const std::vector<RankCase> cases = {
      {"unassigned before assigned", with([](PodFacts& s) { s.node = ""; }), with([](PodFacts&) {})},
      {"unassigned wins over phase",
       with([](PodFacts& s) {
         s.node = "";
         s.phase = "Running";
       }),
       with([](PodFacts& s) { s.phase = "Pending"; })},
      {"pending before unknown", with([](PodFacts& s) { s.phase = "Pending"; }),
       with([](PodFacts& s) { s.phase = "Unknown"; })},
      {"unknown before running", with([](PodFacts& s) { s.phase = "Unknown"; }),
       with([](PodFacts&) {})},
      {"pending before running", with([](PodFacts& s) { s.phase = "Pending"; }),
       with([](PodFacts&) {})},
      {"not ready before ready", with([](PodFacts& s) { s.ready = false; }), with([](PodFacts&) {})},
      {"phase wins over readiness",
       with([](PodFacts& s) {
         s.phase = "Pending";
         s.ready = true;
       }),
       with([](PodFacts& s) { s.ready = false; })},
      {"ready for less time first", with([](PodFacts& s) { s.ready_seconds_ago = 10; }),
       with([](PodFacts& s) { s.ready_seconds_ago = 500; })},
      {"unknown ready time first", with([](PodFacts& s) { s.ready_seconds_ago = -1; }),
       with([](PodFacts& s) { s.ready_seconds_ago = 5; })},
      {"ready time wins over restarts",
       with([](PodFacts& s) {
         s.ready_seconds_ago = 10;
         s.restarts = 0;
       }),
       with([](PodFacts& s) {
         s.ready_seconds_ago = 500;
         s.restarts = 9;
       })},
      {"not ready: ready time ignored, restarts decide",
       with([](PodFacts& s) {
         s.ready = false;
         s.ready_seconds_ago = 500;
         s.restarts = 3;
       }),
       with([](PodFacts& s) {
         s.ready = false;
         s.ready_seconds_ago = 10;
         s.restarts = 1;
       })},
      {"more restarts first", with([](PodFacts& s) { s.restarts = 5; }),
       with([](PodFacts& s) { s.restarts = 1; })},
      {"restarts win over age",
       with([](PodFacts& s) {
         s.restarts = 2;
         s.created_seconds_ago = 5000;
       }),
       with([](PodFacts& s) { s.created_seconds_ago = 1; })},
      {"newer first", with([](PodFacts& s) { s.created_seconds_ago = 10; }),
       with([](PodFacts& s) { s.created_seconds_ago = 900; })},
      {"no creation time first", with([](PodFacts& s) { s.created_seconds_ago = -1; }),
       with([](PodFacts& s) { s.created_seconds_ago = 1; })},
      {"ties broken by name", with([](PodFacts& s) { s.name = "a"; }),
       with([](PodFacts& s) { s.name = "b"; })},
  };
  for (const RankCase& c : cases) {
    const Pod first = MakePod(c.first);
    const Pod second = MakePod(c.second);
    EXPECT_TRUE(DeleteBefore(first, second)) << c.name;
    EXPECT_FALSE(DeleteBefore(second, first)) << c.name;
  }
}

TEST(PodRankingTest, RankForDeletionOrdersLeastValuableFirst) {
  auto make = [](PodFacts s) { return std::make_shared<const Pod>(MakePod(s)); };
  PodFacts running_old{.name = "running-old", .node = "n", .created_seconds_ago = 5000};
  PodFacts running_new{.name = "running-new", .node = "n", .created_seconds_ago = 5};
  PodFacts not_ready{.name = "not-ready", .node = "n", .ready = false};
  PodFacts pending{.name = "pending", .node = "n", .phase = "Pending", .ready = false};
  PodFacts unassigned{.name = "unassigned", .phase = "Pending", .ready = false};
  std::vector<PodPtr> pods = {make(running_old), make(unassigned), make(running_new),
                              make(not_ready), make(pending)};
  RankForDeletion(&pods);
  std::vector<std::string> names;
  for (const PodPtr& pod : pods) names.push_back(pod->metadata().name());
  EXPECT_EQ(names, (std::vector<std::string>{"unassigned", "pending", "not-ready", "running-new",
                                             "running-old"}));
}

TEST(PodRankingTest, ActiveReadyAvailable) {
  PodFacts s;
  Pod pod = MakePod(s);
  EXPECT_TRUE(IsPodActive(pod));
  pod.mutable_status()->set_phase("Succeeded");
  EXPECT_FALSE(IsPodActive(pod));
  pod.mutable_status()->set_phase("Failed");
  EXPECT_FALSE(IsPodActive(pod));
  pod.mutable_status()->set_phase("Running");
  pod.mutable_metadata()->mutable_deletion_timestamp()->set_seconds(1);
  EXPECT_FALSE(IsPodActive(pod));

  s.ready_seconds_ago = 30;
  pod = MakePod(s);
  EXPECT_TRUE(IsPodReady(pod));
  EXPECT_TRUE(IsPodAvailable(pod, 0, kNow));
  EXPECT_TRUE(IsPodAvailable(pod, 29, kNow));
  EXPECT_FALSE(IsPodAvailable(pod, 30, kNow));  // strictly after, as Kubernetes
  EXPECT_FALSE(IsPodAvailable(pod, 60, kNow));

  s.ready = false;
  pod = MakePod(s);
  EXPECT_FALSE(IsPodReady(pod));
  EXPECT_FALSE(IsPodAvailable(pod, 0, kNow));

  Pod bare;
  EXPECT_FALSE(IsPodReady(bare));
  EXPECT_EQ(PodReadySince(bare), absl::InfinitePast());
  EXPECT_EQ(MaxContainerRestarts(bare), 0);
}

TEST(PodRankingTest, MetaTimeRoundTrip) {
  const absl::Time t = absl::FromUnixMillis(1'700'000'123'456);
  EXPECT_EQ(FromMetaTime(ToMetaTime(t)), t);
  EXPECT_EQ(FromMetaTime(capstan::meta::v1::Time()), absl::InfinitePast());
}

}  // namespace
}  // namespace capstan::controllermanager::replicaset
