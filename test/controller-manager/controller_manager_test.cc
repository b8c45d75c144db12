// The controller-manager binary end to end: two replicas with leader election against a real
// apiserver. A Deployment becomes a ReplicaSet and pods; the leader is killed and the standby
// takes over without duplicating pods; deleting the Deployment removes everything it made.
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "lib/client/client.h"
#include "proto/apps_v1.pb.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/eventually.h"

namespace capstan::testing {
namespace {

using capstan::apps::v1::Deployment;
using capstan::apps::v1::ReplicaSet;
using capstan::coordination::v1::Lease;
using capstan::core::v1::Pod;


std::vector<Pod> Pods(client::Client& c) {
  auto list = c.List<Pod>("default");
  return list.ok() ? list->items : std::vector<Pod>();
}

Deployment MakeDeployment(int replicas) {
  Deployment d;
  d.mutable_metadata()->set_name("web");
  d.mutable_spec()->set_replicas(replicas);
  (*d.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "web";
  auto* tmpl = d.mutable_spec()->mutable_template_();
  (*tmpl->mutable_metadata()->mutable_labels())["app"] = "web";
  auto* c = tmpl->mutable_spec()->add_containers();
  c->set_name("web");
  c->set_image("nginx:1.25");
  return d;
}

class ControllerManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    ASSERT_TRUE(apiserver_.Start().ok());
    client_ = client::Client::Connect(apiserver_.grpc_address());
    for (const char* id : {"cm-a", "cm-b"}) {
      managers_.push_back(std::make_unique<ServiceProcess>(
          "services/controller-manager/capstan-controller-manager",
          std::vector<std::string>{
              "--server=" + apiserver_.grpc_address(), "--metrics_listen=127.0.0.1:0",
              absl::StrCat("--leader_elect_identity=", id),
              "--leader_elect_lease_duration=2s", "--leader_elect_renew_deadline=1500ms",
              "--leader_elect_retry_period=200ms"}));
      ASSERT_TRUE(managers_.back()->Start().ok());
    }
  }

  std::string Leader() {
    auto lease = client_->Get<Lease>("kube-system", "capstan-controller-manager");
    return lease.ok() ? lease->spec().holder_identity() : "";
  }

  ApiServerProcess apiserver_;
  std::unique_ptr<client::Client> client_;
  std::vector<std::unique_ptr<ServiceProcess>> managers_;
};

TEST_F(ControllerManagerTest, DeploymentToPodsThroughLeaderFailoverAndCascadingDelete) {
  ASSERT_TRUE(client_->Create(MakeDeployment(3)).ok());
  ASSERT_TRUE(Eventually([&] { return Pods(*client_).size() == 3; }))
      << "pods: " << Pods(*client_).size() << "\n" << managers_[0]->log() << managers_[1]->log();
  auto rs = client_->List<ReplicaSet>("default");
  ASSERT_TRUE(rs.ok());
  ASSERT_EQ(rs->items.size(), 1u);
  EXPECT_EQ(rs->items[0].metadata().owner_references(0).kind(), "Deployment");
  for (const Pod& pod : Pods(*client_)) {
    ASSERT_EQ(pod.metadata().owner_references_size(), 1);
    EXPECT_EQ(pod.metadata().owner_references(0).uid(), rs->items[0].metadata().uid());
  }

  // Kill the leader; the standby takes over within the lease duration plus a retry.
  std::string leader = Leader();
  ASSERT_TRUE(leader == "cm-a" || leader == "cm-b") << leader;
  managers_[leader == "cm-a" ? 0 : 1]->Kill();
  std::string standby = leader == "cm-a" ? "cm-b" : "cm-a";
  ASSERT_TRUE(Eventually([&] { return Leader() == standby; }, 30));

  auto current = client_->Get<Deployment>("default", "web");
  ASSERT_TRUE(current.ok());
  current->mutable_spec()->set_replicas(6);
  ASSERT_TRUE(client_->Update(*current).ok());
  ASSERT_TRUE(Eventually([&] { return Pods(*client_).size() == 6; }));
  // Settled at exactly six: no replica acted twice.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(Pods(*client_).size(), 6u);

  // Background cascading delete: the garbage collector removes the ReplicaSet, then the pods.
  ASSERT_TRUE(client_->Delete<Deployment>("default", "web").ok());
  EXPECT_TRUE(Eventually([&] {
    auto sets = client_->List<ReplicaSet>("default");
    return sets.ok() && sets->items.empty() && Pods(*client_).empty();
  }));
}

}  // namespace
}  // namespace capstan::testing
