// The namespace controller against a real capstan-apiserver: a namespace with a configmap, a pod
// and a replicaset held by a finalizer is deleted; it goes Terminating, refuses new objects,
// reports what remains in its conditions while the finalizer holds, then everything goes and
// the namespace with it.
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/client/client.h"
#include "lib/client/shared_informer_factory.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "services/controller-manager/controller_context.h"
#include "services/controller-manager/controllers/namespace/namespace_controller.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/eventually.h"

namespace capstan::controllermanager::namespacecontroller {
namespace {

using capstan::testing::Eventually;

using capstan::apps::v1::ReplicaSet;
using capstan::core::v1::ConfigMap;
using capstan::core::v1::Namespace;
using capstan::core::v1::NamespaceCondition;
using capstan::core::v1::Pod;
using capstan::testing::ApiServerProcess;

constexpr absl::Duration kWait = absl::Seconds(30);
constexpr char kNs[] = "team-a";


ConfigMap NewConfigMap(const std::string& name) {
  ConfigMap cm;
  cm.mutable_metadata()->set_name(name);
  cm.mutable_metadata()->set_namespace_(kNs);
  (*cm.mutable_data())["key"] = "value";
  return cm;
}

Pod NewPod(const std::string& name) {
  Pod pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_(kNs);
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return pod;
}

ReplicaSet NewReplicaSet(const std::string& name) {
  ReplicaSet rs;
  rs.mutable_metadata()->set_name(name);
  rs.mutable_metadata()->set_namespace_(kNs);
  rs.mutable_metadata()->add_finalizers("example.com/hold");
  (*rs.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = name;
  (*rs.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = name;
  auto* c = rs.mutable_spec()->mutable_template_()->mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return rs;
}

const NamespaceCondition* FindCondition(const Namespace& ns, const std::string& type) {
  for (const NamespaceCondition& c : ns.status().conditions()) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

class NamespaceControllerTest : public ::testing::Test {
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
    controller_ = std::make_unique<NamespaceController>(
        ctx, NamespaceControllerOptions{.content_requeue = absl::Milliseconds(200)});
    informers_->Start();
    ASSERT_TRUE(informers_->WaitForCacheSync(kWait));
    runner_ = std::thread([this] { controller_->Run(); });
  }

  void TearDown() override {
    if (controller_ != nullptr) controller_->Stop();
    if (runner_.joinable()) runner_.join();
    if (informers_ != nullptr) informers_->Stop();
    controller_.reset();
    informers_.reset();
  }

  std::unique_ptr<ApiServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<client::SharedInformerFactory> informers_;
  std::unique_ptr<NamespaceController> controller_;
  std::thread runner_;
};

TEST_F(NamespaceControllerTest, DeletesContentThenTheNamespace) {
  Namespace ns;
  ns.mutable_metadata()->set_name(kNs);
  ASSERT_TRUE(client_->Create(ns).ok());
  ASSERT_TRUE(client_->Create(NewConfigMap("settings")).ok());
  ASSERT_TRUE(client_->Create(NewPod("worker")).ok());
  ASSERT_TRUE(client_->Create(NewReplicaSet("web")).ok());

  absl::StatusOr<Namespace> deleting = client_->Delete<Namespace>("", kNs);
  ASSERT_TRUE(deleting.ok()) << deleting.status();
  EXPECT_EQ(deleting->status().phase(), "Terminating");
  EXPECT_TRUE(deleting->metadata().has_deletion_timestamp());

  // Nothing new gets in while it terminates.
  absl::Status refused = client_->Create(NewConfigMap("late")).status();
  EXPECT_EQ(api::Reason(refused), "Forbidden") << refused;

  // The unheld content goes; the replicaset waits for its finalizer, and the conditions say so.
  EXPECT_TRUE(Eventually([&] {
    return api::Reason(client_->Get<ConfigMap>(kNs, "settings").status()) == "NotFound" &&
           api::Reason(client_->Get<Pod>(kNs, "worker").status()) == "NotFound";
  }));
  Namespace reported;
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<Namespace> got = client_->Get<Namespace>("", kNs);
    if (!got.ok()) return false;
    reported = *got;
    const NamespaceCondition* remaining = FindCondition(reported, "NamespaceContentRemaining");
    return remaining != nullptr && remaining->status() == "True";
  })) << reported.DebugString();
  const NamespaceCondition* remaining = FindCondition(reported, "NamespaceContentRemaining");
  EXPECT_EQ(remaining->reason(), "SomeResourcesRemain");
  EXPECT_EQ(remaining->message(),
            "Some resources are remaining: replicasets.apps has 1 resource instances");
  const NamespaceCondition* finalizers = FindCondition(reported, "NamespaceFinalizersRemaining");
  ASSERT_NE(finalizers, nullptr) << reported.DebugString();
  EXPECT_EQ(finalizers->status(), "True");
  EXPECT_EQ(finalizers->message(),
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 "
            "resource instances");
  const NamespaceCondition* failure = FindCondition(reported, "NamespaceDeletionContentFailure");
  ASSERT_NE(failure, nullptr);
  EXPECT_EQ(failure->status(), "False");
  EXPECT_EQ(reported.status().phase(), "Terminating");
  ASSERT_EQ(reported.spec().finalizers_size(), 1);
  EXPECT_EQ(reported.spec().finalizers(0), "kubernetes");

  // Still held a moment later.
  absl::SleepFor(absl::Milliseconds(500));
  absl::StatusOr<ReplicaSet> held = client_->Get<ReplicaSet>(kNs, "web");
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_TRUE(held->metadata().has_deletion_timestamp());
  ASSERT_TRUE(client_->Get<Namespace>("", kNs).ok());

  // Release the finalizer: the replicaset goes, then the namespace.
  absl::Status released;
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<ReplicaSet> rs = client_->Get<ReplicaSet>(kNs, "web");
    if (!rs.ok()) return false;
    rs->mutable_metadata()->clear_finalizers();
    released = client_->Update(*rs).status();
    return released.ok();
  })) << released;
  EXPECT_TRUE(Eventually(
      [&] { return api::Reason(client_->Get<Namespace>("", kNs).status()) == "NotFound"; }));
  EXPECT_EQ(api::Reason(client_->Get<ReplicaSet>(kNs, "web").status()), "NotFound");
}

TEST_F(NamespaceControllerTest, EmptyNamespaceGoesAtOnce) {
  Namespace ns;
  ns.mutable_metadata()->set_name("empty");
  ASSERT_TRUE(client_->Create(ns).ok());
  ASSERT_TRUE(client_->Delete<Namespace>("", "empty").ok());
  EXPECT_TRUE(Eventually(
      [&] { return api::Reason(client_->Get<Namespace>("", "empty").status()) == "NotFound"; }));
}

}  // namespace
}  // namespace capstan::controllermanager::namespacecontroller
