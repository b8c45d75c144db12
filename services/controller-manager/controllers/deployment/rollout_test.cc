// The Deployment controller's decisions without a server: hashes, fenceposts, one-pass plans,
// and whole rollouts simulated step by step (apply the plan, let the "ReplicaSet controller"
// converge, make pods available, repeat) with the rollout bounds checked at every step.
#include "services/controller-manager/controllers/deployment/rollout.h"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace capstan::controllermanager::deployment {
namespace {

using capstan::core::v1::PodTemplateSpec;
using capstan::meta::v1::IntOrString;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

IntOrString Int(int32_t v) {
  IntOrString out;
  out.set_int_val(v);
  return out;
}
IntOrString Str(const std::string& v) {
  IntOrString out;
  out.set_str_val(v);
  return out;
}

Deployment MakeDeployment(int32_t replicas, IntOrString surge, IntOrString unavailable,
                          const std::string& image = "nginx:1") {
  Deployment d;
  d.mutable_metadata()->set_name("web");
  d.mutable_metadata()->set_namespace_("default");
  d.mutable_metadata()->set_uid("uid-web");
  d.mutable_metadata()->set_generation(1);
  d.mutable_spec()->set_replicas(replicas);
  (*d.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "web";
  (*d.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = "web";
  auto* c = d.mutable_spec()->mutable_template_()->mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image(image);
  d.mutable_spec()->mutable_strategy()->set_type("RollingUpdate");
  *d.mutable_spec()->mutable_strategy()->mutable_rolling_update()->mutable_max_surge() = surge;
  *d.mutable_spec()->mutable_strategy()->mutable_rolling_update()->mutable_max_unavailable() =
      unavailable;
  d.mutable_spec()->set_revision_history_limit(10);
  d.mutable_spec()->set_progress_deadline_seconds(600);
  return d;
}

void SetImage(Deployment* d, const std::string& image) {
  d->mutable_spec()->mutable_template_()->mutable_spec()->mutable_containers(0)->set_image(image);
  d->mutable_metadata()->set_generation(d->metadata().generation() + 1);
}

const DeploymentCondition* Condition(const DeploymentStatus& s, const std::string& type) {
  for (const auto& c : s.conditions()) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

// A namespace with one deployment, its replica sets, and a ReplicaSet controller that makes pods
// (status.replicas follows spec at once; new pods start unavailable; removed pods go first from
// the unavailable ones).
class Cluster {
 public:
  explicit Cluster(Deployment d) : d_(std::move(d)) {}

  Deployment& deployment() { return d_; }
  std::vector<ReplicaSet>& replica_sets() { return rss_; }
  absl::Time now() const { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

  Plan Step() {
    Plan plan = PlanRollout(d_, rss_, now_);
    Apply(plan);
    return plan;
  }

  void Apply(const Plan& plan) {
    for (const ReplicaSetAction& a : plan.actions) {
      ReplicaSet rs = a.replica_set;
      auto it = std::find_if(rss_.begin(), rss_.end(), [&](const ReplicaSet& r) {
        return r.metadata().name() == rs.metadata().name();
      });
      switch (a.type) {
        case ReplicaSetAction::Type::kCreate:
          ASSERT_TRUE(it == rss_.end()) << "create of existing " << rs.metadata().name();
          rs.mutable_metadata()->set_uid(absl::StrCat("uid-", ++seq_));
          rs.mutable_metadata()->mutable_creation_timestamp()->set_seconds(
              absl::ToUnixSeconds(now_));
          rs.mutable_metadata()->mutable_creation_timestamp()->set_nanos(seq_);
          rs.mutable_metadata()->set_generation(1);
          rs.clear_status();
          rss_.push_back(rs);
          break;
        case ReplicaSetAction::Type::kUpdate:
          ASSERT_TRUE(it != rss_.end());
          if (rs.spec().SerializeAsString() != it->spec().SerializeAsString()) {
            rs.mutable_metadata()->set_generation(it->metadata().generation() + 1);
          }
          *rs.mutable_status() = it->status();  // an update never writes status
          *it = rs;
          break;
        case ReplicaSetAction::Type::kDelete:
          ASSERT_TRUE(it != rss_.end());
          rss_.erase(it);
          break;
      }
    }
    if (plan.revision) {
      (*d_.mutable_metadata()->mutable_annotations())[kRevisionAnnotation] = *plan.revision;
    }
    if (plan.status) *d_.mutable_status() = *plan.status;
  }

  // The ReplicaSet controller: pods follow spec; removed pods go unavailable-first.
  void SyncPods() {
    for (ReplicaSet& rs : rss_) {
      auto* s = rs.mutable_status();
      int32_t spec = Replicas(rs);
      if (spec < s->replicas()) {
        int32_t removed = s->replicas() - spec;
        int32_t unavailable = s->replicas() - s->available_replicas();
        int32_t removed_available = std::max(removed - unavailable, 0);
        s->set_available_replicas(s->available_replicas() - removed_available);
      }
      s->set_replicas(spec);
      s->set_ready_replicas(s->available_replicas());
      s->set_fully_labeled_replicas(spec);
      s->set_observed_generation(rs.metadata().generation());
    }
  }

  // Makes up to n unavailable pods available (n < 0: all), oldest replica set first.
  void MakeAvailable(int n) {
    for (ReplicaSet& rs : rss_) {
      auto* s = rs.mutable_status();
      int32_t k = s->replicas() - s->available_replicas();
      if (n >= 0) k = std::min(k, n);
      s->set_available_replicas(s->available_replicas() + k);
      s->set_ready_replicas(s->available_replicas());
      if (n >= 0) n -= k;
    }
  }

  int32_t TotalPods() const {
    int32_t total = 0;
    for (const auto& rs : rss_) total += rs.status().replicas();
    return total;
  }
  int32_t AvailablePods() const {
    int32_t total = 0;
    for (const auto& rs : rss_) total += rs.status().available_replicas();
    return total;
  }
  const ReplicaSet* NewRS() const { return FindNewReplicaSet(d_, rss_); }

  bool Complete() const {
    const ReplicaSet* n = NewRS();
    if (n == nullptr) return false;
    const int32_t want = d_.spec().replicas();
    for (const auto& rs : rss_) {
      if (&rs != n && (Replicas(rs) != 0 || rs.status().replicas() != 0)) return false;
    }
    return Replicas(*n) == want && n->status().available_replicas() == want &&
           d_.status().updated_replicas() == want && d_.status().available_replicas() == want &&
           d_.status().observed_generation() == d_.metadata().generation();
  }

  // Steps (plan, pods, availability) until complete; false after max_steps.
  // check: called after each change of pods.
  template <typename Check>
  bool RunToCompletion(int available_per_step, int max_steps, Check check) {
    for (int i = 0; i < max_steps; ++i) {
      Step();
      SyncPods();
      check();
      MakeAvailable(available_per_step);
      check();
      if (Complete()) {
        Step();  // the final status (NewReplicaSetAvailable)
        return true;
      }
      Advance(absl::Seconds(1));
    }
    return false;
  }

 private:
  Deployment d_;
  std::vector<ReplicaSet> rss_;
  absl::Time now_ = kStart;
  int seq_ = 0;
};

// ---------------------------------------------------------------------------------------------

TEST(HashTest, SafeEncodeString) {
  EXPECT_EQ(SafeEncodeString("123"), "567");
  EXPECT_EQ(SafeEncodeString(""), "");
}

TEST(HashTest, StableAndSensitive) {
  Deployment a = MakeDeployment(3, Int(1), Int(0));
  Deployment b = MakeDeployment(3, Int(1), Int(0));
  const std::string h = ComputeHash(a.spec().template_(), std::nullopt);
  EXPECT_EQ(h, ComputeHash(b.spec().template_(), std::nullopt));
  EXPECT_FALSE(h.empty());
  EXPECT_EQ(h.find_first_not_of("bcdfghjklmnpqrstvwxz2456789"), std::string::npos) << h;
  SetImage(&b, "nginx:2");
  EXPECT_NE(h, ComputeHash(b.spec().template_(), std::nullopt));
  EXPECT_NE(h, ComputeHash(a.spec().template_(), 1));
  EXPECT_EQ(ComputeHash(a.spec().template_(), 1), ComputeHash(a.spec().template_(), 1));
  // Labels in a different insertion order hash the same (deterministic map order).
  PodTemplateSpec t1, t2;
  (*t1.mutable_metadata()->mutable_labels())["a"] = "1";
  (*t1.mutable_metadata()->mutable_labels())["b"] = "2";
  (*t2.mutable_metadata()->mutable_labels())["b"] = "2";
  (*t2.mutable_metadata()->mutable_labels())["a"] = "1";
  EXPECT_EQ(ComputeHash(t1, std::nullopt), ComputeHash(t2, std::nullopt));
  (*t2.mutable_metadata()->mutable_labels())[kPodTemplateHashLabel] = "x";
  EXPECT_TRUE(EqualIgnoreHash(t1, t2));
}

TEST(FencepostTest, ScaledValue) {
  struct Case {
    IntOrString value;
    int32_t total;
    bool round_up;
    int32_t want;
  };
  for (const Case& c : std::vector<Case>{{Int(2), 10, true, 2},
                                         {Str("25%"), 10, true, 3},
                                         {Str("25%"), 10, false, 2},
                                         {Str("0%"), 10, true, 0},
                                         {Str("100%"), 7, false, 7},
                                         {Str("10%"), 5, true, 1},
                                         {Str("10%"), 5, false, 0}}) {
    absl::StatusOr<int32_t> got = ScaledValue(c.value, c.total, c.round_up);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, c.want) << c.value.ShortDebugString() << " of " << c.total;
  }
  EXPECT_FALSE(ScaledValue(Str("abc"), 10, true).ok());
  EXPECT_FALSE(ScaledValue(Str("5"), 10, true).ok());
}

TEST(FencepostTest, Resolve) {
  Fenceposts f = ResolveFenceposts(MakeDeployment(10, Str("25%"), Str("25%")));
  EXPECT_EQ(f.max_surge, 3);
  EXPECT_EQ(f.max_unavailable, 2);
  // Both zero: a rollout could never move, so one pod may be unavailable.
  f = ResolveFenceposts(MakeDeployment(10, Int(0), Str("5%")));
  EXPECT_EQ(f.max_surge, 0);
  EXPECT_EQ(f.max_unavailable, 1);
  Deployment recreate = MakeDeployment(10, Int(2), Int(2));
  recreate.mutable_spec()->mutable_strategy()->set_type("Recreate");
  EXPECT_EQ(MaxSurge(recreate), 0);
  EXPECT_EQ(MaxUnavailable(recreate), 0);
  EXPECT_EQ(MaxUnavailable(MakeDeployment(2, Int(0), Int(5))), 2);
}

TEST(PlanTest, NewDeploymentCreatesReplicaSet) {
  Deployment d = MakeDeployment(10, Int(2), Int(1));
  Plan plan = PlanRollout(d, {}, kStart);
  ASSERT_EQ(plan.actions.size(), 1u);
  ASSERT_EQ(plan.actions[0].type, ReplicaSetAction::Type::kCreate);
  const ReplicaSet& rs = plan.actions[0].replica_set;
  const std::string hash = ComputeHash(d.spec().template_(), std::nullopt);
  EXPECT_EQ(rs.metadata().name(), "web-" + hash);
  EXPECT_EQ(rs.metadata().namespace_(), "default");
  EXPECT_EQ(rs.metadata().labels().at(kPodTemplateHashLabel), hash);
  EXPECT_EQ(rs.metadata().labels().at("app"), "web");
  EXPECT_EQ(rs.spec().selector().match_labels().at(kPodTemplateHashLabel), hash);
  EXPECT_EQ(rs.spec().template_().metadata().labels().at(kPodTemplateHashLabel), hash);
  ASSERT_EQ(rs.metadata().owner_references_size(), 1);
  const auto& owner = rs.metadata().owner_references(0);
  EXPECT_EQ(owner.kind(), "Deployment");
  EXPECT_EQ(owner.uid(), "uid-web");
  EXPECT_TRUE(owner.controller());
  EXPECT_TRUE(owner.block_owner_deletion());
  EXPECT_EQ(rs.spec().replicas(), 10);
  EXPECT_EQ(rs.metadata().annotations().at(kRevisionAnnotation), "1");
  EXPECT_EQ(rs.metadata().annotations().at(kDesiredReplicasAnnotation), "10");
  EXPECT_EQ(rs.metadata().annotations().at(kMaxReplicasAnnotation), "12");
  ASSERT_TRUE(plan.revision.has_value());
  EXPECT_EQ(*plan.revision, "1");
  ASSERT_TRUE(plan.status.has_value());
  EXPECT_EQ(plan.status->observed_generation(), 1);
  const DeploymentCondition* progressing = Condition(*plan.status, kProgressing);
  ASSERT_NE(progressing, nullptr);
  EXPECT_EQ(progressing->reason(), kNewReplicaSetCreated);
  const DeploymentCondition* available = Condition(*plan.status, kAvailable);
  ASSERT_NE(available, nullptr);
  EXPECT_EQ(available->status(), "False");
  EXPECT_EQ(available->reason(), kMinimumReplicasUnavailable);
  EXPECT_GT(plan.requeue_after, absl::ZeroDuration());
  EXPECT_LE(plan.requeue_after, absl::Seconds(601));
}

TEST(PlanTest, AdoptsOrphansAndIgnoresOthers) {
  Deployment d = MakeDeployment(2, Int(1), Int(0));
  Cluster cluster(d);
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  ReplicaSet orphan = cluster.replica_sets()[0];
  orphan.mutable_metadata()->clear_owner_references();
  ReplicaSet other = orphan;
  other.mutable_metadata()->set_name("other");
  auto* ref = other.mutable_metadata()->add_owner_references();
  ref->set_kind("Deployment");
  ref->set_name("someone");
  ref->set_uid("uid-other");
  ref->set_controller(true);
  Deployment done = cluster.deployment();
  Plan plan = PlanRollout(done, {orphan, other}, cluster.now());
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].type, ReplicaSetAction::Type::kUpdate);
  EXPECT_EQ(plan.actions[0].replica_set.metadata().name(), orphan.metadata().name());
  ASSERT_EQ(plan.actions[0].replica_set.metadata().owner_references_size(), 1);
  EXPECT_EQ(plan.actions[0].replica_set.metadata().owner_references(0).uid(), "uid-web");
  EXPECT_TRUE(plan.actions[0].replica_set.metadata().owner_references(0).controller());

  // Only the other controller's replica set: a new one is made.
  plan = PlanRollout(done, {other}, cluster.now());
  ASSERT_EQ(plan.actions.size(), 1u);
  // Its name collides with the other controller's (same template): collisionCount goes up.
  EXPECT_EQ(plan.actions[0].type, ReplicaSetAction::Type::kCreate);
}

TEST(PlanTest, NameCollisionBumpsCollisionCount) {
  Deployment d = MakeDeployment(2, Int(1), Int(0));
  ReplicaSet squatter;
  squatter.mutable_metadata()->set_name("web-" + ComputeHash(d.spec().template_(), std::nullopt));
  squatter.mutable_metadata()->set_namespace_("default");
  Plan plan = PlanRollout(d, {squatter}, kStart);
  EXPECT_TRUE(plan.actions.empty());
  ASSERT_TRUE(plan.status.has_value());
  EXPECT_EQ(plan.status->collision_count(), 1);
  d.mutable_status()->set_collision_count(1);
  plan = PlanRollout(d, {squatter}, kStart);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].replica_set.metadata().name(),
            "web-" + ComputeHash(d.spec().template_(), 1));
}

TEST(PlanTest, ReleasesReplicaSetsThatNoLongerMatch) {
  Deployment d = MakeDeployment(2, Int(1), Int(0));
  Cluster cluster(d);
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  ReplicaSet rs = cluster.replica_sets()[0];
  (*rs.mutable_metadata()->mutable_labels())["app"] = "moved";
  Plan plan = PlanRollout(cluster.deployment(), {rs}, cluster.now());
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].type, ReplicaSetAction::Type::kUpdate);
  EXPECT_EQ(plan.actions[0].replica_set.metadata().owner_references_size(), 0);
  // The released one still holds the template's name: the next one gets another hash.
  ASSERT_TRUE(plan.status.has_value());
  EXPECT_EQ(plan.status->collision_count(), 1);
}

// The whole rolling update, step by step, for several (replicas, maxSurge, maxUnavailable).
using RollingParams = std::tuple<int32_t, IntOrString, IntOrString, int /*available per step*/>;

class RollingUpdateTest : public ::testing::TestWithParam<RollingParams> {};

TEST_P(RollingUpdateTest, BoundsHoldAndRolloutCompletes) {
  const auto& [replicas, surge, unavailable, per_step] = GetParam();
  Cluster cluster(MakeDeployment(replicas, surge, unavailable, "image:A"));
  ASSERT_TRUE(cluster.RunToCompletion(-1, 50, [] {}));
  const ReplicaSet* first = cluster.NewRS();
  ASSERT_NE(first, nullptr);
  const std::string first_name = first->metadata().name();
  EXPECT_EQ(cluster.deployment().metadata().annotations().at(kRevisionAnnotation), "1");
  const DeploymentCondition* progressing = Condition(cluster.deployment().status(), kProgressing);
  ASSERT_NE(progressing, nullptr);
  EXPECT_EQ(progressing->reason(), kNewReplicaSetAvailable);

  SetImage(&cluster.deployment(), "image:B");
  const Fenceposts f = ResolveFenceposts(cluster.deployment());
  const int32_t max_total = replicas + f.max_surge;
  const int32_t min_available = replicas - std::min(f.max_unavailable, replicas);
  int checks = 0;
  auto check = [&] {
    ++checks;
    ASSERT_LE(cluster.TotalPods(), max_total) << "after " << checks << " checks";
    int32_t spec_total = 0;
    for (const auto& rs : cluster.replica_sets()) spec_total += Replicas(rs);
    ASSERT_LE(spec_total, max_total) << "after " << checks << " checks";
    ASSERT_GE(cluster.AvailablePods(), min_available) << "after " << checks << " checks";
  };
  ASSERT_TRUE(cluster.RunToCompletion(per_step, 10 * replicas + 20, check))
      << "rollout did not complete";
  const ReplicaSet* second = cluster.NewRS();
  ASSERT_NE(second, nullptr);
  EXPECT_NE(second->metadata().name(), first_name);
  EXPECT_EQ(Revision(*second), 2);
  EXPECT_EQ(cluster.deployment().status().updated_replicas(), replicas);
  EXPECT_EQ(cluster.deployment().status().unavailable_replicas(), 0);
  EXPECT_EQ(cluster.deployment().metadata().annotations().at(kRevisionAnnotation), "2");
  progressing = Condition(cluster.deployment().status(), kProgressing);
  ASSERT_NE(progressing, nullptr);
  EXPECT_EQ(progressing->reason(), kNewReplicaSetAvailable);
  EXPECT_EQ(progressing->status(), "True");
  const DeploymentCondition* available = Condition(cluster.deployment().status(), kAvailable);
  ASSERT_NE(available, nullptr);
  EXPECT_EQ(available->reason(), kMinimumReplicasAvailable);
  // Steady: nothing more to do.
  Plan plan = PlanRollout(cluster.deployment(), cluster.replica_sets(), cluster.now());
  EXPECT_TRUE(plan.actions.empty());
  EXPECT_FALSE(plan.status.has_value());
  EXPECT_EQ(plan.requeue_after, absl::ZeroDuration());
}

INSTANTIATE_TEST_SUITE_P(
    Combinations, RollingUpdateTest,
    ::testing::Values(RollingParams{10, Int(2), Int(1), -1}, RollingParams{10, Int(2), Int(1), 1},
                      RollingParams{10, Str("25%"), Str("25%"), -1},
                      RollingParams{10, Str("25%"), Str("25%"), 1},
                      RollingParams{3, Int(1), Int(0), -1}, RollingParams{3, Int(1), Int(0), 1},
                      RollingParams{3, Int(0), Int(1), -1}, RollingParams{3, Int(0), Int(1), 1},
                      RollingParams{5, Int(0), Str("50%"), 1},
                      RollingParams{1, Int(1), Int(0), 1}, RollingParams{1, Int(0), Int(1), 1},
                      RollingParams{10, Str("0%"), Str("10%"), 2},
                      RollingParams{7, Int(3), Int(2), 1}, RollingParams{100, Str("10%"), Int(0), 7},
                      RollingParams{4, Int(0), Int(0), 1}));

TEST(PlanTest, RecreateWaitsForOldPodsToGo) {
  Deployment d = MakeDeployment(3, Int(0), Int(0));
  d.mutable_spec()->mutable_strategy()->set_type("Recreate");
  d.mutable_spec()->mutable_strategy()->clear_rolling_update();
  Cluster cluster(d);
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  SetImage(&cluster.deployment(), "nginx:2");
  // First: old scaled to 0, nothing new yet.
  Plan plan = cluster.Step();
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].type, ReplicaSetAction::Type::kUpdate);
  EXPECT_EQ(plan.actions[0].replica_set.spec().replicas(), 0);
  // The old pods still exist (the ReplicaSet controller has not caught up): wait.
  plan = cluster.Step();
  EXPECT_TRUE(plan.actions.empty());
  cluster.SyncPods();
  plan = cluster.Step();
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].type, ReplicaSetAction::Type::kCreate);
  EXPECT_EQ(plan.actions[0].replica_set.spec().replicas(), 3);
  EXPECT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
}

TEST(PlanTest, ProportionalScalingDuringRollout) {
  Deployment d = MakeDeployment(10, Int(2), Int(0), "image:A");
  Cluster cluster(d);
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  SetImage(&cluster.deployment(), "image:B");
  // Roll until the new replica set has some pods but the old still has most.
  for (int i = 0; i < 3; ++i) {
    cluster.Step();
    cluster.SyncPods();
    cluster.MakeAvailable(1);
  }
  int32_t total = 0;
  for (const auto& rs : cluster.replica_sets()) total += Replicas(rs);
  ASSERT_EQ(total, 12);
  std::map<std::string, int32_t> before;
  for (const auto& rs : cluster.replica_sets()) before[rs.metadata().name()] = Replicas(rs);
  ASSERT_EQ(before.size(), 2u);

  cluster.deployment().mutable_spec()->set_replicas(20);  // max 22
  cluster.deployment().mutable_metadata()->set_generation(3);
  Plan plan = cluster.Step();
  int32_t after_total = 0;
  for (const auto& rs : cluster.replica_sets()) {
    after_total += Replicas(rs);
    // Each grows in proportion to its size: 12 -> 22 is x1.83.
    const int32_t want = static_cast<int32_t>(std::lround(before[rs.metadata().name()] * 22.0 / 12));
    EXPECT_NEAR(Replicas(rs), want, 1) << rs.metadata().name();
    EXPECT_EQ(rs.metadata().annotations().at(kDesiredReplicasAnnotation), "20");
    EXPECT_EQ(rs.metadata().annotations().at(kMaxReplicasAnnotation), "22");
  }
  EXPECT_EQ(after_total, 22);
  // And down again.
  cluster.deployment().mutable_spec()->set_replicas(5);  // max 7
  cluster.deployment().mutable_metadata()->set_generation(4);
  cluster.Step();
  after_total = 0;
  for (const auto& rs : cluster.replica_sets()) after_total += Replicas(rs);
  EXPECT_EQ(after_total, 7);
  // The rollout then completes at the new size.
  ASSERT_TRUE(cluster.RunToCompletion(1, 100, [] {}));
  EXPECT_EQ(Replicas(*cluster.NewRS()), 5);
}

TEST(PlanTest, ScalingTheOnlyActiveReplicaSet) {
  Cluster cluster(MakeDeployment(3, Int(1), Int(0)));
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  cluster.deployment().mutable_spec()->set_replicas(8);
  Plan plan = cluster.Step();
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].replica_set.spec().replicas(), 8);
  EXPECT_EQ(plan.actions[0].replica_set.metadata().annotations().at(kDesiredReplicasAnnotation),
            "8");
}

TEST(PlanTest, PausedDoesNotRollButScales) {
  Cluster cluster(MakeDeployment(4, Int(1), Int(1), "image:A"));
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  cluster.deployment().mutable_spec()->set_paused(true);
  SetImage(&cluster.deployment(), "image:B");
  Plan plan = cluster.Step();
  EXPECT_TRUE(plan.actions.empty());
  ASSERT_TRUE(plan.status.has_value());
  const DeploymentCondition* c = Condition(*plan.status, kProgressing);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->reason(), kDeploymentPaused);
  EXPECT_EQ(c->status(), "Unknown");
  EXPECT_EQ(plan.requeue_after, absl::ZeroDuration());
  for (int i = 0; i < 5; ++i) cluster.Step();
  EXPECT_EQ(cluster.replica_sets().size(), 1u);
  // Scaling still happens.
  cluster.deployment().mutable_spec()->set_replicas(6);
  plan = cluster.Step();
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].replica_set.spec().replicas(), 6);
  // Resumed: the rollout goes on.
  cluster.deployment().mutable_spec()->set_paused(false);
  plan = cluster.Step();
  EXPECT_EQ(cluster.replica_sets().size(), 2u);
  ASSERT_TRUE(cluster.RunToCompletion(1, 100, [] {}));
}

TEST(PlanTest, RevisionHistoryLimit) {
  Deployment d = MakeDeployment(2, Int(1), Int(0), "image:0");
  d.mutable_spec()->set_revision_history_limit(1);
  Cluster cluster(d);
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  for (int i = 1; i <= 3; ++i) {
    SetImage(&cluster.deployment(), absl::StrCat("image:", i));
    ASSERT_TRUE(cluster.RunToCompletion(-1, 20, [] {}));
    cluster.Step();
  }
  // The current one and the newest old one (revisions 4 and 3) are left.
  std::vector<int64_t> revisions;
  for (const auto& rs : cluster.replica_sets()) revisions.push_back(Revision(rs));
  std::sort(revisions.begin(), revisions.end());
  EXPECT_EQ(revisions, (std::vector<int64_t>{3, 4}));
}

TEST(PlanTest, ProgressDeadline) {
  Deployment d = MakeDeployment(2, Int(1), Int(0), "image:A");
  d.mutable_spec()->set_progress_deadline_seconds(30);
  Cluster cluster(d);
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  SetImage(&cluster.deployment(), "image:B");
  Plan plan = cluster.Step();
  cluster.SyncPods();
  EXPECT_GT(plan.requeue_after, absl::Seconds(29));
  // The new pods never become available.
  plan = cluster.Step();
  const DeploymentCondition* c = Condition(cluster.deployment().status(), kProgressing);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status(), "True");
  cluster.Advance(absl::Seconds(20));
  plan = cluster.Step();
  EXPECT_GT(plan.requeue_after, absl::ZeroDuration());
  EXPECT_LE(plan.requeue_after, absl::Seconds(31));
  cluster.Advance(absl::Seconds(20));
  plan = cluster.Step();
  c = Condition(cluster.deployment().status(), kProgressing);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status(), "False");
  EXPECT_EQ(c->reason(), kProgressDeadlineExceeded);
  EXPECT_EQ(plan.requeue_after, absl::ZeroDuration());
  // Progress afterwards clears it.
  cluster.MakeAvailable(-1);
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  c = Condition(cluster.deployment().status(), kProgressing);
  EXPECT_EQ(c->reason(), kNewReplicaSetAvailable);
}

TEST(StatusTest, CountsAndAvailability) {
  Deployment d = MakeDeployment(10, Int(2), Int(1));
  ReplicaSet a, b;
  a.mutable_spec()->set_replicas(8);
  a.mutable_status()->set_replicas(8);
  a.mutable_status()->set_ready_replicas(8);
  a.mutable_status()->set_available_replicas(8);
  b.mutable_spec()->set_replicas(4);
  b.mutable_status()->set_replicas(3);
  b.mutable_status()->set_ready_replicas(2);
  b.mutable_status()->set_available_replicas(1);
  DeploymentStatus s = CalculateStatus(d, {&a, &b}, &b, kStart);
  EXPECT_EQ(s.replicas(), 11);
  EXPECT_EQ(s.updated_replicas(), 3);
  EXPECT_EQ(s.ready_replicas(), 10);
  EXPECT_EQ(s.available_replicas(), 9);
  EXPECT_EQ(s.unavailable_replicas(), 3);
  EXPECT_EQ(Condition(s, kAvailable)->reason(), kMinimumReplicasAvailable);
  a.mutable_status()->set_available_replicas(7);
  s = CalculateStatus(d, {&a, &b}, &b, kStart);
  EXPECT_EQ(Condition(s, kAvailable)->reason(), kMinimumReplicasUnavailable);
  EXPECT_EQ(Condition(s, kAvailable)->status(), "False");
}

TEST(RollbackTest, Template) {
  Cluster cluster(MakeDeployment(2, Int(1), Int(0), "image:A"));
  ASSERT_TRUE(cluster.RunToCompletion(-1, 10, [] {}));
  SetImage(&cluster.deployment(), "image:B");
  ASSERT_TRUE(cluster.RunToCompletion(-1, 20, [] {}));
  const Deployment& d = cluster.deployment();

  bool unchanged = true;
  absl::StatusOr<PodTemplateSpec> t = RollbackTemplate(d, cluster.replica_sets(), 0, &unchanged);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(unchanged);
  EXPECT_EQ(t->spec().containers(0).image(), "image:A");
  EXPECT_EQ(t->metadata().labels().count(kPodTemplateHashLabel), 0u);
  EXPECT_EQ(t->metadata().labels().at("app"), "web");

  t = RollbackTemplate(d, cluster.replica_sets(), 2, &unchanged);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(unchanged);
  EXPECT_EQ(RollbackTemplate(d, cluster.replica_sets(), 7).status().code(),
            absl::StatusCode::kNotFound);
  Deployment paused = d;
  paused.mutable_spec()->set_paused(true);
  EXPECT_EQ(RollbackTemplate(paused, cluster.replica_sets(), 0).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Writing it back makes the revision-1 replica set the new one, as revision 3.
  Deployment& live = cluster.deployment();
  *live.mutable_spec()->mutable_template_() = *RollbackTemplate(d, cluster.replica_sets(), 0);
  live.mutable_metadata()->set_generation(live.metadata().generation() + 1);
  const size_t count = cluster.replica_sets().size();
  ASSERT_TRUE(cluster.RunToCompletion(-1, 20, [] {}));
  EXPECT_EQ(cluster.replica_sets().size(), count);  // no new replica set
  const ReplicaSet* now_new = cluster.NewRS();
  ASSERT_NE(now_new, nullptr);
  EXPECT_EQ(Revision(*now_new), 3);
  EXPECT_EQ(now_new->metadata().annotations().at(kRevisionHistoryAnnotation), "1");
  EXPECT_EQ(Replicas(*now_new), 2);
  EXPECT_EQ(live.metadata().annotations().at(kRevisionAnnotation), "3");

  Deployment fresh = MakeDeployment(2, Int(1), Int(0));
  EXPECT_EQ(RollbackTemplate(fresh, {}, 0).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace capstan::controllermanager::deployment
