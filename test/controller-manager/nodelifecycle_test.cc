// The node lifecycle controller end to end: a real capstan-apiserver and a real
// capstan-controller-manager (nodelifecycle + replicaset, --node_monitor_grace_period=3s). The
// test plays the node agent and the scheduler: it registers a Node, renews its Lease, binds a
// ReplicaSet's pods to the node, then goes silent. The node becomes Unknown and tainted
// unreachable (NoExecute + NoSchedule); the pods, which tolerate that for 2 s, are evicted and
// replaced; a pod that tolerates it forever stays, not Ready. When the agent is back, the taints
// go.
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
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/api/meta_time.h"
#include "lib/client/client.h"
#include "proto/apps_v1.pb.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/resource.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/eventually.h"

namespace capstan::testing {
namespace {

using capstan::apps::v1::ReplicaSet;
using capstan::coordination::v1::Lease;
using capstan::core::v1::Node;
using capstan::core::v1::Pod;

constexpr char kNode[] = "node-1";
constexpr char kUnreachable[] = "node.kubernetes.io/unreachable";

// Polls until done() is true; false after timeout. Generous: only a hang should fail it.

capstan::meta::v1::Time NowTime() {
  capstan::meta::v1::Time t;
  t.set_seconds(absl::ToUnixSeconds(absl::Now()));
  return t;
}

const capstan::core::v1::NodeCondition* Ready(const Node& node) {
  for (const auto& c : node.status().conditions()) {
    if (c.type() == "Ready") return &c;
  }
  return nullptr;
}

const capstan::core::v1::Taint* FindTaint(const Node& node, const std::string& key,
                                          const std::string& effect) {
  for (const auto& t : node.spec().taints()) {
    if (t.key() == key && t.effect() == effect) return &t;
  }
  return nullptr;
}

class NodeLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    ASSERT_TRUE(apiserver_.Start().ok());
    client_ = client::Client::Connect(apiserver_.grpc_address());
    manager_ = std::make_unique<ServiceProcess>(
        "services/controller-manager/capstan-controller-manager",
        std::vector<std::string>{
            "--server=" + apiserver_.grpc_address(), "--metrics_listen=127.0.0.1:0",
            "--leader_elect=false", "--controllers=nodelifecycle,replicaset",
            "--node_monitor_grace_period=3s", "--node_startup_grace_period=3s"});
    ASSERT_TRUE(manager_->Start().ok());
  }

  void TearDown() override {
    StopAgent();
    manager_.reset();
  }

  // --- the node agent ---

  absl::Status RegisterNode() {
    Node node;
    node.mutable_metadata()->set_name(kNode);
    (*node.mutable_status()->mutable_capacity())["pods"].set_string("110");
    absl::StatusOr<Node> created = client_->Create(node);
    if (!created.ok()) return created.status();
    Lease lease;
    lease.mutable_metadata()->set_name(kNode);
    lease.mutable_metadata()->set_namespace_("kube-node-lease");
    lease.mutable_spec()->set_holder_identity(kNode);
    lease.mutable_spec()->set_lease_duration_seconds(40);
    *lease.mutable_spec()->mutable_renew_time() = MicroNow();
    absl::StatusOr<Lease> made = client_->Create(lease);
    if (!made.ok()) return made.status();
    return PostReady();
  }

  // Ready=True with a fresh heartbeat, as the agent's status update.
  absl::Status PostReady() {
    for (int attempt = 0; attempt < 10; ++attempt) {
      absl::StatusOr<Node> node = client_->Get<Node>("", kNode);
      if (!node.ok()) return node.status();
      node->mutable_status()->clear_conditions();
      auto* ready = node->mutable_status()->add_conditions();
      ready->set_type("Ready");
      ready->set_status("True");
      ready->set_reason("KubeletReady");
      ready->set_message("kubelet is posting ready status");
      *ready->mutable_last_heartbeat_time() = NowTime();
      *ready->mutable_last_transition_time() = NowTime();
      absl::StatusOr<Node> written = client_->UpdateStatus(*node);
      if (api::Reason(written.status()) != "Conflict") return written.status();
    }
    return absl::AbortedError("too many conflicts");
  }

  static capstan::meta::v1::MicroTime MicroNow() { return api::ToMicroTime(absl::Now()); }

  // Renews the Lease every 300 ms until StopAgent() (only the Lease: the Ready heartbeat goes
  // stale, and the Lease alone must keep the node healthy).
  void StartAgent() {
    renewing_ = true;
    agent_ = std::thread([this] {
      while (renewing_) {
        absl::StatusOr<Lease> lease = client_->Get<Lease>("kube-node-lease", kNode);
        if (lease.ok()) {
          *lease->mutable_spec()->mutable_renew_time() = MicroNow();
          (void)client_->Update(*lease);
        }
        absl::SleepFor(absl::Milliseconds(300));
      }
    });
  }
  void StopAgent() {
    renewing_ = false;
    if (agent_.joinable()) agent_.join();
  }

  // --- the scheduler ---

  absl::Status Bind(const Pod& pod) {
    capstan::core::v1::Binding binding;
    binding.mutable_metadata()->set_name(pod.metadata().name());
    binding.mutable_metadata()->set_namespace_(pod.metadata().namespace_());
    binding.mutable_metadata()->set_uid(pod.metadata().uid());
    binding.mutable_target()->set_kind("Node");
    binding.mutable_target()->set_name(kNode);
    capstan::api::v1::CreateRequest request;
    request.mutable_resource()->set_version("v1");
    request.mutable_resource()->set_resource("pods");
    request.mutable_resource()->set_namespace_(pod.metadata().namespace_());
    request.set_subresource("binding");
    request.set_name(pod.metadata().name());
    request.set_object(binding.SerializeAsString());
    capstan::api::v1::ObjectResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return api::FromGrpcStatus(client_->stub()->Create(&context, request, &response));
  }

  std::vector<Pod> Pods() {
    auto list = client_->List<Pod>("default");
    return list.ok() ? list->items : std::vector<Pod>();
  }
  Node GetNode() {
    absl::StatusOr<Node> node = client_->Get<Node>("", kNode);
    return node.ok() ? *node : Node();
  }
  std::string Diagnostics() {
    return absl::StrCat("node: ", GetNode().DebugString(), "\n", manager_->log());
  }

  ApiServerProcess apiserver_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<ServiceProcess> manager_;
  std::atomic<bool> renewing_{false};
  std::thread agent_;
};

ReplicaSet TolerantReplicaSet() {
  ReplicaSet rs;
  rs.mutable_metadata()->set_name("web");
  rs.mutable_metadata()->set_namespace_("default");
  rs.mutable_spec()->set_replicas(2);
  (*rs.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "web";
  auto* tmpl = rs.mutable_spec()->mutable_template_();
  (*tmpl->mutable_metadata()->mutable_labels())["app"] = "web";
  auto* c = tmpl->mutable_spec()->add_containers();
  c->set_name("web");
  c->set_image("nginx:1.25");
  auto* toleration = tmpl->mutable_spec()->add_tolerations();
  toleration->set_key(kUnreachable);
  toleration->set_operator_("Exists");
  toleration->set_effect("NoExecute");
  toleration->set_toleration_seconds(2);
  return rs;
}

TEST_F(NodeLifecycleTest, SilentNodeIsTaintedItsPodsEvictedAndRecoveryUntaints) {
  ASSERT_TRUE(RegisterNode().ok());
  StartAgent();
  // Well past the 3 s grace period on Lease renewals alone: still Ready, no taints.
  absl::SleepFor(absl::Seconds(6));
  {
    Node node = GetNode();
    ASSERT_NE(Ready(node), nullptr);
    EXPECT_EQ(Ready(node)->status(), "True") << Diagnostics();
    EXPECT_EQ(node.spec().taints_size(), 0) << Diagnostics();
  }

  // Two replicas bound to the node, and a pod that tolerates unreachable forever.
  ASSERT_TRUE(client_->Create(TolerantReplicaSet()).ok());
  ASSERT_TRUE(Eventually([&] { return Pods().size() == 2; })) << manager_->log();
  std::set<std::string> originals;
  for (const Pod& pod : Pods()) {
    ASSERT_TRUE(Bind(pod).ok());
    originals.insert(pod.metadata().uid());
    // The apiserver's DefaultTolerationSeconds added not-ready for 300 s, kept our unreachable.
    bool not_ready = false;
    for (const auto& t : pod.spec().tolerations()) {
      if (t.key() == "node.kubernetes.io/not-ready") not_ready = t.toleration_seconds() == 300;
      if (t.key() == kUnreachable) {
        EXPECT_EQ(t.toleration_seconds(), 2);
      }
    }
    EXPECT_TRUE(not_ready) << pod.DebugString();
  }
  Pod stays;
  stays.mutable_metadata()->set_name("stays");
  stays.mutable_metadata()->set_namespace_("default");
  stays.mutable_spec()->set_node_name(kNode);
  auto* c = stays.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  auto* forever = stays.mutable_spec()->add_tolerations();
  forever->set_key(kUnreachable);
  forever->set_operator_("Exists");
  forever->set_effect("NoExecute");
  absl::StatusOr<Pod> created = client_->Create(stays);
  ASSERT_TRUE(created.ok());
  // The agent reports it Ready.
  auto* ready = created->mutable_status()->add_conditions();
  ready->set_type("Ready");
  ready->set_status("True");
  ASSERT_TRUE(client_->UpdateStatus(*created).ok());

  // The agent goes silent.
  StopAgent();
  ASSERT_TRUE(Eventually([&] {
    Node node = GetNode();
    return Ready(node) != nullptr && Ready(node)->status() == "Unknown" &&
           FindTaint(node, kUnreachable, "NoExecute") != nullptr &&
           FindTaint(node, kUnreachable, "NoSchedule") != nullptr;
  })) << Diagnostics();
  Node silent = GetNode();
  EXPECT_EQ(Ready(silent)->reason(), "NodeStatusUnknown");
  EXPECT_EQ(Ready(silent)->message(), "Kubelet stopped posting node status.");
  EXPECT_TRUE(FindTaint(silent, kUnreachable, "NoExecute")->has_time_added());
  for (const auto& cond : silent.status().conditions()) {
    EXPECT_EQ(cond.status(), "Unknown") << cond.type();
  }

  // The replicas are evicted (graceful delete: they linger, terminating, as no agent confirms)
  // and the ReplicaSet makes new ones.
  ASSERT_TRUE(Eventually([&] {
    int evicted = 0;
    int replacements = 0;
    for (const Pod& pod : Pods()) {
      if (originals.count(pod.metadata().uid()) > 0) {
        evicted += pod.metadata().has_deletion_timestamp() ? 1 : 0;
      } else if (pod.metadata().name() != "stays" && !pod.metadata().has_deletion_timestamp()) {
        ++replacements;
      }
    }
    return evicted == 2 && replacements == 2;
  })) << Diagnostics();
  for (const Pod& pod : Pods()) {
    if (originals.count(pod.metadata().uid()) == 0) continue;
    bool disruption = false;
    for (const auto& cond : pod.status().conditions()) {
      if (cond.type() == "DisruptionTarget") {
        disruption = cond.status() == "True" && cond.reason() == "DeletionByTaintManager";
      }
    }
    EXPECT_TRUE(disruption) << pod.DebugString();
  }
  // The Event on an evicted pod.
  EXPECT_TRUE(Eventually([&] {
    auto events = client_->List<capstan::core::v1::Event>("default");
    if (!events.ok()) return false;
    for (const auto& e : events->items) {
      if (e.reason() == "TaintManagerEviction" && e.involved_object().kind() == "Pod" &&
          e.message() ==
              absl::StrCat("Marking for deletion Pod default/", e.involved_object().name())) {
        return true;
      }
    }
    return false;
  })) << manager_->log();
  // The pod that tolerates the taint forever stays, but is no longer Ready.
  EXPECT_TRUE(Eventually([&] {
    absl::StatusOr<Pod> pod = client_->Get<Pod>("default", "stays");
    return pod.ok() && pod->status().conditions_size() == 1 &&
           pod->status().conditions(0).status() == "False";
  })) << manager_->log();
  {
    absl::StatusOr<Pod> pod = client_->Get<Pod>("default", "stays");
    ASSERT_TRUE(pod.ok());
    EXPECT_FALSE(pod->metadata().has_deletion_timestamp()) << "a forever toleration was evicted";
  }
  // The node's NodeNotReady Event (cluster-scoped objects' Events go to "default").
  EXPECT_TRUE(Eventually([&] {
    auto events = client_->List<capstan::core::v1::Event>("default");
    if (!events.ok()) return false;
    for (const auto& e : events->items) {
      if (e.reason() == "NodeNotReady" && e.involved_object().kind() == "Node" &&
          e.message() == "Node node-1 status is now: NodeNotReady") {
        return true;
      }
    }
    return false;
  })) << manager_->log();

  // The agent is back: Lease renewed, Ready=True. The taints go.
  StartAgent();
  ASSERT_TRUE(PostReady().ok());
  ASSERT_TRUE(Eventually([&] {
    Node node = GetNode();
    return Ready(node) != nullptr && Ready(node)->status() == "True" &&
           node.spec().taints_size() == 0;
  })) << Diagnostics();
  // And stay gone while it keeps renewing.
  absl::SleepFor(absl::Seconds(4));
  EXPECT_EQ(GetNode().spec().taints_size(), 0) << Diagnostics();
}

}  // namespace
}  // namespace capstan::testing
