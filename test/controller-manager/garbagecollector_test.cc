// The garbage collector against a real capstan-apiserver, with no other controller running: a
// ReplicaSet owns three pods (controller, blockOwnerDeletion) and is deleted with each
// propagation policy; a pod with two owners loses only the one that goes; a pod whose owner never
// existed is collected.
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/client/client.h"
#include "lib/client/shared_informer_factory.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "services/controller-manager/controller_context.h"
#include "services/controller-manager/controllers/garbagecollector/garbage_collector.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/eventually.h"

namespace capstan::controllermanager::garbagecollector {
namespace {

using capstan::testing::Eventually;

using capstan::apps::v1::ReplicaSet;
using capstan::core::v1::Pod;
using capstan::meta::v1::OwnerReference;
using capstan::testing::ApiServerProcess;

constexpr absl::Duration kWait = absl::Seconds(30);

// Polls until done() is true; false after timeout.

ReplicaSet NewReplicaSet(const std::string& name) {
  ReplicaSet rs;
  rs.mutable_metadata()->set_name(name);
  rs.mutable_metadata()->set_namespace_("default");
  rs.mutable_spec()->set_replicas(3);
  (*rs.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = name;
  (*rs.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = name;
  auto* c = rs.mutable_spec()->mutable_template_()->mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return rs;
}

OwnerReference ControllerRef(const ReplicaSet& rs) {
  OwnerReference ref;
  ref.set_api_version("apps/v1");
  ref.set_kind("ReplicaSet");
  ref.set_name(rs.metadata().name());
  ref.set_uid(rs.metadata().uid());
  ref.set_controller(true);
  ref.set_block_owner_deletion(true);
  return ref;
}

Pod NewPod(const std::string& name, const std::vector<OwnerReference>& owners) {
  Pod pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_("default");
  for (const OwnerReference& ref : owners) *pod.mutable_metadata()->add_owner_references() = ref;
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return pod;
}

class GarbageCollectorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }

  void SetUp() override {
    server_ = std::make_unique<ApiServerProcess>();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    client_ = client::Client::Connect(server_->grpc_address());
    informers_ = std::make_unique<client::SharedInformerFactory>(client_.get());
    ControllerContext ctx;
    ctx.client = client_.get();
    ctx.informers = informers_.get();
    ctx.workers = 2;
    gc_ = std::make_unique<GarbageCollector>(ctx);
    informers_->Start();
    ASSERT_TRUE(informers_->WaitForCacheSync(kWait));
    runner_ = std::thread([this] { gc_->Run(); });
  }

  void TearDown() override {
    if (gc_ != nullptr) gc_->Stop();
    if (runner_.joinable()) runner_.join();
    if (informers_ != nullptr) informers_->Stop();
    gc_.reset();
    informers_.reset();
  }

  ReplicaSet MustCreate(const ReplicaSet& rs) {
    absl::StatusOr<ReplicaSet> created = client_->Create(rs);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : ReplicaSet();
  }
  Pod MustCreate(const Pod& pod) {
    absl::StatusOr<Pod> created = client_->Create(pod);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : Pod();
  }

  // A ReplicaSet and three pods it controls.
  ReplicaSet CreateOwnerChain(const std::string& name) {
    ReplicaSet rs = MustCreate(NewReplicaSet(name));
    for (int i = 0; i < 3; ++i) {
      MustCreate(NewPod(absl::StrCat(name, "-", i), {ControllerRef(rs)}));
    }
    return rs;
  }

  bool PodGone(const std::string& name) {
    return api::Reason(client_->Get<Pod>("default", name).status()) == "NotFound";
  }
  bool ReplicaSetGone(const std::string& name) {
    return api::Reason(client_->Get<ReplicaSet>("default", name).status()) == "NotFound";
  }
  // The pods of the chain that still exist.
  int PodsLeft(const std::string& name) {
    int left = 0;
    for (int i = 0; i < 3; ++i) left += PodGone(absl::StrCat(name, "-", i)) ? 0 : 1;
    return left;
  }

  std::unique_ptr<ApiServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<client::SharedInformerFactory> informers_;
  std::unique_ptr<GarbageCollector> gc_;
  std::thread runner_;
};

TEST_F(GarbageCollectorTest, BackgroundDeletionRemovesDependents) {
  CreateOwnerChain("web");
  client::DeleteOptions options;
  options.propagation_policy = "Background";
  absl::StatusOr<ReplicaSet> deleted = client_->Delete<ReplicaSet>("default", "web", options);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_TRUE(ReplicaSetGone("web"));  // at once: no finalizer holds it
  EXPECT_TRUE(Eventually([&] { return PodsLeft("web") == 0; })) << PodsLeft("web") << " pods left";
}

TEST_F(GarbageCollectorTest, ForegroundDeletionWaitsForDependents) {
  ReplicaSet rs = CreateOwnerChain("api");
  // One pod lingers after its deletion until the test lets it go.
  absl::StatusOr<Pod> held = client_->Get<Pod>("default", "api-0");
  ASSERT_TRUE(held.ok()) << held.status();
  held->mutable_metadata()->add_finalizers("example.com/hold");
  ASSERT_TRUE(client_->Update(*held).ok());

  client::DeleteOptions options;
  options.propagation_policy = "Foreground";
  absl::StatusOr<ReplicaSet> deleting = client_->Delete<ReplicaSet>("default", "api", options);
  ASSERT_TRUE(deleting.ok()) << deleting.status();
  EXPECT_TRUE(deleting->metadata().has_deletion_timestamp());

  // The pods are deleted: two go at once, the held one waits with a deletionTimestamp.
  ASSERT_TRUE(Eventually([&] { return PodsLeft("api") == 1; })) << PodsLeft("api");
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<Pod> pod = client_->Get<Pod>("default", "api-0");
    return pod.ok() && pod->metadata().has_deletion_timestamp();
  }));
  // While a blocking dependent exists, the owner stays, marked for deletion.
  absl::SleepFor(absl::Milliseconds(500));
  absl::StatusOr<ReplicaSet> waiting = client_->Get<ReplicaSet>("default", "api");
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  EXPECT_TRUE(waiting->metadata().has_deletion_timestamp());
  EXPECT_EQ(waiting->metadata().uid(), rs.metadata().uid());
  ASSERT_EQ(waiting->metadata().finalizers_size(), 1);
  EXPECT_EQ(waiting->metadata().finalizers(0), "foregroundDeletion");

  // Let the last pod go: the owner follows.
  absl::Status released;
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<Pod> pod = client_->Get<Pod>("default", "api-0");
    if (!pod.ok()) return false;
    pod->mutable_metadata()->clear_finalizers();
    released = client_->Update(*pod).status();
    return released.ok();
  })) << released;
  EXPECT_TRUE(Eventually([&] { return PodGone("api-0"); }));
  EXPECT_TRUE(Eventually([&] { return ReplicaSetGone("api"); }));
  EXPECT_EQ(PodsLeft("api"), 0);
}

TEST_F(GarbageCollectorTest, ForegroundOwnerNeverOutlivesItsPods) {
  CreateOwnerChain("db");
  client::DeleteOptions options;
  options.propagation_policy = "Foreground";
  ASSERT_TRUE(client_->Delete<ReplicaSet>("default", "db", options).ok());
  // Pods first, then the owner: whenever a pod is seen, the owner is still there after it.
  bool owner_went_first = false;
  ASSERT_TRUE(Eventually([&] {
    int pods = PodsLeft("db");
    bool owner_gone = ReplicaSetGone("db");
    if (pods > 0 && owner_gone) owner_went_first = true;
    return owner_gone;
  }));
  EXPECT_FALSE(owner_went_first);
  EXPECT_EQ(PodsLeft("db"), 0);
}

TEST_F(GarbageCollectorTest, OrphanDeletionKeepsDependentsWithoutOwnerReferences) {
  CreateOwnerChain("cache");
  client::DeleteOptions options;
  options.propagation_policy = "Orphan";
  absl::StatusOr<ReplicaSet> deleting = client_->Delete<ReplicaSet>("default", "cache", options);
  ASSERT_TRUE(deleting.ok()) << deleting.status();
  EXPECT_TRUE(Eventually([&] { return ReplicaSetGone("cache"); }));
  // Give a wrong collector time to do harm.
  absl::SleepFor(absl::Seconds(1));
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Pod> pod = client_->Get<Pod>("default", absl::StrCat("cache-", i));
    ASSERT_TRUE(pod.ok()) << pod.status();
    EXPECT_EQ(pod->metadata().owner_references_size(), 0) << pod->DebugString();
    EXPECT_FALSE(pod->metadata().has_deletion_timestamp());
  }
}

TEST_F(GarbageCollectorTest, DependentWithALiveOwnerLosesOnlyTheVanishedOne) {
  ReplicaSet a = MustCreate(NewReplicaSet("a"));
  ReplicaSet b = MustCreate(NewReplicaSet("b"));
  OwnerReference to_b = ControllerRef(b);
  to_b.clear_controller();  // one controller per object
  MustCreate(NewPod("shared", {ControllerRef(a), to_b}));

  ASSERT_TRUE(client_->Delete<ReplicaSet>("default", "a").ok());
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<Pod> pod = client_->Get<Pod>("default", "shared");
    return pod.ok() && pod->metadata().owner_references_size() == 1;
  }));
  absl::SleepFor(absl::Seconds(1));
  absl::StatusOr<Pod> pod = client_->Get<Pod>("default", "shared");
  ASSERT_TRUE(pod.ok()) << pod.status();
  ASSERT_EQ(pod->metadata().owner_references_size(), 1);
  EXPECT_EQ(pod->metadata().owner_references(0).uid(), b.metadata().uid());
  EXPECT_FALSE(pod->metadata().has_deletion_timestamp());
}

TEST_F(GarbageCollectorTest, DependentOfAnOwnerThatNeverExistedIsCollected) {
  OwnerReference ghost;
  ghost.set_api_version("apps/v1");
  ghost.set_kind("ReplicaSet");
  ghost.set_name("ghost");
  ghost.set_uid("00000000-0000-0000-0000-000000000000");
  MustCreate(NewPod("haunted", {ghost}));
  // A namesake of the owner with another uid does not count as the owner.
  MustCreate(NewReplicaSet("ghost"));
  MustCreate(NewPod("lonely", {}));
  EXPECT_TRUE(Eventually([&] { return PodGone("haunted"); }));
  EXPECT_FALSE(PodGone("lonely"));
  EXPECT_FALSE(ReplicaSetGone("ghost"));
}

}  // namespace
}  // namespace capstan::controllermanager::garbagecollector
