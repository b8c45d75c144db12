// The Deployment controller against a real capstan-apiserver, with the real ReplicaSet controller
// making pods and a helper that marks every pod Running and Ready (there are no nodes). Watchers
// on ReplicaSets and on pods check the rolling-update bounds at every event: total pods never
// above replicas + maxSurge, available pods never below replicas - maxUnavailable.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/client/client.h"
#include "lib/client/shared_informer_factory.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "services/controller-manager/controller_context.h"
#include "services/controller-manager/controllers/deployment/deployment_controller.h"
#include "services/controller-manager/controllers/deployment/rollout.h"
#include "services/controller-manager/controllers/replicaset/replicaset_controller.h"
#include "test/harness/apiserver_process.h"

namespace capstan::controllermanager {
namespace {

using capstan::apps::v1::Deployment;
using capstan::apps::v1::ReplicaSet;
using capstan::core::v1::Pod;
using testing::ApiServerProcess;

constexpr absl::Duration kWait = absl::Seconds(90);

bool PodReady(const Pod& pod) {
  for (const auto& c : pod.status().conditions()) {
    if (c.type() == "Ready") return c.status() == "True";
  }
  return false;
}

// Bounds the watchers check; changed by the test between phases.
struct Bounds {
  std::atomic<bool> enabled{false};
  std::atomic<int> max_total{0};
  std::atomic<int> min_available{0};
};

// Follows one resource with a plain watch and calls check with the current state after every
// event; records the first violation.
template <typename T>
class BoundsWatcher {
 public:
  using Check = std::function<std::string(const std::map<std::string, T>&)>;
  BoundsWatcher(client::Client* client, Check check) : check_(std::move(check)) {
    client::WatchOptions options;
    options.label_selector = "app=web";
    stream_ = client->Watch<T>("default", options);
    thread_ = std::thread([this] { Loop(); });
  }
  ~BoundsWatcher() {
    stream_->Cancel();
    thread_.join();
  }
  std::string violation() {
    absl::MutexLock lock(&mu_);
    return violation_;
  }
  int events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  void Loop() {
    client::WatchEvent<T> event;
    std::map<std::string, T> state;
    while (stream_->Next(&event)) {
      const std::string name = event.object.metadata().name();
      if (event.type == "DELETED") {
        state.erase(name);
      } else if (event.type == "ADDED" || event.type == "MODIFIED") {
        state[name] = event.object;
      } else {
        continue;
      }
      std::string problem = check_(state);
      absl::MutexLock lock(&mu_);
      ++events_;
      if (!problem.empty() && violation_.empty()) violation_ = problem;
    }
  }

  Check check_;
  std::unique_ptr<client::WatchStream<T>> stream_;
  std::thread thread_;
  absl::Mutex mu_;
  std::string violation_ ABSL_GUARDED_BY(mu_);
  int events_ ABSL_GUARDED_BY(mu_) = 0;
};

class DeploymentControllerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }

  void SetUp() override {
    server_ = std::make_unique<ApiServerProcess>();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    client_ = client::Client::Connect(server_->grpc_address());
    factory_ = std::make_unique<client::SharedInformerFactory>(client_.get());
    context_.client = client_.get();
    context_.informers = factory_.get();
    context_.workers = 2;
    deployments_ = std::make_unique<DeploymentController>(context_);
    replicasets_ = std::make_unique<ReplicaSetController>(context_);
    factory_->Start();
    threads_.emplace_back([this] { deployments_->Run(); });
    threads_.emplace_back([this] { replicasets_->Run(); });
    threads_.emplace_back([this] { MarkPodsReady(); });
  }

  void TearDown() override {
    stop_ = true;
    if (deployments_) deployments_->Stop();
    if (replicasets_) replicasets_->Stop();
    for (auto& t : threads_) t.join();
    if (factory_) factory_->Stop();
    deployments_.reset();
    replicasets_.reset();
  }

  // The node agent's part: every pod becomes Running and Ready soon after it is made.
  void MarkPodsReady() {
    while (!stop_) {
      client::ListOptions options;
      options.label_selector = "app=web";
      absl::StatusOr<client::ObjectList<Pod>> pods = client_->List<Pod>("default", options);
      if (pods.ok()) {
        for (Pod& pod : pods->items) {
          if (PodReady(pod) || pod.metadata().has_deletion_timestamp()) continue;
          pod.mutable_status()->set_phase("Running");
          pod.mutable_status()->clear_conditions();
          auto* c = pod.mutable_status()->add_conditions();
          c->set_type("Ready");
          c->set_status("True");
          c->mutable_last_transition_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
          (void)client_->UpdateStatus(pod);
        }
      }
      absl::SleepFor(absl::Milliseconds(30));
    }
  }

  Deployment NewDeployment(int replicas, const std::string& image) {
    Deployment d;
    d.mutable_metadata()->set_name("web");
    d.mutable_metadata()->set_namespace_("default");
    d.mutable_spec()->set_replicas(replicas);
    (*d.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "web";
    (*d.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = "web";
    auto* c = d.mutable_spec()->mutable_template_()->mutable_spec()->add_containers();
    c->set_name("app");
    c->set_image(image);
    auto* strategy = d.mutable_spec()->mutable_strategy();
    strategy->set_type("RollingUpdate");
    strategy->mutable_rolling_update()->mutable_max_surge()->set_int_val(2);
    strategy->mutable_rolling_update()->mutable_max_unavailable()->set_int_val(1);
    return d;
  }

  // Get, change, Update; retried on Conflict.
  Deployment Modify(const std::function<void(Deployment*)>& change) {
    for (int i = 0; i < 50; ++i) {
      absl::StatusOr<Deployment> d = client_->Get<Deployment>("default", "web");
      EXPECT_TRUE(d.ok()) << d.status();
      if (!d.ok()) return Deployment();
      change(&*d);
      absl::StatusOr<Deployment> updated = client_->Update(*d);
      if (updated.ok()) return *updated;
      EXPECT_EQ(api::Reason(updated.status()), "Conflict") << updated.status();
    }
    ADD_FAILURE() << "could not update the deployment";
    return Deployment();
  }

  std::vector<ReplicaSet> ReplicaSets() {
    absl::StatusOr<client::ObjectList<ReplicaSet>> list = client_->List<ReplicaSet>("default");
    EXPECT_TRUE(list.ok()) << list.status();
    return list.ok() ? list->items : std::vector<ReplicaSet>();
  }

  // Waits until the deployment's rollout of its current generation is complete.
  Deployment WaitComplete(int replicas) {
    absl::Time deadline = absl::Now() + kWait;
    Deployment d;
    while (absl::Now() < deadline) {
      absl::StatusOr<Deployment> got = client_->Get<Deployment>("default", "web");
      if (got.ok()) {
        d = *got;
        const auto& s = d.status();
        bool progressed = false;
        for (const auto& c : s.conditions()) {
          if (c.type() == deployment::kProgressing &&
              c.reason() == deployment::kNewReplicaSetAvailable) {
            progressed = true;
          }
        }
        if (s.observed_generation() == d.metadata().generation() &&
            s.updated_replicas() == replicas && s.replicas() == replicas &&
            s.available_replicas() == replicas && progressed) {
          return d;
        }
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "rollout did not complete: " << d.ShortDebugString();
    return d;
  }

  std::unique_ptr<ApiServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<client::SharedInformerFactory> factory_;
  ControllerContext context_;
  std::unique_ptr<DeploymentController> deployments_;
  std::unique_ptr<ReplicaSetController> replicasets_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
};

TEST_F(DeploymentControllerTest, RollingUpdateRollbackScaleAndPause) {
  Bounds bounds;
  BoundsWatcher<ReplicaSet> rs_watcher(
      client_.get(), [&](const std::map<std::string, ReplicaSet>& rss) -> std::string {
        if (!bounds.enabled) return "";
        int spec = 0, pods = 0, available = 0;
        for (const auto& [name, rs] : rss) {
          spec += deployment::Replicas(rs);
          pods += rs.status().replicas();
          available += rs.status().available_replicas();
        }
        if (spec > bounds.max_total || pods > bounds.max_total) {
          return absl::StrCat("replica sets: spec ", spec, ", pods ", pods, " > ",
                              bounds.max_total.load());
        }
        if (available < bounds.min_available) {
          return absl::StrCat("replica sets: available ", available, " < ",
                              bounds.min_available.load());
        }
        return "";
      });
  BoundsWatcher<Pod> pod_watcher(
      client_.get(), [&](const std::map<std::string, Pod>& pods) -> std::string {
        if (!bounds.enabled) return "";
        int total = 0, ready = 0;
        for (const auto& [name, pod] : pods) {
          if (pod.metadata().has_deletion_timestamp()) continue;
          ++total;
          if (PodReady(pod)) ++ready;
        }
        if (total > bounds.max_total) {
          return absl::StrCat("pods: ", total, " > ", bounds.max_total.load());
        }
        if (ready < bounds.min_available) {
          return absl::StrCat("pods: ready ", ready, " < ", bounds.min_available.load());
        }
        return "";
      });

  // --- image A, from nothing ---
  absl::StatusOr<Deployment> created = client_->Create(NewDeployment(10, "registry/app:A"));
  ASSERT_TRUE(created.ok()) << created.status();
  Deployment d = WaitComplete(10);
  std::vector<ReplicaSet> rss = ReplicaSets();
  ASSERT_EQ(rss.size(), 1u);
  const std::string rs_a = rss[0].metadata().name();
  EXPECT_EQ(rs_a, "web-" + deployment::ComputeHash(d.spec().template_(), std::nullopt));
  EXPECT_EQ(rss[0].metadata().annotations().at(deployment::kRevisionAnnotation), "1");
  EXPECT_EQ(d.metadata().annotations().at(deployment::kRevisionAnnotation), "1");

  // --- image B: a checked rolling update ---
  bounds.max_total = 12;
  bounds.min_available = 9;
  bounds.enabled = true;
  Modify([](Deployment* d) {
    d->mutable_spec()->mutable_template_()->mutable_spec()->mutable_containers(0)->set_image(
        "registry/app:B");
  });
  d = WaitComplete(10);
  rss = ReplicaSets();
  ASSERT_EQ(rss.size(), 2u);
  std::string rs_b;
  for (const ReplicaSet& rs : rss) {
    if (rs.metadata().name() == rs_a) {
      EXPECT_EQ(deployment::Replicas(rs), 0);
    } else {
      rs_b = rs.metadata().name();
      EXPECT_EQ(deployment::Replicas(rs), 10);
      EXPECT_EQ(rs.metadata().annotations().at(deployment::kRevisionAnnotation), "2");
    }
  }
  EXPECT_EQ(d.status().updated_replicas(), 10);
  EXPECT_EQ(d.metadata().annotations().at(deployment::kRevisionAnnotation), "2");
  EXPECT_EQ(rs_watcher.violation(), "");
  EXPECT_EQ(pod_watcher.violation(), "");

  // --- rollback to A: the old replica set comes back as revision 3 ---
  absl::StatusOr<capstan::core::v1::PodTemplateSpec> previous =
      deployment::RollbackTemplate(d, ReplicaSets(), 0);
  ASSERT_TRUE(previous.ok()) << previous.status();
  EXPECT_EQ(previous->spec().containers(0).image(), "registry/app:A");
  Modify([&](Deployment* d) { *d->mutable_spec()->mutable_template_() = *previous; });
  d = WaitComplete(10);
  rss = ReplicaSets();
  ASSERT_EQ(rss.size(), 2u);
  for (const ReplicaSet& rs : rss) {
    if (rs.metadata().name() == rs_a) {
      EXPECT_EQ(deployment::Replicas(rs), 10);
      EXPECT_EQ(rs.metadata().annotations().at(deployment::kRevisionAnnotation), "3");
      EXPECT_EQ(rs.metadata().annotations().at(deployment::kRevisionHistoryAnnotation), "1");
    } else {
      EXPECT_EQ(deployment::Replicas(rs), 0);
    }
  }
  EXPECT_EQ(d.metadata().annotations().at(deployment::kRevisionAnnotation), "3");
  EXPECT_EQ(rs_watcher.violation(), "");
  EXPECT_EQ(pod_watcher.violation(), "");

  // --- scale 10 -> 15 while rolling to C ---
  Modify([](Deployment* d) {
    d->mutable_spec()->mutable_template_()->mutable_spec()->mutable_containers(0)->set_image(
        "registry/app:C");
  });
  absl::Time deadline = absl::Now() + kWait;
  bool mid_rollout = false;
  while (absl::Now() < deadline) {
    absl::StatusOr<Deployment> got = client_->Get<Deployment>("default", "web");
    if (got.ok() && got->status().observed_generation() == got->metadata().generation() &&
        got->status().updated_replicas() > 0) {
      mid_rollout = got->status().updated_replicas() < 10;
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Proportional scaling in the middle of a rollout can leave one pod above the new
  // replicas + maxSurge for a moment (the old ReplicaSet's pods being deleted while the sizes are
  // spread out, as in Kubernetes): the bounds are checked again from the next rollout on.
  bounds.enabled = false;
  Modify([](Deployment* d) { d->mutable_spec()->set_replicas(15); });
  d = WaitComplete(15);
  bounds.max_total = 17;
  bounds.min_available = 14;
  bounds.enabled = true;
  rss = ReplicaSets();
  int active = 0;
  for (const ReplicaSet& rs : rss) {
    if (deployment::Replicas(rs) == 0) continue;
    ++active;
    EXPECT_EQ(deployment::Replicas(rs), 15);
    EXPECT_EQ(rs.spec().template_().spec().containers(0).image(), "registry/app:C");
    EXPECT_EQ(rs.metadata().annotations().at(deployment::kDesiredReplicasAnnotation), "15");
  }
  EXPECT_EQ(active, 1);
  if (!mid_rollout) std::cerr << "note: the scale came after the rollout to C had finished\n";
  EXPECT_EQ(rs_watcher.violation(), "");
  EXPECT_EQ(pod_watcher.violation(), "");

  // --- paused: a template change does not roll ---
  Modify([](Deployment* d) {
    d->mutable_spec()->set_paused(true);
    d->mutable_spec()->mutable_template_()->mutable_spec()->mutable_containers(0)->set_image(
        "registry/app:D");
  });
  deadline = absl::Now() + kWait;
  bool paused_condition = false;
  while (absl::Now() < deadline && !paused_condition) {
    absl::StatusOr<Deployment> got = client_->Get<Deployment>("default", "web");
    if (got.ok()) {
      for (const auto& c : got->status().conditions()) {
        if (c.type() == deployment::kProgressing && c.reason() == deployment::kDeploymentPaused) {
          paused_condition = got->status().observed_generation() == got->metadata().generation();
        }
      }
    }
    if (!paused_condition) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(paused_condition);
  absl::SleepFor(absl::Seconds(2));
  for (const ReplicaSet& rs : ReplicaSets()) {
    EXPECT_NE(rs.spec().template_().spec().containers(0).image(), "registry/app:D")
        << rs.metadata().name();
  }
  // Resumed: it rolls.
  Modify([](Deployment* d) { d->mutable_spec()->set_paused(false); });
  d = WaitComplete(15);
  bool found_d = false;
  for (const ReplicaSet& rs : ReplicaSets()) {
    if (rs.spec().template_().spec().containers(0).image() == "registry/app:D") {
      found_d = true;
      EXPECT_EQ(deployment::Replicas(rs), 15);
    }
  }
  EXPECT_TRUE(found_d);
  EXPECT_EQ(rs_watcher.violation(), "");
  EXPECT_EQ(pod_watcher.violation(), "");
  EXPECT_GT(rs_watcher.events(), 10);
  EXPECT_GT(pod_watcher.events(), 10);
}

}  // namespace
}  // namespace capstan::controllermanager
