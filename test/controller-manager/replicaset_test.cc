// The ReplicaSet controller against a real capstan-apiserver, in-process with its informers: scale
// 0 -> 50 -> 5 while a watcher checks that no more than 50 pods ever exist at once (the
// expectations hold back a second round of creates until the first is observed), status counts
// as pods become Ready, adoption of a matching orphan, release of a relabeled pod, and the
// replacement of a deleted pod.
#include "services/controller-manager/controllers/replicaset/replicaset_controller.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/client/client.h"
#include "lib/client/clock.h"
#include "lib/client/event_recorder.h"
#include "lib/client/shared_informer_factory.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "services/controller-manager/controller_context.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/eventually.h"

namespace capstan::controllermanager {
namespace {

using capstan::testing::Eventually;

using capstan::apps::v1::ReplicaSet;
using capstan::core::v1::Pod;
using capstan::testing::ApiServerProcess;

constexpr absl::Duration kWait = absl::Seconds(60);

// Polls until done() is true; false after timeout.

ReplicaSet NewReplicaSet(const std::string& name, int replicas) {
  ReplicaSet rs;
  rs.mutable_metadata()->set_name(name);
  rs.mutable_metadata()->set_namespace_("default");
  rs.mutable_spec()->set_replicas(replicas);
  (*rs.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = name;
  (*rs.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = name;
  auto* c = rs.mutable_spec()->mutable_template_()->mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return rs;
}

const capstan::meta::v1::OwnerReference* ControllerOf(const Pod& pod) {
  for (const auto& ref : pod.metadata().owner_references()) {
    if (ref.controller()) return &ref;
  }
  return nullptr;
}

// Counts the pods of one label selector as a watch reports them and remembers the most that ever
// existed at once.
class PodCountWatcher {
 public:
  PodCountWatcher(client::Client* client, const std::string& selector) {
    absl::StatusOr<client::ObjectList<Pod>> list =
        client->List<Pod>("default", {.label_selector = selector});
    EXPECT_TRUE(list.ok()) << list.status();
    client::WatchOptions options;
    options.label_selector = selector;
    options.resource_version = list.ok() ? list->resource_version : "";
    stream_ = client->Watch<Pod>("default", options);
    thread_ = std::thread([this] {
      client::WatchEvent<Pod> event;
      while (stream_->Next(&event)) {
        absl::MutexLock lock(&mu_);
        if (event.type == "ADDED") live_.insert(event.object.metadata().name());
        if (event.type == "DELETED") live_.erase(event.object.metadata().name());
        max_ = std::max(max_, static_cast<int>(live_.size()));
      }
    });
  }
  ~PodCountWatcher() {
    stream_->Cancel();
    thread_.join();
  }
  int max() const {
    absl::MutexLock lock(&mu_);
    return max_;
  }
  int live() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(live_.size());
  }

 private:
  std::unique_ptr<client::WatchStream<Pod>> stream_;
  mutable absl::Mutex mu_;
  std::set<std::string> live_ ABSL_GUARDED_BY(mu_);
  int max_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

class ReplicaSetControllerTest : public ::testing::Test {
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
    client::EventRecorderOptions recorder_options;
    recorder_options.retry_interval = absl::Milliseconds(100);
    recorder_ = std::make_unique<client::EventRecorder>(client_.get(), "replicaset-controller",
                                                        "test", recorder_options);
    ControllerContext ctx;
    ctx.client = client_.get();
    ctx.informers = factory_.get();
    ctx.recorder = recorder_.get();
    ctx.workers = 5;
    controller_ = std::make_unique<ReplicaSetController>(ctx, ControllerOptions());
    factory_->Start();
    ASSERT_TRUE(factory_->WaitForCacheSync(kWait));
    run_ = std::thread([this] { controller_->Run(); });
  }

  virtual ReplicaSetControllerOptions ControllerOptions() { return {}; }

  void TearDown() override {
    if (controller_) controller_->Stop();
    if (run_.joinable()) run_.join();
    if (factory_) factory_->Stop();
    controller_.reset();
    recorder_.reset();
    factory_.reset();
  }

  ReplicaSet MustCreate(const ReplicaSet& rs) {
    absl::StatusOr<ReplicaSet> created = client_->Create(rs);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : ReplicaSet();
  }

  // Sets spec.replicas, redoing the read-modify-write when the controller's status write races.
  void Scale(const std::string& name, int replicas) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      absl::StatusOr<ReplicaSet> rs = client_->Get<ReplicaSet>("default", name);
      ASSERT_TRUE(rs.ok()) << rs.status();
      rs->mutable_spec()->set_replicas(replicas);
      absl::StatusOr<ReplicaSet> updated = client_->Update(*rs);
      if (updated.ok()) return;
      ASSERT_EQ(api::Reason(updated.status()), "Conflict") << updated.status();
    }
    FAIL() << "could not scale " << name;
  }

  std::vector<Pod> Pods(const std::string& app) {
    absl::StatusOr<client::ObjectList<Pod>> list =
        client_->List<Pod>("default", {.label_selector = absl::StrCat("app=", app)});
    EXPECT_TRUE(list.ok()) << list.status();
    return list.ok() ? list->items : std::vector<Pod>();
  }

  ReplicaSet GetReplicaSet(const std::string& name) {
    absl::StatusOr<ReplicaSet> rs = client_->Get<ReplicaSet>("default", name);
    EXPECT_TRUE(rs.ok()) << rs.status();
    return rs.ok() ? *rs : ReplicaSet();
  }

  // Waits until exactly n pods of app exist, all controlled by rs, and rs's status says n.
  bool WaitForReplicas(const ReplicaSet& rs, const std::string& app, int n) {
    return Eventually([&] {
      std::vector<Pod> pods = Pods(app);
      if (static_cast<int>(pods.size()) != n) return false;
      for (const Pod& pod : pods) {
        const auto* ref = ControllerOf(pod);
        if (ref == nullptr || ref->uid() != rs.metadata().uid()) return false;
      }
      ReplicaSet current = GetReplicaSet(rs.metadata().name());
      return current.status().replicas() == n &&
             current.status().observed_generation() == current.metadata().generation();
    });
  }

  // Marks a pod Running and Ready through the status subresource, as a node agent would.
  void MarkReady(const std::string& name) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      absl::StatusOr<Pod> pod = client_->Get<Pod>("default", name);
      ASSERT_TRUE(pod.ok()) << pod.status();
      pod->mutable_status()->set_phase("Running");
      auto* ready = pod->mutable_status()->add_conditions();
      ready->set_type("Ready");
      ready->set_status("True");
      ready->mutable_last_transition_time()->set_seconds(absl::ToUnixSeconds(absl::Now()) - 60);
      absl::StatusOr<Pod> updated = client_->UpdateStatus(*pod);
      if (updated.ok()) return;
      ASSERT_EQ(api::Reason(updated.status()), "Conflict") << updated.status();
    }
    FAIL() << "could not mark " << name << " ready";
  }

  int CountEvents(const std::string& reason, const std::string& about) {
    absl::StatusOr<client::ObjectList<capstan::core::v1::Event>> events =
        client_->List<capstan::core::v1::Event>("default");
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) return 0;
    // Repeats and similar events are folded into one Event with a count (as Kubernetes does).
    int total = 0;
    for (const capstan::core::v1::Event& e : events->items) {
      if (e.reason() == reason && e.involved_object().name() == about) total += e.count();
    }
    return total;
  }

  std::unique_ptr<ApiServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<client::SharedInformerFactory> factory_;
  std::unique_ptr<client::EventRecorder> recorder_;
  std::unique_ptr<ReplicaSetController> controller_;
  std::thread run_;
};

TEST_F(ReplicaSetControllerTest, ScalesUpAndDownWithoutOvershoot) {
  // Make the pod cache lag the server, as it does under load: the informer applies the next event
  // only after every handler of the previous one returned. Without expectations the controller
  // would count the pods it just created as missing and create them again.
  client::EventHandler<Pod> slow;
  slow.on_add = [](const std::shared_ptr<const Pod>&) { absl::SleepFor(absl::Milliseconds(20)); };
  factory_->For<Pod>().AddEventHandler(std::move(slow));
  PodCountWatcher watcher(client_.get(), "app=scale");
  const ReplicaSet rs = MustCreate(NewReplicaSet("scale", 0));
  ASSERT_TRUE(Eventually([&] {
    return GetReplicaSet("scale").status().observed_generation() == rs.metadata().generation();
  }));
  EXPECT_TRUE(Pods("scale").empty());

  Scale("scale", 50);
  ASSERT_TRUE(WaitForReplicas(rs, "scale", 50));
  absl::SleepFor(absl::Seconds(1));  // anything extra would show up now
  EXPECT_EQ(Pods("scale").size(), 50u);
  EXPECT_LE(watcher.max(), 50);
  EXPECT_TRUE(Eventually([&] { return watcher.live() == 50; }));

  Scale("scale", 5);
  ASSERT_TRUE(WaitForReplicas(rs, "scale", 5));
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(Pods("scale").size(), 5u);
  EXPECT_LE(watcher.max(), 50);
  EXPECT_EQ(watcher.max(), 50);
  EXPECT_TRUE(controller_->expectations().Satisfied("default/scale"));
  EXPECT_EQ(controller_->expectations().Get("default/scale").creations, 0);
  EXPECT_EQ(controller_->expectations().Get("default/scale").deletions, 0);

  ASSERT_TRUE(recorder_->Flush(kWait));
  EXPECT_EQ(CountEvents("SuccessfulCreate", "scale"), 50);
  EXPECT_EQ(CountEvents("SuccessfulDelete", "scale"), 45);
}

TEST_F(ReplicaSetControllerTest, StatusCountsReadyPods) {
  const ReplicaSet rs = MustCreate(NewReplicaSet("ready", 5));
  ASSERT_TRUE(WaitForReplicas(rs, "ready", 5));
  std::vector<Pod> pods = Pods("ready");
  for (int i = 0; i < 3; ++i) MarkReady(pods[i].metadata().name());
  ASSERT_TRUE(Eventually([&] { return GetReplicaSet("ready").status().ready_replicas() == 3; }));
  const ReplicaSet current = GetReplicaSet("ready");
  EXPECT_EQ(current.status().replicas(), 5);
  EXPECT_EQ(current.status().fully_labeled_replicas(), 5);
  EXPECT_EQ(current.status().ready_replicas(), 3);
  EXPECT_EQ(current.status().available_replicas(), 3);
  EXPECT_EQ(current.status().observed_generation(), current.metadata().generation());
  EXPECT_EQ(current.status().conditions_size(), 0);
  EXPECT_EQ(Pods("ready").size(), 5u);
}

TEST_F(ReplicaSetControllerTest, AdoptsMatchingOrphan) {
  Pod orphan;
  orphan.mutable_metadata()->set_name("orphan");
  orphan.mutable_metadata()->set_namespace_("default");
  (*orphan.mutable_metadata()->mutable_labels())["app"] = "adopt";
  auto* c = orphan.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  ASSERT_TRUE(client_->Create(orphan).ok());

  const ReplicaSet rs = MustCreate(NewReplicaSet("adopt", 2));
  ASSERT_TRUE(WaitForReplicas(rs, "adopt", 2));
  absl::StatusOr<Pod> adopted = client_->Get<Pod>("default", "orphan");
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  const auto* ref = ControllerOf(*adopted);
  ASSERT_NE(ref, nullptr);
  EXPECT_EQ(ref->uid(), rs.metadata().uid());
  EXPECT_EQ(ref->kind(), "ReplicaSet");
  EXPECT_EQ(ref->api_version(), "apps/v1");
  EXPECT_EQ(ref->name(), "adopt");
  EXPECT_TRUE(ref->block_owner_deletion());
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(Pods("adopt").size(), 2u);  // one created, one adopted
}

TEST_F(ReplicaSetControllerTest, ReleasesRelabeledPodAndReplacesIt) {
  const ReplicaSet rs = MustCreate(NewReplicaSet("release", 3));
  ASSERT_TRUE(WaitForReplicas(rs, "release", 3));
  const std::string relabeled = Pods("release")[0].metadata().name();
  for (int attempt = 0; attempt < 20; ++attempt) {
    absl::StatusOr<Pod> pod = client_->Get<Pod>("default", relabeled);
    ASSERT_TRUE(pod.ok()) << pod.status();
    (*pod->mutable_metadata()->mutable_labels())["app"] = "released";
    absl::StatusOr<Pod> updated = client_->Update(*pod);
    if (updated.ok()) break;
    ASSERT_EQ(api::Reason(updated.status()), "Conflict") << updated.status();
  }
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<Pod> pod = client_->Get<Pod>("default", relabeled);
    return pod.ok() && pod->metadata().owner_references_size() == 0;
  }));
  ASSERT_TRUE(WaitForReplicas(rs, "release", 3));
  for (const Pod& pod : Pods("release")) EXPECT_NE(pod.metadata().name(), relabeled);
  EXPECT_EQ(Pods("released").size(), 1u);
}

TEST_F(ReplicaSetControllerTest, ReplacesDeletedPod) {
  const ReplicaSet rs = MustCreate(NewReplicaSet("replace", 3));
  ASSERT_TRUE(WaitForReplicas(rs, "replace", 3));
  const std::string victim = Pods("replace")[0].metadata().name();
  ASSERT_TRUE(client_->Delete<Pod>("default", victim).ok());
  ASSERT_TRUE(Eventually([&] {
    std::vector<Pod> pods = Pods("replace");
    return pods.size() == 3 && std::none_of(pods.begin(), pods.end(), [&](const Pod& p) {
             return p.metadata().name() == victim;
           });
  }));
  ASSERT_TRUE(WaitForReplicas(rs, "replace", 3));
}

// The controller on a fake clock, so the expectations' timeout can be passed at will.
class ReplicaSetExpectationsTest : public ReplicaSetControllerTest {
 protected:
  ReplicaSetControllerOptions ControllerOptions() override {
    ReplicaSetControllerOptions options;
    options.clock = &clock_;
    return options;
  }
  client::FakeClock clock_;
};

TEST_F(ReplicaSetExpectationsTest, UnobservedCreatesHoldBackUntilTimeout) {
  // As if creates had been issued that the informer has not shown yet.
  controller_->expectations().ExpectCreations("default/held", 2);
  const ReplicaSet rs = MustCreate(NewReplicaSet("held", 3));
  // The controller reconciles (its status write shows it) but creates nothing.
  ASSERT_TRUE(Eventually([&] {
    return GetReplicaSet("held").status().observed_generation() == rs.metadata().generation();
  }));
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(Pods("held").empty());

  // Past the timeout the expectation no longer holds the controller back: the next sync acts.
  clock_.Advance(replicaset::kExpectationsTimeout + absl::Seconds(1));
  for (int attempt = 0; attempt < 20; ++attempt) {
    ReplicaSet touched = GetReplicaSet("held");
    (*touched.mutable_metadata()->mutable_annotations())["touch"] = "1";
    absl::StatusOr<ReplicaSet> updated = client_->Update(touched);
    if (updated.ok()) break;
    ASSERT_EQ(api::Reason(updated.status()), "Conflict") << updated.status();
  }
  ASSERT_TRUE(WaitForReplicas(rs, "held", 3));
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(Pods("held").size(), 3u);
}

}  // namespace
}  // namespace capstan::controllermanager
