// The scheduler binary end to end against a real apiserver: pods land where they fit and never on
// a tainted node; an unschedulable pod is told why and is scheduled once a fitting node appears;
// a high-priority pod preempts a lower-priority one to make room.
#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/client/client.h"
#include "proto/core_v1.pb.h"
#include "proto/scheduling_v1.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/eventually.h"

namespace capstan::testing {
namespace {

using capstan::core::v1::Node;
using capstan::core::v1::Pod;


Node MakeNode(const std::string& name, const std::string& cpu, bool tainted = false) {
  Node node;
  node.mutable_metadata()->set_name(name);
  (*node.mutable_metadata()->mutable_labels())["kubernetes.io/hostname"] = name;
  (*node.mutable_status()->mutable_allocatable())["cpu"].set_string(cpu);
  (*node.mutable_status()->mutable_allocatable())["memory"].set_string("8Gi");
  (*node.mutable_status()->mutable_allocatable())["pods"].set_string("110");
  *node.mutable_status()->mutable_capacity() = node.status().allocatable();
  if (tainted) {
    auto* taint = node.mutable_spec()->add_taints();
    taint->set_key("dedicated");
    taint->set_value("gpu");
    taint->set_effect("NoSchedule");
  }
  return node;
}

Pod MakePod(const std::string& name, const std::string& cpu) {
  Pod pod;
  pod.mutable_metadata()->set_name(name);
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("busybox:1.36");
  (*c->mutable_resources()->mutable_requests())["cpu"].set_string(cpu);
  return pod;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    ASSERT_TRUE(apiserver_.Start().ok());
    client_ = client::Client::Connect(apiserver_.grpc_address());
    scheduler_ = std::make_unique<ServiceProcess>(
        "services/scheduler/capstan-scheduler",
        std::vector<std::string>{"--server=" + apiserver_.grpc_address(),
                                 "--metrics_listen=127.0.0.1:0", "--leader_elect=false",
                                 // No node agent here to finish graceful deletions.
                                 "--eviction_grace_period=0"});
    ASSERT_TRUE(scheduler_->Start().ok());
  }
  std::string NodeOf(const std::string& pod) {
    auto p = client_->Get<Pod>("default", pod);
    return p.ok() ? p->spec().node_name() : "";
  }

  ApiServerProcess apiserver_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<ServiceProcess> scheduler_;
};

TEST_F(SchedulerTest, PodsLandWhereTheyFitAndWaitForRoomOtherwise) {
  ASSERT_TRUE(client_->Create(MakeNode("n1", "2")).ok());
  ASSERT_TRUE(client_->Create(MakeNode("n2", "2")).ok());
  ASSERT_TRUE(client_->Create(MakeNode("gpu", "16", /*tainted=*/true)).ok());

  // Four one-CPU pods fill n1 and n2 exactly; none goes to the tainted node.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(client_->Create(MakePod(absl::StrCat("p", i), "1")).ok());
  ASSERT_TRUE(Eventually([&] {
    for (int i = 0; i < 4; ++i) {
      if (NodeOf(absl::StrCat("p", i)).empty()) return false;
    }
    return true;
  })) << scheduler_->log();
  std::map<std::string, int> per_node;
  for (int i = 0; i < 4; ++i) per_node[NodeOf(absl::StrCat("p", i))]++;
  EXPECT_EQ(per_node["n1"], 2);
  EXPECT_EQ(per_node["n2"], 2);
  EXPECT_EQ(per_node.count("gpu"), 0u);

  // A fifth does not fit anywhere it may go: it is told why, in Kubernetes' words.
  ASSERT_TRUE(client_->Create(MakePod("waiting", "1")).ok());
  std::string message;
  ASSERT_TRUE(Eventually([&] {
    auto pod = client_->Get<Pod>("default", "waiting");
    if (!pod.ok()) return false;
    for (const auto& c : pod->status().conditions()) {
      if (c.type() == "PodScheduled" && c.status() == "False" && c.reason() == "Unschedulable") {
        message = c.message();
        return true;
      }
    }
    return false;
  })) << scheduler_->log();
  EXPECT_TRUE(absl::StartsWith(message, "0/3 nodes are available:")) << message;
  EXPECT_TRUE(absl::StrContains(message, "2 Insufficient cpu")) << message;
  EXPECT_TRUE(absl::StrContains(message, "1 node(s) had untolerated taint")) << message;
  EXPECT_EQ(NodeOf("waiting"), "");

  // A node with room appears: the waiting pod is scheduled there.
  ASSERT_TRUE(client_->Create(MakeNode("n3", "4")).ok());
  EXPECT_TRUE(Eventually([&] { return NodeOf("waiting") == "n3"; })) << scheduler_->log();

  // Nothing was ever placed on the tainted node, and the Scheduled events were recorded.
  auto pods = client_->List<Pod>("default");
  ASSERT_TRUE(pods.ok());
  for (const Pod& p : pods->items) EXPECT_NE(p.spec().node_name(), "gpu") << p.metadata().name();
  EXPECT_TRUE(Eventually([&] {
    auto events = client_->List<capstan::core::v1::Event>("default");
    if (!events.ok()) return false;
    int scheduled = 0, failed = 0;
    for (const auto& e : events->items) {
      if (e.reason() == "Scheduled") scheduled += e.count();
      if (e.reason() == "FailedScheduling") failed += e.count();
    }
    return scheduled == 5 && failed >= 1;
  }));
}

TEST_F(SchedulerTest, HighPriorityPodPreemptsOneLowPriorityPod) {
  ASSERT_TRUE(client_->Create(MakeNode("n1", "2")).ok());
  // Priorities come from PriorityClasses, as for a user (the apiserver resolves the name).
  capstan::scheduling::v1::PriorityClass high_class;
  high_class.mutable_metadata()->set_name("high");
  high_class.set_value(1000);
  ASSERT_TRUE(client_->Create(high_class).ok());
  for (const char* name : {"low-a", "low-b"}) ASSERT_TRUE(client_->Create(MakePod(name, "1")).ok());
  ASSERT_TRUE(Eventually([&] { return NodeOf("low-a") == "n1" && NodeOf("low-b") == "n1"; }))
      << scheduler_->log();

  Pod high = MakePod("high", "1");
  high.mutable_spec()->set_priority_class_name("high");
  auto created = client_->Create(high);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->spec().priority(), 1000);
  ASSERT_TRUE(Eventually([&] { return NodeOf("high") == "n1"; })) << scheduler_->log();

  // Exactly one low-priority pod was evicted; the other still runs on n1.
  int gone = 0, stayed = 0;
  for (const char* name : {"low-a", "low-b"}) {
    auto pod = client_->Get<Pod>("default", name);
    if (!pod.ok()) {
      ++gone;
    } else if (pod->spec().node_name() == "n1" && !pod->metadata().has_deletion_timestamp()) {
      ++stayed;
    }
  }
  EXPECT_EQ(gone, 1);
  EXPECT_EQ(stayed, 1);
  auto bound = client_->Get<Pod>("default", "high");
  ASSERT_TRUE(bound.ok());
  EXPECT_EQ(bound->status().nominated_node_name(), "n1");
  EXPECT_TRUE(Eventually([&] {
    auto events = client_->List<capstan::core::v1::Event>("default");
    if (!events.ok()) return false;
    for (const auto& e : events->items) {
      if (e.reason() == "Preempted" &&
          absl::StrContains(e.message(), "Preempted by default/high on node n1")) {
        return true;
      }
    }
    return false;
  }));
}

}  // namespace
}  // namespace capstan::testing
