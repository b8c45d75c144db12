#include "services/controller-manager/controllers/replicaset/plan.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace capstan::controllermanager::replicaset {
namespace {

using capstan::apps::v1::ReplicaSet;
using capstan::core::v1::Pod;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);
constexpr char kUid[] = "rs-uid";

ReplicaSet MakeReplicaSet(int replicas) {
  ReplicaSet rs;
  rs.mutable_metadata()->set_name("web");
  rs.mutable_metadata()->set_namespace_("default");
  rs.mutable_metadata()->set_uid(kUid);
  rs.mutable_metadata()->set_generation(3);
  rs.mutable_spec()->set_replicas(replicas);
  (*rs.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "web";
  auto* tmpl = rs.mutable_spec()->mutable_template_();
  (*tmpl->mutable_metadata()->mutable_labels())["app"] = "web";
  (*tmpl->mutable_metadata()->mutable_labels())["tier"] = "front";
  auto* c = tmpl->mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return rs;
}

enum class Owner { kThis, kNone, kOther };

struct PodState {
  std::string name;
  Owner owner = Owner::kThis;
  bool matches = true;
  std::string phase = "Running";
  bool ready = false;
  bool terminating = false;
  std::string node;
  std::string ns = "default";
};

PodPtr MakePod(const PodState& s) {
  Pod pod;
  pod.mutable_metadata()->set_name(s.name);
  pod.mutable_metadata()->set_namespace_(s.ns);
  (*pod.mutable_metadata()->mutable_labels())["app"] = s.matches ? "web" : "other";
  *pod.mutable_metadata()->mutable_creation_timestamp() = ToMetaTime(kNow - absl::Seconds(60));
  if (s.owner != Owner::kNone) {
    auto* ref = pod.mutable_metadata()->add_owner_references();
    ref->set_api_version("apps/v1");
    ref->set_kind("ReplicaSet");
    ref->set_name(s.owner == Owner::kThis ? "web" : "someone-else");
    ref->set_uid(s.owner == Owner::kThis ? kUid : "other-uid");
    ref->set_controller(true);
  }
  if (s.terminating) pod.mutable_metadata()->mutable_deletion_timestamp()->set_seconds(1);
  pod.mutable_spec()->set_node_name(s.node);
  pod.mutable_status()->set_phase(s.phase);
  if (s.ready) {
    auto* c = pod.mutable_status()->add_conditions();
    c->set_type("Ready");
    c->set_status("True");
    *c->mutable_last_transition_time() = ToMetaTime(kNow - absl::Seconds(30));
  }
  return std::make_shared<const Pod>(std::move(pod));
}

std::vector<std::string> Names(const std::vector<PodPtr>& pods) {
  std::vector<std::string> names;
  for (const PodPtr& pod : pods) names.push_back(pod->metadata().name());
  return names;
}

struct PlanCase {
  std::string name;
  int replicas;
  std::vector<PodState> pods;
  int burst = kBurstReplicas;
  bool rs_deleting = false;
  // Expected:
  int to_create = 0;
  std::vector<std::string> deleted;
  std::vector<std::string> adopted;
  std::vector<std::string> released;
  int active = 0;
};

std::vector<PodState> Owned(int n, const std::string& prefix = "p") {
  std::vector<PodState> pods;
  for (int i = 0; i < n; ++i) pods.push_back({.name = prefix + std::to_string(i)});
  return pods;
}

TEST(PlanReplicaSetTest, Table) {
  const std::vector<PlanCase> cases = {
      {.name = "nothing to do at zero", .replicas = 0},
      {.name = "scale up from nothing", .replicas = 3, .to_create = 3},
      {.name = "scale up is capped at the burst",
       .replicas = 1200,
       .burst = 500,
       .to_create = 500},
      {.name = "steady", .replicas = 3, .pods = Owned(3), .active = 3},
      {.name = "one missing", .replicas = 3, .pods = Owned(2), .to_create = 1, .active = 2},
      {.name = "scale down deletes the least valuable",
       .replicas = 1,
       .pods = {{.name = "running-ready", .ready = true, .node = "n1"},
                {.name = "pending", .phase = "Pending", .node = "n1"},
                {.name = "unassigned", .phase = "Pending"}},
       .deleted = {"unassigned", "pending"},
       .active = 3},
      {.name = "scale down is capped at the burst",
       .replicas = 0,
       .pods = Owned(5),
       .burst = 2,
       .deleted = {"p0", "p1"},
       .active = 5},
      {.name = "terminating and finished pods do not count",
       .replicas = 3,
       .pods = {{.name = "ok"},
                {.name = "going", .terminating = true},
                {.name = "done", .phase = "Succeeded"},
                {.name = "failed", .phase = "Failed"}},
       .to_create = 2,
       .active = 1},
      {.name = "orphan that matches is adopted and counted",
       .replicas = 2,
       .pods = {{.name = "mine"}, {.name = "orphan", .owner = Owner::kNone}},
       .adopted = {"orphan"},
       .active = 2},
      {.name = "orphan that does not match is left alone",
       .replicas = 1,
       .pods = {{.name = "orphan", .owner = Owner::kNone, .matches = false}},
       .to_create = 1},
      {.name = "terminating orphan is not adopted",
       .replicas = 1,
       .pods = {{.name = "orphan", .owner = Owner::kNone, .terminating = true}},
       .to_create = 1},
      {.name = "another controller's pod is ignored",
       .replicas = 1,
       .pods = {{.name = "theirs", .owner = Owner::kOther}},
       .to_create = 1},
      {.name = "owned pod that stopped matching is released and replaced",
       .replicas = 2,
       .pods = {{.name = "keep"}, {.name = "relabeled", .matches = false}},
       .to_create = 1,
       .released = {"relabeled"},
       .active = 1},
      {.name = "other namespace is ignored",
       .replicas = 1,
       .pods = {{.name = "elsewhere", .owner = Owner::kNone, .ns = "other"}},
       .to_create = 1},
      {.name = "being deleted: no create, no adoption, no release",
       .replicas = 3,
       .pods = {{.name = "mine"},
                {.name = "orphan", .owner = Owner::kNone},
                {.name = "relabeled", .matches = false}},
       .rs_deleting = true,
       .active = 1},
      {.name = "being deleted: no delete either",
       .replicas = 0,
       .pods = Owned(2),
       .rs_deleting = true,
       .active = 2},
  };
  for (const PlanCase& c : cases) {
    ReplicaSet rs = MakeReplicaSet(c.replicas);
    if (c.rs_deleting) rs.mutable_metadata()->mutable_deletion_timestamp()->set_seconds(1);
    std::vector<PodPtr> pods;
    for (const PodState& s : c.pods) pods.push_back(MakePod(s));
    absl::StatusOr<ReplicaSetPlan> plan = PlanReplicaSet(rs, pods, c.burst);
    ASSERT_TRUE(plan.ok()) << c.name << ": " << plan.status();
    EXPECT_EQ(plan->to_create, c.to_create) << c.name;
    EXPECT_EQ(Names(plan->pods_to_delete), c.deleted) << c.name;
    EXPECT_EQ(Names(plan->adopt), c.adopted) << c.name;
    EXPECT_EQ(Names(plan->release), c.released) << c.name;
    EXPECT_EQ(static_cast<int>(plan->active.size()), c.active) << c.name;
    EXPECT_EQ(plan->diff, c.active - c.replicas) << c.name;
  }
}

TEST(PlanReplicaSetTest, UnsetReplicasMeansOne) {
  ReplicaSet rs = MakeReplicaSet(0);
  rs.mutable_spec()->clear_replicas();
  absl::StatusOr<ReplicaSetPlan> plan = PlanReplicaSet(rs, {});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->to_create, 1);
}

TEST(PlanReplicaSetTest, BadSelectorIsAnError) {
  ReplicaSet rs = MakeReplicaSet(1);
  auto* expr = rs.mutable_spec()->mutable_selector()->add_match_expressions();
  expr->set_key("app");
  expr->set_operator_("Bogus");
  EXPECT_FALSE(PlanReplicaSet(rs, {}).ok());
}

TEST(SlowStartBatchSizesTest, DoublesUpToTheCount) {
  EXPECT_EQ(SlowStartBatchSizes(0), std::vector<int>{});
  EXPECT_EQ(SlowStartBatchSizes(1), std::vector<int>{1});
  EXPECT_EQ(SlowStartBatchSizes(3), (std::vector<int>{1, 2}));
  EXPECT_EQ(SlowStartBatchSizes(7), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(SlowStartBatchSizes(10), (std::vector<int>{1, 2, 4, 3}));
  EXPECT_EQ(SlowStartBatchSizes(50), (std::vector<int>{1, 2, 4, 8, 16, 19}));
  EXPECT_EQ(SlowStartBatchSizes(500), (std::vector<int>{1, 2, 4, 8, 16, 32, 64, 128, 245}));
  EXPECT_EQ(SlowStartBatchSizes(5, 2), (std::vector<int>{2, 3}));
}

TEST(PodFromTemplateTest, StampsTheTemplate) {
  ReplicaSet rs = MakeReplicaSet(1);
  (*rs.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_annotations())["a"] = "b";
  Pod pod = PodFromTemplate(rs);
  EXPECT_EQ(pod.metadata().generate_name(), "web-");
  EXPECT_EQ(pod.metadata().name(), "");
  EXPECT_EQ(pod.metadata().namespace_(), "default");
  EXPECT_EQ(pod.metadata().labels().at("app"), "web");
  EXPECT_EQ(pod.metadata().labels().at("tier"), "front");
  EXPECT_EQ(pod.metadata().annotations().at("a"), "b");
  ASSERT_EQ(pod.metadata().owner_references_size(), 1);
  const auto& ref = pod.metadata().owner_references(0);
  EXPECT_EQ(ref.api_version(), "apps/v1");
  EXPECT_EQ(ref.kind(), "ReplicaSet");
  EXPECT_EQ(ref.name(), "web");
  EXPECT_EQ(ref.uid(), kUid);
  EXPECT_TRUE(ref.controller());
  EXPECT_TRUE(ref.block_owner_deletion());
  EXPECT_EQ(pod.spec().containers(0).image(), "nginx:1.25");
  EXPECT_EQ(ControllerRef(pod.metadata()), &pod.metadata().owner_references(0));
}

TEST(CalculateStatusTest, CountsAndObservedGeneration) {
  ReplicaSet rs = MakeReplicaSet(4);
  rs.mutable_spec()->set_min_ready_seconds(20);
  Pod partial = *MakePod({.name = "partial", .ready = true});
  (*partial.mutable_metadata()->mutable_labels())["tier"] = "front";
  std::vector<PodPtr> active = {MakePod({.name = "a", .ready = true}),  // ready 30 s ago
                                MakePod({.name = "b"}),
                                std::make_shared<const Pod>(partial)};
  auto status = CalculateStatus(rs, active, -1, absl::OkStatus(), kNow);
  EXPECT_EQ(status.replicas(), 3);
  EXPECT_EQ(status.fully_labeled_replicas(), 1);  // only "partial" has tier=front too
  EXPECT_EQ(status.ready_replicas(), 2);
  EXPECT_EQ(status.available_replicas(), 2);
  EXPECT_EQ(status.observed_generation(), 3);
  EXPECT_EQ(status.conditions_size(), 0);

  rs.mutable_spec()->set_min_ready_seconds(60);
  status = CalculateStatus(rs, active, -1, absl::OkStatus(), kNow);
  EXPECT_EQ(status.available_replicas(), 0);
  std::optional<absl::Duration> next = NextAvailableIn(active, 60, kNow);
  ASSERT_TRUE(next.has_value());
  EXPECT_GE(*next, absl::Seconds(30));
  EXPECT_LT(*next, absl::Seconds(31));
  EXPECT_FALSE(NextAvailableIn(active, 0, kNow).has_value());
  EXPECT_FALSE(NextAvailableIn(active, 10, kNow).has_value());  // all already available
}

TEST(CalculateStatusTest, ReplicaFailureConditionComesAndGoes) {
  ReplicaSet rs = MakeReplicaSet(2);
  auto failed = CalculateStatus(rs, {}, -2, absl::UnavailableError("quota exceeded"), kNow);
  ASSERT_EQ(failed.conditions_size(), 1);
  EXPECT_EQ(failed.conditions(0).type(), "ReplicaFailure");
  EXPECT_EQ(failed.conditions(0).status(), "True");
  EXPECT_EQ(failed.conditions(0).reason(), "FailedCreate");
  EXPECT_EQ(failed.conditions(0).message(), "quota exceeded");

  // Still failing later: the condition (and its transition time) is kept, so nothing changes.
  *rs.mutable_status() = failed;
  auto again = CalculateStatus(rs, {}, -2, absl::UnavailableError("other text"),
                               kNow + absl::Minutes(1));
  EXPECT_TRUE(SameStatus(again, failed));

  // Succeeds: removed.
  auto ok = CalculateStatus(rs, {}, -2, absl::OkStatus(), kNow + absl::Minutes(2));
  EXPECT_EQ(ok.conditions_size(), 0);
  EXPECT_FALSE(SameStatus(ok, failed));

  rs.clear_status();
  auto delete_failed = CalculateStatus(rs, {}, 3, absl::InternalError("boom"), kNow);
  ASSERT_EQ(delete_failed.conditions_size(), 1);
  EXPECT_EQ(delete_failed.conditions(0).reason(), "FailedDelete");
}

}  // namespace
}  // namespace capstan::controllermanager::replicaset
